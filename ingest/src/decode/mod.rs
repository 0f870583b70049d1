//! MQTT payload formats: one JSON reading, an array of readings, `{"readings": [...]}`, or,
//! on a metric topic, a bare number. Each reading is decoded on its own, so one bad
//! element never costs its neighbours.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::reject::{RejectReason, Rejection};
use crate::timestamp::{self, RawTimestamp};

mod in_place;

/// One reading as it appears on the wire, before validation. Strings borrow from the payload
/// when they contain no escapes.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct WireReading<'a> {
    #[serde(borrow, default)]
    pub metric: Option<Cow<'a, str>>,
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(borrow, default)]
    pub unit: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "timestamp::deserialize_raw")]
    pub ts: Option<RawTimestamp<'a>>,
    #[serde(borrow, default)]
    pub device: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    /// Present only on the `{"readings": [...]}` envelope.
    #[serde(borrow, default)]
    pub(crate) readings: Option<Vec<WireReading<'a>>>,
}

/// The envelope form, decoded lazily when some element of it is bad.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    readings: Vec<&'a RawValue>,
}

/// Decodes `payload` and calls `emit` once per reading found: `Ok` for a reading that parsed,
/// `Err` for each element (or the whole payload) that did not. `bare_number_ok` is true on
/// `vitals/{patient}/{metric}` topics, where the payload may be just `72.5`.
pub fn decode_payload<'a, F>(payload: &'a [u8], bare_number_ok: bool, mut emit: F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    decode_from(payload, first_byte(payload), bare_number_ok, &mut emit);
}

/// The payload's first byte that is not blank.
fn first_byte(payload: &[u8]) -> Option<u8> {
    payload.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// [`decode_payload`] of a payload whose first byte that is not blank is `first`.
fn decode_from<'a, F>(payload: &'a [u8], first: Option<u8>, bare_number_ok: bool, emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    match first {
        None => emit(Err(malformed("empty payload"))),
        Some(b'[') => decode_array(payload, emit),
        Some(b'{') => decode_object(payload, emit),
        Some(_) if bare_number_ok => match serde_json::from_slice::<f64>(payload) {
            Ok(value) => emit(Ok(WireReading {
                value: Some(value),
                ..WireReading::default()
            })),
            Err(e) => emit(Err(malformed(format!(
                "expected a number or a JSON reading: {e}"
            )))),
        },
        Some(_) => emit(Err(malformed(
            "expected a JSON reading, an array of readings or {\"readings\": [...]}",
        ))),
    }
}

fn decode_array<'a, F>(payload: &'a [u8], emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    let mut readings = Vec::new();
    if in_place::decode_array(payload, &mut readings) {
        emit_all(readings, emit);
    } else {
        decode_array_slowly(payload, emit);
    }
}

/// Decodes `payload` as [`decode_payload`] does, appending the readings to `out` (in
/// payload order) and calling `reject` for each element, or the whole payload, that did
/// not parse. A well-formed array of readings (the batched device's payload) is decoded
/// straight into `out`, its strings borrowed from the payload.
pub fn decode_payload_into<'a>(
    payload: &'a [u8],
    bare_number_ok: bool,
    out: &mut Vec<WireReading<'a>>,
    mut reject: impl FnMut(Rejection),
) {
    let first = first_byte(payload);
    let is_array = first == Some(b'[');
    let start = out.len();
    if is_array && in_place::decode_array(payload, out) {
        if out.len() == start {
            reject(malformed(EMPTY_BATCH));
        }
        return;
    }
    let mut emit = |decoded: Result<WireReading<'a>, Rejection>| match decoded {
        Ok(reading) => out.push(reading),
        Err(rejection) => reject(rejection),
    };
    if is_array {
        decode_array_slowly(payload, &mut emit);
    } else {
        decode_from(payload, first, bare_number_ok, &mut emit);
    }
}

/// Splits the array into elements, then judges each on its own.
fn decode_array_slowly<'a, F>(payload: &'a [u8], emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    match serde_json::from_slice::<Vec<&'a RawValue>>(payload) {
        Ok(elements) => decode_elements(&elements, emit),
        Err(e) => emit(Err(malformed(format!("not a JSON array: {e}")))),
    }
}

fn decode_object<'a, F>(payload: &'a [u8], emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    match serde_json::from_slice::<WireReading<'a>>(payload) {
        Ok(mut reading) => match reading.readings.take() {
            Some(inner) => emit_all(inner, emit),
            None => emit_one(reading, emit),
        },
        Err(e) => match serde_json::from_slice::<RawEnvelope<'a>>(payload) {
            Ok(envelope) => decode_elements(&envelope.readings, emit),
            Err(_) => emit(Err(malformed(e.to_string()))),
        },
    }
}

/// Every reading of an array or envelope; an empty one is refused rather than accepted as
/// nothing, so a device sending empty batches shows up in the rejection counters (found by
/// the `mqtt_payload` fuzz target).
fn emit_all<'a, F>(readings: Vec<WireReading<'a>>, emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    if readings.is_empty() {
        emit(Err(malformed(EMPTY_BATCH)));
    }
    readings.into_iter().for_each(|r| emit_one(r, emit));
}

const EMPTY_BATCH: &str = "payload holds no readings (empty array)";

fn decode_elements<'a, F>(elements: &[&'a RawValue], emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    if elements.is_empty() {
        emit(Err(malformed(EMPTY_BATCH)));
    }
    for element in elements {
        match serde_json::from_str::<WireReading<'a>>(element.get()) {
            Ok(r) => emit_one(r, emit),
            Err(e) => emit(Err(malformed(e.to_string()))),
        }
    }
}

/// Nested envelopes are not a payload form: `{"readings": [{"readings": ...}]}` is refused.
fn emit_one<'a, F>(reading: WireReading<'a>, emit: &mut F)
where
    F: FnMut(Result<WireReading<'a>, Rejection>),
{
    if reading.readings.is_some() {
        emit(Err(malformed(
            "nested `readings` envelopes are not allowed",
        )));
    } else {
        emit(Ok(reading));
    }
}

fn malformed(detail: impl Into<Cow<'static, str>>) -> Rejection {
    Rejection::new(RejectReason::Malformed, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(payload: &[u8], bare: bool) -> Vec<Result<WireReading<'_>, Rejection>> {
        let mut out = Vec::new();
        decode_payload(payload, bare, |r| out.push(r));
        out
    }

    #[test]
    fn single_reading() {
        let got = decode(
            br#"{"metric":"heart_rate","value":72,"unit":"/min","ts":1763892000123,"device":"cuff-17","seq":42}"#,
            false,
        );
        assert_eq!(got.len(), 1);
        let r = got[0].as_ref().unwrap();
        assert_eq!(r.metric.as_deref(), Some("heart_rate"));
        assert_eq!(r.value, Some(72.0));
        assert_eq!(r.ts, Some(RawTimestamp::Integer(1_763_892_000_123)));
        assert_eq!(r.device.as_deref(), Some("cuff-17"));
        assert_eq!(r.seq, Some(42));
    }

    #[test]
    fn an_empty_batch_is_refused_not_ignored() {
        for payload in [
            &b"[]"[..],
            b" [ ] ",
            br#"{"readings":[]}"#,
            br#"{"readings":[],"x":1}"#,
        ] {
            let got = decode(payload, false);
            assert_eq!(got.len(), 1, "{payload:?}");
            let e = got[0].as_ref().unwrap_err();
            assert_eq!(e.reason, RejectReason::Malformed);
            assert!(e.to_string().contains("empty array"), "{e}");
        }
    }

    #[test]
    fn array_and_envelope() {
        let p = br#"[{"metric":"spo2","value":97},{"metric":"heart_rate","value":70}]"#;
        assert_eq!(decode(p, false).iter().filter(|r| r.is_ok()).count(), 2);
        let p =
            br#"{"readings":[{"metric":"spo2","value":97},{"metric":"heart_rate","value":70}]}"#;
        assert_eq!(decode(p, false).iter().filter(|r| r.is_ok()).count(), 2);
    }

    #[test]
    fn one_bad_element_keeps_its_neighbours() {
        let p = br#"[{"metric":"spo2","value":97},{"metric":"heart_rate","value":"high"},{"metric":"heart_rate","value":70}]"#;
        let got = decode(p, false);
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_err() && got[2].is_ok());
        let p =
            br#"{"readings":[{"metric":"spo2","value":97},7,{"metric":"heart_rate","value":70}]}"#;
        let got = decode(p, false);
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_err() && got[2].is_ok());
    }

    #[test]
    fn bare_number_only_on_metric_topics() {
        let got = decode(b" 72.5\n", true);
        assert_eq!(got[0].as_ref().unwrap().value, Some(72.5));
        let got = decode(b"72.5", false);
        assert_eq!(got[0].as_ref().unwrap_err().reason, RejectReason::Malformed);
    }

    #[test]
    fn hostile_payloads_are_malformed_not_panics() {
        let deep = "[".repeat(10_000);
        let huge = format!(
            "{{\"metric\":\"heart_rate\",\"value\":1{}}}",
            "0".repeat(5000)
        );
        let cases: Vec<&[u8]> = vec![
            b"",
            b"   ",
            b"\xff\xfe\x00",
            b"NaN",
            b"{\"metric\":\"heart_rate\",\"value\":NaN}",
            b"{\"metric\":\"heart_rate\",\"value\":Infinity}",
            b"{\"metric\":\"heart_rate\",\"value\":1e999}",
            b"{\"metric\":\"heart_rate\",",
            b"[1,2",
            deep.as_bytes(),
            huge.as_bytes(),
            b"{\"metric\":\"h\xffr\",\"value\":1}",
            b"{\"readings\":[{\"readings\":[]}]}",
            b"true",
        ];
        for payload in cases {
            for bare in [false, true] {
                let got = decode(payload, bare);
                assert!(!got.is_empty(), "nothing emitted for {payload:?}");
                assert!(
                    got.iter().all(|r| r.is_err()),
                    "accepted hostile payload {:?}",
                    String::from_utf8_lossy(&payload[..payload.len().min(40)])
                );
            }
        }
    }

    #[test]
    fn escaped_strings_are_owned_not_rejected() {
        let got = decode(br#"{"metric":"heart\u005frate","value":70}"#, false);
        assert_eq!(
            got[0].as_ref().unwrap().metric.as_deref(),
            Some("heart_rate")
        );
    }
}
