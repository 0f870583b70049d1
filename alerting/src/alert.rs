//! Alerts and the events of their lifecycle, as the rest of Vigil sees them.

use std::sync::Arc;

/// How urgent an alert is; ordered so `min_severity` filters compare directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    Active,
    Acknowledged,
    Resolved,
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Raised,
    Acknowledged,
    Escalated,
    Resolved,
}

/// Who did something to an alert, and when (server clock, epoch ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub by: String,
    pub at_ms: i64,
}

/// One alert: a rule's condition held for a patient.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: Arc<str>,
    pub patient_id: Arc<str>,
    pub rule_id: Arc<str>,
    pub severity: Severity,
    /// The metric's canonical name (`news2` for NEWS2 alerts).
    pub metric: &'static str,
    /// The unit of `value`.
    pub unit: &'static str,
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
}

/// One entry of the event stream. `seq` is strictly increasing.
#[derive(Debug, Clone, PartialEq)]
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
