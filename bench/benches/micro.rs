//! Micro-benchmarks of single stages, each in isolation: decoding a device's array payload,
//! decoding a FHIR Observation, unit normalisation, one window push at steady state, and handing one alert event to 100
//! subscribers. Run: `cargo bench -p vigil-bench --bench micro`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_alerting::event_log::NewEvent;
use vigil_alerting::window::{Sample, Tracking, Window};
use vigil_alerting::{Alert, AlertFilter, AlertLog, AlertState, EventKind, EventLog, Severity};
use vigil_ingest::unit::to_canonical;
use vigil_ingest::{decode_payload, Metric};

const NOW: i64 = 1_763_892_000_000;

fn decode_array(c: &mut Criterion) {
    let body = format!(
        r#"[{{"metric":"heart_rate","value":72,"ts":{NOW}}},{{"metric":"spo2","value":97,"ts":{NOW}}},{{"metric":"resp_rate","value":16,"ts":{NOW}}},{{"metric":"systolic_bp","value":128,"ts":{NOW}}},{{"metric":"diastolic_bp","value":80,"ts":{NOW}}},{{"metric":"temperature","value":98.6,"unit":"degF","ts":{NOW}}},{{"metric":"weight","value":178.5,"unit":"lb","ts":{NOW}}}]"#
    );
    let mut group = c.benchmark_group("micro");
    group.throughput(Throughput::Elements(7));
    group.bench_function("decode_json_array_of_7", |b| {
        b.iter(|| {
            let mut n = 0;
            decode_payload(body.as_bytes(), false, |r| n += r.is_ok() as u32);
            n
        })
    });
    group.throughput(Throughput::Elements(1));
    let units = [
        (Metric::Temperature, 98.6, Some("degF")),
        (Metric::Weight, 178.5, Some("lb")),
        (Metric::Glucose, 95.0, Some("mg/dL")),
        (Metric::HeartRate, 72.0, None),
    ];
    group.bench_function("unit_normalisation", |b| {
        let mut i = 0;
        b.iter(|| {
            let (m, v, u) = units[i % units.len()];
            i += 1;
            to_canonical(m, v, u)
        })
    });
    group.finish();
}

/// One vital-signs Observation as an EHR sends it (with the elements Vigil ignores), from
/// bytes to its reading.
fn decode_fhir(c: &mut Criterion) {
    let body = r#"{"resourceType":"Observation","id":"heart-rate","meta":{"profile":["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},"identifier":[{"system":"urn:ietf:rfc:3986","value":"urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"}],"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"Vital Signs"}],"text":"Vital Signs"}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"text":"Heart rate"},"subject":{"reference":"Patient/p-1"},"effectiveDateTime":"2026-12-04T07:30:00+08:00","performer":[{"reference":"Practitioner/example"}],"valueQuantity":{"value":44,"unit":"beats/minute","system":"http://unitsofmeasure.org","code":"/min"},"device":{"reference":"Device/strap-9"}}"#;
    let mapping = vigil_ingest::fhir::Mapping::default();
    let mut group = c.benchmark_group("micro");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_fhir_observation", |b| {
        b.iter(|| {
            vigil_ingest::fhir::parse_observation(body.as_bytes())
                .and_then(|o| o.readings(&mapping))
                .map(|r| r.len())
        })
    });
    group.finish();
}

fn window_push(c: &mut Criterion) {
    // Steady state: one sample a minute, one hour kept, min/max candidates tracked.
    let mut w = Window::default();
    w.track(Tracking {
        extrema: true,
        sums: false,
        trend_ms: 0,
    });
    let mut ts = NOW;
    for i in 0..120 {
        ts += 60_000;
        w.insert(
            Sample {
                ts_ms: ts,
                value: 90.0 + (i % 9) as f64,
            },
            3_600_000,
        );
    }
    let mut group = c.benchmark_group("micro");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function("window_push_steady_state", |b| {
        b.iter(|| {
            ts += 60_000;
            i += 1;
            w.insert(
                Sample {
                    ts_ms: ts,
                    value: 90.0 + (i % 9) as f64,
                },
                3_600_000,
            );
            w.len()
        })
    });
    group.finish();
}

fn alert(seq: u64) -> Alert {
    Alert {
        id: format!("a-{seq}").into(),
        patient_id: "p-000042".into(),
        rule_id: "tachycardia".into(),
        severity: Severity::Medium,
        metric: "heart_rate",
        unit: "/min",
        value: 131.0,
        message: "Heart rate 131/min, above 120/min for 1 min".into(),
        patient_message: None,
        state: AlertState::Active,
        care_team: Arc::from("cardiology"),
        observed_at_ms: NOW,
        raised_at_ms: NOW,
        acknowledged: None,
        resolved: None,
        escalation_level: 0,
        escalated_to: Vec::new(),
        active_since_ms: NOW,
        snoozed_until_ms: 0,
        silenced_by: None,
        disposition: None,
        assignee: None,
        parameters: None,
        rule_set_version: 0,
        rule_set_hash: None,
    }
}

fn fan_out(c: &mut Criterion) {
    // 100 live subscribers, every one interested; each drains its buffer as a stream
    // would, so nobody is cut off.
    let log = AlertLog::new(10_000, 1 << 16, 1);
    let mut subscribers: Vec<_> = (0..100)
        .map(|_| log.subscribe(AlertFilter::default(), None))
        .collect();
    let mut group = c.benchmark_group("micro");
    group.throughput(Throughput::Elements(1));
    let mut seq = 0;
    group.bench_function("alert_fan_out_to_100_subscribers", |b| {
        b.iter(|| {
            seq += 1;
            let event = log.append(NewEvent {
                kind: EventKind::Raised,
                alert: alert(seq),
                at_ms: NOW,
                by: String::new(),
                note: String::new(),
            });
            if seq % 1024 == 0 {
                for s in &mut subscribers {
                    while s.live.try_recv().is_ok() {}
                }
            }
            event.seq
        })
    });
    group.finish();
    assert_eq!(log.stats().overflowed_subscribers, 0, "nobody was cut off");
}

criterion_group!(benches, decode_array, decode_fhir, window_push, fan_out);
criterion_main!(benches);
