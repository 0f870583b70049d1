//! Where cluster-wide consumers of the alert stream (the notifiers) stand, in the
//! replicated key-value bucket `{namespace}-positions`, so the node that takes a notifier
//! over resumes where the former holder stopped. Positions are alert-stream sequences,
//! the same on every node.
//!
//! A consumer commits synchronously (the [`Positions`] seam); the position is kept in
//! memory at once and written to the bucket by a flusher task right after, and once more
//! before the consumer's lease is given up. A holder that dies between a delivery and the
//! write leaves the older position: its successor sends that event again (at least once,
//! never skipped).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;
use vigil_alerting::{PositionError, Positions, Progress};

use super::catalog::key;

pub struct ClusterPositions {
    store: kv::Store,
    known: Mutex<HashMap<String, Progress>>,
    dirty: Mutex<BTreeSet<String>>,
    wake: Notify,
}

fn position_key(name: &str) -> String {
    key("position", name)
}

impl ClusterPositions {
    /// Opens (or creates) the bucket `bucket`.
    pub async fn open(
        js: &jetstream::Context,
        bucket: String,
        replicas: usize,
    ) -> Result<ClusterPositions, PositionError> {
        let store = super::bucket::open_bucket(
            js,
            kv::Config {
                bucket,
                description: "Vigil: where each notifier stands in the alert stream".into(),
                history: 1,
                num_replicas: replicas,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            },
        )
        .await
        .map_err(PositionError)?;
        Ok(ClusterPositions {
            store,
            known: Mutex::default(),
            dirty: Mutex::default(),
            wake: Notify::new(),
        })
    }

    /// Reads `names`' positions from the bucket (before their consumers open).
    pub async fn load(&self, names: &[String]) -> Result<(), PositionError> {
        for name in names {
            let entry = self
                .store
                .get(position_key(name))
                .await
                .map_err(|e| PositionError(format!("position of {name}: {e}")))?;
            let mut known = self.known.lock();
            match entry {
                Some(bytes) => {
                    let progress = serde_json::from_slice(&bytes)
                        .map_err(|e| PositionError(format!("position of {name}: {e}")))?;
                    known.insert(name.clone(), progress);
                }
                None => {
                    known.remove(name);
                }
            }
        }
        Ok(())
    }

    /// Writes every position committed since the last write.
    pub async fn flush(&self) {
        let names: Vec<String> = std::mem::take(&mut *self.dirty.lock())
            .into_iter()
            .collect();
        for name in names {
            let Some(progress) = self.known.lock().get(&name).cloned() else {
                continue;
            };
            let body = serde_json::to_vec(&progress).expect("a position serializes");
            if let Err(e) = self.store.put(position_key(&name), body.into()).await {
                warn!(consumer = %name, error = %e, "position not written to the cluster; retrying");
                self.dirty.lock().insert(name);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    /// Writes positions as they are committed, until `stop` (then once more).
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => self.flush().await,
            }
        }
        self.flush().await;
    }
}

impl Positions for ClusterPositions {
    fn progress(&self, name: &str) -> Result<Option<Progress>, PositionError> {
        Ok(self.known.lock().get(name).cloned())
    }

    fn put_progress(&self, name: &str, progress: &Progress) -> Result<(), PositionError> {
        self.known.lock().insert(name.to_string(), progress.clone());
        self.dirty.lock().insert(name.to_string());
        self.wake.notify_one();
        Ok(())
    }
}
