//! What durability costs per alert event: one journal append (event, open-alert state and
//! last seq in one batch) followed by an fsync, on the machine's real disk.
//! Run: `cargo bench -p vigil-bench --bench journal`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use vigil_alerting::{Alert, AlertEvent, AlertState, EventKind, Journal, Severity};

fn event(seq: u64) -> AlertEvent {
    AlertEvent {
        seq,
        kind: EventKind::Raised,
        alert: Alert {
            id: format!("0193a1c2-0000-7000-8000-{seq:012}").into(),
            patient_id: "p-000042".into(),
            rule_id: "hr_high".into(),
            severity: Severity::High,
            metric: "heart_rate",
            unit: "/min",
            value: 142.0,
            message: "heart rate 142 /min above 130".into(),
            patient_message: None,
            state: AlertState::Active,
            care_team: Arc::from("cardiology"),
            observed_at_ms: 1_763_892_000_000,
            raised_at_ms: 1_763_892_000_010,
            acknowledged: None,
            resolved: None,
            escalation_level: 0,
            escalated_to: Vec::new(),
            active_since_ms: 1_763_892_000_010,
            snoozed_until_ms: 0,
            silenced_by: None,
            disposition: None,
            assignee: None,
            parameters: None,
            rule_set_version: 0,
            rule_set_hash: None,
        },
        at_ms: 1_763_892_000_010,
        by: String::new(),
        note: String::new(),
    }
}

fn journal(c: &mut Criterion) {
    // In the target directory, so it is on the same disk as a data directory would be.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let journal = Journal::open(dir.path()).expect("open journal");
    let mut seq = 0;
    c.bench_function("journal/append_event_fsync", |b| {
        b.iter(|| {
            seq += 1;
            journal.append_event(&event(seq)).expect("append")
        })
    });
}

criterion_group!(benches, journal);
criterion_main!(benches);
