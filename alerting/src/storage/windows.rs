//! The window snapshots' own store, `<journal dir>.windows`: each patient's whole snapshot
//! and the deltas written after it.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::error::JournalError;

/// Window snapshots live in a store of their own, beside the journal: they are large
/// (every sample of every changed patient, every `snapshot_interval`) and a crash may lose
/// the newest ones, whereas alert events are small and every one is fsynced before anyone
/// hears of it. Sharing one write-ahead log, an alert's fsync would wait behind megabytes
/// of snapshot; in separate stores it does not.
pub(super) struct Windows {
    pub(super) db: Database,
    /// patient id → whole window snapshot (postcard).
    pub(super) snapshots: Keyspace,
    /// patient id, 0, delta number (u32, big-endian) → the samples appended since the
    /// previous write (postcard). Patient ids hold no control characters, so `id\0` is
    /// a prefix of that patient's deltas alone.
    pub(super) deltas: Keyspace,
}

/// One patient's part of a window snapshot, encoded (see [`crate::snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub enum WindowWrite {
    /// Replaces the patient's stored snapshot and deletes its deltas.
    Whole { patient: String, bytes: Vec<u8> },
    /// Stored beside the whole snapshot as delta number `index`.
    Delta {
        patient: String,
        index: u32,
        bytes: Vec<u8>,
    },
}

impl WindowWrite {
    pub fn patient(&self) -> &str {
        match self {
            WindowWrite::Whole { patient, .. } | WindowWrite::Delta { patient, .. } => patient,
        }
    }
}

/// What is stored of one patient's windows: a whole snapshot and the deltas after it, in
/// order. The bytes are the store's own (shared, not copied): a restart reads every
/// patient's windows once, and copying them would double what it moves.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWindows {
    pub patient: String,
    pub whole: fjall::Slice,
    pub deltas: Vec<fjall::Slice>,
}

pub(super) fn deltas_prefix(patient: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(patient.len() + 5);
    key.extend_from_slice(patient.as_bytes());
    key.push(0);
    key
}

pub(super) fn delta_key(patient: &str, index: u32) -> Vec<u8> {
    let mut key = deltas_prefix(patient);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

impl Windows {
    pub(super) fn open(dir: &Path) -> Result<Windows, JournalError> {
        let db = Database::builder(dir).open()?;
        let snapshots = db.keyspace("windows", KeyspaceCreateOptions::default)?;
        let deltas = db.keyspace("window_deltas", KeyspaceCreateOptions::default)?;
        Ok(Windows {
            db,
            snapshots,
            deltas,
        })
    }

    /// Adds to `batch` the removal of every delta stored for `patient`.
    pub(super) fn remove_deltas(
        &self,
        batch: &mut fjall::OwnedWriteBatch,
        patient: &str,
    ) -> Result<(), JournalError> {
        for kv in self.deltas.prefix(deltas_prefix(patient)) {
            batch.remove(&self.deltas, kv.key()?);
        }
        Ok(())
    }

    /// Moves snapshots written by a Vigil that kept them in the journal itself (a
    /// `windows` keyspace there) into this store, then drops that keyspace.
    pub(super) fn adopt_legacy(&self, journal: &Database) -> Result<(), JournalError> {
        if !journal.keyspace_exists(LEGACY_WINDOWS) {
            return Ok(());
        }
        let legacy = journal.keyspace(LEGACY_WINDOWS, KeyspaceCreateOptions::default)?;
        let mut batch = self.db.batch();
        for kv in legacy.iter() {
            let (k, v) = kv.into_inner()?;
            batch.insert(&self.snapshots, k, v);
        }
        batch.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        journal.delete_keyspace(legacy)?;
        journal.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    pub(super) fn remove(&self, ids: &[&str]) -> Result<(), JournalError> {
        let mut batch = self.db.batch();
        for id in ids {
            batch.remove(&self.snapshots, *id);
            self.remove_deltas(&mut batch, id)?;
        }
        batch.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

/// The keyspace in the journal that held window snapshots before they had a store of
/// their own.
const LEGACY_WINDOWS: &str = "windows";
