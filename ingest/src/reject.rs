//! Why a reading was refused: a small fixed set of reasons (the `reason` label of
//! `vigil_readings_rejected_total`) plus a sentence the sender can act on.

use std::borrow::Cow;
use std::fmt;

/// The stable, machine-readable reason code of a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The payload or reading could not be decoded (not JSON, wrong types, missing fields,
    /// empty, not UTF-8, too deeply nested, a number out of range).
    Malformed,
    /// The MQTT topic is not `vitals/{patient_id}` or `vitals/{patient_id}/{metric}`.
    BadTopic,
    /// The metric is neither a canonical name nor a known LOINC code.
    UnknownMetric,
    /// The unit is not accepted for that metric.
    UnknownUnit,
    /// The value lies outside the metric's physiologically plausible range.
    Implausible,
    /// `ts` is neither epoch milliseconds nor an RFC 3339 timestamp.
    BadTimestamp,
    /// The reading is older than `max_reading_age`.
    TooOld,
    /// The reading is further in the future than the allowed clock skew.
    InFuture,
    /// A patient list is configured and this patient is not on it.
    NotEnrolled,
    /// The patient has not consented (or has withdrawn consent) to monitoring.
    NoConsent,
    /// The same (patient, device, seq) was already accepted: a redelivery.
    Duplicate,
    /// The sender's credentials do not cover this patient (a gateway token outside its
    /// patient prefixes).
    NotPermitted,
}

impl RejectReason {
    /// Every reason, so counters can be registered (at zero) up front.
    pub const ALL: [RejectReason; 12] = [
        RejectReason::Malformed,
        RejectReason::BadTopic,
        RejectReason::UnknownMetric,
        RejectReason::UnknownUnit,
        RejectReason::Implausible,
        RejectReason::BadTimestamp,
        RejectReason::TooOld,
        RejectReason::InFuture,
        RejectReason::NotEnrolled,
        RejectReason::NoConsent,
        RejectReason::Duplicate,
        RejectReason::NotPermitted,
    ];

    /// The label value used in metrics and at the start of gRPC rejection reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::BadTopic => "bad_topic",
            RejectReason::UnknownMetric => "unknown_metric",
            RejectReason::UnknownUnit => "unknown_unit",
            RejectReason::Implausible => "implausible",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::TooOld => "too_old",
            RejectReason::InFuture => "in_future",
            RejectReason::NotEnrolled => "not_enrolled",
            RejectReason::NoConsent => "no_consent",
            RejectReason::Duplicate => "duplicate",
            RejectReason::NotPermitted => "not_permitted",
        }
    }

    /// Dense index into [`RejectReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused reading: the reason code and an explanation for the sender. The detail may
/// quote the sender's own value back to it, so it goes to the sender (gRPC ack), not to
/// logs above `debug`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: Cow<'static, str>,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<Cow<'static, str>>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all_order() {
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }

    #[test]
    fn display_starts_with_code() {
        let r = Rejection::new(RejectReason::UnknownMetric, "'hr' is not a known metric");
        assert_eq!(r.to_string(), "unknown_metric: 'hr' is not a known metric");
    }
}
