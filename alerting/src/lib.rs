//! Vigil's alerting stage: per-patient sliding windows, rule evaluation and the alert
//! lifecycle. `Reading`s in, `AlertEvent`s out. The core (windows, rule kinds, the alert
//! book, the engine) is pure and synchronous, testable without disk or threads; the
//! journal lives apart in `storage/`, and the one thread, the journal writer's group
//! commit, in `event_log/group_commit.rs`, behind the `EventSink` seam.

pub mod absence;
pub mod adherence;
pub mod aggregate;
pub mod alert;
pub mod book;
pub mod builtin;
pub mod change;
pub mod days;
pub mod engine;
pub mod error;
pub mod escalation;
pub mod event_log;
pub mod extrema;
pub mod filter;
pub mod hours;
pub mod measured;
pub mod news2;
pub mod overrides;
pub mod parameters;
pub mod patient;
pub mod patient_check;
pub mod patient_shards;
pub mod patient_state;
pub mod prefetch;
pub mod review;
pub mod rule;
pub mod rule_spec;
pub mod rule_version;
pub mod ruleset;
pub mod samples;
pub mod silence;
pub mod snapshot;
pub mod storage;
mod thin;
pub mod threshold;
pub mod trend;
pub mod window;

pub use alert::{Alert, AlertEvent, AlertState, EventKind, Severity, Stamp};
pub use builtin::builtin_rules;
pub use engine::{Engine, EngineConfig, LockedPatient, LookAhead, Outcome};
pub use error::AlertingError;
pub use escalation::{EscalationPolicy, TeamPolicy};
pub use event_log::{
    with_origin, AlertLog, DeliveryHook, EventLog, EventSink, LogStats, Subscription,
};
pub use filter::AlertFilter;
pub use patient::{PatientProfile, DEFAULT_CARE_TEAM};
pub use review::Review;
pub use rule::{
    Absent, Aggregate, AggregateFn, Change, Direction, News2, Rule, RuleKind, RuleOverride,
    Threshold,
};
pub use rule_spec::RuleSpec;
pub use rule_version::{Approval, RuleSetVersion};
pub use ruleset::RuleSet;
pub use silence::Silence;
pub use snapshot::{PatientSnapshot, Persisted, SnapshotPart};
pub use storage::journal::{Journal, JournalError, Progress, Recovered, WriteHook};
pub use storage::{PositionError, Positions, SetAside, StoredWindows, WindowWrite};
