//! Rule-set versions through the real server: every change of the rules in force (the
//! configuration file, `PutRule`, `DeleteRule`) makes a numbered, hashed, approved version;
//! alerts and their history record the version they were raised under; a restart keeps it.

mod common;

use common::*;
use tonic::Code;
use vigil_proto::v1;
use vigil_proto::v1::rules_client::RulesClient;

const CONFIG: &str = r#"
[rule_set]
approved_by = "dr.li"

[[rules]]
id = "hr_high"
metric = "heart_rate"
above = 130.0
"#;

async fn rules(server: &Server) -> RulesClient<Authed> {
    RulesClient::new(channel(server, None).await)
}

async fn version(server: &Server) -> v1::RuleSetVersion {
    rules(server)
        .await
        .list_rules(v1::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rule_set
        .expect("ListRules names the version")
}

fn hr_high(above: f64) -> v1::Rule {
    v1::Rule {
        id: "hr_high".into(),
        metric: "heart_rate".into(),
        above: Some(above),
        ..Default::default()
    }
}

/// Puts `hr_high` at `above`, approved by n.zhang and dr.li; the version it made.
async fn put_approved(server: &Server, above: f64) -> v1::RuleSetVersion {
    rules(server)
        .await
        .put_rule(v1::Rule {
            approved_by: "n.zhang".into(),
            second_approver: "dr.li".into(),
            ..hr_high(above)
        })
        .await
        .unwrap()
        .into_inner()
        .rule_set
        .expect("PutRule answers with the version it made")
}

/// Sends one heart-rate reading and returns the alert it raised.
async fn raise(
    server: &Server,
    stream: &mut tonic::Streaming<v1::AlertEvent>,
    patient: &str,
    value: f64,
) -> v1::Alert {
    server
        .ingest()
        .await
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading(patient, "heart_rate", value)],
        })
        .await
        .unwrap();
    loop {
        let event = next_event(stream).await;
        let alert = event.alert.unwrap();
        if event.kind == v1::EventKind::Raised as i32 && alert.patient_id == patient {
            return alert;
        }
    }
}

#[tokio::test]
async fn alerts_before_and_after_a_put_rule_carry_different_rule_set_versions() {
    let server = Server::start(Some(CONFIG));
    let first = version(&server).await;
    assert_eq!(
        (
            first.number,
            first.approved_by.as_str(),
            first.change.as_str()
        ),
        (1, "dr.li", "configuration file")
    );
    assert_eq!(first.hash.len(), 64);
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;

    let before = raise(&server, &mut stream, "p1", 135.0).await;
    assert_eq!(
        (before.rule_set_version, before.rule_set_hash.as_str()),
        (1, first.hash.as_str())
    );
    assert_eq!(before.parameters, "above 130, for 0s, clear 130");

    let put = put_approved(&server, 140.0).await;
    assert_eq!(
        (
            put.number,
            put.approved_by.as_str(),
            put.second_approver.as_str(),
            put.change.as_str()
        ),
        (2, "n.zhang", "dr.li", "rule 'hr_high' put")
    );
    assert_ne!(put.hash, first.hash);
    assert!(put.approved_at_ms > 0);
    assert_eq!(version(&server).await, put, "ListRules names it");

    let after = raise(&server, &mut stream, "p2", 145.0).await;
    assert_eq!(
        (after.rule_set_version, after.rule_set_hash.as_str()),
        (2, put.hash.as_str())
    );
    assert_eq!(after.parameters, "above 140, for 0s, clear 140");
    // History shows the version with every event of the alert.
    server
        .alerts()
        .await
        .acknowledge(v1::AcknowledgeRequest {
            alert_id: after.id.clone(),
            by: "nurse".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let history = server
        .alerts()
        .await
        .history(v1::HistoryRequest {
            alert_id: after.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(history.len(), 2, "raised, acknowledged");
    for event in &history {
        assert_eq!(event.alert.as_ref().unwrap().rule_set_version, 2);
    }

    // A second approver must be someone else; without one the change is the caller's.
    let same = rules(&server)
        .await
        .put_rule(v1::Rule {
            approved_by: "n.zhang".into(),
            second_approver: "n.zhang".into(),
            ..hr_high(150.0)
        })
        .await
        .unwrap_err();
    assert_eq!(same.code(), Code::InvalidArgument, "{same:?}");
    assert_eq!(
        version(&server).await.number,
        2,
        "a refused change makes none"
    );
    let deleted = rules(&server)
        .await
        .delete_rule(v1::DeleteRuleRequest {
            id: "hr_high".into(),
            approved_by: "n.zhang".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rule_set
        .unwrap();
    assert_eq!(
        (deleted.number, deleted.change.as_str()),
        (3, "rule 'hr_high' deleted")
    );

    // A restart keeps the version; a changed file makes the next one, approved as it says.
    let server = server.restart();
    assert_eq!(version(&server).await, deleted);
    let config = server.data().parent().unwrap().join("vigil.toml");
    let changed = CONFIG.replace("dr.li", "dr.wu")
        + "\n[[rules]]\nid = \"spo2_low\"\nmetric = \"spo2\"\nbelow = 90.0\n";
    std::fs::write(&config, changed).unwrap();
    let server = server.restart();
    let reloaded = version(&server).await;
    assert_eq!(
        (
            reloaded.number,
            reloaded.approved_by.as_str(),
            reloaded.change.as_str()
        ),
        (4, "dr.wu", "configuration file")
    );
    assert_ne!(reloaded.hash, deleted.hash);
}

#[tokio::test]
async fn a_server_that_requires_a_second_approver_refuses_a_rule_change_without_one() {
    let server = Server::start(Some(&CONFIG.replace(
        "approved_by = \"dr.li\"",
        "approved_by = \"dr.li\"\nrequire_second_approver = true",
    )));
    let alone = rules(&server)
        .await
        .put_rule(hr_high(140.0))
        .await
        .unwrap_err();
    assert_eq!(alone.code(), Code::FailedPrecondition, "{alone:?}");
    assert!(alone.message().contains("second_approver"), "{alone:?}");
    let alone = rules(&server)
        .await
        .delete_rule(v1::DeleteRuleRequest {
            id: "hr_high".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(alone.code(), Code::FailedPrecondition, "{alone:?}");
    assert_eq!(version(&server).await.number, 1);
    let two = put_approved(&server, 140.0).await;
    assert_eq!((two.number, two.second_approver.as_str()), (2, "dr.li"));
}

#[tokio::test]
async fn with_authentication_the_token_approves_and_cannot_be_its_own_second_approver() {
    let (admin, entry) = token_create("ops", "admin", &[]).await;
    let server = Server::start(Some(&format!(
        "{CONFIG}\n[auth]\nenabled = true\n\n{entry}\n"
    )));
    let mut rules = RulesClient::new(channel(&server, Some(&admin)).await);
    let own = rules
        .put_rule(v1::Rule {
            approved_by: "dr.li".into(),
            second_approver: "ops".into(),
            ..hr_high(140.0)
        })
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::InvalidArgument, "{own:?}");
    let put = rules
        .put_rule(v1::Rule {
            approved_by: "dr.li".into(),
            second_approver: "n.zhang".into(),
            ..hr_high(140.0)
        })
        .await
        .unwrap()
        .into_inner()
        .rule_set
        .unwrap();
    assert_eq!(
        (put.approved_by.as_str(), put.second_approver.as_str()),
        ("ops (stated by: dr.li)", "n.zhang"),
        "the token is recorded, the name it states beside it"
    );
}
