//! Conversions between the engine's domain types and `vigil.v1` messages.

use vigil_alerting::{
    Alert, AlertEvent, AlertState, Direction, EventKind, PatientProfile, Rule, RuleKind, Severity,
};
use vigil_proto::v1;

pub fn severity(s: Severity) -> v1::Severity {
    match s {
        Severity::Low => v1::Severity::Low,
        Severity::Medium => v1::Severity::Medium,
        Severity::High => v1::Severity::High,
    }
}

/// `SEVERITY_UNSPECIFIED` (or an unknown value) means "no minimum".
pub fn min_severity(raw: i32) -> Option<Severity> {
    match v1::Severity::try_from(raw).ok()? {
        v1::Severity::Unspecified => None,
        v1::Severity::Low => Some(Severity::Low),
        v1::Severity::Medium => Some(Severity::Medium),
        v1::Severity::High => Some(Severity::High),
    }
}

fn state(s: AlertState) -> v1::AlertState {
    match s {
        AlertState::Active => v1::AlertState::Active,
        AlertState::Acknowledged => v1::AlertState::Acknowledged,
        AlertState::Resolved => v1::AlertState::Resolved,
    }
}

fn kind(k: EventKind) -> v1::EventKind {
    match k {
        EventKind::Raised => v1::EventKind::Raised,
        EventKind::Acknowledged => v1::EventKind::Acknowledged,
        EventKind::Escalated => v1::EventKind::Escalated,
        EventKind::Resolved => v1::EventKind::Resolved,
    }
}

pub fn alert(a: &Alert) -> v1::Alert {
    v1::Alert {
        id: a.id.to_string(),
        patient_id: a.patient_id.to_string(),
        rule_id: a.rule_id.to_string(),
        severity: severity(a.severity) as i32,
        metric: a.metric.name().to_string(),
        value: a.value,
        message: a.message.clone(),
        state: state(a.state) as i32,
        care_team: a.care_team.to_string(),
        observed_at_ms: a.observed_at_ms,
        raised_at_ms: a.raised_at_ms,
        unit: a.metric.canonical_unit().to_string(),
        acknowledged_at_ms: a.acknowledged.as_ref().map_or(0, |s| s.at_ms),
        acknowledged_by: a
            .acknowledged
            .as_ref()
            .map(|s| s.by.clone())
            .unwrap_or_default(),
        resolved_at_ms: a.resolved.as_ref().map_or(0, |s| s.at_ms),
        resolved_by: a
            .resolved
            .as_ref()
            .map(|s| s.by.clone())
            .unwrap_or_default(),
    }
}

pub fn event(e: &AlertEvent) -> v1::AlertEvent {
    v1::AlertEvent {
        seq: e.seq,
        kind: kind(e.kind) as i32,
        alert: Some(alert(&e.alert)),
        at_ms: e.at_ms,
        by: e.by.clone(),
        note: e.note.clone(),
    }
}

pub fn rule(r: &Rule) -> v1::Rule {
    let RuleKind::Threshold(t) = &r.kind;
    let (above, below) = match t.direction {
        Direction::Above => (Some(t.level), None),
        Direction::Below => (None, Some(t.level)),
    };
    v1::Rule {
        id: r.id.to_string(),
        kind: "threshold".into(),
        metric: r.metric.name().into(),
        above,
        below,
        for_ms: u64::try_from(t.hold_ms).unwrap_or(0),
        clear: Some(t.clear),
        severity: severity(r.severity) as i32,
        message: r.message.clone().unwrap_or_default(),
    }
}

pub fn patient(p: &PatientProfile) -> v1::Patient {
    v1::Patient {
        id: p.id.to_string(),
        care_team: p.care_team.to_string(),
        consent: p.consent,
        overrides: p
            .overrides
            .iter()
            .map(|(id, o)| {
                (
                    id.to_string(),
                    v1::RuleOverride {
                        above: o.above,
                        below: o.below,
                        clear: o.clear,
                        for_ms: o.hold_ms.and_then(|h| u64::try_from(h).ok()),
                    },
                )
            })
            .collect(),
    }
}
