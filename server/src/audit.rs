//! The audit log: an append-only file of who changed what and when (`DATA_DIR/audit.log`,
//! one JSON object per line, owner-only permissions). It records enrolments, consent
//! changes, unenrolments, rule changes, acknowledgements, resolutions, snoozes, silences,
//! device provisioning and refused credentials; never a reading's value, an alert's message
//! or a secret.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use tracing::error;

use crate::auth::Principal;
use crate::pipeline::now_ms;

pub const FILE_NAME: &str = "audit.log";

/// One line of the audit log.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    at_ms: i64,
    /// Who asked: the caller's token name (and the request's `by`), else `by`, else the
    /// caller's address.
    actor: &'a str,
    action: &'a str,
    /// What it was done to: a patient, rule, alert or silence id.
    target: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    detail: &'a str,
}

pub struct AuditLog {
    file: Mutex<File>,
    path: PathBuf,
}

impl AuditLog {
    /// Opens (creating) `DATA_DIR/audit.log` for appending.
    pub fn open(data_dir: &Path) -> std::io::Result<AuditLog> {
        let path = data_dir.join(FILE_NAME);
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(AuditLog {
            file: Mutex::new(options.open(&path)?),
            path,
        })
    }

    /// Appends one entry and syncs it to disk. A failure is logged at error level (the
    /// change it records has already been made durable in the journal).
    pub fn record(&self, actor: &str, action: &str, target: &str, detail: &str) {
        self.write(actor, action, target, detail, true);
    }

    /// Appends one entry without waiting for the disk (for entries an attacker can
    /// trigger at will, such as refused credentials).
    pub fn record_unsynced(&self, actor: &str, action: &str, target: &str, detail: &str) {
        self.write(actor, action, target, detail, false);
    }

    fn write(&self, actor: &str, action: &str, target: &str, detail: &str, sync: bool) {
        let entry = Entry {
            at_ms: now_ms(),
            actor,
            action,
            target,
            detail,
        };
        let mut line = serde_json::to_vec(&entry).expect("audit entries serialize");
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let written = file
            .write_all(&line)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            error!(path = %self.path.display(), error = %e, action, "audit log write failed");
        }
    }
}

/// The actor of a request: the authenticated token's name (with the request's `by`, when
/// it names a person), else `by`, else the peer address.
pub fn actor(by: &str, peer: Option<SocketAddr>, caller: Option<&Principal>) -> String {
    match (caller, by.is_empty()) {
        (Some(p), true) => format!("token {}", p.name),
        (Some(p), false) => format!("token {} ({by})", p.name),
        (None, false) => by.to_string(),
        (None, true) => match peer {
            Some(addr) => format!("unauthenticated {addr}"),
            None => "unauthenticated".to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path()).unwrap();
            log.record("nurse-1", "acknowledge", "alert-1", "");
        }
        let log = AuditLog::open(dir.path()).unwrap();
        log.record("admin", "rule_delete", "hr_high", "alerts resolved: 2");
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "reopening appends");
        assert_eq!(lines[0]["actor"], "nurse-1");
        assert!(lines[0].get("detail").is_none());
        assert_eq!(lines[1]["detail"], "alerts resolved: 2");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(actor("", None, None), "unauthenticated");
        assert_eq!(
            actor("", Some("127.0.0.1:5".parse().unwrap()), None),
            "unauthenticated 127.0.0.1:5"
        );
        let ward = crate::auth::Principal {
            name: "ward-app".into(),
            role: crate::auth::Role::CareTeam("cardiology".into()),
        };
        assert_eq!(actor("", None, Some(&ward)), "token ward-app");
        assert_eq!(
            actor("nurse-1", None, Some(&ward)),
            "token ward-app (nurse-1)"
        );
        assert_eq!(actor("nurse-1", None, None), "nurse-1");
    }
}
