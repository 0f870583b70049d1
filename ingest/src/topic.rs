//! MQTT topic grammar for readings: `vitals/{patient_id}` and `vitals/{patient_id}/{metric}`.

use crate::reject::{RejectReason, Rejection};

/// The longest patient id accepted, in bytes.
pub const MAX_PATIENT_ID_LEN: usize = 128;

/// What a reading topic names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadingTopic<'a> {
    pub patient_id: &'a str,
    /// The metric segment, as written (a name or a LOINC code), if the topic has one.
    pub metric: Option<&'a str>,
}

/// Parses a topic into its patient id and optional metric segment.
pub fn parse_topic(topic: &[u8]) -> Result<ReadingTopic<'_>, Rejection> {
    let topic = std::str::from_utf8(topic).map_err(|_| bad_topic("topic is not valid UTF-8"))?;
    let rest = topic
        .strip_prefix("vitals/")
        .ok_or_else(|| bad_topic("topic must start with vitals/"))?;
    let mut parts = rest.split('/');
    let patient_id = parts.next().unwrap_or_default();
    let metric = parts.next();
    if parts.next().is_some() {
        return Err(bad_topic(
            "topic has too many levels: use vitals/{patient_id} or vitals/{patient_id}/{metric}",
        ));
    }
    validate_patient_id(patient_id)?;
    if metric == Some("") {
        return Err(bad_topic("empty metric level in topic"));
    }
    Ok(ReadingTopic { patient_id, metric })
}

/// Checks a patient id from any source: non-empty, at most 128 bytes, no control characters,
/// no `/`, `+` or `#` (which cannot round-trip through MQTT topics).
pub fn validate_patient_id(id: &str) -> Result<(), Rejection> {
    if id.is_empty() {
        return Err(bad_topic("empty patient id"));
    }
    if id.len() > MAX_PATIENT_ID_LEN {
        return Err(bad_topic("patient id longer than 128 bytes"));
    }
    if id
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '+' | '#'))
    {
        return Err(bad_topic(
            "patient id contains a control character, '/', '+' or '#'",
        ));
    }
    Ok(())
}

fn bad_topic(detail: &'static str) -> Rejection {
    Rejection::new(RejectReason::BadTopic, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let t = parse_topic(b"vitals/p-001").unwrap();
        assert_eq!((t.patient_id, t.metric), ("p-001", None));
        let t = parse_topic(b"vitals/p-001/heart_rate").unwrap();
        assert_eq!((t.patient_id, t.metric), ("p-001", Some("heart_rate")));
    }

    #[test]
    fn refused_forms() {
        for topic in [
            &b"vitals/"[..],
            b"vitals//heart_rate",
            b"vitals/p/heart_rate/extra",
            b"vitals/p/",
            b"telemetry/p",
            b"vitals",
            b"vitals/\xff",
        ] {
            let err = parse_topic(topic).unwrap_err();
            assert_eq!(err.reason, RejectReason::BadTopic, "{topic:?}");
        }
        let long = format!("vitals/{}", "x".repeat(129));
        assert!(parse_topic(long.as_bytes()).is_err());
    }
}
