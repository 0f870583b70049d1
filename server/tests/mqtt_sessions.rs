//! MQTT 3.1.1 persistent sessions, redelivery and retained messages against the real
//! server, with real clients (rumqttc, and Mosquitto's `mosquitto_sub -c`).

mod common;

use std::time::Duration;

use common::*;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};

const AWAY: &str = "vigil_mqtt_persistent_sessions{state=\"away\"}";
const CONNECTED: &str = "vigil_mqtt_persistent_sessions{state=\"connected\"}";
const QUEUED: &str = "vigil_mqtt_queued_messages";

/// Waits until `series` reads `want`.
async fn becomes(server: &Server, series: &str, want: f64) {
    eventually(Duration::from_secs(30), series, || async {
        (server.metric(series).await == want).then_some(())
    })
    .await
}

/// A client connected with `clean` session, and whether the server said a session was
/// present.
async fn client(server: &Server, id: &str, clean: bool, manual_acks: bool) -> (Device, bool) {
    let mut options = MqttOptions::new(id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(clean);
    options.set_manual_acks(manual_acks);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
            .await
            .expect("CONNACK within 10 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                return (Device { client, eventloop }, ack.session_present);
            }
            Ok(_) => {}
            Err(e) => panic!("connect failed: {e:?}"),
        }
    }
}

/// Connects `id` with clean session 0, subscribes it to `filter`, disconnects, and waits
/// until the server counts the session away (the only one); returns whether a session was
/// present at the connect.
async fn subscribe_then_leave(server: &Server, id: &str, filter: &str) -> bool {
    let (mut app, present) = client(server, id, false, false).await;
    subscribe(&mut app, filter).await;
    leave(app).await;
    becomes(server, AWAY, 1.0).await;
    present
}

async fn subscribe(device: &mut Device, filter: &str) {
    device
        .client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = poll(&mut device.eventloop).await {
            return;
        }
    }
}

async fn poll(eventloop: &mut EventLoop) -> Event {
    tokio::time::timeout(Duration::from_secs(10), eventloop.poll())
        .await
        .expect("an MQTT event within 10 s")
        .expect("MQTT connection failed")
}

async fn next_publish(device: &mut Device) -> Publish {
    loop {
        if let Event::Incoming(Packet::Publish(p)) = poll(&mut device.eventloop).await {
            return p;
        }
    }
}

/// Disconnects cleanly (DISCONNECT sent, connection closed).
async fn leave(mut device: Device) {
    device.client.disconnect().await.unwrap();
    while device.eventloop.poll().await.is_ok() {}
}

async fn publish_retained(device: &mut Device, topic: &str, payload: &str) {
    device
        .client
        .publish(topic, QoS::AtLeastOnce, true, payload.as_bytes().to_vec())
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::PubAck(_)) = poll(&mut device.eventloop).await {
            return;
        }
    }
}

fn text(p: &Publish) -> String {
    String::from_utf8(p.payload.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_for_a_persistent_session_and_clean_session_discards_it() {
    let server = Server::start(None);
    assert!(
        !subscribe_then_leave(&server, "app-1", "notify/p-1").await,
        "a new session is not present"
    );

    let mut publisher = server.device("publisher").await;
    for m in ["m1", "m2", "m3"] {
        publisher.publish("notify/p-1", m).await;
    }
    becomes(&server, QUEUED, 3.0).await;

    let (mut app, present) = client(&server, "app-1", false, false).await;
    assert!(present, "the session was kept");
    for want in ["m1", "m2", "m3"] {
        let p = next_publish(&mut app).await;
        assert_eq!((p.topic.as_str(), text(&p).as_str()), ("notify/p-1", want));
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    // Still subscribed without subscribing again.
    publisher.publish("notify/p-1", "m4").await;
    assert_eq!(text(&next_publish(&mut app).await), "m4");
    becomes(&server, QUEUED, 0.0).await;
    leave(app).await;

    // A clean session ends the stored one.
    let (clean, present) = client(&server, "app-1", true, false).await;
    assert!(!present);
    leave(clean).await;
    becomes(&server, AWAY, 0.0).await;
    becomes(&server, CONNECTED, 0.0).await;
    let (app, present) = client(&server, "app-1", false, false).await;
    assert!(!present, "discarded by the clean session");
    leave(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_message_is_sent_again_with_dup_and_its_packet_id() {
    let server = Server::start(None);
    let (mut app, _) = client(&server, "app-2", false, true).await;
    subscribe(&mut app, "notify/p-2").await;
    let mut publisher = server.device("publisher").await;
    publisher.publish("notify/p-2", "reminder").await;
    let first = next_publish(&mut app).await;
    assert!(!first.dup);
    // The PUBACK is lost: the connection drops without one.
    drop(app);

    let (mut app, present) = client(&server, "app-2", false, true).await;
    assert!(present);
    let again = next_publish(&mut app).await;
    assert_eq!(text(&again), "reminder");
    assert!(again.dup, "a redelivery carries DUP");
    assert_eq!(again.pkid, first.pkid, "with its packet identifier");
    app.client.ack(&again).await.unwrap();
    // Acknowledged: nothing is held for the session any more.
    loop {
        tokio::select! {
            event = poll(&mut app.eventloop) => { let _ = event; }
            _ = becomes(&server, QUEUED, 0.0) => break,
        }
    }
    assert_eq!(server.metric("vigil_mqtt_redelivered_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_stored_replaced_and_cleared() {
    let server = Server::start(None);
    let mut device = server.device("dev-1").await;
    publish_retained(&mut device, "status/dev-1", "on").await;

    let mut watcher = server.device("watcher").await;
    subscribe(&mut watcher, "status/#").await;
    let p = next_publish(&mut watcher).await;
    assert_eq!((text(&p).as_str(), p.retain), ("on", true));

    // Replaced: current subscribers get it as a normal message, new ones as retained.
    publish_retained(&mut device, "status/dev-1", "off").await;
    let p = next_publish(&mut watcher).await;
    assert_eq!((text(&p).as_str(), p.retain), ("off", false));
    let mut late = server.device("late").await;
    subscribe(&mut late, "status/dev-1").await;
    let p = next_publish(&mut late).await;
    assert_eq!((text(&p).as_str(), p.retain), ("off", true));
    assert_eq!(server.metric("vigil_mqtt_retained_messages").await, 1.0);

    // An empty retained publish clears it: a new subscriber's first message is the next
    // ordinary one.
    publish_retained(&mut device, "status/dev-1", "").await;
    becomes(&server, "vigil_mqtt_retained_messages", 0.0).await;
    let mut fresh = server.device("fresh").await;
    subscribe(&mut fresh, "status/+").await;
    device.publish("status/dev-1", "marker").await;
    let p = next_publish(&mut fresh).await;
    assert_eq!((text(&p).as_str(), p.retain), ("marker", false));
    // Nothing was refused.
    assert!(server
        .scrape()
        .await
        .contains("vigil_mqtt_retained_refused_total 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_its_oldest_message_and_counts_it() {
    let server = Server::start(Some(
        "[mqtt]\nmax_queued_messages = 2\nmax_retained_messages = 1\n",
    ));
    subscribe_then_leave(&server, "app-3", "notify/p-3").await;
    let mut publisher = server.device("publisher").await;
    for m in ["1", "2", "3", "4"] {
        publisher.publish("notify/p-3", m).await;
    }
    becomes(&server, "vigil_mqtt_queued_dropped_total", 2.0).await;
    let (mut app, _) = client(&server, "app-3", false, false).await;
    assert_eq!(text(&next_publish(&mut app).await), "3");
    assert_eq!(text(&next_publish(&mut app).await), "4");
    // The retained bound: a second topic is not kept.
    publish_retained(&mut publisher, "status/a", "1").await;
    publish_retained(&mut publisher, "status/b", "1").await;
    becomes(&server, "vigil_mqtt_retained_refused_total", 1.0).await;
    assert_eq!(server.metric("vigil_mqtt_retained_messages").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_retained_messages_survive_a_graceful_restart() {
    let mut server = Server::start(None);
    subscribe_then_leave(&server, "app-4", "notify/p-4").await;
    let mut publisher = server.device("publisher").await;
    publisher.publish("notify/p-4", "before restart").await;
    publish_retained(&mut publisher, "status/p-4", "home").await;
    leave(publisher).await;
    becomes(&server, QUEUED, 1.0).await;

    let status = server.terminate(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{}", server.stderr());
    let saved = server.data().join("mqtt-sessions.bin");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by the service alone: {mode:o}");
    }
    let server = server.restart();

    let (mut app, present) = client(&server, "app-4", false, false).await;
    assert!(present, "the session came back");
    assert_eq!(text(&next_publish(&mut app).await), "before restart");
    let mut watcher = server.device("watcher").await;
    subscribe(&mut watcher, "status/p-4").await;
    let p = next_publish(&mut watcher).await;
    assert_eq!((text(&p).as_str(), p.retain), ("home", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_resumes_its_persistent_session() {
    if !mosquitto_pub_available() {
        return;
    }
    let server = Server::start(None);
    let port = server.mqtt.port().to_string();
    let sub = move |extra: &[&str]| {
        let mut cmd = std::process::Command::new("mosquitto_sub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-c",
            "-i",
            "mosq-app",
            "-q",
            "1",
        ])
        .args(["-t", "notify/p-5"])
        .args(extra);
        cmd
    };
    // Subscribes, then exits: the session stays.
    let created = sub(&["-E"]).output().unwrap();
    assert!(created.status.success(), "{created:?}");
    becomes(&server, AWAY, 1.0).await;
    let mut publisher = server.device("publisher").await;
    publisher.publish("notify/p-5", "first").await;
    publisher.publish("notify/p-5", "second").await;
    becomes(&server, QUEUED, 2.0).await;
    let mut resume = sub(&["-C", "2", "-W", "30"]);
    let resumed = tokio::task::spawn_blocking(move || resume.output())
        .await
        .unwrap()
        .unwrap();
    assert!(resumed.status.success(), "{resumed:?}");
    assert_eq!(String::from_utf8_lossy(&resumed.stdout), "first\nsecond\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_client_stays_away_expires() {
    let server = Server::start(Some("[mqtt]\nsession_expiry = \"1s\"\n"));
    subscribe_then_leave(&server, "app-6", "notify/p-6").await;
    // Removed by the bus's upkeep (every 10 s) once a second has passed.
    becomes(&server, "vigil_mqtt_sessions_expired_total", 1.0).await;
    becomes(&server, AWAY, 0.0).await;
    let (app, present) = client(&server, "app-6", false, false).await;
    assert!(!present, "expired");
    leave(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_saved_before_a_kill_9_come_back() {
    let server = Server::start(None);
    subscribe_then_leave(&server, "app-7", "notify/p-7").await;
    let mut publisher = server.device("publisher").await;
    publisher.publish("notify/p-7", "queued").await;
    // The periodic save (every 10 s while sessions change) has written the message.
    let saved = server.data().join("mqtt-sessions.bin");
    eventually(Duration::from_secs(30), "sessions saved", || async {
        std::fs::read(&saved)
            .ok()
            .filter(|b| b.windows(6).any(|w| w == b"queued"))
            .map(|_| ())
    })
    .await;
    let server = server.restart();
    let (mut app, present) = client(&server, "app-7", false, false).await;
    assert!(present, "the saved session came back after kill -9");
    assert_eq!(text(&next_publish(&mut app).await), "queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_never_gets_a_higher_qos_than_it_was_granted() {
    let server = Server::start(None);
    let mut at_most_once = server.device("qos0").await;
    at_most_once
        .client
        .subscribe("notify/p-8", QoS::AtMostOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(ack)) = poll(&mut at_most_once.eventloop).await {
            assert_eq!(
                ack.return_codes,
                [rumqttc::SubscribeReasonCode::Success(QoS::AtMostOnce)]
            );
            break;
        }
    }
    let mut at_least_once = server.device("qos1").await;
    subscribe(&mut at_least_once, "notify/#").await;
    let mut publisher = server.device("publisher").await;
    publisher.publish("notify/p-8", "hello").await;
    let p = next_publish(&mut at_most_once).await;
    assert_eq!((text(&p).as_str(), p.qos), ("hello", QoS::AtMostOnce));
    let p = next_publish(&mut at_least_once).await;
    assert_eq!((text(&p).as_str(), p.qos), ("hello", QoS::AtLeastOnce));
}
