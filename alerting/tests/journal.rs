//! The journal through the public API: what an engine wrote is what a restart restores
//! (events, seq, open alerts with their states, run-time rule and patient changes), the
//! format version is checked, and compaction keeps open alerts.

use std::path::Path;
use std::sync::Arc;

use vigil_alerting::{
    AlertFilter, AlertLog, AlertState, Engine, EngineConfig, EventKind, Journal, JournalError,
    PatientProfile, Progress, Recovered, RuleSetVersion, RuleSpec, StoredWindows, WindowWrite,
};
use vigil_ingest::{Metric, Reading};

const T0: i64 = 1_763_892_000_000;

fn hr_high() -> RuleSpec {
    RuleSpec {
        id: "hr_high".into(),
        metric: Some("heart_rate".into()),
        above: Some(120.0),
        ..Default::default()
    }
}

/// An engine over the journal in `dir`, as `vigil serve` builds it.
fn start(dir: &Path) -> (Engine, Arc<Journal>, Recovered) {
    let journal = Arc::new(Journal::open(dir).unwrap());
    let recovered = journal.recover().unwrap();
    let log = AlertLog::restored(
        1000,
        16,
        recovered.events.clone(),
        recovered.last_seq,
        journal.clone(),
    );
    let engine = Engine::new(
        EngineConfig::open(vec![hr_high().validate().unwrap()]),
        Arc::new(log),
    );
    engine.restore_open_alerts(recovered.open_alerts.clone());
    (engine, journal, recovered)
}

fn hr(e: &Engine, patient: &str, ts: i64, v: f64) {
    let r = Reading {
        patient_id: patient,
        metric: Metric::HeartRate,
        value: v,
        ts_ms: ts,
        device_id: None,
        seq: None,
    };
    e.process(&r, ts).unwrap();
}

#[test]
fn a_restart_restores_events_seq_and_open_alerts() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let before = {
        let (e, journal, _) = start(&dir);
        for (i, p) in ["a", "b", "c"].iter().enumerate() {
            hr(&e, p, T0 + i as i64, 130.0);
        }
        let active = e.list_active(&AlertFilter::default());
        let id = |p: &str| {
            active
                .iter()
                .find(|a| &*a.patient_id == p)
                .unwrap()
                .id
                .clone()
        };
        e.acknowledge(&id("a"), "nurse-1", "calling", None, T0 + 10)
            .unwrap();
        e.resolve(&id("b"), "nurse-1", "false alarm", None, T0 + 11)
            .unwrap();
        let version = RuleSetVersion {
            number: 7,
            hash: "ab".repeat(32).into(),
            ..RuleSetVersion::default()
        };
        journal.put_rule(&hr_high(), &version).unwrap();
        let mut patient = PatientProfile::open("d");
        patient.care_team = "cardio".into();
        journal.put_patient(&patient).unwrap();
        journal.remove_patient("e").unwrap();
        e.subscribe(AlertFilter::default(), Some(0)).replay
    };
    assert_eq!(before.len(), 5, "3 raised, 1 acknowledged, 1 resolved");

    let (e, journal, recovered) = start(&dir);
    let replay = e.subscribe(AlertFilter::default(), Some(0)).replay;
    assert_eq!(replay, before, "the same seqs, kinds and alerts");
    assert_eq!(recovered.last_seq, 5);
    let mut open: Vec<(String, AlertState)> = e
        .list_active(&AlertFilter::default())
        .iter()
        .map(|a| (a.patient_id.to_string(), a.state))
        .collect();
    open.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        open,
        vec![
            ("a".to_string(), AlertState::Acknowledged),
            ("c".to_string(), AlertState::Active)
        ]
    );
    assert_eq!(
        recovered.rules,
        vec![("hr_high".to_string(), Some(hr_high()))]
    );
    assert_eq!(
        recovered.rules_version.map(|v| v.number),
        Some(7),
        "the version a rule change made is written with it"
    );
    assert_eq!(recovered.patients.len(), 2);
    assert!(recovered
        .patients
        .iter()
        .any(|(id, p)| id == "d" && p.as_ref().is_some_and(|p| &*p.care_team == "cardio")));
    assert!(recovered
        .patients
        .iter()
        .any(|(id, p)| id == "e" && p.is_none()));

    // The still-open alert is known to the engine: the condition does not raise again,
    // and it clears as before; numbering continues.
    hr(&e, "c", T0 + 100, 135.0);
    assert_eq!(e.list_active(&AlertFilter::default()).len(), 2);
    hr(&e, "c", T0 + 101, 80.0);
    // Events reach subscribers once the journal's writer has made them durable.
    e.log().flush();
    let after = e.subscribe(AlertFilter::default(), Some(5)).replay;
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].seq, after[0].kind), (6, EventKind::Resolved));
    let id = after[0].alert.id.clone();
    let history: Vec<EventKind> = journal
        .alert_history(&id)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(history, vec![EventKind::Raised, EventKind::Resolved]);
}

#[test]
fn compaction_drops_old_events_but_never_an_open_alert() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    {
        let (e, journal, _) = start(&dir);
        hr(&e, "old-open", T0, 130.0);
        hr(&e, "old-closed", T0, 130.0);
        hr(&e, "old-closed", T0 + 1, 80.0);
        hr(&e, "new", T0 + 10_000, 130.0);
        e.log().flush();
        assert_eq!(journal.event_count(), 4);
        assert_eq!(journal.compact(T0 + 5_000).unwrap(), 3);
        assert_eq!(journal.event_count(), 1);
    }
    let (e, journal, recovered) = start(&dir);
    assert_eq!(recovered.events.len(), 1);
    assert_eq!(recovered.last_seq, 4, "numbering never goes back");
    let mut open: Vec<String> = e
        .list_active(&AlertFilter::default())
        .iter()
        .map(|a| a.patient_id.to_string())
        .collect();
    open.sort();
    assert_eq!(open, vec!["new", "old-open"]);
    assert!(journal.disk_bytes() > 0);
}

#[test]
fn a_journal_from_a_newer_version_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    {
        let db = fjall::Database::builder(&dir).open().unwrap();
        let meta = db
            .keyspace("meta", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        meta.insert("format_version", 99u32.to_be_bytes()).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    match Journal::open(&dir) {
        Err(e @ JournalError::NewerFormat { found: 99 }) => {
            assert!(e.to_string().contains("newer Vigil"), "{e}")
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a newer journal was opened"),
    }
}

#[test]
fn a_clean_close_is_marked_and_recovery_leaves_no_copies_behind() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    {
        let (e, journal, _) = start(&dir);
        hr(&e, "a", T0, 130.0);
        journal.mark_clean().unwrap();
    }
    assert!(root.path().join("journal.clean").exists());
    {
        let (_, journal, recovered) = start(&dir);
        assert_eq!(recovered.events.len(), 1);
        assert!(journal.set_aside().is_empty());
        assert!(
            !root.path().join("journal.clean").exists(),
            "the marker is consumed, so a later crash is not taken for a clean stop"
        );
    }
    // Not marked this time: the logs are copied aside for the recovery, then removed.
    let (_, journal, recovered) = start(&dir);
    assert_eq!(recovered.events.len(), 1);
    assert!(journal.set_aside().is_empty(), "nothing was torn");
    let leftovers: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "journal" && n != "journal.windows")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn stored_snapshots(journal: &Journal) -> Vec<StoredWindows> {
    journal.snapshots().map(Result::unwrap).collect()
}

fn whole(patient: &str, bytes: &[u8]) -> WindowWrite {
    WindowWrite::Whole {
        patient: patient.into(),
        bytes: bytes.to_vec(),
    }
}

fn delta(patient: &str, index: u32, bytes: &[u8]) -> WindowWrite {
    WindowWrite::Delta {
        patient: patient.into(),
        index,
        bytes: bytes.to_vec(),
    }
}

fn stored(patient: &str, whole: &[u8], deltas: &[&[u8]]) -> StoredWindows {
    StoredWindows {
        patient: patient.into(),
        whole: whole.into(),
        deltas: deltas.iter().map(|&d| d.into()).collect(),
    }
}

#[test]
fn window_snapshots_have_a_store_of_their_own_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        let journal = Journal::open(&path).unwrap();
        journal
            .put_snapshots(&[whole("p1", &[1, 2]), whole("p2", &[3])])
            .unwrap();
        journal.remove_snapshots(&["p2".into()]).unwrap();
    }
    assert!(
        dir.path().join("journal.windows").is_dir(),
        "snapshots are stored beside the journal, not in it"
    );
    let journal = Journal::open(&path).unwrap();
    assert_eq!(stored_snapshots(&journal), vec![stored("p1", &[1, 2], &[])]);
}

#[test]
fn window_deltas_are_read_in_order_with_their_whole_snapshot_and_go_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        let journal = Journal::open(&path).unwrap();
        // "p1" is a prefix of "p10": each must get its own deltas only.
        journal
            .put_snapshots(&[whole("p1", &[1]), whole("p10", &[10]), whole("p2", &[2])])
            .unwrap();
        // Numbered past 255, so that byte order and number order must agree.
        let late = delta("p1", 256, &[13]);
        journal
            .put_snapshots(&[delta("p10", 0, &[100]), late, delta("p2", 0, &[20])])
            .unwrap();
        journal
            .put_snapshots(&[delta("p1", 0, &[11]), delta("p1", 1, &[12])])
            .unwrap();
        // Deltas without a whole snapshot, before, between and after the others: the
        // keyspaces are read side by side, and these must neither show nor shift them.
        journal
            .put_snapshots(&[
                delta("p0", 0, &[0]),
                delta("p15", 0, &[15]),
                delta("p3", 0, &[3]),
            ])
            .unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    assert_eq!(
        stored_snapshots(&journal),
        vec![
            stored("p1", &[1], &[&[11], &[12], &[13]]),
            stored("p10", &[10], &[&[100]]),
            stored("p2", &[2], &[&[20]]),
        ]
    );
    // A whole snapshot replaces the deltas; removing a patient removes both.
    journal.put_snapshots(&[whole("p1", &[9])]).unwrap();
    journal.remove_snapshots(&["p2".into()]).unwrap();
    drop(journal);
    let journal = Journal::open(&path).unwrap();
    assert_eq!(
        stored_snapshots(&journal),
        vec![stored("p1", &[9], &[]), stored("p10", &[10], &[&[100]])]
    );
}

#[test]
fn window_snapshots_an_older_vigil_kept_in_the_journal_are_adopted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        // The layout before snapshots had their own store: a `windows` keyspace.
        let db = fjall::Database::builder(&path).open().unwrap();
        let windows = db
            .keyspace("windows", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        windows.insert("p1", [7u8, 8]).unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    {
        let journal = Journal::open(&path).unwrap();
        assert_eq!(stored_snapshots(&journal), vec![stored("p1", &[7, 8], &[])]);
        journal.remove_snapshots(&["p1".into()]).unwrap();
    }
    // Deleted after adoption, it stays deleted: the old keyspace is gone.
    let journal = Journal::open(&path).unwrap();
    assert!(stored_snapshots(&journal).is_empty());
    drop(journal);
    let db = fjall::Database::builder(&path).open().unwrap();
    assert!(!db.keyspace_exists("windows"));
}

#[test]
fn a_consumers_position_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    {
        let journal = Journal::open(&path).unwrap();
        assert_eq!(journal.position("reminders").unwrap(), None);
        journal.put_position("reminders", 41).unwrap();
        journal.put_position("reminders", 42).unwrap();
        journal.put_position("webhook-oncall", 7).unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.position("reminders").unwrap(), Some(42));
    assert_eq!(journal.position("webhook-oncall").unwrap(), Some(7));
}

#[test]
fn progress_ahead_of_turn_survives_a_reopen_and_reads_as_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let ahead = Progress {
        through: 10,
        also: vec![12, 15],
    };
    {
        let journal = Journal::open(&path).unwrap();
        journal.put_position("notifier:a", 9).unwrap();
        journal.put_progress("notifier:b", &ahead).unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.progress("notifier:b").unwrap(), Some(ahead));
    assert_eq!(journal.position("notifier:b").unwrap(), Some(10));
    let plain = journal.progress("notifier:a").unwrap().unwrap();
    assert_eq!((plain.through, plain.also.len()), (9, 0));
}

#[test]
fn review_marks_survive_a_reopen_and_the_newest_replaces_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal");
    let mark = |until_ms, note: &str| vigil_alerting::Review {
        patient_id: "p1".into(),
        at_ms: 1,
        until_ms,
        by: "nurse".into(),
        note: note.into(),
    };
    {
        let journal = Journal::open(&path).unwrap();
        assert!(journal.reviews().unwrap().is_empty());
        journal.put_review(&mark(10, "first")).unwrap();
        journal.put_review(&mark(20, "second")).unwrap();
    }
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.reviews().unwrap(), vec![mark(20, "second")]);
}
