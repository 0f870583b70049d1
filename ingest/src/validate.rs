//! Turns a decoded wire reading into a validated [`Reading`]: metric alias resolution, unit
//! conversion, plausibility, and the event-time acceptance window.

use std::time::Duration;

use crate::decode::WireReading;
use crate::metric::Metric;
use crate::reading::Reading;
use crate::reject::{RejectReason, Rejection};
use crate::topic::MAX_PATIENT_ID_LEN;
use crate::unit;

/// Default `max_reading_age`: a device may upload up to a week of stored readings.
pub const DEFAULT_MAX_READING_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default tolerated clock skew into the future.
pub const DEFAULT_MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);

/// The acceptance policy for readings.
#[derive(Debug, Clone, Copy)]
pub struct Validator {
    /// Readings whose event time is older than now minus this are `too_old`.
    pub max_age_ms: i64,
    /// Readings whose event time is later than now plus this are `in_future`.
    pub max_future_ms: i64,
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new(DEFAULT_MAX_READING_AGE, DEFAULT_MAX_FUTURE_SKEW)
    }
}

/// The parts of a reading every source provides, already separated from its wire format.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub metric: &'a str,
    pub value: f64,
    /// `None` or empty: the canonical unit.
    pub unit: Option<&'a str>,
    /// `None`: use the receive time. `Some(None)`: present but unusable.
    pub ts_ms: Option<Option<i64>>,
    pub device_id: Option<&'a str>,
    pub seq: Option<u64>,
}

impl Validator {
    pub fn new(max_age: Duration, max_future: Duration) -> Self {
        Validator {
            max_age_ms: duration_ms(max_age),
            max_future_ms: duration_ms(max_future),
        }
    }

    /// Validates a reading decoded from an MQTT payload. `topic_metric` is the metric level
    /// of a `vitals/{patient}/{metric}` topic, if any.
    pub fn from_wire<'a>(
        &self,
        patient_id: &'a str,
        topic_metric: Option<&'a str>,
        wire: &'a WireReading<'a>,
        now_ms: i64,
    ) -> Result<Reading<'a>, Rejection> {
        let metric =
            match (topic_metric, wire.metric.as_deref()) {
                (Some(topic), Some(field)) if !same_metric(topic, field) => {
                    return Err(Rejection::new(
                        RejectReason::Malformed,
                        format!(
                        "reading names metric '{field}' but was published on the '{topic}' topic"
                    ),
                    ))
                }
                (Some(topic), _) => topic,
                (None, Some(field)) => field,
                (None, None) => return Err(Rejection::new(
                    RejectReason::Malformed,
                    "reading has no `metric`: add one or publish to vitals/{patient_id}/{metric}",
                )),
            };
        let value = wire.value.ok_or_else(|| {
            Rejection::new(RejectReason::Malformed, "reading has no numeric `value`")
        })?;
        let candidate = Candidate {
            metric,
            value,
            unit: wire.unit.as_deref(),
            ts_ms: wire.ts.map(|t| t.to_epoch_ms()),
            device_id: wire.device.as_deref(),
            seq: wire.seq,
        };
        self.validate(patient_id, candidate, now_ms)
    }

    /// Validates a reading from any source.
    pub fn validate<'a>(
        &self,
        patient_id: &'a str,
        c: Candidate<'a>,
        now_ms: i64,
    ) -> Result<Reading<'a>, Rejection> {
        let metric = Metric::parse(c.metric).ok_or_else(|| {
            Rejection::new(
                RejectReason::UnknownMetric,
                format!(
                    "'{}' is not a known metric name or LOINC code",
                    truncate(c.metric)
                ),
            )
        })?;
        let value = unit::to_canonical(metric, c.value, c.unit).ok_or_else(|| {
            Rejection::new(
                RejectReason::UnknownUnit,
                format!(
                    "unit '{}' is not accepted for {metric} (canonical unit: {})",
                    truncate(c.unit.unwrap_or_default()),
                    metric.canonical_unit()
                ),
            )
        })?;
        if !metric.is_plausible(value) {
            let (lo, hi) = metric.plausible_range();
            return Err(Rejection::new(
                RejectReason::Implausible,
                format!(
                    "{metric} value outside the plausible range {lo}..={hi} {}",
                    metric.canonical_unit()
                ),
            ));
        }
        let ts_ms = self.event_time(c.ts_ms, now_ms)?;
        let device_id = c.device_id.filter(|d| !d.is_empty());
        if let Some(device) = device_id {
            // Remembered for duplicate suppression: bounded like a patient id.
            if device.len() > MAX_PATIENT_ID_LEN || device.chars().any(char::is_control) {
                return Err(Rejection::new(
                    RejectReason::Malformed,
                    "device id longer than 128 bytes or with a control character",
                ));
            }
        }
        Ok(Reading {
            patient_id,
            metric,
            value,
            ts_ms,
            device_id,
            seq: c.seq,
        })
    }

    /// The reading's event time (the receive time when the sender gave none), within
    /// `max_reading_age` before and `max_future_skew` after `now_ms`.
    fn event_time(&self, ts: Option<Option<i64>>, now_ms: i64) -> Result<i64, Rejection> {
        let ts_ms = match ts {
            None => now_ms,
            Some(Some(ts)) => ts,
            Some(None) => {
                return Err(Rejection::new(
                    RejectReason::BadTimestamp,
                    "`ts` must be Unix epoch milliseconds or an RFC 3339 timestamp with offset",
                ))
            }
        };
        if ts_ms < now_ms.saturating_sub(self.max_age_ms) {
            return Err(Rejection::new(
                RejectReason::TooOld,
                format!(
                    "reading is older than max_reading_age ({} s)",
                    self.max_age_ms / 1000
                ),
            ));
        }
        if ts_ms > now_ms.saturating_add(self.max_future_ms) {
            return Err(Rejection::new(
                RejectReason::InFuture,
                format!(
                    "reading is more than {} s in the future: check the device clock",
                    self.max_future_ms / 1000
                ),
            ));
        }
        Ok(ts_ms)
    }
}

fn same_metric(a: &str, b: &str) -> bool {
    a == b || matches!((Metric::parse(a), Metric::parse(b)), (Some(x), Some(y)) if x == y)
}

/// Caps echoed sender text so a hostile 1 MB metric name is not copied into replies.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::RawTimestamp;

    const NOW: i64 = 1_763_892_000_000;

    fn wire(metric: &str, value: f64) -> WireReading<'_> {
        WireReading {
            metric: Some(metric.into()),
            value: Some(value),
            ..WireReading::default()
        }
    }

    fn reason(r: Result<Reading<'_>, Rejection>) -> RejectReason {
        r.unwrap_err().reason
    }

    #[test]
    fn accepts_and_normalises() {
        let v = Validator::default();
        let mut w = wire("8310-5", 98.6);
        w.unit = Some("[degF]".into());
        let r = v.from_wire("p1", None, &w, NOW).unwrap();
        assert_eq!(r.metric, Metric::Temperature);
        assert!((r.value - 37.0).abs() < 1e-9);
        assert_eq!(r.ts_ms, NOW, "absent ts means receive time");
    }

    #[test]
    fn a_device_id_is_bounded_like_a_patient_id() {
        let v = Validator::default();
        let mut w = wire("heart_rate", 70.0);
        let long = "d".repeat(129);
        w.device = Some(long.as_str().into());
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::Malformed
        );
        w.device = Some("cuff\u{0}1".into());
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::Malformed
        );
        w.device = Some("cuff-1".into());
        assert_eq!(
            v.from_wire("p", None, &w, NOW).unwrap().device_id,
            Some("cuff-1")
        );
    }

    #[test]
    fn rejection_reasons() {
        let v = Validator::default();
        assert_eq!(
            reason(v.from_wire("p", None, &wire("hr", 70.0), NOW)),
            RejectReason::UnknownMetric
        );
        let mut w = wire("heart_rate", 70.0);
        w.unit = Some("mmHg".into());
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::UnknownUnit
        );
        assert_eq!(
            reason(v.from_wire("p", None, &wire("heart_rate", 500.0), NOW)),
            RejectReason::Implausible
        );
        let mut w = wire("heart_rate", 70.0);
        w.ts = Some(RawTimestamp::Text("last tuesday"));
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::BadTimestamp
        );
        w.ts = Some(RawTimestamp::Integer(NOW - 8 * 24 * 3600 * 1000));
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::TooOld
        );
        w.ts = Some(RawTimestamp::Integer(NOW + 6 * 60 * 1000));
        assert_eq!(
            reason(v.from_wire("p", None, &w, NOW)),
            RejectReason::InFuture
        );
        w.ts = Some(RawTimestamp::Integer(NOW + 4 * 60 * 1000));
        assert!(v.from_wire("p", None, &w, NOW).is_ok());
        let no_metric = WireReading {
            value: Some(1.0),
            ..WireReading::default()
        };
        assert_eq!(
            reason(v.from_wire("p", None, &no_metric, NOW)),
            RejectReason::Malformed
        );
    }

    #[test]
    fn week_old_reading_is_accepted_with_its_event_time() {
        let v = Validator::default();
        let mut w = wire("weight", 81.0);
        let ts = NOW - 6 * 24 * 3600 * 1000;
        w.ts = Some(RawTimestamp::Integer(ts));
        assert_eq!(v.from_wire("p", None, &w, NOW).unwrap().ts_ms, ts);
    }

    #[test]
    fn topic_metric_rules() {
        let v = Validator::default();
        let bare = WireReading {
            value: Some(72.5),
            ..WireReading::default()
        };
        let r = v.from_wire("p", Some("8867-4"), &bare, NOW).unwrap();
        assert_eq!(r.metric, Metric::HeartRate);
        let agree = wire("heart_rate", 70.0);
        assert!(v.from_wire("p", Some("8867-4"), &agree, NOW).is_ok());
        assert_eq!(
            reason(v.from_wire("p", Some("spo2"), &agree, NOW)),
            RejectReason::Malformed
        );
        assert_eq!(
            reason(v.from_wire("p", Some("pulse"), &bare, NOW)),
            RejectReason::UnknownMetric
        );
    }
}
