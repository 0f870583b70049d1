//! A rule kind's parameters as text (`above 130, for 1m, clear 120`): what an alert records
//! it was raised under, the patient's override applied, so that a review after the fact
//! knows the levels in force without reconstructing the rules of that day.

use crate::rule::{Direction, RuleKind};

impl RuleKind {
    /// The parameters, keys and durations as a rule file writes them.
    pub fn parameters(&self) -> String {
        let level = |d: Direction, v: f64| match d {
            Direction::Above => format!("above {v}"),
            Direction::Below => format!("below {v}"),
        };
        let parts: Vec<String> = match self {
            RuleKind::Threshold(_, t) => vec![
                level(t.direction, t.level),
                format!("for {}", duration(t.hold_ms)),
                format!("clear {}", t.clear),
            ],
            RuleKind::Change(_, c) => vec![
                format!("{} {}", if c.rise { "rise" } else { "fall" }, c.by),
                format!("window {}", duration(c.window_ms)),
                format!("clear {}", c.clear),
            ],
            RuleKind::Aggregate(_, a) => {
                let mut parts = vec![
                    format!("{} {}", a.func.name(), level(a.direction, a.level)),
                    format!("window {}", duration(a.window_ms)),
                    format!("min_samples {}", a.min_samples),
                ];
                if a.min_days > 0 {
                    parts.push(format!("min_days {}", a.min_days));
                }
                parts.push(format!("clear {}", a.clear));
                parts
            }
            RuleKind::Trend(_, t) => vec![
                level(t.direction, t.level),
                format!("window {}", duration(t.window_ms)),
                format!("horizon {}", duration(t.horizon_ms)),
                format!("min_samples {}", t.min_samples),
                format!("clear {}", t.clear),
            ],
            RuleKind::Adherence(_, a) => {
                vec![
                    format!("days {}", a.days),
                    format!("min_days {}", a.min_days),
                ]
            }
            RuleKind::Absent(_, a) => vec![format!("after {}", duration(a.after_ms))],
            RuleKind::News2(n) => {
                let mut parts = vec![format!("at_least {}", n.at_least)];
                if let Some(p) = n.any_parameter_at_least {
                    parts.push(format!("any_parameter_at_least {p}"));
                }
                parts.push(format!("window {}", duration(n.window_ms)));
                parts.push(format!("clear {}", n.clear));
                parts
            }
        };
        parts.join(", ")
    }
}

/// `ms` as a rule file writes a duration, in the largest whole units: `30s`, `1m30s`,
/// `3d`, `250ms` (what `humantime` reads back; its own formatter writes `3days` and
/// counts 30.44-day months).
pub fn duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut left = ms.unsigned_abs();
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule_spec::RuleSpec;

    fn kind_of(spec: RuleSpec) -> RuleKind {
        spec.validate().unwrap().kind
    }

    #[test]
    fn each_kind_says_its_levels_and_durations_as_a_rule_file_writes_them() {
        let threshold = kind_of(RuleSpec {
            id: "t".into(),
            metric: Some("heart_rate".into()),
            above: Some(130.0),
            hold_ms: Some(90_000),
            clear: Some(120.0),
            ..RuleSpec::default()
        });
        assert_eq!(threshold.parameters(), "above 130, for 1m30s, clear 120");
        let rise = kind_of(RuleSpec {
            id: "w".into(),
            kind: Some("rise".into()),
            metric: Some("weight".into()),
            window_ms: Some(3 * 86_400_000),
            by: Some(2.0),
            ..RuleSpec::default()
        });
        assert_eq!(rise.parameters(), "rise 2, window 3d, clear 2");
        let absent = kind_of(RuleSpec {
            id: "a".into(),
            kind: Some("absent".into()),
            metric: Some("weight".into()),
            after_ms: Some(2 * 86_400_000 + 3_600_000),
            ..RuleSpec::default()
        });
        assert_eq!(absent.parameters(), "after 2d1h");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(0), "0s");
    }
}
