//! Start-up from the journal in the data directory: run-time rule and patient changes are
//! laid over the configuration file's, the event log continues the journal's numbering and
//! replay, and open alerts come back with their states.

use std::sync::Arc;

use anyhow::Context;
use tracing::{info, warn};
use vigil_alerting::{
    rule_version, Alert, AlertLog, Approval, Engine, Journal, PatientProfile, PatientSnapshot,
    Recovered, Rule, RuleSetVersion, RuleSpec, Silence, StoredWindows,
};

use crate::clock::now_ms;
use crate::config::Compiled;
use crate::process::cpu_priority::{self, Granted};
use crate::settings::Settings;

/// The journal's directory inside the data directory.
pub const JOURNAL_DIR: &str = "journal";

/// What the engine starts from.
pub struct Restored {
    pub journal: Arc<Journal>,
    pub log: Arc<AlertLog>,
    pub rules: Vec<Rule>,
    /// Which version `rules` are.
    pub rules_version: RuleSetVersion,
    pub patients: Vec<PatientProfile>,
    pub open_alerts: Vec<Alert>,
    pub silences: Vec<Silence>,
}

/// Opens the journal and merges it over `compiled`. A change made over gRPC wins over the
/// configuration file's entry with the same id, because it is the newer decision; a rule
/// deleted over gRPC stays deleted even if the file still has it.
pub fn restore(settings: &Settings, compiled: &Compiled) -> anyhow::Result<Restored> {
    let dir = settings.data_dir.join(JOURNAL_DIR);
    let journal = Arc::new(
        Journal::open(&dir)
            .with_context(|| format!("cannot open the journal in {}", dir.display()))?,
    );
    for cut in journal.set_aside() {
        warn!(
            file = %cut.file.display(),
            offset = cut.offset,
            bytes = cut.bytes,
            kept_in = %cut.kept_in.display(),
            "the journal's last write was damaged (power lost mid-write?): set aside; starting with everything before it"
        );
    }
    let recovered = journal
        .recover()
        .with_context(|| format!("cannot read the journal in {}", dir.display()))?;
    let Recovered {
        events,
        last_seq,
        open_alerts,
        rules: rule_changes,
        patients: patient_changes,
        silences,
        rules_version: last_version,
    } = recovered;
    let rules = merge_rules(compiled.rules.clone(), rule_changes);
    let rules_version = version_of(&journal, last_version, &rules, compiled)
        .with_context(|| format!("cannot write the journal in {}", dir.display()))?;
    let patients = merge_patients(compiled.patients.clone(), patient_changes);
    info!(
        events = events.len(),
        last_seq,
        open_alerts = open_alerts.len(),
        journal = %dir.display(),
        "journal recovered"
    );
    // The log's writer thread fsyncs alerts and hands them to subscribers: it asks for a
    // short CPU slice and nice -10 so that it preempts ingest when its fsync completes.
    let (log, granted) = cpu_priority::spawning(cpu_priority::ALERT_WRITER, || {
        AlertLog::restored(
            settings.retained_events,
            settings.subscriber_buffer,
            events,
            last_seq,
            journal.clone(),
        )
    });
    log_writer_priority(&granted);
    let log = Arc::new(log);
    Ok(Restored {
        journal,
        log,
        rules,
        rules_version,
        patients,
        open_alerts,
        silences,
    })
}

/// The version of the rules in force at start: the journal's last one when they are the
/// rules it recorded; else (a configuration file that changed, or the first start) the
/// next one, approved as `[rule_set]` says, and journaled.
fn version_of(
    journal: &Journal,
    last: Option<RuleSetVersion>,
    rules: &[Rule],
    compiled: &Compiled,
) -> Result<RuleSetVersion, vigil_alerting::JournalError> {
    let mut approval = Approval {
        by: compiled.rule_set.approved_by.clone().unwrap_or_default(),
        second: compiled.rule_set.second_approver.clone(),
        at_ms: now_ms(),
        change: "configuration file".into(),
        number: None,
    };
    if compiled.cluster.is_some() {
        // Every node starts from the same file: version 1 on each, whatever its own
        // journal says; the catalog's changes number the rest alike on every node.
        approval.number = Some(1);
        approval.at_ms = 0;
        return Ok(RuleSetVersion::default().next(rules, approval));
    }
    let last = last.unwrap_or_default();
    if *last.hash == rule_version::content_hash(rules) {
        info!(
            version = last.number,
            hash = last.short_hash(),
            "rule set as before"
        );
        return Ok(last);
    }
    let version = last.next(rules, approval);
    journal.put_rules_version(&version)?;
    if version.approval.by.is_empty() {
        warn!(
            version = version.number,
            hash = version.short_hash(),
            "the rules in force changed with the configuration file, and its [rule_set] \
             approved_by names nobody: the new rule-set version is recorded as unapproved"
        );
    } else {
        info!(
            version = version.number,
            hash = version.short_hash(),
            approved_by = %crate::untrusted::clip(&version.approval.by),
            "new rule set from the configuration file"
        );
    }
    Ok(version)
}

/// Says at startup what priority the alert journal's writer got, and how to get the rest.
fn log_writer_priority(granted: &Granted) {
    let slice = cpu_priority::ALERT_WRITER.slice.as_micros();
    let nice = cpu_priority::ALERT_WRITER.nice;
    match granted {
        Granted::All => info!(
            slice_us = slice,
            nice, "alert journal writer priority raised"
        ),
        Granted::SliceOnly => info!(
            slice_us = slice,
            "alert journal writer at the default nice level: nice {nice} needs CAP_SYS_NICE \
             or a nice limit (systemd LimitNICE={nice}); alerts may wait behind ingest for a core"
        ),
        Granted::Nothing => info!("alert journal writer at the default CPU priority"),
    }
}

fn merge_rules(mut rules: Vec<Rule>, changes: Vec<(String, Option<RuleSpec>)>) -> Vec<Rule> {
    for (id, spec) in changes {
        rules.retain(|r| *r.id != *id);
        let Some(spec) = spec else { continue };
        match spec.validate() {
            Ok(rule) => rules.push(rule),
            // Only valid rules are journaled; one that no longer validates (a newer rule
            // language read by an older build) is skipped loudly rather than guessed at.
            Err(errors) => {
                warn!(rule_id = %id, ?errors, "journaled rule is not valid any more; skipped")
            }
        }
    }
    rules
}

fn merge_patients(
    mut patients: Vec<PatientProfile>,
    changes: Vec<(String, Option<PatientProfile>)>,
) -> Vec<PatientProfile> {
    for (id, profile) in changes {
        patients.retain(|p| *p.id != *id);
        patients.extend(profile);
    }
    patients
}

/// Refills windows from the journal's snapshots (after rules and patients are in place).
pub fn restore_windows(engine: &Engine, journal: &Journal) {
    // The store is read in key order on this thread; decoding and refilling windows, the
    // bulk of the work, run on every core.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<StoredWindows>>(workers * 2);
    let rx = std::sync::Mutex::new(rx);
    // What the reading thread could not read; the workers tally the rest.
    let mut read = Tally::default();
    let tally = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut tally = Tally::default();
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(batch) = next else { break };
                        for stored in batch {
                            tally.restore(engine, stored);
                        }
                    }
                    tally
                })
            })
            .collect();
        let mut batch = Vec::with_capacity(RESTORE_BATCH);
        for entry in journal.snapshots() {
            match entry {
                Ok(stored) => batch.push(stored),
                Err(error) => read.skip(error),
            }
            if batch.len() == RESTORE_BATCH
                && tx
                    .send(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(RESTORE_BATCH),
                    ))
                    .is_err()
            {
                break;
            }
        }
        let _ = tx.send(batch);
        drop(tx);
        handles
            .into_iter()
            .filter_map(|h| h.join().ok())
            .fold(Tally::default(), Tally::merge)
    });
    let Tally {
        restored,
        skipped,
        refused,
    } = tally.merge(read);
    info!(
        patients = restored,
        skipped, "windows restored from the last snapshot"
    );
    if !refused.is_empty() {
        match journal.remove_snapshots(&refused) {
            Ok(()) => info!(
                patients = refused.len(),
                "deleted the stored windows of patients not enrolled or without consent"
            ),
            Err(e) => {
                warn!(error = %e, patients = refused.len(), "could not delete the stored windows of patients without consent; retried at the next start")
            }
        }
    }
}

/// Patients handed to a restoring worker at a time.
const RESTORE_BATCH: usize = 256;

/// What restoring windows came to.
#[derive(Default)]
struct Tally {
    restored: usize,
    skipped: usize,
    /// Patients the configuration no longer admits, or whose consent it withdrew: their
    /// stored windows are health data nobody may use any more.
    refused: Vec<String>,
}

impl Tally {
    fn restore(&mut self, engine: &Engine, stored: StoredWindows) {
        let decode = |b: &[u8]| PatientSnapshot::decode(b).map_err(|e| e.to_string());
        let decoded = decode(&stored.whole).and_then(|whole| {
            let deltas = stored
                .deltas
                .iter()
                .map(|d| decode(d))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((whole, deltas))
        });
        match decoded {
            Ok((whole, deltas)) => {
                if engine.restore_snapshot(&stored.patient, &whole, &deltas, now_ms()) {
                    self.restored += 1;
                } else {
                    self.refused.push(stored.patient);
                }
            }
            Err(error) => self.skip(error),
        }
    }

    /// A patient whose stored windows cannot be read or decoded.
    fn skip(&mut self, error: impl std::fmt::Display) {
        self.skipped += 1;
        warn!(%error, "a window snapshot could not be read; that patient starts with empty windows");
    }

    fn merge(mut self, other: Tally) -> Tally {
        self.restored += other.restored;
        self.skipped += other.skipped;
        self.refused.extend(other.refused);
        self
    }
}
