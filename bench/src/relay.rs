//! The peer's far end: one MQTT subscriber to `vitals/#` that merely counts the PUBLISH
//! packets it receives (no decoding, no windows, no rules). Through Mosquitto this is a
//! pure relay, the floor of what an MQTT pipeline costs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use rumqttc::mqttbytes::QoS;
use tokio::io::AsyncReadExt;

use crate::mqtt_wire::{self, drain_frames, PUBLISH};

/// A running counting subscriber.
pub struct Counter {
    pub received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Counter {
    pub async fn subscribe(broker: SocketAddr, client_id: &str) -> anyhow::Result<Counter> {
        let mut stream = mqtt_wire::connect(broker, client_id).await?;
        mqtt_wire::subscribe(&mut stream, "vitals/#", QoS::AtMostOnce).await?;
        let received = Arc::new(AtomicU64::new(0));
        let count = received.clone();
        let task = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(256 * 1024);
            loop {
                match stream.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let mut n = 0;
                if drain_frames(&mut buf, |kind, _| n += (kind == PUBLISH) as u64).is_err() {
                    return;
                }
                count.fetch_add(n, Ordering::Relaxed);
                if buf.capacity() - buf.len() < 64 * 1024 {
                    buf.reserve(256 * 1024);
                }
            }
        });
        Ok(Counter { received, task })
    }

    pub fn count(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
