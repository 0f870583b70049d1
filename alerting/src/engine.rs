//! The engine: admits a reading, places it in the patient's window, evaluates the rules
//! on that metric, and raises or resolves alerts. Synchronous, no allocation per reading
//! unless an alert changes state.

use std::sync::Arc;

use arc_swap::ArcSwap;
use vigil_ingest::{Reading, RejectReason, Rejection};

use crate::alert::{Alert, AlertState, Severity};
use crate::book::AlertBook;
use crate::error::AlertingError;
use crate::event_log::{EventLog, Subscription};
use crate::filter::AlertFilter;
use crate::patient::PatientProfile;
use crate::rule::{fmt_num, Rule};
use crate::ruleset::RuleSet;
use crate::store::{OpenAlert, Store};
use crate::threshold::{evaluate, Verdict};
use crate::window::Sample;

/// What processing one reading changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Alerts raised, by severity (index `Severity as usize - 1`).
    pub raised: [u32; 3],
    pub resolved: u32,
}

impl Outcome {
    pub fn raised_total(&self) -> u32 {
        self.raised.iter().sum()
    }
}

/// How the engine starts.
pub struct EngineConfig {
    pub rules: Vec<Rule>,
    pub patients: Vec<PatientProfile>,
    /// True when no patient list is configured: every patient is admitted, in the
    /// `default` care team, on first reading.
    pub open_enrollment: bool,
}

pub struct Engine {
    rules: ArcSwap<RuleSet>,
    store: Store,
    book: AlertBook,
    open_enrollment: bool,
}

impl Engine {
    pub fn new(config: EngineConfig, log: Arc<dyn EventLog>) -> Engine {
        let store = Store::new();
        for p in config.patients {
            store.upsert_profile(p);
        }
        Engine {
            rules: ArcSwap::from_pointee(RuleSet::new(config.rules)),
            store,
            book: AlertBook::new(log),
            open_enrollment: config.open_enrollment,
        }
    }

    /// Processes one validated reading at server time `now_ms`.
    pub fn process(&self, r: &Reading<'_>, now_ms: i64) -> Result<Outcome, Rejection> {
        self.process_if(r, now_ms, |_| true)
    }

    /// Like [`Engine::process`], but once the patient is admitted, `is_new` decides whether
    /// the reading is new or a redelivery (`duplicate`). Running it after admission keeps
    /// duplicate-tracking state to admitted patients only.
    pub fn process_if(
        &self,
        r: &Reading<'_>,
        now_ms: i64,
        is_new: impl FnOnce(&Reading<'_>) -> bool,
    ) -> Result<Outcome, Rejection> {
        let rules = self.rules.load();
        let mut state = if self.open_enrollment {
            self.store
                .get_or_insert_with(r.patient_id, || PatientProfile::open(r.patient_id))
        } else {
            self.store.get_mut(r.patient_id).ok_or_else(|| {
                Rejection::new(
                    RejectReason::NotEnrolled,
                    "patient is not enrolled: add it to [[patients]] or enrol it over gRPC",
                )
            })?
        };
        if !state.profile.consent {
            return Err(Rejection::new(
                RejectReason::NoConsent,
                "patient has not consented to remote monitoring",
            ));
        }
        if !is_new(r) {
            return Err(Rejection::new(
                RejectReason::Duplicate,
                "this (device, seq) was already accepted",
            ));
        }
        let state = &mut *state;
        let m = r.metric.index();
        let retention = rules.window_ms_with_overrides(r.metric, state.profile.longest_hold_ms());
        state.windows[m].insert(
            Sample {
                ts_ms: r.ts_ms,
                value: r.value,
            },
            retention,
        );

        let mut outcome = Outcome::default();
        for rule in rules.for_metric(r.metric) {
            let threshold = rule.threshold_for(state.profile.override_for(&rule.id));
            let mut open = state.open.iter().position(|a| a.rule_id == rule.id);
            if let Some(i) = open {
                // A person may have resolved it: then the rule is free to raise again.
                if !state.open[i].flag.is_open() {
                    state.open.swap_remove(i);
                    open = None;
                }
            }
            match (
                evaluate(&threshold, &state.windows[m], open.is_some()),
                open,
            ) {
                (Verdict::Fire(sample), None) => {
                    let alert = Alert {
                        id: new_alert_id(),
                        patient_id: state.profile.id.clone(),
                        rule_id: rule.id.clone(),
                        severity: rule.severity,
                        metric: rule.metric,
                        value: sample.value,
                        message: rule.render_message(sample.value, &threshold),
                        state: AlertState::Active,
                        care_team: state.profile.care_team.clone(),
                        observed_at_ms: sample.ts_ms,
                        raised_at_ms: now_ms,
                        acknowledged: None,
                        resolved: None,
                    };
                    let alert_id = alert.id.clone();
                    let (_, flag) = self.book.raise(alert);
                    state.open.push(OpenAlert {
                        rule_id: rule.id.clone(),
                        alert_id,
                        flag,
                    });
                    outcome.raised[rule.severity as usize - 1] += 1;
                }
                (Verdict::Clear, Some(i)) => {
                    let OpenAlert { alert_id, .. } = state.open.swap_remove(i);
                    let note = format!(
                        "condition cleared: {} back to {} {}",
                        rule.metric.name(),
                        fmt_num(r.value),
                        rule.metric.canonical_unit()
                    );
                    if self.book.resolve_if_open(&alert_id, &note, now_ms) {
                        outcome.resolved += 1;
                    }
                }
                _ => {}
            }
        }
        Ok(outcome)
    }

    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.book.acknowledge(id, by, note, now_ms)
    }

    pub fn resolve(
        &self,
        id: &str,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.book.resolve(id, by, note, now_ms)
    }

    pub fn list_active(&self, filter: &AlertFilter) -> Vec<Alert> {
        self.book.list(filter)
    }

    pub fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription {
        self.book.log().subscribe(filter, after_seq)
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        self.book.log()
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    pub fn patient(&self, id: &str) -> Option<Arc<PatientProfile>> {
        self.store.profile(id)
    }

    /// Enrols a patient or updates its profile, keeping its windows.
    pub fn enroll(&self, profile: PatientProfile) {
        self.store.upsert_profile(profile);
    }

    pub fn open_enrollment(&self) -> bool {
        self.open_enrollment
    }

    pub fn patients_tracked(&self) -> usize {
        self.store.len()
    }

    pub fn active_alerts(&self) -> usize {
        self.book.len()
    }
}

fn new_alert_id() -> Arc<str> {
    uuid::Uuid::now_v7().to_string().into()
}

/// Severity index helper for [`Outcome::raised`].
pub fn severity_of_index(i: usize) -> Severity {
    Severity::ALL[i]
}
