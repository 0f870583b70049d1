//! Adherence rules: readings of a metric on fewer than `min_days` of the last `days` days,
//! in the patient's time zone, judged on the server's clock. A patient whose first reading
//! of the metric was taken less than `days` days ago is not judged yet.

use crate::days::{Day, DayMask};
use crate::rule::Adherence;
use crate::threshold::Verdict;
use crate::window::Sample;

const DAY_MS: i64 = 86_400_000;

/// Days with readings among the last `a.days` up to and including `today`.
pub fn measured_days(a: &Adherence, mask: &DayMask, today: Day) -> u32 {
    mask.count(today - a.days as i32 + 1, today)
}

/// Whether the patient has been measuring long enough to be judged at `now_ms`.
pub fn judged(a: &Adherence, mask: &DayMask, now_ms: i64) -> bool {
    mask.first_ms()
        .is_some_and(|first| first <= now_ms.saturating_sub(i64::from(a.days) * DAY_MS))
}

/// Fires (value: the days measured, at `observed_ms`) when the patient is judged and
/// measured on fewer than `min_days` days; an open alert clears once the count is back
/// to `min_days`.
pub fn evaluate(
    a: &Adherence,
    mask: &DayMask,
    today: Day,
    now_ms: i64,
    observed_ms: i64,
    open: bool,
) -> Verdict {
    let days = measured_days(a, mask, today);
    if open {
        return if days >= a.min_days {
            Verdict::Clear
        } else {
            Verdict::Hold
        };
    }
    if judged(a, mask, now_ms) && days < a.min_days {
        Verdict::Fire(Sample {
            ts_ms: observed_ms,
            value: f64::from(days),
        })
    } else {
        Verdict::Hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPM: Adherence = Adherence {
        days: 30,
        min_days: 16,
    };

    fn mask(days: impl IntoIterator<Item = Day>) -> DayMask {
        let mut m = DayMask::default();
        for d in days {
            m.record(d, i64::from(d) * DAY_MS + 3_600_000);
        }
        m
    }

    #[test]
    fn ten_of_thirty_fires_twenty_does_not() {
        let today = 1000;
        let now = i64::from(today) * DAY_MS + 12 * 3_600_000;
        // Measuring since 31 days ago (that day is outside the 30 counted).
        let ten = mask(std::iter::once(today - 31).chain((0..10).map(|i| today - 3 * i)));
        assert_eq!(measured_days(&RPM, &ten, today), 10);
        assert!(matches!(
            evaluate(&RPM, &ten, today, now, 0, false),
            Verdict::Fire(s) if s.value == 10.0
        ));
        let twenty = mask((0..20).map(|i| today - i));
        // First reading 19 days ago: not judged yet.
        assert_eq!(evaluate(&RPM, &twenty, today, now, 0, false), Verdict::Hold);
        let twenty = mask((0..20).map(|i| today - 29 + i));
        assert_eq!(evaluate(&RPM, &twenty, today, now, 0, false), Verdict::Hold);
        assert_eq!(evaluate(&RPM, &twenty, today, now, 0, true), Verdict::Clear);
    }

    #[test]
    fn a_patient_is_judged_once_the_first_reading_is_days_old() {
        let today = 1000;
        let first = today - 30;
        let m = mask([first]);
        let now = i64::from(first) * DAY_MS + 3_600_000 + 30 * DAY_MS;
        assert!(judged(&RPM, &m, now));
        assert!(!judged(&RPM, &m, now - 1));
        assert!(!judged(&RPM, &DayMask::default(), now));
    }
}
