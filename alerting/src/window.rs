//! The sliding window: one metric's recent samples for one patient, kept in event-time
//! order, trimmed to the history the rules need.

use std::collections::VecDeque;

use crate::extrema::Extrema;

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub ts_ms: i64,
    pub value: f64,
}

/// A stored sample with the running sum of every value up to and including it (24 bytes),
/// so the mean over any suffix costs a binary search, not a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    ts_ms: i64,
    value: f64,
    cum: f64,
}

/// Count, sum, minimum and maximum over a range of a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// Most samples one window keeps, whatever the rules ask: a device flooding readings
/// cannot grow a patient's memory without bound.
pub const MAX_SAMPLES: usize = 8192;

/// Samples in event-time order (oldest first). After warm-up the rings reuse their
/// allocations, so pushing allocates nothing.
///
/// History past the retention is dropped in batches: rules bound what they read by event
/// time, so a few extra old samples change no verdict, and not looking at the oldest
/// sample on every push saves a cache miss per reading.
#[derive(Debug, Clone)]
pub struct Window {
    samples: VecDeque<Entry>,
    /// Sequence number of `samples[0]`; `samples[i]` has `base + i`.
    base: u64,
    /// Min/max candidates, kept only while a rule needs them (`track_extrema`): two more
    /// buffers per window are a cost every other metric should not pay. Boxed, so a
    /// window's header fits one cache line.
    extrema: Option<Box<Extrema>>,
    /// Nothing is trimmed while the newest timestamp is below this and the retention is
    /// `trim_retention_ms` (`i64::MIN`: look now).
    trim_at_ms: i64,
    trim_retention_ms: i64,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            samples: VecDeque::new(),
            base: 0,
            extrema: None,
            trim_at_ms: i64::MIN,
            trim_retention_ms: 0,
        }
    }
}

impl Window {
    /// Keeps (`true`) or stops keeping min/max candidates. Turning it on for a window that
    /// already has samples builds them once from those samples.
    pub fn track_extrema(&mut self, on: bool) {
        match (on, self.extrema.is_some()) {
            (true, false) => {
                let mut e = Extrema::default();
                for (i, s) in self.samples.iter().enumerate() {
                    e.push(self.base + i as u64, s.value);
                }
                self.extrema = Some(Box::new(e));
            }
            (false, true) => self.extrema = None,
            _ => {}
        }
    }

    /// Inserts `s` at its event-time position (after samples with an equal timestamp), then
    /// drops history older than `newest - retention_ms`. The newest sample at or before that
    /// horizon is kept as an anchor: a run of readings that began before the horizon must
    /// still show that it did, or a `for` would be judged too short.
    pub fn insert(&mut self, s: Sample, retention_ms: i64) {
        match self.samples.back() {
            Some(last) if last.ts_ms > s.ts_ms => {
                let at = self.samples.partition_point(|x| x.ts_ms <= s.ts_ms);
                if at <= 1 {
                    self.trim_at_ms = i64::MIN;
                }
                let before = if at == 0 {
                    0.0
                } else {
                    self.samples[at - 1].cum
                };
                self.samples.insert(
                    at,
                    Entry {
                        ts_ms: s.ts_ms,
                        value: s.value,
                        cum: before + s.value,
                    },
                );
                // Late readings are rare: fix the running sums after the insertion point and
                // rebuild the extrema, whose sequence numbers shifted.
                for e in self.samples.range_mut(at + 1..) {
                    e.cum += s.value;
                }
                if let Some(extrema) = self.extrema.as_mut() {
                    extrema.clear();
                    for (i, e) in self.samples.iter().enumerate() {
                        extrema.push(self.base + i as u64, e.value);
                    }
                }
            }
            last => {
                let cum = last.map_or(0.0, |l| l.cum) + s.value;
                self.samples.push_back(Entry {
                    ts_ms: s.ts_ms,
                    value: s.value,
                    cum,
                });
                if self.samples.len() <= 2 {
                    self.trim_at_ms = i64::MIN;
                }
                let seq = self.base + self.samples.len() as u64 - 1;
                if let Some(extrema) = self.extrema.as_mut() {
                    extrema.push(seq, s.value);
                }
            }
        }
        self.trim(retention_ms);
    }

    fn trim(&mut self, retention_ms: i64) {
        let Some(newest) = self.samples.back().map(|s| s.ts_ms) else {
            return;
        };
        if newest < self.trim_at_ms
            && retention_ms == self.trim_retention_ms
            && self.samples.len() <= MAX_SAMPLES
        {
            return;
        }
        let horizon = newest.saturating_sub(retention_ms);
        let before = self.base;
        // Drop a sample only if it is older than the horizon and the next one can anchor
        // instead (it is at or before the horizon too).
        while self.samples.len() > MAX_SAMPLES
            || (self.samples.front().is_some_and(|s| s.ts_ms < horizon)
                && self.samples.get(1).is_some_and(|s| s.ts_ms <= horizon))
        {
            self.samples.pop_front();
            self.base += 1;
        }
        if let Some(extrema) = self.extrema.as_mut().filter(|_| self.base != before) {
            extrema.drop_before(self.base);
        }
        // The oldest sample can go once the second one is at or past the horizon; look
        // again an eighth of the retention later, to drop a batch at a time.
        self.trim_retention_ms = retention_ms;
        self.trim_at_ms = match self.samples.get(1) {
            Some(second) => second
                .ts_ms
                .saturating_add(retention_ms)
                .saturating_add(retention_ms / 8),
            None => i64::MAX,
        };
    }

    /// Loads the lines a push and an evaluation will read (the newest and oldest samples
    /// and min/max candidates), so that several windows' cache misses overlap instead of
    /// coming one after another. Returns a value to pass to `std::hint::black_box`.
    pub fn touch(&self) -> i64 {
        let ends = |d: &VecDeque<Entry>| {
            d.front().map_or(0, |e| e.ts_ms) ^ d.back().map_or(0, |e| e.ts_ms)
        };
        ends(&self.samples) ^ self.extrema.as_ref().map_or(0, |e| e.touch() as i64)
    }

    /// The sample with the latest event time.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.back().map(sample)
    }

    /// Samples from newest to oldest.
    pub fn newest_first(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.iter().rev().map(sample)
    }

    /// Index of the first sample with ts >= `from_ms` (`inclusive`) or > `from_ms`. Gallops
    /// from the oldest end: the longest rule's horizon is near it, so this is usually O(1).
    pub fn start_index(&self, from_ms: i64, inclusive: bool) -> usize {
        let before = |e: &Entry| {
            if inclusive {
                e.ts_ms < from_ms
            } else {
                e.ts_ms <= from_ms
            }
        };
        let n = self.samples.len();
        let mut hi = 1;
        while hi < n && before(&self.samples[hi - 1]) {
            hi = (hi * 2).min(n);
        }
        // Binary search in [hi / 2, hi); `hi` exceeds `n` only when the window is empty.
        let (mut lo, mut hi) = (hi / 2, hi.min(n));
        while lo < hi {
            let mid = (lo + hi) / 2;
            if before(&self.samples[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Count and sum of the samples from index `from` to the newest, in O(1).
    pub fn count_sum_from(&self, from: usize) -> (usize, f64) {
        match (self.samples.get(from), self.samples.back()) {
            (Some(first), Some(last)) => (
                self.samples.len() - from,
                last.cum - (first.cum - first.value),
            ),
            _ => (0, 0.0),
        }
    }

    /// Count, sum, minimum and maximum from index `from` to the newest: without a scan when
    /// extrema are tracked, by scanning the range otherwise.
    pub fn stats_from(&self, from: usize) -> Option<Stats> {
        let (count, sum) = self.count_sum_from(from);
        if count == 0 {
            return None;
        }
        let (min, max) = match &self.extrema {
            Some(extrema) => extrema.min_max_from(self.base + from as u64)?,
            None => self
                .samples
                .range(from..)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                    (lo.min(e.value), hi.max(e.value))
                }),
        };
        Some(Stats {
            count,
            sum,
            min,
            max,
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Samples oldest first (for tests and snapshots).
    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.iter().map(sample)
    }
}

fn sample(e: &Entry) -> Sample {
    Sample {
        ts_ms: e.ts_ms,
        value: e.value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(ts: i64, v: f64) -> Sample {
        Sample {
            ts_ms: ts,
            value: v,
        }
    }

    #[test]
    fn out_of_order_samples_land_in_event_time_order() {
        let mut w = Window::default();
        for ts in [10, 30, 20, 5, 30, 25] {
            w.insert(s(ts, ts as f64), 1000);
        }
        let order: Vec<i64> = w.iter().map(|x| x.ts_ms).collect();
        assert_eq!(order, vec![5, 10, 20, 25, 30, 30]);
        assert_eq!(w.latest(), Some(s(30, 30.0)));
    }

    #[test]
    fn retention_keeps_the_newest_and_its_history() {
        let mut w = Window::default();
        for ts in (0..100).map(|i| i * 1000) {
            w.insert(s(ts, 1.0), 10_000);
        }
        // 89 000 is the anchor; at most an eighth of the retention more is kept.
        let oldest = w.iter().next().unwrap().ts_ms;
        assert!((87_000..=89_000).contains(&oldest), "{oldest}");
        assert!((11..=13).contains(&w.len()), "{}", w.len());
        let mut zero = Window::default();
        zero.insert(s(1, 1.0), 0);
        zero.insert(s(2, 2.0), 0);
        assert_eq!(zero.len(), 1);
        // A late sample older than the anchor is dropped at once.
        zero.insert(s(0, 9.0), 0);
        assert_eq!(zero.latest(), Some(s(2, 2.0)));
        assert_eq!(zero.len(), 1);
    }

    #[test]
    fn a_window_header_fits_a_cache_line() {
        assert!(
            std::mem::size_of::<Window>() <= 64,
            "{}",
            std::mem::size_of::<Window>()
        );
    }

    #[test]
    fn capacity_is_bounded() {
        let mut w = Window::default();
        for i in 0..(MAX_SAMPLES as i64 + 100) {
            w.insert(s(i, 0.0), i64::MAX);
        }
        assert_eq!(w.len(), MAX_SAMPLES);
    }

    proptest! {
        /// The window equals a naive model: all samples sorted stably by time, trimmed.
        #[test]
        fn matches_naive_model(input in proptest::collection::vec((0i64..200, -5.0f64..5.0), 1..120), retention in 0i64..80) {
            let mut w = Window::default();
            w.track_extrema(true);
            let mut plain = Window::default();
            let mut model: Vec<(usize, Sample)> = Vec::new();
            for (i, (ts, v)) in input.iter().enumerate() {
                w.insert(s(*ts, *v), retention);
                plain.insert(s(*ts, *v), retention);
                model.push((i, s(*ts, *v)));
                model.sort_by_key(|(i, x)| (x.ts_ms, *i));
                // Keep everything at or after the horizon, plus the newest older sample
                // when nothing sits exactly on the horizon.
                let horizon = model.last().unwrap().1.ts_ms - retention;
                let older = model.iter().filter(|(_, x)| x.ts_ms < horizon).count();
                let on_horizon = model.iter().any(|(_, x)| x.ts_ms == horizon);
                let drop = if on_horizon { older } else { older.saturating_sub(1) };
                model.drain(..drop);
            }
            let got: Vec<Sample> = w.iter().collect();
            // Running sums and extrema agree with a plain scan of every suffix, and the
            // galloping search with a linear one.
            for from in 0..got.len() {
                let stats = w.stats_from(from).unwrap();
                prop_assert_eq!(Some(stats), plain.stats_from(from), "tracked and untracked agree");
                let suffix = &got[from..];
                let plain: f64 = suffix.iter().map(|x| x.value).sum();
                prop_assert_eq!(stats.count, suffix.len());
                prop_assert!((stats.sum - plain).abs() < 1e-6, "{} vs {}", stats.sum, plain);
                prop_assert_eq!(stats.min, suffix.iter().map(|x| x.value).fold(f64::INFINITY, f64::min));
                prop_assert_eq!(stats.max, suffix.iter().map(|x| x.value).fold(f64::NEG_INFINITY, f64::max));
                let t = got[from].ts_ms;
                prop_assert_eq!(w.start_index(t, true), got.iter().position(|x| x.ts_ms >= t).unwrap());
                prop_assert_eq!(w.start_index(t, false), got.iter().position(|x| x.ts_ms > t).unwrap_or(got.len()));
            }
            // The window holds what the model keeps, plus at most old samples that a batch
            // trim has not dropped yet: all but the oldest within 9/8 of the retention.
            let want: Vec<Sample> = model.into_iter().map(|(_, x)| x).collect();
            prop_assert!(got.ends_with(&want), "{:?} does not end with {:?}", got, want);
            let newest = want.last().unwrap().ts_ms;
            prop_assert!(got.iter().skip(1).all(|x| x.ts_ms >= newest - retention - retention / 8), "{:?}", got);
        }
    }
}
