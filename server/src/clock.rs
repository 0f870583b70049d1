//! The server's wall clock, in the unit every timestamp of Vigil uses: Unix epoch
//! milliseconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Added to the real time: 0 unless `[server] clock_start` moved the clock (drills, tests).
static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Server time, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    real_ms() + OFFSET_MS.load(Ordering::Relaxed)
}

fn real_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Makes the server's clock show `start` (RFC 3339) now and run at real speed from there:
/// for drills and tests of time-dependent behaviour (care-team hours). Returns it in ms.
pub fn start_at(start: &str) -> Result<i64, String> {
    let at = start
        .parse::<jiff::Timestamp>()
        .map_err(|e| {
            format!(
                "'{}' is not an RFC 3339 time with an offset ({e})",
                start.escape_default()
            )
        })?
        .as_millisecond();
    OFFSET_MS.store(at - real_ms(), Ordering::Relaxed);
    Ok(at)
}

/// `ms` (Unix epoch milliseconds) as RFC 3339 in UTC; `None` outside the representable range.
pub fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `ms` (Unix epoch milliseconds) as a person reads it in `zone`, with the offset so that
/// nobody has to guess the zone: `2026-12-04 08:31:05 (UTC+08:00)`.
pub fn local_time(ms: i64, zone: &jiff::tz::TimeZone) -> Option<String> {
    let at = jiff::Timestamp::from_millisecond(ms)
        .ok()?
        .to_zoned_datetime(zone.clone());
    Some(at.strftime("%Y-%m-%d %H:%M:%S (UTC%:z)").to_string())
}

/// The time zone named `name` (checked by [`timezone_problem`]), else UTC.
pub fn zone(name: &str) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The host's IANA time zone: `TZ`, else `/etc/timezone`, else the target of the
/// `/etc/localtime` link, else `UTC`.
pub fn host_timezone() -> String {
    let from_env = std::env::var("TZ")
        .ok()
        .map(|tz| tz.trim_start_matches(':').to_string());
    let from_file = || {
        std::fs::read_to_string("/etc/timezone")
            .ok()
            .map(|s| s.trim().to_string())
    };
    let from_link = || {
        let target = std::fs::read_link("/etc/localtime").ok()?;
        let text = target.to_string_lossy().into_owned();
        text.split_once("zoneinfo/")
            .map(|(_, name)| name.to_string())
    };
    from_env
        .into_iter()
        .chain(from_file())
        .chain(from_link())
        .find(|tz| timezone_problem(tz).is_none())
        .unwrap_or_else(|| "UTC".to_string())
}

/// Why `name` is not a usable IANA time zone name, if it is not: the console hands it to
/// the browser, so it must look like one, and it must be in the zone database (the host's,
/// else the copy built into Vigil).
pub fn timezone_problem(name: &str) -> Option<String> {
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('/')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c));
    if !well_formed {
        return Some(format!(
            "'{}' is not an IANA time zone name such as Asia/Shanghai or UTC",
            name.escape_default()
        ));
    }
    if jiff::tz::TimeZone::get(name).is_err() {
        return Some(format!(
            "'{name}' is not a known time zone (e.g. Asia/Shanghai, Europe/London, UTC)"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zone_names_are_checked() {
        assert_eq!(timezone_problem("UTC"), None);
        assert!(timezone_problem("../../etc/passwd").is_some());
        assert!(timezone_problem("Asia/Shang hai").is_some());
        assert!(timezone_problem("").is_some());
        assert!(timezone_problem(&host_timezone()).is_none());
        assert!(timezone_problem("Mars/Olympus_Mons").is_some());
    }

    #[test]
    fn local_times_carry_their_offset() {
        let ms = 1_764_808_265_000; // 2025-12-04T00:31:05Z
        assert_eq!(
            local_time(ms, &zone("Asia/Shanghai")).as_deref(),
            Some("2025-12-04 08:31:05 (UTC+08:00)")
        );
        assert_eq!(
            local_time(ms, &zone("UTC")).as_deref(),
            Some("2025-12-04 00:31:05 (UTC+00:00)")
        );
    }
}
