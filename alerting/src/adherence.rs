//! Adherence rules: readings of a metric on fewer than `min_days` of the last `days` days,
//! in the patient's time zone, judged on the server's clock. A patient whose first reading
//! of the metric was taken on a day less than `days` days before today is not judged yet.

use crate::days::{Day, DayMask};
use crate::rule::Adherence;
use crate::threshold::Verdict;
use crate::window::Sample;

/// Days with readings among the last `a.days` up to and including `today`.
pub fn measured_days(a: &Adherence, mask: &DayMask, today: Day) -> u32 {
    mask.count(today - a.days as i32 + 1, today)
}

/// Whether the patient has been measuring long enough to be judged `today`: the first
/// reading was taken on a day at least `days` days before.
pub fn judged(a: &Adherence, mask: &DayMask, today: Day) -> bool {
    mask.first_day()
        .is_some_and(|first| first <= today - a.days as Day)
}

/// Fires (value: the days measured, at `observed_ms`) when the patient is judged and
/// measured on fewer than `min_days` days; an open alert clears once the count is back
/// to `min_days`.
pub fn evaluate(
    a: &Adherence,
    mask: &DayMask,
    today: Day,
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
    if judged(a, mask, today) && days < a.min_days {
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
            m.record(d);
        }
        m
    }

    #[test]
    fn ten_of_thirty_fires_twenty_does_not() {
        let today = 1000;
        // Measuring since 31 days ago (that day is outside the 30 counted).
        let ten = mask(std::iter::once(today - 31).chain((0..10).map(|i| today - 3 * i)));
        assert_eq!(measured_days(&RPM, &ten, today), 10);
        assert!(matches!(
            evaluate(&RPM, &ten, today, 0, false),
            Verdict::Fire(s) if s.value == 10.0
        ));
        let twenty = mask((0..20).map(|i| today - i));
        // First reading 19 days ago: not judged yet.
        assert_eq!(evaluate(&RPM, &twenty, today, 0, false), Verdict::Hold);
        let twenty = mask((0..20).map(|i| today - 29 + i));
        assert_eq!(evaluate(&RPM, &twenty, today, 0, false), Verdict::Hold);
        assert_eq!(evaluate(&RPM, &twenty, today, 0, true), Verdict::Clear);
    }

    #[test]
    fn a_patient_is_judged_once_the_first_reading_is_days_old() {
        let today = 1000;
        let m = mask([today - 30]);
        assert!(judged(&RPM, &m, today));
        assert!(!judged(&RPM, &m, today - 1));
        assert!(!judged(&RPM, &DayMask::default(), today));
    }
}
