//! The gRPC gateway load: C connections (one HTTP/2 connection each) sending
//! `ReadingBatch`es either as client streams (`Ingest.Publish`) or unary calls
//! (`Ingest.PublishBatch`), open-loop at a rate or closed-loop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use vigil_proto::v1;
use vigil_proto::v1::ingest_client::IngestClient;

use crate::mqtt_load::{now_wall, wall_ms};
use crate::readings::{grpc_reading, ValueTable};

/// Unary calls in flight per connection.
const UNARY_CONCURRENCY: usize = 4;

#[derive(Debug, Clone)]
pub struct GrpcLoad {
    pub url: String,
    pub connections: usize,
    /// Readings per `ReadingBatch`.
    pub batch: usize,
    pub streaming: bool,
    pub patients: usize,
    /// Consecutive readings of one patient in a batch (a gateway forwards a device's
    /// upload together: 9 = every metric of a patient).
    pub per_patient: usize,
    /// Offered readings per second over all connections; 0 = closed loop.
    pub rate: f64,
    pub duration: Duration,
    pub tag: String,
}

#[derive(Debug, Clone, Default)]
pub struct GrpcSent {
    pub readings: u64,
    /// Readings the server acknowledged as accepted (`PublishAck.accepted`).
    pub accepted: u64,
    pub rejected: u64,
    pub started: Option<Instant>,
    pub elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    readings: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// Batch templates covering every patient of one connection (patient ids and metrics
/// allocated once, times filled in per send), sent in turn: each patient gets a reading
/// every `templates` batches, as a fleet would, not all of them every batch.
struct Batches {
    templates: Vec<v1::ReadingBatch>,
}

impl Batches {
    fn new(load: &GrpcLoad, connection: usize, table: &ValueTable) -> Batches {
        // This connection's patients: every `connections`-th one.
        let mine: Vec<u64> = (connection as u64..load.patients.max(1) as u64)
            .step_by(load.connections.max(1))
            .collect();
        let mine = if mine.is_empty() { vec![0] } else { mine };
        let count = (mine.len() * load.per_patient.max(1))
            .div_ceil(load.batch)
            .max(1);
        let templates = (0..count)
            .map(|t| v1::ReadingBatch {
                readings: (0..load.batch)
                    .map(|i| {
                        let k = t * load.batch + i;
                        let run = load.per_patient.max(1);
                        let p = mine[(k / run) % mine.len()];
                        let patient = format!("{}g{p}", load.tag);
                        grpc_reading(table, &patient, k as u64, 0)
                    })
                    .collect(),
            })
            .collect();
        Batches { templates }
    }

    /// Batch number `n`, stamped `ts_ms`.
    fn at(&self, n: u64, ts_ms: i64) -> v1::ReadingBatch {
        let mut b = self.templates[(n % self.templates.len() as u64) as usize].clone();
        for r in &mut b.readings {
            r.ts_ms = ts_ms;
        }
        b
    }
}

/// Sends the batches a producer task puts on `rx` as one `Ingest.Publish` stream; once
/// the producer returns how many readings it made, checks that the server accepted every
/// one, and returns that count.
pub async fn publish_checked(
    client: &mut IngestClient<tonic::transport::Channel>,
    rx: tokio::sync::mpsc::Receiver<v1::ReadingBatch>,
    producer: tokio::task::JoinHandle<u64>,
) -> anyhow::Result<u64> {
    let ack = client
        .publish(ReceiverStream::new(rx))
        .await
        .context("Ingest.Publish")?
        .into_inner();
    let n = producer.await?;
    anyhow::ensure!(
        ack.accepted == n,
        "server accepted {} of {n} readings ({} rejected: {:?})",
        ack.accepted,
        ack.rejected,
        ack.rejections.first()
    );
    Ok(n)
}

/// [`run`] on a load it owns (for loads run side by side).
pub async fn run_owned(load: GrpcLoad) -> anyhow::Result<GrpcSent> {
    run(&load).await
}

pub async fn run(load: &GrpcLoad) -> anyhow::Result<GrpcSent> {
    anyhow::ensure!(load.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(load.batch > 0, "--batch must be at least 1");
    let table = ValueTable::default();
    let counters = Arc::new(Counters::default());
    let mut clients = Vec::new();
    for _ in 0..load.connections {
        // One Channel per connection: tonic multiplexes calls on a Channel's one HTTP/2
        // connection, as a gateway's client would.
        let client = IngestClient::connect(load.url.clone())
            .await
            .with_context(|| format!("connecting to gRPC at {}", load.url))?
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        clients.push(client);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + load.duration;
    let reference = now_wall();
    let batch_rate = load.rate / load.batch as f64 / load.connections as f64;
    let mut tasks = JoinSet::new();
    for (c, client) in clients.into_iter().enumerate() {
        let batches = Arc::new(Batches::new(load, c, &table));
        let counters = counters.clone();
        let schedule = Schedule {
            start,
            end,
            rate: batch_rate,
            reference,
        };
        if load.streaming {
            tasks.spawn(stream_batches(client, batches, schedule, counters));
        } else {
            for _ in 0..UNARY_CONCURRENCY {
                let schedule = Schedule {
                    rate: batch_rate / UNARY_CONCURRENCY as f64,
                    ..schedule
                };
                tasks.spawn(unary_batches(
                    client.clone(),
                    batches.clone(),
                    schedule,
                    counters.clone(),
                ));
            }
        }
    }
    let mut last = start;
    while let Some(r) = tasks.join_next().await {
        last = last.max(r??);
    }
    Ok(GrpcSent {
        readings: counters.readings.load(Ordering::Relaxed),
        accepted: counters.accepted.load(Ordering::Relaxed),
        rejected: counters.rejected.load(Ordering::Relaxed),
        started: Some(start),
        elapsed: last.saturating_duration_since(start),
    })
}

#[derive(Clone, Copy)]
struct Schedule {
    start: Instant,
    end: Instant,
    /// Batches per second; 0 = as fast as possible.
    rate: f64,
    reference: (Instant, i64),
}

impl Schedule {
    /// Waits for batch `n`'s intended send time; `None` once the run is over.
    async fn wait(&self, n: u64) -> Option<Instant> {
        let at = if self.rate > 0.0 {
            self.start + Duration::from_secs_f64(n as f64 / self.rate)
        } else {
            self.start.max(Instant::now())
        };
        if at >= self.end {
            return None;
        }
        tokio::time::sleep_until(at.into()).await;
        Some(at)
    }
}

async fn stream_batches(
    mut client: IngestClient<tonic::transport::Channel>,
    batches: Arc<Batches>,
    schedule: Schedule,
    counters: Arc<Counters>,
) -> anyhow::Result<Instant> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Some(at) = schedule.wait(n).await {
                let batch = batches.at(n, wall_ms(schedule.reference, at));
                let len = batch.readings.len() as u64;
                if tx.send(batch).await.is_err() {
                    break;
                }
                counters.readings.fetch_add(len, Ordering::Relaxed);
                n += 1;
            }
            Instant::now()
        })
    };
    let ack = client
        .publish(ReceiverStream::new(rx))
        .await
        .context("Ingest.Publish stream")?
        .into_inner();
    counters.accepted.fetch_add(ack.accepted, Ordering::Relaxed);
    counters.rejected.fetch_add(ack.rejected, Ordering::Relaxed);
    Ok(producer.await?)
}

async fn unary_batches(
    mut client: IngestClient<tonic::transport::Channel>,
    batches: Arc<Batches>,
    schedule: Schedule,
    counters: Arc<Counters>,
) -> anyhow::Result<Instant> {
    let mut n = 0;
    let mut last = schedule.start;
    while let Some(at) = schedule.wait(n).await {
        let batch = batches.at(n, wall_ms(schedule.reference, at));
        counters
            .readings
            .fetch_add(batch.readings.len() as u64, Ordering::Relaxed);
        let ack = client
            .publish_batch(batch)
            .await
            .context("Ingest.PublishBatch")?
            .into_inner();
        counters.accepted.fetch_add(ack.accepted, Ordering::Relaxed);
        counters.rejected.fetch_add(ack.rejected, Ordering::Relaxed);
        last = Instant::now();
        n += 1;
    }
    Ok(last)
}
