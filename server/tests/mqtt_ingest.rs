//! MQTT ingest against the real server: readings become alerts on a gRPC stream, every bad
//! input is a counted rejection that costs nothing else, duplicates are dropped, broker
//! limits hold, and stock clients work.

mod common;

use std::time::Duration;

use common::*;
use vigil_proto::v1;

#[tokio::test]
async fn high_reading_over_mqtt_reaches_grpc_subscriber() {
    let server = Server::start(None);
    let mut stream = subscribe(
        &server,
        v1::SubscribeRequest {
            care_teams: vec!["default".into()],
            ..Default::default()
        },
    )
    .await;
    let mut cuff = server.device("cuff-17").await;
    let ts = now_ms();
    cuff.publish(
        "vitals/p-001",
        format!(r#"{{"metric":"systolic_bp","value":201,"unit":"mmHg","ts":{ts},"device":"cuff-17","seq":1}}"#),
    )
    .await;
    let event = next_event(&mut stream).await;
    assert_eq!(event.kind, v1::EventKind::Raised as i32);
    let alert = event.alert.unwrap();
    assert_eq!(alert.patient_id, "p-001");
    assert_eq!(alert.rule_id, "severe_hypertension_systolic");
    assert_eq!(alert.severity, v1::Severity::High as i32);
    assert_eq!(alert.metric, "systolic_bp");
    assert_eq!(alert.value, 201.0);
    assert_eq!(alert.state, v1::AlertState::Active as i32);
    assert_eq!(alert.care_team, "default");
    assert_eq!(alert.observed_at_ms, ts);
    assert!(alert.raised_at_ms >= ts);
    assert!(event.seq >= 1);
    assert_eq!(
        server
            .metric("vigil_alerts_raised_total{severity=\"high\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn every_bad_input_is_counted_and_the_connection_survives() {
    let server = Server::start(None);
    let mut dev = server.device("fuzzy-device").await;
    let now = now_ms();
    let deep = "[".repeat(10_000);
    let huge = format!("1{}", "0".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("vitals/", b"72".to_vec(), "bad_topic"),
        ("vitals//heart_rate", b"72".to_vec(), "bad_topic"),
        ("vitals/p1/heart_rate/extra", b"72".to_vec(), "bad_topic"),
        ("vitals/p1", Vec::new(), "malformed"),
        ("vitals/p1", b"\xff\xfe\xfd".to_vec(), "malformed"),
        ("vitals/p1/heart_rate", b"NaN".to_vec(), "malformed"),
        ("vitals/p1/heart_rate", b"inf".to_vec(), "malformed"),
        ("vitals/p1/heart_rate", huge.into_bytes(), "malformed"),
        ("vitals/p1", deep.into_bytes(), "malformed"),
        (
            "vitals/p1",
            br#"{"metric":"heart_rate","value":"fast"}"#.to_vec(),
            "malformed",
        ),
        (
            "vitals/p1",
            br#"{"metric":"pulse","value":70}"#.to_vec(),
            "unknown_metric",
        ),
        (
            "vitals/p1",
            br#"{"metric":"heart_rate","value":70,"unit":"mmHg"}"#.to_vec(),
            "unknown_unit",
        ),
        (
            "vitals/p1",
            br#"{"metric":"heart_rate","value":500}"#.to_vec(),
            "implausible",
        ),
        (
            "vitals/p1",
            br#"{"metric":"heart_rate","value":70,"ts":"yesterday"}"#.to_vec(),
            "bad_timestamp",
        ),
        (
            "vitals/p1",
            format!(
                r#"{{"metric":"heart_rate","value":70,"ts":{}}}"#,
                now - 8 * 86_400_000
            )
            .into_bytes(),
            "too_old",
        ),
        (
            "vitals/p1",
            format!(
                r#"{{"metric":"heart_rate","value":70,"ts":{}}}"#,
                now + 600_000
            )
            .into_bytes(),
            "in_future",
        ),
    ];
    let mut expected: std::collections::BTreeMap<&str, f64> = Default::default();
    for (topic, payload, reason) in &cases {
        dev.publish(topic, payload.clone()).await;
        *expected.entry(reason).or_default() += 1.0;
    }
    // One bad element in an array never costs its neighbours.
    dev.publish("vitals/p1", r#"[{"metric":"spo2","value":97},{"metric":"spo2","value":"x"},{"metric":"heart_rate","value":70}]"#).await;
    *expected.entry("malformed").or_default() += 1.0;
    // The same connection still delivers good readings, in every accepted form.
    dev.publish("vitals/p1/heart_rate", "72.5").await;
    dev.publish(
        "vitals/p1/8867-4",
        r#"{"value":73,"ts":"2026-01-01T00:00:00+01:00"}"#
            .replace("2026-01-01T00:00:00+01:00", &rfc3339_minutes_ago(3)),
    )
    .await;
    dev.publish(
        "vitals/p1",
        r#"{"readings":[{"metric":"temperature","value":98.6,"unit":"[degF]"}]}"#,
    )
    .await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 5.0)
            .await,
        5.0,
        "{}",
        server.stderr()
    );
    let text = server.scrape().await;
    for (reason, want) in &expected {
        let got = metric_value(
            &text,
            &format!("vigil_readings_rejected_total{{reason=\"{reason}\"}}"),
        );
        assert_eq!(got, *want, "reason {reason}");
    }
    assert!(!server.stderr().contains("panicked"));
}

fn rfc3339_minutes_ago(minutes: i64) -> String {
    let t = time::OffsetDateTime::now_utc() - time::Duration::minutes(minutes);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn not_enrolled_and_no_consent_are_rejected() {
    let config = r#"
[[care_teams]]
id = "cardiology"

[[patients]]
id = "p-ok"
care_team = "cardiology"
consent = true

[[patients]]
id = "p-withdrawn"
care_team = "cardiology"
consent = false
"#;
    let server = Server::start(Some(config));
    let mut dev = server.device("d1").await;
    dev.publish("vitals/stranger/heart_rate", "70").await;
    dev.publish("vitals/p-withdrawn/heart_rate", "70").await;
    dev.publish("vitals/p-ok/heart_rate", "70").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
            .await,
        1.0
    );
    assert_eq!(
        server
            .wait_metric(
                "vigil_readings_rejected_total{reason=\"not_enrolled\"}",
                1.0
            )
            .await,
        1.0
    );
    assert_eq!(
        server
            .wait_metric("vigil_readings_rejected_total{reason=\"no_consent\"}", 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn redelivered_seq_is_dropped_as_duplicate() {
    let server = Server::start(None);
    let mut dev = server.device("cuff-9").await;
    let ts = now_ms();
    let payload =
        format!(r#"{{"metric":"heart_rate","value":70,"ts":{ts},"device":"cuff-9","seq":42}}"#);
    dev.publish("vitals/p1", payload.clone()).await;
    dev.publish("vitals/p1", payload).await;
    let next = format!(
        r#"{{"metric":"heart_rate","value":71,"ts":{},"device":"cuff-9","seq":43}}"#,
        ts + 1000
    );
    dev.publish("vitals/p1", next).await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 2.0)
            .await,
        2.0
    );
    assert_eq!(
        server
            .wait_metric("vigil_readings_rejected_total{reason=\"duplicate\"}", 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn late_upload_is_judged_by_event_time() {
    let config = r#"
[[rules]]
id = "tachycardia"
metric = "heart_rate"
above = 120
for = "30s"
clear = 110
severity = "high"
"#;
    let server = Server::start(Some(config));
    let mut stream = subscribe(&server, v1::SubscribeRequest::default()).await;
    let mut dev = server.device("patch-1").await;
    // Two days ago the patch recorded 40 s of tachycardia; it uploads only now.
    let t0 = now_ms() - 2 * 86_400_000;
    let batch: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"metric":"heart_rate","value":130,"ts":{}}}"#,
                t0 + i * 10_000
            )
        })
        .collect();
    dev.publish("vitals/p-late", format!("[{}]", batch.join(",")))
        .await;
    let event = next_event(&mut stream).await;
    let alert = event.alert.unwrap();
    assert_eq!(alert.rule_id, "tachycardia");
    assert_eq!(
        alert.observed_at_ms,
        t0 + 30_000,
        "fired when 30 s had passed in event time"
    );
}

#[tokio::test]
async fn oversized_payload_disconnects_only_the_offender() {
    let server = Server::start(Some("[mqtt]\nmax_payload_size = 1024\n"));
    let mut good = server.device("good").await;
    let mut bad = server.device("bad").await;
    bad.client
        .publish(
            "vitals/p1",
            rumqttc::QoS::AtLeastOnce,
            false,
            vec![b' '; 4096],
        )
        .await
        .unwrap();
    assert!(
        bad.is_disconnected_within(Duration::from_secs(5)).await,
        "oversized publish must cost the connection"
    );
    good.publish("vitals/p2/heart_rate", "70").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn thousands_of_publishes_do_not_stall_the_local_link() {
    // More than the router's per-link outgoing buffer: the consumer must resume the link.
    let server = Server::start(None);
    let dev = server.device("burst").await;
    let Device {
        client,
        mut eventloop,
    } = dev;
    let n = 5000;
    let pump = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    });
    for i in 0..n {
        client
            .publish(
                format!("vitals/p{}/heart_rate", i % 50),
                rumqttc::QoS::AtLeastOnce,
                false,
                "70",
            )
            .await
            .unwrap();
    }
    let got = server
        .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", n as f64)
        .await;
    pump.abort();
    assert_eq!(got, n as f64);
}

/// A gateway's burst of batched QoS 1 publishes, some with a bad element and one near
/// the payload limit: every good reading is taken and every bad element counted, through
/// the decoder's fast path (whole arrays) and its element-by-element path alike, while the
/// session's reads grow past its initial buffer and back.
#[tokio::test]
async fn a_burst_of_batched_publishes_is_taken_whole() {
    let server = Server::start(None);
    let Device {
        client,
        mut eventloop,
    } = server.device("gateway").await;
    let pump = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    });
    let batch = |n: usize, bad_at: Option<usize>| {
        let elements: Vec<String> = (0..n)
            .map(|i| {
                if Some(i) == bad_at {
                    r#"{"metric":"heart_rate","value":"high"}"#.to_string()
                } else {
                    format!(
                        r#"{{"metric":"heart_rate","value":{},"device":"gw-1"}}"#,
                        60 + i % 40
                    )
                }
            })
            .collect();
        format!("[{}]", elements.join(","))
    };
    let (publishes, per_publish) = (400, 20);
    let mut good = 0usize;
    let mut bad = 0usize;
    for i in 0..publishes {
        let bad_at = (i % 10 == 3).then_some(i % per_publish);
        good += per_publish - usize::from(bad_at.is_some());
        bad += usize::from(bad_at.is_some());
        client
            .publish(
                format!("vitals/gw-p{}", i % 50),
                rumqttc::QoS::AtLeastOnce,
                false,
                batch(per_publish, bad_at),
            )
            .await
            .unwrap();
    }
    // One payload larger than a session's largest read, under the 64 KiB payload limit.
    let big = batch(1000, None);
    assert!(
        big.len() > 48 * 1024 && big.len() < 64 * 1024,
        "{}",
        big.len()
    );
    good += 1000;
    client
        .publish("vitals/gw-big", rumqttc::QoS::AtLeastOnce, false, big)
        .await
        .unwrap();
    let ingested = server
        .wait_metric(
            "vigil_readings_ingested_total{source=\"mqtt\"}",
            good as f64,
        )
        .await;
    let rejected = server
        .wait_metric(
            "vigil_readings_rejected_total{reason=\"malformed\"}",
            bad as f64,
        )
        .await;
    pump.abort();
    assert_eq!((ingested, rejected), (good as f64, bad as f64));
}

#[tokio::test]
async fn stock_mosquitto_pub_works() {
    if !mosquitto_pub_available() {
        return;
    }
    let server = Server::start(None);
    for (qos, payload) in [("0", "72"), ("1", r#"{"metric":"spo2","value":96}"#)] {
        let topic = if qos == "0" {
            "vitals/p-m/heart_rate"
        } else {
            "vitals/p-m"
        };
        let status = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &server.mqtt.port().to_string(),
                "-V",
                "mqttv311",
                "-q",
                qos,
                "-t",
                topic,
                "-m",
                payload,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 2.0)
            .await,
        2.0
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_without_harm() {
    let server = Server::start(Some("[mqtt]\nmax_connections = 2\n"));
    let mut first = server.device("one").await;
    let _second = server.device("two").await;
    let mut options = rumqttc::MqttOptions::new("three", "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 8);
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => {
                    return ack.code != rumqttc::ConnectReturnCode::Success;
                }
                Ok(_) => {}
                Err(_) => return true,
            }
        }
    })
    .await
    .unwrap_or(true);
    assert!(refused, "a third connection must not be accepted");
    first.publish("vitals/p1/heart_rate", "70").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
            .await,
        1.0
    );
}

#[tokio::test]
async fn mqtt_5_is_refused_with_connack_unacceptable_protocol() {
    use tokio::io::AsyncReadExt;
    let server = Server::start(None);
    let (mut stream, connack) = raw_connect(&server, 5, "v5", 30).await;
    assert_eq!(
        connack,
        [0x20, 0x02, 0x00, 0x01],
        "CONNACK 1: unacceptable protocol version"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "then the connection is closed");
}

/// A raw CONNECT (protocol `level`: 4 for MQTT 3.1.1, 5 with an empty property list; clean
/// session; no client library, so nothing pings behind the test's back) and the 4-byte
/// CONNACK it gets.
async fn raw_connect(
    server: &Server,
    level: u8,
    client_id: &str,
    keep_alive: u16,
) -> (tokio::net::TcpStream, [u8; 4]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.mqtt).await.unwrap();
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', level, 0x02];
    body.extend(keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0x00);
    }
    body.extend((client_id.len() as u16).to_be_bytes());
    body.extend(client_id.as_bytes());
    let mut connect = vec![0x10, body.len() as u8];
    connect.extend(body);
    stream.write_all(&connect).await.unwrap();
    let mut connack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut connack))
        .await
        .expect("CONNACK within 5 s")
        .unwrap();
    (stream, connack)
}

/// An MQTT 3.1.1 session, accepted.
async fn raw_session(server: &Server, client_id: &str, keep_alive: u16) -> tokio::net::TcpStream {
    let (stream, connack) = raw_connect(server, 4, client_id, keep_alive).await;
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "accepted");
    stream
}

/// Reads until the server closes the connection (`Some(elapsed)`) or `within` passes
/// (`None`), discarding what comes (PINGRESPs).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = std::time::Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout_at((start + within).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_silent_device_is_dropped_after_one_and_a_half_keep_alives() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(None);
    // Keep-alive 1 s: silent, it is closed after 1.5 s (MQTT 3.1.1 §3.1.2.10).
    let mut silent = raw_session(&server, "silent", 1).await;
    let closed = closed_within(&mut silent, Duration::from_secs(5))
        .await
        .expect("a silent session is closed");
    assert!(
        closed >= Duration::from_millis(1400) && closed < Duration::from_millis(3000),
        "closed after {closed:?}"
    );
    // One that pings every 0.5 s stays, well past the first 1.5 s.
    let mut chatty = raw_session(&server, "chatty", 1).await;
    for _ in 0..8 {
        chatty.write_all(&[0xC0, 0x00]).await.unwrap(); // PINGREQ
        assert_eq!(
            closed_within(&mut chatty, Duration::from_millis(500)).await,
            None,
            "a device that keeps talking is kept"
        );
    }
}

#[tokio::test]
async fn a_second_connection_with_the_same_client_id_takes_over() {
    let server = Server::start(None);
    let mut first = raw_session(&server, "patch-7", 30).await;
    let mut second = raw_session(&server, "patch-7", 30).await;
    assert!(
        closed_within(&mut first, Duration::from_secs(5))
            .await
            .is_some(),
        "the first connection is closed"
    );
    assert_eq!(
        closed_within(&mut second, Duration::from_millis(500)).await,
        None,
        "the second one stays"
    );
}
