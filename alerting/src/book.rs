//! The alert book: every open (active or acknowledged) alert, and the lifecycle
//! transitions between states. Each transition is written to the event log while the book
//! is locked, so the log's order is the order in which states changed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::alert::{Alert, AlertState, EventKind, Stamp};
use crate::error::AlertingError;
use crate::escalation::EscalationPolicy;
use crate::event_log::{EventLog, NewEvent};
use crate::filter::AlertFilter;
use crate::silence::Silence;

pub struct AlertBook {
    open: Mutex<HashMap<Arc<str>, OpenEntry>>,
    log: Arc<dyn EventLog>,
    /// Silences not yet ended. Locked after `open` when both are needed.
    silences: Mutex<Vec<Silence>>,
}

struct OpenEntry {
    alert: Alert,
    /// Shared with the patient's state: cleared when the alert resolves, so the engine can
    /// tell without taking this book's lock on every reading.
    still_open: Arc<AtomicBool>,
}

/// The engine's lock-free view of whether an alert it raised is still open.
#[derive(Debug, Clone)]
pub struct OpenFlag(Arc<AtomicBool>);

impl OpenFlag {
    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl AlertBook {
    pub fn new(log: Arc<dyn EventLog>) -> AlertBook {
        AlertBook {
            open: Mutex::new(HashMap::new()),
            log,
            silences: Mutex::new(Vec::new()),
        }
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Opens `alert` (state ACTIVE) and records RAISED. The flag stays set while the
    /// alert is open.
    pub fn raise(&self, mut alert: Alert) -> OpenFlag {
        let mut open = self.open.lock();
        if alert.silenced_by.is_none() {
            alert.silenced_by = self
                .silences
                .lock()
                .iter()
                .find(|s| s.mutes(&alert, alert.raised_at_ms))
                .map(|s| s.id.clone());
        }
        self.log.append(NewEvent {
            kind: EventKind::Raised,
            at_ms: alert.raised_at_ms,
            alert: alert.clone(),
            by: String::new(),
            note: String::new(),
        });
        insert_open(&mut open, alert)
    }

    /// Re-opens an alert recovered from the journal, without recording an event.
    pub fn restore(&self, alert: Alert) -> OpenFlag {
        insert_open(&mut self.open.lock(), alert)
    }

    /// Takes `alert` as it stands elsewhere (a cluster's alert stream), without recording an
    /// event: an open alert replaces the book's copy or joins it, a resolved one leaves it.
    /// Returns the flag of an alert that joined the book, for the patient's state.
    /// Drops open alert `id` without an event (an episode this engine opened that is known
    /// elsewhere by another alert).
    pub fn forget(&self, id: &str) {
        if let Some(gone) = self.open.lock().remove(id) {
            gone.still_open.store(false, Ordering::Release);
        }
    }

    pub fn adopt(&self, alert: Alert) -> Option<OpenFlag> {
        let mut open = self.open.lock();
        if alert.resolved.is_some() {
            if let Some(gone) = open.remove(&alert.id) {
                gone.still_open.store(false, Ordering::Release);
            }
            return None;
        }
        if let Some(entry) = open.get_mut(&alert.id) {
            entry.alert = alert;
            return None;
        }
        Some(insert_open(&mut open, alert))
    }

    /// Escalates ACTIVE alerts whose next level is due and re-notifies ACKNOWLEDGED ones
    /// whose acknowledgement is older than their team's `renotify_after`. Returns
    /// (escalations, re-notifications). A level that fell due while the server was down
    /// fires now, each level once, in order.
    pub fn escalate(&self, policy: &EscalationPolicy, now_ms: i64) -> (u32, u32) {
        if policy.teams.is_empty() {
            return (0, 0);
        }
        let (mut escalated, mut renotified) = (0, 0);
        let mut open = self.open.lock();
        let mut ids: Vec<(i64, Arc<str>)> = open
            .values()
            .map(|e| (e.alert.raised_at_ms, e.alert.id.clone()))
            .collect();
        ids.sort();
        for (_, id) in ids {
            let Some(entry) = open.get_mut(&id) else {
                continue;
            };
            let alert = &mut entry.alert;
            // A snoozed or silenced alert is not re-delivered; its due levels fire when the
            // snooze or silence ends.
            if alert.snoozed_until_ms > now_ms || alert.silenced_by.is_some() {
                continue;
            }
            if alert.state == AlertState::Acknowledged {
                renotified += u32::from(renotify(&*self.log, policy, alert, now_ms));
            } else {
                escalated += escalate_due(&*self.log, policy, alert, now_ms);
            }
        }
        (escalated, renotified)
    }

    /// Mutes escalation and re-notification of one open alert until `until_ms` (a time
    /// not after `now_ms` cancels the snooze). Other alerts, even of the same patient, are
    /// untouched.
    pub fn snooze(
        &self,
        id: &str,
        until_ms: i64,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        let mut open = self.open.lock();
        let Some(entry) = open.get_mut(id) else {
            return Err(self.not_open(id, "snooze"));
        };
        let cancel = until_ms <= now_ms;
        entry.alert.snoozed_until_ms = if cancel { 0 } else { until_ms };
        let text = if cancel {
            "snooze cancelled".to_string()
        } else {
            format!("snoozed for {}", minutes(until_ms - now_ms))
        };
        let note = noted(text, note);
        let event = self.log.append(NewEvent {
            kind: EventKind::Snoozed,
            alert: entry.alert.clone(),
            at_ms: now_ms,
            by: by.to_string(),
            note,
        });
        Ok(event.alert.clone())
    }

    /// Gives the open alert `id` to `assignee` (`None`: nobody), recording who did it.
    pub fn assign(
        &self,
        id: &str,
        assignee: Option<&str>,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        let mut open = self.open.lock();
        let Some(entry) = open.get_mut(id) else {
            return Err(self.not_open(id, "assign"));
        };
        Ok(self.record_assignment(&mut entry.alert, assignee, by, note, now_ms))
    }

    /// Gives every open alert that `matches` and is assigned to `from` to `to`; returns
    /// them as they are now.
    pub fn reassign_where(
        &self,
        matches: impl Fn(&Alert) -> bool,
        from: &str,
        to: &str,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Vec<Alert> {
        let mut open = self.open.lock();
        let mut out = Vec::new();
        for entry in open.values_mut() {
            if entry.alert.assignee.as_deref() == Some(from) && matches(&entry.alert) {
                out.push(self.record_assignment(&mut entry.alert, Some(to), by, note, now_ms));
            }
        }
        out.sort_by_key(|a| a.raised_at_ms);
        out
    }

    fn record_assignment(
        &self,
        alert: &mut Alert,
        assignee: Option<&str>,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Alert {
        alert.assignee = assignee.map(Arc::from);
        let text = match assignee {
            Some(who) if who == by => format!("claimed by {who}"),
            Some(who) => format!("assigned to {who}"),
            None => "released: nobody is assigned".to_string(),
        };
        let note = noted(text, note);
        self.log
            .append(NewEvent {
                kind: EventKind::Assigned,
                alert: alert.clone(),
                at_ms: now_ms,
                by: by.to_string(),
                note,
            })
            .alert
            .clone()
    }

    /// Adds a silence (restored from the journal or new).
    pub fn add_silence(&self, silence: Silence) {
        let mut silences = self.silences.lock();
        silences.retain(|s| s.id != silence.id);
        silences.push(silence);
    }

    /// Silences not yet ended, soonest end first.
    pub fn silences(&self, now_ms: i64) -> Vec<Silence> {
        let mut out: Vec<Silence> = self
            .silences
            .lock()
            .iter()
            .filter(|s| s.ends_at_ms > now_ms)
            .cloned()
            .collect();
        out.sort_by_key(|s| s.ends_at_ms);
        out
    }

    /// Ends silence `id` now; alerts it held that are still open are delivered. Returns
    /// the silence, or `None` if there is no such silence.
    pub fn delete_silence(&self, id: &str, now_ms: i64) -> Option<Silence> {
        let mut open = self.open.lock();
        let removed = {
            let mut silences = self.silences.lock();
            let at = silences.iter().position(|s| &*s.id == id)?;
            silences.remove(at)
        };
        self.release(&mut open, &removed.id, "deleted", now_ms);
        Some(removed)
    }

    /// Ends the silences whose time is up and delivers the alerts they held. Returns the
    /// ids of the silences that ended.
    pub fn expire_silences(&self, now_ms: i64) -> Vec<Arc<str>> {
        let ended: Vec<Arc<str>> = {
            let mut silences = self.silences.lock();
            let ended = silences
                .iter()
                .filter(|s| s.ends_at_ms <= now_ms)
                .map(|s| s.id.clone())
                .collect();
            silences.retain(|s| s.ends_at_ms > now_ms);
            ended
        };
        if !ended.is_empty() {
            let mut open = self.open.lock();
            for id in &ended {
                self.release(&mut open, id, "ended", now_ms);
            }
        }
        ended
    }

    /// Releases the alerts held outside their team's hours once the hours began: ACTIVE,
    /// delivered as RAISED, escalation timed from now. Returns how many.
    pub fn release_held(&self, policy: &EscalationPolicy, now_ms: i64) -> usize {
        let mut open = self.open.lock();
        let mut due: Vec<&mut OpenEntry> = open
            .values_mut()
            .filter(|e| {
                e.alert.state == AlertState::Held && policy.within_hours(&e.alert.care_team, now_ms)
            })
            .collect();
        due.sort_by_key(|e| e.alert.raised_at_ms);
        for entry in &mut due {
            let alert = &mut entry.alert;
            alert.state = AlertState::Active;
            alert.silenced_by = None;
            alert.active_since_ms = now_ms;
            self.log.append(NewEvent {
                kind: EventKind::Raised,
                alert: alert.clone(),
                at_ms: now_ms,
                by: String::new(),
                note: format!(
                    "held outside care team {}'s hours; released as they began",
                    alert.care_team
                ),
            });
        }
        due.len()
    }

    /// Delivers the open alerts silence `id` held: RAISED again, now to subscribers.
    fn release(
        &self,
        open: &mut HashMap<Arc<str>, OpenEntry>,
        id: &Arc<str>,
        how: &str,
        now_ms: i64,
    ) {
        let mut held: Vec<&mut OpenEntry> = open
            .values_mut()
            .filter(|e| e.alert.silenced_by.as_ref() == Some(id))
            .collect();
        held.sort_by_key(|e| e.alert.raised_at_ms);
        for entry in held {
            entry.alert.silenced_by = None;
            self.log.append(NewEvent {
                kind: EventKind::Raised,
                alert: entry.alert.clone(),
                at_ms: now_ms,
                by: String::new(),
                note: format!("silence {id} {how}; the condition is still present"),
            });
        }
    }

    /// ACTIVE → ACKNOWLEDGED.
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        note: &str,
        disposition: Option<&str>,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        let mut open = self.open.lock();
        let alert = match open.get_mut(id) {
            Some(entry) => &mut entry.alert,
            None => return Err(self.not_open(id, "acknowledge")),
        };
        if !matches!(alert.state, AlertState::Active | AlertState::Held) {
            return Err(AlertingError::IllegalTransition {
                id: id.to_string(),
                state: "already acknowledged",
                action: "acknowledge",
            });
        }
        if alert.state == AlertState::Held {
            // Someone took it before the hours began: no longer held back.
            alert.silenced_by = None;
        }
        alert.state = AlertState::Acknowledged;
        if let Some(d) = disposition {
            alert.disposition = Some(d.into());
        }
        alert.acknowledged = Some(Stamp {
            by: by.to_string(),
            at_ms: now_ms,
        });
        let alert = alert.clone();
        let event = self.log.append(NewEvent {
            kind: EventKind::Acknowledged,
            alert,
            at_ms: now_ms,
            by: by.to_string(),
            note: note.to_string(),
        });
        Ok(event.alert.clone())
    }

    /// ACTIVE or ACKNOWLEDGED → RESOLVED.
    pub fn resolve(
        &self,
        id: &str,
        by: &str,
        note: &str,
        disposition: Option<&str>,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        let mut open = self.open.lock();
        match open.remove(id) {
            Some(mut entry) => {
                if let Some(d) = disposition {
                    entry.alert.disposition = Some(d.into());
                }
                Ok(self.record_resolution(entry, by, note, now_ms))
            }
            None => Err(self.not_open(id, "resolve")),
        }
    }

    /// Resolves `id` if it is still open (the engine's auto-resolve); false if a person
    /// resolved it first.
    pub fn resolve_if_open(&self, id: &str, note: &str, now_ms: i64) -> bool {
        let mut open = self.open.lock();
        match open.remove(id) {
            Some(entry) => {
                self.record_resolution(entry, "", note, now_ms);
                true
            }
            None => false,
        }
    }

    /// Resolves every open alert that `matches`, with `note` (rule deleted, patient
    /// unenrolled, consent withdrawn). Returns how many.
    pub fn resolve_where(
        &self,
        matches: impl Fn(&Alert) -> bool,
        note: &str,
        now_ms: i64,
    ) -> usize {
        let mut open = self.open.lock();
        let ids: Vec<Arc<str>> = open
            .values()
            .filter(|e| matches(&e.alert))
            .map(|e| e.alert.id.clone())
            .collect();
        for id in &ids {
            if let Some(entry) = open.remove(id) {
                self.record_resolution(entry, "", note, now_ms);
            }
        }
        ids.len()
    }

    fn record_resolution(&self, entry: OpenEntry, by: &str, note: &str, now_ms: i64) -> Alert {
        entry.still_open.store(false, Ordering::Release);
        let mut alert = entry.alert;
        alert.state = AlertState::Resolved;
        alert.resolved = Some(Stamp {
            by: by.to_string(),
            at_ms: now_ms,
        });
        self.log.append(NewEvent {
            kind: EventKind::Resolved,
            alert: alert.clone(),
            at_ms: now_ms,
            by: by.to_string(),
            note: note.to_string(),
        });
        alert
    }

    fn not_open(&self, id: &str, action: &'static str) -> AlertingError {
        match self.log.find_alert(id) {
            Some(_) => AlertingError::IllegalTransition {
                id: id.to_string(),
                state: "resolved",
                action,
            },
            None => AlertingError::AlertNotFound(id.to_string()),
        }
    }

    /// The open alert `id`, if it is open.
    pub fn get(&self, id: &str) -> Option<Alert> {
        self.open.lock().get(id).map(|e| e.alert.clone())
    }

    /// Open alerts matching `filter`, oldest first.
    pub fn list(&self, filter: &AlertFilter) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = self
            .open
            .lock()
            .values()
            .map(|e| &e.alert)
            .filter(|a| filter.matches(a))
            .cloned()
            .collect();
        alerts.sort_by(|a, b| a.raised_at_ms.cmp(&b.raised_at_ms).then(a.id.cmp(&b.id)));
        alerts
    }

    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A duration for a note: whole minutes, or seconds under one.
fn minutes(ms: i64) -> String {
    if ms >= 60_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", (ms / 1000).max(0))
    }
}

/// Makes an acknowledged alert active again once its team's `renotify_after` has passed
/// since the acknowledgement; true if it did.
fn renotify(log: &dyn EventLog, policy: &EscalationPolicy, alert: &mut Alert, now_ms: i64) -> bool {
    let acked_at = alert.acknowledged.as_ref().map_or(now_ms, |s| s.at_ms);
    if policy
        .renotify_at(&alert.care_team, acked_at)
        .is_none_or(|at| at > now_ms)
    {
        return false;
    }
    let note = format!(
        "acknowledged {} ago and the condition is still present",
        minutes(now_ms - acked_at)
    );
    alert.state = AlertState::Active;
    alert.active_since_ms = now_ms;
    alert.escalation_level = 0;
    log.append(NewEvent {
        kind: EventKind::Renotified,
        alert: alert.clone(),
        at_ms: now_ms,
        by: String::new(),
        note,
    });
    true
}

/// Raises an active alert through every escalation level due by `now_ms`; returns how many.
fn escalate_due(
    log: &dyn EventLog,
    policy: &EscalationPolicy,
    alert: &mut Alert,
    now_ms: i64,
) -> u32 {
    let since = if alert.active_since_ms > 0 {
        alert.active_since_ms
    } else {
        alert.raised_at_ms
    };
    let mut escalated = 0;
    while let Some(step) = policy
        .next_step(&alert.care_team, alert.escalation_level, since)
        .filter(|s| s.due_ms <= now_ms)
    {
        alert.escalation_level += 1;
        let note = match &step.to {
            Some(team) => {
                if !alert.escalated_to.contains(team) {
                    alert.escalated_to.push(team.clone());
                }
                format!(
                    "not acknowledged {} after it became active; escalated to {team} (level {})",
                    minutes(step.due_ms - since),
                    alert.escalation_level
                )
            }
            None => format!(
                "not acknowledged {} after it became active (level {})",
                minutes(step.due_ms - since),
                alert.escalation_level
            ),
        };
        log.append(NewEvent {
            kind: EventKind::Escalated,
            alert: alert.clone(),
            at_ms: now_ms,
            by: String::new(),
            note,
        });
        escalated += 1;
    }
    escalated
}

/// What the engine says happened, then the person's note, if any.
fn noted(what: String, note: &str) -> String {
    if note.is_empty() {
        what
    } else {
        format!("{what}: {note}")
    }
}

/// Puts `alert` among the open ones with a fresh flag, set while it stays open.
fn insert_open(open: &mut HashMap<Arc<str>, OpenEntry>, alert: Alert) -> OpenFlag {
    let still_open = Arc::new(AtomicBool::new(true));
    open.insert(
        alert.id.clone(),
        OpenEntry {
            alert,
            still_open: still_open.clone(),
        },
    );
    OpenFlag(still_open)
}
