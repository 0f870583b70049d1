//! Windowed aggregates (`avg` / `min` / `max`) over readings with ts in
//! (newest − window, newest], compared strictly with a level, with hysteresis.

use crate::rule::{Aggregate, AggregateFn};
use crate::threshold::{past_level, Verdict};
use crate::window::{Sample, Window};

/// The aggregate over the window and the number of readings in it.
pub fn aggregate(a: &Aggregate, window: &Window) -> Option<(f64, usize)> {
    aggregate_to(a, window, window.latest()?)
}

/// [`aggregate`] up to `latest`, the window's newest sample.
fn aggregate_to(a: &Aggregate, window: &Window, latest: Sample) -> Option<(f64, usize)> {
    let from = window.start_index(latest.ts_ms.saturating_sub(a.window_ms), false);
    match a.func {
        // The mean needs only the running sums: O(log n).
        AggregateFn::Avg => {
            let (count, sum) = window.count_sum_from(from);
            (count > 0).then(|| (sum / count as f64, count))
        }
        AggregateFn::Min => window.stats_from(from).map(|s| (s.min, s.count)),
        AggregateFn::Max => window.stats_from(from).map(|s| (s.max, s.count)),
    }
}

/// Fires when the aggregate breaches the level with at least `min_samples` readings;
/// resolves once it is back past `clear`. `latest` is the window's newest sample.
pub fn evaluate(a: &Aggregate, window: &Window, latest: Sample, open: bool) -> Verdict {
    let value = match a.func {
        // (latest − window, latest] holds the latest reading, so with `min_samples` of 1
        // there is no count to check, and min/max come from the extrema candidates alone.
        AggregateFn::Min | AggregateFn::Max if a.min_samples <= 1 && a.window_ms > 0 => {
            let Some((min, max)) =
                window.min_max_since(latest.ts_ms.saturating_sub(a.window_ms), false)
            else {
                return Verdict::Hold;
            };
            if a.func == AggregateFn::Min {
                min
            } else {
                max
            }
        }
        _ => match aggregate_to(a, window, latest) {
            Some((value, count)) if count >= a.min_samples as usize => value,
            _ => return Verdict::Hold,
        },
    };
    past_level(a.direction, a.level, a.clear, value, latest.ts_ms, open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Direction;
    use crate::window::testing::{judge, window_of};
    use crate::window::Tracking;
    use proptest::prelude::*;

    fn low_mean_spo2() -> Aggregate {
        Aggregate {
            func: AggregateFn::Avg,
            window_ms: 60_000,
            direction: Direction::Below,
            level: 92.0,
            min_samples: 3,
            min_days: 0,
            clear: 94.0,
        }
    }

    #[test]
    fn mean_below_level_with_enough_samples() {
        let a = low_mean_spo2();
        let w = window_of(&[(0, 91.0), (20_000, 91.0)], a.window_ms);
        assert_eq!(
            judge(evaluate, &a, &w, false),
            Verdict::Hold,
            "two samples are fewer than min_samples"
        );
        let w = window_of(&[(0, 91.0), (20_000, 91.0), (40_000, 93.0)], a.window_ms);
        assert!(
            matches!(judge(evaluate, &a, &w, false), Verdict::Fire(s) if (s.value - 91.666).abs() < 0.01)
        );
    }

    #[test]
    fn strict_level_and_half_open_window() {
        let a = Aggregate {
            min_samples: 1,
            ..low_mean_spo2()
        };
        // Exactly at the level: no alert.
        assert_eq!(
            judge(evaluate, &a, &window_of(&[(0, 92.0)], a.window_ms), false),
            Verdict::Hold
        );
        // The reading exactly one window before the newest is outside (latest − window, latest].
        let w = window_of(&[(0, 80.0), (60_000, 93.0)], a.window_ms);
        assert_eq!(aggregate(&a, &w).unwrap(), (93.0, 1));
    }

    #[test]
    fn hysteresis() {
        let a = low_mean_spo2();
        let w = window_of(&[(0, 93.0), (1, 93.0), (2, 93.0)], a.window_ms);
        assert_eq!(
            judge(evaluate, &a, &w, true),
            Verdict::Hold,
            "93 is not back to 94"
        );
        let w = window_of(&[(0, 94.0), (1, 94.0), (2, 94.0)], a.window_ms);
        assert_eq!(judge(evaluate, &a, &w, true), Verdict::Clear);
    }

    proptest! {
        #[test]
        fn matches_naive_model(raw in proptest::collection::vec((0i64..60, 80.0f64..100.0), 1..50), window_s in 0i64..40, f in 0u8..3, min_samples in 0u32..4) {
            let func = [AggregateFn::Avg, AggregateFn::Min, AggregateFn::Max][f as usize];
            let a = Aggregate { func, window_ms: window_s * 1000, direction: Direction::Below, level: 90.0, min_samples, min_days: 0, clear: 90.0 };
            let timed: Vec<(i64, f64)> = raw.iter().map(|&(t, v)| (t * 1000, v)).collect();
            let plain = window_of(&timed, a.window_ms);
            // As the engine keeps it: running sums and min/max candidates tracked.
            let mut tracked = Window::default();
            tracked.track(Tracking { extrema: true, sums: true, trend_ms: 0 });
            for &(ts_ms, value) in &timed {
                tracked.insert(Sample { ts_ms, value }, a.window_ms);
            }
            let latest = timed.iter().map(|s| s.0).max().unwrap();
            let span: Vec<f64> = timed.iter().filter(|s| s.0 > latest - a.window_ms).map(|s| s.1).collect();
            let want = match func {
                AggregateFn::Avg => span.iter().sum::<f64>() / span.len() as f64,
                AggregateFn::Min => span.iter().cloned().fold(f64::INFINITY, f64::min),
                AggregateFn::Max => span.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            };
            let fires = !span.is_empty() && want < 90.0 && span.len() >= min_samples as usize;
            for w in [&plain, &tracked] {
                if span.is_empty() {
                    prop_assert_eq!(aggregate(&a, w), None);
                } else {
                    let (got, n) = aggregate(&a, w).unwrap();
                    prop_assert_eq!(n, span.len());
                    prop_assert!((got - want).abs() < 1e-6);
                }
                let verdict = judge(evaluate, &a, w, false);
                prop_assert_eq!(matches!(verdict, Verdict::Fire(_)), fires);
                if let Verdict::Fire(s) = verdict {
                    prop_assert!((s.value - want).abs() < 1e-6);
                }
            }
        }
    }
}
