//! Rule evaluation cost per reading with 100 000 patients and every rule kind enabled:
//! the built-in set (thresholds, NEWS2 medium/high, heart-failure weight gain, home BP
//! averages over at least 4 days, the SpO2 trend) plus fall, min, max, absent and
//! adherence rules. Run: `cargo bench -p vigil-bench --bench rules`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vigil_alerting::{
    builtin_rules, AlertLog, Engine, EngineConfig, LookAhead, PatientProfile, RuleSpec,
};
use vigil_ingest::{Metric, Reading};

/// The server's allocator (server/src/main.rs), so that the bench measures the memory
/// layout that ships (which cache lines a patient's state and windows straddle).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Patients simulated; `VIGIL_BENCH_PATIENTS` changes it (e.g. to see the cost when
/// every window is in cache).
fn patients() -> usize {
    std::env::var("VIGIL_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}
/// Event time at the end of the warm-up.
const T0: i64 = 1_763_892_000_000;
const MINUTE: i64 = 60_000;
/// A patch sends these every minute.
const VITALS: [(Metric, f64); 4] = [
    (Metric::HeartRate, 72.0),
    (Metric::Spo2, 97.0),
    (Metric::RespRate, 16.0),
    (Metric::Temperature, 36.8),
];
/// A cuff and a scale send these twice a day.
const HOME: [(Metric, f64); 3] = [
    (Metric::SystolicBp, 128.0),
    (Metric::DiastolicBp, 80.0),
    (Metric::Weight, 81.0),
];
/// Minutes between two home measurements of one patient.
const HOME_EVERY: usize = 720;

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
        RuleSpec {
            days: Some(30),
            min_days: Some(16),
            ..spec("weight_adherence", "adherence", "weight")
        },
    ]
}

fn engine(patient_count: usize) -> Engine {
    let mut rules = builtin_rules();
    rules.extend(
        extra_rules()
            .iter()
            .map(|s| s.validate().expect("valid bench rule")),
    );
    // `VIGIL_BENCH_WITHOUT=trend,adherence` leaves kinds out, to see what each costs.
    let without = std::env::var("VIGIL_BENCH_WITHOUT").unwrap_or_default();
    rules.retain(|r| !without.split(',').any(|k| k == r.kind_name()));
    let patients = (0..patient_count)
        .map(|i| {
            let mut p = PatientProfile::open(&format!("p-{i:06}"));
            p.conditions = vec![
                "heart_failure".into(),
                "hypertension".into(),
                "respiratory".into(),
            ];
            p
        })
        .collect();
    Engine::new(
        EngineConfig {
            rules,
            patients,
            open_enrollment: false,
            escalation: Default::default(),
        },
        Arc::new(AlertLog::default()),
    )
}

/// Patient `p`'s readings of minute `round` (counted from the end of the warm-up): four
/// vitals, and every twelve hours blood pressure and weight.
fn payload<'a>(ids: &'a [String], p: usize, round: usize, out: &mut Vec<Reading<'a>>) {
    out.clear();
    let ts = T0 + round as i64 * MINUTE + (p % 60_000) as i64;
    // Tenths from -0.3 to +0.3, and the values as a device sends them: a decimal read
    // into the nearest double (the sum of two doubles often is not one).
    let tenths = ((p + round) % 7) as f64 - 3.0;
    let home = (p + round) % HOME_EVERY == 0;
    let metrics = VITALS.iter().chain(HOME.iter().filter(|_| home));
    out.extend(metrics.map(|&(metric, base)| Reading {
        patient_id: &ids[p],
        metric,
        value: (base * 10.0 + tenths) / 10.0,
        ts_ms: ts,
        device_id: None,
        seq: None,
    }));
}

/// Minute `round`'s readings appended to `out`, patient after patient, one metric at a
/// time: consecutive readings belong to different patients.
fn interleaved<'a>(
    ids: &'a [String],
    round: usize,
    scratch: &mut Vec<Reading<'a>>,
    out: &mut Vec<Reading<'a>>,
) {
    for (slot, _) in VITALS.iter().enumerate() {
        for p in 0..ids.len() {
            payload(ids, p, round, scratch);
            if let Some(r) = scratch.get(slot) {
                out.push(*r);
            }
        }
    }
    for p in (0..ids.len()).filter(|p| (p + round) % HOME_EVERY == 0) {
        payload(ids, p, round, scratch);
        out.extend(scratch.iter().skip(VITALS.len()).copied());
    }
}

/// The interleaved readings round after round, handed out in runs of which only the
/// processing is timed: building a round's readings is not rule evaluation.
struct Interleaved<'a> {
    ids: &'a [String],
    /// The round the queue holds.
    round: usize,
    queue: Vec<Reading<'a>>,
    /// The next reading of the queue to process.
    at: usize,
    scratch: Vec<Reading<'a>>,
}

impl<'a> Interleaved<'a> {
    fn new(ids: &'a [String], round: usize) -> Interleaved<'a> {
        let (mut queue, mut scratch) = (Vec::new(), Vec::new());
        interleaved(ids, round, &mut scratch, &mut queue);
        Interleaved {
            ids,
            round,
            queue,
            at: 0,
            scratch,
        }
    }

    /// The time `process(queue, i)` takes for the next `iters` readings (reading `i` of
    /// `queue`; it may look at the readings after it).
    fn timed(&mut self, iters: u64, mut process: impl FnMut(&[Reading<'a>], usize)) -> Duration {
        let mut spent = Duration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            if self.at == self.queue.len() {
                self.round += 1;
                self.queue.clear();
                interleaved(self.ids, self.round, &mut self.scratch, &mut self.queue);
                self.at = 0;
            }
            let end = self.queue.len().min(self.at + left);
            let start = Instant::now();
            for i in self.at..end {
                process(&self.queue, i);
            }
            spent += start.elapsed();
            left -= end - self.at;
            self.at = end;
        }
        spent
    }
}

fn rules(c: &mut Criterion) {
    let patient_count = patients();
    let ids: Vec<String> = (0..patient_count).map(|i| format!("p-{i:06}")).collect();
    let engine = engine(patient_count);
    let mut readings = Vec::new();
    // Warm up to the steady state: seven days of home measurements, then an hour of vitals,
    // so every window holds what its rules need (vitals: 1 h at 1/min; blood pressure: 7 d
    // at 2/day; weight: 3 d) and trims as much as it grows.
    for id in &ids {
        for day_half in 0..14 {
            for &(metric, base) in &HOME {
                let r = Reading {
                    patient_id: id,
                    metric,
                    value: base,
                    ts_ms: T0 - (14 - day_half) * 12 * 60 * MINUTE,
                    device_id: None,
                    seq: None,
                };
                engine.process(&r, T0).expect("enrolled");
            }
        }
    }
    for round in 0..60 {
        for p in 0..patient_count {
            payload(&ids, p, round, &mut readings);
            for r in readings.iter().take(VITALS.len()) {
                engine
                    .process(
                        &Reading {
                            ts_ms: r.ts_ms - 60 * MINUTE,
                            ..*r
                        },
                        T0,
                    )
                    .expect("enrolled");
            }
        }
    }
    // Admitted in order, the patients' states lie in memory in the order the rounds visit
    // them, which the hardware's prefetchers follow; `VIGIL_BENCH_SHUFFLE=1` visits them
    // in a fixed shuffled order instead, as readings from many gateways would come.
    let mut ids = ids.clone();
    if std::env::var_os("VIGIL_BENCH_SHUFFLE").is_some_and(|v| v == "1") {
        // Seeded: the same order in every run, so runs compare.
        fastrand::Rng::with_seed(30).shuffle(&mut ids);
    }
    let ids = ids;
    let mut group = c.benchmark_group("rules");
    // Worst case for caches: each reading belongs to a different patient than the one
    // before (one lookup and lock per reading).
    let mut plain = Interleaved::new(&ids, 0);
    group.throughput(Throughput::Elements(1));
    group.bench_function("all_kinds_100k_patients", |b| {
        b.iter_custom(|iters| {
            plain.timed(iters, |queue, i| {
                std::hint::black_box(
                    engine
                        .process(&queue[i], T0)
                        .expect("enrolled")
                        .raised_total(),
                );
            })
        })
    });
    // As the server handles an MQTT payload: the patient is looked up and locked once for
    // the readings it carries. Throughput is per reading (4 per payload, 7 twice a day).
    let mut round = plain.round + 1;
    let mut p = 0usize;
    let per_payload = (VITALS.len() * HOME_EVERY + HOME.len()) as f64 / HOME_EVERY as f64;
    group.throughput(Throughput::Elements(1));
    group.bench_function("all_kinds_100k_patients_payload_batch", |b| {
        b.iter_custom(|iters| {
            // Whole payloads, as many as make `iters` readings on average.
            let payloads = (iters as f64 / per_payload).ceil() as u64;
            let mut processed = 0usize;
            let start = Instant::now();
            for _ in 0..payloads {
                payload(&ids, p, round, &mut readings);
                processed += readings.len();
                let mut patient = engine.lock_patient(&ids[p]).expect("enrolled");
                patient.prefetch(readings.iter().map(|r| r.metric));
                for r in &readings {
                    std::hint::black_box(patient.process(r, T0));
                }
                std::hint::black_box(patient.finish());
                p += 1;
                if p == patient_count {
                    (p, round) = (0, round + 1);
                }
            }
            // Scaled to `iters` readings.
            start.elapsed().mul_f64(iters as f64 / processed as f64)
        })
    });
    // The interleaved sequence again, as the server handles a gateway's batch: the map
    // slot, the state and the window of patients a few places ahead are prefetched
    // (`LookAhead`) while this one is processed.
    let mut pipelined = Interleaved::new(&ids, round + 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("all_kinds_100k_patients_pipelined", |b| {
        b.iter_custom(|iters| {
            let mut look = LookAhead::new();
            let rules = engine.rules();
            pipelined.timed(iters, |queue, i| {
                if i == 0 {
                    // A new round: a new sequence of places.
                    look = LookAhead::new();
                }
                look.ahead_of(&engine, i, |place| {
                    queue.get(place).map(|r| (r.patient_id, Some(r.metric)))
                });
                let r = &queue[i];
                let mut patient = look
                    .lock(&engine, i, r.patient_id, &rules)
                    .expect("enrolled");
                let mut outcome = patient.process(r, T0);
                outcome.add(patient.finish());
                std::hint::black_box(outcome.raised_total());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
