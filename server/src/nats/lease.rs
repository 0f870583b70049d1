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
        let kv = super::bucket::open_bucket(
            js,
            kv::Config {
                bucket,
                description: "Vigil: which node evaluates each partition".into(),
                history: 1,
                max_age: ttl,
                num_replicas: replicas,
                ..Default::default()
            },
        )
        .await
        .map_err(LeaseError)?;
        Ok(Leases {
            kv,
            node: node.to_string(),
        })
    }

    /// Takes `partition` if nobody holds it.
    pub async fn acquire(&self, partition: u32) -> Result<Option<Lease>, LeaseError> {
        let taken = self.create(&key(partition)).await?;
        Ok(taken.map(|revision| Lease {
            partition,
            revision,
        }))
    }

    /// Extends `lease`; `None` when it was lost (expired, and maybe taken by another node).
    pub async fn renew(&self, lease: Lease) -> Result<Option<Lease>, LeaseError> {
        let renewed = self.update(&key(lease.partition), lease.revision).await?;
        Ok(renewed.map(|revision| Lease { revision, ..lease }))
    }

    /// Gives `lease` up at once (a node leaving cleanly), if it still holds it.
    pub async fn release(&self, lease: Lease) -> Result<(), LeaseError> {
        self.delete(&key(lease.partition), lease.revision).await
    }

    /// Takes the lease named `name` (something other than a partition that one node at a
    /// time does, e.g. a notifier) if nobody holds it; the revision that proves it.
    pub async fn acquire_named(&self, name: &str) -> Result<Option<u64>, LeaseError> {
        self.create(name).await
    }

    /// Extends the lease named `name`; its new revision, `None` when it was lost.
    pub async fn renew_named(&self, name: &str, revision: u64) -> Result<Option<u64>, LeaseError> {
        self.update(name, revision).await
    }

    pub async fn release_named(&self, name: &str, revision: u64) -> Result<(), LeaseError> {
        self.delete(name, revision).await
    }

    async fn create(&self, key: &str) -> Result<Option<u64>, LeaseError> {
        match self.kv.create(key, self.node.clone().into()).await {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(LeaseError(e.to_string())),
        }
    }

    async fn update(&self, key: &str, revision: u64) -> Result<Option<u64>, LeaseError> {
        match self
            .kv
            .update(key, self.node.clone().into(), revision)
            .await
        {
            Ok(revision) => Ok(Some(revision)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(None),
            Err(e) => Err(LeaseError(e.to_string())),
        }
    }

    async fn delete(&self, key: &str, revision: u64) -> Result<(), LeaseError> {
        self.kv
            .delete_expect_revision(key, Some(revision))
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
