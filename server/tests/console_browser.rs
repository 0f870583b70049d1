//! The console in headless Chromium against the real server: an alert raised over MQTT
//! appears on the live board, acknowledge and resolve act at once (and gRPC agrees), a
//! board whose connection drops shows it and comes back with no missing and no duplicate
//! row, the patient page draws a chart per metric, and a viewer of another care team sees
//! nothing and is refused by hand. Screenshots of the board and the patient page go to
//! `target/tmp/console-*.png` (and to `docs/images/` with `VIGIL_UPDATE_SCREENSHOTS=1`).

mod common;

use std::time::{Duration, Instant};

use common::browser::{chromedriver_available, Browser, Proxy};
use common::*;
use serde_json::{json, Value};
use vigil_proto::v1;

const WARD: &str = r#"
[[care_teams]]
id = "cardiology"
[[care_teams]]
id = "renal"

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true
conditions = ["heart_failure"]
[[patients]]
id = "p2"
care_team = "cardiology"
consent = true
[[patients]]
id = "p3"
care_team = "renal"
consent = true

[[rules]]
id = "bp_high"
metric = "systolic_bp"
above = 180
clear = 160
severity = "high"
message = "Systolic BP {value} mmHg, above 180"

[[rules]]
id = "tachycardia"
metric = "heart_rate"
above = 120
clear = 110
severity = "medium"

[[rules]]
id = "low_spo2"
metric = "spo2"
below = 92
severity = "high"
"#;

/// What the board shows: `[id, state, text]` per alert row.
const ROWS: &str = "return [...document.querySelectorAll('#alerts [data-alert-id]')]\
    .map(e => [e.dataset.alertId, e.dataset.state, e.textContent]);";

/// True once the board shows `arguments[0]` rows.
const COUNT_IS: &str =
    "return document.querySelectorAll('#alerts [data-alert-id]').length === arguments[0];";

fn rows(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_str().unwrap().to_string(),
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn screenshot_path(name: &str) -> std::path::PathBuf {
    if std::env::var_os("VIGIL_UPDATE_SCREENSHOTS").is_some() {
        let dir = repo_root().join("docs/images");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("console-{name}.png"))
    } else {
        // Cargo's scratch directory for integration tests, wherever the target directory is.
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{name}.png"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_follows_alerts_live_acts_and_survives_a_dropped_connection() {
    if !chromedriver_available() {
        return;
    }
    let server = Server::start(Some(WARD));
    let proxy = Proxy::start(server.http).await;
    let browser = Browser::start().await;
    let mut device = Device::connect(server.mqtt, "cuff-1").await;
    browser.goto(&format!("http://{}/?board", proxy.addr)).await;
    browser
        .until(
            Duration::from_secs(20),
            "the board is live",
            "return document.querySelector('#conn.live') !== null;",
            vec![],
        )
        .await;

    // Raised over MQTT: on the board without a reload.
    let sent = Instant::now();
    device
        .publish("vitals/p1", r#"{"metric":"systolic_bp","value":204}"#)
        .await;
    let row = browser
        .until(
            Duration::from_secs(10),
            "the alert appears",
            "const e = document.querySelector('#alerts [data-alert-id]'); return e && [e.dataset.alertId, e.dataset.state, e.textContent];",
            vec![],
        )
        .await;
    eprintln!("MQTT publish -> row on the board: {:?}", sent.elapsed());
    let id = row[0].as_str().unwrap().to_string();
    assert_eq!(row[1], "active");
    let text = row[2].as_str().unwrap();
    assert!(text.contains("p1") && text.contains("bp_high"), "{text}");
    // The footer names the rules in force; the row's details name the version it was
    // raised under.
    let footer = browser
        .js(
            "const f = document.querySelector('#rule-set'); return [f.textContent, document.querySelector(`[data-alert-id='${arguments[0]}'] .state`).title];",
            vec![json!(id)],
        )
        .await;
    assert!(
        footer[0]
            .as_str()
            .unwrap()
            .starts_with("Rules in force v1 · "),
        "{footer}"
    );
    assert!(
        footer[1].as_str().unwrap().contains("rule set v1"),
        "{footer}"
    );

    // A new HIGH alert sounds; the mute lasts five minutes at most.
    assert_eq!(
        browser
            .js("return window.vigilBoard.sound.played;", vec![])
            .await,
        1
    );
    browser.click("#mute").await;
    let label = browser
        .js(
            "return document.querySelector('#mute').textContent;",
            vec![],
        )
        .await;
    assert_eq!(label, "Sound muted 5 min");

    // Acknowledge: the row's state follows, and gRPC agrees.
    browser
        .click(&format!(
            "[data-alert-id='{id}'] [data-action='acknowledge']"
        ))
        .await;
    browser
        .until(
            Duration::from_secs(10),
            "the row shows acknowledged",
            "const e = document.querySelector(`[data-alert-id='${arguments[0]}']`); return e && e.dataset.state === 'acknowledged';",
            vec![json!(id)],
        )
        .await;
    let listed = server.open_alerts().await;
    assert_eq!(listed[0].state, v1::AlertState::Acknowledged as i32);
    assert_eq!(listed[0].acknowledged_by, "console");

    // More alerts, then the network drops: the page says so.
    device
        .publish("vitals/p2", r#"{"metric":"spo2","value":85}"#)
        .await;
    browser
        .until(
            Duration::from_secs(10),
            "two rows",
            COUNT_IS,
            vec![json!(2)],
        )
        .await;
    // Muted: the new HIGH alert above played no tone.
    assert_eq!(
        browser
            .js("return window.vigilBoard.sound.played;", vec![])
            .await,
        1
    );
    proxy.cut();
    browser
        .until(
            Duration::from_secs(20),
            "the page shows the connection lost",
            "return document.querySelector('#conn.lost') !== null;",
            vec![],
        )
        .await;
    // While it is away: p1 clears (auto-resolves), p2 gets a second alert, p3 (another
    // team, same open console) one.
    device
        .publish("vitals/p1", r#"{"metric":"systolic_bp","value":130}"#)
        .await;
    device
        .publish("vitals/p2", r#"{"metric":"heart_rate","value":140}"#)
        .await;
    device
        .publish("vitals/p3", r#"{"metric":"systolic_bp","value":199}"#)
        .await;
    eventually(Duration::from_secs(10), "three open alerts", || async {
        (server.open_alerts().await.len() == 3).then_some(())
    })
    .await;
    proxy.restore();
    browser
        .until(
            Duration::from_secs(20),
            "the board is live again",
            "return document.querySelector('#conn.live') !== null;",
            vec![],
        )
        .await;
    let expected: std::collections::BTreeSet<String> = server
        .open_alerts()
        .await
        .into_iter()
        .map(|a| a.id)
        .collect();
    let board = browser
        .until(
            Duration::from_secs(10),
            "the board matches the server",
            "const ids = [...document.querySelectorAll('#alerts [data-alert-id]')]\
                .map(e => e.dataset.alertId); return ids.length === arguments[0] && ids;",
            vec![json!(expected.len())],
        )
        .await;
    let shown: Vec<String> = board
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<String> = shown.iter().cloned().collect();
    assert_eq!(unique.len(), shown.len(), "a duplicate row: {shown:?}");
    assert_eq!(unique, expected);
    assert!(!unique.contains(&id), "the resolved alert left the board");
    let counts = browser
        .js(
            "return document.querySelector('.count[data-severity=high] b').textContent;",
            vec![],
        )
        .await;
    assert_eq!(counts, "2");
    browser.screenshot(&screenshot_path("board")).await;

    // Resolving, by choosing what the alert led to, removes a row.
    let first = rows(&browser.js(ROWS, vec![]).await)[0].0.clone();
    browser
        .select(
            &format!("[data-alert-id='{first}'] select[data-action='resolve']"),
            "device_or_measurement_error",
        )
        .await;
    browser
        .until(
            Duration::from_secs(10),
            "the resolved row leaves",
            "return document.querySelector(`[data-alert-id='${arguments[0]}']`) === null;",
            vec![json!(first)],
        )
        .await;
    assert!(server.open_alerts().await.iter().all(|a| a.id != first));
    // The outcomes page counts it.
    browser
        .goto(&format!("http://{}/dispositions", proxy.addr))
        .await;
    browser
        .until(
            Duration::from_secs(10),
            "the outcomes page counts the resolution",
            "const c = document.querySelector(\"td[data-disposition='device_or_measurement_error']\"); return c !== null && c.textContent === '1';",
            vec![],
        )
        .await;

    // The patient page: one chart per metric, and the patient's open alerts.
    for (metric, value) in [
        ("heart_rate", 72.0),
        ("heart_rate", 75.0),
        ("spo2", 97.0),
        ("weight", 80.4),
    ] {
        device
            .publish(
                "vitals/p1",
                format!(r#"{{"metric":"{metric}","value":{value}}}"#),
            )
            .await;
    }
    browser
        .goto(&format!("http://{}/patients/p1", proxy.addr))
        .await;
    let charts = browser
        .until(
            Duration::from_secs(10),
            "a chart per metric",
            "const c = [...document.querySelectorAll('[data-metric]')].map(e => e.dataset.metric); return c.length === 4 && c;",
            vec![],
        )
        .await;
    assert_eq!(
        charts,
        json!(["heart_rate", "spo2", "systolic_bp", "weight"])
    );
    let lines = browser
        .js(
            "return document.querySelector('[data-metric=systolic_bp] .level') !== null;",
            vec![],
        )
        .await;
    assert_eq!(lines, true, "the rule level is drawn");
    // The 30-day strip: 30 cells per metric measured, the days with readings filled (the
    // readings were all sent just now: today, or yesterday and today across a midnight).
    let strip = browser
        .js(
            "return [...document.querySelectorAll('tr[data-adherence-metric]')].map(r => [r.dataset.adherenceMetric, r.querySelectorAll('.day').length, Math.min(r.querySelectorAll('.day.on').length, 2) > 0]);",
            vec![],
        )
        .await;
    assert_eq!(
        strip,
        json!([
            ["heart_rate", 30, true],
            ["spo2", 30, true],
            ["systolic_bp", 30, true],
            ["weight", 30, true]
        ])
    );
    browser.screenshot(&screenshot_path("patient")).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_of_another_team_sees_nothing_and_is_refused_by_hand() {
    if !chromedriver_available() {
        return;
    }
    let (gateway, gateway_entry) = token_create("gw", "gateway", &[]).await;
    let (wall, wall_entry) = token_create("renal-wall", "viewer:renal", &[]).await;
    let (cardio, cardio_entry) = token_create("cardio-app", "care_team:cardiology", &[]).await;
    let config =
        format!("[auth]\nenabled = true\n\n{gateway_entry}\n{wall_entry}\n{cardio_entry}\n{WARD}");
    let server = Server::start(Some(&config));
    let mut ingest = v1::ingest_client::IngestClient::new(channel(&server, Some(&gateway)).await);
    ingest
        .publish_batch(v1::ReadingBatch {
            readings: vec![reading("p1", "systolic_bp", 210.0)],
        })
        .await
        .unwrap();
    let browser = Browser::start().await;
    let base = format!("http://{}", server.http);
    browser.goto(&format!("{base}/?board")).await;
    // Not signed in: the sign-in page.
    browser
        .until(
            Duration::from_secs(20),
            "the sign-in form",
            "return document.querySelector('#token') !== null;",
            vec![],
        )
        .await;
    let field = browser
        .client
        .find(fantoccini::Locator::Css("#token"))
        .await
        .unwrap();
    field.send_keys(&wall).await.unwrap();
    browser.click("#signin").await;
    browser
        .until(Duration::from_secs(20), "signed in", "return document.querySelector('#who') && document.querySelector('#who').textContent.includes('renal-wall');", vec![])
        .await;
    browser.goto(&format!("{base}/?board")).await;
    browser
        .until(
            Duration::from_secs(20),
            "the board is live",
            "return document.querySelector('#conn.live') !== null;",
            vec![],
        )
        .await;
    // The cardiology team's own client sees the alert; the renal wall display does not.
    let mut alerts = v1::alerts_client::AlertsClient::new(channel(&server, Some(&cardio)).await);
    let listed = alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(listed.len(), 1);
    let id = listed[0].id.clone();
    assert_eq!(browser.js(ROWS, vec![]).await, json!([]));
    // Posted by hand from the signed-in page, with the session's CSRF token: refused.
    let refused = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/session').then(r => r.json()).then(s =>
               fetch('/api/alerts/' + arguments[0] + '/acknowledge', {method: 'POST',
                 headers: {'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf}, body: '{}'}))
             .then(r => done(r.status));",
            vec![json!(id)],
        )
        .await
        .unwrap();
    assert_eq!(refused, 403);
    let listed = alerts
        .list_active(v1::ListActiveRequest::default())
        .await
        .unwrap()
        .into_inner()
        .alerts;
    assert_eq!(listed[0].state, v1::AlertState::Active as i32);
    browser.close().await;
}

/// Measurements, not run by `cargo test` (figures, never assertions on speed): how long a
/// board with 500 open alerts takes to render, and how long an alert raised during an MQTT
/// load takes to reach an open board. Run against a release build:
///
/// ```text
/// cargo build --release -p vigil -p vigil-bench
/// VIGIL_TEST_BIN=target/release/vigil cargo test --release -p vigil --test console_browser \
///     -- --ignored --nocapture measure
/// ```
///
/// `VIGIL_MEASURE_RATE` (readings/s, default 250 000) and `VIGIL_MEASURE_SECONDS` (default
/// 30) set the load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run by hand (see docs/console.md)"]
async fn measure_board_render_and_alert_latency_under_load() {
    if !chromedriver_available() {
        return;
    }
    let server = Server::start(None);
    let browser = Browser::start().await;
    let mut ingest = server.ingest().await;
    let readings = (0..500)
        .map(|i| reading(&format!("m-{i:03}"), "systolic_bp", 200.0))
        .collect();
    ingest
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "500 open alerts", || async {
        (server.open_alerts().await.len() >= 500).then_some(())
    })
    .await;
    const RENDERED: &str = "const done = arguments[arguments.length - 1]; const want = arguments[0];
        (function poll() {
          if (document.querySelectorAll('#alerts [data-alert-id]').length >= want) done(performance.now());
          else requestAnimationFrame(poll);
        })();";
    let mut renders = Vec::new();
    for _ in 0..5 {
        browser
            .goto(&format!("http://{}/?board", server.http))
            .await;
        let ms = browser
            .client
            .execute_async(RENDERED, vec![json!(500)])
            .await
            .unwrap();
        renders.push(ms.as_f64().unwrap());
    }
    renders.sort_by(f64::total_cmp);
    eprintln!("board with 500 open alerts, navigation start -> 500 rows drawn (ms): {renders:?}, median {:.0}", renders[2]);

    // An alert raised while devices publish at the given rate.
    let rate: f64 = std::env::var("VIGIL_MEASURE_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(250_000.0);
    let seconds: u64 = std::env::var("VIGIL_MEASURE_SECONDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30);
    let bench = std::env::var("VIGIL_BENCH_BIN").unwrap_or_else(|_| {
        repo_root()
            .join("target/release/vigil-bench")
            .display()
            .to_string()
    });
    let load = std::process::Command::new(&bench)
        .args([
            "mqtt",
            "--mqtt-addr",
            &server.mqtt.to_string(),
            "--grpc-addr",
            &server.grpc.to_string(),
        ])
        .args([
            "--metrics-addr",
            &server.metrics.to_string(),
            "--rate",
            &rate.to_string(),
        ])
        .args(["--duration", &format!("{seconds}s"), "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start vigil-bench (cargo build --release -p vigil-bench)");
    browser
        .goto(&format!("http://{}/?board", server.http))
        .await;
    browser
        .until(
            Duration::from_secs(20),
            "the board is live",
            "return document.querySelector('#conn.live') !== null;",
            vec![],
        )
        .await;
    // A plain SSE reader beside the browser: when the server's stream delivers each event.
    let web = common::web::Web::open(server.http).await;
    let mut reader = common::web::EventReader::open(&web, None, None).await;
    let streamed = tokio::spawn(async move {
        let mut at = std::collections::HashMap::new();
        while let Some(e) = reader.next(Duration::from_secs(10)).await {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            if v["kind"] == "raised" {
                at.insert(v["alert"]["id"].as_str().unwrap().to_string(), now_ms());
            }
        }
        at
    });
    let mut probe = Device::connect(server.mqtt, "probe-cuff").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sent = std::collections::HashMap::new();
    let end = Instant::now() + Duration::from_secs(seconds.saturating_sub(4));
    let mut i = 0;
    while Instant::now() < end {
        let patient = format!("probe-{i:04}");
        sent.insert(patient.clone(), now_ms());
        probe
            .publish(
                &format!("vitals/{patient}"),
                r#"{"metric":"systolic_bp","value":200}"#,
            )
            .await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let output = tokio::task::spawn_blocking(move || load.wait_with_output().unwrap())
        .await
        .unwrap();
    let seen = browser
        .js("return [...window.vigilBoard.seen.entries()];", vec![])
        .await;
    let streamed = streamed.await.unwrap();
    let by_id: std::collections::HashMap<String, (String, i64)> = server
        .open_alerts()
        .await
        .into_iter()
        .map(|a| (a.id, (a.patient_id, a.raised_at_ms)))
        .collect();
    // publish -> shown, publish -> raised (server clock), raised -> shown (browser clock);
    // one host, one clock.
    let mut parts: Vec<(i64, i64, i64)> = seen
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let (patient, raised) = by_id.get(e[0].as_str()?)?;
            let (shown, sent) = (e[1].as_i64()?, *sent.get(patient)?);
            Some((shown - sent, raised - sent, shown - raised))
        })
        .collect();
    let column = |f: fn(&(i64, i64, i64)) -> i64| {
        let mut v: Vec<i64> = parts.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let latencies = column(|p| p.0);
    let to_raise = column(|p| p.1);
    let to_screen = column(|p| p.2);
    parts.clear();
    let mut over_sse: Vec<i64> = by_id
        .iter()
        .filter_map(|(id, (patient, raised))| {
            sent.get(patient)?;
            Some(streamed.get(id)? - raised)
        })
        .collect();
    over_sse.sort_unstable();
    let pct = |v: &[i64], p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    eprintln!(
        "load: {}",
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or("")
    );
    eprintln!(
        "MQTT publish -> row on an open board during the load: {} probes of {}, p50 {} ms, p99 {} ms, max {} ms",
        latencies.len(),
        sent.len(),
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies.last().unwrap()
    );
    eprintln!(
        "  of which publish -> raised p50 {} p99 {} ms; raised -> row shown p50 {} p99 {} ms",
        pct(&to_raise, 0.5),
        pct(&to_raise, 0.99),
        pct(&to_screen, 0.5),
        pct(&to_screen, 0.99)
    );
    eprintln!(
        "  raised -> event read from /api/events by a plain HTTP client: {} events, p50 {} p99 {} ms",
        over_sse.len(),
        pct(&over_sse, 0.5),
        pct(&over_sse, 0.99)
    );
    browser.close().await;
}

/// The screenshots in docs/images (with `VIGIL_UPDATE_SCREENSHOTS=1`; else in target/tmp/):
/// a board of 24 alerts at 1366×768 (and how many rows fit without scrolling), the same in
/// Chinese, on a phone, the worklist and a patient page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the documentation's screenshots: run by hand"]
async fn screenshots() {
    if !chromedriver_available() {
        return;
    }
    let server = Server::start(Some("[server]\nchart_history = \"2h\"\n"));
    let mut ingest = server.ingest().await;
    let mut readings = Vec::new();
    for i in 0..24 {
        let patient = format!("bed-{:02}", i + 1);
        let (metric, value, step) = match i % 4 {
            0 => ("systolic_bp", 186.0 + i as f64, 4.0),
            1 => ("spo2", 88.0 - (i % 3) as f64, -1.0),
            2 => ("heart_rate", 131.0 + i as f64, 3.0),
            _ => ("glucose", 3.5, -0.1),
        };
        for k in 0..6 {
            let mut r = reading(&patient, metric, value + (k - 5) as f64 * step);
            r.ts_ms = now_ms() - (6 - k) * 60_000;
            readings.push(r);
        }
    }
    // A fuller history for the patient page: an hour of 1-minute vitals.
    for k in 0..60i64 {
        let wave = ((k as f64) / 6.0).sin();
        for (metric, value) in [
            ("heart_rate", 88.0 + 8.0 * wave + k as f64 * 0.4),
            ("spo2", 95.0 - (k as f64) * 0.05),
            ("resp_rate", 18.0 + 3.0 * wave),
            ("temperature", 37.2 + 0.01 * k as f64),
        ] {
            let mut r = reading("bed-01", metric, (value * 10.0f64).round() / 10.0);
            r.ts_ms = now_ms() - (60 - k) * 60_000;
            readings.push(r);
        }
    }
    ingest
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap();
    let alerts = eventually(Duration::from_secs(20), "24 alerts", || async {
        let a = server.open_alerts().await;
        (a.len() >= 24).then_some(a)
    })
    .await;
    let web = common::web::Web::open(server.http).await;
    for a in alerts.iter().take(5) {
        web.post(
            &format!("/api/alerts/{}/acknowledge", a.id),
            json!({"note": "on my way"}),
        )
        .await;
    }
    let browser = Browser::start().await;
    let base = format!("http://{}", server.http);
    browser.goto(&format!("{base}/?board")).await;
    browser
        .until(
            Duration::from_secs(20),
            "rows",
            COUNT_IS,
            vec![json!(alerts.len())],
        )
        .await;
    let fit = browser
        .js("return [...document.querySelectorAll('#alerts [data-alert-id]')].filter(e => e.getBoundingClientRect().bottom <= window.innerHeight).length + ' of ' + window.innerHeight + ' px';", vec![])
        .await;
    eprintln!("rows fully visible at 1366x768 without scrolling: {fit}");
    browser.screenshot(&screenshot_path("board")).await;
    browser
        .js(
            "document.cookie = 'vigil_lang=zh-CN; Path=/'; return 1;",
            vec![],
        )
        .await;
    browser.goto(&format!("{base}/?board")).await;
    browser
        .until(
            Duration::from_secs(20),
            "rows",
            COUNT_IS,
            vec![json!(alerts.len())],
        )
        .await;
    browser.screenshot(&screenshot_path("board-zh")).await;
    browser
        .js(
            "document.cookie = 'vigil_lang=en; Path=/'; return 1;",
            vec![],
        )
        .await;
    browser.goto(&format!("{base}/patients")).await;
    browser
        .until(
            Duration::from_secs(20),
            "worklist",
            "return document.querySelectorAll('[data-patient-id]').length > 0;",
            vec![],
        )
        .await;
    browser.screenshot(&screenshot_path("worklist")).await;
    browser.goto(&format!("{base}/patients/bed-01")).await;
    browser
        .until(
            Duration::from_secs(20),
            "charts",
            "return document.querySelectorAll('[data-metric]').length > 0;",
            vec![],
        )
        .await;
    browser.screenshot(&screenshot_path("patient")).await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{base}/?board")).await;
    browser
        .until(
            Duration::from_secs(20),
            "rows",
            COUNT_IS,
            vec![json!(alerts.len())],
        )
        .await;
    browser.screenshot(&screenshot_path("phone")).await;
    browser.close().await;
}
