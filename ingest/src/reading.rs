//! The validated, normalised reading handed from ingest to the alerting engine.

use crate::metric::Metric;

/// One accepted measurement, value in the metric's canonical unit, judged by `ts_ms`
/// (event time). Borrowed ids keep the hot path free of allocation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading<'a> {
    pub patient_id: &'a str,
    pub metric: Metric,
    pub value: f64,
    /// Event time, Unix epoch milliseconds.
    pub ts_ms: i64,
    pub device_id: Option<&'a str>,
    pub seq: Option<u64>,
}
