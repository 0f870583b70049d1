//! The application layer: every operation once, whatever transport asks for it. MQTT,
//! gRPC (and, next, HTTP and NATS) translate their wire format into these calls and their
//! results back; the scope checks, the journal-before-answer, the audit record and the
//! counting live here, never in a transport.
//!
//! | file | operations |
//! | --- | --- |
//! | `ingest.rs` | readings from any transport: validate, drop duplicates, hand to the engine |
//! | `fhir.rs` | readings from FHIR Observations and Bundles (a transaction all or nothing) |
//! | `care.rs` | acknowledge, resolve, snooze, history, list and subscribe, in the caller's scope |
//! | `silences.rs` | silence, list and delete silences |
//! | `worklist.rs` | the worklist by risk, a patient's page, review marks |
//! | `rules.rs`, `patients.rs`, `devices.rs` | administration: validate, journal, apply, audit |
//! | `catalog.rs` | cluster mode: those changes, written by any node, applied on this one |

pub mod alert_feed;
pub mod caller;
pub mod care;
pub mod catalog;
pub mod devices;
pub mod dispositions;
pub mod error;
pub mod fhir;
pub mod fields;
pub mod handover;
pub mod ingest;
pub mod notifiers;
pub mod patients;
pub mod reach;
pub mod rules;
pub mod silences;
pub mod worklist;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use vigil_alerting::{Engine, EventLog, Journal};

pub use caller::Caller;
pub use error::AppError;
pub use ingest::Pipeline;

use crate::audit::AuditLog;
use crate::auth::{Auth, AuthFailure, Principal};
use crate::telemetry::Telemetry;

/// How long a caller may silence or snooze alerts.
#[derive(Debug, Clone, Copy)]
pub struct MuteLimits {
    /// For care-team tokens (`[auth] max_silence`): a mute that outlives a shift is how
    /// alarms get missed.
    pub care_team: Duration,
    /// For every other caller: the journal's retention.
    pub other: Duration,
}

/// What every operation works on: the engine and its journal, the audit log, the
/// credentials, the ingest pipeline, the metrics, and the limits callers are held to.
pub struct App {
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub audit: Arc<AuditLog>,
    pub auth: Arc<Auth>,
    pub ingest: Arc<Pipeline>,
    pub telemetry: Arc<Telemetry>,
    pub mute_limits: MuteLimits,
    /// The care teams of the configuration; empty: a patient may name any team.
    pub care_teams: Vec<String>,
    pub reviews: worklist::Reviews,
    /// Which care teams a notifier or an open alert stream reaches.
    pub reach: Arc<reach::Reach>,
    /// What alerts may be recorded as having led to, and the counts per rule.
    pub dispositions: dispositions::Dispositions,
    /// Where alert events are read from: the engine's log on a single node, the mirror of
    /// the cluster's alert stream in cluster mode (the same sequence on every node).
    pub alert_log: Arc<dyn EventLog>,
    /// Cluster mode: people's actions on alerts go to the node that owns the patient's
    /// partition; rules, patients, silences and devices are written to the cluster catalog.
    pub cluster: Option<Arc<crate::nats::cluster::Cluster>>,
    /// Cluster mode: the copy of the alert stream (what `alert_log` reads).
    pub mirror: Option<Arc<vigil_alerting::AlertLog>>,
    /// Cluster mode: every open alert of the cluster, however old.
    pub open: Option<Arc<crate::nats::mirror::OpenAlerts>>,
    /// Cluster mode: partitions of this node being rebuilt (not ready while any is).
    pub rebuilding: Arc<std::sync::atomic::AtomicUsize>,
    /// One permit per open alert subscription (`[server] max_subscribers`).
    subscriber_slots: Arc<Semaphore>,
    /// How FHIR Observations name patients, and how large a request may be.
    pub fhir: crate::settings::FhirSettings,
    /// Run-time rule changes must name a second approver (`[rule_set]`).
    pub require_second_approver: bool,
    /// Held while a rule change is journaled and applied on a single node, so that the
    /// version journaled is the version the engine makes.
    rule_changes: std::sync::Mutex<()>,
}

/// What [`App::new`] needs besides the shared state.
pub struct AppLimits {
    pub mute: MuteLimits,
    pub max_subscribers: usize,
    pub care_teams: Vec<String>,
    /// Review marks restored from the journal.
    pub reviews: Vec<vigil_alerting::Review>,
    pub dispositions: Vec<dispositions::Disposition>,
    pub fhir: crate::settings::FhirSettings,
    pub require_second_approver: bool,
}

impl App {
    pub fn new(
        engine: Arc<Engine>,
        journal: Arc<Journal>,
        audit: Arc<AuditLog>,
        auth: Arc<Auth>,
        ingest: Arc<Pipeline>,
        telemetry: Arc<Telemetry>,
        limits: AppLimits,
    ) -> App {
        let care_teams_for_reach = limits.care_teams.clone();
        let dispositions = dispositions::Dispositions::new(limits.dispositions, telemetry.clone());
        App {
            alert_log: engine.log().clone(),
            cluster: None,
            mirror: None,
            open: None,
            rebuilding: Arc::default(),
            engine,
            journal,
            audit,
            auth,
            ingest,
            telemetry,
            mute_limits: limits.mute,
            care_teams: limits.care_teams,
            reviews: worklist::Reviews::new(limits.reviews),
            reach: Arc::new(reach::Reach::new(&care_teams_for_reach)),
            dispositions,
            subscriber_slots: Arc::new(Semaphore::new(limits.max_subscribers)),
            fhir: limits.fhir,
            require_second_approver: limits.require_second_approver,
            rule_changes: std::sync::Mutex::new(()),
        }
    }

    /// Cluster mode: reads alert events from `log` (the copy of the cluster's alert
    /// stream) instead of the engine's, and acts on alerts through their owners.
    pub fn clustered(
        mut self,
        mirror: Arc<vigil_alerting::AlertLog>,
        open: Arc<crate::nats::mirror::OpenAlerts>,
        cluster: Arc<crate::nats::cluster::Cluster>,
    ) -> App {
        self.alert_log = mirror.clone();
        self.mirror = Some(mirror);
        self.open = Some(open);
        self.cluster = Some(cluster);
        self
    }

    /// Records an out-of-scope attempt (counted, logged, audited) and builds its refusal.
    fn denied(&self, p: &Principal, target: &str, why: String) -> AppError {
        self.auth
            .failures
            .record(AuthFailure::OutOfScope, &p.name, &p.name, target);
        AppError::Denied(why)
    }

    /// Refuses a read-only (viewer) caller any action on alerts (`target`: the operation
    /// or the alert, for the refusal's record).
    fn may_act(&self, caller: &Caller, target: &str) -> Result<(), AppError> {
        match caller.principal.as_deref() {
            Some(p) if !p.may_act() => {
                self.auth
                    .failures
                    .record(AuthFailure::WrongRole, &p.name, &p.name, target);
                Err(AppError::Denied(format!(
                    "token '{}' has role {}, which may read alerts but not act on them",
                    p.name, p.role
                )))
            }
            _ => Ok(()),
        }
    }
}
