//! The end of a run: wait for SIGINT or SIGTERM (or a listener failing), then stop the
//! listeners, let every MQTT session finish what it read, write what is queued for the
//! journal and a last window snapshot, all within a grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::state::State;
use super::tasks::Mqtt;
use super::upkeep;

/// How long draining the listeners, sessions and consumers may take when the grace period
/// is sized by the data; the final window snapshot is then allowed what its backlog needs
/// at the rate snapshots were measured to write (see `Snapshots::final_allowance`).
const DRAIN_GRACE: Duration = Duration::from_secs(4);

/// The tasks a shutdown waits for.
pub struct Running {
    pub grpc: JoinHandle<anyhow::Result<()>>,
    pub metrics: JoinHandle<anyhow::Result<()>>,
    pub http: JoinHandle<anyhow::Result<()>>,
    pub mqtt: Mqtt,
    /// Cluster mode: the ownership rounds, which give every partition up when they end.
    pub cluster: Option<JoinHandle<()>>,
    /// Cluster mode: the notifiers this node runs, which give their leases up when they end.
    pub notifying: Option<JoinHandle<()>>,
}

/// Runs until a signal (or the gRPC server failing), then shuts down gracefully: within
/// `grace` in all if it is set; otherwise [`DRAIN_GRACE`] to drain, then as long as the
/// final snapshot's backlog needs.
pub async fn wait_then_stop(
    state: Arc<State>,
    mut running: Running,
    grace: Option<Duration>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tokio::select! {
        signal = wait_for_signal() => info!(signal, "shutting down: draining received readings"),
        // The gRPC server only ends on its own if it fails.
        ended = &mut running.grpc => match ended {
            Ok(Ok(())) => bail!("gRPC server stopped: the server task ended"),
            Ok(Err(e)) => bail!("gRPC server stopped: {e:#}"),
            Err(e) => bail!("gRPC server stopped: {e}"),
        },
    }
    let started = Instant::now();
    shutdown.cancel();
    // A periodic snapshot under way finishes without pausing; the final one waits for it.
    state.snapshots.hurry();
    let Running {
        grpc,
        metrics,
        http,
        mqtt,
        cluster,
        notifying,
    } = running;
    let drained = tokio::time::timeout(grace.unwrap_or(DRAIN_GRACE), async {
        let _ = grpc.await;
        let _ = metrics.await;
        let _ = http.await;
        // Every session has processed what it read (and acknowledged it).
        let _ = mqtt.task.await;
        // Persistent sessions and retained messages for the next start.
        let bus = mqtt.bus.clone();
        let _ = tokio::task::spawn_blocking(move || bus.save(crate::clock::now_ms())).await;
        // Cluster mode: partitions handed over (last snapshots, leases freed) so that the
        // other nodes take them at once rather than when the leases expire.
        if let Some(cluster) = cluster {
            let _ = cluster.await;
        }
        // Cluster mode: notifiers stopped, positions written, leases freed.
        if let Some(notifying) = notifying {
            let _ = notifying.await;
        }
    })
    .await;
    if drained.is_err() {
        warn!(elapsed = ?started.elapsed(), "draining did not finish within its grace period; writing the final snapshot anyway");
    }
    // Everything received is in the windows now: keep it for the next start.
    let backlog = {
        let engine = state.engine.clone();
        tokio::task::spawn_blocking(move || engine.snapshot_backlog())
            .await
            .unwrap_or(0)
    };
    let allowed = match grace {
        Some(total) => total.saturating_sub(started.elapsed()),
        None => state.snapshots.final_allowance(backlog),
    };
    info!(samples = backlog, allowed = ?allowed, "writing the final window snapshot");
    let written = tokio::time::timeout(
        allowed,
        tokio::task::spawn_blocking({
            let state = state.clone();
            move || final_writes(&state)
        }),
    )
    .await;
    drop(mqtt.runtime);
    match written {
        Ok(_) => info!(took = ?started.elapsed(), "stopped"),
        Err(_) => warn!(
            allowed = ?allowed,
            "the final window snapshot did not finish in time; exiting: the next start \
             restores the last complete snapshot of each patient not yet written"
        ),
    }
    Ok(())
}

/// Alert events still queued for the journal's writer, then a last snapshot of the
/// windows, then the journal marked cleanly closed.
fn final_writes(state: &State) {
    state.engine.log().flush();
    state.snapshots.write(
        &state.engine,
        &state.journal,
        &state.telemetry,
        upkeep::Pace::AtOnce,
    );
    if let Err(e) = state.journal.mark_clean() {
        warn!(error = %e, "could not mark the journal cleanly closed");
    }
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
