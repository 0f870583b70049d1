//! NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017): each
//! parameter's latest reading within the window is scored by the chart's bands; a missing
//! parameter scores 0; the aggregate is their sum.

use vigil_ingest::Metric;

#[cfg(test)]
use crate::measured::Measured;
use crate::rule::{News2, NEWS2_METRICS};
use crate::threshold::Verdict;
use crate::window::Sample;

/// Respiration rate (/min): ≤8 → 3, 9–11 → 1, 12–20 → 0, 21–24 → 2, ≥25 → 3.
pub fn score_resp_rate(v: f64) -> u32 {
    match v {
        v if v <= 8.0 => 3,
        v if v <= 11.0 => 1,
        v if v <= 20.0 => 0,
        v if v <= 24.0 => 2,
        _ => 3,
    }
}

/// SpO2 scale 1 (%): ≤91 → 3, 92–93 → 2, 94–95 → 1, ≥96 → 0.
pub fn score_spo2_scale1(v: f64) -> u32 {
    match v {
        v if v <= 91.0 => 3,
        v if v <= 93.0 => 2,
        v if v <= 95.0 => 1,
        _ => 0,
    }
}

/// SpO2 scale 2 (%; target 88–92 % in hypercapnic respiratory failure): ≤83 → 3,
/// 84–85 → 2, 86–87 → 1, 88–92 (or ≥93 on air) → 0, and on oxygen 93–94 → 1, 95–96 → 2,
/// ≥97 → 3.
pub fn score_spo2_scale2(v: f64, on_oxygen: bool) -> u32 {
    match v {
        v if v <= 83.0 => 3,
        v if v <= 85.0 => 2,
        v if v <= 87.0 => 1,
        v if v <= 92.0 || !on_oxygen => 0,
        v if v <= 94.0 => 1,
        v if v <= 96.0 => 2,
        _ => 3,
    }
}

/// Air or oxygen: oxygen → 2, air → 0.
pub fn score_oxygen(on_oxygen: bool) -> u32 {
    if on_oxygen {
        2
    } else {
        0
    }
}

/// Systolic BP (mmHg): ≤90 → 3, 91–100 → 2, 101–110 → 1, 111–219 → 0, ≥220 → 3.
pub fn score_systolic(v: f64) -> u32 {
    match v {
        v if v <= 90.0 => 3,
        v if v <= 100.0 => 2,
        v if v <= 110.0 => 1,
        v if v <= 219.0 => 0,
        _ => 3,
    }
}

/// Pulse (/min): ≤40 → 3, 41–50 → 1, 51–90 → 0, 91–110 → 1, 111–130 → 2, ≥131 → 3.
pub fn score_pulse(v: f64) -> u32 {
    match v {
        v if v <= 40.0 => 3,
        v if v <= 50.0 => 1,
        v if v <= 90.0 => 0,
        v if v <= 110.0 => 1,
        v if v <= 130.0 => 2,
        _ => 3,
    }
}

/// Consciousness (ACVPU): alert → 0; new confusion, voice, pain, unresponsive → 3.
pub fn score_consciousness(v: f64) -> u32 {
    if v >= 1.0 {
        3
    } else {
        0
    }
}

/// Temperature (°C): ≤35.0 → 3, 35.1–36.0 → 1, 36.1–38.0 → 0, 38.1–39.0 → 1, ≥39.1 → 2.
pub fn score_temperature(v: f64) -> u32 {
    match v {
        v if v <= 35.0 => 3,
        v if v <= 36.0 => 1,
        v if v <= 38.0 => 0,
        v if v <= 39.0 => 1,
        _ => 2,
    }
}

/// A NEWS2 result: the aggregate and the highest single-parameter score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Score {
    pub total: u32,
    pub max_parameter: u32,
    /// Newest event time among the readings that counted.
    pub as_of_ms: i64,
}

/// Scores the latest reading of each parameter with ts in (newest − window, newest], where
/// newest is the latest reading of any NEWS2 parameter. `latest` gives each metric's
/// newest sample (kept beside each window's header, so scoring reads no samples).
/// `spo2_scale` is 1 or 2.
pub fn score(
    latest: impl Fn(Metric) -> Option<Sample>,
    window_ms: i64,
    spo2_scale: u8,
) -> Option<Score> {
    let samples = NEWS2_METRICS.map(|m| latest(m).map(|s| (m, s)));
    score_of(samples.into_iter().flatten(), window_ms, spo2_scale)
}

/// [`score`] of each parameter's newest sample, given once each in any order (a
/// parameter without one left out), read in two passes: for the newest time, then for
/// the scores.
#[inline]
pub fn score_of(
    samples: impl Iterator<Item = (Metric, Sample)> + Clone,
    window_ms: i64,
    spo2_scale: u8,
) -> Option<Score> {
    // As a loop: through `Iterator::max` this hot path is slower.
    let mut newest = None;
    for (_, s) in samples.clone() {
        newest = Some(newest.map_or(s.ts_ms, |n: i64| n.max(s.ts_ms)));
    }
    let newest = newest?;
    let horizon = newest.saturating_sub(window_ms);
    let (mut total, mut max_parameter) = (0, 0);
    let (mut spo2, mut on_oxygen) = (None, false);
    for (m, s) in samples.filter(|(_, s)| s.ts_ms > horizon) {
        let part = match m {
            Metric::RespRate => score_resp_rate(s.value),
            Metric::SystolicBp => score_systolic(s.value),
            Metric::HeartRate => score_pulse(s.value),
            Metric::Consciousness => score_consciousness(s.value),
            Metric::Temperature => score_temperature(s.value),
            // Scored once whether the patient is on oxygen is known.
            Metric::Spo2 => {
                spo2 = Some(s.value);
                continue;
            }
            Metric::OnOxygen => {
                on_oxygen = s.value >= 1.0;
                continue;
            }
            _ => continue,
        };
        total += part;
        max_parameter = max_parameter.max(part);
    }
    let spo2 = spo2.map_or(0, |v| {
        if spo2_scale == 2 {
            score_spo2_scale2(v, on_oxygen)
        } else {
            score_spo2_scale1(v)
        }
    });
    for part in [spo2, score_oxygen(on_oxygen)] {
        total += part;
        max_parameter = max_parameter.max(part);
    }
    Some(Score {
        total,
        max_parameter,
        as_of_ms: newest,
    })
}

/// Fires when the aggregate reaches `at_least` (or a parameter reaches
/// `any_parameter_at_least`); resolves once the aggregate is below `clear` and no parameter
/// meets the single-parameter trigger. Value: the aggregate.
pub fn evaluate(n: &News2, score: Option<Score>, open: bool) -> Verdict {
    let Some(s) = score else {
        return Verdict::Hold;
    };
    let single = n
        .any_parameter_at_least
        .is_some_and(|p| s.max_parameter >= p);
    match open {
        false if s.total >= n.at_least || single => Verdict::Fire(Sample {
            ts_ms: s.as_of_ms,
            value: f64::from(s.total),
        }),
        true if s.total < n.clear && !single => Verdict::Clear,
        _ => Verdict::Hold,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every band boundary of the RCP 2017 chart, both sides.
    #[test]
    fn chart_boundaries() {
        type Case<'a> = (&'a dyn Fn(f64) -> u32, &'a [(f64, u32)]);
        let cases: [Case; 6] = [
            (
                &score_resp_rate,
                &[
                    (8.0, 3),
                    (9.0, 1),
                    (11.0, 1),
                    (12.0, 0),
                    (20.0, 0),
                    (21.0, 2),
                    (24.0, 2),
                    (25.0, 3),
                ],
            ),
            (
                &score_spo2_scale1,
                &[
                    (91.0, 3),
                    (92.0, 2),
                    (93.0, 2),
                    (94.0, 1),
                    (95.0, 1),
                    (96.0, 0),
                    (100.0, 0),
                ],
            ),
            (
                &score_systolic,
                &[
                    (90.0, 3),
                    (91.0, 2),
                    (100.0, 2),
                    (101.0, 1),
                    (110.0, 1),
                    (111.0, 0),
                    (219.0, 0),
                    (220.0, 3),
                ],
            ),
            (
                &score_pulse,
                &[
                    (40.0, 3),
                    (41.0, 1),
                    (50.0, 1),
                    (51.0, 0),
                    (90.0, 0),
                    (91.0, 1),
                    (110.0, 1),
                    (111.0, 2),
                    (130.0, 2),
                    (131.0, 3),
                ],
            ),
            (&score_consciousness, &[(0.0, 0), (1.0, 3)]),
            (
                &score_temperature,
                &[
                    (35.0, 3),
                    (35.1, 1),
                    (36.0, 1),
                    (36.1, 0),
                    (38.0, 0),
                    (38.1, 1),
                    (39.0, 1),
                    (39.1, 2),
                ],
            ),
        ];
        for (f, table) in cases {
            for &(v, want) in table {
                assert_eq!(f(v), want, "value {v}");
            }
        }
        for (v, air, oxygen) in [
            (83.0, 3, 3),
            (84.0, 2, 2),
            (85.0, 2, 2),
            (86.0, 1, 1),
            (87.0, 1, 1),
            (88.0, 0, 0),
            (92.0, 0, 0),
            (93.0, 0, 1),
            (94.0, 0, 1),
            (95.0, 0, 2),
            (96.0, 0, 2),
            (97.0, 0, 3),
        ] {
            assert_eq!(score_spo2_scale2(v, false), air, "scale 2 on air, {v}");
            assert_eq!(score_spo2_scale2(v, true), oxygen, "scale 2 on oxygen, {v}");
        }
        assert_eq!((score_oxygen(false), score_oxygen(true)), (0, 2));
    }

    fn windows(readings: &[(Metric, i64, f64)]) -> Measured {
        let mut measured = Measured::default();
        for &(m, ts_ms, value) in readings {
            measured.insert(m, Sample { ts_ms, value }, 0);
        }
        measured
    }

    #[test]
    fn aggregate_uses_latest_reading_within_the_window() {
        let hour = 3_600_000;
        let w = windows(&[
            (Metric::RespRate, 0, 22.0),           // 2
            (Metric::Spo2, 0, 93.0),               // 2 (scale 1)
            (Metric::OnOxygen, 0, 1.0),            // 2
            (Metric::HeartRate, 0, 115.0),         // 2
            (Metric::Temperature, 0, 38.5),        // 1
            (Metric::SystolicBp, -2 * hour, 85.0), // too old: scores 0
        ]);
        let s = score(|m| w.latest(m), hour, 1).unwrap();
        assert_eq!((s.total, s.max_parameter), (9, 2));
        let s2 = score(|m| w.latest(m), hour, 2).unwrap();
        assert_eq!(s2.total, 8, "scale 2 on oxygen scores 93 % as 1");
        let n = News2 {
            at_least: 7,
            any_parameter_at_least: None,
            window_ms: hour,
            clear: 7,
        };
        assert_eq!(
            evaluate(&n, score(|m| w.latest(m), n.window_ms, 1), false),
            Verdict::Fire(Sample {
                ts_ms: 0,
                value: 9.0
            })
        );
    }

    #[test]
    fn clear_keeps_a_hovering_score_from_flapping() {
        let n = News2 {
            at_least: 7,
            any_parameter_at_least: None,
            window_ms: 3_600_000,
            clear: 5,
        };
        // RR 24 (2) + pulse 115 (2) + SBP 100 (2) = 6: below the trigger, not below clear.
        let w = windows(&[
            (Metric::RespRate, 0, 24.0),
            (Metric::HeartRate, 0, 115.0),
            (Metric::SystolicBp, 0, 100.0),
        ]);
        assert_eq!(
            evaluate(&n, score(|m| w.latest(m), n.window_ms, 1), true),
            Verdict::Hold
        );
        // SBP 120 (0): 4 < 5 clears.
        let w = windows(&[
            (Metric::RespRate, 0, 24.0),
            (Metric::HeartRate, 0, 115.0),
            (Metric::SystolicBp, 0, 120.0),
        ]);
        assert_eq!(
            evaluate(&n, score(|m| w.latest(m), n.window_ms, 1), true),
            Verdict::Clear
        );
    }

    #[test]
    fn single_parameter_trigger_and_resolution() {
        let n = News2 {
            at_least: 5,
            any_parameter_at_least: Some(3),
            window_ms: 3_600_000,
            clear: 5,
        };
        let w = windows(&[(Metric::Consciousness, 0, 1.0)]);
        assert!(
            matches!(evaluate(&n, score(|m| w.latest(m), n.window_ms, 1), false), Verdict::Fire(s) if s.value == 3.0)
        );
        let w = windows(&[
            (Metric::Consciousness, 0, 1.0),
            (Metric::Consciousness, 1, 0.0),
        ]);
        assert_eq!(
            evaluate(&n, score(|m| w.latest(m), n.window_ms, 1), true),
            Verdict::Clear
        );
        assert_eq!(
            evaluate(&n, score(|m| windows(&[]).latest(m), n.window_ms, 1), false),
            Verdict::Hold
        );
    }
}

#[cfg(test)]
mod model {
    //! NEWS2 against an independent model: the chart's integer ranges written as ranges,
    //! over random readings, missing parameters and timestamps inside and outside the window.
    use super::*;
    use proptest::prelude::*;

    fn chart(m: Metric, v: i64, on_oxygen: bool, scale2: bool) -> u32 {
        match m {
            Metric::RespRate => match v {
                12..=20 => 0,
                9..=11 => 1,
                21..=24 => 2,
                _ => 3,
            },
            Metric::Spo2 if scale2 => match (v, on_oxygen) {
                (88..=92, _) => 0,
                (93.., false) => 0,
                (86..=87, _) => 1,
                (93..=94, true) => 1,
                (84..=85, _) => 2,
                (95..=96, true) => 2,
                _ => 3,
            },
            Metric::Spo2 => match v {
                96.. => 0,
                94..=95 => 1,
                92..=93 => 2,
                _ => 3,
            },
            Metric::SystolicBp => match v {
                111..=219 => 0,
                101..=110 => 1,
                91..=100 => 2,
                _ => 3,
            },
            Metric::HeartRate => match v {
                51..=90 => 0,
                41..=50 | 91..=110 => 1,
                111..=130 => 2,
                _ => 3,
            },
            Metric::Consciousness if v == 0 => 0,
            Metric::Consciousness => 3,
            Metric::OnOxygen if v == 1 => 2,
            _ => 0,
        }
    }

    fn range(m: Metric) -> std::ops::RangeInclusive<i64> {
        match m {
            Metric::RespRate => 2..=40,
            Metric::Spo2 => 75..=100,
            Metric::SystolicBp => 60..=240,
            Metric::HeartRate => 30..=160,
            Metric::Consciousness | Metric::OnOxygen => 0..=1,
            _ => 0..=0,
        }
    }

    proptest! {
        #[test]
        fn score_matches_the_chart(
            picks in proptest::collection::vec((0usize..6, 0u32..1000, -120i64..=0), 0..20),
            temps in proptest::collection::vec((340i64..=410, -120i64..=0), 0..4),
            scale2: bool,
        ) {
            let metrics = [Metric::RespRate, Metric::Spo2, Metric::SystolicBp, Metric::HeartRate, Metric::Consciousness, Metric::OnOxygen];
            let mut readings: Vec<(Metric, i64, f64)> = picks
                .iter()
                .map(|&(i, r, ts)| {
                    let m = metrics[i];
                    let span = range(m);
                    let v = span.start() + i64::from(r) % (span.end() - span.start() + 1);
                    (m, ts * 60_000, v as f64)
                })
                .collect();
            readings.extend(temps.iter().map(|&(t, ts)| (Metric::Temperature, ts * 60_000, t as f64 / 10.0)));
            let window = 60 * 60_000;
            let latest = windows(&readings);
            let got = score(|m| latest.latest(m), window, if scale2 { 2 } else { 1 });
            // The engine's way: the samples kept apart, in one pass.
            prop_assert_eq!(score_of(latest.scored_latest(), window, if scale2 { 2 } else { 1 }), got);

            // Model: the latest reading of each parameter (ties: the later one in input
            // order), counted if newer than newest - window.
            let newest = readings.iter().filter(|r| crate::rule::NEWS2_METRICS.contains(&r.0)).map(|r| r.1).max();
            prop_assert_eq!(got.is_some(), newest.is_some());
            let Some(newest) = newest else { return Ok(()) };
            let last = |m: Metric| readings.iter().filter(|r| r.0 == m).fold(None, |best: Option<&(Metric, i64, f64)>, r| match best { Some(b) if b.1 > r.1 => Some(b), _ => Some(r) }).filter(|r| r.1 > newest - window).map(|r| r.2);
            let on_oxygen = last(Metric::OnOxygen) == Some(1.0);
            let mut parts: Vec<u32> = metrics.iter().map(|&m| last(m).map_or(0, |v| chart(m, v as i64, on_oxygen, scale2))).collect();
            parts.push(last(Metric::Temperature).map_or(0, |t| {
                let tenths = (t * 10.0).round() as i64;
                match tenths { ..=350 => 3, 351..=360 => 1, 361..=380 => 0, 381..=390 => 1, _ => 2 }
            }));
            let got = got.unwrap();
            prop_assert_eq!(got.total, parts.iter().sum::<u32>());
            prop_assert_eq!(got.max_parameter, parts.iter().copied().max().unwrap_or(0));
        }
    }

    fn windows(readings: &[(Metric, i64, f64)]) -> Measured {
        let mut measured = Measured::default();
        for &(m, ts_ms, value) in readings {
            measured.insert(m, Sample { ts_ms, value }, 0);
        }
        measured
    }
}
