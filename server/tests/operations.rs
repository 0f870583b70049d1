//! Operating the real binary: metrics, `rules check`, the example configuration, graceful
//! shutdown, the demo, `alerts tail`, `simulate` and the alert writer's CPU priority.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use vigil_proto::v1;

#[tokio::test]
async fn metrics_endpoint_exposes_the_contract_metrics() {
    let server = Server::start(None);
    let mut ingest = server.ingest().await;
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![
                reading("p1", "systolic_bp", 200.0),
                reading("p1", "pulse", 1.0),
            ],
        })
        .await
        .unwrap();
    let mut subscription = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    next_event(&mut subscription).await;
    let text = server.scrape().await;
    for series in [
        "vigil_readings_ingested_total{source=\"grpc\"} 1",
        "vigil_readings_ingested_total{source=\"mqtt\"} 0",
        "vigil_readings_rejected_total{reason=\"unknown_metric\"} 1",
        "vigil_readings_rejected_total{reason=\"duplicate\"} 0",
        "vigil_alerts_raised_total{severity=\"high\"} 1",
        "vigil_active_alerts 1",
        "vigil_patients_tracked 1",
        "vigil_alert_subscribers 1",
        "vigil_alert_latency_seconds_count 1",
        "vigil_alert_raise_latency_seconds_count 1",
        "vigil_journal_write_seconds_count 1",
    ] {
        assert!(
            text.lines().any(|l| l == series),
            "missing `{series}` in:\n{text}"
        );
    }
    for bucket in ["0.00001", "1"] {
        let le = format!("vigil_alert_latency_seconds_bucket{{le=\"{bucket}\"}}");
        assert!(text.contains(&le), "missing {le}");
    }
    assert!(text.contains("# HELP vigil_readings_rejected_total"));
    // promtool, where installed (CI installs it), checks the exposition format for real.
    if let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Lint warnings (exit 3) are style; an unparsable exposition is exit 1.
        assert_ne!(
            out.status.code(),
            Some(1),
            "promtool rejected the exposition: {stderr}"
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install prometheus (promtool)"
        );
    }
}

#[test]
fn rules_check_reports_every_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[server]
mqtt_addr = "127.0.0.1:1883"
grcp_addr = "127.0.0.1:50051"

[[rules]]
id = "tachy"
metric = "heart_rate"
above = 120
for = "30 seconds please"

[[rules]]
id = "low"
metric = "oxygen"
below = 90
severity = "critical"
"#,
    )
    .unwrap();
    let out = Command::new(VIGIL)
        .args(["rules", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    for want in [
        format!("{p}:3: unknown field `grcp_addr`"),
        format!("{p}:9: "),
        format!("{p}:11: rule 'low': unknown metric 'oxygen'"),
        format!("{p}:11: rule 'low': `severity` 'critical' is not one of low, medium, high"),
    ] {
        assert!(stderr.contains(&want), "missing `{want}` in:\n{stderr}");
    }
}

#[test]
fn rules_diff_shows_what_a_new_rule_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let before = dir.path().join("before.toml");
    let after = dir.path().join("after.toml");
    std::fs::write(
        &before,
        "[[rules]]\nid = \"tachy\"\nmetric = \"heart_rate\"\nabove = 120\nfor = \"30s\"\n\n\
         [[rules]]\nid = \"old\"\nmetric = \"spo2\"\nbelow = 90\n",
    )
    .unwrap();
    std::fs::write(
        &after,
        "[[rules]]\nid = \"tachy\"\nmetric = \"heart_rate\"\nabove = 130\nfor = \"1m\"\n\n\
         [[rules]]\nid = \"low_spo2\"\nmetric = \"spo2\"\nbelow = 88\nseverity = \"high\"\n",
    )
    .unwrap();
    let diff = |a: &std::path::Path, b: &std::path::Path| {
        Command::new(VIGIL)
            .args(["rules", "diff"])
            .arg(a)
            .arg(b)
            .output()
            .unwrap()
    };
    let out = diff(&before, &after);
    assert_eq!(out.status.code(), Some(1), "changes: exit 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "+ low_spo2 (threshold spo2)",
        "- old",
        "~ tachy: above 120.0 -> 130.0",
        "~ tachy: for \"30s\" -> \"1m\"",
        "1 added, 1 removed, 1 changed, 0 unchanged",
    ] {
        assert!(stdout.contains(want), "missing `{want}` in:\n{stdout}");
    }
    let same = diff(&after, &after);
    assert_eq!(same.status.code(), Some(0), "no change: exit 0");
    // A file without [[rules]] stands for the built-in set.
    let none = dir.path().join("none.toml");
    std::fs::write(&none, "[server]\n").unwrap();
    let out = diff(&none, &after);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("- news2_high"), "{stdout}");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[[rules]\n").unwrap();
    assert_eq!(
        diff(&broken, &after).status.code(),
        Some(2),
        "unreadable: exit 2"
    );
}

#[test]
fn deploy_example_configuration_is_valid() {
    let path = repo_root().join("deploy/vigil.toml");
    let out = Command::new(VIGIL)
        .args(["rules", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(
        stdout.contains("rule set hash ")
            && stdout.contains(", approved by Clinical safety officer"),
        "{stdout}"
    );
}

#[tokio::test]
async fn flags_override_the_configuration_file() {
    // The file asks for port 1 (not bindable here); the test harness's flags say port 0.
    let server = Server::start(Some(
        "[server]\nmqtt_addr = \"127.0.0.1:1\"\ngrpc_addr = \"127.0.0.1:1\"\n",
    ));
    assert_ne!(server.mqtt.port(), 1);
    assert_ne!(server.grpc.port(), 1);
    let mut ingest = server.ingest().await;
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p1", "spo2", 97.0)],
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero_within_five_seconds() {
    let mut server = Server::start(None);
    let mut dev = server.device("d").await;
    for i in 0..200 {
        dev.publish(&format!("vitals/p{i}/heart_rate"), "70").await;
    }
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let started = Instant::now();
    let status = server
        .terminate(Duration::from_secs(5))
        .expect("did not exit within 5 s");
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Open streams end with UNAVAILABLE naming where to resume.
    let end = stream.message().await;
    match end {
        Err(s) => assert!(s.message().contains("after_seq"), "{s:?}"),
        Ok(None) => {}
        Ok(Some(e)) => panic!("unexpected event {e:?}"),
    }
    let log = server.stderr();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

#[tokio::test]
async fn demo_raises_alerts_within_ten_seconds() {
    let server = Server::start_with(None, &["--demo"]);
    let mut stream = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    let started = Instant::now();
    let event = next_event(&mut stream).await;
    assert_eq!(event.kind, v1::EventKind::Raised as i32);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(event.alert.unwrap().patient_id.starts_with("ward-"));
}

#[tokio::test]
async fn alerts_tail_prints_events() {
    let server = Server::start(None);
    let mut ingest = server.ingest().await;
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p-tail", "glucose", 2.5)],
        })
        .await
        .unwrap();
    let grpc = server.grpc.to_string();
    let out = run_cli(&[
        "alerts",
        "tail",
        "--grpc",
        &grpc,
        "--after-seq",
        "0",
        "--count",
        "1",
        "--json",
    ])
    .await;
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "EVENT_KIND_RAISED");
    assert_eq!(lines[0]["alert"]["patient_id"], "p-tail");
    // Level 2 supersedes level 1: one alert for one problem.
    assert_eq!(lines[0]["alert"]["rule_id"], "hypoglycaemia_severe");
    assert_eq!(
        server.metric("vigil_active_alerts").await,
        1.0,
        "level 1 did not raise alongside"
    );
}

#[tokio::test]
async fn simulate_publishes_realistic_vitals() {
    let server = Server::start(None);
    let mqtt = server.mqtt.to_string();
    run_cli(&[
        "simulate",
        "--mqtt",
        &mqtt,
        "--patients",
        "3",
        "--rate",
        "4",
        "--duration",
        "1.6",
        "--deteriorating",
        "1",
    ])
    .await;
    // 3 patients × 7 vitals × ~6 ticks; none rejected.
    let got = server
        .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 84.0)
        .await;
    assert!(got >= 84.0, "ingested {got}");
    let text = server.scrape().await;
    let rejected: f64 = text
        .lines()
        .filter(|l| l.starts_with("vigil_readings_rejected_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert_eq!(rejected, 0.0);
}

#[test]
fn listening_beyond_loopback_without_authentication_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, "[server]\ngrpc_addr = \"0.0.0.0:0\"\n").unwrap();
    let config = config.to_str().unwrap();
    for args in [
        // A flag, and the configuration file (whose gRPC address no flag overrides here).
        ["--mqtt-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0"],
        ["--mqtt-addr", "127.0.0.1:0", "--config", config],
    ] {
        let data = dir.path().join("data");
        let out = Command::new(VIGIL)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run vigil");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started: {stderr}");
        assert!(
            stderr.contains("refusing to listen beyond loopback without authentication"),
            "{stderr}"
        );
        assert!(
            stderr.contains("0.0.0.0:0") && stderr.contains("--insecure"),
            "{stderr}"
        );
        assert!(!data.join("ports.json").exists(), "nothing was bound");
    }
}

#[tokio::test]
async fn the_audit_log_records_who_changed_what_but_no_health_data() {
    use vigil_proto::v1::patients_client::PatientsClient;
    use vigil_proto::v1::rules_client::RulesClient;
    let server = Server::start(None);
    let url = server.grpc_url();
    let mut patients = PatientsClient::connect(url.clone()).await.unwrap();
    let mut rules = RulesClient::connect(url.clone()).await.unwrap();
    let mut alerts = server.alerts().await;
    let patient = |consent| v1::Patient {
        id: "audit-p".into(),
        care_team: "cardiology".into(),
        consent,
        conditions: vec!["heart_failure".into()],
        ..Default::default()
    };
    patients.enroll(patient(true)).await.unwrap();
    rules
        .put_rule(v1::Rule {
            id: "audit_hr".into(),
            metric: "heart_rate".into(),
            above: Some(150.0),
            severity: v1::Severity::High as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    server
        .ingest()
        .await
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("audit-p", "heart_rate", 187.25)],
        })
        .await
        .unwrap();
    let alert = next_event(&mut stream).await.alert.unwrap();
    alerts
        .acknowledge(v1::AcknowledgeRequest {
            disposition: String::new(),
            alert_id: alert.id.clone(),
            by: "nurse-7".into(),
            note: "patient reports palpitations".into(),
        })
        .await
        .unwrap();
    alerts
        .resolve(v1::ResolveRequest {
            disposition: "contacted_patient".into(),
            alert_id: alert.id.clone(),
            by: "dr-2".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    rules
        .delete_rule(v1::DeleteRuleRequest {
            id: "audit_hr".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    patients.enroll(patient(false)).await.unwrap();
    patients
        .unenroll(v1::UnenrollRequest {
            patient_id: "audit-p".into(),
        })
        .await
        .unwrap();

    let text = std::fs::read_to_string(server.dir.path().join("data").join("audit.log")).unwrap();
    let entries: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("enroll", "audit-p"),
            ("rule_put", "audit_hr"),
            ("acknowledge", alert.id.as_str()),
            ("resolve", alert.id.as_str()),
            ("rule_delete", "audit_hr"),
            ("enroll", "audit-p"),
            ("unenroll", "audit-p"),
        ]
    );
    assert_eq!(entries[2]["actor"], "nurse-7");
    assert_eq!(entries[3]["actor"], "dr-2");
    assert!(entries[0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("unauthenticated 127.0.0.1:"));
    assert_eq!(entries[5]["detail"], "consent changed to false");
    assert!(entries.iter().all(|e| e["at_ms"].as_i64().unwrap() > 0));
    for secret in ["187.25", "palpitations", "heart_failure", "cardiology"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the audit log:\n{text}"
        );
    }
}

#[test]
fn a_start_that_fails_after_the_listeners_opened_exits_with_its_reason() {
    // ports.json is written last, after every listener (the MQTT one on its own runtime)
    // is up: make that write fail.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("ports.json.tmp")).unwrap();
    // Owner-only, as the server requires of a data directory it did not create.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = Command::new(VIGIL)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(LOOPBACK_PORTS)
        .output()
        .expect("run vigil");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("ports.json"), "{stderr}");
}

/// Whether this test process may lower a thread's nice level to -10 (root, CAP_SYS_NICE,
/// or a nice limit), as the server it starts may.
fn may_raise_priority() -> bool {
    std::thread::spawn(|| {
        // SAFETY: setpriority(2) on the calling thread (who = 0), which then exits.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) == 0 }
    })
    .join()
    .unwrap()
}

#[test]
fn the_alert_journal_writer_gets_a_short_slice_and_ingest_does_not() {
    use vigil::process::cpu_priority::{of_thread, slices_supported, ALERT_WRITER};
    let server = Server::start(None);
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{}/task", server.pid())).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        let tid: i32 = task.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let priority = of_thread(tid).unwrap().expect("SCHED_OTHER");
        threads.push((name.trim().to_string(), priority));
    }
    let writer = threads
        .iter()
        .find(|(name, _)| name == "journal-writer")
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no journal-writer thread among {threads:?}"));
    let ingest: Vec<_> = threads.iter().filter(|(n, _)| n == "vigil-mqtt").collect();
    assert!(
        !ingest.is_empty(),
        "no MQTT ingest thread among {threads:?}"
    );
    let raised = may_raise_priority();
    assert_eq!(writer.nice, if raised { ALERT_WRITER.nice } else { 0 });
    for (_, p) in &ingest {
        assert_eq!(p.nice, 0, "{threads:?}");
    }
    if slices_supported() {
        assert_eq!(writer.slice, ALERT_WRITER.slice);
        for (_, p) in &ingest {
            assert!(p.slice > ALERT_WRITER.slice, "{threads:?}");
        }
    }
    let log = server.stderr();
    let said = if raised {
        "alert journal writer priority raised"
    } else {
        "needs CAP_SYS_NICE"
    };
    assert!(log.contains(said), "{log}");
}

/// `THP_enabled` of a process: 0 once transparent huge pages are off for it.
fn thp_enabled(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().parse().unwrap())
}

#[test]
fn the_server_runs_without_transparent_huge_pages_unless_told_otherwise() {
    // Kernels before 5.0 do not report the flag; a test process that already runs without
    // huge pages passes that on to every child, so "kept" could not be seen.
    let Some(ours) = thp_enabled(std::process::id()) else {
        return;
    };
    let expect = |server: Server, thp: u32, said: &str| {
        assert_eq!(thp_enabled(server.pid()), Some(thp), "{said}");
        let log = server.stderr();
        assert!(log.contains(said), "{log}");
    };
    expect(
        Server::start(None),
        0,
        "transparent huge pages off for this process (MIMALLOC_ALLOW_THP=1 keeps them)",
    );
    if ours == 1 {
        expect(
            Server::start_env(&[("MIMALLOC_ALLOW_THP", "1")]),
            1,
            "transparent huge pages on, as MIMALLOC_ALLOW_THP says",
        );
    }
    expect(
        Server::start_env(&[("MIMALLOC_ALLOW_THP", "0")]),
        0,
        "transparent huge pages off for this process, as MIMALLOC_ALLOW_THP says",
    );
}
