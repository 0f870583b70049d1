//! Which partitions this node evaluates. Every node says it is alive in the key-value
//! bucket `{ns}-nodes` (entries expire after a lease's life), and every round each node
//! computes the same assignment of partitions to the live nodes (rendezvous hashing: a
//! node joining or leaving moves only its share). A node takes the leases of the
//! partitions assigned to it as they become free, renews those it holds, and gives up a
//! partition assigned elsewhere (a node joined) after its owner has stopped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::cluster::{Cluster, LEASE_TTL};
use super::lease::{Lease, Leases};
use super::owner::{LeaseClock, Owner, OwnerEnd, Template};
use super::partition::fnv1a32;
use crate::config::fingerprint::{self, Fingerprints};
use crate::telemetry::Telemetry;

/// How often leases are renewed and the assignment recomputed: three times a lease's life.
pub(super) const ROUND: Duration = Duration::from_millis(LEASE_TTL.as_millis() as u64 / 3);
/// A lease is trusted for its life less this margin after the renewal was sent (clocks on
/// the NATS servers and here run at slightly different rates).
pub(super) const MARGIN: Duration = Duration::from_millis(LEASE_TTL.as_millis() as u64 / 5);

/// The node that should own partition `p` among `nodes`: the highest score of
/// (node, partition), the same on every node.
pub fn assigned(p: u32, nodes: &BTreeSet<String>) -> Option<&str> {
    nodes
        .iter()
        .max_by_key(|n| (score(n, p), n.as_str()))
        .map(String::as_str)
}

fn score(node: &str, p: u32) -> u32 {
    // fnv1a32 of "node/p", then a finalizer so nearby partitions spread (murmur3's fmix32).
    let mut h = fnv1a32(format!("{node}/{p}").as_bytes());
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

struct Held {
    lease: Lease,
    clock: Arc<LeaseClock>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), OwnerEnd>>,
}

pub struct Ownership {
    pub cluster: Arc<Cluster>,
    pub template: Arc<Template>,
    pub telemetry: Arc<Telemetry>,
    /// True once this node has had its first round (taken what it could of its share).
    pub settled: Arc<AtomicBool>,
    /// Partitions being rebuilt (`/readyz` answers 503 while any is).
    pub rebuilding: Arc<std::sync::atomic::AtomicUsize>,
    /// This node's configuration digests, published with its liveness and compared with
    /// the other nodes'.
    pub fingerprints: Arc<Fingerprints>,
}

impl Ownership {
    /// Runs the rounds until `shutdown`, then stops every owner and frees its lease.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let cluster = &self.cluster;
        let node = cluster.settings.node_id.clone();
        let replicas = usize::from(cluster.settings.replicas);
        let leases = cluster.leases().await?;
        let nodes = open_nodes(cluster, replicas).await?;
        let mut held: HashMap<u32, Held> = HashMap::new();
        let alive =
            bytes::Bytes::from(serde_json::to_vec(&*self.fingerprints).expect("digests serialize"));
        let mut differing = BTreeMap::new();
        let mut round = tokio::time::interval(ROUND);
        round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = round.tick() => {}
            }
            let sent = Instant::now();
            if let Err(e) = nodes.put(&node, alive.clone()).await {
                warn!(error = %e, "cannot say this node is alive in the cluster");
            }
            let live = match live_nodes(&nodes).await {
                Ok(live) => live,
                Err(e) => {
                    warn!(error = %e, "cannot list the cluster's live nodes");
                    continue;
                }
            };
            self.compare(&nodes, &live, &node, &mut differing).await;
            self.renew(&leases, &mut held, sent).await;
            self.rebalance(&leases, &mut held, &live, &node).await;
            self.acquire(&leases, &mut held, &live, &node, sent).await;
            self.telemetry.cluster_membership(held.len(), live.len());
        }
        info!(
            partitions = held.len(),
            "leaving the cluster: giving partitions up"
        );
        // Every owner stops at once (each publishing its last snapshot), then the leases
        // are freed.
        for h in held.values() {
            h.cancel.cancel();
        }
        for (_, mut h) in held.drain() {
            stop(&mut h).await;
            let _ = leases.release(h.lease).await;
        }
        let _ = nodes.delete(&node).await;
        Ok(())
    }

    /// Compares the other live nodes' configuration digests with this node's: the number
    /// differing per section goes to `vigil_cluster_config_differs`, a change to the log.
    async fn compare(
        &self,
        nodes: &kv::Store,
        live: &BTreeSet<String>,
        me: &str,
        last: &mut BTreeMap<String, Vec<String>>,
    ) {
        let mut now: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for other in live.iter().filter(|n| *n != me) {
            let Ok(Some(value)) = nodes.get(other).await else {
                continue;
            };
            // A node of a version that publishes nothing is not compared.
            let Ok(theirs) = serde_json::from_slice::<Fingerprints>(&value) else {
                continue;
            };
            for section in fingerprint::differing(&self.fingerprints, &theirs) {
                now.entry(section.to_string())
                    .or_default()
                    .push(other.clone());
            }
        }
        for section in self.fingerprints.keys() {
            let n = now.get(section).map_or(0, Vec::len);
            self.telemetry.config_differs(section, n);
        }
        if now != *last {
            for (section, others) in &now {
                warn!(
                    section,
                    nodes = %others.join(", "),
                    "this node's configuration differs from other nodes' in this section: \
                     make the files alike (the same rules, patients, devices and tokens on every node)"
                );
            }
            *last = now;
        }
    }

    /// Renews every lease held; stops the owners whose lease was lost or who ended.
    async fn renew(&self, leases: &Leases, held: &mut HashMap<u32, Held>, sent: Instant) {
        let mut gone = Vec::new();
        for (&p, h) in held.iter_mut() {
            if h.task.is_finished() {
                gone.push((p, "ended"));
                continue;
            }
            match leases.renew(h.lease).await {
                Ok(Some(lease)) => {
                    h.lease = lease;
                    h.clock.extend(sent + LEASE_TTL - MARGIN);
                }
                Ok(None) => gone.push((p, "lease_lost")),
                // Not renewed: the owner stops writing when the lease's time is up.
                Err(e) => debug!(partition = p, error = %e, "lease not renewed"),
            }
        }
        for (p, why) in gone {
            if let Some(mut h) = held.remove(&p) {
                let end = stop(&mut h).await;
                warn!(partition = p, why, end = %end, "stopped evaluating a partition");
                self.telemetry.partition_lost(why);
                if why == "ended" {
                    let _ = leases.release(h.lease).await;
                }
            }
        }
    }

    /// Gives up the partitions now assigned to another node (one joined): the owner stops
    /// first, then the lease is freed for the new node.
    async fn rebalance(
        &self,
        leases: &Leases,
        held: &mut HashMap<u32, Held>,
        live: &BTreeSet<String>,
        node: &str,
    ) {
        let moved: Vec<u32> = held
            .keys()
            .copied()
            .filter(|&p| assigned(p, live).is_some_and(|n| n != node))
            .collect();
        for p in moved {
            if let Some(mut h) = held.remove(&p) {
                stop(&mut h).await;
                let _ = leases.release(h.lease).await;
                self.telemetry.partition_lost("rebalanced");
                debug!(partition = p, "partition handed to another node");
            }
        }
    }

    /// Takes the free partitions assigned to this node and starts their owners.
    async fn acquire(
        &self,
        leases: &Leases,
        held: &mut HashMap<u32, Held>,
        live: &BTreeSet<String>,
        node: &str,
        sent: Instant,
    ) {
        for p in 0..self.cluster.settings.partitions {
            if held.contains_key(&p) || assigned(p, live) != Some(node) {
                continue;
            }
            let lease = match leases.acquire(p).await {
                Ok(Some(lease)) => lease,
                Ok(None) => continue,
                Err(e) => {
                    debug!(partition = p, error = %e, "lease not taken");
                    continue;
                }
            };
            let clock = Arc::new(LeaseClock::new(sent + LEASE_TTL - MARGIN));
            let cancel = CancellationToken::new();
            let owner = Owner {
                cluster: self.cluster.clone(),
                partition: p,
                template: self.template.clone(),
                lease: clock.clone(),
                telemetry: self.telemetry.clone(),
                rebuilding: self.rebuilding.clone(),
            };
            let task = tokio::spawn(owner.run(cancel.clone()));
            held.insert(
                p,
                Held {
                    lease,
                    clock,
                    cancel,
                    task,
                },
            );
        }
        self.settled.store(true, Ordering::Release);
    }
}

/// Stops an owner and waits for it; what it ended with.
async fn stop(h: &mut Held) -> String {
    h.cancel.cancel();
    match (&mut h.task).await {
        Ok(Ok(())) => "stopped".into(),
        Ok(Err(end)) => end.to_string(),
        Err(e) => format!("the owner task failed: {e}"),
    }
}

async fn open_nodes(cluster: &Cluster, replicas: usize) -> anyhow::Result<kv::Store> {
    let bucket = cluster.subjects.store("nodes");
    super::bucket::open_bucket(
        &cluster.js,
        kv::Config {
            bucket,
            description: "Vigil: nodes alive, each renewing its entry".into(),
            history: 1,
            max_age: LEASE_TTL,
            num_replicas: replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(anyhow::Error::msg)
}

async fn live_nodes(nodes: &kv::Store) -> anyhow::Result<BTreeSet<String>> {
    let mut keys = nodes.keys().await?;
    let mut live = BTreeSet::new();
    while let Some(key) = keys.next().await {
        live.insert(key?);
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_takes_only_its_share() {
        let two: BTreeSet<String> = ["a", "b"].map(String::from).into();
        let three: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let mut moved = 0;
        let mut to_c = 0;
        for p in 0..256 {
            let before = assigned(p, &two).unwrap();
            let after = assigned(p, &three).unwrap();
            if before != after {
                moved += 1;
                assert_eq!(after, "c", "a partition moved between nodes that stayed");
            }
            if after == "c" {
                to_c += 1;
            }
        }
        assert_eq!(moved, to_c);
        assert!((50..120).contains(&to_c), "c took {to_c} of 256");
        assert_eq!(assigned(7, &BTreeSet::new()), None);
    }
}
