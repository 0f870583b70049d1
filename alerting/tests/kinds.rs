//! Every rule kind through the engine's public API: absence on the server clock, change,
//! aggregates and NEWS2 in event time, cohorts and routing, live rule and patient changes.

use std::sync::Arc;

use vigil_alerting::{
    AlertFilter, AlertLog, Approval, Engine, EngineConfig, EventKind, PatientProfile, Rule,
    RuleSpec, SnapshotPart,
};
use vigil_ingest::{Metric, Reading};

const T0: i64 = 1_763_892_000_000;
const DAY: i64 = 86_400_000;

fn rule(spec: RuleSpec) -> Rule {
    spec.validate().unwrap()
}

fn engine(rules: Vec<Rule>, patients: Vec<PatientProfile>) -> Engine {
    let open = patients.is_empty();
    Engine::new(
        EngineConfig {
            rules,
            patients,
            open_enrollment: open,
            escalation: Default::default(),
        },
        Arc::new(AlertLog::default()),
    )
}

fn reading(patient: &str, metric: Metric, ts_ms: i64, value: f64) -> Reading<'_> {
    Reading {
        patient_id: patient,
        metric,
        value,
        ts_ms,
        device_id: None,
        seq: None,
    }
}

/// The rules with an open alert, sorted.
fn active_rule_ids(e: &Engine) -> Vec<String> {
    let mut ids: Vec<String> = e
        .list_active(&AlertFilter::default())
        .iter()
        .map(|a| a.rule_id.to_string())
        .collect();
    ids.sort();
    ids
}

fn events(e: &Engine) -> Vec<(EventKind, String, f64, String)> {
    e.subscribe(AlertFilter::default(), Some(0))
        .replay
        .iter()
        .map(|ev| {
            (
                ev.kind,
                ev.alert.rule_id.to_string(),
                ev.alert.value,
                ev.note.clone(),
            )
        })
        .collect()
}

#[test]
fn absent_fires_on_the_server_clock_and_resolves_on_the_next_reading() {
    let silent = rule(RuleSpec {
        id: "scale_silent".into(),
        kind: Some("absent".into()),
        metric: Some("weight".into()),
        after_ms: Some(2 * DAY),
        ..Default::default()
    });
    let e = engine(vec![silent], vec![]);
    // Patients that never sent weight are not watched at all.
    e.process(&reading("hr-only", Metric::HeartRate, T0, 70.0), T0)
        .unwrap();
    assert_eq!(e.pending_deadlines(), 0);
    e.process(&reading("p1", Metric::Weight, T0, 80.0), T0)
        .unwrap();
    // Daily readings do not add deadlines: one per (patient, metric).
    e.process(&reading("p1", Metric::Weight, T0 + DAY, 80.1), T0 + DAY)
        .unwrap();
    assert_eq!(e.pending_deadlines(), 1);
    assert_eq!(
        e.tick(T0 + 2 * DAY).raised_total(),
        0,
        "the deadline moved with the second reading"
    );
    assert_eq!(e.tick(T0 + 3 * DAY - 1).raised_total(), 0);
    assert_eq!(e.tick(T0 + 3 * DAY).raised_total(), 1);
    assert_eq!(
        e.tick(T0 + 4 * DAY).raised_total(),
        0,
        "raised once, not on every tick"
    );
    let alert = &e.list_active(&AlertFilter::default())[0];
    assert_eq!(
        (alert.metric, alert.unit, alert.value),
        ("weight", "s", (2 * DAY / 1000) as f64)
    );
    assert_eq!(
        e.process(
            &reading("p1", Metric::Weight, T0 + 4 * DAY, 80.0),
            T0 + 4 * DAY
        )
        .unwrap()
        .resolved,
        1
    );
    assert_eq!(
        e.tick(T0 + 7 * DAY).raised_total(),
        1,
        "re-armed by the reading that resolved it"
    );
}

#[test]
fn weight_gain_with_cohorts_routing_and_a_reminder() {
    let gain = rule(RuleSpec {
        id: "hf_gain".into(),
        kind: Some("rise".into()),
        metric: Some("weight".into()),
        window_ms: Some(3 * DAY),
        by: Some(2.0),
        conditions: vec!["heart_failure".into()],
        care_team: Some("hf-nurses".into()),
        patient_message: Some("Your weight rose {value} {unit} in 3 days".into()),
        ..Default::default()
    });
    let mut hf = PatientProfile::open("hf");
    hf.conditions.push("heart_failure".into());
    let other = PatientProfile::open("other");
    let e = engine(vec![gain], vec![hf, other]);
    for (p, day, w) in [
        ("hf", 0, 80.0),
        ("hf", 3, 82.3),
        ("other", 0, 80.0),
        ("other", 3, 83.0),
    ] {
        e.process(&reading(p, Metric::Weight, T0 + day * DAY, w), T0)
            .unwrap();
    }
    let active = e.list_active(&AlertFilter::default());
    assert_eq!(active.len(), 1, "only the heart-failure cohort");
    let a = &active[0];
    assert_eq!((&*a.patient_id, &*a.care_team), ("hf", "hf-nurses"));
    assert!((a.value - 2.3).abs() < 1e-9);
    assert_eq!(
        a.patient_message.as_deref(),
        Some("Your weight rose 2.3 kg in 3 days")
    );
}

#[test]
fn which_rules_apply_follows_profile_and_rule_changes() {
    let high = |id: &str, conditions: Vec<String>| {
        rule(RuleSpec {
            id: id.into(),
            metric: Some("heart_rate".into()),
            above: Some(120.0),
            conditions,
            ..Default::default()
        })
    };
    let e = engine(
        vec![high("hf_hr", vec!["heart_failure".into()])],
        vec![PatientProfile::open("p")],
    );
    let mut t = T0;
    let mut beat = |e: &vigil_alerting::Engine| {
        t += 60_000;
        e.process(&reading("p", Metric::HeartRate, t, 130.0), T0)
            .unwrap();
        e.process(&reading("p", Metric::HeartRate, t + 1, 80.0), T0)
            .unwrap();
        events(e).len()
    };
    assert_eq!(beat(&e), 0, "not in the heart-failure cohort");
    let mut hf = PatientProfile::open("p");
    hf.conditions.push("heart_failure".into());
    e.enroll(hf.clone(), T0);
    assert_eq!(
        beat(&e),
        2,
        "a profile change is seen at once (raised, resolved)"
    );
    e.put_rule(high("hf_hr", vec!["copd".into()]), Approval::default());
    assert_eq!(beat(&e), 2, "a rule change is seen at once");
    e.put_rule(high("any_hr", vec![]), Approval::default());
    assert_eq!(beat(&e), 4, "a new rule applies at once");
}

#[test]
fn news2_from_several_metrics_and_late_readings_never_re_raise_a_resolved_episode() {
    let news2 = rule(RuleSpec {
        id: "news2_high".into(),
        kind: Some("news2".into()),
        at_least: Some(7),
        ..Default::default()
    });
    let e = engine(vec![news2], vec![]);
    let p = "p";
    for (m, v) in [
        (Metric::RespRate, 26.0),
        (Metric::Spo2, 90.0),
        (Metric::HeartRate, 135.0),
    ] {
        e.process(&reading(p, m, T0, v), T0).unwrap();
    }
    assert_eq!(events(&e).len(), 1, "3 + 3 + 3 = 9 >= 7");
    // Recovery resolves it.
    for (m, v) in [
        (Metric::RespRate, 16.0),
        (Metric::Spo2, 97.0),
        (Metric::HeartRate, 80.0),
    ] {
        e.process(&reading(p, m, T0 + 60_000, v), T0).unwrap();
    }
    assert_eq!(
        events(&e).iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![EventKind::Raised, EventKind::Resolved]
    );
    // A late reading from during the episode changes history, not the present.
    e.process(&reading(p, Metric::HeartRate, T0 + 30_000, 140.0), T0)
        .unwrap();
    assert_eq!(events(&e).len(), 2);
}

#[test]
fn live_rule_changes_keep_windows_and_deleting_resolves() {
    let low_mean = |level: f64| {
        rule(RuleSpec {
            id: "low_mean_spo2".into(),
            kind: Some("avg".into()),
            metric: Some("spo2".into()),
            window_ms: Some(3_600_000),
            below: Some(level),
            min_samples: Some(3),
            ..Default::default()
        })
    };
    let e = engine(vec![low_mean(88.0)], vec![]);
    for (i, v) in [91.0, 90.0, 89.0].iter().enumerate() {
        e.process(
            &reading("copd", Metric::Spo2, T0 + i as i64 * 60_000, *v),
            T0,
        )
        .unwrap();
    }
    assert!(events(&e).is_empty(), "a mean of 90 is not below 88");
    // Replacing the rule keeps the history it accumulated: the next reading is judged
    // against all four.
    e.put_rule(low_mean(92.0), Approval::default());
    assert_eq!(
        e.process(&reading("copd", Metric::Spo2, T0 + 180_000, 91.0), T0)
            .unwrap()
            .raised_total(),
        1
    );
    assert_eq!(e.list_active(&AlertFilter::default())[0].value, 90.25);
    assert_eq!(
        e.delete_rule("low_mean_spo2", Approval::default(), T0),
        Some(1)
    );
    assert_eq!(
        e.delete_rule("low_mean_spo2", Approval::default(), T0),
        None
    );
    let evs = events(&e);
    assert_eq!(evs.last().unwrap().0, EventKind::Resolved);
    assert_eq!(evs.last().unwrap().3, "rule deleted");
    assert!(e.rules().get("low_mean_spo2").is_none());
}

#[test]
fn an_alert_records_the_rule_set_version_and_parameters_it_was_raised_under() {
    let high = |above: f64| {
        rule(RuleSpec {
            id: "hr_high".into(),
            metric: Some("heart_rate".into()),
            above: Some(above),
            ..Default::default()
        })
    };
    let e = engine(vec![high(130.0)], vec![]);
    assert_eq!(
        e.rules_version().number,
        0,
        "unnumbered until the server names it"
    );
    let raise = |t: i64, value: f64| {
        e.process(&reading("p", Metric::HeartRate, t, value), T0)
            .unwrap();
        e.process(&reading("p", Metric::HeartRate, t + 1, 60.0), T0)
            .unwrap();
        let raised = e.subscribe(AlertFilter::default(), Some(0)).replay;
        let raised = raised
            .iter()
            .rev()
            .find(|ev| ev.kind == EventKind::Raised)
            .unwrap();
        raised.alert.clone()
    };
    let before = raise(T0, 135.0);
    let approval = Approval {
        by: "dr.li".into(),
        second: Some("n.wang".into()),
        at_ms: T0,
        change: "rule 'hr_high' put".into(),
        number: None,
    };
    let version = e.put_rule(high(140.0), approval.clone());
    assert_eq!(version.number, 1);
    assert_eq!(version.approval, approval);
    assert_eq!(*e.rules_version(), *version);
    let after = raise(T0 + 60_000, 145.0);
    assert_eq!((before.rule_set_version, after.rule_set_version), (0, 1));
    assert_ne!(before.rule_set_hash, after.rule_set_hash);
    assert_eq!(after.rule_set_hash.as_deref(), Some(&*version.hash));
    assert_eq!(
        before.parameters.as_deref(),
        Some("above 130, for 0s, clear 130")
    );
    assert_eq!(
        after.parameters.as_deref(),
        Some("above 140, for 0s, clear 140")
    );
    // Deleting is a change too; the numbers never go back.
    e.delete_rule("hr_high", Approval::default(), T0);
    assert_eq!(e.rules_version().number, 2);
    assert_ne!(e.rules_version().hash, version.hash);
}

#[test]
fn unenrolling_and_withdrawing_consent_drop_state_and_resolve_alerts() {
    let high = rule(RuleSpec {
        id: "hr".into(),
        metric: Some("heart_rate".into()),
        above: Some(120.0),
        ..Default::default()
    });
    let e = engine(
        vec![high],
        vec![PatientProfile::open("a"), PatientProfile::open("b")],
    );
    e.process(&reading("a", Metric::HeartRate, T0, 130.0), T0)
        .unwrap();
    e.process(&reading("b", Metric::HeartRate, T0, 130.0), T0)
        .unwrap();
    let mut withdrawn = PatientProfile::open("a");
    withdrawn.consent = false;
    assert_eq!(e.enroll(withdrawn, T0), 1);
    assert_eq!(e.unenroll("b", T0), Some(1));
    assert_eq!(e.unenroll("b", T0), None);
    let notes: Vec<String> = events(&e)
        .into_iter()
        .filter(|e| e.0 == EventKind::Resolved)
        .map(|e| e.3)
        .collect();
    assert_eq!(
        notes,
        vec![
            "consent withdrawn".to_string(),
            "patient unenrolled".to_string()
        ]
    );
    assert!(e.list_active(&AlertFilter::default()).is_empty());
    // Re-consenting starts from an empty window.
    e.enroll(PatientProfile::open("a"), T0);
    assert!(e
        .process(&reading("a", Metric::HeartRate, T0 + 1, 80.0), T0)
        .is_ok());
}

mod absent_model {
    //! `absent` against a naive model of the clock: after each tick an alert is open iff
    //! the metric was seen and nothing arrived for `after`; a reading resolves it. The
    //! server keeps the last reading's time to the second (rounded up), so the model's
    //! clock moves in whole seconds; `sub_second_reading_times_round_up` covers the rest.
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sub_second_reading_times_round_up() {
        let silent = rule(RuleSpec {
            id: "silent".into(),
            kind: Some("absent".into()),
            metric: Some("weight".into()),
            after_ms: Some(10_000),
            ..Default::default()
        });
        let e = engine(vec![silent], vec![]);
        let seen = T0 + 200;
        e.process(&reading("p", Metric::Weight, seen, 80.0), seen)
            .unwrap();
        assert_eq!(e.tick(seen + 9_999).raised_total(), 0, "never early");
        assert_eq!(e.tick(T0 + 10_999).raised_total(), 0);
        assert_eq!(
            e.tick(T0 + 11_000).raised_total(),
            1,
            "at most a second late"
        );
    }

    proptest! {
        #[test]
        fn raises_and_resolves_like_the_naive_model(
            steps in proptest::collection::vec((0i64..40, any::<bool>()), 1..60),
            after in 1i64..30,
        ) {
            let steps: Vec<(i64, bool)> = steps.into_iter().map(|(dt, r)| (dt * 1000, r)).collect();
            let after = after * 1000;
            let silent = rule(RuleSpec { id: "silent".into(), kind: Some("absent".into()), metric: Some("weight".into()), after_ms: Some(after), ..Default::default() });
            let e = engine(vec![silent], vec![]);
            let (mut now, mut last, mut open, mut raised, mut resolved) = (T0, None::<i64>, false, 0u32, 0u32);
            let (mut got_raised, mut got_resolved) = (0u32, 0u32);
            for (dt, is_reading) in steps {
                now += dt;
                if is_reading {
                    let out = e.process(&reading("p", Metric::Weight, now, 80.0), now).unwrap();
                    got_resolved += out.resolved;
                    if open {
                        open = false;
                        resolved += 1;
                    }
                    last = Some(now);
                } else {
                    got_raised += e.tick(now).raised_total();
                    if let Some(l) = last {
                        if !open && now - l >= after {
                            open = true;
                            raised += 1;
                        }
                    }
                }
                prop_assert!(e.pending_deadlines() <= 1, "one deadline per (patient, metric)");
            }
            prop_assert_eq!((got_raised, got_resolved), (raised, resolved));
            prop_assert_eq!(e.active_alerts(), usize::from(open));
        }
    }
}

#[test]
fn unacknowledged_alerts_escalate_along_the_chain_and_acknowledged_ones_renotify() {
    use vigil_alerting::{EscalationPolicy, TeamPolicy};
    let team = |after: Option<i64>, to: Option<&str>, renotify: Option<i64>| TeamPolicy {
        escalate_after_ms: after,
        escalate_to: to.map(Arc::from),
        renotify_after_ms: renotify,
        ..TeamPolicy::default()
    };
    let escalation = EscalationPolicy {
        teams: [
            (
                "ward".into(),
                team(Some(60_000), Some("charge"), Some(600_000)),
            ),
            (
                "charge".into(),
                team(Some(120_000), Some("physician"), None),
            ),
            ("physician".into(), team(None, None, None)),
        ]
        .into_iter()
        .collect(),
    };
    let high = rule(RuleSpec {
        id: "hr_high".into(),
        metric: Some("heart_rate".into()),
        above: Some(120.0),
        ..Default::default()
    });
    let mut p = PatientProfile::open("p");
    p.care_team = "ward".into();
    let e = Engine::new(
        EngineConfig {
            rules: vec![high],
            patients: vec![p],
            open_enrollment: false,
            escalation,
        },
        Arc::new(AlertLog::default()),
    );
    e.process(&reading("p", Metric::HeartRate, T0, 150.0), T0)
        .unwrap();
    assert_eq!(e.tick(T0 + 59_999).escalated, 0);
    assert_eq!(e.tick(T0 + 60_000).escalated, 1, "level 1 to charge");
    assert_eq!(e.tick(T0 + 60_001).escalated, 0, "once per level");
    let charge = AlertFilter {
        care_teams: vec!["charge".into()],
        ..Default::default()
    };
    assert_eq!(
        e.list_active(&charge).len(),
        1,
        "the charge nurse now sees it"
    );
    // Down for a while: both remaining levels are due, each fires once, in order; the
    // physician has no escalate_after, so the chain ends there.
    assert_eq!(e.tick(T0 + 3_600_000).escalated, 1);
    let escalations: Vec<(String, Vec<String>)> = e
        .subscribe(AlertFilter::default(), Some(0))
        .replay
        .iter()
        .filter(|ev| ev.kind == EventKind::Escalated)
        .map(|ev| {
            (
                ev.note.clone(),
                ev.alert
                    .escalated_to
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(escalations.len(), 2);
    assert_eq!(escalations[1].1, vec!["charge", "physician"]);
    assert!(
        escalations[0].0.contains("escalated to charge (level 1)"),
        "{}",
        escalations[0].0
    );

    // Acknowledged: never escalates; re-notified after renotify_after, then escalates anew.
    let id = e.list_active(&AlertFilter::default())[0].id.clone();
    e.acknowledge(&id, "nurse", "on it", None, T0 + 3_600_000)
        .unwrap();
    assert_eq!(e.tick(T0 + 3_600_000 + 599_999), Default::default());
    let t = e.tick(T0 + 4_200_000);
    assert_eq!((t.renotified, t.escalated), (1, 0));
    let alert = &e.list_active(&AlertFilter::default())[0];
    assert_eq!(alert.state, vigil_alerting::AlertState::Active);
    assert_eq!(
        e.tick(T0 + 4_260_000).escalated,
        1,
        "escalation timed from re-notification"
    );
}

#[test]
fn a_superseding_alert_resolves_and_inhibits_the_one_it_supersedes() {
    let below = |id: &str, level: f64, supersedes: Vec<String>| {
        rule(RuleSpec {
            id: id.into(),
            metric: Some("glucose".into()),
            below: Some(level),
            supersedes,
            ..Default::default()
        })
    };
    let e = engine(
        vec![
            below("level1", 3.9, vec![]),
            below("level2", 3.0, vec!["level1".into()]),
        ],
        vec![],
    );
    let mut t = T0;
    let mut glucose = |v: f64| {
        t += 60_000;
        e.process(&reading("p", Metric::Glucose, t, v), T0).unwrap();
        active_rule_ids(&e)
    };
    assert_eq!(glucose(3.5), vec!["level1"]);
    assert_eq!(glucose(2.8), vec!["level2"], "level 2 supersedes level 1");
    assert_eq!(
        glucose(2.9),
        vec!["level2"],
        "level 1 does not raise meanwhile"
    );
    assert_eq!(
        glucose(3.5),
        vec!["level1"],
        "stepping down raises level 1 again"
    );
    assert_eq!(glucose(5.5), Vec::<String>::new());
    assert_eq!(
        glucose(2.5),
        vec!["level2"],
        "straight to level 2: one alert, not two"
    );
    let history = events(&e);
    let superseded: Vec<&String> = history
        .iter()
        .filter(|(_, rule, _, note)| rule == "level1" && note.contains("superseded"))
        .map(|(_, _, _, note)| note)
        .collect();
    assert_eq!(superseded.len(), 1);
    assert!(
        superseded[0].starts_with("superseded by rule 'level2' (alert "),
        "{}",
        superseded[0]
    );
    let raised_level1 = history
        .iter()
        .filter(|(k, rule, _, _)| *k == EventKind::Raised && rule == "level1")
        .count();
    assert_eq!(raised_level1, 2);
}

#[test]
fn a_silence_holds_alerts_back_from_subscribers_until_it_ends() {
    use vigil_alerting::Silence;
    let high = rule(RuleSpec {
        id: "hr_high".into(),
        metric: Some("heart_rate".into()),
        above: Some(120.0),
        ..Default::default()
    });
    let e = engine(vec![high], vec![]);
    let mut live = e.subscribe(AlertFilter::default(), None);
    e.add_silence(Silence {
        id: "s1".into(),
        patient_id: Some("p".into()),
        rule_id: None,
        care_team: None,
        starts_at_ms: T0,
        ends_at_ms: T0 + 600_000,
        reason: "clinic visit".into(),
        by: "nurse".into(),
    });
    e.process(&reading("p", Metric::HeartRate, T0 + 1, 150.0), T0 + 1)
        .unwrap();
    e.process(&reading("q", Metric::HeartRate, T0 + 1, 150.0), T0 + 1)
        .unwrap();
    // Another silenced alert resolves before the silence ends: never delivered.
    e.process(&reading("p", Metric::HeartRate, T0 + 2, 80.0), T0 + 2)
        .unwrap();
    e.process(&reading("p", Metric::HeartRate, T0 + 3, 150.0), T0 + 3)
        .unwrap();
    let first = live.live.try_recv().unwrap();
    assert_eq!(
        &*first.alert.patient_id, "q",
        "other patients are not silenced"
    );
    assert!(live.live.try_recv().is_err(), "p's alerts are held back");
    assert_eq!(events(&e).len(), 1, "replay holds them back too");
    let active = e.list_active(&AlertFilter::default());
    let held = active.iter().find(|a| &*a.patient_id == "p").unwrap();
    assert_eq!(
        held.silenced_by.as_deref(),
        Some("s1"),
        "listed, marked silenced"
    );
    assert_eq!(e.silences(T0).len(), 1);

    e.tick(T0 + 600_000);
    let released = live.live.try_recv().unwrap();
    assert_eq!(released.kind, EventKind::Raised);
    assert_eq!(&*released.alert.patient_id, "p");
    assert_eq!(released.alert.silenced_by, None);
    assert!(
        released.note.contains("silence s1 ended"),
        "{}",
        released.note
    );
    assert!(
        live.live.try_recv().is_err(),
        "the resolved one stays unseen"
    );
    assert!(e.silences(T0 + 600_000).is_empty());
}

#[test]
fn snoozing_one_alert_mutes_only_its_escalation() {
    use vigil_alerting::{EscalationPolicy, TeamPolicy};
    let escalation = EscalationPolicy {
        teams: [(
            "default".into(),
            TeamPolicy {
                escalate_after_ms: Some(60_000),
                escalate_to: None,
                renotify_after_ms: None,
                ..TeamPolicy::default()
            },
        )]
        .into_iter()
        .collect(),
    };
    let above = |id: &str, metric: &str| {
        rule(RuleSpec {
            id: id.into(),
            metric: Some(metric.into()),
            above: Some(100.0),
            ..Default::default()
        })
    };
    let e = Engine::new(
        EngineConfig {
            rules: vec![above("hr", "heart_rate"), above("rr", "resp_rate")],
            patients: vec![],
            open_enrollment: true,
            escalation,
        },
        Arc::new(AlertLog::default()),
    );
    e.process(&reading("p", Metric::HeartRate, T0, 150.0), T0)
        .unwrap();
    e.process(&reading("p", Metric::RespRate, T0, 150.0), T0)
        .unwrap();
    let id = |rule: &str| {
        e.list_active(&AlertFilter::default())
            .into_iter()
            .find(|a| &*a.rule_id == rule)
            .unwrap()
            .id
    };
    let snoozed = e
        .snooze(
            &id("hr"),
            T0 + 300_000,
            "nurse",
            "patient exercising",
            T0 + 1,
        )
        .unwrap();
    assert_eq!(snoozed.snoozed_until_ms, T0 + 300_000);
    assert_eq!(
        e.tick(T0 + 60_000).escalated,
        1,
        "only the other alert escalates"
    );
    assert_eq!(
        e.tick(T0 + 300_000).escalated,
        1,
        "the snoozed one once the snooze ends"
    );
    // Cancelling: a snooze until now or earlier.
    e.snooze(&id("rr"), T0 + 900_000, "nurse", "", T0 + 300_001)
        .unwrap();
    e.snooze(&id("rr"), 0, "nurse", "", T0 + 300_002).unwrap();
    let kinds: Vec<(EventKind, String)> = events(&e)
        .into_iter()
        .filter(|(k, ..)| *k == EventKind::Snoozed)
        .map(|(k, _, _, note)| (k, note))
        .collect();
    assert_eq!(kinds.len(), 3);
    assert_eq!(kinds[0].1, "snoozed for 4 min: patient exercising");
    assert_eq!(kinds[2].1, "snooze cancelled");
    assert!(e.snooze("nope", T0, "nurse", "", T0).is_err());
}

#[test]
fn a_patient_silent_across_a_restart_is_still_noticed() {
    let silent = || {
        rule(RuleSpec {
            id: "scale_silent".into(),
            kind: Some("absent".into()),
            metric: Some("weight".into()),
            after_ms: Some(2 * DAY),
            ..Default::default()
        })
    };
    let before = engine(vec![silent()], vec![]);
    before
        .process(&reading("p1", Metric::Weight, T0, 80.0), T0)
        .unwrap();
    let Some((_, SnapshotPart::Whole(snapshot))) =
        before.take_snapshots(&before.patient_keys()).pop()
    else {
        panic!("a patient's first snapshot is whole");
    };
    // The server is down for three days; the scale never sends again.
    let after = engine(vec![silent()], vec![]);
    assert!(after.restore_snapshot("p1", &snapshot, &[], T0 + 3 * DAY));
    assert_eq!(
        after.pending_deadlines(),
        1,
        "re-armed from the newest sample"
    );
    assert_eq!(
        after.tick(T0 + 3 * DAY).raised_total(),
        1,
        "the deadline passed while down"
    );
    let alert = &after.list_active(&AlertFilter::default())[0];
    assert_eq!(
        alert.value,
        (3 * DAY / 1000) as f64,
        "seconds since the last reading"
    );
}

mod windowed_model {
    //! Every windowed kind through `Engine::process`, with readings out of order and with
    //! repeated timestamps, against a naive model that keeps every sample sorted by event
    //! time and rescans it after each reading.
    use super::*;
    use proptest::prelude::*;

    fn spec(id: &str, kind: &str) -> RuleSpec {
        RuleSpec {
            id: id.into(),
            kind: Some(kind.into()),
            metric: Some("spo2".into()),
            ..Default::default()
        }
    }

    /// The naive verdicts, by rule, for samples sorted by time (`Some(true)`: fires,
    /// `Some(false)`: clears, `None`: holds).
    fn model(sorted: &[(i64, f64)], open: &Open) -> [Option<bool>; 6] {
        let &(now, latest) = sorted.last().unwrap();
        let since = |from: i64, inclusive: bool| -> Vec<f64> {
            sorted
                .iter()
                .filter(|(t, _)| if inclusive { *t >= from } else { *t > from })
                .map(|(_, v)| *v)
                .collect()
        };
        let min = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let judge = |is_open: bool, fires: bool, clears: bool| match (is_open, fires, clears) {
            (false, true, _) => Some(true),
            (true, _, true) => Some(false),
            _ => None,
        };
        // low: below 92 for 20 ms (the newest run of breaching samples spans 20), clear 94.
        let run_start = sorted
            .iter()
            .rev()
            .take_while(|(_, v)| *v < 92.0)
            .last()
            .map(|(t, _)| *t);
        let held = latest < 92.0 && run_start.is_some_and(|t| now - t >= 20);
        let last30 = since(now - 30, true);
        let agg30 = since(now - 30, false);
        let mean = agg30.iter().sum::<f64>() / agg30.len() as f64;
        [
            judge(open[0], held, latest >= 94.0),
            judge(
                open[1],
                latest - min(&last30) >= 5.0,
                latest - min(&last30) < 5.0,
            ),
            judge(
                open[2],
                max(&last30) - latest >= 5.0,
                max(&last30) - latest < 5.0,
            ),
            judge(open[3], min(&agg30) < 90.0, min(&agg30) >= 92.0),
            judge(open[4], max(&agg30) > 97.0, max(&agg30) <= 95.0),
            if agg30.len() < 2 {
                None
            } else {
                judge(open[5], mean < 91.0, mean >= 93.0)
            },
        ]
    }

    /// Which of the rules (in `IDS` order) have an open alert.
    type Open = [bool; 6];

    const IDS: [&str; 6] = ["low", "rise", "fall", "min", "max", "avg"];

    proptest! {
        #[test]
        fn every_windowed_kind_matches_the_naive_model(
            readings in proptest::collection::vec((0i64..120, 85.0f64..100.0), 1..80),
        ) {
            let rules = vec![
                rule(RuleSpec { below: Some(92.0), hold_ms: Some(20), clear: Some(94.0), ..spec("low", "threshold") }),
                rule(RuleSpec { window_ms: Some(30), by: Some(5.0), ..spec("rise", "rise") }),
                rule(RuleSpec { window_ms: Some(30), by: Some(5.0), ..spec("fall", "fall") }),
                rule(RuleSpec { window_ms: Some(30), below: Some(90.0), clear: Some(92.0), ..spec("min", "min") }),
                rule(RuleSpec { window_ms: Some(30), above: Some(97.0), clear: Some(95.0), ..spec("max", "max") }),
                rule(RuleSpec { window_ms: Some(30), below: Some(91.0), clear: Some(93.0), min_samples: Some(2), ..spec("avg", "avg") }),
            ];
            let e = engine(rules, vec![]);
            let mut sorted: Vec<(i64, f64)> = Vec::new();
            let mut open: Open = [false; 6];
            for (step, &(ts, value)) in readings.iter().enumerate() {
                e.process(&reading("p", Metric::Spo2, T0 + ts, value), T0).unwrap();
                // Stable: a repeated timestamp goes after the samples it repeats.
                let at = sorted.partition_point(|(t, _)| *t <= T0 + ts);
                sorted.insert(at, (T0 + ts, value));
                for (i, verdict) in model(&sorted, &open).into_iter().enumerate() {
                    if let Some(fires) = verdict {
                        open[i] = fires;
                    }
                }
                let got = active_rule_ids(&e);
                let mut want: Vec<String> = IDS
                    .iter()
                    .zip(open)
                    .filter(|(_, o)| *o)
                    .map(|(id, _)| id.to_string())
                    .collect();
                want.sort();
                prop_assert_eq!(got, want, "after reading {} (ts {}, value {})", step, ts, value);
            }
        }
    }
}

mod trend_and_days_model {
    //! `trend`, `adherence` and aggregates with `min_days` through `Engine::process`
    //! (and the adherence sweep), readings out of order and late, against naive models: a
    //! direct least-squares fit of the sorted samples, and a list of the days readings were
    //! taken on. Days are counted in Asia/Shanghai (UTC+8, no daylight saving), which the
    //! models compute by hand.
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000;
    const MIN: i64 = 60_000;

    fn shanghai_day(ts: i64) -> i64 {
        (ts + 8 * H).div_euclid(DAY)
    }

    fn patient() -> PatientProfile {
        PatientProfile {
            timezone: Some("Asia/Shanghai".into()),
            ..PatientProfile::open("p")
        }
    }

    fn judge(is_open: bool, fires: bool, clears: bool) -> Option<bool> {
        match (is_open, fires, clears) {
            (false, true, _) => Some(true),
            (true, _, true) => Some(false),
            _ => None,
        }
    }

    /// The value of the least-squares line through `samples` at `at`, straight from the
    /// normal equations.
    fn fit_at(samples: &[(i64, f64)], at: i64) -> Option<f64> {
        let n = samples.len() as f64;
        let t0 = samples.first()?.0;
        let xs: Vec<f64> = samples.iter().map(|s| (s.0 - t0) as f64 / 1000.0).collect();
        let mx = xs.iter().sum::<f64>() / n;
        let my = samples.iter().map(|s| s.1).sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let sxy: f64 = xs
            .iter()
            .zip(samples)
            .map(|(x, s)| (x - mx) * (s.1 - my))
            .sum();
        (sxx > 0.0).then(|| my + sxy / sxx * ((at - t0) as f64 / 1000.0 - mx))
    }

    fn active(e: &Engine) -> Vec<String> {
        active_rule_ids(e)
    }

    proptest! {
        #[test]
        fn trend_and_min_days_match_the_naive_models(
            readings in proptest::collection::vec((0i64..600, 85.0f64..100.0), 1..80),
        ) {
            let rules = vec![
                rule(RuleSpec {
                    id: "trend".into(), kind: Some("trend".into()), metric: Some("spo2".into()),
                    window_ms: Some(30 * MIN), horizon_ms: Some(20 * MIN),
                    below: Some(90.0), clear: Some(92.0), min_samples: Some(3),
                    ..Default::default()
                }),
                rule(RuleSpec {
                    id: "avg_days".into(), kind: Some("avg".into()), metric: Some("spo2".into()),
                    window_ms: Some(2 * DAY), below: Some(95.0), clear: Some(96.0), min_days: Some(2),
                    ..Default::default()
                }),
            ];
            let e = engine(rules, vec![patient()]);
            let mut sorted: Vec<(i64, f64)> = Vec::new();
            let mut open = [false; 2];
            for (step, &(t, value)) in readings.iter().enumerate() {
                // Ten-minute steps over about four days, in any order.
                let ts = T0 + t * 10 * MIN;
                e.process(&reading("p", Metric::Spo2, ts, value), ts).unwrap();
                let at = sorted.partition_point(|(x, _)| *x <= ts);
                sorted.insert(at, (ts, value));
                let latest = sorted.last().unwrap().0;
                let trend_span: Vec<(i64, f64)> = sorted.iter().copied().filter(|s| s.0 > latest - 30 * MIN).collect();
                if trend_span.len() >= 3 {
                    if let Some(p) = fit_at(&trend_span, latest + 20 * MIN) {
                        if let Some(o) = judge(open[0], p < 90.0, p >= 92.0) {
                            open[0] = o;
                        }
                    }
                }
                let avg_span: Vec<(i64, f64)> = sorted.iter().copied().filter(|s| s.0 > latest - 2 * DAY).collect();
                let mut days: Vec<i64> = avg_span.iter().map(|s| shanghai_day(s.0)).collect();
                days.dedup();
                if days.len() >= 2 {
                    let mean = avg_span.iter().map(|s| s.1).sum::<f64>() / avg_span.len() as f64;
                    if let Some(o) = judge(open[1], mean < 95.0, mean >= 96.0) {
                        open[1] = o;
                    }
                }
                let want: Vec<String> = ["avg_days", "trend"]
                    .iter()
                    .filter(|id| open[if **id == "trend" { 0 } else { 1 }])
                    .map(|id| id.to_string())
                    .collect();
                prop_assert_eq!(active(&e), want, "after reading {} (ts {}, value {})", step, t, value);
            }
        }

        #[test]
        fn adherence_matches_a_list_of_reading_days(
            steps in proptest::collection::vec((0i64..40, 0i64..24, 0i64..40, 0u8..4), 1..60),
        ) {
            let rules = vec![rule(RuleSpec {
                id: "adh".into(), kind: Some("adherence".into()), metric: Some("weight".into()),
                days: Some(10), min_days: Some(4),
                ..Default::default()
            })];
            let e = engine(rules, vec![patient()]);
            let mut taken: Vec<i64> = Vec::new();
            let mut open = false;
            let mut now = T0;
            for (i, &(back_days, hour, advance_h, sweep)) in steps.iter().enumerate() {
                now += advance_h * H;
                // Taken up to 40 days before now (a device uploading its memory), never after.
                let ts = now - back_days * DAY - hour * H;
                let model = |now: i64, taken: &[i64], open: bool| {
                    let today = shanghai_day(now);
                    let mut days: Vec<i64> = taken.iter().map(|&t| shanghai_day(t)).filter(|d| (today - 9..=today).contains(d)).collect();
                    days.sort();
                    days.dedup();
                    // The first reading's day is at least 10 days before today.
                    let judged = taken.iter().map(|&t| shanghai_day(t)).min().is_some_and(|f| f <= today - 10);
                    judge(open, judged && days.len() < 4, days.len() >= 4)
                };
                if sweep == 0 {
                    // The hourly sweep, with no reading.
                    e.sweep_adherence(now);
                    if let Some(o) = model(now, &taken, open) {
                        open = o;
                    }
                } else {
                    e.process(&reading("p", Metric::Weight, ts, 80.0), now).unwrap();
                    taken.push(ts);
                    if let Some(o) = model(now, &taken, open) {
                        open = o;
                    }
                }
                let want: Vec<String> = if open { vec!["adh".into()] } else { vec![] };
                prop_assert_eq!(active(&e), want, "step {} (now {}, ts {})", i, now, ts);
            }
        }
    }
}

#[test]
fn measured_days_survive_a_snapshot_and_show_on_the_patient_view() {
    let rules = vec![rule(RuleSpec {
        id: "adh".into(),
        kind: Some("adherence".into()),
        metric: Some("systolic_bp".into()),
        days: Some(30),
        min_days: Some(16),
        ..Default::default()
    })];
    let profile = PatientProfile {
        timezone: Some("Asia/Shanghai".into()),
        ..PatientProfile::open("p")
    };
    let e = engine(rules.clone(), vec![profile.clone()]);
    // 2025-11-23 10:00 UTC; readings every third day for 30 days, at 07:30 Beijing time
    // (23:30 UTC the day before).
    let now = T0 + 29 * DAY;
    // Measuring since before the 30 days counted, so the patient is judged.
    e.process(&reading("p", Metric::SystolicBp, T0 - 2 * DAY, 131.0), now)
        .unwrap();
    for i in 0..10 {
        let ts = T0 + i * 3 * DAY - 10 * 3_600_000 - 30 * 60_000;
        e.process(&reading("p", Metric::SystolicBp, ts, 128.0), now)
            .unwrap();
    }
    let view = e.patient_view("p", 10, now).unwrap();
    let bp = view
        .adherence
        .iter()
        .find(|a| a.metric == Metric::SystolicBp)
        .unwrap();
    assert_eq!(bp.days_measured, 10, "{bp:?}");
    assert_eq!(bp.recent.count_ones(), 10);
    assert_eq!(active_rule_ids(&e), vec!["adh".to_string()]);
    // Through a whole snapshot into a new engine: the days (and the alert's condition)
    // are still known, although the window keeps none of those readings.
    let parts = e.take_snapshots(&e.patient_keys());
    let whole = match &parts[0].1 {
        SnapshotPart::Whole(s) => vigil_alerting::PatientSnapshot::decode(&s.encode()).unwrap(),
        other => panic!("{other:?}"),
    };
    let after = engine(rules, vec![profile]);
    assert!(after.restore_snapshot("p", &whole, &[], now));
    let view = after.patient_view("p", 10, now).unwrap();
    assert_eq!(view.adherence[0].days_measured, 10);
    assert_eq!(view.adherence[0].first_day.as_deref(), Some("2025-11-21"));
    let swept = after.sweep_adherence(now);
    assert_eq!(
        swept.raised_total(),
        1,
        "still below 16 of 30 after the restart"
    );
    assert_eq!(after.below_adherence(), vec![("adh".into(), 1)]);
}
