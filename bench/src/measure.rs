//! One measured run: a load against Vigil (counted by the server's own
//! `vigil_readings_ingested_total`) or against the Mosquitto relay (counted by the
//! subscriber), timed from the load's start to the moment the count stops growing, so
//! a backlog still being worked off is charged to the run. Both sides are polled the
//! same way (every 20 ms), so the comparison is symmetric.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::grpc_load::{self, GrpcLoad};
use crate::mqtt_load::{self, MqttLoad};
use crate::prometheus::Scrape;
use crate::relay::Counter;

pub const INGESTED: &str = "vigil_readings_ingested_total";
pub const REJECTED: &str = "vigil_readings_rejected_total";
/// How long a count must stay still to count as settled.
const STILL: Duration = Duration::from_millis(1000);
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Serialize, Default)]
pub struct Throughput {
    /// Offered readings/s (0 = closed loop).
    pub offered: f64,
    pub sent: u64,
    pub delivered: u64,
    /// Readings the server rejected during the run (should be 0).
    pub rejected: u64,
    /// Sent (probes included) but neither delivered nor rejected once the count settled:
    /// what the broker dropped or had not delivered within the drain limit.
    pub lost: u64,
    /// Acknowledged to the sender: MQTT QoS 1 PUBACKs (one per publish) plus gRPC
    /// `PublishAck.accepted`; a cross-check of `delivered`, 0 for QoS 0.
    pub acked: u64,
    pub send_secs: f64,
    /// From the start until the count last grew.
    pub processed_secs: f64,
    /// delivered / processed_secs.
    pub rate: f64,
    /// Server CPU seconds used during the run, when known.
    pub server_cpu_secs: Option<f64>,
}

/// The median of `xs` (the lower middle for an even count); NaN when empty.
pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[(xs.len() - 1) / 2]
}

/// Polls `count` until it reaches `target`, stays still for `STILL`, or `limit` passes;
/// returns the final count and when it was first seen.
pub async fn settle<F, Fut>(
    mut count: F,
    target: u64,
    limit: Duration,
) -> anyhow::Result<(u64, Instant)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let mut last = count().await?;
    let mut seen = Instant::now();
    let cap = Instant::now() + limit;
    while last < target && seen.elapsed() < STILL && Instant::now() < cap {
        tokio::time::sleep(POLL).await;
        let now = count().await?;
        if now != last {
            last = now;
            seen = Instant::now();
        }
    }
    Ok((last, seen))
}

fn finish(
    offered: f64,
    sent: u64,
    started: Instant,
    send: Duration,
    (delivered, at): (u64, Instant),
) -> Throughput {
    let processed = at
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-9);
    Throughput {
        offered,
        sent,
        delivered,
        rejected: 0,
        lost: sent.saturating_sub(delivered),
        acked: 0,
        send_secs: send.as_secs_f64(),
        processed_secs: processed,
        rate: delivered as f64 / processed,
        server_cpu_secs: None,
    }
}

/// How long a run's backlog may take to drain after the last send before what is left
/// counts as not delivered: twice the sending time, at least 5 s.
fn drain_limit(send: Duration) -> Duration {
    (send * 2).max(Duration::from_secs(5))
}

/// Vigil's `vigil_readings_ingested_total`, all sources.
pub async fn ingested_total(metrics: SocketAddr) -> anyhow::Result<u64> {
    Ok(ingested(metrics).await?.0)
}

async fn ingested(metrics: SocketAddr) -> anyhow::Result<(u64, u64)> {
    let s = Scrape::take(metrics).await?;
    Ok((s.sum(INGESTED) as u64, s.sum(REJECTED) as u64))
}

/// MQTT load (and optionally gRPC load at the same time) into Vigil. `also` readings
/// sent by someone else during the run (latency probes) are expected too.
pub async fn vigil_run(
    metrics: SocketAddr,
    mqtt: Option<&MqttLoad>,
    grpc: Option<&GrpcLoad>,
    also: u64,
) -> anyhow::Result<Throughput> {
    let (before, rejected_before) = ingested(metrics).await?;
    let offered = mqtt.map_or(0.0, |l| l.rate) + grpc.map_or(0.0, |l| l.rate);
    let (m, g) = tokio::join!(
        async {
            match mqtt {
                Some(l) => mqtt_load::run(l).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match grpc {
                Some(l) => grpc_load::run(l).await.map(Some),
                None => Ok(None),
            }
        }
    );
    let (m, g) = (m?, g?);
    let sent = m.as_ref().map_or(0, |s| s.readings) + g.as_ref().map_or(0, |s| s.readings);
    let started = [
        m.as_ref().and_then(|s| s.started),
        g.as_ref().and_then(|s| s.started),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or_else(Instant::now);
    let send = [m.as_ref().map(|s| s.elapsed), g.as_ref().map(|s| s.elapsed)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or_default();
    let settled = settle(
        || async { Ok(ingested_total(metrics).await? - before) },
        sent + also,
        drain_limit(send),
    )
    .await?;
    let mut t = finish(offered, sent, started, send, settled);
    let (_, rejected_after) = ingested(metrics).await?;
    let grpc_rejected = g.as_ref().map_or(0, |s| s.rejected);
    t.rejected = (rejected_after - rejected_before).max(grpc_rejected);
    t.lost = (sent + also).saturating_sub(t.delivered + t.rejected);
    t.acked = m.as_ref().map_or(0, |s| s.acked) + g.as_ref().map_or(0, |s| s.accepted);
    Ok(t)
}

/// A gRPC load against the bare tonic ceiling (`tonic_ceiling`): counted by what it
/// acknowledged, from the load's start to the last acknowledgement.
pub async fn ceiling_run(load: &GrpcLoad) -> anyhow::Result<Throughput> {
    let g = grpc_load::run(load).await?;
    let started = g.started.unwrap_or_else(Instant::now);
    let mut t = finish(
        load.rate,
        g.readings,
        started,
        g.elapsed,
        (g.accepted, started + g.elapsed),
    );
    t.acked = g.accepted;
    Ok(t)
}

/// The same MQTT load through the relay peer.
pub async fn relay_run(broker: SocketAddr, load: &MqttLoad) -> anyhow::Result<Throughput> {
    let counter = Counter::subscribe(broker, &format!("{}counter", load.tag)).await?;
    let sent = mqtt_load::run(load).await?;
    let settled = settle(
        || async { Ok(counter.count()) },
        sent.publishes,
        drain_limit(sent.elapsed),
    )
    .await?;
    // The relay counts publishes; report readings (equal for one reading per publish).
    let per = load.batch as u64;
    let mut t = finish(
        load.rate,
        sent.readings,
        sent.started.unwrap_or_else(Instant::now),
        sent.elapsed,
        (settled.0 * per, settled.1),
    );
    t.acked = sent.acked;
    Ok(t)
}
