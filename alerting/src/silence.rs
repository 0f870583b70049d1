//! Silences (Alertmanager's term): for a while, alerts of a patient, a rule or a care team
//! are raised and journaled as usual but not delivered to subscribers. When the silence
//! ends, alerts it held that are still open are delivered then.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::Alert;

/// One silence. Every matcher given must match (`None`: any).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: Arc<str>,
    pub patient_id: Option<Arc<str>>,
    pub rule_id: Option<Arc<str>>,
    pub care_team: Option<Arc<str>>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub reason: String,
    pub by: String,
}

impl Silence {
    /// Whether it mutes `alert` at `now_ms`.
    pub fn mutes(&self, alert: &Alert, now_ms: i64) -> bool {
        let matches = |m: &Option<Arc<str>>, v: &str| m.as_deref().is_none_or(|m| m == v);
        now_ms < self.ends_at_ms
            && matches(&self.patient_id, &alert.patient_id)
            && matches(&self.rule_id, &alert.rule_id)
            && matches(&self.care_team, &alert.care_team)
    }
}
