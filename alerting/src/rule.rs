//! Rules as the engine uses them: what each kind watches, its parameters, per-patient
//! overrides, cohort restrictions and the alert text. Validation lives in `rule_spec.rs`.

use std::sync::Arc;

use vigil_ingest::Metric;

use crate::alert::Severity;
pub use crate::overrides::RuleOverride;
use crate::patient::PatientProfile;

/// Which side of a level breaches. Comparisons are strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    /// Breaches when value > level.
    Above,
    /// Breaches when value < level.
    Below,
}

impl Direction {
    pub fn breaches(self, value: f64, level: f64) -> bool {
        match self {
            Direction::Above => value > level,
            Direction::Below => value < level,
        }
    }

    /// Back past the clear level: value <= clear (above) or value >= clear (below).
    pub fn clears(self, value: f64, clear: f64) -> bool {
        match self {
            Direction::Above => value <= clear,
            Direction::Below => value >= clear,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Direction::Above => "above",
            Direction::Below => "below",
        }
    }
}

/// `kind = "threshold"`: a level held for `for`, with hysteresis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub direction: Direction,
    pub level: f64,
    /// `for`: the condition must hold this long, in event time, before it fires.
    pub hold_ms: i64,
    /// Resolve level; defaults to `level`.
    pub clear: f64,
}

impl Threshold {
    pub fn breaches(&self, value: f64) -> bool {
        self.direction.breaches(value, self.level)
    }

    pub fn clears(&self, value: f64) -> bool {
        self.direction.clears(value, self.clear)
    }
}

/// `kind = "rise"` / `"fall"`: change over a window in event time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// True for rise (latest − minimum), false for fall (maximum − latest).
    pub rise: bool,
    pub window_ms: i64,
    /// Fires when the change reaches `by` (>=).
    pub by: f64,
    /// Resolves when the change is below `clear`; defaults to `by`.
    pub clear: f64,
}

/// Which aggregate an aggregate rule computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFn {
    Avg,
    Min,
    Max,
}

impl AggregateFn {
    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
        }
    }
}

/// `kind = "avg"` / `"min"` / `"max"` over readings with ts in (latest − window, latest].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate {
    pub func: AggregateFn,
    pub window_ms: i64,
    pub direction: Direction,
    pub level: f64,
    /// Fewer readings in the window than this: no verdict.
    pub min_samples: u32,
    /// Readings on fewer distinct days (the patient's time zone) in the window than this:
    /// no verdict (0: not asked).
    pub min_days: u32,
    pub clear: f64,
}

/// `kind = "trend"`: the least-squares line through the readings with ts in
/// (newest − window, newest], projected `horizon` past the newest reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    pub window_ms: i64,
    pub horizon_ms: i64,
    pub direction: Direction,
    pub level: f64,
    /// Fewer readings in the window than this: no verdict (at least 2).
    pub min_samples: u32,
    /// Resolves once the projection is back past this; defaults to `level`.
    pub clear: f64,
}

/// `kind = "adherence"`: readings of the metric on fewer than `min_days` of the last
/// `days` days (the patient's time zone), judged on the server's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adherence {
    pub days: u32,
    pub min_days: u32,
}

/// `kind = "absent"`: no reading of the metric for `after`, on the server's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Absent {
    pub after_ms: i64,
}

/// `kind = "news2"`: the Royal College of Physicians' National Early Warning Score 2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct News2 {
    pub at_least: u32,
    /// The single-parameter trigger (a parameter scoring this much fires on its own).
    pub any_parameter_at_least: Option<u32>,
    /// The latest reading of each parameter within this window counts.
    pub window_ms: i64,
    /// An open alert resolves once the aggregate is below this (default `at_least`) and
    /// no parameter meets the single-parameter trigger. A lower value stops a score that
    /// hovers at the trigger from raising and resolving again and again.
    pub clear: u32,
}

/// What a rule watches for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RuleKind {
    Threshold(Metric, Threshold),
    Change(Metric, Change),
    Aggregate(Metric, Aggregate),
    Absent(Metric, Absent),
    News2(News2),
    Trend(Metric, Trend),
    Adherence(Metric, Adherence),
}

/// The parameters NEWS2 scores, in chart order.
pub const NEWS2_METRICS: [Metric; 7] = [
    Metric::RespRate,
    Metric::Spo2,
    Metric::OnOxygen,
    Metric::SystolicBp,
    Metric::HeartRate,
    Metric::Consciousness,
    Metric::Temperature,
];

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub id: Arc<str>,
    pub kind: RuleKind,
    pub severity: Severity,
    /// Message template; `{value}`, `{unit}`, `{threshold}`, `{metric}` are filled in.
    pub message: Option<String>,
    /// Sent to the patient on `notify/{patient_id}` when the rule raises (same placeholders).
    pub patient_message: Option<String>,
    /// Route alerts to this team instead of the patient's.
    pub care_team: Option<Arc<str>>,
    /// Applies only to patients with at least one of these conditions (empty: everyone).
    pub conditions: Vec<Arc<str>>,
    /// Applies only to patients in one of these risk tiers (empty: every tier).
    pub tiers: Vec<Arc<str>>,
    /// Rules this one supersedes for the same patient (inhibition).
    pub supersedes: Vec<Arc<str>>,
}

impl Rule {
    /// The kind's name as written in configuration.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            RuleKind::Threshold(..) => "threshold",
            RuleKind::Change(_, c) if c.rise => "rise",
            RuleKind::Change(..) => "fall",
            RuleKind::Aggregate(_, a) => a.func.name(),
            RuleKind::Absent(..) => "absent",
            RuleKind::News2(_) => "news2",
            RuleKind::Trend(..) => "trend",
            RuleKind::Adherence(..) => "adherence",
        }
    }

    /// The single metric the rule is about (`None` for NEWS2).
    pub fn metric(&self) -> Option<Metric> {
        match &self.kind {
            RuleKind::Threshold(m, _)
            | RuleKind::Change(m, _)
            | RuleKind::Aggregate(m, _)
            | RuleKind::Absent(m, _)
            | RuleKind::Trend(m, _)
            | RuleKind::Adherence(m, _) => Some(*m),
            RuleKind::News2(_) => None,
        }
    }

    /// Every metric whose readings this rule must see.
    pub fn watched(&self) -> &[Metric] {
        match &self.kind {
            RuleKind::Threshold(m, _)
            | RuleKind::Change(m, _)
            | RuleKind::Aggregate(m, _)
            | RuleKind::Absent(m, _)
            | RuleKind::Trend(m, _)
            | RuleKind::Adherence(m, _) => std::slice::from_ref(m),
            RuleKind::News2(_) => &NEWS2_METRICS,
        }
    }

    /// The metric name and unit its alerts carry.
    pub fn alert_metric(&self) -> (&'static str, &'static str) {
        match &self.kind {
            RuleKind::Absent(m, _) => (m.name(), "s"),
            RuleKind::Adherence(m, _) => (m.name(), "d"),
            RuleKind::News2(_) => ("news2", "{score}"),
            other => {
                let m = match other {
                    RuleKind::Threshold(m, _)
                    | RuleKind::Change(m, _)
                    | RuleKind::Aggregate(m, _)
                    | RuleKind::Trend(m, _) => *m,
                    _ => unreachable!("handled above"),
                };
                (m.name(), m.canonical_unit())
            }
        }
    }

    /// Whether this rule applies to `p` (cohort restrictions).
    pub fn applies_to(&self, p: &PatientProfile) -> bool {
        (self.conditions.is_empty() || self.conditions.iter().any(|c| p.conditions.contains(c)))
            && (self.tiers.is_empty() || p.tier.as_ref().is_some_and(|t| self.tiers.contains(t)))
    }

    /// The event-time history this rule needs in a metric's window, with an override.
    pub fn window_ms(&self, o: Option<&RuleOverride>) -> i64 {
        let k = self.kind_with(o);
        match k {
            RuleKind::Threshold(_, t) => t.hold_ms,
            RuleKind::Change(_, c) => c.window_ms,
            RuleKind::Aggregate(_, a) => a.window_ms,
            RuleKind::Trend(_, t) => t.window_ms,
            // Absence is judged on the wall clock, adherence on the day masks; NEWS2 needs
            // only each latest reading.
            RuleKind::Absent(..) | RuleKind::Adherence(..) | RuleKind::News2(_) => 0,
        }
    }

    /// The kind with a patient's override applied.
    pub fn kind_with(&self, o: Option<&RuleOverride>) -> RuleKind {
        let Some(o) = o else {
            return self.kind;
        };
        match &self.kind {
            RuleKind::Threshold(m, t) => {
                let (level, clear) = moved_level(t.direction, t.level, t.clear, o);
                RuleKind::Threshold(
                    *m,
                    Threshold {
                        level,
                        clear,
                        hold_ms: o.hold_ms.unwrap_or(t.hold_ms),
                        ..*t
                    },
                )
            }
            RuleKind::Change(m, c) => {
                let by = o.by.unwrap_or(c.by);
                let clear = o.clear.unwrap_or(c.clear + (by - c.by));
                RuleKind::Change(
                    *m,
                    Change {
                        by,
                        clear,
                        window_ms: o.window_ms.unwrap_or(c.window_ms),
                        ..*c
                    },
                )
            }
            RuleKind::Aggregate(m, a) => {
                let (level, clear) = moved_level(a.direction, a.level, a.clear, o);
                RuleKind::Aggregate(
                    *m,
                    Aggregate {
                        level,
                        clear,
                        window_ms: o.window_ms.unwrap_or(a.window_ms),
                        min_samples: o.min_samples.unwrap_or(a.min_samples),
                        min_days: o.min_days.unwrap_or(a.min_days),
                        ..*a
                    },
                )
            }
            RuleKind::Trend(m, t) => {
                let (level, clear) = moved_level(t.direction, t.level, t.clear, o);
                RuleKind::Trend(
                    *m,
                    Trend {
                        level,
                        clear,
                        window_ms: o.window_ms.unwrap_or(t.window_ms),
                        horizon_ms: o.horizon_ms.unwrap_or(t.horizon_ms),
                        min_samples: o.min_samples.unwrap_or(t.min_samples),
                        ..*t
                    },
                )
            }
            RuleKind::Adherence(m, a) => RuleKind::Adherence(
                *m,
                Adherence {
                    days: o.days.unwrap_or(a.days),
                    min_days: o.min_days.unwrap_or(a.min_days),
                },
            ),
            RuleKind::Absent(m, a) => RuleKind::Absent(
                *m,
                Absent {
                    after_ms: o.after_ms.unwrap_or(a.after_ms),
                },
            ),
            RuleKind::News2(n) => {
                let at_least = o.at_least.unwrap_or(n.at_least);
                // A moved trigger without an explicit clear keeps the rule's gap.
                let gap = n.at_least.saturating_sub(n.clear);
                let clear = o
                    .clear
                    .map_or(at_least.saturating_sub(gap), |c| c.max(0.0) as u32);
                RuleKind::News2(News2 {
                    at_least,
                    any_parameter_at_least: o.any_parameter_at_least.or(n.any_parameter_at_least),
                    window_ms: o.window_ms.unwrap_or(n.window_ms),
                    clear,
                })
            }
        }
    }

    /// The level mentioned in messages (`{threshold}`).
    fn threshold_value(k: &RuleKind) -> f64 {
        match k {
            RuleKind::Threshold(_, t) => t.level,
            RuleKind::Change(_, c) => c.by,
            RuleKind::Aggregate(_, a) => a.level,
            RuleKind::Absent(_, a) => (a.after_ms / 1000) as f64,
            RuleKind::News2(n) => f64::from(n.at_least),
            RuleKind::Trend(_, t) => t.level,
            RuleKind::Adherence(_, a) => f64::from(a.min_days),
        }
    }

    /// Fills a template's placeholders.
    pub fn render(&self, template: &str, value: f64, kind: &RuleKind) -> String {
        let (metric, unit) = self.alert_metric();
        template
            .replace("{value}", &fmt_num(value))
            .replace("{unit}", unit)
            .replace("{threshold}", &fmt_num(Self::threshold_value(kind)))
            .replace("{metric}", metric)
    }

    /// The alert message for a firing with `value` under `kind` (overrides applied).
    pub fn render_message(&self, value: f64, kind: &RuleKind) -> String {
        if let Some(template) = &self.message {
            return self.render(template, value, kind);
        }
        let v = fmt_num(value);
        match kind {
            RuleKind::Threshold(m, t) => {
                let unit = m.canonical_unit();
                let held = if t.hold_ms > 0 {
                    format!(" for {}", fmt_duration(t.hold_ms))
                } else {
                    String::new()
                };
                format!(
                    "{} {v} {unit} {} {} {unit}{held}",
                    m.label(),
                    t.direction.word(),
                    fmt_num(t.level)
                )
            }
            RuleKind::Change(m, c) => format!(
                "{} {} by {v} {} within {}",
                m.label(),
                if c.rise { "rose" } else { "fell" },
                m.canonical_unit(),
                fmt_duration(c.window_ms)
            ),
            RuleKind::Aggregate(m, a) => format!(
                "{} {} over {} is {v} {}, {} {}",
                m.label(),
                a.func.name(),
                fmt_duration(a.window_ms),
                m.canonical_unit(),
                a.direction.word(),
                fmt_num(a.level)
            ),
            RuleKind::Absent(m, _) => format!(
                "No {} reading for {}",
                m.label().to_lowercase(),
                fmt_duration((value as i64) * 1000)
            ),
            RuleKind::News2(n) => format!("NEWS2 score {v} (trigger {} or more)", n.at_least),
            RuleKind::Trend(m, t) => format!(
                "{} heading {} {} {unit}: {v} {unit} projected in {} from the trend over {}",
                m.label(),
                t.direction.word(),
                fmt_num(t.level),
                fmt_duration(t.horizon_ms),
                fmt_duration(t.window_ms),
                unit = m.canonical_unit(),
            ),
            RuleKind::Adherence(m, a) => format!(
                "{} measured on {v} of the last {} days (at least {} expected)",
                m.label(),
                a.days,
                a.min_days
            ),
        }
    }
}

/// A level and clear with a patient's `above`/`below` and `clear` overrides applied. A moved
/// level without an explicit clear keeps the rule's hysteresis gap.
fn moved_level(direction: Direction, level: f64, clear: f64, o: &RuleOverride) -> (f64, f64) {
    let moved = match direction {
        Direction::Above => o.above.unwrap_or(level),
        Direction::Below => o.below.unwrap_or(level),
    };
    (moved, o.clear.unwrap_or(clear + (moved - level)))
}

/// Formats a number for people: at most two decimals, no trailing zeros.
pub fn fmt_num(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Formats a duration for people: `30 s`, `1 min`, `3 d`.
pub fn fmt_duration(ms: i64) -> String {
    const DAY: i64 = 86_400_000;
    if ms >= DAY && ms % DAY == 0 {
        format!("{} d", ms / DAY)
    } else if ms >= 3_600_000 && ms % 3_600_000 == 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms >= 60_000 && ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}
