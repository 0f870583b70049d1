//! Notifiers against the real server and real HTTP receivers on 127.0.0.1: the webhook body
//! in Alertmanager's v4 format, retries until a receiver recovers (in order), a permanent
//! failure skipped, and the robots' bodies, signature and rate-limit errcode.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use common::*;
use parking_lot::Mutex;
use serde_json::Value;
use vigil_proto::v1;

/// A receiver that answers each request with the next scripted answer (then 200 `{"errcode":0}`)
/// and records what it was sent.
#[derive(Clone, Default)]
struct Receiver {
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
    /// (status answered, query string, body) per request.
    seen: Arc<Mutex<Vec<(u16, String, Value)>>>,
    /// Webhook bodies whose alert has this severity are answered 503.
    refuse: Arc<Mutex<Option<&'static str>>>,
    /// Every request is answered 503 (the receiver is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Receiver {
    async fn start(script: &[(u16, &'static str)]) -> (Receiver, SocketAddr) {
        let receiver = Receiver {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Receiver::default()
        };
        let app = Router::new()
            .route("/hook", post(answer))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn seen(&self) -> Vec<(u16, String, Value)> {
        self.seen.lock().clone()
    }

    /// The bodies answered with success.
    fn delivered(&self) -> Vec<Value> {
        self.seen()
            .into_iter()
            .filter(|(status, _, body)| *status == 200 && !body.is_null())
            .map(|(_, _, b)| b)
            .collect()
    }
}

async fn answer(
    State(r): State<Receiver>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> (StatusCode, String) {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refused = r
        .refuse
        .lock()
        .is_some_and(|s| parsed["alerts"][0]["labels"]["severity"] == s);
    let down = r.down.load(std::sync::atomic::Ordering::SeqCst);
    let (status, text) = if refused || down {
        (503, "")
    } else {
        r.script
            .lock()
            .pop_front()
            .unwrap_or((200, r#"{"errcode":0}"#))
    };
    // A scripted errcode answer is a 200 whose body is not success: keep it apart.
    let recorded = if text.contains("\"errcode\":0") || text.is_empty() {
        parsed
    } else {
        Value::Null
    };
    r.seen
        .lock()
        .push((status, query.unwrap_or_default(), recorded));
    (StatusCode::from_u16(status).unwrap(), text.to_string())
}

const WARD: &str = r#"
[[care_teams]]
id = "cardiology"

[[patients]]
id = "p1"
care_team = "cardiology"
consent = true
[[patients]]
id = "p2"
care_team = "cardiology"
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
"#;

async fn publish(server: &Server, readings: Vec<v1::Reading>) {
    server
        .ingest()
        .await
        .publish_batch(v1::ReadingBatch { readings })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_webhook_speaks_alertmanager_v4_and_retries_until_the_receiver_recovers() {
    // Three 503s, then success; later a 400 (skipped for good), then success again.
    let (receiver, addr) = Receiver::start(&[(503, ""), (503, ""), (503, "")]).await;
    let config = format!(
        "[server]\nexternal_url = \"https://vigil.example\"\n\n[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n{WARD}"
    );
    let server = Server::start(Some(&config));
    publish(&server, vec![reading("p1", "systolic_bp", 200.0)]).await;
    // The resolution comes while the raise is being retried: a message of its own (had it
    // come earlier, both would be one message, as pending events of one patient are).
    eventually(Duration::from_secs(30), "a refused attempt", || async {
        receiver.seen().iter().any(|s| s.0 == 503).then_some(())
    })
    .await;
    publish(&server, vec![reading("p1", "systolic_bp", 120.0)]).await;
    let delivered = eventually(
        Duration::from_secs(30),
        "raised and resolved delivered",
        || async {
            let d = receiver.delivered();
            (d.len() >= 2).then_some(d)
        },
    )
    .await;
    let statuses: Vec<u16> = receiver.seen().iter().map(|s| s.0).collect();
    assert_eq!(
        statuses[..4],
        [503, 503, 503, 200],
        "retried until it recovered"
    );
    let firing = &delivered[0];
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["receiver"], "hook");
    assert_eq!(firing["externalURL"], "https://vigil.example");
    let alert = &firing["alerts"][0];
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["alertname"], "bp_high");
    assert_eq!(alert["labels"]["patient"], "p1");
    assert_eq!(alert["labels"]["care_team"], "cardiology");
    assert_eq!(alert["labels"]["severity"], "high");
    assert_eq!(alert["labels"]["metric"], "systolic_bp");
    assert_eq!(alert["labels"]["event"], "raised");
    assert_eq!(
        alert["annotations"]["summary"],
        "Systolic BP 200 mmHg, above 180"
    );
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(alert["startsAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(alert["generatorURL"], "https://vigil.example/patients/p1");
    let id = alert["fingerprint"].as_str().unwrap().to_string();
    let resolved = &delivered[1];
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["fingerprint"], id.as_str());
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    let seqs: Vec<u64> = delivered
        .iter()
        .map(|d| {
            d["alerts"][0]["annotations"]["seq"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(seqs[0] < seqs[1], "in seq order");

    // A permanent failure is counted and skipped; the next event still arrives.
    receiver.script.lock().push_back((400, "bad"));
    publish(&server, vec![reading("p2", "systolic_bp", 201.0)]).await;
    publish(&server, vec![reading("p1", "systolic_bp", 205.0)]).await;
    eventually(
        Duration::from_secs(30),
        "the event after the 400 delivered",
        || async {
            let d = receiver.delivered();
            d.iter()
                .any(|b| {
                    b["alerts"][0]["labels"]["patient"] == "p1"
                        && b["status"] == "firing"
                        && b["alerts"][0]["fingerprint"] != id.as_str()
                })
                .then_some(())
        },
    )
    .await;
    // The lane counts a delivery once the receiver's answer is back, just after the
    // receiver recorded the body: wait for the count rather than read it once.
    let sent = r#"vigil_notifications_total{notifier="hook",outcome="sent"}"#;
    eventually(Duration::from_secs(30), "three sent", || async {
        (server.metric(sent).await == 3.0).then_some(())
    })
    .await;
    let metrics = server.scrape().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"vigil_notifications_total{notifier="hook",outcome="retried"}"#
        ),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"vigil_notifications_total{notifier="hook",outcome="failed"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"vigil_notifications_total{notifier="hook",outcome="sent"}"#
        ),
        3.0
    );
    assert!(
        !server.stderr().contains(&format!("{addr}/hook")),
        "the URL is never logged"
    );
}

#[tokio::test]
async fn robots_get_their_bodies_signed_and_rate_limits_are_retried() {
    let (wecom, wecom_addr) =
        Receiver::start(&[(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#)]).await;
    let (ding, ding_addr) = Receiver::start(&[]).await;
    let config = format!(
        "[[notifiers]]\nid = \"ward-wecom\"\nkind = \"wecom\"\nurl = \"http://{wecom_addr}/hook?key=SECRET-KEY\"\n\n\
         [[notifiers]]\nid = \"ward-ding\"\nkind = \"dingtalk\"\nurl = \"http://{ding_addr}/hook?access_token=T\"\nsecret = \"SEC1\"\ncontent = \"full\"\nlanguage = \"en\"\n{WARD}"
    );
    let server = Server::start(Some(&config));
    publish(&server, vec![reading("p1", "systolic_bp", 200.0)]).await;
    let body = eventually(Duration::from_secs(30), "the wecom message", || async {
        wecom.delivered().into_iter().next()
    })
    .await;
    assert_eq!(wecom.seen()[0].0, 200, "45009 is answered with HTTP 200");
    assert_eq!(wecom.seen().len(), 2, "retried once after errcode 45009");
    assert_eq!(body["msgtype"], "markdown");
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= 4096);
    // Minimal and Chinese by default: no patient, no value.
    assert!(
        content.contains("高危") && content.contains("cardiology"),
        "{content}"
    );
    assert!(
        !content.contains("p1") && !content.contains("mmHg"),
        "{content}"
    );
    assert!(
        content.contains("新告警") && content.contains("?board"),
        "{content}"
    );

    let ding_body = eventually(Duration::from_secs(30), "the dingtalk message", || async {
        ding.delivered().into_iter().next()
    })
    .await;
    assert_eq!(ding_body["msgtype"], "markdown");
    let text = ding_body["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("p1") && text.contains("200") && text.contains("HIGH"),
        "{text}"
    );
    // The signature: timestamp and sign, as DingTalk computes it.
    let query = ding.seen()[0].1.clone();
    let pairs: std::collections::HashMap<String, String> = url_pairs(&query);
    assert_eq!(pairs["access_token"], "T");
    let ts = &pairs["timestamp"];
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"SEC1").unwrap();
    mac.update(format!("{ts}\nSEC1").as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(pairs["sign"], want);
    assert!(!server.stderr().contains("SECRET-KEY") && !server.stderr().contains("SEC1"));
}

fn url_pairs(query: &str) -> std::collections::HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn after_kill_9_every_unconfirmed_event_is_delivered_and_no_confirmed_one_twice() {
    let (receiver, addr) = Receiver::start(&[]).await;
    let config = format!(
        "[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n{WARD}"
    );
    let server = Server::start(Some(&config));
    // Confirmed before the crash.
    publish(&server, vec![reading("p1", "systolic_bp", 200.0)]).await;
    eventually(
        Duration::from_secs(30),
        "the first event confirmed",
        || async { (receiver.delivered().len() == 1).then_some(()) },
    )
    .await;
    // The receiver goes down; two more events wait for it.
    receiver
        .script
        .lock()
        .extend(std::iter::repeat_n((503, ""), 10_000));
    publish(&server, vec![reading("p2", "systolic_bp", 210.0)]).await;
    publish(&server, vec![reading("p1", "systolic_bp", 120.0)]).await;
    eventually(Duration::from_secs(30), "a refused attempt", || async {
        receiver.seen().iter().any(|s| s.0 == 503).then_some(())
    })
    .await;
    // All three events are journaled (a subscriber is handed an event only once it is):
    // the crash below may cut off only what the notifier had not confirmed.
    let mut stream = subscribe(
        &server,
        v1::SubscribeRequest {
            after_seq: Some(0),
            ..Default::default()
        },
    )
    .await;
    for _ in 0..3 {
        next_event(&mut stream).await;
    }
    drop(stream);
    let mut server = server;
    server.kill9();
    receiver.script.lock().clear();
    let server = server.restart();
    let delivered = eventually(
        Duration::from_secs(30),
        "both waiting events delivered",
        || async {
            let d = receiver.delivered();
            (d.len() >= 3).then_some(d)
        },
    )
    .await;
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = if receiver.delivered().len() > delivered.len() {
        receiver.delivered()
    } else {
        delivered
    };
    let seqs: Vec<u64> = delivered
        .iter()
        .map(|d| {
            d["alerts"][0]["annotations"]["seq"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(unique, seqs, "no event twice: {seqs:?}");
    assert_eq!(seqs.len(), 3, "{seqs:?}");
    let kinds: Vec<(&str, &str)> = delivered
        .iter()
        .map(|d| {
            (
                d["alerts"][0]["labels"]["patient"].as_str().unwrap(),
                d["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("p1", "firing"), ("p2", "firing"), ("p1", "resolved")]
    );
    drop(server);
}

#[tokio::test]
async fn a_high_alert_is_never_queued_behind_lower_severities() {
    let (receiver, addr) = Receiver::start(&[]).await;
    *receiver.refuse.lock() = Some("medium");
    let config = format!(
        "[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n{WARD}"
    );
    let server = Server::start(Some(&config));
    // A medium alert the receiver keeps refusing, then a high one.
    publish(&server, vec![reading("p2", "heart_rate", 140.0)]).await;
    eventually(
        Duration::from_secs(30),
        "the medium alert refused",
        || async { receiver.seen().iter().any(|s| s.0 == 503).then_some(()) },
    )
    .await;
    publish(&server, vec![reading("p1", "systolic_bp", 200.0)]).await;
    let delivered = eventually(
        Duration::from_secs(30),
        "the high alert delivered",
        || async {
            let d = receiver.delivered();
            (!d.is_empty()).then_some(d)
        },
    )
    .await;
    assert_eq!(delivered[0]["alerts"][0]["labels"]["severity"], "high");
    // The receiver recovers: the medium one follows.
    *receiver.refuse.lock() = None;
    eventually(
        Duration::from_secs(90),
        "the medium alert delivered",
        || async {
            receiver
                .delivered()
                .iter()
                .any(|d| d["alerts"][0]["labels"]["severity"] == "medium")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_rate_limit_holds_events_back_without_dropping_them() {
    let (receiver, addr) = Receiver::start(&[]).await;
    let config = format!(
        "[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\nrate_per_minute = 4\n{WARD}{}",
        extra_patients(&["p3", "p4", "p5"])
    );
    let server = Server::start(Some(&config));
    // Five alerts of five patients: five messages (only one patient's events share one).
    for p in ["p1", "p2", "p3", "p4", "p5"] {
        publish(&server, vec![reading(p, "systolic_bp", 200.0)]).await;
    }
    eventually(
        Duration::from_secs(30),
        "the first four at once",
        || async { (receiver.delivered().len() == 4).then_some(()) },
    )
    .await;
    let fourth = std::time::Instant::now();
    eventually(
        Duration::from_secs(60),
        "the fifth, once the budget allows",
        || async { (receiver.delivered().len() == 5).then_some(()) },
    )
    .await;
    // 4 a minute: the fifth waits for a token, about 15 s (never sooner than ~10 s).
    assert!(
        fourth.elapsed() >= Duration::from_secs(10),
        "{:?}",
        fourth.elapsed()
    );
    let mut patients: Vec<String> = receiver
        .delivered()
        .iter()
        .map(|d| {
            d["alerts"][0]["labels"]["patient"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    patients.sort();
    assert_eq!(patients, ["p1", "p2", "p3", "p4", "p5"]);
    drop(server);
}

/// `[[patients]]` of care team cardiology, with consent.
fn extra_patients(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| {
            format!("\n[[patients]]\nid = \"{id}\"\ncare_team = \"cardiology\"\nconsent = true\n")
        })
        .collect()
}

#[tokio::test]
async fn notifiers_test_sends_a_marked_message_and_reports_the_answer() {
    let (receiver, addr) = Receiver::start(&[(200, ""), (400, "bad")]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!("[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n"),
    )
    .unwrap();
    let run = |id: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(VIGIL)
                .args(["notifiers", "test", id, "--config"])
                .arg(&config)
                .output()
                .unwrap()
        })
    };
    let ok = run("hook").await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("delivered"));
    let sent = &receiver.delivered()[0];
    assert!(sent["alerts"][0]["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("TEST:"));
    let refused = run("hook").await.unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused for good: HTTP 400"));
    let unknown = run("nope").await.unwrap();
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no notifier 'nope'"));
}

#[tokio::test]
async fn a_heartbeat_goes_out_periodically() {
    let (receiver, addr) = Receiver::start(&[]).await;
    let config = format!(
        "[[notifiers]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\nheartbeat = \"1s\"\n{WARD}"
    );
    let server = Server::start(Some(&config));
    let beats = eventually(Duration::from_secs(30), "two heartbeats", || async {
        let beats: Vec<Value> = receiver
            .delivered()
            .into_iter()
            .filter(|d| d["alerts"][0]["labels"]["alertname"] == "VigilHeartbeat")
            .collect();
        (beats.len() >= 2).then_some(beats)
    })
    .await;
    assert_eq!(beats[0]["status"], "firing");
    assert_eq!(beats[0]["receiver"], "hook");
    // Counted once the receiver's answer is back: wait for the count.
    let counted = r#"vigil_notifications_total{notifier="hook",outcome="heartbeat"}"#;
    eventually(
        Duration::from_secs(30),
        "two heartbeats counted",
        || async { (server.metric(counted).await >= 2.0).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_storm_reaches_a_chat_as_one_message_per_patient_with_its_pending_events() {
    let (receiver, addr) = Receiver::start(&[]).await;
    receiver
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let config = format!(
        "[server]\ntimezone = \"Asia/Shanghai\"\n\n[[notifiers]]\nid = \"ward-slack\"\nkind = \"slack\"\nurl = \"http://{addr}/hook\"\ncare_teams = [\"cardiology\"]\n{WARD}\n[[care_teams]]\nid = \"charge\"\n"
    );
    let server = Server::start(Some(&config));
    let backlog = r#"vigil_notifier_backlog{notifier="ward-slack"}"#;
    publish(&server, vec![reading("p1", "heart_rate", 140.0)]).await;
    eventually(Duration::from_secs(30), "a refused attempt", || async {
        receiver.seen().iter().any(|s| s.0 == 503).then_some(())
    })
    .await;
    // While the receiver is down: p1's alert resolves and another is raised, p2's raised.
    publish(&server, vec![reading("p1", "heart_rate", 100.0)]).await;
    publish(&server, vec![reading("p1", "heart_rate", 150.0)]).await;
    publish(&server, vec![reading("p2", "heart_rate", 145.0)]).await;
    eventually(Duration::from_secs(30), "four events waiting", || async {
        (server.metric(backlog).await == 4.0).then_some(())
    })
    .await;
    receiver
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let texts = eventually(Duration::from_secs(90), "three messages", || async {
        let d = receiver.delivered();
        (d.len() >= 3).then(|| {
            d.iter()
                .map(|b| b["text"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
    })
    .await;
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(
        texts[0].contains("raised") && texts[0].contains("p1"),
        "{}",
        texts[0]
    );
    // p1's two pending events in one message, oldest first; then p2's.
    let grouped = &texts[1];
    assert!(
        grouped.contains("2 alert events") && grouped.contains("p1"),
        "{grouped}"
    );
    let (resolved, raised) = (
        grouped.find("resolved").unwrap(),
        grouped.rfind("raised").unwrap(),
    );
    assert!(resolved < raised, "{grouped}");
    assert!(
        grouped.contains("(UTC+08:00)"),
        "times in [server] timezone: {grouped}"
    );
    assert!(texts[2].contains("p2"), "{}", texts[2]);
    eventually(Duration::from_secs(30), "nothing waiting", || async {
        (server.metric(backlog).await == 0.0).then_some(())
    })
    .await;
    let sent = r#"vigil_notifications_total{notifier="ward-slack",outcome="sent"}"#;
    assert_eq!(server.metric(sent).await, 4.0, "counted per event");

    // No notifier reaches team charge, until a care-team application subscribes to it.
    let unreached = |t: &str| format!("vigil_care_team_unreached{{care_team=\"{t}\"}}");
    assert_eq!(server.metric(&unreached("charge")).await, 1.0);
    assert_eq!(server.metric(&unreached("cardiology")).await, 0.0);
    let stream = subscribe(
        &server,
        v1::SubscribeRequest {
            care_teams: vec!["charge".into()],
            ..Default::default()
        },
    )
    .await;
    eventually(Duration::from_secs(30), "charge reached", || async {
        (server.metric(&unreached("charge")).await == 0.0).then_some(())
    })
    .await;
    drop(stream);
    eventually(
        Duration::from_secs(30),
        "charge unreached again",
        || async { (server.metric(&unreached("charge")).await == 1.0).then_some(()) },
    )
    .await;
    assert!(server
        .stderr()
        .contains("no notifier reaches these care teams"));
}

#[tokio::test]
async fn what_a_notifier_cannot_deliver_goes_to_the_care_teams_fallback() {
    // A WeCom robot whose key was rotated: errcode 93000 ("invalid webhook URL") for good.
    let rotated = (200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#);
    let (wecom, wecom_addr) = Receiver::start(&vec![rotated; 100]).await;
    let (hook, hook_addr) = Receiver::start(&[]).await;
    let config = format!(
        "[[notifiers]]\nid = \"ward-wecom\"\nkind = \"wecom\"\nurl = \"http://{wecom_addr}/hook?key=OLD\"\ncare_teams = [\"cardiology\"]\n\n\
         [[notifiers]]\nid = \"oncall\"\nkind = \"webhook\"\nurl = \"http://{hook_addr}/hook\"\ncare_teams = [\"charge\"]\n\n\
         [[care_teams]]\nid = \"charge\"\n{}",
        WARD.replace("id = \"cardiology\"\n", "id = \"cardiology\"\nfallback = \"oncall\"\n")
    );
    let server = Server::start(Some(&config));
    publish(&server, vec![reading("p1", "systolic_bp", 200.0)]).await;
    let handed = eventually(
        Duration::from_secs(30),
        "the fallback's message",
        || async { hook.delivered().into_iter().next() },
    )
    .await;
    assert!(!wecom.seen().is_empty());
    let alert = &handed["alerts"][0];
    assert_eq!(alert["labels"]["patient"], "p1");
    assert_eq!(alert["labels"]["care_team"], "cardiology");
    assert_eq!(alert["annotations"]["fallback_for"], "ward-wecom");
    // Counted once the fallback's answer is back, just after its receiver recorded the body.
    let handed_over =
        r#"vigil_notifier_fallbacks_total{notifier="ward-wecom",fallback="oncall",outcome="sent"}"#;
    eventually(Duration::from_secs(30), "the hand-over counted", || async {
        (server.metric(handed_over).await == 1.0).then_some(())
    })
    .await;
    let metrics = server.scrape().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"vigil_notifications_total{notifier="ward-wecom",outcome="failed"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"vigil_notifier_fallbacks_total{notifier="ward-wecom",fallback="oncall",outcome="sent"}"#
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(wecom.seen().len(), 1, "a permanent failure is not retried");
    assert!(!server.stderr().contains("key=OLD"));
}
