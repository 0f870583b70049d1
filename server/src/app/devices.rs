//! MQTT device credentials, provisioned live: a device bound to an enrolled patient, its
//! secret shown once; revoking one closes its connections.

use super::{fields, App, AppError, Caller};
use crate::auth::device::{DeviceError, DeviceRecord};
use crate::auth::secret::SecretError;
use crate::clock::now_ms;

impl App {
    /// Adds or replaces a device; returns it and, when no secret was given, the generated
    /// one (shown once).
    pub async fn provision(
        &self,
        caller: &Caller,
        id: String,
        patient_id: String,
        secret: Option<String>,
    ) -> Result<(DeviceRecord, Option<String>), AppError> {
        fields::required_id("id", &id)?;
        fields::required_id("patient_id", &patient_id)?;
        fields::text("secret", secret.as_deref().unwrap_or(""))?;
        if !self.engine.open_enrollment() && self.engine.patient(&patient_id).is_none() {
            return Err(AppError::Precondition(format!(
                "patient '{patient_id}' is not enrolled: enroll it first (Patients.Enroll or \
                 [[patients]]); a device for nobody could never publish"
            )));
        }
        let auth = self.auth.clone();
        let shared = self.shared().is_some();
        // Argon2 and an fsync: off the async workers.
        let (record, generated) = tokio::task::spawn_blocking(move || {
            let (record, generated) =
                auth.devices
                    .prepare(&id, &patient_id, secret.as_deref(), now_ms())?;
            if !shared {
                auth.devices.install(record.clone())?;
            }
            Ok((record, generated))
        })
        .await
        .map_err(|e| AppError::Unavailable(format!("provisioning failed: {e}")))?
        .map_err(device_error)?;
        if let Some(cluster) = self.shared() {
            // Every node installs it from the catalog, this one included.
            cluster.catalog.put_device(&record).await?;
        }
        self.audit.record(
            &caller.audit_actor(""),
            "device_provision",
            &record.id,
            &format!("patient {}", record.patient_id),
        );
        Ok((record, generated))
    }

    /// Removes a device; its open connections are closed.
    pub async fn revoke(&self, caller: &Caller, id: String) -> Result<DeviceRecord, AppError> {
        fields::required_id("id", &id)?;
        if let Some(cluster) = self.shared() {
            let Some(record) = self.auth.devices.get(&id) else {
                return Err(device_error(DeviceError::NotFound(id)));
            };
            if record.from_config {
                return Err(device_error(DeviceError::FromConfig(id)));
            }
            // Every node removes it and closes its connections, this one included.
            cluster.catalog.delete_device(&id).await?;
            self.audit
                .record(&caller.audit_actor(""), "device_revoke", &record.id, "");
            return Ok(record);
        }
        let auth = self.auth.clone();
        let record = tokio::task::spawn_blocking(move || auth.devices.revoke(&id))
            .await
            .map_err(|e| AppError::Unavailable(format!("revocation failed: {e}")))?
            .map_err(device_error)?;
        self.audit
            .record(&caller.audit_actor(""), "device_revoke", &record.id, "");
        Ok(record)
    }

    pub fn devices(&self) -> Vec<DeviceRecord> {
        self.auth.devices.list()
    }
}

fn device_error(e: DeviceError) -> AppError {
    match e {
        DeviceError::BadId
        | DeviceError::BadPatient(_)
        | DeviceError::WeakSecret
        | DeviceError::Secret(SecretError::BadHash(_)) => AppError::Invalid(e.to_string()),
        DeviceError::FromConfig(_) => AppError::Precondition(e.to_string()),
        DeviceError::NotFound(_) => AppError::NotFound(e.to_string()),
        DeviceError::Secret(SecretError::Hashing(_))
        | DeviceError::Store { .. }
        | DeviceError::Corrupt { .. } => {
            AppError::Unavailable(format!("{e}; nothing was changed, retry later"))
        }
    }
}
