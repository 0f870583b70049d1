//! Device credentials: a device id bound to one patient and a secret kept only as an
//! Argon2id hash. Devices come from `[[devices]]` in the configuration or from the
//! `Devices` gRPC service (kept in `DATA_DIR/devices.json`, owner-only).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::broadcast;

use super::secret::{self, SecretError, SecretHash};
use super::token::{digest, Digest};
use crate::process::data_dir::write_private;

pub const STORE_FILE: &str = "devices.json";

/// One provisioned device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub id: String,
    pub patient_id: String,
    /// The secret's hash: a keyed digest (`$vigil-hmac-sha256$...`) for a secret Vigil
    /// generated, an Argon2id PHC string (`$argon2id$v=19$m=...`) for one a person chose;
    /// empty for a device that logs in only with a client certificate.
    pub secret_hash: String,
    /// Defined in the configuration file (cannot be changed over gRPC).
    #[serde(skip)]
    pub from_config: bool,
    pub created_ms: i64,
}

#[derive(Debug, Error)]
pub enum DeviceError {
    #[error(
        "device id must be 1 to 128 bytes without '/', '+', '#', whitespace or control characters"
    )]
    BadId,
    #[error("patient id: {0}")]
    BadPatient(std::borrow::Cow<'static, str>),
    #[error("secret must be at least 16 characters")]
    WeakSecret,
    #[error("device '{0}' is defined in the configuration file; change it there")]
    FromConfig(String),
    #[error("no device '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
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

/// Checks that `hash` is a stored secret hash Vigil can verify against (a keyed digest or
/// an Argon2 PHC string).
pub fn check_hash(hash: &str) -> Result<(), DeviceError> {
    SecretHash::parse(hash)
        .map(|_| ())
        .map_err(DeviceError::from)
}

pub fn check_id(id: &str) -> Result<(), DeviceError> {
    if id.is_empty()
        || id.len() > 128
        || id
            .chars()
            .any(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control())
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

/// The devices the server knows, and a cache of chosen secrets already verified (Argon2
/// costs tens of milliseconds by design; a device pays it once per secret, not once per
/// connection).
pub struct DeviceBook {
    devices: RwLock<HashMap<String, DeviceRecord>>,
    verified: Mutex<HashMap<String, Digest>>,
    store: Option<PathBuf>,
    revoked: broadcast::Sender<String>,
    /// Checked instead of a record for an id that has none, so that an unknown id costs
    /// what a known one does and ids cannot be probed by timing.
    decoy_keyed: SecretHash,
    decoy_argon2: OnceLock<SecretHash>,
    /// Whether any device's secret is an Argon2 hash (kept up to date on every change).
    any_slow: AtomicBool,
}

/// How a presented secret is checked: at once, or by an Argon2 verification that must run
/// off the async workers ([`DeviceBook::finish`]).
pub enum SecretCheck {
    /// Decided: the device's patient, or `None` (unknown id or wrong secret).
    Done(Option<String>),
    /// An Argon2 hash to verify (a decoy one for an unknown id).
    Slow(SlowCheck),
}

/// An Argon2 verification still to run.
pub struct SlowCheck {
    record: Option<DeviceRecord>,
    hash: Option<SecretHash>,
    presented: Digest,
}

impl DeviceBook {
    pub fn empty() -> DeviceBook {
        let mut salt = [0u8; 16];
        let _ = getrandom::fill(&mut salt);
        DeviceBook {
            devices: RwLock::default(),
            verified: Mutex::default(),
            store: None,
            revoked: broadcast::channel(64).0,
            decoy_keyed: SecretHash::Keyed { salt, mac: [0; 32] },
            decoy_argon2: OnceLock::new(),
            any_slow: AtomicBool::new(false),
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
        let book = DeviceBook {
            store: Some(path),
            ..DeviceBook::empty()
        };
        book.recount(&devices);
        *book.devices.write().expect("device lock") = devices;
        Ok(book)
    }

    /// The patient `id` speaks for, if `secret` is its secret. Blocking (Argon2).
    pub fn verify(&self, id: &str, secret: &[u8]) -> Option<String> {
        match self.begin(id, secret) {
            SecretCheck::Done(patient) => patient,
            SecretCheck::Slow(check) => self.finish(check, secret),
        }
    }

    /// Checks `secret` at once where that is cheap: a keyed digest, a cached Argon2
    /// result. An unknown id or a device without a secret is checked against a decoy: an
    /// Argon2 one while any device has an Argon2 hash, else a keyed one.
    pub fn begin(&self, id: &str, secret: &[u8]) -> SecretCheck {
        let record = self.devices.read().expect("device lock").get(id).cloned();
        let hash = record
            .as_ref()
            .and_then(|r| SecretHash::parse(&r.secret_hash).ok())
            .filter(|h| *h != SecretHash::None);
        let presented = digest(&String::from_utf8_lossy(secret));
        match (record, hash) {
            (Some(record), Some(hash)) if hash.is_slow() => {
                if self.verified.lock().expect("cache lock").get(id) == Some(&presented) {
                    return SecretCheck::Done(Some(record.patient_id));
                }
                SecretCheck::Slow(SlowCheck {
                    record: Some(record),
                    hash: Some(hash),
                    presented,
                })
            }
            (Some(record), Some(hash)) => {
                SecretCheck::Done(hash.verify(secret).then_some(record.patient_id))
            }
            _ if self.any_slow() => SecretCheck::Slow(SlowCheck {
                record: None,
                hash: None,
                presented,
            }),
            _ => {
                let _ = self.decoy_keyed.verify(secret);
                SecretCheck::Done(None)
            }
        }
    }

    /// Runs an Argon2 verification [`begin`](Self::begin) left. Blocking.
    pub fn finish(&self, check: SlowCheck, secret: &[u8]) -> Option<String> {
        let Some((record, hash)) = check.record.zip(check.hash) else {
            let _ = self.decoy_argon2().verify(secret);
            return None;
        };
        if !hash.verify(secret) {
            return None;
        }
        // Cache only if the record was not changed meanwhile.
        let devices = self.devices.read().expect("device lock");
        if devices.get(&record.id) == Some(&record) {
            self.verified
                .lock()
                .expect("cache lock")
                .insert(record.id.clone(), check.presented);
        }
        Some(record.patient_id)
    }

    fn any_slow(&self) -> bool {
        self.any_slow.load(Ordering::Acquire)
    }

    /// Notes whether any device's secret is an Argon2 hash, after a change to `devices`.
    fn recount(&self, devices: &HashMap<String, DeviceRecord>) {
        let slow = devices
            .values()
            .any(|d| SecretHash::parse(&d.secret_hash).is_ok_and(|h| h.is_slow()));
        self.any_slow.store(slow, Ordering::Release);
    }

    fn decoy_argon2(&self) -> &SecretHash {
        self.decoy_argon2.get_or_init(|| {
            let decoy = secret::generate().unwrap_or_default();
            secret::hash_chosen(&decoy)
                .ok()
                .and_then(|h| SecretHash::parse(&h).ok())
                .unwrap_or(SecretHash::None)
        })
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
        let (record, generated) = self.prepare(id, patient_id, secret, now_ms)?;
        self.install(record.clone())?;
        Ok((record, generated))
    }

    /// Checks a device to provision and hashes its secret (generated when none is given),
    /// without adding it.
    pub fn prepare(
        &self,
        id: &str,
        patient_id: &str,
        secret: Option<&str>,
        now_ms: i64,
    ) -> Result<(DeviceRecord, Option<String>), DeviceError> {
        check_id(id)?;
        check_patient(patient_id)?;
        if self.get(id).is_some_and(|d| d.from_config) {
            return Err(DeviceError::FromConfig(id.to_string()));
        }
        let (secret_hash, generated) = match secret {
            Some(s) if s.chars().count() < 16 => return Err(DeviceError::WeakSecret),
            // A person chose it: it may be guessable, so it gets the slow hash.
            Some(s) => (secret::hash_chosen(s)?, None),
            None => {
                let generated = secret::generate()?;
                (secret::hash_generated(&generated)?, Some(generated))
            }
        };
        let record = DeviceRecord {
            id: id.to_string(),
            patient_id: patient_id.to_string(),
            secret_hash,
            from_config: false,
            created_ms: now_ms,
        };
        Ok((record, generated))
    }

    /// Adds or replaces a prepared device (one from the cluster catalog: checked again, as
    /// it crossed the network); connections with its former credentials are told to close.
    pub fn install(&self, record: DeviceRecord) -> Result<(), DeviceError> {
        check_id(&record.id)?;
        check_patient(&record.patient_id)?;
        if !record.secret_hash.is_empty() {
            check_hash(&record.secret_hash)?;
        }
        let id = record.id.clone();
        {
            let mut devices = self.devices.write().expect("device lock");
            if devices.get(&id).is_some_and(|d| d.from_config) {
                return Err(DeviceError::FromConfig(id));
            }
            let previous = devices.insert(id.clone(), record);
            if let Err(e) = self.persist(&devices) {
                match previous {
                    Some(p) => devices.insert(id.clone(), p),
                    None => devices.remove(&id),
                };
                return Err(e);
            }
            self.recount(&devices);
        }
        self.forget(&id);
        Ok(())
    }

    /// The device `id`, if it exists.
    pub fn get(&self, id: &str) -> Option<DeviceRecord> {
        self.devices.read().expect("device lock").get(id).cloned()
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
            self.recount(&devices);
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

    /// Writes the gRPC-provisioned devices atomically (see [`write_private`]).
    fn persist(&self, devices: &HashMap<String, DeviceRecord>) -> Result<(), DeviceError> {
        let Some(path) = &self.store else {
            return Ok(());
        };
        let mut stored: Vec<&DeviceRecord> = devices.values().filter(|d| !d.from_config).collect();
        stored.sort_by(|a, b| a.id.cmp(&b.id));
        let bytes = serde_json::to_vec_pretty(&stored).expect("device records serialize");
        write_private(path, &bytes).map_err(|source| DeviceError::Store {
            path: path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, secret_hash: String) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            patient_id: "p-1".into(),
            secret_hash,
            from_config: true,
            created_ms: 0,
        }
    }

    #[test]
    fn an_unknown_id_costs_what_a_known_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let fast = secret::hash_generated("a".repeat(48).as_str()).unwrap();
        let book = DeviceBook::load(vec![record("cuff-1", fast.clone())], dir.path()).unwrap();
        // Only generated secrets: a known and an unknown id are both decided at once.
        assert!(matches!(
            book.begin("cuff-1", b"wrong"),
            SecretCheck::Done(None)
        ));
        assert!(matches!(
            book.begin("nobody", b"wrong"),
            SecretCheck::Done(None)
        ));
        assert!(matches!(
            book.begin("cuff-1", "a".repeat(48).as_bytes()),
            SecretCheck::Done(Some(_))
        ));

        // Once any secret is Argon2, an unknown id takes the Argon2 path too.
        let slow = secret::hash_chosen("chosen by a person").unwrap();
        let mixed = DeviceBook::load(
            vec![record("cuff-1", fast), record("scale-2", slow)],
            dir.path(),
        )
        .unwrap();
        assert!(matches!(
            mixed.begin("scale-2", b"wrong"),
            SecretCheck::Slow(_)
        ));
        let SecretCheck::Slow(decoy) = mixed.begin("nobody", b"chosen by a person") else {
            panic!("an unknown id is checked against an Argon2 decoy");
        };
        assert_eq!(mixed.finish(decoy, b"chosen by a person"), None);
        assert!(mixed.decoy_argon2.get().is_some_and(|d| d.is_slow()));
    }

    #[test]
    fn secrets_verify_only_against_their_own_hash_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let configured = DeviceRecord {
            id: "cuff-1".into(),
            patient_id: "p-1".into(),
            secret_hash: secret::hash_chosen("correct horse battery").unwrap(),
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
        assert!(matches!(
            book.provision("cuff\u{0}2", "p", None, 5),
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
