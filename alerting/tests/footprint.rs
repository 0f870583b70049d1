//! What the engine holds per patient and per sample, counted by a global allocator that
//! tracks live bytes requested (allocator overhead excluded: `vigil-bench scale` measures
//! the resident set).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use vigil_alerting::{builtin_rules, AlertLog, Engine, EngineConfig, PatientProfile};
use vigil_ingest::{Metric, Reading};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
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
        EngineConfig {
            rules: builtin_rules(),
            patients: Vec::new(),
            open_enrollment: true,
            escalation: Default::default(),
        },
        Arc::new(AlertLog::default()),
    );
    let ids: Vec<String> = (0..PATIENTS).map(|i| format!("patient-{i:06}")).collect();
    let first = |engine: &Engine| {
        for id in &ids {
            for &(metric, value) in &HOME {
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
    // Profiles are admitted as the open-enrolment default: compare like with like.
    let _ = PatientProfile::open("warm");
    let before = LIVE.load(Ordering::Relaxed);
    first(&engine);
    let per_patient = (LIVE.load(Ordering::Relaxed) - before) as f64 / PATIENTS as f64;
    eprintln!("per patient, first reading of 7 metrics: {per_patient:.0} B");
    // The figure as it stands, with a little room: it may only go down.
    assert!(
        per_patient < 3_000.0,
        "a patient with one reading of seven metrics holds {per_patient:.0} bytes"
    );
}
