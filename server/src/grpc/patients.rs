//! `vigil.v1.Patients`: enrolment, consent, cohorts and per-patient thresholds, changed live.
//! Unenrolling or withdrawing consent drops the patient's windows and resolves its alerts.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::info;
use vigil_alerting::rule_spec::TIERS;
use vigil_alerting::{Engine, Journal};
use vigil_proto::v1::{self, patients_server::Patients};

use super::{convert, fields};
use crate::app::ingest::Pipeline;
use crate::audit::{self, AuditLog};
use crate::auth::grpc_guard::caller;
use crate::clock::now_ms;

pub struct PatientsService {
    pub engine: Arc<Engine>,
    pub journal: Arc<Journal>,
    pub audit: Arc<AuditLog>,
    pub pipeline: Arc<Pipeline>,
}

#[tonic::async_trait]
impl Patients for PatientsService {
    async fn enroll(&self, request: Request<v1::Patient>) -> Result<Response<v1::Patient>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let p = request.get_ref();
        fields::required_id("id", &p.id)?;
        fields::id("care_team", &p.care_team)?;
        fields::ids("conditions", &p.conditions)?;
        fields::id("tier", &p.tier)?;
        let rule_ids: Vec<String> = p.overrides.keys().cloned().collect();
        fields::ids("overrides", &rule_ids)?;
        let profile = convert::profile(p);
        let mut errors = Vec::new();
        if let Err(r) = vigil_ingest::validate_patient_id(&profile.id) {
            errors.push(format!("patient id: {}", r.detail));
        }
        if let Some(t) = &profile.tier {
            if !TIERS.contains(&&**t) {
                errors.push(format!("tier '{t}' is not one of A, B, C"));
            }
        }
        if !(1..=2).contains(&profile.spo2_scale) {
            errors.push("spo2_scale must be 1 or 2".into());
        }
        let rules = self.engine.rules();
        for (rule_id, o) in &profile.overrides {
            match rules.get(rule_id) {
                Some(rule) => errors.extend(
                    rule.check_override(o)
                        .into_iter()
                        .map(|m| format!("override of '{rule_id}': {m}")),
                ),
                None => errors.push(format!("override for unknown rule '{rule_id}'")),
            }
        }
        if !errors.is_empty() {
            return Err(Status::invalid_argument(format!(
                "patient '{}': {}",
                profile.id,
                errors.join("; ")
            )));
        }
        self.journal
            .put_patient(&profile)
            .map_err(super::journal_unavailable)?;
        let reply = convert::patient(&profile);
        let consent = profile.consent;
        let id = profile.id.clone();
        let before = self.engine.patient(&id).map(|p| p.consent);
        let resolved = self.engine.enroll(profile, now_ms());
        // The consent change is what matters to an auditor; profile contents (conditions,
        // thresholds) are health data and stay out of the log.
        let detail = match (before, consent) {
            (None, c) => format!("enrolled, consent {c}"),
            (Some(b), c) if b != c => format!("consent changed to {c}"),
            (Some(_), c) => format!("profile updated, consent {c}"),
        };
        self.audit.record(
            &audit::actor("", peer, who.as_deref()),
            "enroll",
            &id,
            &detail,
        );
        if !consent {
            self.pipeline.forget_patient(&id);
        }
        info!(consent, resolved, "patient enrolled or updated");
        Ok(Response::new(reply))
    }

    async fn unenroll(
        &self,
        request: Request<v1::UnenrollRequest>,
    ) -> Result<Response<v1::UnenrollResponse>, Status> {
        let peer = request.remote_addr();
        let who = caller(&request);
        let id = request.into_inner().patient_id;
        fields::required_id("patient_id", &id)?;
        if self.engine.patient(&id).is_some() {
            self.journal
                .remove_patient(&id)
                .map_err(super::journal_unavailable)?;
        }
        match self.engine.unenroll(&id, now_ms()) {
            Some(resolved) => {
                self.pipeline.forget_patient(&id);
                info!(resolved, "patient unenrolled");
                self.audit
                    .record(&audit::actor("", peer, who.as_deref()), "unenroll", &id, "");
                Ok(Response::new(v1::UnenrollResponse {
                    unenrolled: true,
                    alerts_resolved: resolved as u32,
                }))
            }
            None => Err(Status::not_found(format!("no patient with id '{id}'"))),
        }
    }

    async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::Patient>, Status> {
        let id = request.into_inner().patient_id;
        fields::required_id("patient_id", &id)?;
        match self.engine.patient(&id) {
            Some(p) => Ok(Response::new(convert::patient(&p))),
            None => Err(Status::not_found(format!("no patient with id '{id}'"))),
        }
    }
}
