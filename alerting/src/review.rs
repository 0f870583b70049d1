//! Review marks: a person has looked at a patient's readings and alerts and records that
//! nothing more needs doing until a time (a case manager's worklist). Journaled and kept
//! across restarts, one per patient (the newest replaces the previous).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub patient_id: Arc<str>,
    /// Server time the mark was set.
    pub at_ms: i64,
    /// The patient is considered reviewed until this time.
    pub until_ms: i64,
    pub by: String,
    pub note: String,
}

impl Review {
    /// Whether the mark still holds at `now_ms`.
    pub fn holds(&self, now_ms: i64) -> bool {
        now_ms < self.until_ms
    }
}
