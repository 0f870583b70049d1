//! Rule evaluation cost per reading with 100 000 patients and every rule kind enabled:
//! the built-in set (thresholds, NEWS2 medium/high, heart-failure weight gain, home BP
//! averages) plus fall, min, max and absent rules. Run: `cargo bench -p vigil-bench --bench rules`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_alerting::{
    builtin_rules, Engine, EngineConfig, MemoryEventLog, PatientProfile, RuleSpec,
};
use vigil_ingest::{Metric, Reading};

const PATIENTS: usize = 100_000;
const T0: i64 = 1_763_892_000_000;
/// The metrics each simulated patient reports, in turn.
const METRICS: [(Metric, f64); 7] = [
    (Metric::HeartRate, 72.0),
    (Metric::Spo2, 97.0),
    (Metric::RespRate, 16.0),
    (Metric::SystolicBp, 128.0),
    (Metric::DiastolicBp, 80.0),
    (Metric::Temperature, 36.8),
    (Metric::Weight, 81.0),
];

fn extra_rules() -> Vec<RuleSpec> {
    let spec = |id: &str, kind: &str, metric: &str| RuleSpec {
        id: id.into(),
        kind: Some(kind.into()),
        metric: Some(metric.into()),
        ..RuleSpec::default()
    };
    vec![
        RuleSpec {
            window_ms: Some(600_000),
            by: Some(5.0),
            ..spec("spo2_drop", "fall", "spo2")
        },
        RuleSpec {
            window_ms: Some(3_600_000),
            below: Some(88.0),
            ..spec("spo2_floor", "min", "spo2")
        },
        RuleSpec {
            window_ms: Some(3_600_000),
            above: Some(39.0),
            ..spec("temp_peak", "max", "temperature")
        },
        RuleSpec {
            after_ms: Some(86_400_000),
            ..spec("hr_silent", "absent", "heart_rate")
        },
    ]
}

fn engine() -> Engine {
    let mut rules = builtin_rules();
    rules.extend(
        extra_rules()
            .iter()
            .map(|s| s.validate().expect("valid bench rule")),
    );
    let patients = (0..PATIENTS)
        .map(|i| {
            let mut p = PatientProfile::open(&format!("p-{i:06}"));
            p.conditions = vec!["heart_failure".into(), "hypertension".into()];
            p
        })
        .collect();
    Engine::new(
        EngineConfig {
            rules,
            patients,
            open_enrollment: false,
        },
        Arc::new(MemoryEventLog::default()),
    )
}

fn rules(c: &mut Criterion) {
    let ids: Vec<String> = (0..PATIENTS).map(|i| format!("p-{i:06}")).collect();
    let engine = engine();
    // Reading n goes to patient n % PATIENTS, metric (n / PATIENTS) % 7; every patient
    // reports each metric once per simulated minute.
    let reading = |n: usize| {
        let (metric, base) = METRICS[(n / PATIENTS) % METRICS.len()];
        let round = (n / (PATIENTS * METRICS.len())) as i64;
        Reading {
            patient_id: &ids[n % PATIENTS],
            metric,
            value: base + ((n % 7) as f64 - 3.0) * 0.1,
            ts_ms: T0 + round * 60_000 + (n / PATIENTS % METRICS.len()) as i64,
            device_id: None,
            seq: None,
        }
    };
    // Warm up: every patient has every metric, so all rules have state to judge.
    let warm = PATIENTS * METRICS.len() * 3;
    for n in 0..warm {
        engine.process(&reading(n), T0).expect("enrolled");
    }
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(1));
    let mut n = warm;
    // Worst case: every reading belongs to a different patient than the one before.
    group.bench_function("all_kinds_100k_patients", |b| {
        b.iter(|| {
            n += 1;
            engine
                .process(&reading(n), T0)
                .expect("enrolled")
                .raised_total()
        })
    });
    // As devices publish: a patient's seven vitals arrive together (one payload), then the
    // next patient's.
    let per_round = PATIENTS * METRICS.len();
    let payload_order = |k: usize| {
        let (round, rest) = (k / per_round, k % per_round);
        let (patient, metric) = (rest / METRICS.len(), rest % METRICS.len());
        reading(round * per_round + metric * PATIENTS + patient)
    };
    // Continue after the readings above, so event time keeps moving forward.
    let per_round = PATIENTS * METRICS.len();
    let mut k = (n / per_round + 1) * per_round;
    group.bench_function("all_kinds_100k_patients_payload_order", |b| {
        b.iter(|| {
            k += 1;
            engine
                .process(&payload_order(k), T0)
                .expect("enrolled")
                .raised_total()
        })
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
