//! The MQTT fleet: N devices, each its own TCP connection, publishing readings of their
//! patients at QoS 0 or 1, either open-loop (a fixed schedule of intended send times,
//! caught up in bursts when the generator falls behind, never skipped) or closed-loop (as
//! fast as TCP takes them).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::mqtt_wire::{self, drain_frames, put_publish, PUBACK};
use crate::readings::{put_payload, ValueTable};

/// Most publishes one device writes in one system call.
const BURST: u64 = 128;

#[derive(Debug, Clone)]
pub struct MqttLoad {
    pub broker: SocketAddr,
    pub devices: usize,
    /// Patients in all, spread over the devices (at least one per device).
    pub patients: usize,
    /// Offered readings per second over all devices; 0 = closed loop.
    pub rate: f64,
    /// Readings per publish (1 = one JSON object, more = a JSON array).
    pub batch: usize,
    pub qos: u8,
    /// Unacknowledged QoS 1 publishes per device.
    pub inflight: usize,
    pub duration: Duration,
    /// Prefix of patient ids and client ids, unique per run.
    pub tag: String,
}

#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub publishes: u64,
    pub readings: u64,
    /// PUBACKs received (QoS 1).
    pub acked: u64,
    /// The common start of every device.
    pub started: Option<Instant>,
    /// From the common start to the last write.
    pub elapsed: Duration,
}

/// Milliseconds since the Unix epoch at `at`, given a reference pair.
pub fn wall_ms(reference: (Instant, i64), at: Instant) -> i64 {
    reference.1 + at.saturating_duration_since(reference.0).as_millis() as i64
}

pub fn now_wall() -> (Instant, i64) {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    (Instant::now(), ms)
}

struct Counters {
    publishes: AtomicU64,
    readings: AtomicU64,
    acked: AtomicU64,
}

/// Connects every device, starts them together, runs for `duration`, then (QoS 1) waits
/// for the outstanding PUBACKs.
pub async fn run(load: &MqttLoad) -> anyhow::Result<Sent> {
    anyhow::ensure!(load.devices > 0, "--devices must be at least 1");
    anyhow::ensure!(load.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(load.qos <= 1, "--qos must be 0 or 1");
    let mut streams = Vec::with_capacity(load.devices);
    let mut connecting = JoinSet::new();
    for d in 0..load.devices {
        let (broker, id) = (load.broker, format!("{}dev-{d}", load.tag));
        connecting.spawn(async move { (d, mqtt_wire::connect(broker, &id).await) });
    }
    while let Some(r) = connecting.join_next().await {
        let (d, stream) = r?;
        streams.push((d, stream.context("connecting a device")?));
    }
    streams.sort_by_key(|(d, _)| *d);

    let counters = Arc::new(Counters {
        publishes: AtomicU64::new(0),
        readings: AtomicU64::new(0),
        acked: AtomicU64::new(0),
    });
    let table = Arc::new(ValueTable::default());
    let per_device = load.patients.max(load.devices).div_ceil(load.devices);
    let start = Instant::now() + Duration::from_millis(50);
    let reference = now_wall();
    let mut tasks = JoinSet::new();
    for (d, stream) in streams {
        let topics: Vec<Vec<u8>> = (0..per_device)
            .map(|k| format!("vitals/{}p{d}-{k}", load.tag).into_bytes())
            .collect();
        let device = Device {
            topics,
            load: load.clone(),
            table: table.clone(),
            counters: counters.clone(),
            start,
            reference,
        };
        tasks.spawn(device.run(stream));
    }
    let mut last_write = start;
    while let Some(r) = tasks.join_next().await {
        last_write = last_write.max(r??);
    }
    Ok(Sent {
        publishes: counters.publishes.load(Ordering::Relaxed),
        readings: counters.readings.load(Ordering::Relaxed),
        acked: counters.acked.load(Ordering::Relaxed),
        started: Some(start),
        elapsed: last_write.saturating_duration_since(start),
    })
}

struct Device {
    topics: Vec<Vec<u8>>,
    load: MqttLoad,
    table: Arc<ValueTable>,
    counters: Arc<Counters>,
    start: Instant,
    reference: (Instant, i64),
}

impl Device {
    /// Returns when its last write happened.
    async fn run(self, stream: tokio::net::TcpStream) -> anyhow::Result<Instant> {
        let (mut rx, mut tx) = stream.into_split();
        let qos1 = self.load.qos == 1;
        let window = Arc::new(Semaphore::new(self.load.inflight.max(1)));
        let outstanding = Arc::new(AtomicU64::new(0));
        let reader = {
            let (window, counters, outstanding) =
                (window.clone(), self.counters.clone(), outstanding.clone());
            tokio::spawn(async move {
                let mut buf = BytesMut::with_capacity(64 * 1024);
                loop {
                    match rx.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let mut acks = 0;
                    if drain_frames(&mut buf, |kind, _| acks += (kind == PUBACK) as usize).is_err()
                    {
                        return;
                    }
                    if acks > 0 {
                        window.add_permits(acks);
                        counters.acked.fetch_add(acks as u64, Ordering::Relaxed);
                        outstanding.fetch_sub(acks as u64, Ordering::Relaxed);
                    }
                }
            })
        };

        let pub_rate = self.load.rate / self.load.batch as f64 / self.load.devices as f64;
        let end = self.start + self.load.duration;
        let batch = self.load.batch;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut payload = Vec::with_capacity(128 * batch);
        let mut sent: u64 = 0;
        let mut pkid: u16 = 0;
        let mut last_write = self.start;
        tokio::time::sleep_until(self.start.into()).await;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let due = if pub_rate > 0.0 {
                (now.duration_since(self.start).as_secs_f64() * pub_rate) as u64
            } else {
                sent + BURST
            };
            if sent >= due {
                let next = self.start + Duration::from_secs_f64((sent + 1) as f64 / pub_rate);
                tokio::time::sleep_until(next.min(end).into()).await;
                continue;
            }
            let mut n = (due - sent).min(BURST);
            if qos1 {
                n = n.min(self.load.inflight.max(1) as u64);
                window
                    .acquire_many(n as u32)
                    .await
                    .context("inflight window closed")?
                    .forget();
                outstanding.fetch_add(n, Ordering::Relaxed);
            }
            buf.clear();
            for i in sent..sent + n {
                let intended = if pub_rate > 0.0 {
                    self.start + Duration::from_secs_f64(i as f64 / pub_rate)
                } else {
                    now
                };
                let ts = wall_ms(self.reference, intended);
                let k = (i % self.topics.len() as u64) as usize;
                let reading_no = (i / self.topics.len() as u64) * batch as u64;
                put_payload(&mut payload, &self.table, reading_no, batch, ts);
                let id = if qos1 {
                    pkid = pkid.checked_add(1).unwrap_or(1);
                    pkid
                } else {
                    0
                };
                put_publish(&mut buf, &self.topics[k], &payload, id);
            }
            tx.write_all(&buf).await.context("device connection lost")?;
            last_write = Instant::now();
            sent += n;
            self.counters.publishes.fetch_add(n, Ordering::Relaxed);
            self.counters
                .readings
                .fetch_add(n * batch as u64, Ordering::Relaxed);
        }
        if qos1 {
            let deadline = Instant::now() + Duration::from_secs(30);
            while outstanding.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let _ = tx.write_all(&[0xe0, 0x00]).await; // DISCONNECT
        let _ = tx.shutdown().await;
        reader.abort();
        Ok(last_write)
    }
}
