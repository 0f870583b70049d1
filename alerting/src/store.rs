//! The sharded in-memory store: per patient, one sliding window per metric and the
//! patient's open alerts, behind a lock-sharded map so readings for different patients
//! never contend on one lock.

use std::sync::Arc;

use dashmap::mapref::one::RefMut;
use dashmap::DashMap;
use vigil_ingest::Metric;

use crate::book::OpenFlag;
use crate::patient::PatientProfile;
use crate::window::{Sample, Window};

/// An alert that is open (active or acknowledged) for one of the patient's rules.
#[derive(Debug, Clone)]
pub struct OpenAlert {
    pub rule_id: Arc<str>,
    pub alert_id: Arc<str>,
    /// Cleared by the alert book when the alert resolves (by a person or the engine).
    pub flag: OpenFlag,
}

/// Everything kept per patient.
#[derive(Debug)]
pub struct PatientState {
    pub profile: Arc<PatientProfile>,
    pub windows: [Window; Metric::COUNT],
    /// Each metric's newest sample, inline: multi-metric rules (NEWS2) read these without
    /// touching seven separate window buffers.
    pub latest: [Option<Sample>; Metric::COUNT],
    /// Open alerts by rule; empty (and unallocated) for almost every patient.
    pub open: Vec<OpenAlert>,
    /// Server time of the last reading per metric, for `absent` rules (0: never).
    pub last_wall_ms: [i64; Metric::COUNT],
    /// Bit per metric: an absence deadline is pending in the timer heap.
    pub armed: u16,
}

impl PatientState {
    pub fn new(profile: Arc<PatientProfile>) -> PatientState {
        PatientState {
            profile,
            windows: Default::default(),
            latest: [None; Metric::COUNT],
            open: Vec::new(),
            last_wall_ms: [0; Metric::COUNT],
            armed: 0,
        }
    }
}

/// Patients by id.
#[derive(Default)]
pub struct Store {
    patients: DashMap<Arc<str>, PatientState>,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The patient's state, locked for writing (only its shard is locked).
    pub fn get_mut(&self, id: &str) -> Option<RefMut<'_, Arc<str>, PatientState>> {
        self.patients.get_mut(id)
    }

    /// The patient's state, created from `profile()` if absent.
    pub fn get_or_insert_with(
        &self,
        id: &str,
        profile: impl FnOnce() -> PatientProfile,
    ) -> RefMut<'_, Arc<str>, PatientState> {
        if let Some(state) = self.patients.get_mut(id) {
            return state;
        }
        self.patients
            .entry(id.into())
            .or_insert_with(|| PatientState::new(Arc::new(profile())))
    }

    /// Installs or replaces a patient's profile, keeping its windows, unless consent is
    /// withdrawn: then nothing recorded about the patient is kept.
    pub fn upsert_profile(&self, profile: PatientProfile) {
        let profile = Arc::new(profile);
        self.patients
            .entry(profile.id.clone())
            .and_modify(|s| {
                if profile.consent {
                    s.profile = profile.clone();
                } else {
                    *s = PatientState::new(profile.clone());
                }
            })
            .or_insert_with(|| PatientState::new(profile.clone()));
    }

    /// A patient's profile.
    pub fn profile(&self, id: &str) -> Option<Arc<PatientProfile>> {
        self.patients.get(id).map(|s| s.profile.clone())
    }

    /// Removes a patient and everything stored for them.
    pub fn remove(&self, id: &str) -> Option<PatientState> {
        self.patients.remove(id).map(|(_, s)| s)
    }

    /// Number of patients tracked (enrolled or seen).
    pub fn len(&self) -> usize {
        self.patients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patients.is_empty()
    }
}
