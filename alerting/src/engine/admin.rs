//! Live changes to the rules and patients, and what the engine reports about itself.

use super::*;

impl Engine {
    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules.load_full()
    }

    /// Adds a rule or replaces the one with the same id, without touching window state:
    /// a new version of the rule set, as `approval` says, which it returns. Patients
    /// already seen are armed for a new `absent` rule at their next reading.
    pub fn put_rule(&self, rule: Rule, approval: Approval) -> Arc<RuleSetVersion> {
        let mut made = None;
        self.rules.rcu(|set| {
            let next = set.with_rule(rule.clone(), approval.clone());
            made = Some(next.version().clone());
            next
        });
        made.expect("rcu runs its closure at least once")
    }

    /// Deletes a rule (a new version of the rule set, as `approval` says) and resolves its
    /// open alerts (note "rule deleted"). Returns how many alerts were resolved, or `None`
    /// if no rule has that id.
    pub fn delete_rule(&self, id: &str, approval: Approval, now_ms: i64) -> Option<usize> {
        self.rules.load().get(id)?;
        self.rules.rcu(|set| {
            set.without(id, approval.clone())
                .unwrap_or_else(|| RuleSet::clone_of(set))
        });
        Some(
            self.durable(
                self.book
                    .resolve_where(|a| &*a.rule_id == id, "rule deleted", now_ms),
            ),
        )
    }

    /// Which version of the rules is in force.
    pub fn rules_version(&self) -> Arc<RuleSetVersion> {
        self.rules.load().version().clone()
    }

    /// Names the rules in force as `version` (at start, from the journal or the
    /// configuration file; a cluster node, from the catalog).
    pub fn set_rules_version(&self, version: RuleSetVersion) {
        self.rules
            .rcu(|set| RuleSet::clone_of(set).with_version(version.clone()));
    }

    /// Whether every patient is accepted (no `[[patients]]` configured), rather than only
    /// enrolled ones.
    pub fn open_enrollment(&self) -> bool {
        self.open_enrollment
    }

    pub fn patient(&self, id: &str) -> Option<Arc<PatientProfile>> {
        self.store.profile(id)
    }

    /// Enrols a patient or updates its profile, keeping its windows. Withdrawing consent
    /// drops the patient's windows and resolves its alerts (note "consent withdrawn");
    /// returns how many were resolved.
    pub fn enroll(&self, profile: PatientProfile, now_ms: i64) -> usize {
        let (id, consent) = (profile.id.clone(), profile.consent);
        self.store.upsert_profile(profile);
        if consent {
            0
        } else {
            self.durable(self.book.resolve_where(
                |a| a.patient_id == id,
                "consent withdrawn",
                now_ms,
            ))
        }
    }

    /// Removes a patient, its windows and its open alerts (note "patient unenrolled").
    /// Returns how many alerts were resolved, or `None` if the patient is unknown.
    pub fn unenroll(&self, id: &str, now_ms: i64) -> Option<usize> {
        self.store.remove(id)?;
        Some(self.durable(self.book.resolve_where(
            |a| &*a.patient_id == id,
            "patient unenrolled",
            now_ms,
        )))
    }

    /// Every tracked patient's profile.
    pub fn profiles(&self) -> Vec<Arc<PatientProfile>> {
        self.store
            .ids()
            .iter()
            .filter_map(|id| self.store.profile(id))
            .collect()
    }

    pub fn patients_tracked(&self) -> usize {
        self.store.len()
    }

    pub fn active_alerts(&self) -> usize {
        self.book.len()
    }

    /// Pending absence deadlines (for metrics and tests).
    pub fn pending_deadlines(&self) -> usize {
        self.timers.len()
    }
}
