//! A care team's working hours: the days of the week, a daily window in the team's time
//! zone, and public holidays. Outside them, MEDIUM and LOW alerts go to the team's
//! `after_hours` cover or are held until the hours begin (HIGH always goes out at once), and
//! escalation deadlines count working time only.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// What happens to a MEDIUM or LOW alert raised outside a team's hours.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterHours {
    /// Another team also receives it at once.
    Team(std::sync::Arc<str>),
    /// It is held (listed, not delivered, not escalated) until the hours begin.
    Hold,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    pub zone: TimeZone,
    /// Bit `d` set: weekday `d` (Monday 0) is a working day.
    pub days: u8,
    /// Minutes after midnight: the window is `[from, to)`.
    pub from_min: u16,
    pub to_min: u16,
    pub holidays: Vec<Date>,
}

/// Why a written `hours` is not usable.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HoursError {
    #[error("time zone '{0}' is not known (e.g. Asia/Shanghai)")]
    Zone(String),
    #[error("days '{0}' is not like mon-fri, mon,wed,fri or sat-sun")]
    Days(String),
    #[error("'{0}' is not a time of day like 08:00")]
    Time(String),
    #[error("`to` ({to}) must be later than `from` ({from}) on the same day")]
    Window { from: String, to: String },
    #[error("holiday '{0}' is not a date like 2027-01-01")]
    Holiday(String),
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// How far ahead the next working moment is looked for (a team with no working day at all
/// has none).
const HORIZON_DAYS: i32 = 400;

fn day_index(name: &str) -> Option<u8> {
    DAY_NAMES
        .iter()
        .position(|d| *d == name.trim().to_ascii_lowercase())
        .map(|i| i as u8)
}

fn parse_days(text: &str) -> Result<u8, HoursError> {
    let bad = || HoursError::Days(text.to_string());
    let mut days = 0u8;
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a).ok_or_else(bad)?, day_index(b).ok_or_else(bad)?);
                if a > b {
                    return Err(bad());
                }
                for d in a..=b {
                    days |= 1 << d;
                }
            }
            None => days |= 1 << day_index(part).ok_or_else(bad)?,
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Result<u16, HoursError> {
    let bad = || HoursError::Time(text.to_string());
    let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Hours {
    pub fn parse(
        zone: &str,
        days: &str,
        from: &str,
        to: &str,
        holidays: &[String],
    ) -> Result<Hours, HoursError> {
        let zone = TimeZone::get(zone).map_err(|_| HoursError::Zone(zone.to_string()))?;
        let (from_min, to_min) = (parse_time(from)?, parse_time(to)?);
        if to_min <= from_min {
            return Err(HoursError::Window {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        let holidays = holidays
            .iter()
            .map(|h| {
                h.parse::<Date>()
                    .map_err(|_| HoursError::Holiday(h.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Hours {
            zone,
            days: parse_days(days)?,
            from_min,
            to_min,
            holidays,
        })
    }

    fn works_on(&self, date: Date) -> bool {
        let d = date.weekday().to_monday_zero_offset();
        self.days & (1 << d) != 0 && !self.holidays.contains(&date)
    }

    /// The working window of `date` in epoch ms, if it is a working day.
    fn window(&self, date: Date) -> Option<(i64, i64)> {
        if !self.works_on(date) {
            return None;
        }
        let at = |min: u16| -> Option<i64> {
            let (h, m) = ((min / 60) as i8, (min % 60) as i8);
            let dt = if h == 24 {
                date.tomorrow().ok()?.to_datetime(Time::midnight())
            } else {
                date.to_datetime(Time::new(h, m, 0, 0).ok()?)
            };
            Some(
                dt.to_zoned_datetime(self.zone.clone())
                    .ok()?
                    .timestamp()
                    .as_millisecond(),
            )
        };
        Some((at(self.from_min)?, at(self.to_min)?))
    }

    fn date_of(&self, ms: i64) -> Option<Date> {
        let ts = Timestamp::from_millisecond(ms).ok()?;
        Some(ts.to_zoned_datetime(self.zone.clone()).date())
    }

    /// Whether `ms` falls within the hours.
    pub fn is_open(&self, ms: i64) -> bool {
        self.date_of(ms)
            .and_then(|d| self.window(d))
            .is_some_and(|(from, to)| from <= ms && ms < to)
    }

    /// The first working moment at or after `ms` (`ms` itself within the hours).
    pub fn next_open(&self, ms: i64) -> Option<i64> {
        let mut date = self.date_of(ms)?;
        for _ in 0..HORIZON_DAYS {
            if let Some((from, to)) = self.window(date) {
                if ms < to {
                    return Some(from.max(ms));
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The moment at which `duration_ms` of working time has passed since `start_ms`.
    pub fn add_working(&self, start_ms: i64, duration_ms: i64) -> i64 {
        let Some(mut date) = self.date_of(start_ms) else {
            return start_ms.saturating_add(duration_ms);
        };
        let mut left = duration_ms;
        for _ in 0..HORIZON_DAYS {
            if let Some((from, to)) = self.window(date) {
                let begin = from.max(start_ms);
                if begin < to {
                    if to - begin >= left {
                        return begin + left;
                    }
                    left -= to - begin;
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        i64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix ms of a Shanghai wall-clock time.
    fn at(text: &str) -> i64 {
        let dt: jiff::civil::DateTime = text.parse().unwrap();
        dt.to_zoned_datetime(TimeZone::get("Asia/Shanghai").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn office() -> Hours {
        Hours::parse(
            "Asia/Shanghai",
            "mon-fri",
            "08:00",
            "18:00",
            &["2027-01-01".to_string()],
        )
        .unwrap()
    }

    #[test]
    fn open_on_working_days_within_the_window_and_not_on_holidays() {
        let h = office();
        // 2027-01-04 is a Monday; 2027-01-01 a Friday and a holiday.
        assert!(h.is_open(at("2027-01-04T08:00:00")));
        assert!(h.is_open(at("2027-01-04T17:59:59")));
        assert!(!h.is_open(at("2027-01-04T18:00:00")));
        assert!(!h.is_open(at("2027-01-04T03:00:00")));
        assert!(!h.is_open(at("2027-01-02T10:00:00")), "Saturday");
        assert!(!h.is_open(at("2027-01-01T10:00:00")), "a holiday");
    }

    #[test]
    fn the_next_working_moment_skips_nights_weekends_and_holidays() {
        let h = office();
        assert_eq!(
            h.next_open(at("2027-01-04T03:00:00")),
            Some(at("2027-01-04T08:00:00"))
        );
        assert_eq!(
            h.next_open(at("2027-01-04T10:00:00")),
            Some(at("2027-01-04T10:00:00"))
        );
        // Thursday evening, Friday a holiday: Monday morning.
        assert_eq!(
            h.next_open(at("2026-12-31T19:00:00")),
            Some(at("2027-01-04T08:00:00"))
        );
    }

    #[test]
    fn working_time_pauses_outside_the_hours() {
        let h = office();
        let hour = 3_600_000;
        // Friday 17:30 + 1 h of working time: Monday 08:30 (the weekend does not count).
        assert_eq!(
            h.add_working(at("2027-01-08T17:30:00"), hour),
            at("2027-01-11T08:30:00")
        );
        // At night the clock starts in the morning.
        assert_eq!(
            h.add_working(at("2027-01-05T02:00:00"), 15 * 60_000),
            at("2027-01-05T08:15:00")
        );
    }

    #[test]
    fn bad_hours_say_what_is_wrong() {
        let p = |z: &str, d: &str, f: &str, t: &str| Hours::parse(z, d, f, t, &[]).unwrap_err();
        assert_eq!(
            p("Mars/Base", "mon", "08:00", "09:00"),
            HoursError::Zone("Mars/Base".into())
        );
        assert!(matches!(
            p("UTC", "fri-mon", "08:00", "09:00"),
            HoursError::Days(_)
        ));
        assert!(matches!(
            p("UTC", "mon", "8h", "09:00"),
            HoursError::Time(_)
        ));
        assert!(matches!(
            p("UTC", "mon", "18:00", "08:00"),
            HoursError::Window { .. }
        ));
        assert_eq!(parse_days("mon,wed,sat-sun").unwrap(), 0b1100101);
    }
}
