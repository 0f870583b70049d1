//! The audit log: an append-only file of who changed what and when (`DATA_DIR/audit.log`,
//! one JSON object per line, owner-only permissions, rotated by size). It records
//! enrolments, consent changes, unenrolments, rule changes, acknowledgements, resolutions,
//! snoozes, silences, device provisioning, session takeovers and refused credentials; never
//! a reading's value, an alert's message or a secret.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, Counter, Gauge};
use serde::Serialize;
use tracing::error;

use crate::clock::now_ms;
use crate::settings::AuditLimits;
use crate::telemetry::{AUDIT_BYTES, AUDIT_WRITE_ERRORS};
use crate::untrusted::clip;

pub const FILE_NAME: &str = "audit.log";

/// How often a failing audit log is reported at error level (every failure is counted).
const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(60);

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

/// The log file being appended to, and what the log holds on disk.
struct Current {
    file: File,
    size: u64,
    /// Bytes in the rotated files kept beside it.
    rotated: u64,
    last_error_report: Option<Instant>,
}

/// An append-only audit log in `DATA_DIR/audit.log`, rotated by size: `audit.log.1` is the
/// newest rotated file, and at most `keep_files` of them are kept. Every field is clipped
/// ([`clip`]) so that no client can make one entry long.
pub struct AuditLog {
    current: Mutex<Current>,
    path: PathBuf,
    limits: AuditLimits,
    bytes: Gauge,
    write_errors: Counter,
}

impl AuditLog {
    /// Opens (creating) `DATA_DIR/audit.log` for appending.
    pub fn open(data_dir: &Path, limits: AuditLimits) -> std::io::Result<AuditLog> {
        let path = data_dir.join(FILE_NAME);
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        let log = AuditLog {
            current: Mutex::new(Current {
                file,
                size,
                rotated: 0,
                last_error_report: None,
            }),
            path,
            limits,
            bytes: gauge!(AUDIT_BYTES),
            write_errors: counter!(AUDIT_WRITE_ERRORS),
        };
        {
            let mut current = log.current.lock().expect("fresh lock");
            current.rotated = log.rotated_bytes();
            log.bytes.set((current.size + current.rotated) as f64);
        }
        Ok(log)
    }

    /// Appends one entry and syncs it to disk. A failure is counted and reported (the
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
            actor: &clip(actor),
            action,
            target: &clip(target),
            detail: &clip(detail),
        };
        let mut line = serde_json::to_vec(&entry).expect("audit entries serialize");
        line.push(b'\n');
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut written = Ok(());
        if current.size > 0 && current.size + line.len() as u64 > self.limits.max_file_bytes {
            written = self.rotate(&mut current);
        }
        if written.is_ok() {
            written = current.file.write_all(&line).and_then(|()| {
                if sync {
                    current.file.sync_data()
                } else {
                    Ok(())
                }
            });
        }
        match written {
            Ok(()) => current.size += line.len() as u64,
            Err(e) => {
                self.write_errors.increment(1);
                let now = Instant::now();
                let due = current
                    .last_error_report
                    .is_none_or(|t| now.duration_since(t) >= ERROR_REPORT_INTERVAL);
                if due {
                    current.last_error_report = Some(now);
                    error!(path = %self.path.display(), error = %e, action, "audit log write failed (reported at most once a minute; vigil_audit_write_errors_total counts each)");
                }
            }
        }
        self.bytes.set((current.size + current.rotated) as f64);
    }

    /// Moves `audit.log` to `audit.log.1` (shifting the older ones, dropping the oldest)
    /// and starts a new file.
    fn rotate(&self, current: &mut Current) -> std::io::Result<()> {
        let keep = self.limits.keep_files;
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for k in (1..keep).rev() {
                match std::fs::rename(self.rotated(k), self.rotated(k + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        current.file = open_append(&self.path)?;
        current.size = 0;
        current.rotated = self.rotated_bytes();
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// The path of the `k`th newest rotated file.
    fn rotated(&self, k: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{k}"));
        PathBuf::from(name)
    }

    fn rotated_bytes(&self) -> u64 {
        (1..=self.limits.keep_files)
            .filter_map(|k| std::fs::metadata(self.rotated(k)).ok())
            .map(|m| m.len())
            .sum()
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = AuditLog::open(dir.path(), AuditLimits::default()).unwrap();
            log.record("nurse-1", "acknowledge", "alert-1", "");
        }
        let log = AuditLog::open(dir.path(), AuditLimits::default()).unwrap();
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
    }

    #[test]
    fn the_log_rotates_by_size_keeps_n_files_and_clips_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let limits = AuditLimits {
            max_file_bytes: 1000,
            keep_files: 2,
        };
        let log = AuditLog::open(dir.path(), limits).unwrap();
        let huge = "x".repeat(60_000);
        for i in 0..100 {
            log.record_unsynced(&huge, "auth_failure", &format!("t{i}\nforged"), "");
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.log", "audit.log.1", "audit.log.2"]);
        let mut total = 0;
        for name in &names {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.len() <= 1000, "{name}: {} bytes", text.len());
            total += text.len();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(v["actor"].as_str().unwrap().ends_with("…(60000 bytes)"));
                assert!(v["target"].as_str().unwrap().contains("\\u{a}forged"));
            }
        }
        let newest = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
        assert!(newest.contains("t99"), "the newest entry is in audit.log");
        let current = log.current.lock().unwrap();
        assert_eq!((current.size + current.rotated) as usize, total);
    }
}
