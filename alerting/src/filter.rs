//! Which alerts a subscriber or a listing wants: by care team (the alert's own, or one it
//! escalated to), patient and severity.

use crate::alert::{Alert, Severity};

/// Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertFilter {
    pub care_teams: Vec<String>,
    pub patient_ids: Vec<String>,
    pub min_severity: Option<Severity>,
}

impl AlertFilter {
    pub fn matches(&self, alert: &Alert) -> bool {
        (self.care_teams.is_empty()
            || self
                .care_teams
                .iter()
                .any(|t| **t == *alert.care_team || alert.escalated_to.iter().any(|e| **t == **e)))
            && (self.patient_ids.is_empty()
                || self.patient_ids.iter().any(|p| **p == *alert.patient_id))
            && self.min_severity.is_none_or(|min| alert.severity >= min)
    }
}
