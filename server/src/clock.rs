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
