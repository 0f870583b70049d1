//! The built-in clinical rule set, used when the configuration has no `[[rules]]`. Each
//! rule's source is cited in docs/rules.md ("Built-in rules").

use crate::rule::{Direction, Rule};
use crate::rule_spec::RuleSpec;

const MIN: i64 = 60_000;
const ABOVE: Direction = Direction::Above;
const BELOW: Direction = Direction::Below;
const DAY: i64 = 86_400_000;

/// A threshold rule: `level` is (above?, value).
fn threshold(
    id: &str,
    metric: &str,
    level: (Direction, f64),
    hold_ms: i64,
    clear: f64,
    severity: &str,
    message: &str,
) -> RuleSpec {
    let (above, below) = match level {
        (Direction::Above, v) => (Some(v), None),
        (Direction::Below, v) => (None, Some(v)),
    };
    RuleSpec {
        id: id.into(),
        metric: Some(metric.into()),
        above,
        below,
        hold_ms: (hold_ms > 0).then_some(hold_ms),
        clear: Some(clear),
        severity: Some(severity.into()),
        message: Some(message.into()),
        ..RuleSpec::default()
    }
}

/// The built-in rules as written (what a file without `[[rules]]` puts in force).
pub fn specs() -> Vec<RuleSpec> {
    vec![
        threshold("tachycardia", "heart_rate", (ABOVE, 120.0), MIN, 110.0, "medium", "Heart rate {value}/min, above 120/min for 1 min"),
        threshold("bradycardia", "heart_rate", (BELOW, 40.0), MIN, 45.0, "high", "Heart rate {value}/min, below 40/min for 1 min"),
        threshold("low_spo2", "spo2", (BELOW, 92.0), MIN / 2, 94.0, "high", "SpO2 {value}%, below 92% for 30 s"),
        threshold("severe_hypertension_systolic", "systolic_bp", (ABOVE, 179.0), 0, 160.0, "high", "Systolic BP {value} mmHg: severe hypertension (180 or more)"),
        threshold("severe_hypertension_diastolic", "diastolic_bp", (ABOVE, 119.0), 0, 100.0, "high", "Diastolic BP {value} mmHg: severe hypertension (120 or more)"),
        threshold("hypotension", "systolic_bp", (BELOW, 91.0), 0, 100.0, "high", "Systolic BP {value} mmHg: hypotension (90 or less)"),
        threshold("hypoglycaemia", "glucose", (BELOW, 3.9), 0, 4.4, "medium", "Glucose {value} mmol/L, below 3.9 mmol/L (level 1 hypoglycaemia)"),
        RuleSpec {
            supersedes: vec!["hypoglycaemia".into()],
            ..threshold("hypoglycaemia_severe", "glucose", (BELOW, 3.0), 0, 3.9, "high", "Glucose {value} mmol/L, below 3.0 mmol/L (level 2 hypoglycaemia)")
        },
        threshold("hyperglycaemia", "glucose", (ABOVE, 13.9), 0, 12.0, "medium", "Glucose {value} mmol/L, above 13.9 mmol/L (250 mg/dL): check ketones"),
        threshold("fever", "temperature", (ABOVE, 38.0), 0, 37.7, "medium", "Temperature {value} °C, above 38.0 °C"),
        threshold("hypothermia", "temperature", (BELOW, 35.1), 0, 35.5, "high", "Temperature {value} °C: 35.0 °C or less"),
        threshold("tachypnoea", "resp_rate", (ABOVE, 24.0), MIN, 21.0, "high", "Respiratory rate {value}/min, 25/min or more for 1 min"),
        RuleSpec {
            id: "news2_medium".into(),
            kind: Some("news2".into()),
            at_least: Some(5),
            any_parameter_at_least: Some(3),
            clear: Some(3.0),
            severity: Some("medium".into()),
            message: Some("NEWS2 {value}: medium clinical risk (aggregate 5-6 or a parameter scoring 3), urgent ward-based response".into()),
            ..RuleSpec::default()
        },
        RuleSpec {
            id: "news2_high".into(),
            kind: Some("news2".into()),
            supersedes: vec!["news2_medium".into()],
            at_least: Some(7),
            clear: Some(5.0),
            severity: Some("high".into()),
            message: Some("NEWS2 {value}: high clinical risk (7 or more), emergency assessment".into()),
            ..RuleSpec::default()
        },
        RuleSpec {
            id: "hf_weight_gain".into(),
            kind: Some("rise".into()),
            metric: Some("weight".into()),
            window_ms: Some(3 * DAY),
            by: Some(2.0),
            severity: Some("medium".into()),
            conditions: vec!["heart_failure".into()],
            message: Some("Weight rose {value} kg in 3 days (heart failure: possible fluid retention)".into()),
            patient_message: Some("Your weight rose {value} kg in 3 days. Please take your medicines as prescribed, rest, and keep weighing yourself each morning; your nurse will call you.".into()),
            ..RuleSpec::default()
        },
        RuleSpec {
            id: "spo2_trend".into(),
            kind: Some("trend".into()),
            metric: Some("spo2".into()),
            window_ms: Some(30 * MIN),
            horizon_ms: Some(30 * MIN),
            below: Some(92.0),
            clear: Some(94.0),
            min_samples: Some(10),
            severity: Some("medium".into()),
            // Opt-in: no guideline gives trend parameters (see docs/rules.md).
            conditions: vec!["respiratory".into()],
            message: Some("SpO2 falling: {value}% projected in 30 min from the last 30 min of readings (below 92% expected)".into()),
            ..RuleSpec::default()
        },
        RuleSpec {
            id: "home_bp_above_target".into(),
            ..aggregate_bp("systolic_bp", 135.0, 130.0)
        },
        RuleSpec {
            id: "home_bp_diastolic_above_target".into(),
            ..aggregate_bp("diastolic_bp", 85.0, 80.0)
        },
    ]
}

fn aggregate_bp(metric: &str, above: f64, clear: f64) -> RuleSpec {
    RuleSpec {
        id: String::new(),
        kind: Some("avg".into()),
        metric: Some(metric.into()),
        window_ms: Some(7 * DAY),
        above: Some(above),
        clear: Some(clear),
        min_samples: Some(4),
        min_days: Some(4),
        severity: Some("low".into()),
        conditions: vec!["hypertension".into()],
        message: Some(format!(
            "Home {} BP average {{value}} mmHg over 7 days, above the {} mmHg target",
            metric.trim_end_matches("_bp"),
            crate::rule::fmt_num(above)
        )),
        ..RuleSpec::default()
    }
}

/// The built-in rules, validated.
pub fn builtin_rules() -> Vec<Rule> {
    specs()
        .iter()
        .map(|s| s.validate().expect("built-in rules are valid (tested)"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_unique() {
        let rules = builtin_rules();
        let mut ids: Vec<_> = rules.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rules.len());
    }

    #[test]
    fn clinical_boundaries() {
        use crate::rule::RuleKind;
        let rules = builtin_rules();
        let t = |id: &str| match rules.iter().find(|r| &*r.id == id).unwrap().kind {
            RuleKind::Threshold(_, t) => t,
            _ => panic!("{id} is a threshold rule"),
        };
        // Severe hypertension at 180/120 or more (NICE NG136).
        assert!(t("severe_hypertension_systolic").breaches(180.0));
        assert!(!t("severe_hypertension_systolic").breaches(179.0));
        assert!(t("severe_hypertension_diastolic").breaches(120.0));
        // Hypotension at 90 or less (NEWS2 scores <= 90 as 3).
        assert!(t("hypotension").breaches(90.0) && !t("hypotension").breaches(91.0));
        // ADA level 1 / level 2 hypoglycaemia.
        assert!(t("hypoglycaemia").breaches(3.8) && !t("hypoglycaemia").breaches(3.9));
        assert!(
            t("hypoglycaemia_severe").breaches(2.9) && !t("hypoglycaemia_severe").breaches(3.0)
        );
        // NEWS2: temperature <= 35.0 scores 3; resp rate >= 25 scores 3.
        assert!(t("hypothermia").breaches(35.0) && !t("hypothermia").breaches(35.1));
        assert!(t("tachypnoea").breaches(25.0) && !t("tachypnoea").breaches(24.0));
    }

    #[test]
    fn cohort_rules_are_restricted() {
        let rules = builtin_rules();
        let hf = rules.iter().find(|r| &*r.id == "hf_weight_gain").unwrap();
        let mut p = crate::patient::PatientProfile::open("p");
        assert!(!hf.applies_to(&p));
        p.conditions.push("heart_failure".into());
        assert!(hf.applies_to(&p));
        assert!(hf.patient_message.is_some());
        let trend = rules.iter().find(|r| &*r.id == "spo2_trend").unwrap();
        assert!(!trend.applies_to(&crate::patient::PatientProfile::open("p")));
    }

    #[test]
    fn home_blood_pressure_needs_four_days() {
        use crate::rule::RuleKind;
        for id in ["home_bp_above_target", "home_bp_diastolic_above_target"] {
            let rules = builtin_rules();
            match rules.iter().find(|r| &*r.id == id).unwrap().kind {
                // NICE NG136: home readings on at least 4 days.
                RuleKind::Aggregate(_, a) => assert_eq!((a.min_days, a.window_ms), (4, 7 * DAY)),
                _ => panic!("{id} is an aggregate"),
            }
        }
    }
}
