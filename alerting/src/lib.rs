//! Vigil's alerting stage: per-patient sliding windows, rule evaluation and the alert
//! lifecycle. `Reading`s in, `AlertEvent`s out; pure and synchronous at its core.

pub mod alert;
pub mod book;
pub mod builtin;
pub mod engine;
pub mod error;
pub mod event_log;
pub mod filter;
pub mod patient;
pub mod rule;
pub mod ruleset;
pub mod store;
pub mod threshold;
pub mod window;

pub use alert::{Alert, AlertEvent, AlertState, EventKind, Severity, Stamp};
pub use builtin::builtin_rules;
pub use engine::{Engine, EngineConfig, Outcome};
pub use error::AlertingError;
pub use event_log::{EventLog, LogStats, MemoryEventLog, Subscription};
pub use filter::AlertFilter;
pub use patient::{PatientProfile, DEFAULT_CARE_TEAM};
pub use rule::{Direction, Rule, RuleKind, RuleOverride, Threshold, ThresholdSpec};
pub use ruleset::RuleSet;
