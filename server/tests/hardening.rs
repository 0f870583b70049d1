//! The server under attack, with authentication on: one device's credential against the
//! others (sessions, client-id takeover), login floods without credentials (memory, the
//! Argon2 pool, the per-address throttle), log and audit growth from client-controlled
//! strings, health data at rest, care-team limits and accountability, and what clients can
//! make the server hold (subscriptions, duplicate state, rejections, ids). The attacks
//! themselves live in `attacks/`, so they can be rerun against a deployment.

mod attacks;
mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use attacks::{Hello, ACCEPTED, IDENTIFIER_REJECTED, NOT_AUTHORIZED, SERVER_UNAVAILABLE};
use common::*;
use tonic::Code;
use vigil_proto::v1;
use vigil_proto::v1::alerts_client::AlertsClient;
use vigil_proto::v1::devices_client::DevicesClient;

/// Credentials of the guarded ward: two devices with generated secrets (an attacker's and
/// a victim's), one with a chosen secret (Argon2), and care-team tokens.
struct Ward {
    server: Server,
    /// Secret of `cuff-1` (patient p-1), the credential an attacker read off a cuff.
    attacker: String,
    /// Secret of `cuff-2` (patient p-2).
    victim: String,
    /// The care team's token (`care_team:cardiology`).
    nurse: String,
    /// A wall display's token (`viewer:cardiology`).
    wall: String,
    admin: String,
}

/// A server with authentication on, its devices, patients and tokens, and `auth_extra`
/// lines in its `[auth]` section.
async fn guarded_ward(auth_extra: &str) -> Ward {
    let (cuff1, attacker) = device_add_generated("cuff-1", "p-1").await;
    let (cuff2, victim) = device_add_generated("cuff-2", "p-2").await;
    let scale = device_add("scale-3", "p-3", "chosen-by-a-person-3").await;
    let (nurse, nurse_entry) = token_create("cardio-app", "care_team:cardiology", &[]).await;
    let (wall, wall_entry) = token_create("ward-display", "viewer:cardiology", &[]).await;
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let mut patients = String::new();
    for p in ["p-1", "p-2", "p-3"] {
        patients.push_str(&format!(
            "[[patients]]\nid = \"{p}\"\ncare_team = \"cardiology\"\nconsent = true\n\n"
        ));
    }
    let config = format!(
        "[auth]\nenabled = true\n{auth_extra}\n\n{cuff1}\n{cuff2}\n{scale}\n{nurse_entry}\n\n\
         {wall_entry}\n\n{admin_entry}\n\n[[care_teams]]\nid = \"cardiology\"\n\n{patients}"
    );
    Ward {
        server: Server::start(Some(&config)),
        attacker,
        victim,
        nurse,
        wall,
        admin,
    }
}

/// `n` loopback addresses from 127.0.0.`first` on: each stands for another host.
fn loopback_hosts(first: u8, n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::from([127, 0, 0, first + u8::try_from(i).unwrap()]))
        .collect()
}

/// A device logged in with rumqttc, publishing with QoS 1.
async fn device(server: &Server, client_id: &str, user: &str, secret: &str) -> Device {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_credentials(user, secret);
    connack(options).await.expect("the device logs in")
}

/// The care team's alert stream.
async fn nurse_stream(ward: &Ward) -> tonic::Streaming<v1::AlertEvent> {
    AlertsClient::new(channel(&ward.server, Some(&ward.nurse)).await)
        .subscribe(v1::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner()
}

fn count(codes: &[u8], code: u8) -> usize {
    codes.iter().filter(|c| **c == code).count()
}

#[tokio::test]
async fn one_device_credential_cannot_crowd_out_the_others() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let (codes, open) = attacks::session_flood(server.mqtt, "cuff-1", &ward.attacker, 50).await;
    assert_eq!(
        count(&codes, ACCEPTED),
        4,
        "max_sessions_per_device: {codes:?}"
    );
    assert_eq!(count(&codes, SERVER_UNAVAILABLE), 46, "{codes:?}");

    // Meanwhile another device connects, publishes, and its alert reaches the care team.
    let mut alerts = nurse_stream(&ward).await;
    let mut cuff2 = device(server, "cuff-2", "cuff-2", &ward.victim).await;
    cuff2.publish("vitals/p-2/systolic_bp", "201").await;
    let raised = next_event(&mut alerts).await.alert.unwrap();
    assert_eq!(raised.patient_id, "p-2");

    let refused = r#"vigil_mqtt_connects_refused_total{reason="session_limit"}"#;
    assert_eq!(server.metric(refused).await, 46.0);
    let failures = r#"vigil_auth_failures_total{reason="session_limit"}"#;
    assert_eq!(server.metric(failures).await, 46.0);

    // Closed sessions give their places back.
    drop(open);
    let hello = Hello::device("flood-again", "cuff-1", &ward.attacker);
    eventually(Duration::from_secs(10), "places released", || async {
        let (_, code) = attacks::connect(server.mqtt, None, &hello).await.unwrap();
        (code == ACCEPTED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_client_id_cannot_be_taken_over_by_another_device() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let own = Hello::device("cuff-2-app", "cuff-2", &ward.victim);
    let (mut holder, code) = attacks::connect(server.mqtt, None, &own).await.unwrap();
    assert_eq!(code, ACCEPTED);

    let stolen = Hello::device("cuff-2-app", "cuff-1", &ward.attacker);
    let (_, code) = attacks::connect(server.mqtt, None, &stolen).await.unwrap();
    assert_eq!(code, IDENTIFIER_REJECTED, "another identity's client id");
    assert!(attacks::answers_ping(&mut holder).await, "the holder stays");

    // The same device may take its own client id over, as MQTT requires.
    let (mut newer, code) = attacks::connect(server.mqtt, None, &own).await.unwrap();
    assert_eq!(code, ACCEPTED);
    assert!(attacks::is_closed_within(&mut holder, Duration::from_secs(10)).await);
    assert!(attacks::answers_ping(&mut newer).await);

    let taken = r#"vigil_mqtt_connects_refused_total{reason="client_id_taken"}"#;
    assert_eq!(server.metric(taken).await, 1.0);
    assert_eq!(
        server.metric("vigil_mqtt_session_takeovers_total").await,
        1.0
    );
    let audit = std::fs::read_to_string(server.data().join("audit.log")).unwrap();
    assert!(
        audit.contains(r#""actor":"cuff-2","action":"mqtt_takeover","target":"cuff-2-app""#),
        "{audit}"
    );
    assert!(audit
        .contains(r#""action":"auth_failure","target":"cuff-2-app","detail":"client_id_taken""#));
}

#[tokio::test]
async fn a_wrong_password_flood_costs_bounded_memory_and_delays_no_alert() {
    // Two Argon2 workers and four waiting: 200 guesses at once overflow the queue.
    let ward = guarded_ward("password_check_queue = 4").await;
    let server = &ward.server;
    let mut alerts = nurse_stream(&ward).await;
    let mut cuff2 = device(server, "cuff-2", "cuff-2", &ward.victim).await;
    let before = attacks::rss_kib(server.pid()).unwrap();

    // 200 hosts at once guess the chosen (Argon2) secret of scale-3.
    let hosts = loopback_hosts(2, 200);
    let storm = attacks::wrong_password_storm(server.mqtt, "scale-3", &hosts);
    let storm = async {
        let codes = storm.await;
        cuff2.publish("vitals/p-2/systolic_bp", "201").await;
        codes
    };
    let (codes, peak) = attacks::peak_rss_during(server.pid(), storm).await;
    let raised = next_event(&mut alerts).await.alert.unwrap();
    assert_eq!(raised.patient_id, "p-2", "the device's alert arrives");

    assert_eq!(codes.len(), 200);
    assert_eq!(
        count(&codes, NOT_AUTHORIZED) + count(&codes, SERVER_UNAVAILABLE),
        200,
        "{codes:?}"
    );
    assert!(count(&codes, NOT_AUTHORIZED) >= 2, "{codes:?}");
    assert!(
        count(&codes, SERVER_UNAVAILABLE) > 0,
        "the queue is bounded: {codes:?}"
    );
    let busy = r#"vigil_mqtt_connects_refused_total{reason="checks_busy"}"#;
    assert_eq!(
        server.metric(busy).await as usize,
        count(&codes, SERVER_UNAVAILABLE)
    );
    // Two Argon2 workers hold 19 MiB each; unbounded, 200 checks held 3.8 GB.
    let grew_mib = peak.saturating_sub(before) / 1024;
    assert!(
        grew_mib < 160,
        "RSS grew by {grew_mib} MiB during the flood"
    );
    eprintln!("RSS {} MiB before, peak {} MiB", before / 1024, peak / 1024);
}

#[tokio::test]
async fn an_address_that_keeps_failing_waits_and_other_addresses_do_not() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let guesser: IpAddr = [127, 0, 0, 250].into();
    let wrong = Hello::device("g", "cuff-1", "not-the-secret-0000");
    for _ in 0..4 {
        let (_, code) = attacks::connect(server.mqtt, Some(guesser), &wrong)
            .await
            .unwrap();
        assert_eq!(code, NOT_AUTHORIZED);
    }
    // Within the wait after the fourth failure even the right secret is not checked.
    let right = Hello::device("g", "cuff-1", &ward.attacker);
    let (_, code) = attacks::connect(server.mqtt, Some(guesser), &right)
        .await
        .unwrap();
    assert_eq!(code, SERVER_UNAVAILABLE);
    let throttled = r#"vigil_mqtt_connects_refused_total{reason="throttled"}"#;
    assert_eq!(server.metric(throttled).await, 1.0);
    // Another address is not concerned, and the device id is not locked out.
    let (_, code) = attacks::connect(server.mqtt, None, &right).await.unwrap();
    assert_eq!(code, ACCEPTED);
}

#[tokio::test]
async fn long_usernames_and_topics_barely_grow_the_logs() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let audit = server.data().join("audit.log");
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let stderr = server.dir.path().join("stderr.log");
    let (audit_before, log_before) = (size(&audit), size(&stderr));

    let codes = attacks::long_username_connects(server.mqtt, 60_000, &loopback_hosts(2, 100)).await;
    assert_eq!(count(&codes, NOT_AUTHORIZED), 100, "{codes:?}");
    let hello = Hello::device("cuff-1", "cuff-1", &ward.attacker);
    let (mut cuff, code) = attacks::connect(server.mqtt, None, &hello).await.unwrap();
    assert_eq!(code, ACCEPTED);
    attacks::denied_long_topics(&mut cuff, 100, 60_000)
        .await
        .unwrap();
    let denied = r#"vigil_auth_failures_total{reason="publish_denied"}"#;
    assert_eq!(server.wait_metric(denied, 100.0).await, 100.0);

    let (audit_grew, log_grew) = (size(&audit) - audit_before, size(&stderr) - log_before);
    eprintln!("audit +{audit_grew} B, log +{log_grew} B for 12 MB of names and topics");
    assert!(audit_grew < 1 << 20, "audit grew {audit_grew} B");
    assert!(log_grew < 1 << 20, "log grew {log_grew} B");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.lines().all(|l| l.len() < 1024), "every entry clipped");
    assert!(text.contains(" bytes)"), "clipped names say their length");
}

/// Every file and directory under `dir`, with its mode.
fn modes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        found.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            found.extend(modes(&path));
        }
    }
    found
}

#[tokio::test]
async fn health_data_on_disk_is_readable_by_the_service_alone() {
    let server = Server::start(Some("[server]\nsnapshot_interval = \"1s\"\n"));
    let mut cuff = server.device("cuff-1").await;
    cuff.publish("vitals/p-1/systolic_bp", "201").await;
    let raised = "vigil_alerts_raised_total{severity=\"high\"}";
    assert_eq!(server.wait_metric(raised, 1.0).await, 1.0);
    let alert = server
        .alerts()
        .await
        .list_active(v1::ListActiveRequest::default())
        .await;
    let id = alert.unwrap().into_inner().alerts[0].id.clone();
    server
        .alerts()
        .await
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: id,
            by: "nurse-1".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    let snapshots = "vigil_window_snapshot_bytes_total{kind=\"whole\"}";
    assert!(
        server.wait_metric(snapshots, 1.0).await >= 1.0,
        "a snapshot was written"
    );

    let data = server.data();
    let dir_mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    let all = modes(&data);
    assert!(all.iter().any(|(p, _)| p.ends_with("audit.log")));
    assert!(all.iter().any(|(p, _)| p.ends_with("journal")));
    let shared: Vec<_> = all.iter().filter(|(_, m)| m & 0o077 != 0).collect();
    assert!(shared.is_empty(), "readable by group or others: {shared:?}");
}

#[test]
fn a_data_directory_others_can_read_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("refused.log");
    let mut refused = std::process::Command::new(VIGIL)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(LOOPBACK_PORTS)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = refused.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = refused.kill();
            panic!("vigil started on a shared data directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("mode 755") && stderr.contains("chmod -R go="),
        "{stderr}"
    );
    assert!(!data.join("ports.json").exists());

    let mut lab = std::process::Command::new(VIGIL)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(LOOPBACK_PORTS)
        .arg("--allow-shared-data-dir")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !data.join("ports.json").exists() {
        assert!(lab.try_wait().unwrap().is_none(), "exited although allowed");
        assert!(Instant::now() < deadline, "no ports.json");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = lab.kill();
    let _ = lab.wait();
}

#[tokio::test]
async fn care_teams_mute_within_limits_and_are_named_by_their_token() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let mut nurse = AlertsClient::new(channel(server, Some(&ward.nurse)).await);
    let forever = nurse
        .silence(v1::SilenceRequest {
            patient_id: "p-2".into(),
            ends_at_ms: i64::MAX,
            reason: "quiet please".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(forever.code(), Code::InvalidArgument);
    assert!(
        forever.message().contains("max_silence"),
        "{}",
        forever.message()
    );
    let hour = nurse
        .silence(v1::SilenceRequest {
            patient_id: "p-3".into(),
            ends_at_ms: now_ms() + 3_600_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hour.by, "cardio-app");

    let mut alerts = nurse_stream(&ward).await;
    let mut cuff2 = device(server, "cuff-2", "cuff-2", &ward.victim).await;
    cuff2.publish("vitals/p-2/systolic_bp", "201").await;
    let alert = next_event(&mut alerts).await.alert.unwrap();
    let snooze = nurse
        .snooze(v1::SnoozeRequest {
            alert_id: alert.id.clone(),
            duration_ms: u64::MAX,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(snooze.code(), Code::InvalidArgument, "{snooze:?}");

    // A wall display reads, and may not act.
    let mut wall = AlertsClient::new(channel(server, Some(&ward.wall)).await);
    let listed = wall
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.alerts.len(), 1);
    let refused = wall
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: alert.id.clone(),
            by: "wall".into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    nurse
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: alert.id.clone(),
            by: "someone else".into(),
            note: "called the patient".into(),
        })
        .await
        .unwrap();
    let history = wall
        .history(v1::HistoryRequest {
            alert_id: alert.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ack = history
        .events
        .iter()
        .find(|e| e.kind == v1::EventKind::Acknowledged as i32)
        .expect("acknowledged");
    assert_eq!(ack.by, "cardio-app", "the token, not the name typed in");
    assert_eq!(ack.note, "stated by: someone else; called the patient");
}

#[tokio::test]
async fn closed_subscribe_streams_are_released_at_once() {
    let server = Server::start(None);
    let baseline = server.metric("vigil_alert_subscribers").await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let client = server.alerts().await;
        for _ in 0..100 {
            let stream = client
                .clone()
                .subscribe(v1::SubscribeRequest {
                    patient_ids: vec!["nobody".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            streams.push(stream);
        }
    }
    let open = server
        .wait_metric("vigil_alert_subscribers", baseline + 2000.0)
        .await;
    assert_eq!(open, baseline + 2000.0);
    drop(streams);
    let closed = Instant::now();
    eventually(
        Duration::from_secs(10),
        "subscribers back to the baseline",
        || async { (server.metric("vigil_alert_subscribers").await == baseline).then_some(()) },
    )
    .await;
    eprintln!("2000 subscribers released in {:?}", closed.elapsed());
}

#[tokio::test]
async fn subscriptions_beyond_the_bound_are_refused_until_one_closes() {
    let server = Server::start(Some("[server]\nmax_subscribers = 3\n"));
    let client = server.alerts().await;
    let open = |mut client: AlertsClient<tonic::transport::Channel>| async move {
        client.subscribe(v1::SubscribeRequest::default()).await
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open(client.clone()).await.unwrap().into_inner());
    }
    let refused = open(client.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(refused.message().contains("max_subscribers"));
    streams.pop();
    eventually(Duration::from_secs(10), "a place freed", || async {
        open(client.clone()).await.ok()
    })
    .await;
}

#[tokio::test]
async fn duplicate_state_and_rejection_lists_stay_bounded() {
    let server = Server::start(Some("[server]\ndedup_devices = 10000\n"));
    let mut ingest = server.ingest().await;
    // 100 000 devices over 10 000 patients, each sending seq 1.
    for batch in 0..100 {
        let readings = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                v1::Reading {
                    patient_id: format!("p-{}", n % 10_000),
                    device_id: format!("dev-{n}"),
                    seq: 1,
                    ..reading("", "heart_rate", 70.0)
                }
            })
            .collect();
        let ack = ingest
            .publish_batch(v1::ReadingBatch { readings })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ack.accepted, 1000);
    }
    assert!(server.metric("vigil_dedup_devices").await <= 10_000.0);
    let evicted = r#"vigil_dedup_evictions_total{reason="total_limit"}"#;
    assert!(server.metric(evicted).await >= 90_000.0);

    // A stream of 3 000 bad readings: every one counted, the first 1 000 listed.
    let bad = || v1::ReadingBatch {
        readings: (0..1000)
            .map(|_| reading("p-1", "no_such_metric", 1.0))
            .collect(),
    };
    let ack = ingest
        .publish(tokio_stream::iter(vec![bad(), bad(), bad()]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.rejected, 3000);
    assert_eq!(ack.rejections.len(), 1000);
    assert_eq!(ack.rejections[999].index, 999);
    assert_eq!(ack.rejected_by_reason.get("unknown_metric"), Some(&3000));
}

#[tokio::test]
async fn oversized_and_malformed_ids_are_refused_at_the_edge() {
    let ward = guarded_ward("").await;
    let server = &ward.server;
    let mut nurse = AlertsClient::new(channel(server, Some(&ward.nurse)).await);
    let long = "a".repeat(70_000);
    let err = nurse
        .history(v1::HistoryRequest {
            alert_id: long.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("at most 128"));
    let err = nurse
        .list_active(v1::ListActiveRequest {
            patient_ids: vec![long],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut devices = DevicesClient::new(channel(server, Some(&ward.admin)).await);
    let err = devices
        .provision(v1::ProvisionDeviceRequest {
            id: "cuff\0evil".into(),
            patient_id: "p-1".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = devices
        .provision(v1::ProvisionDeviceRequest {
            id: "cuff-9".into(),
            patient_id: "p-not-enrolled".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("not enrolled"));
}

/// The listen backlog the kernel holds for the listener on `port` (`ss`'s Send-Q).
fn listen_backlog(port: u16) -> Option<u32> {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn listeners_queue_a_burst_of_connections() {
    if listen_backlog(1).is_none() && std::process::Command::new("ss").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install iproute2 (ss)"
        );
        eprintln!("ss not installed; skipping (apt-get install iproute2)");
        return;
    }
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .map_or(4096, |s| s.trim().parse().unwrap_or(4096));
    let server = Server::start(Some("[mqtt]\nlisten_backlog = 300\n"));
    assert_eq!(listen_backlog(server.mqtt.port()), Some(300.min(somaxconn)));
    assert_eq!(
        listen_backlog(server.grpc.port()),
        Some(1024.min(somaxconn))
    );
    assert_eq!(
        listen_backlog(server.metrics.port()),
        Some(1024.min(somaxconn))
    );
}

#[tokio::test]
async fn a_full_disk_loses_no_live_alert_and_is_reported() {
    let server = Server::start_on_small_disk(None, 24);
    let mut alerts = subscribe(&server, v1::SubscribeRequest::default()).await;
    // Fill the data directory's file system.
    let filler = server.data().join("filler");
    let chunk = vec![0u8; 1 << 20];
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
    }
    // The journal's file has room in the page it is writing: alert after alert until a
    // write needs a page the file system no longer has. Every alert is delivered live.
    let mut cuff = server.device("cuff-1").await;
    let mut alert = None;
    let mut alerts_raised = 0;
    for patient in 0..500 {
        alerts_raised += 1;
        cuff.publish(&format!("vitals/p-{patient}/systolic_bp"), "201")
            .await;
        let event = next_event(&mut alerts).await;
        assert_eq!(event.kind, v1::EventKind::Raised as i32, "delivered live");
        alert = event.alert;
        if server.metric("vigil_journal_write_errors_total").await >= 1.0 {
            break;
        }
    }
    let errors = server.metric("vigil_journal_write_errors_total").await;
    assert!(errors >= 1.0, "the failed journal write is counted");
    assert!(server.stderr().contains("journal write failed"));
    eprintln!("{alerts_raised} alerts delivered live, {errors} not journaled");
    let alert = alert.unwrap();
    server
        .alerts()
        .await
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: alert.id,
            by: "nurse-1".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    let acked = next_event(&mut alerts).await;
    assert_eq!(acked.kind, v1::EventKind::Acknowledged as i32);
    let audit = server
        .wait_metric("vigil_audit_write_errors_total", 1.0)
        .await;
    assert!(audit >= 1.0, "the failed audit write is counted");
    // Still serving, nothing panicked.
    let mut cuff2 = server.device("cuff-2").await;
    cuff2.publish("vitals/p-2/heart_rate", "70").await;
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}
