//! A compiled set of rules: indexed by metric for the hot path, with the history each
//! metric's window must keep.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vigil_ingest::Metric;

use crate::rule::{Aggregate, AggregateFn, Rule, RuleKind};
use crate::rule_version::{Approval, RuleSetVersion};
use crate::window::Tracking;

/// Rules plus the indexes the engine needs per reading.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Per compiled set, 1 to `u32::MAX` (0 marks a patient cache never filled):
    /// patients cache which rules apply to them by it. Two sets share it only when
    /// `u32::MAX - 1` others were compiled between them (32 bits: it is in every patient's
    /// cache).
    generation: u32,
    rules: Vec<Rule>,
    by_metric: [Vec<usize>; Metric::COUNT],
    absent: [Vec<usize>; Metric::COUNT],
    /// Per metric, the rules that need its windows to keep something beyond samples
    /// (min/max candidates for a min, max, rise or fall rule, running sums for an avg
    /// rule, a trend's span sums), with what they need.
    trackers: [Vec<(usize, Tracking)>; Metric::COUNT],
    /// Per metric, its trackers as bits of rule indexes and what they need together:
    /// a patient to whom all of them apply, or none (most patients, per metric), needs
    /// no walk of the list. `None` if a tracker's index is past the bits.
    tracker_bits: [Option<TrackerBits>; Metric::COUNT],
    window_ms: [i64; Metric::COUNT],
    /// Which version of the rules in force this is (number 0 until one is given).
    version: Arc<RuleSetVersion>,
}

/// The `n`th set's generation: 1 to `u32::MAX`, never 0, whatever `n`.
fn generation_of(n: u64) -> u32 {
    ((n.wrapping_sub(1) % u64::from(u32::MAX)) + 1) as u32
}

impl RuleSet {
    /// Compiles `rules`. Ids are assumed unique (the configuration layer checks).
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        // Starts at 1: 0 marks a patient cache that was never filled.
        static GENERATION: AtomicU64 = AtomicU64::new(1);
        let mut set = RuleSet {
            generation: generation_of(GENERATION.fetch_add(1, Ordering::Relaxed)),
            rules,
            ..RuleSet::default()
        };
        // Rules that supersede others are evaluated first, so that a reading that meets
        // both NEWS2 high and medium raises only high (medium is then inhibited) instead of
        // raising medium and resolving it at once.
        let mut order: Vec<usize> = (0..set.rules.len()).collect();
        order.sort_by_key(|&i| set.rules[i].supersedes.is_empty());
        for i in order {
            let rule = &set.rules[i];
            for m in rule.watched() {
                let m = m.index();
                set.by_metric[m].push(i);
                set.window_ms[m] = set.window_ms[m].max(rule.window_ms(None));
                if matches!(rule.kind, RuleKind::Absent(..)) {
                    set.absent[m].push(i);
                }
                let mut needs = Tracking::default();
                match rule.kind {
                    RuleKind::Change(..)
                    | RuleKind::Aggregate(
                        _,
                        Aggregate {
                            func: AggregateFn::Min | AggregateFn::Max,
                            ..
                        },
                    ) => needs.extrema = true,
                    RuleKind::Aggregate(
                        _,
                        Aggregate {
                            func: AggregateFn::Avg,
                            ..
                        },
                    ) => needs.sums = true,
                    RuleKind::Trend(_, t) => needs.trend_ms = t.window_ms,
                    _ => {}
                }
                if needs != Tracking::default() {
                    set.trackers[m].push((i, needs));
                }
            }
        }
        for (bits, trackers) in set.tracker_bits.iter_mut().zip(&set.trackers) {
            *bits = TrackerBits::of(trackers);
        }
        set
    }

    /// A new set with `rule` added, or replacing the rule with the same id in place: the
    /// next version, as `approval` says.
    pub fn with_rule(&self, rule: Rule, approval: Approval) -> RuleSet {
        let mut rules = self.rules.clone();
        match rules.iter_mut().find(|r| r.id == rule.id) {
            Some(existing) => *existing = rule,
            None => rules.push(rule),
        }
        self.succeeded_by(rules, approval)
    }

    /// A new set without the rule `id` (the next version, as `approval` says), or `None`
    /// if there is no such rule.
    pub fn without(&self, id: &str, approval: Approval) -> Option<RuleSet> {
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .filter(|r| &*r.id != id)
            .cloned()
            .collect();
        (rules.len() < self.rules.len()).then(|| self.succeeded_by(rules, approval))
    }

    fn succeeded_by(&self, rules: Vec<Rule>, approval: Approval) -> RuleSet {
        let version = self.version.next(&rules, approval);
        RuleSet::new(rules).with_version(version)
    }

    /// A copy of `set`, the same version.
    pub fn clone_of(set: &RuleSet) -> RuleSet {
        RuleSet::new(set.rules.clone()).with_version((*set.version).clone())
    }

    /// The same rules, as version `version`.
    pub fn with_version(mut self, version: RuleSetVersion) -> RuleSet {
        self.version = Arc::new(version);
        self
    }

    /// Which version of the rules in force this is.
    pub fn version(&self) -> &Arc<RuleSetVersion> {
        &self.version
    }

    /// The `absent` rules on `metric`.
    pub fn absent_for(&self, metric: Metric) -> impl Iterator<Item = &Rule> {
        self.absent[metric.index()].iter().map(|&i| &self.rules[i])
    }

    /// The rules that need `metric`'s windows to keep something beyond their samples,
    /// by index, with what each needs: min/max candidates (`rise`/`fall`/`min`/`max`),
    /// running sums (`avg`), a span's sums (`trend`). A window keeps what the rules that
    /// apply to its patient need ([`Tracking::union`]).
    pub fn trackers(&self, metric: Metric) -> &[(usize, Tracking)] {
        &self.trackers[metric.index()]
    }

    /// The trackers of `metric` as bits of rule indexes (as a patient's cache of which
    /// rules apply holds them), with what all of them need together.
    #[inline]
    pub(crate) fn tracker_bits(&self, metric: Metric) -> Option<&TrackerBits> {
        self.tracker_bits[metric.index()].as_ref()
    }

    pub fn has_absent(&self, metric: Metric) -> bool {
        !self.absent[metric.index()].is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// The rules that must see readings of `metric`, with their index in the set.
    pub fn for_metric(&self, metric: Metric) -> impl Iterator<Item = (usize, &Rule)> {
        self.by_metric[metric.index()]
            .iter()
            .map(|&i| (i, &self.rules[i]))
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// How much event-time history `metric`'s window must keep: the longest window any rule
    /// on it needs (a patient's longer overrides are added by the engine).
    pub fn window_ms(&self, metric: Metric) -> i64 {
        self.window_ms[metric.index()]
    }
}

/// A metric's trackers ([`RuleSet::trackers`]) as bits: bit `i` for rule `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackerBits {
    pub bits: [u32; 4],
    /// The union of what they need.
    pub all: Tracking,
}

impl TrackerBits {
    /// Bits for `trackers`, or `None` if one's index is past 127.
    fn of(trackers: &[(usize, Tracking)]) -> Option<TrackerBits> {
        trackers.iter().try_fold(
            TrackerBits {
                bits: [0; 4],
                all: Tracking::default(),
            },
            |mut acc, &(i, needs)| {
                *acc.bits.get_mut(i / 32)? |= 1 << (i % 32);
                acc.all = acc.all.union(needs);
                Some(acc)
            },
        )
    }
}

#[cfg(test)]
mod generations {
    use super::generation_of;

    #[test]
    fn a_generation_is_kept_in_32_bits_and_never_as_the_unfilled_mark() {
        let max = u64::from(u32::MAX);
        for (n, held) in [
            (1, 1),
            (2, 2),
            (max, u32::MAX),
            (max + 1, 1),
            (2 * max, u32::MAX),
            // 2^64 - 1 is a multiple of 2^32 - 1.
            (0, 1),
            (u64::MAX, u32::MAX),
        ] {
            assert_eq!(generation_of(n), held, "{n}");
        }
    }
}
