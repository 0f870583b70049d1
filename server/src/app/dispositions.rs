//! Dispositions: what an alert led to, recorded by the person who acknowledged or resolved
//! it (required when resolving by hand). Counted per rule, with no patient in the labels
//! (`vigil_alert_dispositions_total{rule,disposition}`), and reported per rule over recent
//! days: the share of "no action needed" and "measurement error" is the alarm-fatigue
//! figure a programme reviews.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use vigil_alerting::{AlertEvent, EventKind};

use super::AppError;
use crate::telemetry::Telemetry;

/// One disposition a person may choose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disposition {
    pub id: String,
    pub label: String,
}

/// The list when the configuration has no `[[dispositions]]`.
pub const DEFAULT: [(&str, &str); 7] = [
    ("contacted_patient", "Contacted the patient"),
    ("advised_self_care", "Advised self-care"),
    ("medication_changed", "Medication changed"),
    ("referred_urgent_care", "Referred to urgent care"),
    ("sent_to_emergency", "Sent to the emergency department"),
    ("device_or_measurement_error", "Device or measurement error"),
    ("no_action_needed", "No action needed"),
];

/// The dispositions that say an alert asked for nothing: their share is alarm fatigue.
pub const NOTHING_TO_DO: [&str; 2] = ["no_action_needed", "device_or_measurement_error"];

/// How many days of counts are kept for the report.
pub const REPORT_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;

pub fn defaults() -> Vec<Disposition> {
    DEFAULT
        .iter()
        .map(|(id, label)| Disposition {
            id: id.to_string(),
            label: label.to_string(),
        })
        .collect()
}

/// One rule's dispositions over a number of days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    pub rule: String,
    pub total: u64,
    /// Count per disposition id (those recorded at least once).
    pub counts: BTreeMap<String, u64>,
    /// Share of `no_action_needed` and `device_or_measurement_error` (0 to 1).
    pub nothing_to_do: f64,
}

pub struct Dispositions {
    list: Vec<Disposition>,
    /// (rule, disposition, day since the epoch) → count.
    counts: Mutex<BTreeMap<(String, String, i64), u64>>,
    telemetry: Arc<Telemetry>,
}

impl Dispositions {
    pub fn new(list: Vec<Disposition>, telemetry: Arc<Telemetry>) -> Dispositions {
        Dispositions {
            list,
            counts: Mutex::new(BTreeMap::new()),
            telemetry,
        }
    }

    pub fn list(&self) -> &[Disposition] {
        &self.list
    }

    /// The disposition a caller gave (`""`: none), checked against the list; `required`
    /// when resolving by hand.
    pub fn check<'a>(&self, given: &'a str, required: bool) -> Result<Option<&'a str>, AppError> {
        if given.is_empty() {
            if required {
                return Err(AppError::Invalid(format!(
                    "disposition is required to resolve an alert by hand: say what it led to ({})",
                    self.ids()
                )));
            }
            return Ok(None);
        }
        super::fields::id("disposition", given)?;
        if self.list.iter().any(|d| d.id == given) {
            Ok(Some(given))
        } else {
            Err(AppError::Invalid(format!(
                "unknown disposition '{}'; expected one of: {}",
                given,
                self.ids()
            )))
        }
    }

    fn ids(&self) -> String {
        self.list
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Counts a disposition recorded now (metric included).
    pub fn record(&self, rule: &str, disposition: &str, at_ms: i64) {
        self.telemetry.disposition(rule, disposition);
        self.add(rule, disposition, at_ms);
    }

    /// Counts the dispositions of journaled events (at start: the report's days).
    pub fn restore<'a>(&self, events: impl IntoIterator<Item = &'a AlertEvent>) {
        for e in events {
            if let Some(d) = recorded(e) {
                self.add(&e.alert.rule_id, d, e.at_ms);
            }
        }
    }

    fn add(&self, rule: &str, disposition: &str, at_ms: i64) {
        let day = at_ms.div_euclid(DAY_MS);
        let mut counts = self.counts.lock();
        *counts
            .entry((rule.to_string(), disposition.to_string(), day))
            .or_default() += 1;
        counts.retain(|(_, _, d), _| *d > day - REPORT_DAYS - 1);
    }

    /// Every rule's dispositions over the last `days` days (today included), by rule.
    pub fn report(&self, days: i64, now_ms: i64) -> Vec<RuleReport> {
        let first = now_ms.div_euclid(DAY_MS) - days.clamp(1, REPORT_DAYS) + 1;
        let mut by_rule: BTreeMap<&str, RuleReport> = BTreeMap::new();
        let counts = self.counts.lock();
        for ((rule, disposition, day), n) in counts.iter() {
            if *day < first {
                continue;
            }
            let r = by_rule.entry(rule).or_insert_with(|| RuleReport {
                rule: rule.clone(),
                total: 0,
                counts: BTreeMap::new(),
                nothing_to_do: 0.0,
            });
            r.total += n;
            *r.counts.entry(disposition.clone()).or_default() += n;
        }
        by_rule
            .into_values()
            .map(|mut r| {
                let idle: u64 = NOTHING_TO_DO.iter().filter_map(|d| r.counts.get(*d)).sum();
                r.nothing_to_do = idle as f64 / r.total.max(1) as f64;
                r
            })
            .collect()
    }
}

/// The disposition an event recorded: an acknowledgement or a resolution by a person.
pub fn recorded(e: &AlertEvent) -> Option<&str> {
    match e.kind {
        EventKind::Acknowledged | EventKind::Resolved if !e.by.is_empty() => {
            e.alert.disposition.as_deref()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted() -> Dispositions {
        Dispositions::new(defaults(), Arc::new(Telemetry::register()))
    }

    #[test]
    fn a_resolution_by_hand_needs_a_known_disposition() {
        let d = counted();
        assert!(d.check("", true).is_err());
        assert_eq!(d.check("", false).unwrap(), None);
        assert_eq!(
            d.check("contacted_patient", true).unwrap(),
            Some("contacted_patient")
        );
        let e = d.check("shrugged", false).unwrap_err().to_string();
        assert!(
            e.contains("unknown disposition 'shrugged'") && e.contains("no_action_needed"),
            "{e}"
        );
    }

    #[test]
    fn the_report_counts_per_rule_over_the_days_asked() {
        let d = counted();
        let now = 100 * DAY_MS + 5_000;
        d.add("weight_gain", "contacted_patient", now);
        d.add("weight_gain", "no_action_needed", now - DAY_MS);
        d.add(
            "weight_gain",
            "device_or_measurement_error",
            now - 10 * DAY_MS,
        );
        d.add("spo2_low", "sent_to_emergency", now - 3 * DAY_MS);
        let week = d.report(7, now);
        assert_eq!(week.len(), 2);
        let w = week.iter().find(|r| r.rule == "weight_gain").unwrap();
        assert_eq!((w.total, w.nothing_to_do), (2, 0.5));
        let month = d.report(30, now);
        let w = month.iter().find(|r| r.rule == "weight_gain").unwrap();
        assert_eq!(w.total, 3);
        assert!((w.nothing_to_do - 2.0 / 3.0).abs() < 1e-9);
        // Older than the report's days: forgotten.
        d.add("spo2_low", "advised_self_care", now + 40 * DAY_MS);
        assert_eq!(d.report(30, now + 40 * DAY_MS).len(), 1);
    }
}
