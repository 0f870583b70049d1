//! A FHIR request body as the HTTP listener hands it on, on arbitrary bytes: parsed as an
//! Observation and as a Bundle, each Observation's readings validated. Never panics; every
//! problem names what to fix; an accepted reading is finite and plausible.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use vigil_ingest::fhir::{parse_bundle, parse_observation, Entry, Mapping};
use vigil_ingest::{Candidate, Validator};

const NOW_MS: i64 = 1_790_000_000_000;

fn judge(entry: Entry, validator: &Validator) {
    let readings = match entry.and_then(|o| o.readings(&Mapping::default())) {
        Ok(readings) => readings,
        Err(problem) => {
            assert!(!problem.diagnostics.is_empty() && !problem.code.is_empty());
            return;
        }
    };
    assert!(!readings.is_empty(), "an Observation with no reading and no problem");
    for r in &readings {
        let candidate = Candidate {
            metric: r.metric.name(),
            value: r.value,
            unit: r.unit.as_deref(),
            ts_ms: Some(Some(r.ts_ms)),
            device_id: r.device_id.as_deref(),
            seq: r.seq,
        };
        match validator.validate(&r.patient_id, candidate, NOW_MS) {
            Ok(reading) => {
                assert!(reading.value.is_finite());
                assert!(reading.metric.is_plausible(reading.value));
            }
            Err(rejection) => assert!(!rejection.to_string().is_empty()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let validator = Validator::new(Duration::from_secs(7 * 86_400), Duration::from_secs(300));
    judge(parse_observation(data), &validator);
    match parse_bundle(data) {
        Ok((_, entries)) => entries.into_iter().for_each(|e| judge(e, &validator)),
        Err(problem) => assert!(!problem.diagnostics.is_empty()),
    }
});
