//! What the engine holds per patient and per sample, counted by a global allocator that
//! tracks live bytes requested (allocator overhead excluded: `vigil-bench scale` measures
//! the resident set).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use vigil_alerting::{builtin_rules, AlertLog, Engine, EngineConfig};
use vigil_ingest::{Metric, Reading};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Live allocations by size (the last counts every size past it): what a patient's bytes
/// are made of.
const SIZES: usize = 4097;
static BY_SIZE: [AtomicIsize; SIZES] = [const { AtomicIsize::new(0) }; SIZES];

fn count(size: usize, n: isize) {
    LIVE.fetch_add(n * size as isize, Ordering::Relaxed);
    BY_SIZE[size.min(SIZES - 1)].fetch_add(n, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn by_size() -> Vec<isize> {
    BY_SIZE.iter().map(|n| n.load(Ordering::Relaxed)).collect()
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const T0: i64 = 1_763_892_000_000;
const PATIENTS: usize = 2000;
const HOME: [(Metric, f64); 7] = [
    (Metric::HeartRate, 72.0),
    (Metric::Spo2, 97.0),
    (Metric::RespRate, 16.0),
    (Metric::Temperature, 36.8),
    (Metric::SystolicBp, 128.0),
    (Metric::DiastolicBp, 80.0),
    (Metric::Weight, 81.0),
];

#[test]
fn a_home_monitoring_patient_costs_bytes_not_kilobytes() {
    let engine = Engine::new(
        EngineConfig::open(builtin_rules()),
        Arc::new(AlertLog::default()),
    );
    let ids: Vec<String> = (0..PATIENTS).map(|i| format!("patient-{i:06}")).collect();
    let first = |engine: &Engine, ids: &[String], metrics: &[(Metric, f64)]| {
        for id in ids {
            for &(metric, value) in metrics {
                let r = Reading {
                    patient_id: id,
                    metric,
                    value,
                    ts_ms: T0,
                    device_id: None,
                    seq: None,
                };
                engine.process(&r, T0).expect("open enrolment");
            }
        }
    };
    let before = LIVE.load(Ordering::Relaxed);
    let sizes_before = by_size();
    first(&engine, &ids, &HOME);
    let per_patient = (LIVE.load(Ordering::Relaxed) - before) as f64 / PATIENTS as f64;
    eprintln!("per patient, first reading of 7 metrics: {per_patient:.0} B, of which:");
    let mut made_of: Vec<(usize, f64)> = by_size()
        .iter()
        .zip(sizes_before)
        .enumerate()
        .map(|(size, (after, before))| (size, (after - before) as f64 / PATIENTS as f64))
        .filter(|(_, n)| n.abs() >= 0.5)
        .collect();
    made_of.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    for (size, n) in made_of {
        eprintln!("  {n:5.1} x {size:4} B");
    }
    // The figure as it stands, with a little room: it may only go down.
    assert!(
        per_patient < 505.0,
        "a patient with one reading of seven metrics holds {per_patient:.0} bytes"
    );

    // A patient with a scale holds one metric's state, not ten.
    let scale: Vec<String> = (0..PATIENTS).map(|i| format!("scale-{i:06}")).collect();
    let before = LIVE.load(Ordering::Relaxed);
    first(&engine, &scale, &[(Metric::Weight, 81.0)]);
    let per_patient = (LIVE.load(Ordering::Relaxed) - before) as f64 / PATIENTS as f64;
    eprintln!("per patient, first reading of weight alone: {per_patient:.0} B");
    assert!(
        per_patient < 165.0,
        "a patient with one reading of weight holds {per_patient:.0} bytes"
    );
}
