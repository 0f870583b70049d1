//! Whole clusters for tests: Vigil nodes on real nats-server processes, devices that send
//! through them, and the alert stream read with a NATS client.

use std::time::Duration;

use futures_util::StreamExt;

use super::nats::NatsServer;
use super::{eventually, Server};

pub const PARTITIONS: u32 = 24;

/// A Vigil node's configuration: open enrolment, one rule (heart rate above 120, cleared
/// at or below it), `[cluster]` on `urls`.
pub fn node_config(node: &str, urls: &[String], replicas: u8) -> String {
    node_config_with(node, urls, replicas, "")
}

pub fn node_config_with(node: &str, urls: &[String], replicas: u8, rules: &str) -> String {
    let urls = urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[cluster]
nats_urls = [{urls}]
node_id = "{node}"
partitions = {PARTITIONS}
namespace = "ward"
replicas = {replicas}

[[rules]]
id = "hr_high"
metric = "heart_rate"
above = 120
severity = "high"
{rules}"#
    )
}

pub fn start_node(node: &str, urls: &[String], replicas: u8) -> Server {
    Server::start(Some(&node_config(node, urls, replicas)))
}

/// One nats-server (replicas 1) and two nodes, `vigil-a` and `vigil-b`, each started with
/// `config(node, urls)`, once they share the partitions.
pub async fn two_nodes(
    dir: &std::path::Path,
    config: impl Fn(&str, &[String]) -> String,
) -> (NatsServer, Vec<String>, Server, Server) {
    let nats = super::nats::start(dir, "solo", "");
    let urls = vec![nats.url()];
    super::nats::wait_for_jetstream(&urls[0], 1).await;
    let a = Server::start(Some(&config("vigil-a", &urls)));
    let b = Server::start(Some(&config("vigil-b", &urls)));
    wait_balanced(&[&a, &b]).await;
    (nats, urls, a, b)
}

/// Partitions owned, summed over `nodes`.
pub async fn owned(nodes: &[&Server]) -> f64 {
    let mut sum = 0.0;
    for n in nodes {
        sum += n.metric("vigil_cluster_partitions_owned").await;
    }
    sum
}

/// Waits until `nodes` together own every partition, each its share (none idle).
pub async fn wait_balanced(nodes: &[&Server]) {
    eventually(Duration::from_secs(60), "every partition owned", || async {
        let mut each = Vec::new();
        for n in nodes {
            each.push(n.metric("vigil_cluster_partitions_owned").await);
        }
        (each.iter().sum::<f64>() == f64::from(PARTITIONS) && each.iter().all(|&o| o > 0.0))
            .then_some(())
    })
    .await;
}

/// A heart rate for `patient`, sent over MQTT (QoS 1) through `node`: returns once the node
/// acknowledged it, that is once the readings stream stored it. When the node closes the
/// connection without PUBACK (the stream could not store it: a NATS server was just
/// killed and its peers elect new leaders), the device connects again and sends it again,
/// as a device does.
pub async fn heart_rate(node: &Server, patient: &str, bpm: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (topic, payload) = (
        format!("vitals/{patient}/heart_rate"),
        format!(r#"{{"value": {bpm}}}"#),
    );
    loop {
        match send_once(node, &format!("{patient}-strap"), &topic, &payload).await {
            Ok(()) => return,
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "{patient}: no PUBACK within 60 s: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One connection, one QoS 1 publish, its PUBACK.
pub async fn send_once(
    node: &Server,
    client_id: &str,
    topic: &str,
    payload: &str,
) -> Result<(), String> {
    send_as(node, client_id, None, topic, payload).await
}

/// One connection (with `login`'s user name and password, if any), one QoS 1 publish, its
/// PUBACK.
pub async fn send_as(
    node: &Server,
    client_id: &str,
    login: Option<(&str, &str)>,
    topic: &str,
    payload: &str,
) -> Result<(), String> {
    use rumqttc::{Event, MqttOptions, Packet, QoS};
    let mut options = MqttOptions::new(client_id, node.mqtt.ip().to_string(), node.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let mut device = super::connack(options).await?;
    device
        .client
        .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
        .await
        .map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), device.eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("{e:?}")),
            Err(_) => return Err("no PUBACK within 15 s".into()),
        }
    }
    let _ = device.client.disconnect().await;
    Ok(())
}

/// Every alert event in the cluster's alert stream, read with a NATS client: (kind, patient,
/// alert id), in stream order, markers left out. `None` while JetStream does not answer (a
/// server was just killed and its peers elect new leaders).
pub async fn stream_events(url: &str) -> Option<Vec<(String, String, String)>> {
    let events = stream_json(url).await?;
    Some(
        events
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["alert"]["patient_id"].as_str().unwrap().to_string(),
                    e["alert"]["id"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    )
}

/// The alert stream's events as JSON, markers left out.
pub async fn stream_json(url: &str) -> Option<Vec<serde_json::Value>> {
    let js = async_nats::jetstream::new(super::nats::client(url).await);
    let stream = js.get_stream("ward-alerts").await.ok()?;
    let mut out = Vec::new();
    let last = stream.cached_info().state.last_sequence;
    if last == 0 {
        return Some(out);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .ok()?;
    let mut messages = consumer.messages().await.ok()?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .ok()??
            .ok()?;
        let seq = m.info().ok()?.stream_sequence;
        if !m.payload.is_empty() {
            out.push(serde_json::from_slice(&m.payload).unwrap());
        }
        if seq >= last {
            return Some(out);
        }
    }
}
