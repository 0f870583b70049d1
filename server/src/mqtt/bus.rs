//! Where every MQTT publish outside `vitals/` goes (a device's, a last will, a patient
//! reminder): into the retained messages if it is retained, to the embedded router for
//! the clean sessions subscribed there, and into the queues of the persistent sessions it
//! matches. Persistent sessions and retained messages are saved in the data directory at
//! a graceful shutdown and every [`SAVE_EVERY`], and loaded at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rumqttd::local::{LinkRx, LinkTx};
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::persistent::{SessionLimits, SessionStore, StoredSession};
use super::retained::{RetainLimits, RetainOutcome, Retained, RetainedStore};
use crate::process::data_dir::write_private;
use crate::telemetry::Telemetry;

/// The file persistent sessions and retained messages are saved to, in the data directory.
pub const FILE: &str = "mqtt-sessions.bin";
/// How often sessions and retained messages are saved (if they changed) and expired
/// sessions removed while running: what a kill -9 can lose.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);

/// What the file holds.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    sessions: Vec<(String, StoredSession)>,
    retained: Vec<(String, Retained)>,
}

const VERSION: u32 = 1;

/// The publish side every session and the reminder publisher share.
pub struct Bus {
    router: Mutex<(LinkTx, LinkRx)>,
    pub sessions: Mutex<SessionStore>,
    retained: Mutex<(RetainedStore, u64)>,
    telemetry: Arc<Telemetry>,
    file: Option<PathBuf>,
    /// Changed since the last save.
    dirty: std::sync::atomic::AtomicBool,
}

impl Bus {
    /// A bus publishing into the router through `router`, saving to `dir` (if any) and
    /// starting from what was saved there.
    pub fn new(
        router: (LinkTx, LinkRx),
        sessions: SessionLimits,
        retained: RetainLimits,
        telemetry: Arc<Telemetry>,
        dir: Option<&Path>,
    ) -> Bus {
        let bus = Bus {
            router: Mutex::new(router),
            sessions: Mutex::new(SessionStore::new(sessions)),
            retained: Mutex::new((RetainedStore::new(retained), 0)),
            telemetry,
            file: dir.map(|d| d.join(FILE)),
            dirty: std::sync::atomic::AtomicBool::new(false),
        };
        bus.load();
        bus
    }

    /// Publishes `payload` on `topic` (not a `vitals/` topic) with `qos`, retained or not.
    pub fn publish(&self, topic: &str, payload: Bytes, qos: u8, retain: bool) {
        if retain {
            let mut retained = self.retained.lock();
            if retained.0.set(topic, payload.clone(), qos) == RetainOutcome::Refused {
                retained.1 += 1;
            }
            self.telemetry
                .mqtt_retained(retained.0.count(), retained.0.bytes(), retained.1);
        }
        if let Err(e) = self
            .router
            .lock()
            .0
            .publish(topic.to_string(), payload.clone())
        {
            debug!(error = %e, "relay to the router failed");
        }
        let mut sessions = self.sessions.lock();
        if sessions.dispatch(topic, &payload, qos) > 0 || retain {
            self.changed(&sessions);
        }
    }

    /// The retained messages a new subscription to `filter` receives.
    pub fn retained_for(&self, filter: &str) -> Vec<(String, Retained)> {
        self.retained.lock().0.matching(filter)
    }

    /// Runs `change` on the persistent sessions, then marks them changed.
    pub fn update<R>(&self, change: impl FnOnce(&mut SessionStore) -> R) -> R {
        let mut sessions = self.sessions.lock();
        let out = change(&mut sessions);
        self.changed(&sessions);
        out
    }

    /// Marks the sessions changed (to be saved) and updates their metrics.
    pub fn changed(&self, sessions: &SessionStore) {
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        self.telemetry.mqtt_sessions(sessions.counts());
    }

    /// Removes expired sessions and saves what changed; run every [`SAVE_EVERY`].
    pub fn upkeep(&self, now_ms: i64) {
        {
            let mut sessions = self.sessions.lock();
            if sessions.expire(now_ms) > 0 {
                self.changed(&sessions);
            }
        }
        if self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            self.save(now_ms);
        }
    }

    /// Writes sessions and retained messages to the data directory (atomically, readable
    /// by the service alone: reminders are health data).
    pub fn save(&self, now_ms: i64) {
        let Some(path) = &self.file else {
            return;
        };
        let saved = Saved {
            version: VERSION,
            sessions: self.sessions.lock().all(now_ms),
            retained: self.retained.lock().0.all(),
        };
        let bytes = match postcard::to_stdvec(&saved) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "could not encode the MQTT sessions");
                return;
            }
        };
        if let Err(e) = write_private(path, &bytes) {
            warn!(error = %e, path = %path.display(), "could not save the MQTT sessions");
        }
    }

    fn load(&self) {
        let Some(path) = &self.file else {
            return;
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                warn!(error = %e, path = %path.display(), "could not read the saved MQTT sessions; starting without them");
                return;
            }
        };
        let saved: Saved = match postcard::from_bytes(&bytes) {
            Ok(s)
                if matches!(
                    s,
                    Saved {
                        version: VERSION,
                        ..
                    }
                ) =>
            {
                s
            }
            _ => {
                warn!(path = %path.display(), "the saved MQTT sessions are unreadable; starting without them");
                return;
            }
        };
        let mut sessions = self.sessions.lock();
        sessions.restore(saved.sessions);
        self.telemetry.mqtt_sessions(sessions.counts());
        let mut retained = self.retained.lock();
        retained.1 += retained.0.restore(saved.retained) as u64;
        self.telemetry
            .mqtt_retained(retained.0.count(), retained.0.bytes(), retained.1);
    }
}
