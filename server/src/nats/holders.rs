//! What one node of the cluster at a time does besides evaluating partitions: running each
//! notifier. Each has a lease in `{namespace}-leases` (key `notifier.{id}`); any node takes
//! a free one, runs the notifier while it renews the lease, and stops it before the lease
//! could lapse. A dead holder's notifiers are taken by another node once their leases
//! expire; one leaving cleanly stops them, then frees their leases at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cluster::{Cluster, LEASE_TTL};
use super::ownership::{MARGIN, ROUND};
use crate::telemetry::Telemetry;

/// Runs the thing named by its first argument until the token is cancelled; the future
/// ends once it has stopped (its positions written).
pub type Start = Arc<dyn Fn(String, CancellationToken) -> BoxFuture<'static, ()> + Send + Sync>;

struct Held {
    revision: u64,
    /// Until when the lease is known to be held.
    until: Instant,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The lease key of notifier `id`.
pub fn lease_name(id: &str) -> String {
    super::catalog::key("notifier", id)
}

/// Takes, keeps and gives up the leases of `ids` (notifiers), running each one held with
/// `start`, until `shutdown`.
pub async fn hold(
    cluster: Arc<Cluster>,
    ids: Vec<String>,
    start: Start,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let leases = cluster.leases().await?;
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut round = tokio::time::interval(ROUND);
    round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = round.tick() => {}
        }
        let sent = Instant::now();
        let mut gone = Vec::new();
        for (id, h) in held.iter_mut() {
            if h.task.is_finished() {
                gone.push((id.clone(), true));
                continue;
            }
            match leases.renew_named(&lease_name(id), h.revision).await {
                Ok(Some(revision)) => {
                    h.revision = revision;
                    h.until = sent + LEASE_TTL - MARGIN;
                }
                Ok(None) => gone.push((id.clone(), false)),
                Err(e) if Instant::now() >= h.until => {
                    warn!(notifier = %id, error = %e, "notifier lease not renewed in time: stopping it");
                    gone.push((id.clone(), false));
                }
                Err(e) => debug!(notifier = %id, error = %e, "notifier lease not renewed"),
            }
        }
        for (id, ended) in gone {
            if let Some(h) = held.remove(&id) {
                h.stop.cancel();
                let _ = h.task.await;
                if ended {
                    let _ = leases.release_named(&lease_name(&id), h.revision).await;
                }
                warn!(notifier = %id, ended, "stopped running a notifier");
            }
        }
        for id in &ids {
            if held.contains_key(id) {
                continue;
            }
            match leases.acquire_named(&lease_name(id)).await {
                Ok(Some(revision)) => {
                    let stop = CancellationToken::new();
                    let task = tokio::spawn(start(id.clone(), stop.clone()));
                    info!(notifier = %id, "running a notifier for the cluster");
                    held.insert(
                        id.clone(),
                        Held {
                            revision,
                            until: sent + LEASE_TTL - MARGIN,
                            stop,
                            task,
                        },
                    );
                }
                Ok(None) => {}
                Err(e) => debug!(notifier = %id, error = %e, "notifier lease not taken"),
            }
        }
        telemetry.notifiers_held(held.len());
    }
    for h in held.values() {
        h.stop.cancel();
    }
    for (id, h) in held.drain() {
        let _ = h.task.await;
        let _ = leases.release_named(&lease_name(&id), h.revision).await;
    }
    telemetry.notifiers_held(0);
    Ok(())
}
