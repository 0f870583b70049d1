//! Device credentials: a device id bound to one patient and a secret kept only as an
//! Argon2id hash. Devices come from `[[devices]]` in the configuration or from the
//! `Devices` gRPC service (kept in `DATA_DIR/devices.json`, owner-only).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::broadcast;

use super::token::{digest, hex, Digest};

pub const STORE_FILE: &str = "devices.json";

/// One provisioned device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub patient_id: String,
    /// Argon2id PHC string (`$argon2id$v=19$m=...`); empty for a device that logs in only
    /// with a client certificate (no secret verifies against it).
    pub secret_hash: String,
    /// Defined in the configuration file (cannot be changed over gRPC).
    #[serde(skip)]
    pub from_config: bool,
    pub created_ms: i64,
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error("device id must be 1 to 128 characters without '/', '+', '#' or whitespace")]
    BadId,
    #[error("patient id: {0}")]
    BadPatient(std::borrow::Cow<'static, str>),
    #[error("secret must be at least 16 characters")]
    WeakSecret,
    #[error("`secret_hash` is not an Argon2 PHC string ({0}); `vigil device add` prints one")]
    BadHash(String),
    #[error("device '{0}' is defined in the configuration file; change it there")]
    FromConfig(String),
    #[error("no device '{0}'")]
    NotFound(String),
    #[error("cannot hash the secret: {0}")]
    Hash(String),
    #[error("cannot read or write {path}: {source}")]
    Store {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid device list: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The Argon2id hash of `secret` with a fresh salt (RFC 9106 / OWASP parameters, the
/// crate's defaults: 19 MiB, 2 passes).
pub fn hash_secret(secret: &str) -> Result<String, DeviceError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DeviceError::Hash(e.to_string()))
}

/// Checks that `hash` is a PHC string Argon2 can verify against.
pub fn check_hash(hash: &str) -> Result<(), DeviceError> {
    PasswordHash::new(hash)
        .map(|_| ())
        .map_err(|e| DeviceError::BadHash(e.to_string()))
}

/// A new random device secret (192 bits, hex).
pub fn generate_secret() -> Result<String, DeviceError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| DeviceError::Hash(e.to_string()))?;
    Ok(hex(&bytes))
}

pub fn check_id(id: &str) -> Result<(), DeviceError> {
    if id.is_empty()
        || id.len() > 128
        || id
            .chars()
            .any(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace())
    {
        return Err(DeviceError::BadId);
    }
    Ok(())
}

/// The same rule as for patient ids in topics (a device bound to any other id could never
/// publish).
pub fn check_patient(patient_id: &str) -> Result<(), DeviceError> {
    vigil_ingest::validate_patient_id(patient_id).map_err(|r| DeviceError::BadPatient(r.detail))
}

/// The devices the server knows, and a cache of secrets already verified (Argon2 costs
/// tens of milliseconds by design; a fleet reconnecting after a restart pays it once per
/// device, not once per connection).
pub struct DeviceBook {
    devices: RwLock<HashMap<String, DeviceRecord>>,
    verified: Mutex<HashMap<String, Digest>>,
    store: Option<PathBuf>,
    revoked: broadcast::Sender<String>,
}

impl DeviceBook {
    pub fn empty() -> DeviceBook {
        DeviceBook {
            devices: RwLock::default(),
            verified: Mutex::default(),
            store: None,
            revoked: broadcast::channel(64).0,
        }
    }

    /// The configured devices plus those provisioned earlier over gRPC (`data_dir`).
    pub fn load(configured: Vec<DeviceRecord>, data_dir: &Path) -> Result<DeviceBook, DeviceError> {
        let path = data_dir.join(STORE_FILE);
        let stored: Vec<DeviceRecord> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| DeviceError::Corrupt {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(DeviceError::Store { path, source }),
        };
        let mut devices: HashMap<String, DeviceRecord> =
            stored.into_iter().map(|d| (d.id.clone(), d)).collect();
        for mut d in configured {
            d.from_config = true;
            devices.insert(d.id.clone(), d);
        }
        Ok(DeviceBook {
            devices: RwLock::new(devices),
            store: Some(path),
            ..DeviceBook::empty()
        })
    }

    /// The patient `id` speaks for, if `secret` is its secret. Blocking (Argon2).
    pub fn verify(&self, id: &str, secret: &[u8]) -> Option<String> {
        let record = self.devices.read().expect("device lock").get(id).cloned()?;
        let presented = digest(&String::from_utf8_lossy(secret));
        if self.verified.lock().expect("cache lock").get(id) == Some(&presented) {
            return Some(record.patient_id);
        }
        let hash = PasswordHash::new(&record.secret_hash).ok()?;
        Argon2::default().verify_password(secret, &hash).ok()?;
        // Cache only if the record was not changed meanwhile.
        let devices = self.devices.read().expect("device lock");
        if devices.get(id) == Some(&record) {
            self.verified
                .lock()
                .expect("cache lock")
                .insert(id.to_string(), presented);
        }
        Some(record.patient_id)
    }

    /// Adds or replaces a device (not one from the configuration file). Returns the record
    /// and, when no secret was given, the generated one (shown once).
    pub fn provision(
        &self,
        id: &str,
        patient_id: &str,
        secret: Option<&str>,
        now_ms: i64,
    ) -> Result<(DeviceRecord, Option<String>), DeviceError> {
        check_id(id)?;
        check_patient(patient_id)?;
        let generated = match secret {
            Some(s) if s.chars().count() < 16 => return Err(DeviceError::WeakSecret),
            Some(_) => None,
            None => Some(generate_secret()?),
        };
        let secret_hash = hash_secret(secret.or(generated.as_deref()).unwrap_or_default())?;
        let record = DeviceRecord {
            id: id.to_string(),
            patient_id: patient_id.to_string(),
            secret_hash,
            from_config: false,
            created_ms: now_ms,
        };
        {
            let mut devices = self.devices.write().expect("device lock");
            if devices.get(id).is_some_and(|d| d.from_config) {
                return Err(DeviceError::FromConfig(id.to_string()));
            }
            let previous = devices.insert(id.to_string(), record.clone());
            if let Err(e) = self.persist(&devices) {
                match previous {
                    Some(p) => devices.insert(id.to_string(), p),
                    None => devices.remove(id),
                };
                return Err(e);
            }
        }
        self.forget(id);
        Ok((record, generated))
    }

    /// Removes a device; its open connections are told to close.
    pub fn revoke(&self, id: &str) -> Result<DeviceRecord, DeviceError> {
        let removed = {
            let mut devices = self.devices.write().expect("device lock");
            match devices.get(id) {
                None => return Err(DeviceError::NotFound(id.to_string())),
                Some(d) if d.from_config => return Err(DeviceError::FromConfig(id.to_string())),
                Some(_) => {}
            }
            let removed = devices.remove(id).expect("checked above");
            if let Err(e) = self.persist(&devices) {
                devices.insert(id.to_string(), removed);
                return Err(e);
            }
            removed
        };
        self.forget(id);
        Ok(removed)
    }

    pub fn list(&self) -> Vec<DeviceRecord> {
        let mut all: Vec<DeviceRecord> = self
            .devices
            .read()
            .expect("device lock")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The patient device `id` is bound to, if it exists.
    pub fn patient_of(&self, id: &str) -> Option<String> {
        let devices = self.devices.read().expect("device lock");
        devices.get(id).map(|d| d.patient_id.clone())
    }

    pub fn len(&self) -> usize {
        self.devices.read().expect("device lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Device ids whose credentials were changed or revoked, as it happens.
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.revoked.subscribe()
    }

    fn forget(&self, id: &str) {
        self.verified.lock().expect("cache lock").remove(id);
        let _ = self.revoked.send(id.to_string());
    }

    /// Writes the gRPC-provisioned devices atomically (temporary file, fsync, rename).
    fn persist(&self, devices: &HashMap<String, DeviceRecord>) -> Result<(), DeviceError> {
        let Some(path) = &self.store else {
            return Ok(());
        };
        let mut stored: Vec<&DeviceRecord> = devices.values().filter(|d| !d.from_config).collect();
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        let bytes = serde_json::to_vec_pretty(&stored).expect("device records serialize");
        let tmp = path.with_extension("json.tmp");
        let io = |source| DeviceError::Store {
            path: path.clone(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_verify_only_against_their_own_hash_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let configured = DeviceRecord {
            id: "cuff-1".into(),
            patient_id: "p-1".into(),
            secret_hash: hash_secret("correct horse battery").unwrap(),
            from_config: false,
            created_ms: 0,
        };
        assert!(configured.secret_hash.starts_with("$argon2id$"));
        let book = DeviceBook::load(vec![configured], dir.path()).unwrap();
        assert_eq!(
            book.verify("cuff-1", b"correct horse battery").as_deref(),
            Some("p-1")
        );
        assert_eq!(
            book.verify("cuff-1", b"correct horse battery").as_deref(),
            Some("p-1"),
            "cached"
        );
        assert_eq!(book.verify("cuff-1", b"wrong horse battery"), None);
        assert_eq!(book.verify("nobody", b"correct horse battery"), None);

        let (rec, secret) = book.provision("scale-2", "p-2", None, 5).unwrap();
        let secret = secret.unwrap();
        assert_eq!(rec.patient_id, "p-2");
        assert!(matches!(
            book.provision("cuff-1", "p-9", Some("0123456789abcdef"), 5),
            Err(DeviceError::FromConfig(_))
        ));
        assert!(matches!(
            book.provision("x", "p-9", Some("short"), 5),
            Err(DeviceError::WeakSecret)
        ));
        assert!(matches!(
            book.provision("a/b", "p", None, 5),
            Err(DeviceError::BadId)
        ));
        let text = std::fs::read_to_string(dir.path().join(STORE_FILE)).unwrap();
        assert!(
            text.contains("scale-2") && !text.contains(&secret),
            "only the hash is stored"
        );
        assert!(
            !text.contains("cuff-1"),
            "configured devices stay in the configuration"
        );

        let mut changes = book.changes();
        let reloaded = DeviceBook::load(Vec::new(), dir.path()).unwrap();
        assert_eq!(
            reloaded.verify("scale-2", secret.as_bytes()).as_deref(),
            Some("p-2")
        );
        book.revoke("scale-2").unwrap();
        assert_eq!(changes.try_recv().unwrap(), "scale-2");
        assert_eq!(book.verify("scale-2", secret.as_bytes()), None, "revoked");
        assert!(matches!(
            book.revoke("scale-2"),
            Err(DeviceError::NotFound(_))
        ));
        assert!(DeviceBook::load(Vec::new(), dir.path())
            .unwrap()
            .list()
            .is_empty());
        assert!(check_hash("plain").is_err());
    }
}
