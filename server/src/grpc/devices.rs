//! `vigil.v1.Devices`: provisioning MQTT device credentials (admin role).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use vigil_proto::v1::{self, devices_server::Devices};

use super::guard::caller;
use super::status;
use crate::app::App;
use crate::auth::device::DeviceRecord;

pub struct DevicesService {
    pub app: Arc<App>,
}

#[tonic::async_trait]
impl Devices for DevicesService {
    async fn provision(
        &self,
        request: Request<v1::ProvisionDeviceRequest>,
    ) -> Result<Response<v1::ProvisionDeviceResponse>, Status> {
        let who = caller(&request);
        let r = request.into_inner();
        let secret = (!r.secret.is_empty()).then_some(r.secret);
        let (record, generated) = self
            .app
            .provision(&who, r.id, r.patient_id, secret)
            .await
            .map_err(status)?;
        Ok(Response::new(v1::ProvisionDeviceResponse {
            device: Some(device(&record)),
            secret: generated.unwrap_or_default(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<v1::RevokeDeviceRequest>,
    ) -> Result<Response<v1::Device>, Status> {
        let who = caller(&request);
        let record = self
            .app
            .revoke(&who, request.into_inner().id)
            .await
            .map_err(status)?;
        Ok(Response::new(device(&record)))
    }

    async fn list_devices(
        &self,
        _request: Request<v1::ListDevicesRequest>,
    ) -> Result<Response<v1::ListDevicesResponse>, Status> {
        Ok(Response::new(v1::ListDevicesResponse {
            devices: self.app.devices().iter().map(device).collect(),
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
