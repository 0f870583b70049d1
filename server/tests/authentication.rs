//! Authentication against the real server with real clients: bearer tokens and roles on
//! gRPC (missing, wrong, wrong role, another care team's alerts, a gateway outside its
//! patient prefixes), device provisioning, the audit trail of refusals.

mod common;

use std::time::Duration;

use common::*;
use tonic::Code;
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::devices_client::DevicesClient;
use vigil_proto::v1::ingest_client::IngestClient;

fn hr(patient: &str, value: f64) -> v1::ReadingBatch {
    v1::ReadingBatch {
        readings: vec![reading(patient, "heart_rate", value)],
    }
}

#[tokio::test]
async fn tokens_and_roles_confine_every_grpc_caller() {
    let (gateway, gateway_entry) =
        token_create("ward3-gateway", "gateway", &["--patient-prefix", "w3-"]).await;
    let (cardio, cardio_entry) = token_create("cardio-app", "care_team:cardiology", &[]).await;
    let (onco, onco_entry) = token_create("onco-app", "care_team:oncology", &[]).await;
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let config = format!(
        r#"[auth]
enabled = true

{gateway_entry}

{cardio_entry}

{onco_entry}

{admin_entry}

[[care_teams]]
id = "cardiology"

[[care_teams]]
id = "oncology"

[[patients]]
id = "w3-1"
care_team = "cardiology"
consent = true

[[patients]]
id = "w3-2"
care_team = "oncology"
consent = true

[[patients]]
id = "w4-1"
care_team = "cardiology"
consent = true
"#
    );
    let server = Server::start(Some(&config));

    // No token, a wrong token: UNAUTHENTICATED, whatever the service.
    let err = IngestClient::new(channel(&server, None).await)
        .publish_batch(hr("w3-1", 70.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("vigil token create"));
    let forged = format!("vigil_{}", "0".repeat(64));
    let err = AlertsClient::new(channel(&server, Some(&forged)).await)
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A valid token with the wrong role: PERMISSION_DENIED.
    let err = AlertsClient::new(channel(&server, Some(&gateway)).await)
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("Ingest only"), "{}", err.message());
    let err = IngestClient::new(channel(&server, Some(&admin)).await)
        .publish_batch(hr("w3-1", 70.0))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Each care team subscribes without naming a team: the server confines it.
    let mut cardio_alerts = AlertsClient::new(channel(&server, Some(&cardio)).await);
    let mut cardio_stream = cardio_alerts
        .subscribe(v1::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut onco_alerts = AlertsClient::new(channel(&server, Some(&onco)).await);
    let mut onco_stream = onco_alerts
        .subscribe(v1::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Asking for another team is refused, not narrowed.
    let err = cardio_alerts
        .subscribe(v1::SubscribeRequest {
            care_teams: vec!["oncology".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The gateway publishes: the oncology patient first, then cardiology, then a patient
    // outside its prefix (rejected, the rest of the batch still taken).
    let ack = IngestClient::new(channel(&server, Some(&gateway)).await)
        .publish_batch(v1::ReadingBatch {
            readings: vec![
                reading("w3-2", "heart_rate", 190.0),
                reading("w4-1", "heart_rate", 190.0),
                reading("w3-1", "heart_rate", 190.0),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted, 2, "{ack:?}");
    assert_eq!(ack.rejections.len(), 1);
    assert_eq!(ack.rejections[0].index, 1);
    assert!(ack.rejections[0].reason.starts_with("not_permitted:"));

    let cardio_event = next_event(&mut cardio_stream).await;
    let cardio_alert = cardio_event.alert.unwrap();
    assert_eq!(
        cardio_alert.patient_id, "w3-1",
        "cardiology never sees oncology's alert"
    );
    let onco_alert = next_event(&mut onco_stream).await.alert.unwrap();
    assert_eq!(onco_alert.patient_id, "w3-2");
    let listed = cardio_alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert!(listed.iter().all(|a| a.care_team == "cardiology") && !listed.is_empty());

    // Cardiology cannot acknowledge, snooze or read the history of oncology's alert.
    let err = cardio_alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: onco_alert.id.clone(),
            by: "nurse-c".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = cardio_alerts
        .history(v1::HistoryRequest {
            alert_id: onco_alert.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Nor silence another team; its own silence is confined to its team.
    let err = cardio_alerts
        .silence(v1::SilenceRequest {
            care_team: "oncology".into(),
            ends_at_ms: now_ms() + 60_000,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let silence = cardio_alerts
        .silence(v1::SilenceRequest {
            rule_id: "tachycardia".into(),
            ends_at_ms: now_ms() + 60_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(silence.care_team, "cardiology");
    assert!(onco_alerts
        .list_silences(v1::ListSilencesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .silences
        .is_empty());
    // Oncology acknowledges its own; the event names the token when `by` is empty.
    let acked = onco_alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: onco_alert.id.clone(),
            by: String::new(),
            note: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acked.state, v1::AlertState::Acknowledged as i32);
    let ack_event = next_event(&mut onco_stream).await;
    assert_eq!(ack_event.by, "onco-app");

    // Devices: admin only.
    let err = DevicesClient::new(channel(&server, Some(&cardio)).await)
        .list_devices(v1::ListDevicesRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut devices = DevicesClient::new(channel(&server, Some(&admin)).await);
    let provisioned = devices
        .provision(v1::ProvisionDeviceRequest {
            id: "cuff-9".into(),
            patient_id: "w3-1".into(),
            secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(provisioned.secret.len(), 48, "192 random bits, hex");
    let listed = devices
        .list_devices(v1::ListDevicesRequest {})
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].patient_id, "w3-1");
    let err = devices
        .provision(v1::ProvisionDeviceRequest {
            id: "cuff-10".into(),
            patient_id: "w3-1".into(),
            secret: "short".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Every refusal is counted by reason.
    for (reason, at_least) in [
        ("missing_token", 1.0),
        ("bad_token", 1.0),
        ("wrong_role", 3.0),
        ("out_of_scope", 5.0),
    ] {
        let series = format!("vigil_auth_failures_total{{reason=\"{reason}\"}}");
        assert!(server.metric(&series).await >= at_least, "{series}");
    }
    assert_eq!(
        server
            .metric("vigil_readings_rejected_total{reason=\"not_permitted\"}")
            .await,
        1.0
    );

    // The audit log names the token, records refusals, and holds no secret.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let audit = std::fs::read_to_string(server.dir.path().join("data/audit.log")).unwrap();
    assert!(
        audit.contains(r#""actor":"token onco-app","action":"acknowledge""#),
        "{audit}"
    );
    assert!(audit.contains(r#""action":"auth_failure""#));
    assert!(audit.contains(r#""actor":"token ops","action":"device_provision","target":"cuff-9""#));
    for secret in [
        &gateway,
        &cardio,
        &onco,
        &admin,
        &forged,
        &provisioned.secret,
    ] {
        assert!(
            !audit.contains(secret.as_str()),
            "a secret reached the audit log"
        );
        assert!(
            !server.stderr().contains(secret.as_str()),
            "a secret reached the log"
        );
    }
    let stored = std::fs::read_to_string(server.dir.path().join("data/devices.json")).unwrap();
    // A generated secret is kept as a keyed digest, never in clear.
    assert!(stored.contains("$vigil-hmac-sha256$") && !stored.contains(&provisioned.secret));
}

/// Connects with `login`; `Err` carries the refusal.
async fn mqtt_login(
    server: &Server,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Result<Device, String> {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    connack(options).await
}

/// Subscribes and returns the granted codes.
async fn suback(device: &mut Device, filter: &str) -> Vec<rumqttc::SubscribeReasonCode> {
    device
        .client
        .subscribe(filter, rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), device.eventloop.poll())
            .await
            .expect("SUBACK within 10 s")
            .unwrap();
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) = event {
            return ack.return_codes;
        }
    }
}

#[tokio::test]
async fn a_device_speaks_only_for_its_own_patient() {
    let device_entry = device_add("cuff-1", "p-1", "cuff-one-secret-123").await;
    assert!(!device_entry
        .lines()
        .filter(|l| !l.starts_with('#'))
        .any(|l| l.contains("cuff-one-secret-123")));
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let config = format!("[auth]\nenabled = true\n\n{device_entry}\n{admin_entry}\n");
    let server = Server::start(Some(&config));

    // Wrong password, unknown device, no credentials: CONNACK "not authorised".
    for login in [
        Some(("cuff-1", "not-the-secret-at-all")),
        Some(("nobody", "cuff-one-secret-123")),
        None,
    ] {
        let refused = mqtt_login(&server, "intruder", login)
            .await
            .err()
            .expect("refused");
        assert!(refused.contains("NotAuthorized"), "{refused}");
    }

    // The right secret: its own patient's readings are taken.
    let mut cuff = mqtt_login(&server, "cuff-1", Some(("cuff-1", "cuff-one-secret-123")))
        .await
        .unwrap();
    cuff.publish("vitals/p-1/heart_rate", "72").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
            .await,
        1.0
    );
    // Another patient's topic: acknowledged (MQTT 3.1.1 has no refusal) but dropped.
    cuff.publish("vitals/p-2/heart_rate", "72").await;
    cuff.publish("vitals/p-10", r#"{"metric":"heart_rate","value":72}"#)
        .await;
    assert!(
        server
            .wait_metric("vigil_auth_failures_total{reason=\"publish_denied\"}", 2.0)
            .await
            >= 2.0
    );
    // Reminders: its own patient's only.
    assert_eq!(
        suback(&mut cuff, "notify/p-1").await,
        vec![rumqttc::SubscribeReasonCode::Success(
            rumqttc::QoS::AtLeastOnce
        )]
    );
    assert_eq!(
        suback(&mut cuff, "notify/#").await,
        vec![rumqttc::SubscribeReasonCode::Failure]
    );

    // A device provisioned over gRPC works at once, and is cut off when revoked.
    let mut devices = DevicesClient::new(channel(&server, Some(&admin)).await);
    let secret = devices
        .provision(v1::ProvisionDeviceRequest {
            id: "scale-2".into(),
            patient_id: "p-2".into(),
            secret: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut scale = mqtt_login(&server, "scale-2", Some(("scale-2", &secret)))
        .await
        .unwrap();
    scale.publish("vitals/p-2/weight", "80.5").await;
    // The violations of cuff-1 cost nobody else anything.
    cuff.publish("vitals/p-1/heart_rate", "73").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 3.0)
            .await,
        3.0,
        "p-1 twice, p-2 once; nothing from the denied topics"
    );
    devices
        .revoke(v1::RevokeDeviceRequest {
            id: "scale-2".into(),
        })
        .await
        .unwrap();
    assert!(
        scale.is_disconnected_within(Duration::from_secs(5)).await,
        "a revoked device's connection is closed"
    );
    let refused = mqtt_login(&server, "scale-2", Some(("scale-2", &secret)))
        .await
        .err()
        .expect("refused after revocation");
    assert!(refused.contains("NotAuthorized"));

    for (reason, at_least) in [
        ("bad_credentials", 3.0),
        ("missing_credentials", 1.0),
        ("publish_denied", 2.0),
        ("subscribe_denied", 1.0),
    ] {
        let series = format!("vigil_auth_failures_total{{reason=\"{reason}\"}}");
        assert!(server.metric(&series).await >= at_least, "{series}");
    }
    let audit = std::fs::read_to_string(server.dir.path().join("data/audit.log")).unwrap();
    assert!(audit.contains(r#""actor":"device cuff-1","action":"auth_failure","target":"vitals/p-2/heart_rate","detail":"publish_denied""#), "{audit}");
    for secret in [
        "cuff-one-secret-123",
        "not-the-secret-at-all",
        secret.as_str(),
    ] {
        assert!(!audit.contains(secret) && !server.stderr().contains(secret));
    }
}
