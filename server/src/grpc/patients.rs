//! `vigil.v1.Patients`: enrolment, consent, cohorts and per-patient thresholds, changed live.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_proto::v1::{self, patients_server::Patients};

use super::guard::caller;
use super::{convert, status};
use crate::app::App;

pub struct PatientsService {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl Patients for PatientsService {
    async fn enroll(&self, request: Request<v1::Patient>) -> Result<Response<v1::Patient>, Status> {
        let profile = convert::profile(request.get_ref());
        let reply = convert::patient(&profile);
        self.app
            .enroll(&caller(&request), profile)
            .await
            .map_err(status)?;
        Ok(Response::new(reply))
    }

    async fn unenroll(
        &self,
        request: Request<v1::UnenrollRequest>,
    ) -> Result<Response<v1::UnenrollResponse>, Status> {
        let resolved = self
            .app
            .unenroll(&caller(&request), &request.get_ref().patient_id)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::UnenrollResponse {
            unenrolled: true,
            alerts_resolved: resolved as u32,
        }))
    }

    async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::Patient>, Status> {
        let (patient, view) = self
            .app
            .patient_record(&request.get_ref().patient_id)
            .await
            .map_err(status)?;
        let mut reply = convert::patient(&patient);
        reply.adherence = view.as_ref().map(convert::adherence).unwrap_or_default();
        Ok(Response::new(reply))
    }
}
