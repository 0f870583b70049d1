//! Journal upkeep: snapshots changed windows every `snapshot_interval`, compacts alert
//! events older than the retention period (hourly, and once at start), and keeps the
//! journal's gauges current.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigil_alerting::{Engine, Journal, SnapshotPart, WindowWrite};

use crate::clock::now_ms;
use crate::process::cpu_priority;
use crate::settings::Settings;
use crate::telemetry::Telemetry;

/// How often the journal's gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(10);
/// How often old events are compacted away.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

pub fn spawn(
    engine: Arc<Engine>,
    journal: Arc<Journal>,
    settings: &Settings,
    telemetry: Arc<Telemetry>,
    snapshots: Arc<Snapshots>,
    shutdown: CancellationToken,
) {
    let retention = settings.retention;
    let mut every = tokio::time::interval(settings.snapshot_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let due = snapshot_thread(
        engine.clone(),
        journal.clone(),
        telemetry.clone(),
        snapshots,
    );
    tokio::spawn(async move {
        let mut gauges = tokio::time::interval(GAUGE_EVERY);
        let mut compaction = tokio::time::interval(COMPACT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = gauges.tick() => telemetry.journal(&journal),
                // A tick while a snapshot still runs is dropped: the next one starts when
                // it ends, as a delayed interval would.
                _ = every.tick() => { let _ = due.try_send(()); }
                _ = compaction.tick() => {
                    let before = now_ms().saturating_sub(retention.as_millis() as i64);
                    let journal = journal.clone();
                    match tokio::task::spawn_blocking(move || journal.compact(before)).await {
                        Ok(Ok(0)) => {}
                        Ok(Ok(removed)) => {
                            telemetry.compacted(removed);
                            info!(removed, retention = %humantime::format_duration(retention), "journal compacted");
                        }
                        Ok(Err(e)) => warn!(error = %e, "journal compaction failed; will retry"),
                        Err(e) => warn!(error = %e, "journal compaction task failed"),
                    }
                }
            }
        }
    });
}

/// The thread periodic snapshots run on, below ingest's priority (nice
/// `BACKGROUND_NICE`): copying and encoding a million patients' windows takes CPU that
/// device ingest should have first. A snapshot starts for each message on the channel
/// returned; the thread ends once its sender is dropped (a shutdown, whose final snapshot
/// waits for the one under way).
fn snapshot_thread(
    engine: Arc<Engine>,
    journal: Arc<Journal>,
    telemetry: Arc<Telemetry>,
    snapshots: Arc<Snapshots>,
) -> std::sync::mpsc::SyncSender<()> {
    let (due, ticks) = std::sync::mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new()
        .name("vigil-snapshots".into())
        .spawn(move || {
            if !cpu_priority::lower_current(cpu_priority::BACKGROUND_NICE) {
                debug!("window snapshots run at the default CPU priority");
            }
            while ticks.recv().is_ok() {
                snapshots.write(&engine, &journal, &telemetry, Pace::Paced);
            }
        });
    if let Err(e) = spawned {
        warn!(error = %e, "cannot start the window snapshot thread; only the shutdown writes snapshots");
    }
    due
}

/// Patients per slice of a periodic snapshot.
const SNAPSHOT_SLICE: usize = 256;
/// Pause between slices of a periodic snapshot.
const SNAPSHOT_PAUSE: Duration = Duration::from_millis(2);

/// Whether a snapshot may take its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Periodic: slices of `SNAPSHOT_SLICE` patients, each written (and fsynced) on its own
    /// with a pause after it, so alert journal writes and ingest are never stuck behind one
    /// large batch (a 10 000-patient snapshot in one batch took 0.33 s).
    Paced,
    /// At shutdown: as fast as possible.
    AtOnce,
}

/// Samples written per second assumed before a snapshot of at least
/// [`MEASURED_FROM`] samples has been timed: below what a loaded two-core machine writes
/// paced, so that a shutdown's estimate errs long.
const ASSUMED_RATE: u64 = 500_000;
/// Snapshots smaller than this are not timed for the rate: fixed costs dominate them.
const MEASURED_FROM: usize = 10_000;
/// The part of a shutdown's final-snapshot allowance that does not depend on the data.
const FINAL_SNAPSHOT_BASE: Duration = Duration::from_secs(5);

/// The window snapshots of one server: one at a time (a shutdown's final snapshot waits
/// for a periodic one under way, which then stops pausing), and the rate they write at,
/// from which a shutdown sizes the time it allows the last one.
pub struct Snapshots {
    running: std::sync::Mutex<()>,
    /// Set at shutdown: a periodic snapshot under way stops pausing between slices.
    hurry: AtomicBool,
    /// Samples per second the last timed snapshot wrote (0: none timed yet).
    rate: AtomicU64,
}

impl Default for Snapshots {
    fn default() -> Snapshots {
        Snapshots {
            running: std::sync::Mutex::new(()),
            hurry: AtomicBool::new(false),
            rate: AtomicU64::new(0),
        }
    }
}

impl Snapshots {
    /// Writes a snapshot of every patient whose windows changed since the last one: whole,
    /// or only the samples added since (see `vigil_alerting::snapshot`). Called
    /// periodically (paced) and once more at graceful shutdown (at once).
    pub fn write(&self, engine: &Engine, journal: &Journal, telemetry: &Telemetry, pace: Pace) {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        telemetry.snapshot_running(true);
        let samples = snapshot(engine, journal, telemetry, pace, &self.hurry);
        telemetry.snapshot_running(false);
        if samples >= MEASURED_FROM {
            let rate = samples as f64 / started.elapsed().as_secs_f64().max(1e-3);
            self.rate.store(rate as u64, Ordering::Relaxed);
        }
    }

    /// How long the final snapshot may take, given `backlog` samples still to write: a
    /// fixed allowance plus twice the time the measured rate needs for them.
    pub fn final_allowance(&self, backlog: usize) -> Duration {
        let rate = match self.rate.load(Ordering::Relaxed) {
            0 => ASSUMED_RATE,
            r => r.min(ASSUMED_RATE * 20),
        };
        FINAL_SNAPSHOT_BASE + Duration::from_secs_f64(2.0 * backlog as f64 / rate as f64)
    }

    /// From now on a snapshot under way writes without pausing.
    pub fn hurry(&self) {
        self.hurry.store(true, Ordering::Relaxed);
    }
}

/// One pass over every patient; returns the samples written.
fn snapshot(
    engine: &Engine,
    journal: &Journal,
    telemetry: &Telemetry,
    pace: Pace,
    hurry: &AtomicBool,
) -> usize {
    let started = Instant::now();
    let keys = engine.patient_keys();
    let (mut patients, mut samples, mut written) = (0usize, 0usize, SnapshotBytes::default());
    for slice in keys.chunks(SNAPSHOT_SLICE) {
        let parts: Vec<WindowWrite> = engine
            .take_snapshots(slice)
            .into_iter()
            .map(|(patient, part)| match part {
                SnapshotPart::Whole(s) => {
                    samples += s.sample_count();
                    WindowWrite::Whole {
                        patient,
                        bytes: s.encode(),
                    }
                }
                SnapshotPart::Delta { index, samples: s } => {
                    samples += s.sample_count();
                    WindowWrite::Delta {
                        patient,
                        index,
                        bytes: s.encode(),
                    }
                }
            })
            .collect();
        if let Err(e) = journal.put_snapshots(&parts) {
            // Their next snapshots are whole, so no delta ever rests on one never written;
            // a crash before then loses only these patients' newest samples, never an alert.
            engine.snapshots_failed(parts.iter().map(|p| p.patient()));
            telemetry.snapshot_failed();
            warn!(error = %e, patients = parts.len(), "window snapshot failed; the next one retries");
            return 0;
        }
        patients += parts.len();
        written.add(&parts);
        if pace == Pace::Paced && !parts.is_empty() && !hurry.load(Ordering::Relaxed) {
            std::thread::sleep(SNAPSHOT_PAUSE);
        }
    }
    telemetry.snapshot(started.elapsed(), written.whole, written.delta);
    debug!(patients, samples, whole_bytes = written.whole, delta_bytes = written.delta, elapsed = ?started.elapsed(), "windows snapshotted");
    samples
}

/// Bytes a snapshot wrote, by kind of part.
#[derive(Default)]
struct SnapshotBytes {
    whole: u64,
    delta: u64,
}

impl SnapshotBytes {
    fn add(&mut self, parts: &[WindowWrite]) {
        for part in parts {
            match part {
                WindowWrite::Whole { bytes, .. } => self.whole += bytes.len() as u64,
                WindowWrite::Delta { bytes, .. } => self.delta += bytes.len() as u64,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_allowance_grows_with_the_backlog_at_the_measured_rate() {
        let snapshots = Snapshots::default();
        assert_eq!(snapshots.final_allowance(0), FINAL_SNAPSHOT_BASE);
        // Not measured yet: the assumed rate.
        assert_eq!(
            snapshots.final_allowance(ASSUMED_RATE as usize * 10),
            FINAL_SNAPSHOT_BASE + Duration::from_secs(20)
        );
        snapshots.rate.store(2_000_000, Ordering::Relaxed);
        assert_eq!(
            snapshots.final_allowance(50_000_000),
            FINAL_SNAPSHOT_BASE + Duration::from_secs(50)
        );
    }
}
