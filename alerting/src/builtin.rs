//! The built-in clinical rule set, used when the configuration has no `[[rules]]`. Each
//! rule's source is cited in README.md ("Built-in rules").

use crate::rule::{Rule, ThresholdSpec};

struct Builtin {
    id: &'static str,
    metric: &'static str,
    above: Option<f64>,
    below: Option<f64>,
    hold_s: i64,
    clear: f64,
    severity: &'static str,
    message: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        id: "tachycardia",
        metric: "heart_rate",
        above: Some(120.0),
        below: None,
        hold_s: 60,
        clear: 110.0,
        severity: "medium",
        message: "Heart rate {value}/min, above 120/min for 1 min",
    },
    Builtin {
        id: "bradycardia",
        metric: "heart_rate",
        above: None,
        below: Some(40.0),
        hold_s: 60,
        clear: 45.0,
        severity: "high",
        message: "Heart rate {value}/min, below 40/min for 1 min",
    },
    Builtin {
        id: "low_spo2",
        metric: "spo2",
        above: None,
        below: Some(92.0),
        hold_s: 30,
        clear: 94.0,
        severity: "high",
        message: "SpO2 {value}%, below 92% for 30 s",
    },
    Builtin {
        id: "severe_hypertension_systolic",
        metric: "systolic_bp",
        above: Some(179.0),
        below: None,
        hold_s: 0,
        clear: 160.0,
        severity: "high",
        message: "Systolic BP {value} mmHg: severe hypertension (180 or more)",
    },
    Builtin {
        id: "severe_hypertension_diastolic",
        metric: "diastolic_bp",
        above: Some(119.0),
        below: None,
        hold_s: 0,
        clear: 100.0,
        severity: "high",
        message: "Diastolic BP {value} mmHg: severe hypertension (120 or more)",
    },
    Builtin {
        id: "hypotension",
        metric: "systolic_bp",
        above: None,
        below: Some(91.0),
        hold_s: 0,
        clear: 100.0,
        severity: "high",
        message: "Systolic BP {value} mmHg: hypotension (90 or less)",
    },
    Builtin {
        id: "hypoglycaemia",
        metric: "glucose",
        above: None,
        below: Some(3.9),
        hold_s: 0,
        clear: 4.4,
        severity: "medium",
        message: "Glucose {value} mmol/L, below 3.9 mmol/L (level 1 hypoglycaemia)",
    },
    Builtin {
        id: "hypoglycaemia_severe",
        metric: "glucose",
        above: None,
        below: Some(3.0),
        hold_s: 0,
        clear: 3.9,
        severity: "high",
        message: "Glucose {value} mmol/L, below 3.0 mmol/L (level 2 hypoglycaemia)",
    },
    Builtin {
        id: "hyperglycaemia",
        metric: "glucose",
        above: Some(13.9),
        below: None,
        hold_s: 0,
        clear: 12.0,
        severity: "medium",
        message: "Glucose {value} mmol/L, above 13.9 mmol/L (250 mg/dL): check ketones",
    },
    Builtin {
        id: "fever",
        metric: "temperature",
        above: Some(38.0),
        below: None,
        hold_s: 0,
        clear: 37.7,
        severity: "medium",
        message: "Temperature {value} °C, above 38.0 °C",
    },
    Builtin {
        id: "hypothermia",
        metric: "temperature",
        above: None,
        below: Some(35.1),
        hold_s: 0,
        clear: 35.5,
        severity: "high",
        message: "Temperature {value} °C: 35.0 °C or less",
    },
    Builtin {
        id: "tachypnoea",
        metric: "resp_rate",
        above: Some(24.0),
        below: None,
        hold_s: 60,
        clear: 21.0,
        severity: "high",
        message: "Respiratory rate {value}/min, 25/min or more for 1 min",
    },
];

/// The built-in rules, validated.
pub fn builtin_rules() -> Vec<Rule> {
    BUILTINS
        .iter()
        .map(|b| {
            let spec = ThresholdSpec {
                id: b.id.into(),
                metric: b.metric.into(),
                above: b.above,
                below: b.below,
                hold_ms: b.hold_s * 1000,
                clear: Some(b.clear),
                severity: Some(b.severity.into()),
                message: Some(b.message.into()),
            };
            Rule::threshold(&spec).expect("built-in rules are valid (tested)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_unique() {
        let rules = builtin_rules();
        assert_eq!(rules.len(), BUILTINS.len());
        let mut ids: Vec<_> = rules.iter().map(|r| r.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rules.len());
    }

    #[test]
    fn clinical_boundaries() {
        let rules = builtin_rules();
        let t = |id: &str| {
            rules
                .iter()
                .find(|r| &*r.id == id)
                .unwrap()
                .threshold_for(None)
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
}
