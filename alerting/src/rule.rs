//! Rule definitions as the engine uses them, with the validation shared by the
//! configuration file, `vigil rules check` and the Rules gRPC service.

use std::sync::Arc;

use vigil_ingest::Metric;

use crate::alert::Severity;
use crate::error::AlertingError;

/// Which side of the level breaches. Both comparisons are strict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Direction {
    /// Breaches when value > level.
    Above,
    /// Breaches when value < level.
    Below,
}

/// A threshold with duration and hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub direction: Direction,
    pub level: f64,
    /// `for`: the condition must hold this long, in event time, before it fires.
    pub hold_ms: i64,
    /// The level at which an open alert auto-resolves: value <= clear (above rules) or
    /// value >= clear (below rules). Defaults to `level`.
    pub clear: f64,
}

impl Threshold {
    /// Whether `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value > self.level,
            Direction::Below => value < self.level,
        }
    }

    /// Whether `value` is back past the clear level.
    pub fn clears(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value <= self.clear,
            Direction::Below => value >= self.clear,
        }
    }

    /// This threshold with a patient's overrides applied and checked.
    pub fn with_override(&self, o: &RuleOverride) -> Threshold {
        let level = match self.direction {
            Direction::Above => o.above.unwrap_or(self.level),
            Direction::Below => o.below.unwrap_or(self.level),
        };
        // A moved level without an explicit clear keeps the rule's hysteresis gap.
        let clear = o.clear.unwrap_or(self.clear + (level - self.level));
        Threshold {
            direction: self.direction,
            level,
            hold_ms: o.hold_ms.unwrap_or(self.hold_ms),
            clear,
        }
    }
}

/// What a rule watches for. Further kinds (aggregates, change, absence, NEWS2) join here.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleKind {
    Threshold(Threshold),
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Arc<str>,
    pub metric: Metric,
    pub kind: RuleKind,
    pub severity: Severity,
    /// Message template; `{value}`, `{unit}`, `{threshold}` and `{metric}` are filled in.
    pub message: Option<String>,
}

/// The numeric keys of a rule that one patient may override.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RuleOverride {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub clear: Option<f64>,
    pub hold_ms: Option<i64>,
}

/// A threshold rule as written by a user, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThresholdSpec {
    pub id: String,
    pub metric: String,
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub hold_ms: i64,
    pub clear: Option<f64>,
    pub severity: Option<String>,
    pub message: Option<String>,
}

/// The longest rule id accepted.
pub const MAX_RULE_ID_LEN: usize = 64;

impl Rule {
    /// Validates a threshold rule. Every problem is reported, one message per problem.
    pub fn threshold(spec: &ThresholdSpec) -> Result<Rule, Vec<AlertingError>> {
        let mut errors = Vec::new();
        let mut bad = |msg: String| errors.push(AlertingError::InvalidRule(msg));
        if spec.id.is_empty() {
            bad("rule `id` is required".into());
        } else if spec.id.len() > MAX_RULE_ID_LEN
            || !spec
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            bad(format!(
                "rule id '{}' must be 1-64 characters of letters, digits, '_', '-' or '.'",
                spec.id
            ));
        }
        let metric = Metric::parse(&spec.metric);
        if metric.is_none() {
            bad(format!(
                "unknown metric '{}'; expected one of: {}",
                spec.metric,
                Metric::ALL.map(|m| m.name()).join(", ")
            ));
        }
        let severity = match spec.severity.as_deref() {
            None => Some(Severity::Medium),
            Some(s) => Severity::parse(s),
        };
        if severity.is_none() {
            bad(format!(
                "severity '{}' is not one of low, medium, high",
                spec.severity.as_deref().unwrap_or_default()
            ));
        }
        let level = match (spec.above, spec.below) {
            (Some(a), None) => Some((Direction::Above, a)),
            (None, Some(b)) => Some((Direction::Below, b)),
            (Some(_), Some(_)) => {
                bad("a threshold rule takes `above` or `below`, not both: write two rules".into());
                None
            }
            (None, None) => {
                bad("a threshold rule needs `above` or `below`".into());
                None
            }
        };
        if spec.hold_ms < 0 {
            bad("`for` must not be negative".into());
        }
        let mut threshold = None;
        if let Some((direction, level)) = level {
            if !level.is_finite() {
                bad("threshold level must be a finite number".into());
            }
            let clear = spec.clear.unwrap_or(level);
            let t = Threshold {
                direction,
                level,
                hold_ms: spec.hold_ms.max(0),
                clear,
            };
            if let Some(msg) = check_clear(&t) {
                bad(msg);
            }
            threshold = Some(t);
        }
        match (metric, severity, threshold) {
            (Some(metric), Some(severity), Some(t)) if errors.is_empty() => Ok(Rule {
                id: spec.id.as_str().into(),
                metric,
                kind: RuleKind::Threshold(t),
                severity,
                message: spec.message.clone().filter(|m| !m.is_empty()),
            }),
            _ => Err(errors),
        }
    }

    /// Checks that `o` makes sense for this rule. Returns one message per problem.
    pub fn check_override(&self, o: &RuleOverride) -> Vec<String> {
        let RuleKind::Threshold(t) = &self.kind;
        let mut errors = Vec::new();
        match t.direction {
            Direction::Above if o.below.is_some() => errors.push(format!(
                "rule '{}' fires above a level: override `above`, not `below`",
                self.id
            )),
            Direction::Below if o.above.is_some() => errors.push(format!(
                "rule '{}' fires below a level: override `below`, not `above`",
                self.id
            )),
            _ => {}
        }
        if matches!(o.hold_ms, Some(h) if h < 0) {
            errors.push("`for` must not be negative".into());
        }
        if errors.is_empty() {
            if let Some(msg) = check_clear(&t.with_override(o)) {
                errors.push(msg);
            }
        }
        errors
    }

    /// The threshold that applies to a patient with these overrides.
    pub fn threshold_for(&self, o: Option<&RuleOverride>) -> Threshold {
        let RuleKind::Threshold(t) = &self.kind;
        match o {
            Some(o) => t.with_override(o),
            None => *t,
        }
    }

    /// The history this rule needs, in event time.
    pub fn window_ms(&self) -> i64 {
        let RuleKind::Threshold(t) = &self.kind;
        t.hold_ms
    }

    /// The alert message for a firing with `value` against `threshold`.
    pub fn render_message(&self, value: f64, t: &Threshold) -> String {
        let unit = self.metric.canonical_unit();
        match &self.message {
            Some(template) => template
                .replace("{value}", &fmt_num(value))
                .replace("{unit}", unit)
                .replace("{threshold}", &fmt_num(t.level))
                .replace("{metric}", self.metric.name()),
            None => {
                let side = match t.direction {
                    Direction::Above => "above",
                    Direction::Below => "below",
                };
                let held = if t.hold_ms > 0 {
                    format!(" for {}", fmt_duration(t.hold_ms))
                } else {
                    String::new()
                };
                format!(
                    "{} {} {unit} {side} {} {unit}{held}",
                    self.metric.label(),
                    fmt_num(value),
                    fmt_num(t.level)
                )
            }
        }
    }
}

fn check_clear(t: &Threshold) -> Option<String> {
    if !t.clear.is_finite() {
        return Some("`clear` must be a finite number".into());
    }
    match t.direction {
        Direction::Above if t.clear > t.level => Some(format!(
            "`clear` ({}) must not be above `above` ({}): it is the level to fall back to",
            fmt_num(t.clear),
            fmt_num(t.level)
        )),
        Direction::Below if t.clear < t.level => Some(format!(
            "`clear` ({}) must not be below `below` ({}): it is the level to climb back to",
            fmt_num(t.clear),
            fmt_num(t.level)
        )),
        _ => None,
    }
}

/// Formats a reading for people: at most two decimals, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn fmt_duration(ms: i64) -> String {
    if ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ThresholdSpec {
        ThresholdSpec {
            id: "tachycardia".into(),
            metric: "heart_rate".into(),
            above: Some(120.0),
            hold_ms: 30_000,
            clear: Some(110.0),
            severity: Some("high".into()),
            ..ThresholdSpec::default()
        }
    }

    #[test]
    fn valid_rule() {
        let r = Rule::threshold(&spec()).unwrap();
        assert_eq!(r.metric, Metric::HeartRate);
        assert_eq!(r.severity, Severity::High);
        let t = r.threshold_for(None);
        assert!(t.breaches(120.5) && !t.breaches(120.0));
        assert!(t.clears(110.0) && !t.clears(110.5));
        assert_eq!(
            r.render_message(135.0, &t),
            "Heart rate 135 /min above 120 /min for 30 s"
        );
    }

    #[test]
    fn every_error_is_reported() {
        let s = ThresholdSpec {
            id: "bad id!".into(),
            metric: "pulse".into(),
            above: Some(1.0),
            below: Some(2.0),
            severity: Some("urgent".into()),
            ..ThresholdSpec::default()
        };
        let errors = Rule::threshold(&s).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
    }

    #[test]
    fn clear_on_the_wrong_side_is_refused() {
        let mut s = spec();
        s.clear = Some(130.0);
        let e = Rule::threshold(&s).unwrap_err();
        assert!(e[0].to_string().contains("`clear`"), "{e:?}");
    }

    #[test]
    fn overrides_move_level_and_keep_gap() {
        let r = Rule::threshold(&spec()).unwrap();
        let o = RuleOverride {
            above: Some(130.0),
            ..RuleOverride::default()
        };
        assert!(r.check_override(&o).is_empty());
        let t = r.threshold_for(Some(&o));
        assert_eq!((t.level, t.clear, t.hold_ms), (130.0, 120.0, 30_000));
        let wrong = RuleOverride {
            below: Some(50.0),
            ..RuleOverride::default()
        };
        assert_eq!(r.check_override(&wrong).len(), 1);
    }

    #[test]
    fn templates_fill_placeholders() {
        let mut s = spec();
        s.message = Some("HR {value}{unit} > {threshold} ({metric})".into());
        let r = Rule::threshold(&s).unwrap();
        let t = r.threshold_for(None);
        assert_eq!(
            r.render_message(131.5, &t),
            "HR 131.5/min > 120 (heart_rate)"
        );
    }
}
