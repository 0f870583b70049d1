//! One patient under its shard lock: every reading of a device payload processed with one
//! lock, the payload's windows loaded together.

use super::*;

/// A patient admitted and locked by [`Engine::lock_patient`].
pub struct LockedPatient<'e> {
    pub(super) engine: &'e Engine,
    pub(super) rules: Guard<Arc<RuleSet>>,
    pub(super) state: StateMut<'e>,
}

impl LockedPatient<'_> {
    /// Starts loading what processing readings of `metrics` will touch, all at once: at
    /// 100 000 patients a window is rarely in cache, and its misses then overlap instead of
    /// stalling one reading after another. Call it before processing a payload.
    pub fn prefetch(&self, metrics: impl IntoIterator<Item = Metric>) {
        let touched = metrics
            .into_iter()
            .fold(0, |acc, m| acc ^ self.state.windows[m.index()].touch());
        std::hint::black_box(touched);
    }

    /// Places one reading of this patient in its window and evaluates every rule that
    /// watches its metric. `r.patient_id` is not looked at again.
    pub fn process(&mut self, r: &Reading<'_>, now_ms: i64) -> Outcome {
        let (engine, rules, state) = (self.engine, &*self.rules, &mut *self.state);
        let m = r.metric.index();
        let retention = rules.window_ms(r.metric).max(state.hot.longest_override_ms);
        state.windows[m].track(rules.needs(r.metric));
        let appended = state.windows[m].insert(
            Sample {
                ts_ms: r.ts_ms,
                value: r.value,
            },
            retention,
        );
        state.latest[m] = state.windows[m].latest();
        state.persisted.changed(appended);
        if rules.has_absent(r.metric) {
            state.last_wall_ms[m] = now_ms;
            engine.arm(rules, state, r.metric, now_ms);
        }
        // Alerts a person resolved no longer hold their rule.
        if !state.open.is_empty() {
            state.open.retain(|a| a.flag.is_open());
        }

        let mut outcome = Outcome::default();
        // NEWS2 is scored once per reading and window, however many NEWS2 rules there are.
        let mut news2_score: Option<(i64, Option<news2::Score>)> = None;
        for (index, rule) in rules.for_metric(r.metric) {
            if !state.applies(index, rule) {
                continue;
            }
            let overridden;
            let kind = match state.override_for(&rule.id) {
                None => &rule.kind,
                Some(o) => {
                    overridden = rule.kind_with(Some(o));
                    &overridden
                }
            };
            let open = state.open.iter().position(|a| a.rule_id == rule.id);
            let is_open = open.is_some();
            let verdict = match kind {
                RuleKind::Threshold(_, t) => threshold::evaluate(t, &state.windows[m], is_open),
                RuleKind::Change(_, c) => change::evaluate(c, &state.windows[m], is_open),
                RuleKind::Aggregate(_, a) => aggregate::evaluate(a, &state.windows[m], is_open),
                // A reading arrived: the metric is no longer absent.
                RuleKind::Absent(..) if is_open => Verdict::Clear,
                RuleKind::Absent(..) => Verdict::Hold,
                RuleKind::News2(n) => {
                    let score = match news2_score {
                        Some((window, score)) if window == n.window_ms => score,
                        _ => {
                            let score =
                                news2::score(&state.latest, n.window_ms, state.hot.spo2_scale);
                            news2_score = Some((n.window_ms, score));
                            score
                        }
                    };
                    news2::evaluate(n, score, is_open)
                }
            };
            if verdict != Verdict::Hold {
                engine.apply(state, rule, kind, verdict, open, now_ms, &mut outcome);
            }
        }
        outcome
    }
}
