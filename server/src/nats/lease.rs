//! Partition ownership: one lease per partition in a JetStream key-value bucket
//! (`{namespace}-leases`), whose entries expire when not renewed (the bucket's `max_age`).
//! A node acquires a free partition with `create` (refused while another node's lease
//! lives), keeps it with `update` conditional on the revision it holds, and loses it the
//! moment that condition fails: the revision is the fencing token that travels with what
//! an owner writes, so an owner that was paused past its lease's life cannot act on it.

use std::time::Duration;

use async_nats::jetstream::{self, kv};

/// Why a lease operation did not get an answer (not: "someone else holds it", which is a
/// normal `None`).
#[derive(Debug, thiserror::Error)]
#[error("lease bucket: {0}")]
pub struct LeaseError(String);

/// A held lease: the partition and the revision that proves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub partition: u32,
    pub revision: u64,
}

pub struct Leases {
    kv: kv::Store,
    node: String,
}

fn key(partition: u32) -> String {
    format!("p{partition}")
}

impl Leases {
    /// Opens (or creates) the bucket; a lease lives `ttl` after its last renewal.
    pub async fn open(
        js: &jetstream::Context,
        namespace: &str,
        node: &str,
        replicas: usize,
        ttl: Duration,
    ) -> Result<Leases, LeaseError> {
        let bucket = format!("{namespace}-leases");
        let kv = match js.get_key_value(&bucket).await {
            Ok(kv) => kv,
            Err(missing) => js
                .create_key_value(kv::Config {
                    bucket: bucket.clone(),
                    description: "Vigil: which node evaluates each partition".into(),
                    history: 1,
                    max_age: ttl,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    LeaseError(format!(
                        "bucket {bucket}: not readable ({missing}), not created ({e})"
                    ))
                })?,
        };
        Ok(Leases {
            kv,
            node: node.to_string(),
        })
    }

    /// Takes `partition` if nobody holds it.
    pub async fn acquire(&self, partition: u32) -> Result<Option<Lease>, LeaseError> {
        match self
            .kv
            .create(key(partition), self.node.clone().into())
            .await
        {
            Ok(revision) => Ok(Some(Lease {
                partition,
                revision,
            })),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(LeaseError(e.to_string())),
        }
    }

    /// Extends `lease`; `None` when it was lost (expired, and maybe taken by another node).
    pub async fn renew(&self, lease: Lease) -> Result<Option<Lease>, LeaseError> {
        match self
            .kv
            .update(
                key(lease.partition),
                self.node.clone().into(),
                lease.revision,
            )
            .await
        {
            Ok(revision) => Ok(Some(Lease { revision, ..lease })),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(LeaseError(e.to_string())),
        }
    }

    /// Gives `lease` up at once (a node leaving cleanly), if it still holds it.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        self.kv
            .delete_expect_revision(key(lease.partition), Some(lease.revision))
            .await
            .map_err(|e| LeaseError(e.to_string()))
    }

    /// The node holding `partition`, if any.
    pub async fn owner(&self, partition: u32) -> Result<Option<String>, LeaseError> {
        let entry = self
            .kv
            .entry(key(partition))
            .await
            .map_err(|e| LeaseError(e.to_string()))?;
        Ok(entry
            .filter(|e| e.operation == kv::Operation::Put)
            .map(|e| String::from_utf8_lossy(&e.value).into_owned()))
    }
}
