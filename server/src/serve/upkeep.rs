//! Journal upkeep: snapshots changed windows every `snapshot_interval`, compacts alert
//! events older than the retention period (hourly, and once at start), and keeps the
//! journal's gauges current.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigil_alerting::{Engine, Journal, SnapshotPart, WindowWrite};

use crate::clock::now_ms;
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
    shutdown: CancellationToken,
) {
    let retention = settings.retention;
    let mut snapshots = tokio::time::interval(settings.snapshot_interval);
    snapshots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::spawn(async move {
        let mut gauges = tokio::time::interval(GAUGE_EVERY);
        let mut compaction = tokio::time::interval(COMPACT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = gauges.tick() => telemetry.journal(&journal),
                _ = snapshots.tick() => {
                    let (engine, journal, telemetry) = (engine.clone(), journal.clone(), telemetry.clone());
                    let _ = tokio::task::spawn_blocking(move || snapshot(&engine, &journal, &telemetry, Pace::Paced)).await;
                }
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

/// Writes a snapshot of every patient whose windows changed since the last one: whole, or
/// only the samples added since (see `vigil_alerting::snapshot`). Called periodically
/// (paced) and once more at graceful shutdown (at once).
pub fn snapshot(engine: &Engine, journal: &Journal, telemetry: &Telemetry, pace: Pace) {
    let started = Instant::now();
    let keys = engine.patient_keys();
    let (mut patients, mut written) = (0usize, SnapshotBytes::default());
    for slice in keys.chunks(SNAPSHOT_SLICE) {
        let parts: Vec<WindowWrite> = engine
            .take_snapshots(slice)
            .into_iter()
            .map(|(patient, part)| match part {
                SnapshotPart::Whole(s) => WindowWrite::Whole {
                    patient,
                    bytes: s.encode(),
                },
                SnapshotPart::Delta { index, samples } => WindowWrite::Delta {
                    patient,
                    index,
                    bytes: samples.encode(),
                },
            })
            .collect();
        if let Err(e) = journal.put_snapshots(&parts) {
            // Their next snapshots are whole, so no delta ever rests on one never written;
            // a crash before then loses only these patients' newest samples, never an alert.
            engine.snapshots_failed(parts.iter().map(|p| p.patient()));
            telemetry.snapshot_failed();
            warn!(error = %e, patients = parts.len(), "window snapshot failed; the next one retries");
            return;
        }
        patients += parts.len();
        written.add(&parts);
        if pace == Pace::Paced && !parts.is_empty() {
            std::thread::sleep(SNAPSHOT_PAUSE);
        }
    }
    telemetry.snapshot(started.elapsed(), written.whole, written.delta);
    debug!(patients, whole_bytes = written.whole, delta_bytes = written.delta, elapsed = ?started.elapsed(), "windows snapshotted");
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
