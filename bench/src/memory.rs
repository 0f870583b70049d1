//! Memory per retained sample: a fresh server, rules that keep one hour of every metric,
//! then P patients × 9 metrics × one hour of 1 Hz samples streamed over gRPC in event-time
//! order. The figure is the growth of the server's resident set divided by the samples
//! retained, everything the process holds for them included (allocator slack, maps).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::grpc_load::publish_checked;
use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;
use vigil_proto::v1;
use vigil_proto::v1::ingest_client::IngestClient;
use vigil_proto::v1::rules_client::RulesClient;

use crate::measure::{ingested_total, settle};
use crate::mqtt_load::now_wall;
use crate::peers::Vigil;
use crate::readings::{ValueTable, METRICS};

const HOUR_S: i64 = 3600;

#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub patients: usize,
    pub metrics: usize,
    pub samples: u64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub bytes_per_sample: f64,
    pub fill_secs: f64,
}

pub async fn measure(bin: &Path, patients: usize) -> anyhow::Result<MemoryResult> {
    let vigil = Vigil::start(bin)?;
    let url = vigil.grpc_url();
    let mut rules = RulesClient::connect(url.clone()).await?;
    for (metric, _, _) in METRICS {
        // A threshold held for one hour that can never fire (above the plausible
        // maximum): it only makes every metric's windows keep an hour of samples and
        // nothing else (`avg` rules add running sums, `min`/`max`/`rise`/`fall` rules
        // min/max candidates, to the windows of their metric).
        let (_, hi) = plausible_max(metric);
        rules
            .put_rule(v1::Rule {
                id: format!("bench_hold_{metric}"),
                kind: "threshold".into(),
                metric: metric.into(),
                for_ms: 3_600_000,
                above: Some(hi),
                ..Default::default()
            })
            .await
            .with_context(|| format!("installing the one-hour rule for {metric}"))?;
    }
    let (_, now_ms) = now_wall();
    let first = now_ms - (HOUR_S + 5) * 1000;
    // Warm-up: every patient and window exists, with one sample each; the server has
    // seen a gRPC stream of this shape.
    let warm = send(&url, patients, first, 1).await?;
    let metrics = vigil.metrics;
    settle(|| ingested_total(metrics), warm, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = vigil.rss()?;
    let started = Instant::now();
    let sent = send(&url, patients, first + 1000, HOUR_S as usize).await?;
    let (delivered, _) = settle(
        || ingested_total(metrics),
        warm + sent,
        Duration::from_secs(120),
    )
    .await?;
    anyhow::ensure!(
        delivered == warm + sent,
        "the server ingested {} of {sent} readings; see {}",
        delivered - warm,
        vigil.dir.path().join("vigil.log").display()
    );
    let fill_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = vigil.rss()?;
    let samples = sent;
    Ok(MemoryResult {
        patients,
        metrics: METRICS.len(),
        samples,
        rss_before,
        rss_after,
        bytes_per_sample: rss_after.saturating_sub(rss_before) as f64 / samples as f64,
        fill_secs,
    })
}

/// (0, just above the plausible maximum) for the hold rules.
fn plausible_max(metric: &str) -> (f64, f64) {
    let m = vigil_ingest::Metric::parse(metric).expect("known metric");
    let (lo, hi) = m.plausible_range();
    (lo, hi + 1.0)
}

/// Streams `steps` seconds of 1 Hz samples of every metric of every patient, starting at
/// `from_ms`, in event-time order, over two connections (patients split between them).
/// Returns the number of readings sent.
async fn send(url: &str, patients: usize, from_ms: i64, steps: usize) -> anyhow::Result<u64> {
    const CONNECTIONS: usize = 2;
    let mut tasks = JoinSet::new();
    for c in 0..CONNECTIONS {
        let mut client = IngestClient::connect(url.to_string()).await?;
        let mine: Vec<String> = (c..patients)
            .step_by(CONNECTIONS)
            .map(|p| format!("mem{p}"))
            .collect();
        tasks.spawn(async move {
            let table = ValueTable::default();
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let producer = tokio::spawn(async move {
                let mut batch = Vec::with_capacity(1000);
                let mut n = 0u64;
                for step in 0..steps {
                    let ts = from_ms + step as i64 * 1000;
                    for patient in &mine {
                        for (m, (metric, _, _)) in METRICS.iter().enumerate() {
                            batch.push(v1::Reading {
                                patient_id: patient.clone(),
                                metric: (*metric).into(),
                                value: table.value(m, step as u64),
                                ts_ms: ts,
                                ..Default::default()
                            });
                            n += 1;
                            if batch.len() == 1000 {
                                let readings =
                                    std::mem::replace(&mut batch, Vec::with_capacity(1000));
                                if tx.send(v1::ReadingBatch { readings }).await.is_err() {
                                    return n;
                                }
                            }
                        }
                    }
                }
                if !batch.is_empty() {
                    let _ = tx.send(v1::ReadingBatch { readings: batch }).await;
                }
                n
            });
            publish_checked(&mut client, rx, producer).await
        });
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r??;
    }
    Ok(total)
}
