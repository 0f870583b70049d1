//! A compiled set of rules: indexed by metric for the hot path, with the history each
//! metric's window must keep.

use std::sync::Arc;

use vigil_ingest::Metric;

use crate::rule::Rule;

/// Rules plus the indexes the engine needs per reading.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    by_metric: [Vec<usize>; Metric::COUNT],
    window_ms: [i64; Metric::COUNT],
}

impl RuleSet {
    /// Compiles `rules`. Ids are assumed unique (the configuration layer checks).
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut set = RuleSet {
            rules,
            ..RuleSet::default()
        };
        for (i, rule) in set.rules.iter().enumerate() {
            let m = rule.metric.index();
            set.by_metric[m].push(i);
            set.window_ms[m] = set.window_ms[m].max(rule.window_ms());
        }
        set
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// The rules that watch `metric`.
    pub fn for_metric(&self, metric: Metric) -> impl Iterator<Item = &Rule> {
        self.by_metric[metric.index()]
            .iter()
            .map(|&i| &self.rules[i])
    }

    /// How much event-time history `metric`'s window must keep: the longest window any rule
    /// on it needs. Per-patient `for` overrides longer than this are capped by
    /// [`RuleSet::window_ms_with_overrides`].
    pub fn window_ms(&self, metric: Metric) -> i64 {
        self.window_ms[metric.index()]
    }

    /// The window for `metric` given the largest `for` override any patient has.
    pub fn window_ms_with_overrides(&self, metric: Metric, longest_override_ms: i64) -> i64 {
        self.window_ms(metric).max(longest_override_ms)
    }

    /// The rule ids, shared, in definition order.
    pub fn ids(&self) -> Vec<Arc<str>> {
        self.rules.iter().map(|r| r.id.clone()).collect()
    }
}
