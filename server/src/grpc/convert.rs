//! Conversions between the engine's domain types and `vigil.v1` messages.

use std::sync::Arc;

use vigil_alerting::{
    Alert, AlertEvent, AlertState, Direction, EventKind, PatientProfile, Rule, RuleKind,
    RuleOverride, RuleSetVersion, RuleSpec, Severity, Silence, DEFAULT_CARE_TEAM,
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
        AlertState::Held => v1::AlertState::Held,
    }
}

fn kind(k: EventKind) -> v1::EventKind {
    match k {
        EventKind::Raised => v1::EventKind::Raised,
        EventKind::Acknowledged => v1::EventKind::Acknowledged,
        EventKind::Escalated => v1::EventKind::Escalated,
        EventKind::Resolved => v1::EventKind::Resolved,
        EventKind::Renotified => v1::EventKind::Renotified,
        EventKind::Snoozed => v1::EventKind::Snoozed,
        EventKind::Assigned => v1::EventKind::Assigned,
    }
}

pub fn alert(a: &Alert) -> v1::Alert {
    v1::Alert {
        id: a.id.to_string(),
        patient_id: a.patient_id.to_string(),
        rule_id: a.rule_id.to_string(),
        severity: severity(a.severity) as i32,
        metric: a.metric.to_string(),
        value: a.value,
        message: a.message.clone(),
        state: state(a.state) as i32,
        care_team: a.care_team.to_string(),
        observed_at_ms: a.observed_at_ms,
        raised_at_ms: a.raised_at_ms,
        unit: a.unit.to_string(),
        patient_message: a.patient_message.clone().unwrap_or_default(),
        acknowledged_at_ms: a.acknowledged.as_ref().map_or(0, |s| s.at_ms),
        acknowledged_by: a
            .acknowledged
            .as_ref()
            .map(|s| s.by.clone())
            .unwrap_or_default(),
        escalation_level: a.escalation_level,
        escalated_to: a.escalated_to.iter().map(|t| t.to_string()).collect(),
        active_since_ms: a.active_since_ms,
        snoozed_until_ms: a.snoozed_until_ms,
        silenced_by: a.silenced_by.as_deref().unwrap_or_default().to_string(),
        disposition: a.disposition.as_deref().unwrap_or_default().to_string(),
        assignee: a.assignee.as_deref().unwrap_or_default().to_string(),
        parameters: a.parameters.clone().unwrap_or_default(),
        rule_set_version: a.rule_set_version,
        rule_set_hash: a.rule_set_hash.as_deref().unwrap_or_default().to_string(),
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

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub fn rule(r: &Rule) -> v1::Rule {
    let mut out = v1::Rule {
        id: r.id.to_string(),
        kind: r.kind_name().into(),
        metric: r.metric().map(|m| m.name().to_string()).unwrap_or_default(),
        severity: severity(r.severity) as i32,
        message: r.message.clone().unwrap_or_default(),
        patient_message: r.patient_message.clone().unwrap_or_default(),
        care_team: r.care_team.as_deref().unwrap_or_default().to_string(),
        conditions: r.conditions.iter().map(|c| c.to_string()).collect(),
        tiers: r.tiers.iter().map(|t| t.to_string()).collect(),
        supersedes: r.supersedes.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let level = |d: Direction, v: f64| match d {
        Direction::Above => (Some(v), None),
        Direction::Below => (None, Some(v)),
    };
    match r.kind {
        RuleKind::Threshold(_, t) => {
            (out.above, out.below) = level(t.direction, t.level);
            out.for_ms = ms(t.hold_ms);
            out.clear = Some(t.clear);
        }
        RuleKind::Change(_, c) => {
            out.window_ms = Some(ms(c.window_ms));
            out.by = Some(c.by);
            out.clear = Some(c.clear);
        }
        RuleKind::Aggregate(_, a) => {
            (out.above, out.below) = level(a.direction, a.level);
            out.window_ms = Some(ms(a.window_ms));
            out.min_samples = Some(a.min_samples);
            out.min_days = (a.min_days > 0).then_some(a.min_days);
            out.clear = Some(a.clear);
        }
        RuleKind::Trend(_, t) => {
            (out.above, out.below) = level(t.direction, t.level);
            out.window_ms = Some(ms(t.window_ms));
            out.horizon_ms = Some(ms(t.horizon_ms));
            out.min_samples = Some(t.min_samples);
            out.clear = Some(t.clear);
        }
        RuleKind::Adherence(_, a) => {
            out.days = Some(a.days);
            out.min_days = Some(a.min_days);
        }
        RuleKind::Absent(_, a) => out.after_ms = Some(ms(a.after_ms)),
        RuleKind::News2(n) => {
            out.at_least = Some(n.at_least);
            out.any_parameter_at_least = n.any_parameter_at_least;
            out.window_ms = Some(ms(n.window_ms));
            out.clear = Some(f64::from(n.clear));
        }
    }
    out
}

pub fn rule_set(v: &RuleSetVersion) -> v1::RuleSetVersion {
    v1::RuleSetVersion {
        number: v.number,
        hash: v.hash.to_string(),
        approved_by: v.approval.by.clone(),
        second_approver: v.approval.second.clone().unwrap_or_default(),
        approved_at_ms: v.approval.at_ms,
        change: v.approval.change.clone(),
    }
}

/// A `PutRule` request as a spec, validated like a `[[rules]]` entry. Proto defaults mean
/// "not given": empty strings, `for_ms` 0, `SEVERITY_UNSPECIFIED`.
pub fn rule_spec(r: &v1::Rule) -> RuleSpec {
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    RuleSpec {
        id: r.id.clone(),
        kind: text(&r.kind),
        metric: text(&r.metric),
        above: r.above,
        below: r.below,
        hold_ms: (r.for_ms > 0).then(|| signed(r.for_ms)),
        clear: r.clear,
        window_ms: r.window_ms.map(signed),
        by: r.by,
        min_samples: r.min_samples.map(i64::from),
        after_ms: r.after_ms.map(signed),
        at_least: r.at_least.map(i64::from),
        any_parameter_at_least: r.any_parameter_at_least.map(i64::from),
        horizon_ms: r.horizon_ms.map(signed),
        min_days: r.min_days.map(i64::from),
        days: r.days.map(i64::from),
        severity: match v1::Severity::try_from(r.severity).unwrap_or(v1::Severity::Unspecified) {
            v1::Severity::Unspecified => None,
            v1::Severity::Low => Some("low".into()),
            v1::Severity::Medium => Some("medium".into()),
            v1::Severity::High => Some("high".into()),
        },
        message: text(&r.message),
        patient_message: text(&r.patient_message),
        care_team: text(&r.care_team),
        conditions: r.conditions.clone(),
        tiers: r.tiers.clone(),
        supersedes: r.supersedes.clone(),
    }
}

pub fn patient(p: &PatientProfile) -> v1::Patient {
    v1::Patient {
        id: p.id.to_string(),
        care_team: p.care_team.to_string(),
        consent: p.consent,
        conditions: p.conditions.iter().map(|c| c.to_string()).collect(),
        tier: p.tier.as_deref().unwrap_or_default().to_string(),
        spo2_scale: u32::from(p.spo2_scale),
        responsible: p.responsible.as_deref().unwrap_or_default().to_string(),
        timezone: p.timezone.as_deref().unwrap_or_default().to_string(),
        adherence: Vec::new(),
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
                        for_ms: o.hold_ms.map(ms),
                        by: o.by,
                        window_ms: o.window_ms.map(ms),
                        min_samples: o.min_samples,
                        after_ms: o.after_ms.map(ms),
                        at_least: o.at_least,
                        any_parameter_at_least: o.any_parameter_at_least,
                        horizon_ms: o.horizon_ms.map(ms),
                        min_days: o.min_days,
                        days: o.days,
                    },
                )
            })
            .collect(),
    }
}

/// An `Enroll` request as a profile (not yet checked against the rules).
pub fn profile(p: &v1::Patient) -> PatientProfile {
    let signed = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    PatientProfile {
        id: p.id.as_str().into(),
        care_team: if p.care_team.is_empty() {
            DEFAULT_CARE_TEAM.into()
        } else {
            p.care_team.as_str().into()
        },
        consent: p.consent,
        conditions: p.conditions.iter().map(|c| Arc::from(c.as_str())).collect(),
        tier: (!p.tier.is_empty()).then(|| Arc::from(p.tier.as_str())),
        spo2_scale: if p.spo2_scale == 0 {
            1
        } else {
            u8::try_from(p.spo2_scale).unwrap_or(u8::MAX)
        },
        responsible: (!p.responsible.is_empty()).then(|| Arc::from(p.responsible.as_str())),
        overrides: p
            .overrides
            .iter()
            .map(|(id, o)| {
                (
                    Arc::from(id.as_str()),
                    RuleOverride {
                        above: o.above,
                        below: o.below,
                        clear: o.clear,
                        hold_ms: o.for_ms.map(signed),
                        by: o.by,
                        window_ms: o.window_ms.map(signed),
                        min_samples: o.min_samples,
                        after_ms: o.after_ms.map(signed),
                        at_least: o.at_least,
                        any_parameter_at_least: o.any_parameter_at_least,
                        horizon_ms: o.horizon_ms.map(signed),
                        min_days: o.min_days,
                        days: o.days,
                    },
                )
            })
            .collect(),
        timezone: (!p.timezone.is_empty()).then(|| Arc::from(p.timezone.as_str())),
    }
}

/// Per metric, the days with readings (`GetPatient`).
pub fn adherence(view: &vigil_alerting::engine::PatientView) -> Vec<v1::MetricAdherence> {
    view.adherence
        .iter()
        .map(|a| v1::MetricAdherence {
            metric: a.metric.name().to_string(),
            days_measured: a.days_measured,
            recent_days: a.recent,
            first_day: a.first_day.clone().unwrap_or_default(),
            today: view.today.clone(),
        })
        .collect()
}

pub fn silence(s: &Silence) -> v1::SilenceInfo {
    let text = |v: &Option<Arc<str>>| v.as_deref().unwrap_or_default().to_string();
    v1::SilenceInfo {
        id: s.id.to_string(),
        patient_id: text(&s.patient_id),
        rule_id: text(&s.rule_id),
        care_team: text(&s.care_team),
        starts_at_ms: s.starts_at_ms,
        ends_at_ms: s.ends_at_ms,
        reason: s.reason.clone(),
        by: s.by.clone(),
    }
}
