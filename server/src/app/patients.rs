//! Enrolment, consent, cohorts and per-patient thresholds, changed live, checked as the
//! configuration file's `[[patients]]` are. Unenrolling or withdrawing consent drops the
//! patient's windows and duplicate state and resolves its alerts.

use std::collections::HashSet;
use std::sync::Arc;

use tracing::{info, warn};
use vigil_alerting::engine::PatientView;
use vigil_alerting::patient_check::{problems, RuleLookup};
use vigil_alerting::PatientProfile;

use super::{fields, App, AppError, Caller};
use crate::clock::now_ms;

impl App {
    /// Enrolls a patient or updates its profile; returns how many alerts it resolved.
    pub async fn enroll(
        &self,
        caller: &Caller,
        profile: PatientProfile,
    ) -> Result<usize, AppError> {
        fields::required_id("id", &profile.id)?;
        fields::id("care_team", &profile.care_team)?;
        for c in &profile.conditions {
            fields::id("conditions", c)?;
        }
        if profile.conditions.len() > fields::MAX_LIST || profile.overrides.len() > fields::MAX_LIST
        {
            return Err(AppError::Invalid(format!(
                "conditions and overrides hold at most {} entries each",
                fields::MAX_LIST
            )));
        }
        for (rule_id, _) in &profile.overrides {
            fields::id("overrides", rule_id)?;
        }
        fields::id("tier", profile.tier.as_deref().unwrap_or(""))?;
        fields::id("responsible", profile.responsible.as_deref().unwrap_or(""))?;
        let rules = self.engine.rules();
        let lookup = RuleLookup {
            get: |id: &str| rules.get(id),
            source: "the rules in force",
        };
        let teams: HashSet<String> = self.care_teams.iter().cloned().collect();
        let found = problems(&profile, &lookup, &teams);
        if !found.is_empty() {
            return Err(AppError::Invalid(format!(
                "patient '{}': {}",
                profile.id,
                found.join("; ")
            )));
        }
        let consent = profile.consent;
        let id: Arc<str> = profile.id.clone();
        let before = self.engine.patient(&id).map(|p| p.consent);
        let resolved = match self.shared() {
            Some(cluster) => {
                let open = if consent {
                    0
                } else {
                    self.open_matching(|a| a.patient_id == id)
                };
                cluster.catalog.put_patient(&profile).await?;
                open
            }
            // (Cluster mode: every node forgets a patient without consent as it applies
            // the change.)
            None => {
                self.journal.put_patient(&profile)?;
                let resolved = self.engine.enroll(profile, now_ms());
                if !consent {
                    self.ingest.forget_patient(&id);
                }
                resolved
            }
        };
        // The consent change is what matters to an auditor; profile contents (conditions,
        // thresholds) are health data and stay out of the log.
        let detail = match (before, consent) {
            (None, c) => format!("enrolled, consent {c}"),
            (Some(b), c) if b != c => format!("consent changed to {c}"),
            (Some(_), c) => format!("profile updated, consent {c}"),
        };
        self.audit
            .record(&caller.audit_actor(""), "enroll", &id, &detail);
        info!(consent, resolved, "patient enrolled or updated");
        Ok(resolved)
    }

    /// Unenrolls a patient; returns how many alerts it resolved.
    pub async fn unenroll(&self, caller: &Caller, id: &str) -> Result<usize, AppError> {
        fields::required_id("patient_id", id)?;
        let missing = || AppError::NotFound(format!("no patient with id '{id}'"));
        let resolved = match self.shared() {
            Some(cluster) => {
                if self.engine.patient(id).is_none() {
                    return Err(missing());
                }
                let open = self.open_matching(|a| &*a.patient_id == id);
                cluster.catalog.delete_patient(id).await?;
                open
            }
            None => {
                if self.engine.patient(id).is_some() {
                    self.journal.remove_patient(id)?;
                }
                let resolved = self.engine.unenroll(id, now_ms()).ok_or_else(missing)?;
                self.ingest.forget_patient(id);
                resolved
            }
        };
        info!(resolved, "patient unenrolled");
        self.audit
            .record(&caller.audit_actor(""), "unenroll", id, "");
        Ok(resolved)
    }

    /// The patient's profile and, per metric, the days it was measured on (`GetPatient`):
    /// counted where the patient's readings are judged (in cluster mode, by the owner of
    /// its partition; if that node cannot be asked, the profile comes without them).
    pub async fn patient_record(
        &self,
        id: &str,
    ) -> Result<(Arc<PatientProfile>, Option<PatientView>), AppError> {
        let profile = self.patient(id)?;
        let view = match self.shared() {
            Some(cluster) => match cluster.patient_view(id, 0).await {
                Ok(view) => view,
                Err(why) => {
                    warn!(%why, "measured days of a patient not available from its owner");
                    None
                }
            },
            None => self.engine.patient_view(id, 0, now_ms()),
        };
        Ok((profile, view))
    }

    pub fn patient(&self, id: &str) -> Result<Arc<PatientProfile>, AppError> {
        fields::required_id("patient_id", id)?;
        self.engine
            .patient(id)
            .ok_or_else(|| AppError::NotFound(format!("no patient with id '{id}'")))
    }
}
