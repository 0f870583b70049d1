//! Read-only views of patients for people (the console's patient page and worklist): the
//! samples the windows hold, the levels the patient's rules draw on them, and a summary per
//! patient for sorting by risk. Each patient is locked only while it is copied.

use vigil_ingest::Metric;

use super::*;
use crate::news2::Score;
use crate::rule::Direction;

/// A rule's level on a metric's chart, with the patient's override applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuleLine {
    pub rule_id: Arc<str>,
    pub direction: Direction,
    pub level: f64,
    pub severity: crate::alert::Severity,
}

/// One metric's recent samples (oldest first) and the rule levels drawn on them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MetricSeries {
    pub metric: Metric,
    pub samples: Vec<Sample>,
    pub lines: Vec<RuleLine>,
}

/// One metric's measured days (adherence), as of the server's clock, in the patient's
/// time zone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricAdherence {
    pub metric: Metric,
    /// Days among the last [`ADHERENCE_DAYS`] (today included) with at least one reading.
    pub days_measured: u32,
    /// Bit `i` set: the day `i` days before today had a reading.
    pub recent: u32,
    /// The day the first reading of the metric was taken (`YYYY-MM-DD`).
    pub first_day: Option<String>,
}

/// The days the patient page and `GetPatient` count adherence over.
pub const ADHERENCE_DAYS: u32 = 30;

/// What the patient page shows besides alerts (serializable: in cluster mode it comes
/// from the node evaluating the patient).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PatientView {
    pub profile: Arc<PatientProfile>,
    /// Metrics with at least one sample, in the metric table's order.
    pub series: Vec<MetricSeries>,
    /// When the newest reading of any metric was taken.
    pub last_reading_ms: Option<i64>,
    pub news2: Option<Score>,
    /// Per metric ever measured (in the last 32 days or since the first reading kept).
    #[serde(default)]
    pub adherence: Vec<MetricAdherence>,
    /// Today's date in the patient's time zone (`YYYY-MM-DD`), the newest day of
    /// `adherence`.
    #[serde(default)]
    pub today: String,
}

/// One line of the worklist.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PatientSummary {
    pub profile: Arc<PatientProfile>,
    pub last_reading_ms: Option<i64>,
    pub news2: Option<Score>,
}

/// The NEWS2 window when no NEWS2 rule applies to the patient.
const DEFAULT_NEWS2_WINDOW_MS: i64 = 3_600_000;

impl Engine {
    /// The patient's windows (at most `max_samples` newest per metric), rule levels and
    /// measured days as of server time `now_ms`; `None` for a patient the engine does not
    /// know.
    pub fn patient_view(&self, id: &str, max_samples: usize, now_ms: i64) -> Option<PatientView> {
        let rules = self.rules.load();
        let state = self.store.get_mut(id)?;
        let today = state.day_of(now_ms, || self.timezone());
        let adherence = state
            .measured
            .iter()
            .map(|(metric, s)| (metric, &s.days))
            .filter(|(_, d)| !d.is_empty())
            .map(|(metric, d)| MetricAdherence {
                metric,
                days_measured: d.count(today - ADHERENCE_DAYS as i32 + 1, today),
                recent: d.recent(today, ADHERENCE_DAYS),
                first_day: d.first_day().map(crate::days::date_of),
            })
            .collect();
        let today = crate::days::date_of(today);
        let profile = state.profile_of(id);
        let series = state
            .measured
            .iter()
            .filter(|&(metric, _)| state.measured.latest(metric).is_some())
            .map(|(metric, s)| {
                let mut samples: Vec<Sample> = s.newest_first().take(max_samples).collect();
                if samples.is_empty() {
                    samples.extend(state.measured.latest(metric));
                }
                samples.reverse();
                MetricSeries {
                    metric,
                    samples,
                    lines: lines(&rules, &profile, metric),
                }
            })
            .collect();
        let news2 = news2_score(&rules, &state);
        let last_reading_ms = last_reading(&state);
        Some(PatientView {
            profile,
            series,
            last_reading_ms,
            news2,
            adherence,
            today,
        })
    }

    /// A summary of every patient whose profile `wanted` accepts.
    pub fn patient_summaries(
        &self,
        wanted: impl Fn(&PatientProfile) -> bool,
    ) -> Vec<PatientSummary> {
        let rules = self.rules.load();
        let mut out = Vec::new();
        for id in self.store.ids() {
            let Some(state) = self.store.get_mut(&id) else {
                continue;
            };
            if !wanted(&state.profile_of(&id)) {
                continue;
            }
            out.push(PatientSummary {
                profile: state.profile_of(&id),
                last_reading_ms: last_reading(&state),
                news2: news2_score(&rules, &state),
            });
        }
        out
    }
}

/// When the newest reading of any metric was taken (event time).
fn last_reading(state: &PatientState) -> Option<i64> {
    state.measured.all_latest().map(|s| s.ts_ms).max()
}

/// NEWS2 over the window of the first NEWS2 rule that applies (else an hour).
fn news2_score(rules: &RuleSet, state: &PatientState) -> Option<Score> {
    let window = rules
        .rules()
        .iter()
        .filter(|r| r.applies_to(state.profile()))
        .find_map(|r| match r.kind {
            RuleKind::News2(n) => Some(n.window_ms),
            _ => None,
        })
        .unwrap_or(DEFAULT_NEWS2_WINDOW_MS);
    news2::score(|m| state.measured.latest(m), window, state.hot.spo2_scale)
}

/// The levels of the threshold and aggregate rules on `metric` that apply to the patient.
fn lines(rules: &RuleSet, profile: &PatientProfile, metric: Metric) -> Vec<RuleLine> {
    rules
        .rules()
        .iter()
        .filter(|r| r.metric() == Some(metric) && r.applies_to(profile))
        .filter_map(|r| {
            let (direction, level) = match r.kind_with(profile.override_for(&r.id)) {
                RuleKind::Threshold(_, t) => (t.direction, t.level),
                RuleKind::Aggregate(_, a) => (a.direction, a.level),
                RuleKind::Trend(_, t) => (t.direction, t.level),
                _ => return None,
            };
            Some(RuleLine {
                rule_id: r.id.clone(),
                direction,
                level,
                severity: r.severity,
            })
        })
        .collect()
}
