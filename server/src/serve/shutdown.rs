//! The end of a run: wait for SIGINT or SIGTERM (or a listener failing), then stop the
//! listeners, let every MQTT session finish what it read, write what is queued for the
//! journal and a last window snapshot, all within a grace period.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::state::State;
use super::tasks::Mqtt;
use super::upkeep;

/// How long shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

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

/// Runs until a signal (or the gRPC server failing), then shuts down gracefully.
pub async fn wait_then_stop(
    state: Arc<State>,
    mut running: Running,
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
    shutdown.cancel();
    let Running {
        grpc,
        metrics,
        http,
        mqtt,
        cluster,
        notifying,
    } = running;
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
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
        // Everything received is in the windows now: keep it for the next start.
        let _ = tokio::task::spawn_blocking(move || final_writes(&state)).await;
    })
    .await;
    drop(mqtt.runtime);
    match drained {
        Ok(()) => info!("stopped"),
        Err(_) => warn!("shutdown grace period of {SHUTDOWN_GRACE:?} elapsed; exiting"),
    }
    Ok(())
}

/// Alert events still queued for the journal's writer, then a last snapshot of the
/// windows, then the journal marked cleanly closed.
fn final_writes(state: &State) {
    state.engine.log().flush();
    upkeep::snapshot(
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
