//! The days a metric was measured on: a bit per calendar day in the patient's time zone,
//! for adherence ("readings on 16 of the last 30 days") and for aggregates that need
//! readings on several days (`min_days`).

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Days a [`DayMask`] remembers: the newest and the 31 before it.
pub const MASK_DAYS: i32 = 32;
/// The longest `days` an adherence rule may look back over.
pub const MAX_ADHERENCE_DAYS: u32 = 30;
const DAY_MS: i64 = 86_400_000;

/// A calendar day, numbered from 1970-01-01 (day 0), in some time zone.
pub type Day = i32;

/// One metric's measured days: bit `i` set means the day `newest - i` had at least one
/// accepted reading. Late readings set their own day's bit (if within the 32 days
/// remembered), however late they arrive; the first reading's day is kept apart, for "not
/// measuring long enough yet". 8 bytes: days are held in 16 bits, from 1970-01-01 to
/// 2149-06-05 ([`LAST_DAY`]); a day outside counts as the nearest of the two (readings are
/// validated against the server's clock long before that matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMask {
    newest: u16,
    /// The day of the earliest reading ever accepted ([`NO_DAY`]: none yet).
    first_day: u16,
    bits: u32,
}

/// The last day a [`DayMask`] tells apart.
pub const LAST_DAY: Day = u16::MAX as Day - 1;
const NO_DAY: u16 = u16::MAX;

/// `day` as a [`DayMask`] holds it.
fn held(day: Day) -> u16 {
    day.clamp(0, LAST_DAY) as u16
}

impl Default for DayMask {
    fn default() -> DayMask {
        DayMask::EMPTY
    }
}

impl DayMask {
    pub const EMPTY: DayMask = DayMask {
        newest: 0,
        first_day: NO_DAY,
        bits: 0,
    };

    fn newest(&self) -> Day {
        Day::from(self.newest)
    }

    /// Records a reading taken on local day `day`.
    #[inline]
    pub fn record(&mut self, day: Day) {
        let day = held(day);
        self.first_day = self.first_day.min(day);
        if self.bits == 0 || day > self.newest {
            let shift = if self.bits == 0 {
                MASK_DAYS
            } else {
                Day::from(day - self.newest)
            };
            self.bits = if shift >= MASK_DAYS {
                0
            } else {
                self.bits << shift
            };
            self.newest = day;
        }
        let back = Day::from(self.newest - day);
        if back < MASK_DAYS {
            self.bits |= 1 << back;
        }
    }

    /// Days from `from` to `to` (both included) with a reading, among those remembered.
    pub fn count(&self, from: Day, to: Day) -> u32 {
        if self.bits == 0 || to < from {
            return 0;
        }
        // Bit i is day newest - i: the range is bits (newest - to) ..= (newest - from).
        let lo = (self.newest() - to).max(0);
        let hi = (self.newest() - from).min(MASK_DAYS - 1);
        if hi < lo {
            return 0;
        }
        let width = (hi - lo + 1) as u32;
        let mask = if width >= 32 {
            u32::MAX
        } else {
            ((1u32 << width) - 1) << lo
        };
        (self.bits & mask).count_ones()
    }

    /// The last `days` days up to and including `today` as a bit string, bit `i` for
    /// `today - i` (what the console draws).
    pub fn recent(&self, today: Day, days: u32) -> u32 {
        (0..days.min(32) as i32)
            .filter(|&i| self.count(today - i, today - i) == 1)
            .fold(0, |bits, i| bits | 1 << i)
    }

    /// The day of the first reading ever recorded.
    pub fn first_day(&self) -> Option<Day> {
        (self.first_day != NO_DAY).then_some(Day::from(self.first_day))
    }

    pub fn is_empty(&self) -> bool {
        self.first_day().is_none()
    }

    /// What two records of the same metric hold together (a snapshot and its deltas).
    pub fn merge(&mut self, other: &DayMask) {
        let Some(first) = other.first_day() else {
            return;
        };
        for back in 0..MASK_DAYS {
            if other.bits & (1 << back) != 0 {
                self.record(other.newest() - back);
            }
        }
        self.first_day = self.first_day.min(held(first));
    }

    /// The stored form: (newest day, bits, first reading's day, `Day::MAX` if none).
    pub fn parts(&self) -> (Day, u32, Day) {
        (
            self.newest(),
            self.bits,
            self.first_day().unwrap_or(Day::MAX),
        )
    }

    pub fn from_parts(newest: Day, bits: u32, first_day: Day) -> DayMask {
        DayMask {
            newest: held(newest),
            first_day: if first_day == Day::MAX {
                NO_DAY
            } else {
                held(first_day)
            },
            bits,
        }
    }
}

/// One patient's current local day, with its bounds and the metrics already recorded on
/// it: readings of a patient mostly fall on the same day, so the time zone is consulted
/// and a [`DayMask`] written about once a day per metric, not per reading.
///
/// The bounds are whole seconds from the epoch in 32 bits (a local midnight is a whole
/// second; 12 bytes rather than 24, in every patient's state). A day whose bounds do not
/// fit (before 1970 or after 2105) covers nothing: its readings consult the time zone
/// each time, and still get their day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayClock {
    start_s: u32,
    end_s: u32,
    /// The day as a [`DayMask`] holds it (16 bits: 12 bytes rather than 16). A day whose
    /// bounds fit 32-bit seconds fits; one outside, which covers nothing, counts as the
    /// nearest end, as masks record it anyway.
    day: u16,
    /// Bit per metric: its mask already holds this day.
    pub recorded: u16,
}

impl DayClock {
    /// The day.
    #[inline]
    pub fn day(&self) -> Day {
        Day::from(self.day)
    }

    /// Whether `ts_ms` falls on this day.
    #[inline]
    pub fn covers(&self, ts_ms: i64) -> bool {
        ts_ms >= i64::from(self.start_s) * 1000 && ts_ms < i64::from(self.end_s) * 1000
    }

    /// The day `day`, from `start_ms` (inclusive) to `end_ms` (exclusive).
    fn new(start_ms: i64, end_ms: i64, day: Day) -> DayClock {
        let second = |ms: i64| u32::try_from(ms.div_euclid(1000)).ok();
        let (start_s, end_s) = match (second(start_ms), second(end_ms)) {
            (Some(start), Some(end)) => (start, end),
            _ => (0, 0),
        };
        DayClock {
            start_s,
            end_s,
            day: held(day),
            recorded: 0,
        }
    }

    /// The day of `ts_ms` in `zone`, with its bounds.
    pub fn of(ts_ms: i64, zone: &TimeZone) -> DayClock {
        let (start_ms, end_ms, day) = day_bounds(ts_ms, zone);
        DayClock::new(start_ms, end_ms, day)
    }
}

/// The day of `ts_ms` in `zone` and its bounds, start (inclusive) and end (exclusive) in
/// milliseconds; a UTC day where the zone cannot tell.
fn day_bounds(ts_ms: i64, zone: &TimeZone) -> (i64, i64, Day) {
    let fallback = || {
        (
            ts_ms.div_euclid(DAY_MS) * DAY_MS,
            (ts_ms.div_euclid(DAY_MS) + 1) * DAY_MS,
            ts_ms.div_euclid(DAY_MS) as Day,
        )
    };
    let bounds = || -> Option<(i64, i64, Day)> {
        let date = Timestamp::from_millisecond(ts_ms)
            .ok()?
            .to_zoned_datetime(zone.clone())
            .date();
        let at = |d: jiff::civil::Date| -> Option<i64> {
            Some(
                d.to_datetime(Time::midnight())
                    .to_zoned_datetime(zone.clone())
                    .ok()?
                    .timestamp()
                    .as_millisecond(),
            )
        };
        let utc_midnight = date
            .to_datetime(Time::midnight())
            .to_zoned_datetime(TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_millisecond();
        Some((
            at(date)?,
            at(date.tomorrow().ok()?)?,
            utc_midnight.div_euclid(DAY_MS) as Day,
        ))
    };
    bounds().unwrap_or_else(fallback)
}

/// A day's date, `YYYY-MM-DD`.
pub fn date_of(day: Day) -> String {
    Timestamp::from_second(i64::from(day) * 86_400)
        .map(|t| t.to_zoned_datetime(TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

/// The local day of `ts_ms` in `zone`, without a cache.
pub fn day_of(ts_ms: i64, zone: &TimeZone) -> Day {
    day_bounds(ts_ms, zone).2
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_morning_reading_in_beijing_is_on_that_beijing_day() {
        let shanghai = TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-12-04 07:30 in Beijing is 2026-12-03 23:30 UTC.
        let ts: i64 = "2026-12-03T23:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        assert_eq!(
            day_of(ts, &shanghai),
            day_of(ts, &TimeZone::UTC) + 1,
            "the next day in Beijing"
        );
        let clock = DayClock::of(ts, &shanghai);
        let d = clock.day();
        assert!(clock.covers(ts + 16 * 3_600_000) && !clock.covers(ts + 17 * 3_600_000));
        assert_eq!(day_of(ts + 17 * 3_600_000, &shanghai), d + 1);
        assert_eq!(date_of(d), "2026-12-04");
    }

    #[test]
    fn days_across_a_daylight_saving_change_are_whole_days() {
        let london = TimeZone::get("Europe/London").unwrap();
        // 2026-03-29: clocks go forward at 01:00 UTC; the day is 23 hours long.
        let noon: i64 = "2026-03-29T12:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_millisecond();
        let c = DayClock::of(noon, &london);
        let (start_ms, end_ms) = (i64::from(c.start_s) * 1000, i64::from(c.end_s) * 1000);
        assert_eq!(end_ms - start_ms, 23 * 3_600_000);
        assert_eq!(day_of(start_ms, &london), c.day());
        assert_eq!(day_of(end_ms, &london), c.day() + 1);
        assert_eq!(day_of(start_ms - 1, &london), c.day() - 1);
        assert!(c.covers(start_ms) && c.covers(end_ms - 1));
        assert!(!c.covers(start_ms - 1) && !c.covers(end_ms));
    }

    #[test]
    fn a_day_out_of_the_bounds_range_covers_nothing_and_keeps_its_day() {
        // 1969-12-31 in UTC: its start is before the epoch.
        let ts = -3_600_000;
        let c = DayClock::of(ts, &TimeZone::UTC);
        assert!(!c.covers(ts) && !c.covers(0));
        assert_eq!(day_of(ts, &TimeZone::UTC), -1);
        // The clock holds the nearest day a mask holds, which a mask records for it too.
        assert_eq!(c.day(), 0);
        let (mut by_clock, mut by_day) = (DayMask::default(), DayMask::default());
        by_clock.record(c.day());
        by_day.record(day_of(ts, &TimeZone::UTC));
        assert_eq!(by_clock, by_day);
        // The last day a mask tells apart, and one past it, likewise.
        let late = (i64::from(LAST_DAY) + 1) * DAY_MS + 3_600_000;
        let c = DayClock::of(late, &TimeZone::UTC);
        assert!(!c.covers(late));
        assert_eq!(
            (c.day(), day_of(late, &TimeZone::UTC)),
            (LAST_DAY, LAST_DAY + 1)
        );
    }

    #[test]
    fn empty_masks_and_the_first_reading() {
        let mut m = DayMask::default();
        assert!(m.is_empty());
        assert_eq!(m.first_day(), None);
        m.record(100);
        m.record(99);
        assert_eq!(m.first_day(), Some(99));
        assert_eq!(m.count(70, 100), 2);
        assert_eq!(m.recent(101, 3), 0b110);
        let (n, b, f) = m.parts();
        assert_eq!(DayMask::from_parts(n, b, f), m);
    }

    #[test]
    fn a_mask_takes_eight_bytes_and_days_past_its_range_count_as_its_ends() {
        assert_eq!(std::mem::size_of::<DayMask>(), 8);
        let mut m = DayMask::default();
        m.record(-3);
        assert_eq!(m.first_day(), Some(0));
        m.record(LAST_DAY + 10);
        assert_eq!(m.count(LAST_DAY, LAST_DAY), 1);
        assert_eq!(m.parts(), (LAST_DAY, 1, 0));
        assert_eq!(DayMask::from_parts(LAST_DAY, 1, 0), m);
        assert_eq!(DayMask::EMPTY.parts().2, Day::MAX);
    }

    proptest! {
        /// The mask answers like a list of the days readings were taken on, in any order
        /// of arrival, for every range within the 32 days before the newest.
        #[test]
        fn matches_a_list_of_reading_days(days in proptest::collection::vec(0i32..80, 1..60), split in 0usize..60) {
            let mut mask = DayMask::default();
            for &d in &days {
                mask.record(d);
            }
            let newest = *days.iter().max().unwrap();
            for from in newest - 40..=newest + 2 {
                for to in from..=newest + 2 {
                    let want = (from..=to)
                        .filter(|d| newest - d < MASK_DAYS && days.contains(d))
                        .count() as u32;
                    prop_assert_eq!(mask.count(from, to), want, "{}..={}", from, to);
                }
            }
            prop_assert_eq!(mask.first_day(), days.iter().copied().min());
            // Two halves merged equal the whole.
            let split = split.min(days.len());
            let (mut a, mut b) = (DayMask::default(), DayMask::default());
            for (i, &d) in days.iter().enumerate() {
                let part = if i < split { &mut a } else { &mut b };
                part.record(d);
            }
            a.merge(&b);
            for from in newest - 31..=newest {
                prop_assert_eq!(a.count(from, newest), mask.count(from, newest));
            }
            prop_assert_eq!(a.first_day(), mask.first_day());
        }
    }
}
