//! Cluster mode: rules, patients, silences and device credentials changed through one node
//! apply on every node (the one that admits a reading, the one that evaluates the patient,
//! the one a device connects to), and a node that starts later starts from them.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::*;
use common::{channel, eventually, token_create, Server};
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::devices_client::DevicesClient;
use vigil_proto::v1::patients_client::PatientsClient;
use vigil_proto::v1::rules_client::RulesClient;

/// (kind, patient, rule) of every event in the alert stream.
async fn events(url: &str) -> Vec<(String, String, String)> {
    eventually(Duration::from_secs(30), "the alert stream readable", || {
        stream_json(url)
    })
    .await
    .iter()
    .map(|e| {
        let field = |f: &str| e["alert"][f].as_str().unwrap().to_string();
        (
            e["kind"].as_str().unwrap().to_string(),
            field("patient_id"),
            field("rule_id"),
        )
    })
    .collect()
}

/// Waits until the alert stream holds the event `(kind, patient, rule)`.
async fn wait_event(url: &str, kind: &str, patient: &str, rule: &str) {
    let want = (kind.to_string(), patient.to_string(), rule.to_string());
    eventually(
        Duration::from_secs(60),
        &format!("{kind} {patient} {rule} in the alert stream"),
        || async { events(url).await.contains(&want).then_some(()) },
    )
    .await;
}

/// Sends `value` of `metric` for `patient` through `node` as device `id`, until acknowledged
/// (the node may not know the device yet: it learns it from the catalog).
async fn send(node: &Server, id: &str, secret: &str, patient: &str, metric: &str, value: f64) {
    let topic = format!("vitals/{patient}/{metric}");
    let payload = format!(r#"{{"value": {value}}}"#);
    eventually(
        Duration::from_secs(30),
        &format!("{id} acknowledged on {:?}", node.mqtt),
        || async {
            send_as(node, id, Some((id, secret)), &topic, &payload)
                .await
                .ok()
        },
    )
    .await;
}

/// Alerts raised on `nodes` (by the owners of their partitions), summed.
async fn raised(nodes: &[&Server]) -> f64 {
    let mut sum = 0.0;
    for n in nodes {
        sum += n
            .metric("vigil_alerts_raised_total{severity=\"high\"}")
            .await;
    }
    sum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_made_through_one_node_apply_on_every_node_and_on_a_node_started_later() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let (nurse, nurse_entry) = token_create("kim", "care_team:ward", &[]).await;
    // Enrolment is closed (one patient configured): a node admits only patients it knows.
    let extra = format!(
        "\n[[patients]]\nid = \"p-base\"\ncare_team = \"ward\"\nconsent = true\n\n[auth]\nenabled = true\n\n{admin_entry}\n{nurse_entry}\n"
    );
    let config = move |node: &str, urls: &[String]| node_config_with(node, urls, 1, &extra);
    let (_nats, urls, a, b) = two_nodes(dir.path(), &config).await;
    let url = &urls[0];

    // A patient enrolled and a device provisioned through a: b admits the patient's readings
    // from that device, and the owner of its partition (a or b) judges them.
    PatientsClient::new(channel(&a, Some(&admin)).await)
        .enroll(v1::Patient {
            id: "p-new".into(),
            consent: true,
            ..Default::default()
        })
        .await
        .expect("enrolled in cluster mode");
    let new_secret = DevicesClient::new(channel(&a, Some(&admin)).await)
        .provision(v1::ProvisionDeviceRequest {
            id: "strap-new".into(),
            patient_id: "p-new".into(),
            secret: String::new(),
        })
        .await
        .expect("provisioned in cluster mode")
        .into_inner()
        .secret;
    eventually(Duration::from_secs(30), "b knows p-new", || async {
        PatientsClient::new(channel(&b, Some(&admin)).await)
            .get_patient(v1::GetPatientRequest {
                patient_id: "p-new".into(),
            })
            .await
            .ok()
    })
    .await;
    send(&b, "strap-new", &new_secret, "p-new", "heart_rate", 130.0).await;
    wait_event(url, "raised", "p-new", "hr_high").await;

    // A rule put through b judges readings sent through a.
    let put = RulesClient::new(channel(&b, Some(&admin)).await)
        .put_rule(v1::Rule {
            id: "spo2_low".into(),
            metric: "spo2".into(),
            below: Some(90.0),
            severity: v1::Severity::Medium as i32,
            ..Default::default()
        })
        .await
        .expect("rule put in cluster mode")
        .into_inner()
        .rule_set
        .expect("the version the put made");
    assert!(put.number > 1, "after the file's version 1: {put:?}");
    assert_eq!(put.approved_by, "ops", "the token that put it");
    eventually(Duration::from_secs(30), "a lists spo2_low", || async {
        let rules = RulesClient::new(channel(&a, Some(&admin)).await)
            .list_rules(v1::ListRulesRequest {})
            .await
            .ok()?
            .into_inner()
            .rules;
        rules.iter().any(|r| r.id == "spo2_low").then_some(())
    })
    .await;
    send(&a, "strap-new", &new_secret, "p-new", "spo2", 85.0).await;
    wait_event(url, "raised", "p-new", "spo2_low").await;

    // A silence made through a holds p-base's alert back wherever it is evaluated; ended
    // through b, the alert it held is delivered.
    let silence = AlertsClient::new(channel(&a, Some(&nurse)).await)
        .silence(v1::SilenceRequest {
            patient_id: "p-base".into(),
            ends_at_ms: now_ms() + 3_600_000,
            reason: "sensor check".into(),
            by: "nurse.kim".into(),
            ..Default::default()
        })
        .await
        .expect("silenced in cluster mode")
        .into_inner();
    eventually(Duration::from_secs(30), "b lists the silence", || async {
        let listed = AlertsClient::new(channel(&b, Some(&nurse)).await)
            .list_silences(v1::ListSilencesRequest {})
            .await
            .ok()?
            .into_inner()
            .silences;
        listed.iter().any(|s| s.id == silence.id).then_some(())
    })
    .await;
    let base_secret = DevicesClient::new(channel(&b, Some(&admin)).await)
        .provision(v1::ProvisionDeviceRequest {
            id: "strap-base".into(),
            patient_id: "p-base".into(),
            secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let before = raised(&[&a, &b]).await;
    send(
        &a,
        "strap-base",
        &base_secret,
        "p-base",
        "heart_rate",
        140.0,
    )
    .await;
    eventually(Duration::from_secs(30), "p-base's alert raised", || async {
        (raised(&[&a, &b]).await > before).then_some(())
    })
    .await;
    assert!(
        !events(url).await.iter().any(|(_, p, _)| p == "p-base"),
        "a silenced alert is held back from the alert stream"
    );
    AlertsClient::new(channel(&b, Some(&nurse)).await)
        .delete_silence(v1::DeleteSilenceRequest {
            id: silence.id.clone(),
        })
        .await
        .expect("silence deleted in cluster mode");
    wait_event(url, "raised", "p-base", "hr_high").await;

    // A device revoked through b is cut off on a, where it is connected.
    let mut options = rumqttc::MqttOptions::new("strap-new", "127.0.0.1", a.mqtt.port());
    options.set_credentials("strap-new", new_secret.as_str());
    let mut connected = common::connack(options)
        .await
        .expect("strap-new logs in on a");
    DevicesClient::new(channel(&b, Some(&admin)).await)
        .revoke(v1::RevokeDeviceRequest {
            id: "strap-new".into(),
        })
        .await
        .expect("revoked in cluster mode");
    assert!(
        connected
            .is_disconnected_within(Duration::from_secs(30))
            .await,
        "a revoked device's connection on another node is closed"
    );
    assert!(
        send_as(
            &a,
            "strap-new",
            Some(("strap-new", &new_secret)),
            "vitals/p-new/spo2",
            "88"
        )
        .await
        .is_err(),
        "a revoked device cannot log in on any node"
    );

    // Unenrolled through b: its two alerts are resolved by their owner. The rule deleted
    // through a: p-base's alert is resolved.
    let unenrolled = PatientsClient::new(channel(&b, Some(&admin)).await)
        .unenroll(v1::UnenrollRequest {
            patient_id: "p-new".into(),
        })
        .await
        .expect("unenrolled in cluster mode")
        .into_inner();
    assert_eq!(unenrolled.alerts_resolved, 2, "{unenrolled:?}");
    wait_event(url, "resolved", "p-new", "hr_high").await;
    wait_event(url, "resolved", "p-new", "spo2_low").await;
    let deleted = RulesClient::new(channel(&a, Some(&admin)).await)
        .delete_rule(v1::DeleteRuleRequest {
            id: "hr_high".into(),
            second_approver: "dr.chen".into(),
            ..Default::default()
        })
        .await
        .expect("rule deleted in cluster mode")
        .into_inner();
    assert_eq!((deleted.deleted, deleted.alerts_resolved), (true, 1));
    let version = deleted
        .rule_set
        .clone()
        .expect("the version the deletion made");
    assert!(version.number > put.number, "{version:?} after {put:?}");
    assert_ne!(version.hash, put.hash);
    assert_eq!(
        (
            version.approved_by.as_str(),
            version.second_approver.as_str()
        ),
        ("ops", "dr.chen")
    );
    wait_event(url, "resolved", "p-base", "hr_high").await;

    // Each episode once.
    let all = events(url).await;
    let distinct: BTreeSet<_> = all.iter().collect();
    assert_eq!(all.len(), distinct.len(), "an event written twice: {all:?}");

    // A node started now starts from the catalog: the rule put and the one deleted, the
    // patient unenrolled, the device revoked and the one provisioned.
    let c = Server::start(Some(&config("vigil-c", &urls)));
    wait_balanced(&[&a, &b, &c]).await;
    // Every node names the rules in force with the same version, approvals included.
    for node in [&a, &b, &c] {
        let what = format!("{} names version {}", node.grpc, version.number);
        eventually(Duration::from_secs(30), &what, || async {
            let listed = RulesClient::new(channel(node, Some(&admin)).await)
                .list_rules(v1::ListRulesRequest {})
                .await
                .ok()?
                .into_inner()
                .rule_set;
            (listed.as_ref() == Some(&version)).then_some(())
        })
        .await;
    }
    let rules: BTreeSet<String> = RulesClient::new(channel(&c, Some(&admin)).await)
        .list_rules(v1::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        rules.contains("spo2_low") && !rules.contains("hr_high"),
        "{rules:?}"
    );
    let gone = PatientsClient::new(channel(&c, Some(&admin)).await)
        .get_patient(v1::GetPatientRequest {
            patient_id: "p-new".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
    let devices: Vec<String> = DevicesClient::new(channel(&c, Some(&admin)).await)
        .list_devices(v1::ListDevicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .devices
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(devices, vec!["strap-base".to_string()]);
    send(&c, "strap-base", &base_secret, "p-base", "spo2", 80.0).await;
    wait_event(url, "raised", "p-base", "spo2_low").await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The console of any node shows every patient of the cluster: its worklist gathers the
/// owners' summaries, a patient page comes from the owner of the patient's partition (its
/// charts hold the readings judged there), and a review mark made on one node shows on all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_of_any_node_shows_patients_evaluated_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, _urls, a, b) = two_nodes(dir.path(), |node, urls| node_config(node, urls, 1)).await;
    let patients: Vec<String> = (0..8).map(|i| format!("home-{i}")).collect();
    for (i, p) in patients.iter().enumerate() {
        heart_rate(&a, p, 60.0 + i as f64).await;
    }
    let (wa, wb) = (
        common::web::Web::open(a.http).await,
        common::web::Web::open(b.http).await,
    );
    for web in [&wa, &wb] {
        eventually(
            Duration::from_secs(30),
            "every patient on the worklist",
            || async {
                let list = web.get_json("/api/patients").await;
                let ids: BTreeSet<String> = list["patients"]
                    .as_array()?
                    .iter()
                    .filter(|p| p["last_reading_ms"].is_i64())
                    .filter_map(|p| p["profile"]["id"].as_str().map(str::to_string))
                    .collect();
                (ids.len() == patients.len()).then_some(())
            },
        )
        .await;
        for (i, p) in patients.iter().enumerate() {
            let page = web.get_json(&format!("/api/patients/{p}")).await;
            assert_eq!(page["series"][0]["metric"], "heart_rate", "{page}");
            assert_eq!(page["series"][0]["samples"][0][1], 60.0 + i as f64);
            assert_eq!(page["series"][0]["lines"][0]["rule_id"], "hr_high");
        }
    }
    let unknown = wb.get("/api/patients/nobody").await;
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);

    // Reviewed through a: b's worklist shows the mark.
    let res = wa
        .post(
            "/api/patients/home-3/review",
            serde_json::json!({"hours": 24, "note": "called, fine"}),
        )
        .await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    eventually(
        Duration::from_secs(30),
        "b shows the review mark",
        || async {
            let list = wb.get_json("/api/patients").await;
            let entry = list["patients"]
                .as_array()?
                .iter()
                .find(|p| p["profile"]["id"] == "home-3")?
                .clone();
            (entry["needs_review"] == false && entry["review"]["note"] == "called, fine")
                .then_some(())
        },
    )
    .await;
}

/// Tokens come from each node's file: nodes whose files differ say so, in a metric per
/// section and in their logs, and the sections that are alike say nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_whose_configuration_files_differ_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let (_, everywhere) = token_create("ops", "admin", &[]).await;
    let (_, only_on_a) = token_create("kim", "care_team:ward", &[]).await;
    let (_nats, _urls, a, b) = two_nodes(dir.path(), |node, urls| {
        let extra = if node == "vigil-a" { &only_on_a } else { "" };
        let auth = format!("\n[auth]\nenabled = true\n\n{everywhere}\n{extra}\n");
        node_config_with(node, urls, 1, &auth)
    })
    .await;
    let differs = |section: &str| format!("vigil_cluster_config_differs{{section=\"{section}\"}}");
    for node in [&a, &b] {
        eventually(Duration::from_secs(30), "the tokens differ", || async {
            (node.metric(&differs("tokens")).await == 1.0).then_some(())
        })
        .await;
        for alike in ["rules", "patients", "devices", "care_teams"] {
            assert_eq!(node.metric(&differs(alike)).await, 0.0, "{alike}");
        }
        assert!(
            node.stderr()
                .contains("configuration differs from other nodes'"),
            "the log says so"
        );
    }
}

/// A node's copy of the alert stream keeps its newest events only (here 10), but every
/// open alert is listed and can be acted on, on any node and on one started later, and
/// `History` of an alert whose raising the copy no longer holds is read from the alert's
/// partition in the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn open_alerts_and_history_reach_past_a_nodes_copy_of_the_alert_stream() {
    let dir = tempfile::tempdir().unwrap();
    let small = "\n[server]\nretained_events = 10\n";
    let config = |node: &str, urls: &[String]| format!("{small}\n{}", node_config(node, urls, 1));
    let (_nats, urls, a, b) = two_nodes(dir.path(), config).await;
    heart_rate(&a, "early", 140.0).await;
    let early = eventually(Duration::from_secs(30), "early's alert", || async {
        b.open_alerts()
            .await
            .into_iter()
            .find(|al| al.patient_id == "early")
    })
    .await;
    let later: Vec<String> = (0..20).map(|i| format!("later-{i}")).collect();
    for p in &later {
        heart_rate(&b, p, 140.0).await;
    }
    eventually(Duration::from_secs(30), "every later alert", || async {
        (a.open_alerts().await.len() == later.len() + 1).then_some(())
    })
    .await;
    b.alerts()
        .await
        .acknowledge(v1::AcknowledgeRequest {
            alert_id: early.id.clone(),
            by: "nurse.lee".into(),
            ..Default::default()
        })
        .await
        .expect("acknowledged through b");
    for node in [&a, &b] {
        let events = eventually(Duration::from_secs(30), "both events", || async {
            let events = node
                .alerts()
                .await
                .history(v1::HistoryRequest {
                    alert_id: early.id.clone(),
                })
                .await
                .ok()?
                .into_inner()
                .events;
            (events.len() == 2).then_some(events)
        })
        .await;
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            vec![
                v1::EventKind::Raised as i32,
                v1::EventKind::Acknowledged as i32
            ]
        );
        assert!(events[0].seq < events[1].seq);
    }
    let c = Server::start(Some(&config("vigil-c", &urls)));
    eventually(
        Duration::from_secs(30),
        "c lists every open alert",
        || async {
            let open = c.open_alerts().await;
            (open.len() == later.len() + 1).then_some(())
        },
    )
    .await;
}

/// A FHIR Observation posted to any node is stored in the readings stream before it is
/// answered and judged by the owner of its patient's partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fhir_observation_posted_to_any_node_is_judged_by_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let (_nats, urls, a, b) = two_nodes(dir.path(), |node, urls| node_config(node, urls, 1)).await;
    let http = common::web::Web::new(b.http).http;
    let patients: Vec<String> = (0..6).map(|i| format!("ehr-{i}")).collect();
    for p in &patients {
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let body = serde_json::json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": format!("Patient/{p}")},
            "effectiveDateTime": when,
            "valueQuantity": {"value": 150, "unit": "beats/minute", "code": "/min"}
        });
        let answer = http
            .post(format!("http://{}/fhir/Observation", b.http))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
    }
    for p in &patients {
        wait_event(&urls[0], "raised", p, "hr_high").await;
    }
    assert_eq!(
        a.metric("vigil_readings_ingested_total{source=\"fhir\"}")
            .await,
        0.0,
        "b took them"
    );
}
