//! Rules as users write them (configuration file, `vigil rules put`, `Rules.PutRule`) and
//! their validation into [`Rule`]s. Every problem is reported, each naming its key.

use std::sync::Arc;

use vigil_ingest::Metric;

use crate::alert::Severity;
use crate::days::MAX_ADHERENCE_DAYS;
use crate::error::AlertingError;
use crate::rule::{
    Absent, Adherence, Aggregate, AggregateFn, Change, Direction, News2, Rule, RuleKind,
    RuleOverride, Threshold, Trend,
};

/// Default NEWS2 window: the latest reading of each parameter within one hour counts.
pub const DEFAULT_NEWS2_WINDOW_MS: i64 = 3_600_000;
/// The longest window or duration a rule may use: the longest a device may upload late.
pub const MAX_WINDOW_MS: i64 = 31 * 86_400_000;
/// The longest rule id accepted.
pub const MAX_RULE_ID_LEN: usize = 64;
/// Recognised `kind` values.
pub const KINDS: &str = "threshold, rise, fall, avg, min, max, absent, news2, trend, adherence";
/// A trend rule's `min_samples` when not given.
pub const DEFAULT_TREND_MIN_SAMPLES: u32 = 5;

/// A rule as written, every key optional; durations in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RuleSpec {
    pub id: String,
    pub kind: Option<String>,
    pub metric: Option<String>,
    pub above: Option<f64>,
    pub below: Option<f64>,
    /// `for`
    pub hold_ms: Option<i64>,
    pub clear: Option<f64>,
    pub window_ms: Option<i64>,
    pub by: Option<f64>,
    pub min_samples: Option<i64>,
    pub after_ms: Option<i64>,
    pub at_least: Option<i64>,
    pub any_parameter_at_least: Option<i64>,
    /// `trend`: how far past the newest reading the line is projected.
    pub horizon_ms: Option<i64>,
    /// `adherence`, aggregates: distinct days with readings required.
    pub min_days: Option<i64>,
    /// `adherence`: the days looked back over (1-30).
    pub days: Option<i64>,
    pub severity: Option<String>,
    pub message: Option<String>,
    pub patient_message: Option<String>,
    pub care_team: Option<String>,
    pub conditions: Vec<String>,
    pub tiers: Vec<String>,
    /// Rules this one supersedes for the same patient: while its alert is open, theirs
    /// are resolved and do not raise.
    pub supersedes: Vec<String>,
}

/// Risk tiers a patient or rule may name.
pub const TIERS: [&str; 3] = ["A", "B", "C"];

struct Errors(Vec<AlertingError>);

impl Errors {
    fn push(&mut self, msg: impl Into<String>) {
        self.0.push(AlertingError::InvalidRule(msg.into()));
    }
}

impl RuleSpec {
    /// Validates the spec. Returns every problem found.
    pub fn validate(&self) -> Result<Rule, Vec<AlertingError>> {
        let mut e = Errors(Vec::new());
        check_id(&self.id, &mut e);
        let severity = match self.severity.as_deref() {
            None => Some(Severity::Medium),
            Some(s) => Severity::parse(s),
        };
        if severity.is_none() {
            e.push(format!(
                "`severity` '{}' is not one of low, medium, high",
                self.severity.as_deref().unwrap_or_default()
            ));
        }
        for s in &self.supersedes {
            if *s == self.id {
                e.push("`supersedes` must not name the rule itself");
            } else if s.is_empty() {
                e.push("`supersedes` entries must not be empty");
            }
        }
        for t in &self.tiers {
            if !TIERS.contains(&t.as_str()) {
                e.push(format!("`tiers` entry '{t}' is not one of A, B, C"));
            }
        }
        if self.care_team.as_deref() == Some("") {
            e.push("`care_team` must not be empty");
        }
        let kind = self.kind.as_deref().unwrap_or("threshold");
        let kind = match kind {
            "threshold" => self.threshold(&mut e),
            "rise" | "fall" => self.change(kind == "rise", &mut e),
            "avg" | "min" | "max" => self.aggregate(kind, &mut e),
            "absent" => self.absent(&mut e),
            "news2" => self.news2(&mut e),
            "trend" => self.trend(&mut e),
            "adherence" => self.adherence(&mut e),
            other => {
                e.push(format!(
                    "unknown rule kind '{other}'; expected one of: {KINDS}"
                ));
                None
            }
        };
        match (kind, severity) {
            (Some(kind), Some(severity)) if e.0.is_empty() => Ok(Rule {
                id: self.id.as_str().into(),
                kind,
                severity,
                message: self.message.clone().filter(|m| !m.is_empty()),
                patient_message: self.patient_message.clone().filter(|m| !m.is_empty()),
                care_team: self.care_team.as_deref().map(Arc::from),
                conditions: self
                    .conditions
                    .iter()
                    .map(|c| Arc::from(c.as_str()))
                    .collect(),
                tiers: self.tiers.iter().map(|t| Arc::from(t.as_str())).collect(),
                supersedes: self
                    .supersedes
                    .iter()
                    .map(|t| Arc::from(t.as_str()))
                    .collect(),
            }),
            _ => Err(e.0),
        }
    }

    fn kind_name(&self) -> &str {
        self.kind.as_deref().unwrap_or("threshold")
    }

    /// Reports keys that the kind does not take.
    fn refuse(&self, e: &mut Errors, keys: &[(&str, bool)]) {
        for (key, present) in keys {
            if *present {
                e.push(format!(
                    "key `{key}` does not apply to kind '{}'",
                    self.kind_name()
                ));
            }
        }
    }

    fn metric(&self, e: &mut Errors) -> Option<Metric> {
        match self.metric.as_deref() {
            None => {
                e.push(format!("kind '{}' needs `metric`", self.kind_name()));
                None
            }
            Some(name) => {
                let m = Metric::parse(name);
                if m.is_none() {
                    e.push(format!(
                        "unknown metric '{name}'; expected one of: {}",
                        Metric::ALL.map(|m| m.name()).join(", ")
                    ));
                }
                m
            }
        }
    }

    fn level(&self, e: &mut Errors) -> Option<(Direction, f64)> {
        let kind = self.kind_name();
        let (direction, level) = match (self.above, self.below) {
            (Some(a), None) => (Direction::Above, a),
            (None, Some(b)) => (Direction::Below, b),
            (Some(_), Some(_)) => {
                e.push(format!(
                    "kind '{kind}' takes `above` or `below`, not both: write two rules"
                ));
                return None;
            }
            (None, None) => {
                e.push(format!("kind '{kind}' needs `above` or `below`"));
                return None;
            }
        };
        if !level.is_finite() {
            e.push("`above`/`below` must be a finite number");
            return None;
        }
        Some((direction, level))
    }

    fn window(&self, e: &mut Errors, required: bool, default: i64) -> i64 {
        match self.window_ms {
            None if required => {
                e.push(format!("kind '{}' needs `window`", self.kind_name()));
                0
            }
            None => default,
            Some(w) => check_duration("window", w, e),
        }
    }

    fn threshold(&self, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(
            e,
            &self.common_refusals(&["for", "clear", "above", "below"]),
        );
        let metric = self.metric(e);
        let (direction, level) = self.level(e)?;
        let hold_ms = self
            .hold_ms
            .map(|h| check_duration("for", h, e))
            .unwrap_or(0);
        let t = Threshold {
            direction,
            level,
            hold_ms,
            clear: self.clear.unwrap_or(level),
        };
        check_level_clear(direction, level, t.clear, "above`/`below", e);
        Some(RuleKind::Threshold(metric?, t))
    }

    fn change(&self, rise: bool, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(e, &self.common_refusals(&["window", "by", "clear"]));
        let metric = self.metric(e);
        let window_ms = self.window(e, true, 0);
        let by = match self.by {
            Some(by) if by.is_finite() && by > 0.0 => by,
            Some(_) => {
                e.push("`by` must be a positive number");
                return None;
            }
            None => {
                e.push(format!("kind '{}' needs `by`", self.kind_name()));
                return None;
            }
        };
        let c = Change {
            rise,
            window_ms,
            by,
            clear: self.clear.unwrap_or(by),
        };
        check_change_clear(&c, e);
        Some(RuleKind::Change(metric?, c))
    }

    fn aggregate(&self, func: &str, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(
            e,
            &self.common_refusals(&[
                "window",
                "above",
                "below",
                "min_samples",
                "min_days",
                "clear",
            ]),
        );
        let metric = self.metric(e);
        let window_ms = self.window(e, true, 0);
        let min_samples = self.min_samples(1, 1, e);
        let min_days = match self.min_days {
            None => 0,
            Some(n) => check_min_days(n, window_ms, e),
        };
        let (direction, level) = self.level(e)?;
        let func = match func {
            "avg" => AggregateFn::Avg,
            "min" => AggregateFn::Min,
            _ => AggregateFn::Max,
        };
        let a = Aggregate {
            func,
            window_ms,
            direction,
            level,
            min_samples,
            min_days,
            clear: self.clear.unwrap_or(level),
        };
        check_level_clear(direction, level, a.clear, "above`/`below", e);
        Some(RuleKind::Aggregate(metric?, a))
    }

    /// `min_samples`: `default` when not given, at least `least`.
    fn min_samples(&self, default: u32, least: i64, e: &mut Errors) -> u32 {
        match self.min_samples {
            None => default,
            Some(n) if (least..=100_000).contains(&n) => n as u32,
            Some(_) => {
                e.push(format!("`min_samples` must be between {least} and 100000"));
                default
            }
        }
    }

    fn trend(&self, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(
            e,
            &self.common_refusals(&[
                "window",
                "horizon",
                "above",
                "below",
                "min_samples",
                "clear",
            ]),
        );
        let metric = self.metric(e);
        let window_ms = self.window(e, true, 0);
        if self.window_ms == Some(0) {
            e.push(
                "`window` of a trend rule must be longer than 0: a line needs readings over time",
            );
        }
        let horizon_ms = match self.horizon_ms {
            Some(h) => check_duration("horizon", h, e),
            None => {
                e.push("kind 'trend' needs `horizon` (how far ahead to project, e.g. \"30m\")");
                0
            }
        };
        let min_samples = self.min_samples(DEFAULT_TREND_MIN_SAMPLES, 2, e);
        let (direction, level) = self.level(e)?;
        let t = Trend {
            window_ms,
            horizon_ms,
            direction,
            level,
            min_samples,
            clear: self.clear.unwrap_or(level),
        };
        check_level_clear(direction, level, t.clear, "above`/`below", e);
        Some(RuleKind::Trend(metric?, t))
    }

    fn adherence(&self, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(e, &self.common_refusals(&["days", "min_days"]));
        let metric = self.metric(e);
        let days = match self.days {
            Some(d) if (1..=i64::from(MAX_ADHERENCE_DAYS)).contains(&d) => d as u32,
            Some(_) => {
                e.push(format!("`days` must be between 1 and {MAX_ADHERENCE_DAYS}"));
                return None;
            }
            None => {
                e.push("kind 'adherence' needs `days` (e.g. 30)");
                return None;
            }
        };
        let min_days = match self.min_days {
            Some(n) if (1..=i64::from(days)).contains(&n) => n as u32,
            Some(_) => {
                e.push(format!("`min_days` must be between 1 and `days` ({days})"));
                return None;
            }
            None => {
                e.push("kind 'adherence' needs `min_days` (e.g. 16)");
                return None;
            }
        };
        Some(RuleKind::Adherence(metric?, Adherence { days, min_days }))
    }

    fn absent(&self, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(e, &self.common_refusals(&["after"]));
        let metric = self.metric(e);
        let after_ms = match self.after_ms {
            Some(a) => check_duration("after", a, e),
            None => {
                e.push("kind 'absent' needs `after`");
                return None;
            }
        };
        Some(RuleKind::Absent(metric?, Absent { after_ms }))
    }

    fn news2(&self, e: &mut Errors) -> Option<RuleKind> {
        self.refuse(
            e,
            &self.common_refusals(&["at_least", "any_parameter_at_least", "window", "clear"]),
        );
        if self.metric.is_some() {
            e.push("key `metric` does not apply to kind 'news2': it scores respiration, SpO2, oxygen, systolic BP, pulse, consciousness and temperature");
        }
        let window_ms = self.window(e, false, DEFAULT_NEWS2_WINDOW_MS);
        let at_least = match self.at_least {
            Some(n) if (1..=20).contains(&n) => n as u32,
            Some(_) => {
                e.push("`at_least` must be an aggregate score between 1 and 20");
                return None;
            }
            None => {
                e.push("kind 'news2' needs `at_least`");
                return None;
            }
        };
        let any = match self.any_parameter_at_least {
            None => None,
            Some(n) if (1..=3).contains(&n) => Some(n as u32),
            Some(_) => {
                e.push("`any_parameter_at_least` must be a parameter score between 1 and 3");
                None
            }
        };
        let clear = match self.clear {
            None => at_least,
            Some(c) if c.fract() == 0.0 && c >= 0.0 && c <= f64::from(at_least) => c as u32,
            Some(_) => {
                e.push("`clear` of a news2 rule must be a whole score between 0 and `at_least`");
                at_least
            }
        };
        Some(RuleKind::News2(News2 {
            at_least,
            any_parameter_at_least: any,
            window_ms,
            clear,
        }))
    }

    /// The keys this spec sets that a kind taking only `allowed` must refuse.
    fn common_refusals(&self, allowed: &[&str]) -> Vec<(&'static str, bool)> {
        let present = [
            ("above", self.above.is_some()),
            ("below", self.below.is_some()),
            ("for", self.hold_ms.is_some()),
            ("clear", self.clear.is_some()),
            ("window", self.window_ms.is_some()),
            ("by", self.by.is_some()),
            ("min_samples", self.min_samples.is_some()),
            ("after", self.after_ms.is_some()),
            ("at_least", self.at_least.is_some()),
            (
                "any_parameter_at_least",
                self.any_parameter_at_least.is_some(),
            ),
            ("horizon", self.horizon_ms.is_some()),
            ("min_days", self.min_days.is_some()),
            ("days", self.days.is_some()),
        ];
        present
            .into_iter()
            .filter(|(k, p)| *p && !allowed.contains(k))
            .collect()
    }
}

impl Rule {
    /// Checks that a patient's override fits this rule. One message per problem.
    pub fn check_override(&self, o: &RuleOverride) -> Vec<String> {
        let mut e = Errors(Vec::new());
        let given = [
            ("above", o.above.is_some()),
            ("below", o.below.is_some()),
            ("clear", o.clear.is_some()),
            ("for", o.hold_ms.is_some()),
            ("by", o.by.is_some()),
            ("window", o.window_ms.is_some()),
            ("min_samples", o.min_samples.is_some()),
            ("after", o.after_ms.is_some()),
            ("at_least", o.at_least.is_some()),
            ("any_parameter_at_least", o.any_parameter_at_least.is_some()),
            ("horizon", o.horizon_ms.is_some()),
            ("min_days", o.min_days.is_some()),
            ("days", o.days.is_some()),
        ];
        let allowed: &[&str] = match &self.kind {
            RuleKind::Threshold(_, t) => match t.direction {
                Direction::Above => &["above", "clear", "for"],
                Direction::Below => &["below", "clear", "for"],
            },
            RuleKind::Change(..) => &["by", "window", "clear"],
            RuleKind::Aggregate(_, a) => match a.direction {
                Direction::Above => &["above", "window", "min_samples", "min_days", "clear"],
                Direction::Below => &["below", "window", "min_samples", "min_days", "clear"],
            },
            RuleKind::Trend(_, t) => match t.direction {
                Direction::Above => &["above", "window", "horizon", "min_samples", "clear"],
                Direction::Below => &["below", "window", "horizon", "min_samples", "clear"],
            },
            RuleKind::Adherence(..) => &["days", "min_days"],
            RuleKind::Absent(..) => &["after"],
            RuleKind::News2(_) => &["at_least", "any_parameter_at_least", "window", "clear"],
        };
        for (key, present) in given {
            if present && !allowed.contains(&key) {
                e.push(format!(
                    "rule '{}' ({}) cannot override `{key}`; it takes: {}",
                    self.id,
                    self.kind_name(),
                    allowed.join(", ")
                ));
            }
        }
        for (key, v) in [
            ("for", o.hold_ms),
            ("window", o.window_ms),
            ("after", o.after_ms),
            ("horizon", o.horizon_ms),
        ] {
            if let Some(v) = v {
                check_duration(key, v, &mut e);
            }
        }
        if matches!(o.min_samples, Some(0)) {
            e.push("`min_samples` must be at least 1");
        }
        if matches!(o.at_least, Some(n) if !(1..=20).contains(&n)) {
            e.push("`at_least` must be between 1 and 20");
        }
        if matches!(o.any_parameter_at_least, Some(n) if !(1..=3).contains(&n)) {
            e.push("`any_parameter_at_least` must be between 1 and 3");
        }
        if e.0.is_empty() {
            match self.kind_with(Some(o)) {
                RuleKind::Threshold(_, t) => {
                    check_level_clear(t.direction, t.level, t.clear, "level", &mut e)
                }
                RuleKind::Aggregate(_, a) => {
                    check_level_clear(a.direction, a.level, a.clear, "level", &mut e);
                    if o.min_days.is_some() {
                        check_min_days(i64::from(a.min_days), a.window_ms, &mut e);
                    }
                }
                RuleKind::Trend(_, t) => {
                    check_level_clear(t.direction, t.level, t.clear, "level", &mut e);
                    if t.min_samples < 2 {
                        e.push("`min_samples` of a trend rule must be at least 2");
                    }
                    if t.window_ms == 0 {
                        e.push("`window` of a trend rule must be longer than 0");
                    }
                }
                RuleKind::Adherence(_, a) => {
                    if !(1..=MAX_ADHERENCE_DAYS).contains(&a.days) {
                        e.push(format!("`days` must be between 1 and {MAX_ADHERENCE_DAYS}"));
                    } else if !(1..=a.days).contains(&a.min_days) {
                        e.push(format!(
                            "`min_days` must be between 1 and `days` ({})",
                            a.days
                        ));
                    }
                }
                RuleKind::Change(_, c) => {
                    if !(c.by.is_finite() && c.by > 0.0) {
                        e.push("`by` must be a positive number");
                    } else {
                        check_change_clear(&c, &mut e);
                    }
                }
                _ => {}
            }
        }
        e.0.into_iter().map(|e| e.to_string()).collect()
    }
}

fn check_id(id: &str, e: &mut Errors) {
    if id.is_empty() {
        e.push("rule `id` is required");
    } else if id.len() > MAX_RULE_ID_LEN
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        e.push(format!(
            "rule id '{id}' must be 1-64 characters of letters, digits, '_', '-' or '.'"
        ));
    }
}

fn check_duration(key: &str, ms: i64, e: &mut Errors) -> i64 {
    if ms < 0 {
        e.push(format!("`{key}` must not be negative"));
        0
    } else if ms > MAX_WINDOW_MS {
        e.push(format!("`{key}` must be at most 31 days"));
        MAX_WINDOW_MS
    } else {
        ms
    }
}

/// `min_days` of an aggregate: at least 1, and no more than the calendar days a window
/// of `window_ms` touches.
fn check_min_days(n: i64, window_ms: i64, e: &mut Errors) -> u32 {
    let touched = window_ms.div_euclid(86_400_000) + 1;
    if n < 1 || n > touched.min(i64::from(MAX_ADHERENCE_DAYS)) {
        e.push(format!(
            "`min_days` must be between 1 and {}: a window of {} touches at most {touched} days",
            touched.min(i64::from(MAX_ADHERENCE_DAYS)),
            crate::rule::fmt_duration(window_ms)
        ));
        return 0;
    }
    n as u32
}

fn check_level_clear(direction: Direction, level: f64, clear: f64, what: &str, e: &mut Errors) {
    if !clear.is_finite() {
        e.push("`clear` must be a finite number");
        return;
    }
    let wrong = match direction {
        Direction::Above => clear > level,
        Direction::Below => clear < level,
    };
    if wrong {
        e.push(format!(
            "`clear` ({}) must not be {} `{what}` ({}): it is the level to come back to",
            crate::rule::fmt_num(clear),
            direction.word(),
            crate::rule::fmt_num(level)
        ));
    }
}

fn check_change_clear(c: &Change, e: &mut Errors) {
    if !(c.clear.is_finite() && c.clear >= 0.0 && c.clear <= c.by) {
        e.push(format!(
            "`clear` must be between 0 and `by` ({})",
            crate::rule::fmt_num(c.by)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str) -> RuleSpec {
        RuleSpec {
            id: "r".into(),
            kind: Some(kind.into()),
            ..RuleSpec::default()
        }
    }

    fn errors(s: &RuleSpec) -> Vec<String> {
        s.validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn threshold_defaults_and_errors() {
        let mut s = spec("threshold");
        s.metric = Some("heart_rate".into());
        s.above = Some(120.0);
        let r = s.validate().unwrap();
        assert_eq!(r.severity, Severity::Medium);
        s.below = Some(40.0);
        s.by = Some(3.0);
        let e = errors(&s);
        assert!(e.iter().any(|m| m.contains("not both")), "{e:?}");
        assert!(
            e.iter()
                .any(|m| m.contains("key `by` does not apply to kind 'threshold'")),
            "{e:?}"
        );
    }

    #[test]
    fn each_kind_names_its_missing_keys() {
        let mut s = spec("rise");
        s.metric = Some("weight".into());
        let e = errors(&s);
        assert!(
            e.iter().any(|m| m.contains("needs `window`"))
                && e.iter().any(|m| m.contains("needs `by`")),
            "{e:?}"
        );
        let mut s = spec("avg");
        s.metric = Some("spo2".into());
        s.window_ms = Some(60_000);
        assert!(errors(&s)
            .iter()
            .any(|m| m.contains("needs `above` or `below`")));
        let s = spec("absent");
        let e = errors(&s);
        assert!(
            e.iter().any(|m| m.contains("needs `metric`"))
                && e.iter().any(|m| m.contains("needs `after`")),
            "{e:?}"
        );
        let mut s = spec("news2");
        s.metric = Some("spo2".into());
        s.at_least = Some(25);
        let e = errors(&s);
        assert!(
            e.iter().any(|m| m.contains("`metric` does not apply"))
                && e.iter().any(|m| m.contains("`at_least`")),
            "{e:?}"
        );
        assert!(errors(&spec("median"))
            .iter()
            .any(|m| m.contains("unknown rule kind 'median'")));
    }

    #[test]
    fn valid_kinds() {
        let mut s = spec("fall");
        s.metric = Some("spo2".into());
        s.window_ms = Some(3_600_000);
        s.by = Some(4.0);
        assert!(matches!(
            s.validate().unwrap().kind,
            RuleKind::Change(Metric::Spo2, Change { rise: false, .. })
        ));
        let mut s = spec("news2");
        s.at_least = Some(5);
        s.any_parameter_at_least = Some(3);
        let r = s.validate().unwrap();
        assert_eq!(r.watched().len(), 7);
        assert!(matches!(
            r.kind,
            RuleKind::News2(News2 {
                window_ms: DEFAULT_NEWS2_WINDOW_MS,
                ..
            })
        ));
        s.tiers = vec!["D".into()];
        assert!(errors(&s).iter().any(|m| m.contains("tiers")));
    }

    #[test]
    fn overrides_are_checked_per_kind() {
        let mut s = spec("rise");
        s.metric = Some("weight".into());
        s.window_ms = Some(3 * 86_400_000);
        s.by = Some(2.0);
        let r = s.validate().unwrap();
        assert!(r
            .check_override(&RuleOverride {
                by: Some(1.5),
                ..Default::default()
            })
            .is_empty());
        let e = r.check_override(&RuleOverride {
            above: Some(1.0),
            ..Default::default()
        });
        assert!(e[0].contains("cannot override `above`"), "{e:?}");
        let e = r.check_override(&RuleOverride {
            by: Some(-1.0),
            ..Default::default()
        });
        assert_eq!(e.len(), 1, "{e:?}");
    }
}
