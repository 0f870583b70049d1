//! What Vigil knows about a patient besides readings: care team, consent, and per-patient
//! rule overrides.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::overrides::RuleOverride;

/// A patient id as the store keys it: ids up to 24 bytes are held inline.
pub type PatientKey = compact_str::CompactString;

/// The care team of patients when no patient list is configured.
pub const DEFAULT_CARE_TEAM: &str = "default";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientProfile {
    pub id: Arc<str>,
    pub care_team: Arc<str>,
    /// Readings of a patient without consent are rejected (`no_consent`).
    pub consent: bool,
    /// Per-patient overrides, by rule id. Usually empty or a handful.
    pub overrides: Vec<(Arc<str>, RuleOverride)>,
    /// Conditions (`heart_failure`, `hypertension`, `diabetes`, `copd`, ...) that rules
    /// may restrict themselves to.
    pub conditions: Vec<Arc<str>>,
    /// Risk tier: `A` (high), `B`, `C`.
    pub tier: Option<Arc<str>>,
    /// NEWS2 SpO2 scale: 1 (default) or 2 (hypercapnic respiratory failure, target 88–92 %).
    pub spo2_scale: u8,
    /// The clinician responsible for the patient: the default assignee of its alerts.
    #[serde(default)]
    pub responsible: Option<Arc<str>>,
    /// The IANA time zone the patient's days are counted in (adherence, `min_days`);
    /// `None`: the server's.
    #[serde(default)]
    pub timezone: Option<Arc<str>>,
}

impl PatientProfile {
    /// A patient admitted because no patient list is configured.
    pub fn open(id: &str) -> PatientProfile {
        PatientProfile {
            id: id.into(),
            care_team: DEFAULT_CARE_TEAM.into(),
            consent: true,
            overrides: Vec::new(),
            conditions: Vec::new(),
            tier: None,
            spo2_scale: 1,
            responsible: None,
            timezone: None,
        }
    }

    /// The override this patient has for `rule_id`, if any.
    pub fn override_for(&self, rule_id: &str) -> Option<&RuleOverride> {
        self.overrides
            .iter()
            .find(|(id, _)| &**id == rule_id)
            .map(|(_, o)| o)
    }

    /// The longest `for` or `window` among this patient's overrides: windows keep at
    /// least that much history.
    pub fn longest_window_ms(&self) -> i64 {
        self.overrides
            .iter()
            .flat_map(|(_, o)| [o.hold_ms, o.window_ms])
            .flatten()
            .max()
            .unwrap_or(0)
    }
}
