//! The server's wall clock, in the unit every timestamp of Vigil uses: Unix epoch
//! milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Server time, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `ms` (Unix epoch milliseconds) as RFC 3339 in UTC; `None` outside the representable range.
pub fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
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
/// the browser, so it must look like one, and where the host has a zone database it must
/// be in it.
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
    let database = std::path::Path::new("/usr/share/zoneinfo");
    if name != "UTC" && database.is_dir() && !database.join(name).is_file() {
        return Some(format!(
            "time zone '{name}' is not in {} (e.g. Asia/Shanghai, Europe/London, UTC)",
            database.display()
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
    }
}
