//! `vigil-bench scale`: a remote-monitoring programme of N patients on one node, built
//! through the public gRPC interface, then measured: memory per patient and per sample,
//! ingest over time with the window snapshots marked, the shutdown's final snapshot and
//! the restart.
//!
//! The steady state is home monitoring: heart rate, SpO2, respiratory rate and temperature
//! every minute with one hour of history, blood pressure (systolic and diastolic) and
//! weight twice a day with seven days. Rules that hold those windows (thresholds held
//! for the window that can never fire) are installed over gRPC beside the built-ins.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::grpc_load::publish_checked;
use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;
use vigil_proto::v1;
use vigil_proto::v1::ingest_client::IngestClient;
use vigil_proto::v1::rules_client::RulesClient;

use crate::mqtt_load::now_wall;
use crate::peers::Vigil;
use crate::prometheus::Scrape;

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MIN_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Measured every minute, one hour kept.
const VITALS: [(&str, f64); 4] = [
    ("heart_rate", 72.0),
    ("spo2", 97.0),
    ("resp_rate", 15.0),
    ("temperature", 36.8),
];
/// Measured twice a day, seven days kept.
const DAILY: [(&str, f64); 3] = [
    ("systolic_bp", 124.0),
    ("diastolic_bp", 78.0),
    ("weight", 78.5),
];
/// Readings of a vital in its hour, and of a daily metric in its seven days.
const VITAL_SAMPLES: i64 = 60;
const DAILY_SAMPLES: i64 = 14;
/// Readings per gRPC batch.
const BATCH: usize = 1000;
/// One client connection per core the bench's own machine is likely to spare.
const CONNECTIONS: usize = 2;
/// How long the live phase may run in event time before readings would be refused as
/// from the future: the vitals' history starts this long before the live phase (within
/// the server's default `max_reading_age` of 7 days). A small fleet gets through it
/// quickly (10 000 patients: ~80 s); the live phase then ends early.
const LIVE_SPAN_MS: i64 = 6 * DAY_MS;

#[derive(Debug, Clone)]
pub struct ScaleOptions {
    pub bin: PathBuf,
    pub patients: usize,
    /// Wall time of the live phase.
    pub live: Duration,
}

/// One snapshot seen during the run (seconds from the start of the live phase; negative:
/// before it).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSeen {
    pub ended_at: f64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub patients: usize,
    pub rss_empty: u64,
    /// After every patient's first reading of each of its seven metrics.
    pub rss_enrolled: u64,
    /// After the whole steady state.
    pub rss_steady: u64,
    /// After the live phase: the windows have turned over (trimmed as they grow).
    pub rss_after_live: u64,
    /// (rss_enrolled − rss_empty) / patients: a patient with one sample in each window.
    pub bytes_per_patient: f64,
    /// Samples the fill added after enrolment.
    pub samples_filled: u64,
    /// (rss_steady − rss_enrolled) / samples_filled.
    pub bytes_per_sample: f64,
    /// Readings per second while the steady state was built.
    pub fill_rate: f64,
    /// Live phase: readings ingested in each second.
    pub live_rates: Vec<f64>,
    /// Live phase: whether a window snapshot was being written at the end of each second.
    pub live_snapshot_running: Vec<bool>,
    /// Live phase: readings per second over each whole 10 s interval.
    pub live_10s: Vec<f64>,
    pub live_median_10s: f64,
    pub live_min_10s: f64,
    /// The slowest 10 s interval during which a snapshot was being written, over the
    /// median of all intervals (the target: at least 0.8).
    pub live_min_10s_snapshotting_ratio: Option<f64>,
    /// Every snapshot that ended from the start of the fill to the end of the live phase.
    pub snapshots: Vec<SnapshotSeen>,
    /// SIGTERM to exit.
    pub shutdown_secs: f64,
    /// Samples the final snapshot had to write, and whether it finished in its allowance.
    pub final_snapshot_samples: u64,
    pub final_snapshot_complete: bool,
    /// Spawn to ready (windows restored, listeners open).
    pub restart_secs: f64,
    pub restored_patients: u64,
}

struct Step {
    /// Indices into VITALS (0..4) or DAILY (4..7).
    metrics: std::ops::Range<usize>,
    ts_ms: i64,
}

fn reading_of(metric: usize, patient: &str, ts_ms: i64) -> v1::Reading {
    let (name, value) = if metric < VITALS.len() {
        VITALS[metric]
    } else {
        DAILY[metric - VITALS.len()]
    };
    v1::Reading {
        patient_id: patient.to_string(),
        metric: name.into(),
        value,
        ts_ms,
        ..Default::default()
    }
}

/// The readings of `steps` for every patient, step by step (event-time order per window),
/// streamed over [`CONNECTIONS`] connections (patients split between them) until `stop`
/// is set. Returns the readings the server acknowledged as accepted, having checked that
/// it accepted every one it was sent.
async fn stream(
    url: &str,
    patients: usize,
    steps: Arc<Vec<Step>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let mut tasks = JoinSet::new();
    for c in 0..CONNECTIONS {
        let mut client = IngestClient::connect(url.to_string()).await?;
        let mine: Vec<String> = (c..patients)
            .step_by(CONNECTIONS)
            .map(|p| format!("s{p}"))
            .collect();
        let (steps, stop) = (steps.clone(), stop.clone());
        tasks.spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let producer = tokio::spawn(async move {
                let mut batch = Vec::with_capacity(BATCH);
                let mut n = 0u64;
                'steps: for step in steps.iter() {
                    for patient in &mine {
                        for m in step.metrics.clone() {
                            batch.push(reading_of(m, patient, step.ts_ms));
                            n += 1;
                        }
                        if batch.len() >= BATCH {
                            let readings = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            if tx.send(v1::ReadingBatch { readings }).await.is_err() {
                                break 'steps;
                            }
                            if stop.load(Ordering::Relaxed) {
                                break 'steps;
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

/// What the bench reads from `/metrics` once a second.
#[derive(Debug, Clone, Copy)]
struct Poll {
    at: Instant,
    ingested: f64,
    snapshots: f64,
    snapshot_seconds: f64,
    snapshot_running: bool,
}

impl Poll {
    fn of(s: &Scrape) -> Poll {
        Poll {
            at: Instant::now(),
            ingested: s.sum("vigil_readings_ingested_total"),
            snapshots: s.sum("vigil_window_snapshots_total"),
            snapshot_seconds: s.sum("vigil_window_snapshot_seconds"),
            snapshot_running: s.sum("vigil_window_snapshot_running") > 0.0,
        }
    }
}

async fn poll(vigil: &Vigil) -> anyhow::Result<Poll> {
    let s = Scrape::take(vigil.metrics).await?;
    Ok(Poll::of(&s))
}

/// Polls every second until `stop`, returning every poll.
fn poller(
    metrics: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<Poll>> {
    tokio::spawn(async move {
        let mut polls = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Ok(s) = Scrape::take(metrics).await {
                polls.push(Poll::of(&s));
            }
        }
        polls
    })
}

/// Waits until the server has ingested `target` readings in all.
async fn settle(vigil: &Vigil, target: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while poll(vigil).await?.ingested < target {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the server did not ingest every reading sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

pub async fn run(o: &ScaleOptions) -> anyhow::Result<ScaleResult> {
    anyhow::ensure!(o.patients > 0, "--patients must be at least 1");
    let mut vigil = Vigil::start(&o.bin)?;
    let url = vigil.grpc_url();
    install_rules(&url).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_empty = vigil.rss()?;

    let (_, now) = now_wall();
    let vitals_from = now - LIVE_SPAN_MS - HOUR_MS;
    let daily_from = now - 7 * DAY_MS + HOUR_MS;
    let vital = |k: i64| Step {
        metrics: 0..VITALS.len(),
        ts_ms: vitals_from + k * MIN_MS,
    };
    let daily = |k: i64| Step {
        metrics: VITALS.len()..VITALS.len() + DAILY.len(),
        ts_ms: daily_from + k * 12 * HOUR_MS,
    };
    let never = Arc::new(AtomicBool::new(false));

    // Enrolment: one reading of every metric per patient.
    let enrol = Arc::new(vec![daily(0), vital(0)]);
    let sent = stream(&url, o.patients, enrol, never.clone()).await?;
    settle(&vigil, sent as f64).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_enrolled = vigil.rss()?;
    eprintln!(
        "scale: {} patients enrolled, {} MB",
        o.patients,
        rss_enrolled >> 20
    );

    // The rest of the steady state, with the server's snapshots running as they do.
    let fill: Vec<Step> = (1..DAILY_SAMPLES)
        .map(daily)
        .chain((1..VITAL_SAMPLES).map(vital))
        .collect();
    let stop_polls = Arc::new(AtomicBool::new(false));
    let fill_polls = poller(vigil.metrics, stop_polls.clone());
    let started = Instant::now();
    let filled = stream(&url, o.patients, Arc::new(fill), never.clone()).await?;
    settle(&vigil, (sent + filled) as f64).await?;
    let fill_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_steady = vigil.rss()?;
    eprintln!(
        "scale: steady state ({filled} more samples) in {fill_secs:.1} s, {} MB",
        rss_steady >> 20
    );

    // Live: each patient's next minute of vitals, in turn, for `o.live`.
    let live: Vec<Step> = (VITAL_SAMPLES..VITAL_SAMPLES + LIVE_SPAN_MS / MIN_MS)
        .map(vital)
        .collect();
    let stop_live = Arc::new(AtomicBool::new(false));
    let live_started = Instant::now();
    let sender = tokio::spawn({
        let (url, stop, patients) = (url.clone(), stop_live.clone(), o.patients);
        async move { stream(&url, patients, Arc::new(live), stop).await }
    });
    tokio::time::sleep(o.live).await;
    stop_live.store(true, Ordering::Relaxed);
    let live_sent = sender.await??;
    stop_polls.store(true, Ordering::Relaxed);
    let polls = fill_polls.await?;
    settle(&vigil, (sent + filled + live_sent) as f64).await?;
    let rss_after_live = vigil.rss()?;

    let since = |p: &Poll| {
        p.at.saturating_duration_since(live_started).as_secs_f64()
            - live_started.saturating_duration_since(p.at).as_secs_f64()
    };
    let snapshots: Vec<SnapshotSeen> = polls
        .windows(2)
        .filter(|w| w[1].snapshots > w[0].snapshots)
        .map(|w| SnapshotSeen {
            ended_at: since(&w[1]),
            seconds: w[1].snapshot_seconds,
        })
        .collect();
    let live_polls: Vec<&Poll> = polls
        .iter()
        .filter(|p| p.at >= live_started && p.at <= live_started + o.live)
        .collect();
    let live_rates: Vec<f64> = live_polls
        .windows(2)
        .map(|w| (w[1].ingested - w[0].ingested) / (w[1].at - w[0].at).as_secs_f64())
        .collect();
    let live_snapshot_running: Vec<bool> = live_polls
        .windows(2)
        .map(|w| w[0].snapshot_running || w[1].snapshot_running)
        .collect();
    let intervals: Vec<(f64, bool)> = live_polls
        .chunks_exact(10)
        .zip(live_polls.iter().skip(10).step_by(10))
        .map(|(c, end)| {
            let rate = (end.ingested - c[0].ingested) / (end.at - c[0].at).as_secs_f64();
            (
                rate,
                c.iter().any(|p| p.snapshot_running) || end.snapshot_running,
            )
        })
        .collect();
    let live_10s: Vec<f64> = intervals.iter().map(|(r, _)| *r).collect();
    let live_median_10s = crate::measure::median(live_10s.clone());
    let live_min_10s = live_10s.iter().copied().fold(f64::INFINITY, f64::min);
    let live_min_10s_snapshotting_ratio = intervals
        .iter()
        .filter(|(_, snapshotting)| *snapshotting)
        .map(|(r, _)| r / live_median_10s)
        .reduce(f64::min);

    // Shutdown with the final snapshot, then a restart on the same data.
    let (took, success) = vigil.terminate(Duration::from_secs(900))?;
    anyhow::ensure!(success, "vigil exited with an error: {}", vigil.log());
    let log = vigil.log();
    let final_snapshot_samples =
        field_after(&log, "writing the final window snapshot", "samples=").unwrap_or(0);
    let final_snapshot_complete = !log.contains("did not finish in time");
    let restart = vigil.restart(&o.bin)?;
    let log = vigil.log();
    let restored_patients = log
        .lines()
        .rfind(|l| l.contains("windows restored"))
        .and_then(|l| number_after(l, "patients="))
        .unwrap_or(0);
    eprintln!(
        "scale: shutdown {:.1} s (final snapshot of {final_snapshot_samples} samples), restart {:.1} s ({restored_patients} patients restored)",
        took.as_secs_f64(),
        restart.as_secs_f64()
    );
    if std::env::var_os("VIGIL_BENCH_KEEP").is_some() {
        // For profiling a restart by hand: `vigil serve --data-dir <dir>/data`.
        vigil.kill9();
        eprintln!("scale: data kept in {}", vigil.dir.path().display());
        std::mem::forget(vigil);
    }
    Ok(ScaleResult {
        patients: o.patients,
        rss_empty,
        rss_enrolled,
        rss_steady,
        rss_after_live,
        bytes_per_patient: rss_enrolled.saturating_sub(rss_empty) as f64 / o.patients as f64,
        samples_filled: filled,
        bytes_per_sample: rss_steady.saturating_sub(rss_enrolled) as f64 / filled as f64,
        fill_rate: filled as f64 / fill_secs,
        live_rates,
        live_snapshot_running,
        live_10s,
        live_median_10s,
        live_min_10s,
        live_min_10s_snapshotting_ratio,
        snapshots,
        shutdown_secs: took.as_secs_f64(),
        final_snapshot_samples,
        final_snapshot_complete,
        restart_secs: restart.as_secs_f64(),
        restored_patients,
    })
}

/// The number after `key` on the first line of `log` containing `line`.
fn field_after(log: &str, line: &str, key: &str) -> Option<u64> {
    log.lines()
        .find(|l| l.contains(line))
        .and_then(|l| number_after(l, key))
}

fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Thresholds held for the window that can never fire: they only make the windows keep
/// the steady state's history (the built-ins stay as they are).
async fn install_rules(url: &str) -> anyhow::Result<()> {
    let mut rules = RulesClient::connect(url.to_string()).await?;
    let held = VITALS
        .iter()
        .map(|(m, _)| (*m, HOUR_MS))
        .chain(DAILY.iter().map(|(m, _)| (*m, 7 * DAY_MS)));
    for (metric, for_ms) in held {
        let m = vigil_ingest::Metric::parse(metric).context("known metric")?;
        let (_, hi) = m.plausible_range();
        rules
            .put_rule(v1::Rule {
                id: format!("scale_hold_{metric}"),
                kind: "threshold".into(),
                metric: metric.into(),
                for_ms: for_ms as u64,
                above: Some(hi + 1.0),
                ..Default::default()
            })
            .await
            .with_context(|| format!("installing the hold rule for {metric}"))?;
    }
    Ok(())
}

/// Writes the result as JSON (the plot is `report::scale_svg`).
pub fn save(r: &ScaleResult, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("scale.json"),
        serde_json::to_string_pretty(r)? + "\n",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_log_lines() {
        let log = "x\n2026 INFO writing the final window snapshot samples=1234 allowed=5s\n";
        assert_eq!(
            field_after(log, "writing the final window snapshot", "samples="),
            Some(1234)
        );
        assert_eq!(number_after("patients=7 skipped=0", "patients="), Some(7));
        assert_eq!(number_after("nothing", "patients="), None);
    }
}
