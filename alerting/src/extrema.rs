//! Monotonic deques over a window's samples: the minimum and maximum of any suffix of the
//! window in O(log d), d being the (usually tiny) number of candidates, instead of a scan.

use std::collections::VecDeque;

/// A candidate: the sample's sequence number in its window, its event time and value.
/// The time lets a rule bounded by event time find its extreme among the candidates
/// alone, without searching the window's samples (a cache miss at 100 000 patients).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    seq: u64,
    ts_ms: i64,
    value: f64,
}

/// For minima, a candidate stays while no later sample is <= it (for maxima, >= it);
/// the first candidate at or after a position is then the extreme of that suffix.
#[derive(Debug, Default, Clone)]
pub struct Extrema {
    mins: VecDeque<Candidate>,
    maxs: VecDeque<Candidate>,
}

impl Extrema {
    /// The newest sample, with sequence number `seq`, was appended (samples arrive in
    /// event-time order: `ts_ms` never decreases from one push to the next).
    pub fn push(&mut self, seq: u64, ts_ms: i64, value: f64) {
        let c = Candidate { seq, ts_ms, value };
        while self.mins.back().is_some_and(|c| c.value >= value) {
            self.mins.pop_back();
        }
        self.mins.push_back(c);
        while self.maxs.back().is_some_and(|c| c.value <= value) {
            self.maxs.pop_back();
        }
        self.maxs.push_back(c);
    }

    /// Samples before sequence number `first_seq` were dropped.
    pub fn drop_before(&mut self, first_seq: u64) {
        while self.mins.front().is_some_and(|c| c.seq < first_seq) {
            self.mins.pop_front();
        }
        while self.maxs.front().is_some_and(|c| c.seq < first_seq) {
            self.maxs.pop_front();
        }
    }

    /// Starts loading the candidates a reading reads (see `Window::prefetch_far`): every
    /// line of a deque that spans a few, else its ends. Not only the back: a new sample
    /// pops the candidates it beats, a rule over part of the window searches for the
    /// first in range, and a 24-byte candidate may straddle two lines.
    pub fn prefetch(&self) {
        /// Deques up to this size are loaded whole.
        const WHOLE: usize = 4 * 64;
        for d in [&self.mins, &self.maxs] {
            let (a, b) = d.as_slices();
            for part in [a, b] {
                if std::mem::size_of_val(part) <= WHOLE {
                    crate::prefetch::prefetch_lines(part);
                } else {
                    part.first().map(crate::prefetch::prefetch_lines);
                    part.last().map(crate::prefetch::prefetch_lines);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.mins.clear();
        self.maxs.clear();
    }

    /// Minimum and maximum of the samples with sequence number >= `from_seq`.
    pub fn min_max_from(&self, from_seq: u64) -> Option<(f64, f64)> {
        let first = |d: &VecDeque<Candidate>| match d.front() {
            // The usual case: the range starts at or before the oldest candidate.
            Some(c) if c.seq >= from_seq => Some(c.value),
            _ => d
                .get(d.partition_point(|c| c.seq < from_seq))
                .map(|c| c.value),
        };
        Some((first(&self.mins)?, first(&self.maxs)?))
    }

    /// Minimum and maximum of the samples with event time at or after `from_ms`
    /// (`inclusive`) or after it; `None` if there is none. Candidates are in sequence
    /// order and sequence follows event time, so the first candidate in time range is the
    /// first in sequence range too.
    pub fn min_max_since(&self, from_ms: i64, inclusive: bool) -> Option<(f64, f64)> {
        let before = |c: &Candidate| {
            if inclusive {
                c.ts_ms < from_ms
            } else {
                c.ts_ms <= from_ms
            }
        };
        let first = |d: &VecDeque<Candidate>| match d.front() {
            Some(c) if !before(c) => Some(c.value),
            _ => d.get(d.partition_point(before)).map(|c| c.value),
        };
        Some((first(&self.mins)?, first(&self.maxs)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn suffix_extremes_match_a_scan(values in proptest::collection::vec(-50.0f64..50.0, 1..80), drop in 0usize..40) {
            let mut e = Extrema::default();
            for (i, v) in values.iter().enumerate() {
                e.push(i as u64, i as i64, *v);
            }
            let drop = drop.min(values.len() - 1);
            e.drop_before(drop as u64);
            for from in drop..values.len() {
                let suffix = &values[from..];
                let min = suffix.iter().cloned().fold(f64::INFINITY, f64::min);
                let max = suffix.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                prop_assert_eq!(e.min_max_from(from as u64), Some((min, max)));
            }
        }

        /// By event time, with repeated times: the extremes of the samples in time range.
        #[test]
        fn extremes_since_a_time_match_a_scan(steps in proptest::collection::vec((0i64..3, -50.0f64..50.0), 1..80), drop in 0usize..40) {
            let mut e = Extrema::default();
            let mut samples = Vec::new();
            let mut ts = 0;
            for (i, (step, v)) in steps.iter().enumerate() {
                ts += step;
                e.push(i as u64, ts, *v);
                samples.push((ts, *v));
            }
            let drop = drop.min(samples.len() - 1);
            e.drop_before(drop as u64);
            let kept = &samples[drop..];
            for from in kept[0].0 - 1..=ts + 1 {
                for inclusive in [true, false] {
                    let in_range: Vec<f64> = kept
                        .iter()
                        .filter(|(t, _)| if inclusive { *t >= from } else { *t > from })
                        .map(|(_, v)| *v)
                        .collect();
                    let want = (!in_range.is_empty()).then(|| {
                        (
                            in_range.iter().cloned().fold(f64::INFINITY, f64::min),
                            in_range.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                        )
                    });
                    prop_assert_eq!(e.min_max_since(from, inclusive), want, "since {} inclusive {}", from, inclusive);
                }
            }
        }
    }
}
