//! The MQTT topic parser on arbitrary bytes: never panics, and what it accepts is exactly
//! `vitals/{patient}[/{metric}]` with a patient id that passes validation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ingest::{parse_topic, validate_patient_id};

fuzz_target!(|data: &[u8]| {
    if let Ok(topic) = parse_topic(data) {
        assert!(validate_patient_id(topic.patient_id).is_ok());
        assert!(!topic.patient_id.contains('/'));
        let rebuilt = match topic.metric {
            Some(metric) => {
                assert!(!metric.is_empty() && !metric.contains('/'));
                format!("vitals/{}/{metric}", topic.patient_id)
            }
            None => format!("vitals/{}", topic.patient_id),
        };
        assert_eq!(rebuilt.as_bytes(), data, "the topic round-trips");
    }
});
