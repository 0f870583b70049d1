//! The gRPC API against the real server: batch ingest with per-index rejections, the alert
//! lifecycle and its errors, replay without gap or duplicate, slow-subscriber cut-off,
//! health and reflection.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use vigil_proto::v1;

const HIGH_BP_NO_FOR: &str = r#"
[[care_teams]]
id = "cardiology"
[[care_teams]]
id = "renal"

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true
[[patients]]
id = "p2"
care_team = "renal"
consent = true
[[patients]]
id = "p3"
care_team = "cardiology"
consent = true

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 180
clear = 160
severity = "high"

[[rules]]
id = "bp_raised"
metric = "systolic_bp"
above = 150
clear = 140
severity = "low"
"#;

#[tokio::test]
async fn publish_batch_reports_rejections_by_index() {
    let server = Server::start(None);
    let mut ingest = server.ingest().await;
    let mut bad_unit = reading("p1", "temperature", 98.6);
    bad_unit.unit = "K".into();
    let mut fahrenheit = reading("p1", "temperature", 98.6);
    fahrenheit.unit = "[degF]".into();
    let batch = v1::ReadingBatch {
        readings: vec![
            reading("p1", "heart_rate", 72.0),
            reading("p1", "pulse", 72.0),
            reading("", "heart_rate", 72.0),
            bad_unit,
            reading("p1", "spo2", 140.0),
            fahrenheit,
            reading("p1", "59408-5", 97.0),
        ],
    };
    let ack = ingest.publish_batch(batch).await.unwrap().into_inner();
    assert_eq!((ack.accepted, ack.rejected), (3, 4));
    let got: Vec<(u32, &str)> = ack
        .rejections
        .iter()
        .map(|r| (r.index, r.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "unknown_metric"),
            (2, "bad_topic"),
            (3, "unknown_unit"),
            (4, "implausible")
        ]
    );
    assert!(
        ack.rejections[0].reason.contains("'pulse'"),
        "reasons explain themselves: {}",
        ack.rejections[0].reason
    );
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"grpc\"}", 3.0)
            .await,
        3.0
    );
}

#[tokio::test]
async fn client_streaming_publish_counts_indexes_across_batches() {
    let server = Server::start(None);
    let mut ingest = server.ingest().await;
    let batches = vec![
        v1::ReadingBatch {
            readings: vec![
                reading("p1", "heart_rate", 70.0),
                reading("p1", "heart_rate", 999.0),
            ],
        },
        v1::ReadingBatch {
            readings: vec![reading("p1", "nope", 1.0), reading("p2", "spo2", 98.0)],
        },
    ];
    let ack = ingest
        .publish(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.accepted, ack.rejected), (2, 2));
    assert_eq!(
        ack.rejections.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
}

#[tokio::test]
async fn acknowledge_resolve_and_their_errors() {
    let server = Server::start(Some(HIGH_BP_NO_FOR));
    let mut alerts = server.alerts().await;
    let mut ingest = server.ingest().await;
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p1", "systolic_bp", 190.0)],
        })
        .await
        .unwrap();
    let active = wait_active(&server, 2).await;
    let high = active
        .iter()
        .find(|a| a.rule_id == "bp_high")
        .unwrap()
        .clone();

    let acked = alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: high.id.clone(),
            by: "nurse.kim".into(),
            note: "calling".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.state, v1::AlertState::Acknowledged as i32);
    assert_eq!(acked.acknowledged_by, "nurse.kim");
    let again = alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: high.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);

    // Resolving by hand says what the alert led to, from the configured list.
    for (given, why) in [
        ("", "disposition is required"),
        ("shrugged", "unknown disposition 'shrugged'"),
    ] {
        let refused = alerts
            .resolve(v1::ResolveRequest {
                disposition: given.into(),
                alert_id: high.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains(why), "{}", refused.message());
    }
    let resolved = alerts
        .resolve(v1::ResolveRequest {
            disposition: "contacted_patient".into(),
            alert_id: high.id.clone(),
            by: "dr.ode".into(),
            note: "treated".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, v1::AlertState::Resolved as i32);
    assert_eq!(resolved.disposition, "contacted_patient");
    assert_eq!(
        server
            .metric(
                r#"vigil_alert_dispositions_total{rule="bp_high",disposition="contacted_patient"}"#
            )
            .await,
        1.0
    );
    let twice = alerts
        .resolve(v1::ResolveRequest {
            disposition: "contacted_patient".into(),
            alert_id: high.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    let ack_resolved = alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: high.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(ack_resolved.code(), Code::FailedPrecondition);

    for call in [
        alerts
            .acknowledge(v1::AcknowledgeRequest {
                disposition: String::new(),
                alert_id: "no-such-alert".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        alerts
            .resolve(v1::ResolveRequest {
                disposition: "contacted_patient".into(),
                alert_id: "no-such-alert".into(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(call.code(), Code::NotFound);
    }
    let empty = alerts
        .resolve(v1::ResolveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);

    let left = alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(
        left.iter().map(|a| a.rule_id.as_str()).collect::<Vec<_>>(),
        vec!["bp_raised"]
    );
}

async fn wait_active(server: &Server, n: usize) -> Vec<v1::Alert> {
    let mut alerts = server.alerts().await;
    for _ in 0..200 {
        let list = alerts
            .list_active(v1::ListActiveRequest::default())
            .await
            .unwrap()
            .into_inner()
            .alerts;
        if list.len() >= n {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {n} active alerts");
}

#[tokio::test]
async fn list_active_and_subscribe_filter_by_team_patient_and_severity() {
    let server = Server::start(Some(HIGH_BP_NO_FOR));
    let mut high_cardio = subscribe(
        &server,
        v1::SubscribeRequest {
            care_teams: vec!["cardiology".into()],
            min_severity: v1::Severity::High as i32,
            ..Default::default()
        },
    )
    .await;
    let mut ingest = server.ingest().await;
    let readings = vec![
        reading("p2", "systolic_bp", 190.0),
        reading("p1", "systolic_bp", 155.0),
        reading("p3", "systolic_bp", 185.0),
    ];
    ingest
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap();
    let first = next_event(&mut high_cardio).await.alert.unwrap();
    assert_eq!(
        (first.patient_id.as_str(), first.rule_id.as_str()),
        ("p3", "bp_high")
    );
    wait_active(&server, 4).await;
    let mut alerts = server.alerts().await;
    let renal = alerts
        .list_active(v1::ListActiveRequest {
            care_teams: vec!["renal".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(renal.iter().all(|a| a.patient_id == "p2") && renal.len() == 2);
    let p1 = alerts
        .list_active(v1::ListActiveRequest {
            patient_ids: vec!["p1".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(p1.len(), 1);
    // Nothing else reached the filtered stream.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), high_cardio.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn replay_after_seq_matches_what_live_subscribers_saw() {
    let server = Server::start(Some(HIGH_BP_NO_FOR));
    let mut live = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut ingest = server.ingest().await;
    // Raise and clear alerts: each patient raises two and resolves two.
    for p in ["p1", "p2", "p3"] {
        for v in [190.0, 120.0] {
            ingest
                .publish_batch(v1::ReadingBatch {
                    readings: vec![reading(p, "systolic_bp", v)],
                })
                .await
                .unwrap();
        }
    }
    let mut seen = Vec::new();
    for _ in 0..12 {
        seen.push(next_event(&mut live).await);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "live seqs are contiguous: {seqs:?}"
    );

    let mut replay = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    let mut replayed = Vec::new();
    for _ in 0..12 {
        replayed.push(next_event(&mut replay).await);
    }
    assert_eq!(replayed, seen, "replay equals what live subscribers saw");

    let k = seen[4].seq;
    let mut partial = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(k),
            ..Default::default()
        },
    )
    .await;
    for want in &seen[5..] {
        assert_eq!(&next_event(&mut partial).await, want);
    }
    // Then live, with no gap and no duplicate.
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p1", "systolic_bp", 195.0)],
        })
        .await
        .unwrap();
    let a = next_event(&mut partial).await;
    let b = next_event(&mut live).await;
    assert_eq!(a.seq, seen.last().unwrap().seq + 1);
    assert_eq!(a, b);
}

#[tokio::test]
async fn slow_subscriber_is_cut_off_and_resumes_without_gap() {
    // 2 kB per event, so the burst is far larger than HTTP/2 flow-control windows (MiBs)
    // and a subscriber that stops reading really does fall behind.
    let config = format!(
        "[server]\nsubscriber_buffer = 64\n\n[[rules]]\nid = \"bp\"\nmetric = \"systolic_bp\"\nabove = 180\nmessage = \"{}\"\n",
        "x".repeat(2000)
    );
    let server = Server::start(Some(&config));
    let mut slow = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut fast = subscribe(&server, v1::SubscribeRequest::default()).await;
    let n = 5_000usize;
    let mut ingest = server.ingest().await;
    // How many events the fast subscriber has read: the publisher waits on it, so the fast
    // one keeps up however busy the machine is, and only the slow one falls behind.
    let (read_tx, mut read_rx) = tokio::sync::watch::channel(0usize);
    let fast_reader = tokio::spawn(async move {
        let mut count = 0usize;
        while let Ok(Some(_)) = fast.message().await {
            count += 1;
            let _ = read_tx.send(count);
            if count == n {
                break;
            }
        }
        count
    });
    // Alerts arrive in chunks of 50 (within the 64-event buffer), each once the fast
    // subscriber has read the one before.
    for chunk in 0..n / 50 {
        let readings = (0..50)
            .map(|i| reading(&format!("p{}", chunk * 50 + i), "systolic_bp", 200.0))
            .collect();
        ingest
            .publish_batch(v1::ReadingBatch { readings })
            .await
            .unwrap();
        let sent = (chunk + 1) * 50;
        tokio::time::timeout(
            Duration::from_secs(30),
            read_rx.wait_for(|read| *read >= sent),
        )
        .await
        .expect("the fast subscriber reads each chunk")
        .expect("the fast subscriber is still reading");
    }
    // The slow subscriber reads nothing until the load is over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut delivered = Vec::new();
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.message())
            .await
            .expect("stream stalled")
        {
            Ok(Some(e)) => delivered.push(e.seq),
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let last = *delivered.last().expect("some events were delivered first");
    assert!(
        status
            .message()
            .contains(&format!("last delivered seq {last}")),
        "{}",
        status.message()
    );
    assert!(delivered.len() < n);
    assert_eq!(
        fast_reader.await.unwrap(),
        n,
        "the fast subscriber got every event"
    );
    // Resume from the last delivered seq: the rest arrives, no gap, no duplicate.
    let mut resumed = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(last),
            ..Default::default()
        },
    )
    .await;
    let mut expect = last + 1;
    while expect <= n as u64 {
        assert_eq!(next_event(&mut resumed).await.seq, expect);
        expect += 1;
    }
    assert!(server.metric("vigil_alert_subscribers_cut_off_total").await >= 1.0);
}

#[tokio::test]
async fn health_reflection_rules_and_patients_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let server = Server::start(Some(HIGH_BP_NO_FOR));
    let channel = tonic::transport::Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in [
        "",
        "vigil.v1.Ingest",
        "vigil.v1.Alerts",
        "vigil.v1.Rules",
        "vigil.v1.Patients",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service} is SERVING");
    }

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection reply")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "vigil.v1.Ingest",
        "vigil.v1.Alerts",
        "vigil.v1.Rules",
        "vigil.v1.Patients",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }

    let mut rules = vigil_proto::v1::rules_client::RulesClient::connect(server.grpc_url())
        .await
        .unwrap();
    let listed = rules
        .list_rules(v1::ListRulesRequest {})
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(
        listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["bp_high", "bp_raised"]
    );
    assert_eq!(listed[0].above, Some(180.0));
    let mut bad = listed[0].clone();
    bad.below = Some(50.0);
    let put = rules.put_rule(bad).await.unwrap_err();
    assert_eq!(put.code(), Code::InvalidArgument);
    assert!(put.message().contains("not both"), "{}", put.message());

    let mut patients = vigil_proto::v1::patients_client::PatientsClient::connect(server.grpc_url())
        .await
        .unwrap();
    let p = patients
        .get_patient(v1::GetPatientRequest {
            patient_id: "p2".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((p.care_team.as_str(), p.consent), ("renal", true));
    let missing = patients
        .get_patient(v1::GetPatientRequest {
            patient_id: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}
