//! Change over a window (`rise` / `fall`): the newest reading against the lowest (rise) or
//! highest (fall) reading with ts in [newest − window, newest], in event time.

use crate::rule::Change;
use crate::threshold::Verdict;
use crate::window::{Sample, Window};

/// The change the rule measures, if the window has readings.
pub fn change(c: &Change, window: &Window) -> Option<f64> {
    change_to(c, window, window.latest()?)
}

/// [`change`] up to `latest`, the window's newest sample.
fn change_to(c: &Change, window: &Window, latest: Sample) -> Option<f64> {
    let (min, max) = window.min_max_since(latest.ts_ms.saturating_sub(c.window_ms), true)?;
    Some(if c.rise {
        latest.value - min
    } else {
        max - latest.value
    })
}

/// Fires when the change reaches `by`; resolves once it is below `clear`. `latest` is
/// the window's newest sample.
pub fn evaluate(c: &Change, window: &Window, latest: Sample, open: bool) -> Verdict {
    let Some(delta) = change_to(c, window, latest) else {
        return Verdict::Hold;
    };
    if open {
        if delta < c.clear {
            Verdict::Clear
        } else {
            Verdict::Hold
        }
    } else if delta >= c.by {
        Verdict::Fire(Sample {
            ts_ms: latest.ts_ms,
            value: delta,
        })
    } else {
        Verdict::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::testing::{judge, window_of};
    use crate::window::Tracking;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn gain() -> Change {
        Change {
            rise: true,
            window_ms: 3 * DAY,
            by: 2.0,
            clear: 2.0,
        }
    }

    #[test]
    fn weight_gain_of_two_kg_in_three_days() {
        let c = gain();
        let w = window_of(
            &[(0, 80.0), (DAY, 80.6), (2 * DAY, 81.2), (3 * DAY, 82.0)],
            c.window_ms,
        );
        assert_eq!(
            judge(evaluate, &c, &w, false),
            Verdict::Fire(Sample {
                ts_ms: 3 * DAY,
                value: 2.0
            })
        );
        // 1.9 kg is not enough; a gain spread over four days is outside the window.
        let w = window_of(&[(0, 80.0), (3 * DAY, 81.9)], c.window_ms);
        assert_eq!(judge(evaluate, &c, &w, false), Verdict::Hold);
        let w = window_of(&[(0, 80.0), (4 * DAY, 82.5)], c.window_ms);
        assert_eq!(judge(evaluate, &c, &w, false), Verdict::Hold);
        // Open: resolves once the change is back under `clear`.
        let w = window_of(&[(0, 80.0), (DAY, 81.5)], c.window_ms);
        assert_eq!(judge(evaluate, &c, &w, true), Verdict::Clear);
    }

    #[test]
    fn fall_measures_from_the_maximum() {
        let c = Change {
            rise: false,
            window_ms: 60_000,
            by: 4.0,
            clear: 2.0,
        };
        let w = window_of(&[(0, 97.0), (10_000, 98.0), (50_000, 94.0)], c.window_ms);
        assert_eq!(
            judge(evaluate, &c, &w, false),
            Verdict::Fire(Sample {
                ts_ms: 50_000,
                value: 4.0
            })
        );
        assert_eq!(
            judge(evaluate, &c, &w, true),
            Verdict::Hold,
            "3 of 4 fallen: not yet cleared"
        );
    }

    proptest! {
        #[test]
        fn matches_naive_model(raw in proptest::collection::vec((0i64..50, 60.0f64..90.0), 1..40), window_s in 1i64..30, rise: bool) {
            let c = Change { rise, window_ms: window_s * 1000, by: 5.0, clear: 5.0 };
            let timed: Vec<(i64, f64)> = raw.iter().map(|&(t, v)| (t * 1000, v)).collect();
            let plain = window_of(&timed, c.window_ms);
            // As the engine keeps it: min/max candidates tracked.
            let mut tracked = Window::default();
            tracked.track(Tracking { extrema: true, sums: false, trend_ms: 0 });
            for &(ts_ms, value) in &timed {
                tracked.insert(Sample { ts_ms, value }, c.window_ms);
            }
            let mut all = timed.clone();
            // Stable sort: equal timestamps keep arrival order, as the window does.
            all.sort_by_key(|s| s.0);
            let latest = *all.last().unwrap();
            let span: Vec<f64> = all.iter().filter(|s| s.0 >= latest.0 - c.window_ms).map(|s| s.1).collect();
            let want = if rise {
                latest.1 - span.iter().cloned().fold(f64::INFINITY, f64::min)
            } else {
                span.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - latest.1
            };
            for w in [&plain, &tracked] {
                prop_assert!((change(&c, w).unwrap() - want).abs() < 1e-9);
                prop_assert_eq!(matches!(judge(evaluate, &c, w, false), Verdict::Fire(_)), want >= 5.0);
            }
        }
    }
}
