//! `vigil.v1.Devices`: provisioning MQTT device credentials (admin role).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_proto::v1::{self, devices_server::Devices};

use vigil_alerting::Engine;

use super::fields;
use crate::audit::{self, AuditLog};
use crate::auth::device::{DeviceError, DeviceRecord};
use crate::auth::grpc_guard::caller;
use crate::auth::secret::SecretError;
use crate::auth::Auth;
use crate::clock::now_ms;

pub struct DevicesService {
    pub auth: Arc<Auth>,
    pub audit: Arc<AuditLog>,
    pub engine: Arc<Engine>,
}

#[tonic::async_trait]
impl Devices for DevicesService {
    async fn provision(
        &self,
        request: Request<v1::ProvisionDeviceRequest>,
    ) -> Result<Response<v1::ProvisionDeviceResponse>, Status> {
        let actor = audit::actor("", request.remote_addr(), caller(&request).as_deref());
        let r = request.into_inner();
        fields::required_id("id", &r.id)?;
        fields::required_id("patient_id", &r.patient_id)?;
        fields::text("secret", &r.secret)?;
        if !self.engine.open_enrollment() && self.engine.patient(&r.patient_id).is_none() {
            return Err(Status::failed_precondition(format!(
                "patient '{}' is not enrolled: enroll it first (Patients.Enroll or [[patients]]); \
                 a device for nobody could never publish",
                r.patient_id
            )));
        }
        let auth = self.auth.clone();
        // Argon2 and an fsync: off the async workers.
        let (record, generated) = tokio::task::spawn_blocking(move || {
            let secret = (!r.secret.is_empty()).then_some(r.secret.as_str());
            auth.devices
                .provision(&r.id, &r.patient_id, secret, now_ms())
        })
        .await
        .map_err(|e| Status::internal(format!("provisioning failed: {e}")))?
        .map_err(status)?;
        self.audit.record(
            &actor,
            "device_provision",
            &record.id,
            &format!("patient {}", record.patient_id),
        );
        Ok(Response::new(v1::ProvisionDeviceResponse {
            device: Some(device(&record)),
            secret: generated.unwrap_or_default(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeDeviceRequest>,
    ) -> Result<Response<v1::Device>, Status> {
        let actor = audit::actor("", request.remote_addr(), caller(&request).as_deref());
        let id = request.into_inner().id;
        fields::required_id("id", &id)?;
        let auth = self.auth.clone();
        let record = tokio::task::spawn_blocking(move || auth.devices.revoke(&id))
            .await
            .map_err(|e| Status::internal(format!("revocation failed: {e}")))?
            .map_err(status)?;
        self.audit.record(&actor, "device_revoke", &record.id, "");
        Ok(Response::new(device(&record)))
    }

    async fn list_devices(
        &self,
        _request: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        Ok(Response::new(v1::ListDevicesResponse {
            devices: self.auth.devices.list().iter().map(device).collect(),
        }))
    }
}

fn device(r: &DeviceRecord) -> v1::Device {
    v1::Device {
        id: r.id.clone(),
        patient_id: r.patient_id.clone(),
        from_config: r.from_config,
        created_at_ms: r.created_ms,
    }
}

fn status(e: DeviceError) -> Status {
    match e {
        DeviceError::BadId
        | DeviceError::BadPatient(_)
        | DeviceError::WeakSecret
        | DeviceError::Secret(SecretError::BadHash(_)) => Status::invalid_argument(e.to_string()),
        DeviceError::FromConfig(_) => Status::failed_precondition(e.to_string()),
        DeviceError::NotFound(_) => Status::not_found(e.to_string()),
        DeviceError::Secret(SecretError::Hashing(_))
        | DeviceError::Store { .. }
        | DeviceError::Corrupt { .. } => {
            Status::unavailable(format!("{e}; nothing was changed, retry later"))
        }
    }
}
