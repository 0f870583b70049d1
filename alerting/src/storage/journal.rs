//! The durable journal: every alert event, the open alerts, and rules and patients changed
//! at run time, in an embedded log-structured store (fjall), fsynced before anyone is told.
//! Readings never touch it: only alert events and administrative changes do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::error;

pub use super::error::{JournalError, FORMAT_VERSION};
use super::salvage::{beside, copy_logs, io, set_aside_dropped, SetAside};
use super::windows::{delta_key, deltas_prefix, StoredWindows, WindowWrite, Windows};
use crate::alert::{Alert, AlertEvent, AlertState};
use crate::patient::PatientProfile;
use crate::review::Review;
use crate::rule_spec::RuleSpec;
use crate::rule_version::RuleSetVersion;
use crate::silence::Silence;

/// What a restart restores.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Retained events, oldest first (for `after_seq` replay and History).
    pub events: Vec<AlertEvent>,
    /// The newest seq ever written (0 for a new journal): numbering continues after it.
    pub last_seq: u64,
    /// Alerts open (active or acknowledged) when the journal was last written.
    pub open_alerts: Vec<Alert>,
    /// Rules put (`Some`) or deleted (`None`) at run time, by id.
    pub rules: Vec<(String, Option<RuleSpec>)>,
    /// Patients enrolled or changed (`Some`) or unenrolled (`None`) at run time, by id.
    pub patients: Vec<(String, Option<PatientProfile>)>,
    /// Silences not deleted (ended ones are dropped at the first tick).
    pub silences: Vec<Silence>,
    /// The version of the rules in force when they last changed (`None` before Vigil
    /// numbered rule sets).
    pub rules_version: Option<RuleSetVersion>,
}

/// The journal in a data directory.
pub struct Journal {
    db: Database,
    meta: Keyspace,
    /// seq (big-endian u64) → event (JSON).
    events: Keyspace,
    /// alert id, 0, seq → nothing: an alert's events, for History.
    by_alert: Keyspace,
    /// alert id → the alert as of its newest event, while it is open.
    open: Keyspace,
    /// rule id → spec, or `null` once deleted.
    rules: Keyspace,
    /// patient id → profile, or `null` once unenrolled.
    patients: Keyspace,
    /// The window snapshots' own store, `<dir>.windows` (see [`Windows`]).
    windows: Windows,
    /// silence id → silence, while it lasts.
    silences: Keyspace,
    /// patient id → review mark (JSON).
    reviews: Keyspace,
    /// consumer name → the seq of the last event it has handled (JSON number).
    positions: Keyspace,
    event_count: AtomicU64,
    write_errors: AtomicU64,
    on_write: OnceLock<WriteHook>,
    set_aside: Vec<SetAside>,
    dir: PathBuf,
}

/// Where a consumer stands: every event up to `through` handled, and also the events
/// `also` (all above `through`), which it handled ahead of their turn.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Progress {
    pub through: u64,
    pub also: Vec<u64>,
}

/// A position is stored as a bare number when nothing was handled ahead of its turn.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum StoredProgress {
    Through(u64),
    Progress(Progress),
}

const VERSION_KEY: &str = "format_version";
const LAST_SEQ_KEY: &str = "last_seq";
const RULES_VERSION_KEY: &str = "rules_version";

impl Journal {
    /// Opens (or creates) the journal in `dir`. An incomplete batch at the end of the
    /// store's write-ahead log (power lost mid-write) is dropped by the store's recovery:
    /// such a batch was never fsynced, so nobody was told of what it held.
    ///
    /// To say exactly what was dropped, after an unclean shutdown (no marker from
    /// [`Journal::mark_clean`]) the log files are copied aside before the store opens
    /// them; whatever non-zero bytes its recovery cut off are written next to the journal
    /// directory (`journal.damaged-<ms>-<file>`) and listed by [`Journal::set_aside`].
    pub fn open(dir: &Path) -> Result<Journal, JournalError> {
        let copied = copy_logs(dir)?;
        let db = Database::builder(dir).open()?;
        let set_aside = set_aside_dropped(dir, copied)?;
        let windows = Windows::open(&beside(dir, "windows"))?;
        windows.adopt_legacy(&db)?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        let journal = Journal {
            meta: ks("meta")?,
            events: ks("events")?,
            by_alert: ks("by_alert")?,
            open: ks("open_alerts")?,
            rules: ks("rules")?,
            patients: ks("patients")?,
            windows,
            silences: ks("silences")?,
            reviews: ks("reviews")?,
            positions: ks("consumer_positions")?,
            db,
            event_count: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            on_write: OnceLock::new(),
            set_aside,
            dir: dir.to_path_buf(),
        };
        match journal.meta.get(VERSION_KEY)? {
            Some(v) => {
                let found = read_u32(&v);
                if found > FORMAT_VERSION {
                    return Err(JournalError::NewerFormat { found });
                }
            }
            None => {
                journal
                    .meta
                    .insert(VERSION_KEY, FORMAT_VERSION.to_be_bytes())?;
                journal.db.persist(PersistMode::SyncAll)?;
            }
        }
        Ok(journal)
    }

    /// Everything a restart restores.
    pub fn recover(&self) -> Result<Recovered, JournalError> {
        let mut out = Recovered {
            last_seq: self.meta.get(LAST_SEQ_KEY)?.map_or(0, |v| read_u64(&v)),
            ..Recovered::default()
        };
        for kv in self.events.iter() {
            let (k, v) = kv.into_inner()?;
            out.events
                .push(decode("event", &read_u64(&k).to_string(), &v)?);
        }
        if let Some(last) = out.events.last() {
            out.last_seq = out.last_seq.max(last.seq);
        }
        self.event_count
            .store(out.events.len() as u64, Ordering::Relaxed);
        for kv in self.open.iter() {
            let (k, v) = kv.into_inner()?;
            out.open_alerts
                .push(decode("open alert", &String::from_utf8_lossy(&k), &v)?);
        }
        out.open_alerts.sort_by_key(|a| a.raised_at_ms);
        for kv in self.rules.iter() {
            let (k, v) = kv.into_inner()?;
            let id = String::from_utf8_lossy(&k).into_owned();
            let spec = decode("rule", &id, &v)?;
            out.rules.push((id, spec));
        }
        out.rules_version = match self.meta.get(RULES_VERSION_KEY)? {
            Some(v) => Some(decode("rules version", RULES_VERSION_KEY, &v)?),
            None => None,
        };
        for kv in self.silences.iter() {
            let (k, v) = kv.into_inner()?;
            out.silences
                .push(decode("silence", &String::from_utf8_lossy(&k), &v)?);
        }
        for kv in self.patients.iter() {
            let (k, v) = kv.into_inner()?;
            let id = String::from_utf8_lossy(&k).into_owned();
            let profile = decode("patient", &id, &v)?;
            out.patients.push((id, profile));
        }
        Ok(out)
    }

    /// Writes an event and the alert's new open state in one batch, then fsyncs.
    pub fn append_event(&self, event: &AlertEvent) -> Result<(), JournalError> {
        self.append_events(std::slice::from_ref(event))
    }

    /// Writes events (in seq order) and their alerts' new open states in one batch, then
    /// fsyncs once: the group commit behind the event log's writer thread.
    pub fn append_events<E: std::borrow::Borrow<AlertEvent>>(
        &self,
        events: &[E],
    ) -> Result<(), JournalError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let mut batch = self.db.batch();
        for event in events {
            let event = event.borrow();
            batch.insert(&self.events, event.seq.to_be_bytes(), encode(event));
            batch.insert(&self.by_alert, alert_key(&event.alert.id, event.seq), []);
            match event.alert.state {
                AlertState::Resolved => batch.remove(&self.open, event.alert.id.as_bytes()),
                _ => batch.insert(&self.open, event.alert.id.as_bytes(), encode(&event.alert)),
            }
        }
        batch.insert(&self.meta, LAST_SEQ_KEY, last.borrow().seq.to_be_bytes());
        batch.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        self.event_count
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records a rule put at run time and the rule-set version it makes, in one write.
    pub fn put_rule(&self, spec: &RuleSpec, version: &RuleSetVersion) -> Result<(), JournalError> {
        self.rule_change(&spec.id, &Some(spec), version)
    }

    /// Records a rule deleted at run time (also hides a configuration-file rule of that
    /// id) and the rule-set version it makes, in one write.
    pub fn delete_rule(&self, id: &str, version: &RuleSetVersion) -> Result<(), JournalError> {
        self.rule_change(id, &None::<&RuleSpec>, version)
    }

    /// Records the version of the rules in force (a configuration file that changed).
    pub fn put_rules_version(&self, version: &RuleSetVersion) -> Result<(), JournalError> {
        self.write(&self.meta, RULES_VERSION_KEY, version)
    }

    fn rule_change(
        &self,
        id: &str,
        spec: &Option<&RuleSpec>,
        version: &RuleSetVersion,
    ) -> Result<(), JournalError> {
        let mut batch = self.db.batch();
        batch.insert(&self.rules, id, encode(spec));
        batch.insert(&self.meta, RULES_VERSION_KEY, encode(version));
        batch.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Records a patient enrolled or changed at run time. Withdrawn consent also deletes
    /// the patient's window snapshot.
    pub fn put_patient(&self, profile: &PatientProfile) -> Result<(), JournalError> {
        if !profile.consent {
            self.windows.remove(&[&profile.id])?;
        }
        self.write(&self.patients, &profile.id, &Some(profile))
    }

    /// Records a patient unenrolled at run time and deletes its window snapshot.
    pub fn remove_patient(&self, id: &str) -> Result<(), JournalError> {
        self.windows.remove(&[id])?;
        self.write(&self.patients, id, &None::<PatientProfile>)
    }

    /// Records a new silence.
    pub fn put_silence(&self, silence: &Silence) -> Result<(), JournalError> {
        self.write(&self.silences, &silence.id, silence)
    }

    /// Forgets a silence (deleted, or ended).
    pub fn remove_silence(&self, id: &str) -> Result<(), JournalError> {
        self.silences.remove(id)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Records a patient's review mark (replacing the previous one), fsynced.
    pub fn put_review(&self, review: &Review) -> Result<(), JournalError> {
        self.write(&self.reviews, &review.patient_id, review)
    }

    /// Every review mark stored.
    pub fn reviews(&self) -> Result<Vec<Review>, JournalError> {
        let mut out = Vec::new();
        for kv in self.reviews.iter() {
            let (k, v) = kv.into_inner()?;
            out.push(decode("review", &String::from_utf8_lossy(&k), &v)?);
        }
        Ok(out)
    }

    /// Records that the alert-stream consumer `name` has handled every event up to `seq`
    /// (fsynced: a restart resumes after it).
    pub fn put_position(&self, name: &str, seq: u64) -> Result<(), JournalError> {
        self.write(&self.positions, name, &seq)
    }

    /// Records where a consumer that handles events out of `seq` order stands (fsynced).
    pub fn put_progress(&self, name: &str, progress: &Progress) -> Result<(), JournalError> {
        if progress.also.is_empty() {
            self.put_position(name, progress.through)
        } else {
            self.write(&self.positions, name, progress)
        }
    }

    /// The last event the consumer `name` recorded as handled, if it ever did.
    pub fn position(&self, name: &str) -> Result<Option<u64>, JournalError> {
        Ok(self.progress(name)?.map(|p| p.through))
    }

    /// Where the consumer `name` stands, if it ever recorded it.
    pub fn progress(&self, name: &str) -> Result<Option<Progress>, JournalError> {
        self.positions
            .get(name)?
            .map(|bytes| {
                decode::<StoredProgress>("consumer position", name, &bytes).map(|p| match p {
                    StoredProgress::Through(through) => Progress {
                        through,
                        also: Vec::new(),
                    },
                    StoredProgress::Progress(p) => p,
                })
            })
            .transpose()
    }

    /// Stores the parts of a window snapshot in one batch, then fsyncs.
    pub fn put_snapshots(&self, parts: &[WindowWrite]) -> Result<(), JournalError> {
        if parts.is_empty() {
            return Ok(());
        }
        let w = &self.windows;
        let mut batch = w.db.batch();
        for part in parts {
            match part {
                WindowWrite::Whole { patient, bytes } => {
                    w.remove_deltas(&mut batch, patient)?;
                    batch.insert(&w.snapshots, patient.as_str(), bytes.as_slice());
                }
                WindowWrite::Delta {
                    patient,
                    index,
                    bytes,
                } => batch.insert(&w.deltas, delta_key(patient, *index), bytes.as_slice()),
            }
        }
        batch.commit()?;
        w.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Deletes the window snapshots of `ids` (patients no longer enrolled or without
    /// consent) and fsyncs.
    pub fn remove_snapshots(&self, ids: &[String]) -> Result<(), JournalError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        self.windows.remove(&ids)
    }

    /// Every patient's stored windows: the whole snapshot and its deltas, in order.
    pub fn snapshots(&self) -> impl Iterator<Item = Result<StoredWindows, JournalError>> + '_ {
        let w = &self.windows;
        // Both keyspaces in key order, side by side: `id\0…` sorts the way `id` does
        // (ids hold no control characters), so each patient's deltas come up as its whole
        // snapshot does, without a search per patient.
        let mut deltas = w.deltas.iter().map(|kv| kv.into_inner()).peekable();
        w.snapshots.iter().map(move |kv| {
            let (k, v) = kv.into_inner()?;
            let patient = String::from_utf8_lossy(&k).into_owned();
            let prefix = deltas_prefix(&patient);
            let mut mine = Vec::new();
            // Up to this patient's deltas and through them; those before them belong to
            // patients without a whole snapshot and are never read.
            let before_next_patient =
                |d: &Result<(fjall::Slice, fjall::Slice), fjall::Error>| match d {
                    Ok((key, _)) => key[..] < prefix[..] || key.starts_with(&prefix),
                    Err(_) => true,
                };
            while let Some(delta) = deltas.next_if(before_next_patient) {
                match delta {
                    Ok((key, value)) if key.starts_with(&prefix) => mine.push(value),
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(StoredWindows {
                patient,
                whole: v,
                deltas: mine,
            })
        })
    }

    /// Writes one value and fsyncs.
    fn write<T: Serialize + ?Sized>(
        &self,
        ks: &Keyspace,
        key: &str,
        value: &T,
    ) -> Result<(), JournalError> {
        ks.insert(key, encode(value))?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// The seqs of one alert's events, oldest first.
    pub fn alert_history(&self, alert_id: &str) -> Result<Vec<AlertEvent>, JournalError> {
        let mut prefix = alert_id.as_bytes().to_vec();
        prefix.push(0);
        let mut out = Vec::new();
        for kv in self.by_alert.prefix(&prefix) {
            let k = kv.key()?;
            let seq = read_u64(&k[prefix.len()..]);
            if let Some(v) = self.events.get(seq.to_be_bytes())? {
                out.push(decode("event", &seq.to_string(), &v)?);
            }
        }
        Ok(out)
    }

    /// Every event at or after `since_ms` that `keep` selects, oldest first (read from the
    /// newest back: seq order is time order).
    pub fn events_since(
        &self,
        since_ms: i64,
        keep: impl Fn(&AlertEvent) -> bool,
    ) -> Result<Vec<AlertEvent>, JournalError> {
        let mut out = Vec::new();
        for kv in self.events.iter().rev() {
            let (k, v) = kv.into_inner()?;
            let event: AlertEvent = decode("event", &read_u64(&k).to_string(), &v)?;
            if event.at_ms < since_ms {
                break;
            }
            if keep(&event) {
                out.push(event);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// Deletes events that happened before `before_ms`, and silences that ended before it.
    /// Open alerts are kept in their own table, so compaction never loses one. Returns how
    /// many events were removed.
    pub fn compact(&self, before_ms: i64) -> Result<u64, JournalError> {
        let mut removed = 0;
        let mut batch = self.db.batch();
        for kv in self.events.iter() {
            let (k, v) = kv.into_inner()?;
            let event: AlertEvent = decode("event", &read_u64(&k).to_string(), &v)?;
            if event.at_ms >= before_ms {
                // Events are in seq order, and seq order is time order.
                break;
            }
            batch.remove(&self.events, k);
            batch.remove(&self.by_alert, alert_key(&event.alert.id, event.seq));
            removed += 1;
        }
        for kv in self.silences.iter() {
            let (k, v) = kv.into_inner()?;
            let silence: Silence = decode("silence", &String::from_utf8_lossy(&k), &v)?;
            if silence.ends_at_ms < before_ms {
                batch.remove(&self.silences, k);
            }
        }
        if !batch.is_empty() {
            batch.commit()?;
            self.db.persist(PersistMode::SyncAll)?;
            self.event_count.fetch_sub(removed, Ordering::Relaxed);
        }
        Ok(removed)
    }

    /// Records that everything is written and the process is stopping cleanly: the next
    /// open need not look for a torn write. Call it last, after the final snapshot.
    pub fn mark_clean(&self) -> Result<(), JournalError> {
        self.windows.db.persist(PersistMode::SyncAll)?;
        self.db.persist(PersistMode::SyncAll)?;
        std::fs::write(beside(&self.dir, "clean"), b"").map_err(io)
    }

    /// What the store's recovery dropped at this open, kept in files of their own.
    pub fn set_aside(&self) -> &[SetAside] {
        &self.set_aside
    }

    /// Events held.
    pub fn event_count(&self) -> u64 {
        self.event_count.load(Ordering::Relaxed)
    }

    /// Bytes on disk, window snapshots included.
    pub fn disk_bytes(&self) -> u64 {
        self.db.disk_space().unwrap_or(0) + self.windows.db.disk_space().unwrap_or(0)
    }

    /// Events that could not be written (each was still delivered and logged).
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Notes a failed event write: the event is delivered anyway (an alert must reach the
    /// care team even when the disk fails), and the failure is logged and counted.
    pub fn record_failure(&self, event: &AlertEvent, e: &JournalError) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        error!(seq = event.seq, alert_id = %event.alert.id, error = %e, "journal write failed: event delivered but not durable");
    }
}

/// Told how long each batch of alert events took to write and fsync.
pub type WriteHook = Box<dyn Fn(Duration) + Send + Sync>;

impl Journal {
    /// Installs the hook told of every alert-event batch's write time (at most one; later
    /// calls are ignored).
    pub fn on_write(&self, hook: WriteHook) {
        let _ = self.on_write.set(hook);
    }
}

impl crate::event_log::EventSink for Journal {
    fn record(&self, events: &[Arc<AlertEvent>]) {
        let started = Instant::now();
        let written = self.append_events(events);
        if let Some(hook) = self.on_write.get() {
            hook(started.elapsed());
        }
        if let Err(e) = written {
            for event in events {
                self.record_failure(event, &e);
            }
        }
    }
}

fn alert_key(alert_id: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(alert_id.len() + 9);
    key.extend_from_slice(alert_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("journal types serialize to JSON")
}

fn decode<T: DeserializeOwned>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|source| JournalError::Decode {
        what,
        key: key.to_string(),
        source,
    })
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[8 - n..].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(b)
}

fn read_u32(bytes: &[u8]) -> u32 {
    u32::try_from(read_u64(bytes)).unwrap_or(u32::MAX)
}
