//! Threshold evaluation: whether a window's state, as of its newest sample, fires or
//! clears a threshold with duration (`for`) and hysteresis (`clear`).

use crate::rule::{Direction, Threshold};
use crate::window::{Sample, Window};

/// What the data says about one rule for one patient.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// The condition holds: raise, with the alert's value and the event time it refers to.
    Fire(Sample),
    /// The condition no longer holds (past the clear level): resolve an open alert.
    Clear,
    /// Neither: keep the current state.
    Hold,
}

/// A value derived from a window (an aggregate, a projection) judged against a level with
/// hysteresis: an open alert clears once `value` is back past `clear`; otherwise it fires,
/// at `ts_ms`, when `value` is strictly past `level`.
pub fn past_level(
    direction: Direction,
    level: f64,
    clear: f64,
    value: f64,
    ts_ms: i64,
    open: bool,
) -> Verdict {
    if open {
        if direction.clears(value, clear) {
            Verdict::Clear
        } else {
            Verdict::Hold
        }
    } else if direction.breaches(value, level) {
        Verdict::Fire(Sample { ts_ms, value })
    } else {
        Verdict::Hold
    }
}

/// Judges `window` against `t`. `open` says whether the patient has an open alert for this
/// rule (then only clearing matters). `latest` is the window's newest sample (the engine
/// has it at hand: reading it from the ring again would decode it again).
///
/// The condition "holds for `for`" when the newest sample breaches and the contiguous run of
/// breaching samples ending at it spans at least `hold_ms` of event time.
#[inline]
pub fn evaluate(t: &Threshold, window: &Window, latest: Sample, open: bool) -> Verdict {
    if open {
        return if t.clears(latest.value) {
            Verdict::Clear
        } else {
            Verdict::Hold
        };
    }
    if !t.breaches(latest.value) {
        return Verdict::Hold;
    }
    if t.hold_ms == 0 {
        return Verdict::Fire(latest);
    }
    let held = window
        .newest_first()
        .take_while(|s| t.breaches(s.value))
        .any(|s| latest.ts_ms - s.ts_ms >= t.hold_ms);
    if held {
        Verdict::Fire(latest)
    } else {
        Verdict::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Direction;
    use crate::window::testing::{judge, window_of};
    use proptest::prelude::*;

    fn above(level: f64, hold_ms: i64, clear: f64) -> Threshold {
        Threshold {
            direction: Direction::Above,
            level,
            hold_ms,
            clear,
        }
    }

    #[test]
    fn fires_only_after_holding() {
        let t = above(120.0, 30_000, 110.0);
        let w = window_of(&[(0, 130.0), (10_000, 131.0), (20_000, 132.0)], 30_000);
        assert_eq!(judge(evaluate, &t, &w, false), Verdict::Hold);
        let w = window_of(&[(0, 130.0), (10_000, 131.0), (30_000, 133.0)], 30_000);
        assert_eq!(
            judge(evaluate, &t, &w, false),
            Verdict::Fire(Sample {
                ts_ms: 30_000,
                value: 133.0
            })
        );
    }

    #[test]
    fn a_dip_restarts_the_clock() {
        let t = above(120.0, 30_000, 110.0);
        let w = window_of(
            &[
                (0, 130.0),
                (15_000, 119.0),
                (20_000, 130.0),
                (40_000, 130.0),
            ],
            60_000,
        );
        assert_eq!(judge(evaluate, &t, &w, false), Verdict::Hold);
    }

    #[test]
    fn late_reading_fills_history() {
        let t = above(120.0, 30_000, 110.0);
        // The 0 s reading arrives last, out of order, and completes the 30 s run.
        let w = window_of(&[(30_000, 130.0), (15_000, 125.0), (0, 121.0)], 30_000);
        assert!(matches!(judge(evaluate, &t, &w, false), Verdict::Fire(_)));
    }

    #[test]
    fn strict_threshold_and_hysteresis() {
        let t = above(120.0, 0, 110.0);
        assert_eq!(
            judge(evaluate, &t, &window_of(&[(0, 120.0)], 0), false),
            Verdict::Hold
        );
        assert!(matches!(
            judge(evaluate, &t, &window_of(&[(0, 120.1)], 0), false),
            Verdict::Fire(_)
        ));
        assert_eq!(
            judge(evaluate, &t, &window_of(&[(0, 115.0)], 0), true),
            Verdict::Hold
        );
        assert_eq!(
            judge(evaluate, &t, &window_of(&[(0, 110.0)], 0), true),
            Verdict::Clear
        );
    }

    proptest! {
        /// Compare with a naive model over the full, untrimmed history: fire iff the newest
        /// sample breaches and the run of breaching samples ending at it spans `hold`.
        #[test]
        fn matches_naive_model(samples in proptest::collection::vec((0i64..100, 100.0f64..140.0), 1..40), hold in 0i64..50) {
            let t = above(120.0, hold * 1000, 110.0);
            let timed: Vec<(i64, f64)> = samples.iter().map(|&(ts, v)| (ts * 1000, v)).collect();
            let w = window_of(&timed, t.hold_ms);
            let mut all: Vec<Sample> = timed.iter().map(|&(ts_ms, value)| Sample { ts_ms, value }).collect();
            all.sort_by_key(|s| s.ts_ms);
            let latest = *all.last().unwrap();
            let mut fire = false;
            if latest.value > 120.0 {
                let mut start = latest.ts_ms;
                for s in all.iter().rev() {
                    if s.value <= 120.0 { break; }
                    start = s.ts_ms;
                }
                fire = latest.ts_ms - start >= t.hold_ms;
            }
            prop_assert_eq!(matches!(judge(evaluate, &t, &w, false), Verdict::Fire(_)), fire);
        }
    }
}
