//! The hot path as it stands: decode a JSON reading, validate and normalise it, push it
//! into the sharded store and evaluate the built-in rules. Run: `cargo bench -p vigil-bench`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_alerting::{builtin_rules, AlertLog, Engine, EngineConfig};
use vigil_ingest::{decode_payload, Metric, Reading, Validator};

/// The server's allocator (server/src/main.rs), so that the bench measures the memory
/// layout that ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_763_892_000_000;
const PATIENTS: usize = 10_000;

fn engine() -> Engine {
    Engine::new(
        EngineConfig::open(builtin_rules()),
        Arc::new(AlertLog::default()),
    )
}

fn payloads() -> Vec<(String, Vec<u8>)> {
    (0..PATIENTS)
        .map(|i| {
            let body = format!(
                r#"{{"metric":"heart_rate","value":{},"unit":"/min","ts":{},"device":"cuff-{i}","seq":{i}}}"#,
                60 + i % 40,
                NOW - (i as i64 % 1000)
            );
            (format!("p-{i:06}"), body.into_bytes())
        })
        .collect()
}

fn hot_path(c: &mut Criterion) {
    let validator = Validator::default();
    let payloads = payloads();

    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(1));

    group.bench_function("decode_json_reading", |b| {
        let mut i = 0;
        b.iter(|| {
            let (_, body) = &payloads[i % PATIENTS];
            i += 1;
            let mut n = 0;
            decode_payload(body, false, |r| n += r.is_ok() as u32);
            n
        })
    });

    group.bench_function("decode_validate_store_evaluate", |b| {
        let engine = engine();
        let mut i = 0usize;
        b.iter(|| {
            let (patient, body) = &payloads[i % PATIENTS];
            i += 1;
            let mut raised = 0;
            decode_payload(body, false, |wire| {
                let wire = wire.expect("bench payloads are valid");
                let reading = validator
                    .from_wire(patient, None, &wire, NOW)
                    .expect("valid");
                raised += engine
                    .process(&reading, NOW)
                    .expect("admitted")
                    .raised_total();
            });
            raised
        })
    });

    group.bench_function("store_evaluate_only", |b| {
        // Steady state: every patient already has state; event time moves forward.
        let engine = engine();
        let reading = |i: usize| Reading {
            patient_id: &payloads[i % PATIENTS].0,
            metric: Metric::HeartRate,
            value: 60.0 + (i % 40) as f64,
            ts_ms: NOW + i as i64,
            device_id: None,
            seq: None,
        };
        for i in 0..PATIENTS {
            engine.process(&reading(i), NOW).expect("admitted");
        }
        let mut i = PATIENTS;
        b.iter(|| {
            i += 1;
            engine
                .process(&reading(i), NOW)
                .expect("admitted")
                .raised_total()
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
