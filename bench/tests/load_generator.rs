//! The load generator against the real servers: `vigil-bench` starts the real `vigil`
//! binary (and Mosquitto) on loopback ports and must count exactly what it sent. Small,
//! rate-limited loads: these check the generator's accounting, not performance.

use std::path::PathBuf;
use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_vigil-bench");

/// The `vigil` binary cargo built for this test run (same profile directory).
fn vigil_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VIGIL_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("vigil");
    assert!(
        bin.exists(),
        "{} not found: build it first (cargo build -p vigil)",
        bin.display()
    );
    bin
}

/// Runs `vigil-bench ARGS --json` and returns its JSON lines.
fn bench(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(BENCH)
        .args(args)
        .arg("--json")
        .env("VIGIL_BIN", vigil_bin())
        .output()
        .expect("run vigil-bench");
    assert!(
        out.status.success(),
        "vigil-bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// Whether Debian's `binary` (a peer: mosquitto, nats-server) is installed. Without it the
/// peer's tests are skipped, except in CI (`CI=true`), where `.ci/run` installs it and a
/// skip would hide a failure.
fn peer_or_skip(binary: &str, test: &str) -> bool {
    let found = ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .any(|dir| std::path::Path::new(dir).join(binary).exists());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {binary} is required in CI (apt-get install {binary})"
        );
        eprintln!("{test}: skipped, {binary} is not installed (apt-get install {binary})");
    }
    found
}

fn u(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn mqtt_qos1_counts_match_and_every_probe_alert_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("probes.csv");
    let lines = bench(&[
        "mqtt",
        "--probe-log",
        log.to_str().unwrap(),
        "--qos",
        "1",
        "--devices",
        "4",
        "--patients",
        "40",
        "--rate",
        "2000",
        "--duration",
        "1s",
        "--probes",
        "20",
    ]);
    let (t, l) = (&lines[0], &lines[1]);
    assert!(u(t, "sent") >= 1500, "{t}");
    // The server's own counter includes the probes' readings.
    assert_eq!(u(t, "delivered"), u(t, "sent") + u(l, "probes"), "{t} {l}");
    assert_eq!(
        u(t, "acked"),
        u(t, "sent"),
        "every QoS 1 publish acknowledged"
    );
    assert_eq!(u(t, "lost"), 0, "{t}");
    assert_eq!(
        u(t, "rejected"),
        0,
        "the generator's readings are all valid"
    );
    assert_eq!((u(l, "received"), u(l, "missing")), (20, 0), "{l}");
    assert!(u(l, "p50_us") > 0 && u(l, "p50_us") <= u(l, "max_us"));

    // The probe log: one line per probe received, each within the histogram's range.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut rows = text.lines();
    assert_eq!(
        rows.next(),
        Some("probe,sent_unix_ms,latency_us,sent_to_raised_ms")
    );
    let mut probes: Vec<u64> = Vec::new();
    for row in rows {
        let f: Vec<i64> = row.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(f.len(), 4, "{row}");
        assert!(f[1] > 1_700_000_000_000, "a Unix time in ms: {row}");
        assert!(f[2] > 0 && f[2] as u64 <= u(l, "max_us"), "{row} {l}");
        assert!(
            f[3] >= 0 && f[3] * 1000 <= f[2] + 1000,
            "raised before received: {row}"
        );
        probes.push(f[0] as u64);
    }
    probes.sort_unstable();
    assert_eq!(probes, (0..20).collect::<Vec<u64>>());
}

#[test]
fn grpc_stream_and_unary_are_counted_by_the_server() {
    for mode in [&[][..], &["--unary"][..]] {
        let mut args = vec![
            "grpc",
            "--connections",
            "2",
            "--grpc-batch",
            "100",
            "--grpc-rate",
            "20000",
            "--grpc-duration",
            "1s",
        ];
        args.extend_from_slice(mode);
        let t = &bench(&args)[0];
        assert!(u(t, "sent") >= 15_000, "{t}");
        assert_eq!(u(t, "delivered"), u(t, "sent"), "{mode:?}: {t}");
        assert_eq!(u(t, "acked"), u(t, "sent"), "PublishAck.accepted");
    }
}

/// QoS 1 through a peer (`--peer` value, and the binary that must be installed): every
/// publish sent is counted by the subscriber.
fn relay_counts_every_qos1_publish(peer: &str, binary: &str) {
    if !peer_or_skip(binary, &format!("relay --peer {peer}")) {
        return;
    }
    let t = &bench(&[
        "relay",
        "--peer",
        peer,
        "--qos",
        "1",
        "--devices",
        "4",
        "--rate",
        "2000",
        "--duration",
        "1s",
    ])[0];
    assert!(u(t, "sent") >= 1500, "{t}");
    assert_eq!(u(t, "delivered"), u(t, "sent"), "{t}");
}

#[test]
fn relay_through_mosquitto_counts_every_qos1_publish() {
    relay_counts_every_qos1_publish("mosquitto", "mosquitto");
}

#[test]
fn relay_through_nats_counts_every_qos1_publish() {
    relay_counts_every_qos1_publish("nats", "nats-server");
}

#[test]
fn quick_suite_writes_the_report_and_plots() {
    if !peer_or_skip("mosquitto", "suite") {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(BENCH)
        .args(["suite", "--quick", "--vigil"])
        .arg(vigil_bin())
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run the suite");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for section in [
        "## Targets",
        "## Throughput",
        "## Reading → alert latency",
        "## Memory",
        "## Scale: 1000 patients on one node",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["mqtt_vigil"].as_array().unwrap().len(), 1);
    // The bare tonic ceiling acknowledged every reading sent to it, alternated with Vigil's.
    let ceiling = &results["grpc_ceiling"][0];
    assert!(u(ceiling, "delivered") > 0, "{results}");
    assert_eq!(u(ceiling, "delivered"), u(ceiling, "sent"), "{ceiling}");
    assert!(report.contains("bare tonic ceiling"), "{report}");
    // The optional second peer, NATS's MQTT gateway, measured like Mosquitto.
    if peer_or_skip("nats-server", "suite's second peer") {
        let nats = &results["mqtt_nats"][0];
        assert!(u(nats, "delivered") > 0, "{results}");
        assert!(results["sweep"][0]["nats"]["rate"].as_f64().unwrap() > 0.0);
        assert!(report.contains("Second peer"), "{report}");
        assert!(
            report.contains("→ NATS MQTT gateway → counting subscriber"),
            "{report}"
        );
    }
    assert!(results["memory"]["bytes_per_sample"].as_f64().unwrap() > 0.0);
    // The scale run, small: every patient restored after the shutdown, the plot written.
    assert_eq!(
        results["scale"]["restored_patients"].as_u64(),
        Some(1000),
        "{results}"
    );
    assert_eq!(
        results["scale"]["final_snapshot_complete"].as_bool(),
        Some(true)
    );
    assert!(out.path().join("scale.svg").is_file());
    // The disk's fsync floor, idle and during each latency run, next to the journal's own.
    assert_eq!(
        results["fsync_idle"]["count"].as_u64(),
        Some(50),
        "{results}"
    );
    let run = &results["latency"][0];
    assert!(run["fsync"]["count"].as_u64().unwrap() > 0, "{run}");
    assert!(run["fsync"]["p99_us"].as_u64().unwrap() > 0, "{run}");
    assert!(run["journal_p99_us"].as_f64().is_some(), "{run}");
    assert!(run["raise_p99_us"].as_f64().is_some(), "{run}");
    // The share of alerts within the server target's 1 ms, per run.
    let within = run["server_within_1ms"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&within), "{run}");
    assert!(report.contains("of alerts within 1 ms"), "{report}");
    // The generator's own share: how late the probe's write returned (a write takes time).
    assert!(
        run["client"]["send_late_p99_us"].as_u64().unwrap() > 0,
        "{run}"
    );
    assert!(
        report.contains("The floor under the server's figure"),
        "{report}"
    );
    for svg in ["throughput.svg", "latency.svg"] {
        let text = std::fs::read_to_string(out.path().join(svg)).unwrap();
        assert!(text.contains("<svg"), "{svg}");
    }
}
