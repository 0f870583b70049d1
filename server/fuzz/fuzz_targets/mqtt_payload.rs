//! An MQTT publish as Vigil's session hands it to the pipeline: topic, payload decoding and
//! validation, on arbitrary bytes. Input: `topic NUL payload`, or a bare payload on
//! `vitals/p-1/heart_rate`. Never panics; every payload yields at least one outcome; an
//! accepted reading is finite, plausible and for the topic's patient; every rejection says
//! why.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_ingest::{decode_payload, parse_topic, Validator};

const NOW_MS: i64 = 1_790_000_000_000;

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b"vitals/p-1/heart_rate"[..], data),
    };
    let Ok(topic) = parse_topic(topic) else {
        return;
    };
    let validator = Validator::new(Duration::from_secs(7 * 86_400), Duration::from_secs(300));
    let mut outcomes = 0usize;
    decode_payload(payload, topic.metric.is_some(), |decoded| {
        outcomes += 1;
        let wire = match decoded {
            Ok(wire) => wire,
            Err(rejection) => {
                assert!(!rejection.to_string().is_empty());
                return;
            }
        };
        match validator.from_wire(topic.patient_id, topic.metric, &wire, NOW_MS) {
            Ok(reading) => {
                assert_eq!(reading.patient_id, topic.patient_id);
                assert!(reading.value.is_finite());
                assert!(reading.metric.is_plausible(reading.value));
            }
            Err(rejection) => assert!(!rejection.to_string().is_empty()),
        }
    });
    assert!(outcomes >= 1, "a payload with no outcome vanished silently");
});
