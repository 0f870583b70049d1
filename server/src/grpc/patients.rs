//! `vigil.v1.Patients`: patient lookup. Live enrolment (Enroll, Unenroll) is not in this
//! version: it answers UNIMPLEMENTED and says how to enrol today.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_alerting::Engine;
use vigil_proto::v1::{self, patients_server::Patients};

use super::convert;

pub struct PatientsService {
    pub engine: Arc<Engine>,
}

const LIVE_CHANGES: &str =
    "live enrolment is not supported by this version: edit [[patients]] in the configuration file and restart";

#[tonic::async_trait]
impl Patients for PatientsService {
    async fn enroll(
        &self,
        _request: Request<v1::Patient>,
    ) -> Result<Response<v1::Patient>, Status> {
        Err(Status::unimplemented(LIVE_CHANGES))
    }

    async fn unenroll(
        &self,
        _request: Request<v1::UnenrollRequest>,
    ) -> Result<Response<v1::UnenrollResponse>, Status> {
        Err(Status::unimplemented(LIVE_CHANGES))
    }

    async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::Patient>, Status> {
        let id = request.into_inner().patient_id;
        match self.engine.patient(&id) {
            Some(p) => Ok(Response::new(convert::patient(&p))),
            None => Err(Status::not_found(format!("no patient with id '{id}'"))),
        }
    }
}
