//! Journal upkeep: compacts alert events older than the retention period (hourly, and
//! once at start) and keeps the journal's gauges current.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use vigil_alerting::Journal;

use crate::pipeline::now_ms;
use crate::telemetry::Telemetry;

/// How often the journal's gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(10);
/// How often old events are compacted away.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

pub fn spawn(
    journal: Arc<Journal>,
    retention: Duration,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut gauges = tokio::time::interval(GAUGE_EVERY);
        let mut compaction = tokio::time::interval(COMPACT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = gauges.tick() => telemetry.journal(&journal),
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
