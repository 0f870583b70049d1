//! Durability with the real binary: `kill -9` at random points of a load of MQTT readings
//! and gRPC acknowledgements, restart on the same data directory, and nothing a client was
//! told is lost: alerts with their states, the event replay, the seq numbering, rule
//! changes made over gRPC.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::sync::Mutex;
use vigil_proto::v1;
use vigil_proto::v1::rules_client::RulesClient;

const CONFIG: &str = r#"
[[rules]]
id = "hr_high"
metric = "heart_rate"
above = 120
severity = "high"
"#;

/// What one client saw before the kill.
#[derive(Default)]
struct Seen {
    events: Vec<v1::AlertEvent>,
    /// Alerts whose Acknowledge call returned OK.
    acknowledged: Vec<String>,
}

/// Follows the event stream from the start, acknowledging every other raised alert, until
/// the stream breaks.
async fn follow_and_acknowledge(server: &Server, seen: Arc<Mutex<Seen>>) {
    let mut alerts = server.alerts().await;
    let mut stream = from_start(server).await;
    while let Ok(Some(event)) = stream.message().await {
        let raised = event.kind == v1::EventKind::Raised as i32;
        let id = event
            .alert
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default();
        let ack = raised && event.seq % 2 == 0;
        seen.lock().await.events.push(event);
        if ack {
            let request = v1::AcknowledgeRequest {
                disposition: String::new(),
                alert_id: id.clone(),
                by: "nurse-1".into(),
                note: "seen".into(),
            };
            // An error means already resolved by a reading, or the server is gone.
            if alerts.acknowledge(request).await.is_ok() {
                seen.lock().await.acknowledged.push(id);
            }
        }
    }
}

/// Readings for `round`: patients go above the threshold, some come back down.
async fn load(server: &Server, round: usize) {
    let mut device = server.device(&format!("load-{round}")).await;
    for i in 0.. {
        let patient = format!("r{round}-p{}", i % 40);
        let value = if i % 3 == 2 { 80.0 } else { 150.0 };
        device
            .publish(&format!("vitals/{patient}/heart_rate"), value.to_string())
            .await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_no_alert_acknowledgement_or_rule_change() {
    let mut server = Server::start(Some(CONFIG));
    let mut rules = RulesClient::connect(server.grpc_url()).await.unwrap();
    let spo2_low = v1::Rule {
        id: "spo2_low".into(),
        metric: "spo2".into(),
        below: Some(88.0),
        ..Default::default()
    };
    rules.put_rule(spo2_low).await.expect("put rule");
    let mut last_seq_before = 0;
    for round in 0..3 {
        let seen = Arc::new(Mutex::new(Seen::default()));
        // Run the load and the follower, then kill at a random point.
        let kill_after = Duration::from_millis(fastrand::u64(300..1500));
        tokio::select! {
            _ = follow_and_acknowledge(&server, seen.clone()) => panic!("stream ended before the kill"),
            _ = load(&server, round) => unreachable!("the load runs until the kill"),
            _ = tokio::time::sleep(kill_after) => {}
        }
        server.kill9();
        let seen = std::mem::take(&mut *seen.lock().await);
        assert!(
            seen.events.len() >= 2,
            "round {round}: the load raised alerts before the kill"
        );

        server = server.restart();
        let replay = replay_all(&server).await;
        // 1. Replay equals what the subscriber saw (and may hold events journaled after
        //    the last one it received).
        let by_seq: HashMap<u64, &v1::AlertEvent> = replay.iter().map(|e| (e.seq, e)).collect();
        for e in &seen.events {
            assert_eq!(
                by_seq.get(&e.seq),
                Some(&e),
                "round {round}: event {} changed",
                e.seq
            );
        }
        // 2. Every alert keeps the state its last journaled event gave it, and every
        //    acknowledgement that returned OK is durable.
        let mut last: HashMap<String, &v1::AlertEvent> = HashMap::new();
        for e in &replay {
            last.insert(e.alert.as_ref().unwrap().id.clone(), e);
        }
        let active = server
            .alerts()
            .await
            .list_active(v1::ListActiveRequest::default())
            .await
            .unwrap()
            .into_inner()
            .alerts;
        let open: HashMap<String, i32> = active.iter().map(|a| (a.id.clone(), a.state)).collect();
        for (id, e) in &last {
            let state = e.alert.as_ref().unwrap().state;
            if state == v1::AlertState::Resolved as i32 {
                assert!(
                    !open.contains_key(id),
                    "round {round}: resolved alert {id} is open"
                );
            } else {
                assert_eq!(
                    open.get(id),
                    Some(&state),
                    "round {round}: alert {id} lost its state"
                );
            }
        }
        assert_eq!(
            open.len(),
            last.values()
                .filter(|e| e.alert.as_ref().unwrap().state != v1::AlertState::Resolved as i32)
                .count()
        );
        for id in &seen.acknowledged {
            let state = last[id].alert.as_ref().unwrap().state;
            assert_ne!(
                state,
                v1::AlertState::Active as i32,
                "round {round}: acknowledgement of {id} lost"
            );
        }
        // The audit trail of an acknowledged alert survives too.
        if let Some(id) = seen.acknowledged.first() {
            let history = server
                .alerts()
                .await
                .history(v1::HistoryRequest {
                    alert_id: id.clone(),
                })
                .await
                .expect("history")
                .into_inner()
                .events;
            let kinds: Vec<(i32, &str)> = history.iter().map(|e| (e.kind, e.by.as_str())).collect();
            assert_eq!(
                kinds[..2],
                [
                    (v1::EventKind::Raised as i32, ""),
                    (v1::EventKind::Acknowledged as i32, "nurse-1")
                ],
                "round {round}"
            );
        }
        let unknown = server
            .alerts()
            .await
            .history(v1::HistoryRequest {
                alert_id: "no-such-alert".into(),
            })
            .await
            .expect_err("unknown alert");
        assert_eq!(unknown.code(), tonic::Code::NotFound);
        // 3. Numbering continues: never reused, never back.
        let max_before = replay.iter().map(|e| e.seq).max().unwrap_or(0);
        assert!(max_before > last_seq_before, "round {round}: seq moved on");
        let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
        server
            .device(&format!("after-{round}"))
            .await
            .publish(&format!("vitals/fresh-{round}/heart_rate"), "160")
            .await;
        let fresh = next_event(&mut stream).await;
        assert!(
            fresh.seq > max_before,
            "round {round}: seq {} after {max_before}",
            fresh.seq
        );
        last_seq_before = fresh.seq;
        // 4. The rule put over gRPC before the first kill is still in force.
        let listed = RulesClient::connect(server.grpc_url())
            .await
            .unwrap()
            .list_rules(v1::ListRulesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .rules;
        assert!(
            listed.iter().any(|r| r.id == "spo2_low"),
            "round {round}: rule change lost"
        );
        assert!(
            server.stderr().contains("journal recovered"),
            "{}",
            server.stderr()
        );
    }
}

/// A stream of every retained event, then live ones.
async fn from_start(server: &Server) -> tonic::Streaming<v1::AlertEvent> {
    subscribe(
        server,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await
}

/// Every retained event, from the start.
async fn replay_all(server: &Server) -> Vec<v1::AlertEvent> {
    let mut stream = from_start(server).await;
    let mut events = Vec::new();
    while let Ok(Some(Some(e))) = tokio::time::timeout(Duration::from_millis(500), stream.message())
        .await
        .map(|m| m.ok())
    {
        events.push(e);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_due_while_the_server_was_down_fires_on_start() {
    let config = r#"
[[care_teams]]
id = "ward"
escalate_after = "2s"
escalate_to = "charge"

[[care_teams]]
id = "charge"

[[patients]]
id = "p1"
care_team = "ward"
consent = true

[[rules]]
id = "hr_high"
metric = "heart_rate"
above = 120
"#;
    let mut server = Server::start(Some(config));
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    server
        .device("p1-watch")
        .await
        .publish("vitals/p1/heart_rate", "150")
        .await;
    let raised = next_event(&mut stream).await;
    assert_eq!(raised.kind, v1::EventKind::Raised as i32);
    server.kill9();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let server = server.restart();
    let mut charge = subscribe(
        &server,
        v1::SubscribeRequest {
            care_teams: vec!["charge".into()],
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    let escalated = next_event(&mut charge).await;
    assert_eq!(escalated.kind, v1::EventKind::Escalated as i32);
    assert!(escalated.seq > raised.seq);
    let alert = escalated.alert.unwrap();
    assert_eq!(alert.id, raised.alert.unwrap().id);
    assert_eq!(
        (alert.escalation_level, alert.escalated_to),
        (1, vec!["charge".to_string()])
    );
    assert!(
        escalated.note.contains("escalated to charge"),
        "{}",
        escalated.note
    );
    assert_eq!(
        server.metric("vigil_alerts_escalated_total").await,
        1.0,
        "counted once"
    );
}

/// A `for` rule needs history from before the restart to fire right after it.
const HELD: &str = r#"
[server]
snapshot_interval = "200ms"

[[rules]]
id = "hr_held"
metric = "heart_rate"
above = 120
for = "2m"
"#;

async fn reading_at(server: &Server, patient: &str, ts_ms: i64) {
    heart_rate_at(server, patient, ts_ms, 150).await;
}

async fn heart_rate_at(server: &Server, patient: &str, ts_ms: i64, value: u32) {
    server
        .device(&format!("{patient}-{ts_ms}"))
        .await
        .publish(
            &format!("vitals/{patient}/heart_rate"),
            format!(r#"{{"value": {value}, "ts": {ts_ms}}}"#),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_survive_a_graceful_restart_and_a_kill_after_a_snapshot() {
    let now = now_ms();
    let mut server = Server::start(Some(HELD));
    // Graceful: the shutdown snapshot keeps the first reading.
    reading_at(&server, "graceful", now - 150_000).await;
    server
        .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
        .await;
    let status = server.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "graceful exit");

    let mut server = server.restart();
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    reading_at(&server, "graceful", now).await;
    let raised = next_event(&mut stream).await;
    assert_eq!(
        raised.alert.unwrap().patient_id,
        "graceful",
        "history kept across SIGTERM"
    );
    assert!(
        server.stderr().contains("windows restored"),
        "{}",
        server.stderr()
    );

    // Crash: the periodic snapshot (every 200 ms) keeps the first reading before the kill.
    reading_at(&server, "crash", now - 150_000).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill9();
    let server = server.restart();
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    reading_at(&server, "crash", now).await;
    let raised = next_event(&mut stream).await;
    assert_eq!(
        raised.alert.unwrap().patient_id,
        "crash",
        "history kept across kill -9"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_sizes_its_final_snapshot_by_the_backlog_and_writes_it_all() {
    // HELD with snapshots only at shutdown: the final one writes everything.
    let final_only = HELD.replace(
        r#"snapshot_interval = "200ms""#,
        r#"snapshot_interval = "1h""#,
    );
    assert_ne!(final_only, HELD);
    let mut server = Server::start(Some(&final_only));
    // The snapshot at start (nothing to write) has run once the counter exists.
    server
        .wait_metric("vigil_window_snapshots_total", 1.0)
        .await;
    let before = server.metric("vigil_window_snapshots_total").await;
    let now = now_ms();
    let readings: Vec<v1::Reading> = (0..40)
        .flat_map(|p| {
            (0..25).map(move |i| v1::Reading {
                ts_ms: now - 60_000 + i * 1000,
                ..reading(&format!("backlog{p}"), "heart_rate", 70.0)
            })
        })
        .collect();
    let ack = server
        .ingest()
        .await
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted, 1000);
    assert_eq!(
        server.metric("vigil_window_snapshots_total").await,
        before,
        "no periodic snapshot ran: the final one has every sample to write"
    );
    let status = server.terminate(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "graceful exit");
    let log = server.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("writing the final window snapshot"))
        .unwrap_or_else(|| panic!("no final snapshot line: {log}"));
    assert!(line.contains("samples=1000"), "the backlog counted: {line}");
    assert!(log.contains("stopped"), "within its allowance: {log}");

    let server = server.restart();
    let restored = server.stderr();
    assert!(
        restored.contains("patients=40") && restored.contains("windows restored"),
        "every patient's windows back: {restored}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_survive_a_restart_and_snoozes_touch_one_alert() {
    let server = Server::start(Some(CONFIG));
    let mut alerts = server.alerts().await;
    let bad = alerts
        .silence(v1::SilenceRequest {
            ends_at_ms: now_ms() + 60_000,
            ..Default::default()
        })
        .await
        .expect_err("a silence without matchers");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let silence = alerts
        .silence(v1::SilenceRequest {
            patient_id: "quiet".into(),
            ends_at_ms: now_ms() + 600_000,
            reason: "clinic visit".into(),
            by: "nurse-2".into(),
            ..Default::default()
        })
        .await
        .expect("silence")
        .into_inner();
    let mut server = server;
    server.kill9();
    let server = server.restart();
    let mut alerts = server.alerts().await;
    let listed = alerts
        .list_silences(v1::ListSilencesRequest {})
        .await
        .unwrap()
        .into_inner()
        .silences;
    assert_eq!(
        listed,
        vec![silence.clone()],
        "the silence survived kill -9"
    );

    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut device = server.device("quiet-and-loud").await;
    device.publish("vitals/quiet/heart_rate", "150").await;
    device.publish("vitals/loud/heart_rate", "150").await;
    let first = next_event(&mut stream).await;
    assert_eq!(
        first.alert.as_ref().unwrap().patient_id,
        "loud",
        "quiet is held back"
    );
    assert_eq!(server.metric("vigil_active_alerts").await, 2.0);

    let deleted = alerts
        .delete_silence(v1::DeleteSilenceRequest {
            id: silence.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.id, silence.id);
    let released = next_event(&mut stream).await;
    let quiet = released.alert.unwrap();
    assert_eq!(
        (quiet.patient_id.as_str(), released.kind),
        ("quiet", v1::EventKind::Raised as i32)
    );
    assert!(released.note.contains("deleted"), "{}", released.note);

    let snoozed = alerts
        .snooze(v1::SnoozeRequest {
            alert_id: quiet.id.clone(),
            duration_ms: 900_000,
            by: "nurse-2".into(),
            note: "with the patient".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(snoozed.snoozed_until_ms > now_ms());
    let event = next_event(&mut stream).await;
    assert_eq!(
        (event.kind, event.by.as_str()),
        (v1::EventKind::Snoozed as i32, "nurse-2")
    );
    let active = alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    let loud = active.iter().find(|a| a.patient_id == "loud").unwrap();
    assert_eq!(loud.snoozed_until_ms, 0, "the other alert is not snoozed");
    let missing = alerts
        .delete_silence(v1::DeleteSilenceRequest { id: silence.id })
        .await
        .expect_err("already deleted");
    assert_eq!(missing.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_write_is_set_aside_and_everything_before_it_kept() {
    let config = format!("[server]\nsnapshot_interval = \"1h\"\n{CONFIG}");
    let mut server = Server::start(Some(&config));
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut device = server.device("torn").await;
    // One at a time: an event reaches the subscriber only once durable, so waiting for it
    // puts each alert in its own journal write (group commit would batch them otherwise).
    let mut seen = Vec::new();
    for p in ["a", "b", "c"] {
        device
            .publish(&format!("vitals/{p}/heart_rate"), "150")
            .await;
        seen.push(next_event(&mut stream).await);
    }
    server.kill9();

    // Power lost in the middle of the last write: cut the log inside its last batch.
    let journal = server.dir.path().join("data").join("journal");
    let log = std::fs::read_dir(&journal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jnl"))
        .expect("the store's log file");
    let bytes = std::fs::read(&log).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len((end - 10) as u64)
        .unwrap();

    let server = server.restart();
    let replay = replay_all(&server).await;
    assert_eq!(replay, seen[..2], "everything before the damaged write");
    let kept: Vec<std::path::PathBuf> = std::fs::read_dir(server.dir.path().join("data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("journal.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "the damaged tail is kept beside the journal");
    let aside = std::fs::read(&kept[0]).unwrap();
    assert!(!aside.is_empty());
    let log_text = server.stderr();
    assert!(log_text.contains("set aside"), "{log_text}");
    assert!(
        log_text.contains(&format!("bytes={}", aside.len())),
        "{log_text}"
    );
    // And the server goes on: the lost alert's condition raises again on the next reading.
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    server
        .device("after")
        .await
        .publish("vitals/c/heart_rate", "150")
        .await;
    let again = next_event(&mut stream).await;
    assert_eq!(again.alert.unwrap().patient_id, "c");
}

/// After a patient's first (whole) snapshot, the periodic ones hold only the samples added
/// since; a restart after a kill restores the whole snapshot and those deltas together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_deltas_written_after_a_whole_snapshot_survive_a_kill() {
    let now = now_ms();
    let mut server = Server::start(Some(HELD));
    const WHOLE: &str = "vigil_window_snapshot_bytes_total{kind=\"whole\"}";
    const DELTA: &str = "vigil_window_snapshot_bytes_total{kind=\"delta\"}";
    // Normal at -5 min: in the whole snapshot.
    heart_rate_at(&server, "delta", now - 300_000, 80).await;
    assert!(
        server.wait_metric(WHOLE, 1.0).await > 0.0,
        "a whole snapshot"
    );
    let whole = server.metric(WHOLE).await;
    // High from -2.5 min: only in a delta. Without it the run would start at the next
    // reading and `for = "2m"` would not be met.
    heart_rate_at(&server, "delta", now - 150_000, 150).await;
    assert!(server.wait_metric(DELTA, 1.0).await > 0.0, "a delta");
    assert_eq!(
        server.metric(WHOLE).await,
        whole,
        "the second snapshot wrote no whole one"
    );
    server.kill9();
    let server = server.restart();
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    heart_rate_at(&server, "delta", now, 150).await;
    let raised = next_event(&mut stream).await;
    let alert = raised.alert.unwrap();
    assert_eq!(
        (alert.patient_id.as_str(), alert.rule_id.as_str()),
        ("delta", "hr_held"),
        "the delta's sample was restored"
    );
}

/// Makes a directory tree immutable (`chattr +i`, root or CAP_LINUX_IMMUTABLE) and undoes
/// it when dropped, so the test's temporary directory can still be removed.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: std::path::PathBuf) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .args(["-R", "+i"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Immutable(path);
        ok.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .args(["-R", "-i"])
            .arg(&self.0)
            .status();
    }
}

/// A snapshot store that refuses writes: each failure is counted (for the operator's
/// VigilWindowSnapshotsFailing rule) and logged, and alerts still flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_window_snapshots_are_counted_and_alerts_still_flow() {
    let now = now_ms();
    let server = Server::start(Some(HELD));
    heart_rate_at(&server, "disk", now - 300_000, 80).await;
    server
        .wait_metric("vigil_window_snapshot_bytes_total{kind=\"whole\"}", 1.0)
        .await;
    let Some(_immutable) = Immutable::set(server.dir.path().join("data/journal.windows")) else {
        eprintln!("skipped: chattr +i is not permitted here");
        return;
    };
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    heart_rate_at(&server, "disk", now - 150_000, 150).await;
    let failures = server
        .wait_metric("vigil_window_snapshot_failures_total", 1.0)
        .await;
    assert!(failures >= 1.0, "{}", server.stderr());
    assert!(
        server.stderr().contains("window snapshot failed"),
        "{}",
        server.stderr()
    );
    heart_rate_at(&server, "disk", now, 150).await;
    let raised = next_event(&mut stream).await;
    assert_eq!(
        raised.alert.unwrap().patient_id,
        "disk",
        "alerts unaffected"
    );
}

/// Consent withdrawn in the configuration file: at the next start the patient's stored
/// windows are deleted, so consent given again later starts from nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_consent_in_the_file_deletes_stored_windows_at_start() {
    let patients = |gone_consents: bool| {
        format!(
            "{HELD}\n[[patients]]\nid = \"keep\"\nconsent = true\n\n[[patients]]\nid = \"gone\"\nconsent = {gone_consents}\n"
        )
    };
    let now = now_ms();
    let mut server = Server::start(Some(&patients(true)));
    reading_at(&server, "keep", now - 150_000).await;
    reading_at(&server, "gone", now - 150_000).await;
    server
        .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 2.0)
        .await;
    assert!(server
        .terminate(Duration::from_secs(5))
        .is_some_and(|s| s.success()));

    std::fs::write(server.dir.path().join("vigil.toml"), patients(false)).unwrap();
    let mut server = server.restart();
    assert!(
        server.stderr().contains(
            "deleted the stored windows of patients not enrolled or without consent patients=1"
        ),
        "{}",
        server.stderr()
    );
    assert!(server
        .terminate(Duration::from_secs(5))
        .is_some_and(|s| s.success()));

    std::fs::write(server.dir.path().join("vigil.toml"), patients(true)).unwrap();
    let server = server.restart();
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    reading_at(&server, "gone", now).await;
    reading_at(&server, "keep", now).await;
    let raised = next_event(&mut stream).await;
    assert_eq!(
        raised.alert.unwrap().patient_id,
        "keep",
        "the consenting patient's history survived; the other's was deleted"
    );
    let more = tokio::time::timeout(Duration::from_millis(500), stream.message()).await;
    assert!(
        more.is_err(),
        "no alert for the patient whose windows were deleted: {more:?}"
    );
}
