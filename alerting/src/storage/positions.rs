//! Where durable consumers of the alert stream keep their positions: the journal on a
//! single node, a cluster's replicated bucket in cluster mode.

use super::journal::{Journal, JournalError, Progress};

/// A store of consumers' positions by name. The journal fsyncs before `put_progress`
/// returns; a store that writes later must never lose a newer position to an older one
/// (a failover may then hand an event out again, never skip one).
pub trait Positions: Send + Sync {
    fn progress(&self, name: &str) -> Result<Option<Progress>, PositionError>;
    fn put_progress(&self, name: &str, progress: &Progress) -> Result<(), PositionError>;
}

/// A position that could not be read or kept.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PositionError(pub String);

impl From<JournalError> for PositionError {
    fn from(e: JournalError) -> PositionError {
        PositionError(e.to_string())
    }
}

impl Positions for Journal {
    fn progress(&self, name: &str) -> Result<Option<Progress>, PositionError> {
        Ok(Journal::progress(self, name)?)
    }

    fn put_progress(&self, name: &str, progress: &Progress) -> Result<(), PositionError> {
        Ok(Journal::put_progress(self, name, progress)?)
    }
}
