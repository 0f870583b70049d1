//! The engine through its public API: admission, raising once, `for`, hysteresis,
//! acknowledgement and resolution, overrides, and the event stream's replay guarantees.

use std::sync::Arc;

use vigil_alerting::{
    AlertFilter, AlertLog, AlertState, AlertingError, Engine, EngineConfig, EventKind,
    PatientProfile, Rule, RuleOverride, RuleSpec, Severity,
};
use vigil_ingest::{Metric, Reading, RejectReason};

const T0: i64 = 1_763_892_000_000;

fn tachycardia() -> Rule {
    RuleSpec {
        id: "tachycardia".into(),
        metric: Some("heart_rate".into()),
        above: Some(120.0),
        hold_ms: Some(30_000),
        clear: Some(110.0),
        severity: Some("high".into()),
        ..RuleSpec::default()
    }
    .validate()
    .unwrap()
}

fn engine_with(patients: Vec<PatientProfile>, open: bool, log: AlertLog) -> Engine {
    Engine::new(
        EngineConfig {
            rules: vec![tachycardia()],
            patients,
            open_enrollment: open,
            escalation: Default::default(),
        },
        Arc::new(log),
    )
}

fn engine() -> Engine {
    engine_with(vec![], true, AlertLog::default())
}

fn hr(patient: &str, ts_ms: i64, value: f64) -> Reading<'_> {
    Reading {
        patient_id: patient,
        metric: Metric::HeartRate,
        value,
        ts_ms,
        device_id: None,
        seq: None,
    }
}

fn feed(e: &Engine, patient: &str, series: &[(i64, f64)]) -> u32 {
    series
        .iter()
        .map(|&(s, v)| {
            e.process(&hr(patient, T0 + s * 1000, v), T0 + s * 1000)
                .unwrap()
                .raised_total()
        })
        .sum()
}

#[test]
fn persisting_condition_raises_once_then_clears_with_hysteresis() {
    let e = engine();
    assert_eq!(
        feed(&e, "p1", &[(0, 130.0), (10, 131.0), (20, 135.0)]),
        0,
        "not held 30 s yet"
    );
    assert_eq!(
        feed(&e, "p1", &[(30, 133.0), (40, 140.0), (50, 150.0)]),
        1,
        "raised exactly once"
    );
    let active = e.list_active(&AlertFilter::default());
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].value, 133.0,
        "value is the reading that raised it"
    );
    assert_eq!(active[0].observed_at_ms, T0 + 30_000);
    assert_eq!(&*active[0].care_team, "default");
    // 115 is below 120 but not back past clear = 110.
    assert_eq!(
        e.process(&hr("p1", T0 + 60_000, 115.0), T0)
            .unwrap()
            .resolved,
        0
    );
    assert_eq!(
        e.process(&hr("p1", T0 + 70_000, 109.0), T0)
            .unwrap()
            .resolved,
        1
    );
    assert!(e.list_active(&AlertFilter::default()).is_empty());
}

#[test]
fn acknowledge_and_resolve_transitions() {
    let e = engine();
    feed(&e, "p1", &[(0, 130.0), (30, 130.0)]);
    let id = e.list_active(&AlertFilter::default())[0].id.to_string();
    let acked = e
        .acknowledge(
            &id,
            "nurse.kim",
            "calling patient",
            Some("contacted_patient"),
            T0,
        )
        .unwrap();
    assert_eq!(acked.state, AlertState::Acknowledged);
    assert_eq!(acked.disposition.as_deref(), Some("contacted_patient"));
    assert!(matches!(
        e.acknowledge(&id, "x", "", None, T0),
        Err(AlertingError::IllegalTransition { .. })
    ));
    let resolved = e
        .resolve(&id, "nurse.kim", "ok", Some("medication_changed"), T0)
        .unwrap();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.disposition.as_deref(), Some("medication_changed"));
    assert!(matches!(
        e.resolve(&id, "x", "", None, T0),
        Err(AlertingError::IllegalTransition { .. })
    ));
    assert!(matches!(
        e.acknowledge("nope", "x", "", None, T0),
        Err(AlertingError::AlertNotFound(_))
    ));
    // Still high after a manual resolve: the next reading raises a fresh alert.
    assert_eq!(feed(&e, "p1", &[(40, 131.0)]), 1);
}

#[test]
fn claim_assign_and_handover_name_who_answers_for_an_alert() {
    let e = engine();
    feed(&e, "p1", &[(0, 130.0), (30, 130.0)]);
    feed(&e, "p2", &[(0, 130.0), (30, 130.0)]);
    let open = e.list_active(&AlertFilter::default());
    assert!(open.iter().all(|a| a.assignee.is_none()));
    let (a, b) = (open[0].id.to_string(), open[1].id.to_string());
    let claimed = e
        .assign(&a, Some("nurse.kim"), "nurse.kim", "", T0)
        .unwrap();
    assert_eq!(claimed.assignee.as_deref(), Some("nurse.kim"));
    e.assign(&b, Some("nurse.kim"), "charge.lee", "", T0)
        .unwrap();
    let moved = e.handover(
        &AlertFilter::default(),
        "nurse.kim",
        "nurse.ode",
        "nurse.kim",
        "night shift",
        T0,
    );
    assert_eq!(moved.len(), 2);
    assert!(e
        .list_active(&AlertFilter::default())
        .iter()
        .all(|x| x.assignee.as_deref() == Some("nurse.ode")));
    let released = e.assign(&a, None, "nurse.ode", "", T0).unwrap();
    assert_eq!(released.assignee, None);
    assert!(matches!(
        e.assign("nope", Some("x"), "x", "", T0),
        Err(AlertingError::AlertNotFound(_))
    ));
}

#[test]
fn enrolment_consent_and_overrides() {
    let mut calm = PatientProfile::open("calm");
    calm.care_team = "cardiology".into();
    calm.overrides.push((
        "tachycardia".into(),
        RuleOverride {
            above: Some(140.0),
            ..Default::default()
        },
    ));
    let mut withdrawn = PatientProfile::open("withdrawn");
    withdrawn.consent = false;
    let e = engine_with(vec![calm, withdrawn], false, AlertLog::default());
    assert_eq!(
        e.process(&hr("stranger", T0, 80.0), T0).unwrap_err().reason,
        RejectReason::NotEnrolled
    );
    assert_eq!(
        e.process(&hr("withdrawn", T0, 80.0), T0)
            .unwrap_err()
            .reason,
        RejectReason::NoConsent
    );
    assert_eq!(
        feed(&e, "calm", &[(0, 135.0), (30, 135.0)]),
        0,
        "override raises the level to 140"
    );
    assert_eq!(feed(&e, "calm", &[(40, 141.0), (70, 142.0)]), 1);
    assert_eq!(
        &*e.list_active(&AlertFilter::default())[0].care_team,
        "cardiology"
    );
}

#[test]
fn replay_then_live_has_no_gap_and_no_duplicate() {
    let e = engine();
    for p in 0..5 {
        feed(
            &e,
            &format!("p{p}"),
            &[(0, 130.0), (30, 130.0), (40, 100.0)],
        );
    }
    let all = e.subscribe(AlertFilter::default(), Some(0));
    let seqs: Vec<u64> = all.replay.iter().map(|ev| ev.seq).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    let mut mid = e.subscribe(AlertFilter::default(), Some(4));
    assert_eq!(mid.replay.first().map(|ev| ev.seq), Some(5));
    feed(&e, "p9", &[(0, 130.0), (30, 130.0)]);
    let live = mid.live.try_recv().unwrap();
    assert_eq!(live.seq, 11);
    assert_eq!(live.kind, EventKind::Raised);
    assert!(mid.live.try_recv().is_err());
    // A live-only subscriber sees nothing of the past.
    let mut fresh = e.subscribe(AlertFilter::default(), None);
    assert!(fresh.replay.is_empty() && fresh.live.try_recv().is_err());
}

#[test]
fn filters_by_team_patient_and_severity() {
    let e = engine();
    feed(&e, "p1", &[(0, 130.0), (30, 130.0)]);
    let team = AlertFilter {
        care_teams: vec!["cardiology".into()],
        ..Default::default()
    };
    assert!(e.subscribe(team, Some(0)).replay.is_empty());
    let mine = AlertFilter {
        patient_ids: vec!["p1".into()],
        min_severity: Some(Severity::High),
        ..Default::default()
    };
    assert_eq!(e.subscribe(mine, Some(0)).replay.len(), 1);
    let other = AlertFilter {
        patient_ids: vec!["p2".into()],
        ..Default::default()
    };
    assert!(e.list_active(&other).is_empty());
}

#[test]
fn a_slow_subscriber_is_cut_off_without_slowing_others() {
    let e = engine_with(vec![], true, AlertLog::new(1000, 2, 1));
    let slow = e.subscribe(AlertFilter::default(), None);
    let mut fast = e.subscribe(AlertFilter::default(), None);
    let mut got = 0;
    for p in 0..4 {
        feed(&e, &format!("p{p}"), &[(0, 130.0), (30, 130.0)]);
        while fast.live.try_recv().is_ok() {
            got += 1;
        }
    }
    assert_eq!(got, 4);
    assert!(slow.overflowed());
    assert!(!fast.overflowed());
    assert_eq!(e.log().stats().overflowed_subscribers, 1);
}

#[test]
fn retention_is_bounded_and_counted() {
    let e = engine_with(vec![], true, AlertLog::new(3, 16, 1));
    for p in 0..3 {
        feed(&e, &format!("p{p}"), &[(0, 130.0), (30, 130.0)]);
    }
    let stats = e.log().stats();
    assert_eq!((stats.retained, stats.dropped, stats.last_seq), (3, 0, 3));
    feed(&e, "p4", &[(0, 130.0), (30, 130.0)]);
    let stats = e.log().stats();
    assert_eq!((stats.retained, stats.dropped, stats.last_seq), (3, 1, 4));
    assert_eq!(
        e.subscribe(AlertFilter::default(), Some(0)).oldest_retained,
        Some(2)
    );
}

#[test]
fn duplicate_check_runs_only_for_admitted_patients() {
    let e = engine_with(
        vec![PatientProfile::open("known")],
        false,
        AlertLog::default(),
    );
    let mut asked = 0;
    let r = e.process_if(&hr("stranger", T0, 70.0), T0, |_| {
        asked += 1;
        true
    });
    assert_eq!(r.unwrap_err().reason, RejectReason::NotEnrolled);
    assert_eq!(
        asked, 0,
        "no duplicate state is kept for patients who are not admitted"
    );
    let dup = e.process_if(&hr("known", T0, 70.0), T0, |_| false);
    assert_eq!(dup.unwrap_err().reason, RejectReason::Duplicate);
}

#[test]
fn patient_views_show_samples_levels_with_overrides_and_summaries() {
    let mut profile = PatientProfile::open("p1");
    profile.care_team = "cardiology".into();
    profile.overrides = vec![(
        "tachycardia".into(),
        RuleOverride {
            above: Some(140.0),
            ..RuleOverride::default()
        },
    )];
    let other = PatientProfile {
        care_team: "renal".into(),
        ..PatientProfile::open("p2")
    };
    let e = engine_with(vec![profile, other], false, AlertLog::default());
    assert!(e.patient_view("p1", 10, 0).unwrap().series.is_empty());
    feed(&e, "p1", &[(0, 70.0), (10, 72.0), (20, 75.0)]);
    let view = e.patient_view("p1", 2, 0).unwrap();
    assert_eq!(view.series.len(), 1);
    let hr = &view.series[0];
    assert_eq!(hr.metric, Metric::HeartRate);
    // The newest two, oldest first.
    let values: Vec<f64> = hr.samples.iter().map(|s| s.value).collect();
    assert!(values.ends_with(&[75.0]), "{values:?}");
    assert!(hr.samples.len() <= 2);
    assert_eq!(hr.lines.len(), 1);
    assert_eq!(&*hr.lines[0].rule_id, "tachycardia");
    assert_eq!(
        hr.lines[0].level, 140.0,
        "the patient's override, not the rule's 120"
    );
    assert_eq!(view.last_reading_ms, Some(T0 + 20_000));
    assert!(e.patient_view("nobody", 10, 0).is_none());
    let cardiology = e.patient_summaries(|p| &*p.care_team == "cardiology");
    assert_eq!(cardiology.len(), 1);
    assert_eq!(&*cardiology[0].profile.id, "p1");
    assert_eq!(cardiology[0].last_reading_ms, Some(T0 + 20_000));
    assert_eq!(e.patient_summaries(|_| true).len(), 2);
}

#[test]
fn windows_keep_the_history_asked_for_charts() {
    let e = engine();
    // An hour of one reading a minute: tachycardia needs 30 s of it.
    let minutes: Vec<(i64, f64)> = (0..60).map(|m| (m * 60, 70.0)).collect();
    feed(&e, "p1", &minutes);
    let kept = e.patient_view("p1", 10_000, 0).unwrap().series[0]
        .samples
        .len();
    assert!(kept < 10, "only what the rules need: {kept}");
    let e = engine();
    e.keep_history(3_600_000);
    assert_eq!(e.min_history_ms(), 3_600_000);
    feed(&e, "p1", &minutes);
    let kept = e.patient_view("p1", 10_000, 0).unwrap().series[0]
        .samples
        .len();
    assert_eq!(kept, 60, "the whole hour");
    assert_eq!(
        e.patient_view("p1", 10, 0).unwrap().series[0].samples.len(),
        10
    );
}

/// Two engines judging the same readings (a cluster partition's former and new owner) name
/// the episode alike; the new one takes the alert as the stream has it (acknowledged) and
/// resolves it once when the condition clears, without raising it again.
#[test]
fn an_engine_taking_over_names_episodes_alike_and_adopts_their_state() {
    let series = [(0, 130.0), (40, 131.0)];
    let (old, new) = (engine(), engine());
    for e in [&old, &new] {
        e.derive_alert_ids();
        assert_eq!(feed(e, "p1", &series), 1);
    }
    let raised = old.list_active(&AlertFilter::default());
    assert_eq!(raised.len(), 1);
    assert_eq!(new.list_active(&AlertFilter::default())[0].id, raised[0].id);
    // A third engine on other readings: another episode, another id.
    let other = engine();
    other.derive_alert_ids();
    feed(&other, "p1", &[(0, 130.0), (41, 131.0)]);
    assert_ne!(
        other.list_active(&AlertFilter::default())[0].id,
        raised[0].id
    );

    let acked = old
        .acknowledge(&raised[0].id, "nurse-1", "", None, T0 + 50_000)
        .unwrap();
    new.adopt_alerts(vec![acked.clone()]);
    let adopted = new.list_active(&AlertFilter::default());
    assert_eq!(adopted.len(), 1);
    assert_eq!(adopted[0].state, AlertState::Acknowledged);
    // The condition clears: resolved once, not raised again.
    let mut events = new.subscribe(AlertFilter::default(), None);
    feed(&new, "p1", &[(60, 90.0), (61, 135.0)]);
    let kinds: Vec<EventKind> = std::iter::from_fn(|| events.live.try_recv().ok())
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![EventKind::Resolved]);

    // An alert resolved elsewhere leaves the book, and frees its rule.
    let raised_again = engine();
    raised_again.derive_alert_ids();
    feed(&raised_again, "p2", &series);
    let mut gone = raised_again.list_active(&AlertFilter::default()).remove(0);
    gone.resolved = Some(vigil_alerting::Stamp {
        by: "nurse-2".into(),
        at_ms: T0 + 45_000,
    });
    raised_again.adopt_alerts(vec![gone]);
    assert!(raised_again.list_active(&AlertFilter::default()).is_empty());

    // The stream knows the episode under another alert (its former owner raised it from
    // other readings): the engine's own alert of that rule leaves the book, the adopted
    // one stands for the episode and resolves once when the condition clears.
    let (here, there) = (engine(), engine());
    for e in [&here, &there] {
        e.derive_alert_ids();
    }
    feed(&here, "p3", &series);
    feed(&there, "p3", &[(0, 130.0), (41, 131.0)]);
    let theirs = there.list_active(&AlertFilter::default()).remove(0);
    let ours = here.list_active(&AlertFilter::default()).remove(0);
    assert_ne!(ours.id, theirs.id);
    here.adopt_alerts(vec![theirs.clone()]);
    let open: Vec<_> = here
        .list_active(&AlertFilter::default())
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(open, vec![theirs.id.clone()], "no orphan left open");
    let mut events = here.subscribe(AlertFilter::default(), None);
    feed(&here, "p3", &[(60, 90.0)]);
    let resolved: Vec<_> = std::iter::from_fn(|| events.live.try_recv().ok())
        .map(|e| (e.kind, e.alert.id.clone()))
        .collect();
    assert_eq!(resolved, vec![(EventKind::Resolved, theirs.id)]);
    assert!(here.list_active(&AlertFilter::default()).is_empty());
}

/// Admission without admitting: what a cluster node checks before passing a reading on.
#[test]
fn admission_checks_enrolment_and_consent_without_tracking_the_patient() {
    let open = engine();
    assert!(open.admission("anyone").is_ok());
    assert_eq!(open.patients_tracked(), 0);
    let mut refused = PatientProfile::open("p-no");
    refused.consent = false;
    let closed = engine_with(
        vec![PatientProfile::open("p-yes"), refused],
        false,
        AlertLog::default(),
    );
    assert!(closed.admission("p-yes").is_ok());
    assert_eq!(
        closed.admission("p-no").unwrap_err().reason,
        RejectReason::NoConsent
    );
    assert_eq!(
        closed.admission("stranger").unwrap_err().reason,
        RejectReason::NotEnrolled
    );
}

#[test]
fn open_enrolment_patients_share_the_default_profile_but_keep_their_own_ids() {
    let e = engine();
    for id in ["walk-in-1", "walk-in-2"] {
        assert_eq!(feed(&e, id, &[(0, 130.0), (40, 131.0)]), 1);
    }
    let mut alerted: Vec<String> = e
        .list_active(&AlertFilter::default())
        .iter()
        .map(|a| a.patient_id.to_string())
        .collect();
    alerted.sort();
    assert_eq!(alerted, ["walk-in-1", "walk-in-2"]);
    let view = e.patient_view("walk-in-2", 10, 0).unwrap();
    assert_eq!(
        (&*view.profile.id, &*view.profile.care_team),
        ("walk-in-2", "default")
    );
    assert_eq!(&*e.patient("walk-in-1").unwrap().id, "walk-in-1");
    let mut listed: Vec<String> = e
        .patient_summaries(|p| &*p.care_team == "default" && p.id.starts_with("walk-in"))
        .iter()
        .map(|s| s.profile.id.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, ["walk-in-1", "walk-in-2"]);
    // Enrolled later: the patient's own profile, the other keeps the default.
    e.enroll(
        PatientProfile {
            care_team: "cardiology".into(),
            ..PatientProfile::open("walk-in-1")
        },
        T0,
    );
    assert_eq!(
        &*e.patient_view("walk-in-1", 10, 0)
            .unwrap()
            .profile
            .care_team,
        "cardiology"
    );
    assert_eq!(
        &*e.patient_view("walk-in-2", 10, 0)
            .unwrap()
            .profile
            .care_team,
        "default"
    );
    assert_eq!(
        e.patient_view("walk-in-1", 10, 0).unwrap().series[0]
            .samples
            .len(),
        2,
        "enrolment keeps the windows"
    );
}

#[test]
fn an_alert_records_the_parameters_it_was_raised_under_with_the_patients_override() {
    let mut tolerant = PatientProfile::open("athlete");
    tolerant.overrides = vec![(
        "tachycardia".into(),
        RuleOverride {
            above: Some(140.0),
            hold_ms: Some(60_000),
            ..RuleOverride::default()
        },
    )];
    let e = engine_with(
        vec![tolerant, PatientProfile::open("usual")],
        false,
        AlertLog::default(),
    );
    assert_eq!(feed(&e, "usual", &[(0, 130.0), (40, 131.0)]), 1);
    assert_eq!(feed(&e, "athlete", &[(0, 150.0), (70, 151.0)]), 1);
    let parameters = |patient: &str| {
        e.list_active(&AlertFilter::default())
            .into_iter()
            .find(|a| &*a.patient_id == patient)
            .and_then(|a| a.parameters)
            .unwrap()
    };
    assert_eq!(parameters("usual"), "above 120, for 30s, clear 110");
    // The override moves the clear level with the level (10 below it).
    assert_eq!(parameters("athlete"), "above 140, for 1m, clear 130");
}
