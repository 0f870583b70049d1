//! Trend rules: the least-squares line through the readings with ts in
//! (newest − window, newest], projected `horizon` past the newest reading, compared
//! strictly with a level, with hysteresis on the projection. O(1) a reading with the
//! span's sums tracked by the window.

use crate::rule::Trend;
use crate::threshold::{past_level, Verdict};
use crate::window::{Sample, Window};

/// The projected value and the readings the line went through; `None` when there are
/// fewer than two readings in the window or they were all taken at one instant.
pub fn projection(t: &Trend, window: &Window) -> Option<(f64, usize)> {
    projection_from(t, window, window.latest()?)
}

/// [`projection`] from `latest`, the window's newest sample.
fn projection_from(t: &Trend, window: &Window, latest: Sample) -> Option<(f64, usize)> {
    let line = window.trend_line(t.window_ms)?;
    Some((
        line.at(latest.ts_ms.saturating_add(t.horizon_ms)),
        line.count,
    ))
}

/// Fires when the projection breaches the level with at least `min_samples` readings in
/// the window; resolves once it is back past `clear`. The alert's value is the projection,
/// at the newest reading's time, `latest`.
pub fn evaluate(t: &Trend, window: &Window, latest: Sample, open: bool) -> Verdict {
    let value = match projection_from(t, window, latest) {
        Some((value, count)) if count >= t.min_samples as usize && value.is_finite() => value,
        _ => return Verdict::Hold,
    };
    past_level(t.direction, t.level, t.clear, value, latest.ts_ms, open)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Direction;
    use crate::window::testing::judge;
    use crate::window::Tracking;

    const MIN: i64 = 60_000;

    fn falling_spo2() -> Trend {
        Trend {
            window_ms: 30 * MIN,
            horizon_ms: 30 * MIN,
            direction: Direction::Below,
            level: 90.0,
            min_samples: 5,
            clear: 92.0,
        }
    }

    fn window(values: &[f64]) -> Window {
        let mut w = Window::default();
        w.track(Tracking {
            trend_ms: 30 * MIN,
            ..Tracking::default()
        });
        for (i, &value) in values.iter().enumerate() {
            w.insert(
                Sample {
                    ts_ms: i as i64 * MIN,
                    value,
                },
                30 * MIN,
            );
        }
        w
    }

    #[test]
    fn a_steady_fall_fires_before_the_level_is_reached() {
        let t = falling_spo2();
        // 97 falling 0.25 a minute: at minute 10 the value is 94.5, the line through the
        // last 30 minutes reaches 87 half an hour later.
        let values: Vec<f64> = (0..=10).map(|i| 97.0 - 0.25 * i as f64).collect();
        match judge(evaluate, &t, &window(&values), false) {
            Verdict::Fire(s) => {
                assert!((s.value - 87.0).abs() < 1e-9, "{}", s.value);
                assert_eq!(s.ts_ms, 10 * MIN);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            judge(
                evaluate,
                &t,
                &window(&[97.0, 97.0, 96.9, 97.0, 97.1, 97.0]),
                false
            ),
            Verdict::Hold,
            "a flat series projects flat"
        );
    }

    #[test]
    fn too_few_readings_or_one_instant_give_no_verdict() {
        let t = falling_spo2();
        assert_eq!(
            judge(evaluate, &t, &window(&[97.0, 95.0, 93.0, 91.0]), false),
            Verdict::Hold
        );
        let mut w = Window::default();
        for v in [97.0, 90.0, 80.0, 70.0, 60.0] {
            w.insert(Sample { ts_ms: 0, value: v }, 30 * MIN);
        }
        assert_eq!(projection(&t, &w), None);
        assert_eq!(judge(evaluate, &t, &w, false), Verdict::Hold);
    }

    #[test]
    fn an_open_alert_clears_once_the_projection_is_back_past_clear() {
        let t = falling_spo2();
        // Recovering from 90 by 0.05 a minute: projection 91.5 + ..., below clear 92.
        let slow: Vec<f64> = (0..10).map(|i| 90.0 + 0.05 * i as f64).collect();
        assert_eq!(judge(evaluate, &t, &window(&slow), true), Verdict::Hold);
        let fast: Vec<f64> = (0..10).map(|i| 90.0 + 0.2 * i as f64).collect();
        assert_eq!(judge(evaluate, &t, &window(&fast), true), Verdict::Clear);
    }
}
