//! Alerts and the events of their lifecycle, as the rest of Vigil sees them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How urgent an alert is; ordered so `min_severity` filters compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low = 1,
    Medium = 2,
    High = 3,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Low, Severity::Medium, Severity::High];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
}

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Active,
    Acknowledged,
    Resolved,
    /// Raised outside its care team's hours and held (listed, not delivered, not
    /// escalated) until they begin; then ACTIVE, delivered as RAISED.
    Held,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Raised,
    Acknowledged,
    Escalated,
    Resolved,
    /// An acknowledged alert whose condition is still present after the team's
    /// `renotify_after`: it is ACTIVE again and needs acknowledging again.
    Renotified,
    /// Someone snoozed the alert (or cancelled a snooze).
    Snoozed,
    /// Someone took the alert (claim), gave it to a named person (assign, handover), or
    /// released it; `Alert.assignee` says who answers for it now.
    Assigned,
}

/// Who did something to an alert, and when (server clock, epoch ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub at_ms: i64,
}

/// One alert: a rule's condition held for a patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: Arc<str>,
    pub patient_id: Arc<str>,
    pub rule_id: Arc<str>,
    pub severity: Severity,
    /// The metric's canonical name (`news2` for NEWS2 alerts).
    #[serde(with = "static_name")]
    pub metric: StaticName,
    /// The unit of `value`.
    #[serde(with = "static_name")]
    pub unit: StaticName,
    /// What raised it: the reading (threshold), the change (rise/fall), the aggregate
    /// (avg/min/max), seconds since the last reading (absent) or the score (news2).
    pub value: f64,
    pub message: String,
    /// The reminder sent to the patient on `notify/{patient_id}`, if the rule has one.
    pub patient_message: Option<String>,
    pub state: AlertState,
    pub care_team: Arc<str>,
    /// Event time of the reading that raised it.
    pub observed_at_ms: i64,
    /// Server time at which it was raised.
    pub raised_at_ms: i64,
    pub acknowledged: Option<Stamp>,
    pub resolved: Option<Stamp>,
    /// Escalation levels reached since the alert last became active.
    #[serde(default)]
    pub escalation_level: u32,
    /// Care teams that also receive the alert because it escalated to them.
    #[serde(default)]
    pub escalated_to: Vec<Arc<str>>,
    /// When the alert last became ACTIVE: raised, or re-notified after an acknowledgement
    /// went unanswered. Escalation is timed from here.
    #[serde(default)]
    pub active_since_ms: i64,
    /// Until when escalation and re-notification of this one alert are muted (0: not
    /// snoozed).
    #[serde(default)]
    pub snoozed_until_ms: i64,
    /// The silence that held the alert back from subscribers when it was raised, while
    /// that silence lasts.
    #[serde(default)]
    pub silenced_by: Option<Arc<str>>,
    /// What the alert led to, recorded when it was acknowledged or resolved by hand (one
    /// of the configured dispositions; the resolution's replaces the acknowledgement's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<Arc<str>>,
    /// The person who answers for the alert: who claimed it or was assigned it, else the
    /// patient's responsible clinician.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<Arc<str>>,
    /// The rule's parameters in force for this patient when the alert was raised, the
    /// patient's override applied (`above 130, for 1m, clear 120`): what a review after
    /// the fact needs, whatever the rules are now. `None` in alerts an older Vigil raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<String>,
    /// The version of the rule set in force when the alert was raised, and its content
    /// hash ([`crate::RuleSetVersion`]): which rules, approved by whom, raised it. 0 and
    /// `None` in alerts an older Vigil raised.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rule_set_version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_set_hash: Option<Arc<str>>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One entry of the event stream. `seq` is strictly increasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub seq: u64,
    pub kind: EventKind,
    /// The alert as it is after this event.
    pub alert: Alert,
    pub at_ms: i64,
    /// Empty for events the engine caused itself.
    pub by: String,
    pub note: String,
}

/// A metric or unit name (an alias, so that serde does not try to borrow it).
pub type StaticName = &'static str;

/// Metric and unit names are `&'static str` in memory; read back from the journal they
/// map onto the same statics (a name no metric has any more reads as `unknown`).
mod static_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use vigil_ingest::Metric;

    pub fn serialize<S: Serializer>(name: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        let name = String::deserialize(d)?;
        let known = Metric::ALL
            .iter()
            .flat_map(|m| [m.name(), m.canonical_unit()])
            .chain(["news2", "{score}", "s"]);
        Ok(known.into_iter().find(|k| *k == name).unwrap_or("unknown"))
    }
}
