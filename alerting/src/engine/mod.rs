//! The engine: admits a reading, places it in the patient's window, evaluates every rule
//! that watches its metric, and raises or resolves alerts; raises `absent` alerts from a
//! deadline heap; applies live rule and patient changes. Synchronous, and free of
//! allocation per reading unless an alert changes state.

mod admin;
mod care;
mod hours;
mod look_ahead;
mod snapshots;
mod views;

pub use look_ahead::LookAhead;
pub use views::{
    MetricAdherence, MetricSeries, PatientSummary, PatientView, RuleLine, ADHERENCE_DAYS,
};

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::tz::TimeZone;
use parking_lot::Mutex;

use arc_swap::{ArcSwap, Guard};
use vigil_ingest::{Metric, Reading, RejectReason, Rejection};

use crate::absence::AbsenceTimers;
use crate::alert::{Alert, AlertState};
use crate::book::AlertBook;
use crate::days::DayMask;
use crate::error::AlertingError;
use crate::escalation::EscalationPolicy;
use crate::event_log::{EventLog, Subscription};
use crate::filter::AlertFilter;
use crate::measured::MetricState;
use crate::patient::PatientKey;
use crate::patient::PatientProfile;
use crate::patient_shards::{Found, PatientShards, StateMut};
use crate::patient_state::{OpenAlert, PatientState};
use crate::rule::{Rule, RuleKind};
use crate::rule_version::{Approval, RuleSetVersion};
use crate::ruleset::RuleSet;
use crate::silence::Silence;
use crate::snapshot::{HistorySamples, PatientSnapshot, SnapshotPart};
use crate::threshold::Verdict;
use crate::window::Sample;
use crate::{adherence, aggregate, change, news2, threshold, trend};

/// What processing one reading (or one tick) changed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Alerts raised, by severity (index `Severity as usize - 1`).
    pub raised: [u32; 3],
    pub resolved: u32,
    /// Escalation levels reached (ticks only).
    pub escalated: u32,
    /// Acknowledged alerts made active again (ticks only).
    pub renotified: u32,
}

impl Outcome {
    pub fn raised_total(&self) -> u32 {
        self.raised.iter().sum()
    }

    /// Adds what `other` changed.
    pub fn add(&mut self, other: Outcome) {
        for (a, b) in self.raised.iter_mut().zip(other.raised) {
            *a += b;
        }
        self.resolved += other.resolved;
        self.escalated += other.escalated;
        self.renotified += other.renotified;
    }
}

/// How often every patient is judged against the `adherence` rules, whether or not a
/// reading arrives (a patient who stopped measuring sends none).
pub const ADHERENCE_SWEEP_MS: i64 = 3_600_000;

/// How the engine starts.
pub struct EngineConfig {
    pub rules: Vec<Rule>,
    pub patients: Vec<PatientProfile>,
    /// True when no patient list is configured: every patient is admitted, in the
    /// `default` care team, on first reading.
    pub open_enrollment: bool,
    /// Escalation and re-notification per care team.
    pub escalation: EscalationPolicy,
}

impl EngineConfig {
    /// `rules` under open enrolment, with no patient list and the default escalation.
    pub fn open(rules: Vec<Rule>) -> EngineConfig {
        EngineConfig {
            rules,
            patients: Vec::new(),
            open_enrollment: true,
            escalation: EscalationPolicy::default(),
        }
    }
}

pub struct Engine {
    rules: ArcSwap<RuleSet>,
    escalation: ArcSwap<EscalationPolicy>,
    store: PatientShards,
    book: AlertBook,
    timers: AbsenceTimers,
    open_enrollment: bool,
    /// Event-time history every window keeps at least, whatever the rules need (for
    /// people looking at charts); 0: only what the rules need.
    min_history_ms: AtomicI64,
    /// Alert ids derived from the episode instead of drawn at random (see
    /// [`Engine::derive_alert_ids`]).
    episode_ids: AtomicBool,
    /// The time zone days are counted in for patients without one of their own (UTC
    /// until [`Engine::set_timezone`]).
    zone: OnceLock<TimeZone>,
    /// Server time of the next adherence sweep.
    adherence_due_ms: AtomicI64,
    /// Per adherence rule, the patients below it at the last sweep.
    below_adherence: Mutex<Vec<(Arc<str>, u64)>>,
}

impl Engine {
    pub fn new(config: EngineConfig, log: Arc<dyn EventLog>) -> Engine {
        let store = PatientShards::new();
        for p in config.patients {
            store.upsert_profile(p);
        }
        Engine {
            rules: ArcSwap::from_pointee(RuleSet::new(config.rules)),
            escalation: ArcSwap::from_pointee(config.escalation),
            store,
            book: AlertBook::new(log),
            timers: AbsenceTimers::default(),
            open_enrollment: config.open_enrollment,
            min_history_ms: AtomicI64::new(0),
            episode_ids: AtomicBool::new(false),
            zone: OnceLock::new(),
            adherence_due_ms: AtomicI64::new(i64::MIN),
            below_adherence: Mutex::new(Vec::new()),
        }
    }

    /// Counts days in `zone` for patients without a time zone of their own. Call it before
    /// the first reading; later calls are ignored.
    pub fn set_timezone(&self, zone: TimeZone) {
        let _ = self.zone.set(zone);
    }

    /// The time zone days are counted in for patients without one of their own.
    pub fn timezone(&self) -> TimeZone {
        self.zone.get().cloned().unwrap_or(TimeZone::UTC)
    }

    /// Per adherence rule, the patients whose readings fell short of it at the last sweep
    /// (`vigil_patients_below_adherence`).
    pub fn below_adherence(&self) -> Vec<(Arc<str>, u64)> {
        self.below_adherence.lock().clone()
    }

    /// Makes every window keep at least `ms` of event-time history (samples per window stay
    /// capped at [`crate::window::MAX_SAMPLES`]).
    pub fn keep_history(&self, ms: i64) {
        self.min_history_ms.store(ms.max(0), Ordering::Relaxed);
    }

    /// Derives each alert's id from its episode (patient, rule, the reading's event time
    /// and the server time it was judged at) instead of drawing it: two engines judging the
    /// same readings (a cluster's former and new owner of a partition) name an episode
    /// alike, so the alert stream stores it once.
    pub fn derive_alert_ids(&self) {
        self.episode_ids.store(true, Ordering::Relaxed);
    }

    /// Whether `patient_id` may send readings (enrolled, or open enrolment; consented),
    /// without admitting it: the check a cluster node makes before passing a reading on.
    pub fn admission(&self, patient_id: &str) -> Result<(), Rejection> {
        match self.store.get_mut(patient_id) {
            Some(state) if !state.hot.consent => Err(no_consent()),
            Some(_) => Ok(()),
            None if self.open_enrollment => Ok(()),
            None => Err(not_enrolled()),
        }
    }

    /// The history every window keeps at least.
    pub fn min_history_ms(&self) -> i64 {
        self.min_history_ms.load(Ordering::Relaxed)
    }

    /// Processes one validated reading at server time `now_ms`.
    pub fn process(&self, r: &Reading<'_>, now_ms: i64) -> Result<Outcome, Rejection> {
        self.process_if(r, now_ms, |_| true)
    }

    /// Like [`Engine::process`], but once the patient is admitted, `is_new` decides whether
    /// the reading is new or a redelivery (`duplicate`). Running it after admission keeps
    /// duplicate-tracking state to admitted patients only.
    pub fn process_if(
        &self,
        r: &Reading<'_>,
        now_ms: i64,
        is_new: impl FnOnce(&Reading<'_>) -> bool,
    ) -> Result<Outcome, Rejection> {
        let mut batch = self.lock_patient(r.patient_id)?;
        if !is_new(r) {
            return Err(duplicate());
        }
        let mut outcome = batch.process(r, now_ms);
        outcome.add(batch.finish());
        Ok(outcome)
    }

    /// The patient's state, locked: created on first sight under open enrolment, `None`
    /// for a patient who is not enrolled.
    fn admitted(&self, patient_id: &str) -> Option<StateMut<'_>> {
        self.admitted_hashed(patient_id, self.store.hash(patient_id), None)
    }

    /// [`Engine::admitted`] for an id whose hash in the store is `hash`; `found`: where
    /// a look-ahead found an entry tagged like it.
    fn admitted_hashed(
        &self,
        patient_id: &str,
        hash: u64,
        found: Option<Found>,
    ) -> Option<StateMut<'_>> {
        if self.open_enrollment {
            Some(self.store.get_or_admit_hashed(patient_id, hash, found))
        } else {
            self.store.get_mut_hashed(patient_id, hash, found)
        }
    }

    /// Admits `patient_id` and locks its state for the readings of one payload: one map
    /// lookup, one lock and one rule-set load for all of them, and the patient's state
    /// stays in cache between them. Only patients in the same shard wait meanwhile, so
    /// hold it for one payload, not longer.
    pub fn lock_patient(&self, patient_id: &str) -> Result<LockedPatient<'_>, Rejection> {
        let rules = BatchRules::Loaded(self.rules.load());
        self.lock_hashed(patient_id, self.store.hash(patient_id), None, rules)
    }

    /// [`Engine::lock_patient`] under `rules`, the rule set as [`Engine::rules`] gave it
    /// once for a whole batch: loading it for every patient costs two atomic operations
    /// that a gateway's batch, a patient a reading, pays on every reading. A rule set
    /// changed meanwhile applies from the next batch.
    pub fn lock_patient_under<'e>(
        &'e self,
        patient_id: &str,
        rules: &'e RuleSet,
    ) -> Result<LockedPatient<'e>, Rejection> {
        let hash = self.store.hash(patient_id);
        self.lock_hashed(patient_id, hash, None, BatchRules::Lent(rules))
    }

    /// [`Engine::lock_patient`] for an id whose hash in the store is `hash`, going
    /// straight to `found` if it is the patient's entry (both kept by a batch's
    /// [`LookAhead`]).
    pub(crate) fn lock_hashed<'e>(
        &'e self,
        patient_id: &str,
        hash: u64,
        found: Option<Found>,
        rules: BatchRules<'e>,
    ) -> Result<LockedPatient<'e>, Rejection> {
        let state = self
            .admitted_hashed(patient_id, hash, found)
            .ok_or_else(not_enrolled)?;
        if !state.hot.consent {
            return Err(no_consent());
        }
        let mut state = state;
        state.refresh_applies(&rules);
        Ok(LockedPatient {
            engine: self,
            rules,
            state,
            adherence_due: 0,
            now_ms: 0,
        })
    }

    /// Raises `absent` alerts whose deadline has passed at server time `now_ms` (costs
    /// nothing for patients whose deadline is not due), then escalates and re-notifies
    /// open alerts as their care teams' policies say.
    pub fn tick(&self, now_ms: i64) -> Outcome {
        let mut outcome = self.tick_absence(now_ms);
        if now_ms >= self.adherence_due_ms.load(Ordering::Relaxed) {
            self.adherence_due_ms
                .store(now_ms.saturating_add(ADHERENCE_SWEEP_MS), Ordering::Relaxed);
            outcome.add(self.sweep_adherence(now_ms));
        }
        self.book.expire_silences(now_ms);
        self.book.release_held(&self.escalation.load(), now_ms);
        (outcome.escalated, outcome.renotified) =
            self.book.escalate(&self.escalation.load(), now_ms);
        outcome
    }

    fn tick_absence(&self, now_ms: i64) -> Outcome {
        let rules = self.rules.load();
        let mut outcome = Outcome::default();
        while let Some(due) = self.timers.pop_due(now_ms) {
            let Some(mut state) = self.store.get_mut(&due.patient_id) else {
                continue;
            };
            let state = &mut *state;
            let metric = Metric::ALL[due.metric];
            state.measured.armed &= !(1 << due.metric);
            state.open.retain(|a| a.flag.is_open());
            let last = state.measured.get(metric).map_or(0, |s| s.last_seen_ms());
            let mut next: Option<i64> = None;
            for rule in rules.absent_for(metric) {
                if !rule.applies_to(state.profile())
                    || state.open.iter().any(|a| a.rule_id == rule.id)
                {
                    continue;
                }
                let kind = rule.kind_with(state.profile().override_for(&rule.id));
                let RuleKind::Absent(_, a) = kind else {
                    continue;
                };
                let deadline = last.saturating_add(a.after_ms);
                if deadline <= now_ms {
                    let seconds = ((now_ms - last) / 1000) as f64;
                    let observed = state.measured.latest(metric).map_or(last, |s| s.ts_ms);
                    self.apply(
                        &due.patient_id,
                        state,
                        (rule, rules.version()),
                        &kind,
                        Verdict::Fire(Sample {
                            ts_ms: observed,
                            value: seconds,
                        }),
                        None,
                        now_ms,
                        &mut outcome,
                    );
                } else {
                    next = Some(next.map_or(deadline, |n: i64| n.min(deadline)));
                }
            }
            if let Some(deadline) = next {
                state.measured.armed |= 1 << due.metric;
                self.timers
                    .schedule(deadline, due.patient_id.clone(), metric);
            }
        }
        outcome
    }

    /// Judges every patient against the `adherence` rules at server time `now_ms` (a
    /// patient who stopped measuring sends no reading that would), and counts those below
    /// each rule. Each patient is locked only while it is judged.
    pub fn sweep_adherence(&self, now_ms: i64) -> Outcome {
        let rules = self.rules.load();
        let mut outcome = Outcome::default();
        let watched: Vec<(usize, &Rule)> = rules
            .rules()
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.kind, RuleKind::Adherence(..)))
            .collect();
        let mut below = vec![0u64; watched.len()];
        if !watched.is_empty() {
            for id in self.store.ids() {
                let Some(mut state) = self.store.get_mut(&id) else {
                    continue;
                };
                let state = &mut *state;
                if !state.hot.consent {
                    continue;
                }
                state.refresh_applies(&rules);
                state.open.retain(|a| a.flag.is_open());
                for (k, &(index, rule)) in watched.iter().enumerate() {
                    if state.applies(index, rule)
                        && self.judge_adherence(
                            &id,
                            state,
                            (rule, rules.version()),
                            now_ms,
                            &mut outcome,
                        )
                    {
                        below[k] += 1;
                    }
                }
            }
        }
        *self.below_adherence.lock() = watched
            .iter()
            .zip(below)
            .map(|((_, r), n)| (r.id.clone(), n))
            .collect();
        outcome
    }

    /// Judges the patient against `rule` (an adherence rule that applies to them) at server
    /// time `now_ms`, raising or resolving; returns whether they are below it.
    fn judge_adherence(
        &self,
        patient_id: &str,
        state: &mut PatientState,
        (rule, version): (&Rule, &RuleSetVersion),
        now_ms: i64,
        outcome: &mut Outcome,
    ) -> bool {
        let kind = rule.kind_with(state.override_for(&rule.id));
        let RuleKind::Adherence(metric, a) = kind else {
            return false;
        };
        let today = state.day_of(now_ms, || self.timezone());
        let mask = state
            .measured
            .get(metric)
            .map_or(DayMask::EMPTY, |s| s.days);
        let below = adherence::judged(&a, &mask, today)
            && adherence::measured_days(&a, &mask, today) < a.min_days;
        let open = state.open.iter().position(|o| o.rule_id == rule.id);
        let observed = state.measured.latest(metric).map_or(now_ms, |s| s.ts_ms);
        let verdict = adherence::evaluate(&a, &mask, today, observed, open.is_some());
        if verdict != Verdict::Hold {
            self.apply(
                patient_id,
                state,
                (rule, version),
                &kind,
                verdict,
                open,
                now_ms,
                outcome,
            );
        }
        below
    }

    /// Schedules the patient's absence deadline for `metric` unless one is pending.
    fn arm(
        &self,
        patient_id: &str,
        rules: &RuleSet,
        state: &mut PatientState,
        metric: Metric,
        now_ms: i64,
    ) {
        let bit = 1 << metric.index();
        if state.measured.armed & bit != 0 {
            return;
        }
        let after = rules
            .absent_for(metric)
            .filter(|r| r.applies_to(state.profile()))
            .filter_map(|r| match r.kind_with(state.profile().override_for(&r.id)) {
                RuleKind::Absent(_, a) => Some(a.after_ms),
                _ => None,
            })
            .min();
        if let Some(after) = after {
            state.measured.armed |= bit;
            self.timers
                .schedule(now_ms.saturating_add(after), patient_id.into(), metric);
        }
    }

    /// Whether an open alert of the patient comes from a rule that supersedes `rule`
    /// (NEWS2 high over medium): then `rule` does not raise, so a nurse sees one alert per
    /// problem.
    fn inhibited(&self, state: &PatientState, rule: &Rule) -> bool {
        if state.open.is_empty() {
            return false;
        }
        let rules = self.rules.load();
        state.open.iter().any(|a| {
            a.flag.is_open()
                && rules
                    .get(&a.rule_id)
                    .is_some_and(|r| r.supersedes.contains(&rule.id))
        })
    }

    /// Resolves the patient's open alerts of the rules `rule` supersedes.
    fn resolve_superseded(
        &self,
        state: &mut PatientState,
        rule: &Rule,
        now_ms: i64,
        outcome: &mut Outcome,
    ) {
        let raised = state.open.last().map(|a| a.alert_id.clone());
        let note = format!(
            "superseded by rule '{}' (alert {})",
            rule.id,
            raised.as_deref().unwrap_or("")
        );
        let mut i = 0;
        while i < state.open.len() {
            if rule.supersedes.contains(&state.open[i].rule_id) {
                let gone = state.open.swap_remove(i);
                if self.book.resolve_if_open(&gone.alert_id, &note, now_ms) {
                    outcome.resolved += 1;
                }
            } else {
                i += 1;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        patient_id: &str,
        state: &mut PatientState,
        (rule, version): (&Rule, &RuleSetVersion),
        kind: &RuleKind,
        verdict: Verdict,
        open: Option<usize>,
        now_ms: i64,
        outcome: &mut Outcome,
    ) {
        match (verdict, open) {
            (Verdict::Fire(sample), None) => {
                if self.inhibited(state, rule) {
                    return;
                }
                let (metric, unit) = rule.alert_metric();
                let id = if self.episode_ids.load(Ordering::Relaxed) {
                    episode_alert_id(patient_id, &rule.id, sample.ts_ms, now_ms)
                } else {
                    new_alert_id()
                };
                let alert = Alert {
                    id,
                    patient_id: state.id_of(patient_id),
                    rule_id: rule.id.clone(),
                    severity: rule.severity,
                    metric,
                    unit,
                    value: sample.value,
                    message: rule.render_message(sample.value, kind),
                    patient_message: rule
                        .patient_message
                        .as_ref()
                        .map(|t| rule.render(t, sample.value, kind)),
                    state: AlertState::Active,
                    care_team: rule
                        .care_team
                        .clone()
                        .unwrap_or_else(|| state.profile().care_team.clone()),
                    observed_at_ms: sample.ts_ms,
                    raised_at_ms: now_ms,
                    acknowledged: None,
                    resolved: None,
                    escalation_level: 0,
                    escalated_to: Vec::new(),
                    active_since_ms: now_ms,
                    snoozed_until_ms: 0,
                    silenced_by: None,
                    disposition: None,
                    assignee: state.profile().responsible.clone(),
                    parameters: Some(kind.parameters()),
                    rule_set_version: version.number,
                    rule_set_hash: (version.number > 0).then(|| version.hash.clone()),
                };
                let mut alert = alert;
                self.route_after_hours(&mut alert, now_ms);
                let alert_id = alert.id.clone();
                let flag = self.book.raise(alert);
                state.open.push(OpenAlert {
                    rule_id: rule.id.clone(),
                    alert_id,
                    flag,
                });
                outcome.raised[rule.severity as usize - 1] += 1;
                if !rule.supersedes.is_empty() {
                    self.resolve_superseded(state, rule, now_ms, outcome);
                }
            }
            (Verdict::Clear, Some(i)) => {
                let OpenAlert { alert_id, .. } = state.open.swap_remove(i);
                let note = match kind {
                    RuleKind::Absent(..) => "condition cleared: a reading arrived".to_string(),
                    _ => format!(
                        "condition cleared ({} rule '{}')",
                        rule.kind_name(),
                        rule.id
                    ),
                };
                if self.book.resolve_if_open(&alert_id, &note, now_ms) {
                    outcome.resolved += 1;
                }
            }
            _ => {}
        }
    }
}

fn new_alert_id() -> Arc<str> {
    uuid::Uuid::now_v7().to_string().into()
}

/// A UUID (version 8) from the SHA-256 of the episode: what raised it, from which reading,
/// when.
fn episode_alert_id(patient_id: &str, rule_id: &str, observed_ms: i64, judged_ms: i64) -> Arc<str> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [patient_id.as_bytes(), b"\0", rule_id.as_bytes(), b"\0"] {
        h.update(part);
    }
    h.update(observed_ms.to_be_bytes());
    h.update(judged_ms.to_be_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string().into()
}

fn not_enrolled() -> Rejection {
    Rejection::new(
        RejectReason::NotEnrolled,
        "patient is not enrolled: add it to [[patients]] or enrol it over gRPC",
    )
}

fn no_consent() -> Rejection {
    Rejection::new(
        RejectReason::NoConsent,
        "patient has not consented to remote monitoring",
    )
}

/// The rule set a [`LockedPatient`] judges by: loaded for the patient, or lent by the
/// caller for a whole batch.
pub(crate) enum BatchRules<'e> {
    Loaded(Guard<Arc<RuleSet>>),
    Lent(&'e RuleSet),
}

impl std::ops::Deref for BatchRules<'_> {
    type Target = RuleSet;

    #[inline]
    fn deref(&self) -> &RuleSet {
        match self {
            BatchRules::Loaded(rules) => rules,
            BatchRules::Lent(rules) => rules,
        }
    }
}

/// A patient admitted and locked by [`Engine::lock_patient`]. Adherence rules are judged
/// once the payload's readings are all in ([`LockedPatient::finish`], or when it is
/// dropped): a meter's memory uploaded at once is judged on all of it, not reading by
/// reading from its oldest.
pub struct LockedPatient<'e> {
    engine: &'e Engine,
    rules: BatchRules<'e>,
    state: StateMut<'e>,
    /// Bit per metric: a reading arrived that adherence rules watch.
    adherence_due: u16,
    /// Server time of the last reading processed.
    now_ms: i64,
}

impl Drop for LockedPatient<'_> {
    fn drop(&mut self) {
        // Not lost when a caller forgets `finish`: only its count in the outcome is.
        self.judge_adherence();
    }
}

impl LockedPatient<'_> {
    /// Judges the adherence rules on the metrics whose readings arrived, as of the last
    /// reading's server time, and releases the patient. Call it after the last reading of
    /// a payload.
    pub fn finish(mut self) -> Outcome {
        self.judge_adherence()
    }

    /// The adherence rules judged if any are due: most readings have none, and
    /// `finish` and `drop` both ask, so the question is asked inline.
    #[inline(always)]
    fn judge_adherence(&mut self) -> Outcome {
        match std::mem::take(&mut self.adherence_due) {
            0 => Outcome::default(),
            due => self.judge_adherence_of(due),
        }
    }

    /// Judges the adherence rules on the metrics of `due` (bit per metric).
    fn judge_adherence_of(&mut self, due: u16) -> Outcome {
        let mut outcome = Outcome::default();
        let (engine, rules) = (self.engine, &*self.rules);
        // The id is in the state; a copy (inline up to 24 bytes) lets both be passed.
        let id = self.state.key().clone();
        let state = &mut *self.state;
        state.open.retain(|a| a.flag.is_open());
        for metric in Metric::ALL
            .into_iter()
            .filter(|m| due & 1 << m.index() != 0)
        {
            for (index, rule) in rules.for_metric(metric) {
                if matches!(rule.kind, RuleKind::Adherence(..)) && state.applies(index, rule) {
                    engine.judge_adherence(
                        &id,
                        state,
                        (rule, rules.version()),
                        self.now_ms,
                        &mut outcome,
                    );
                }
            }
        }
        outcome
    }

    /// Starts loading what processing readings of `metrics` will touch, all at once: at
    /// 100 000 patients a window is rarely in cache, and its misses then overlap instead of
    /// stalling one reading after another. Call it before processing a payload.
    pub fn prefetch(&self, metrics: impl IntoIterator<Item = Metric> + Clone) {
        self.state.prefetch_common();
        // Every window's derived state is asked for before any is read, so that their
        // misses overlap too.
        let measured = &self.state.measured;
        for m in metrics.clone() {
            if let Some(window) = measured.window(m) {
                window.prefetch_near();
            }
        }
        for m in metrics {
            if let Some(window) = measured.window(m) {
                window.prefetch_far();
            }
        }
    }

    /// Places one reading of this patient in its window and evaluates every rule that
    /// watches its metric. `r.patient_id` is not looked at again.
    pub fn process(&mut self, r: &Reading<'_>, now_ms: i64) -> Outcome {
        let (engine, rules, state) = (self.engine, &*self.rules, &mut *self.state);
        // NEWS2 reads every metric's newest sample after the window's work: their line's
        // miss overlaps with the window's instead of following it.
        state.prefetch_common();
        let m = r.metric.index();
        let retention = rules
            .window_ms(r.metric)
            .max(state.hot.longest_override_ms())
            .max(engine.min_history_ms());
        let needs = state.needs(rules, r.metric);
        let slot = state.measured.made(r.metric);
        state.measured.at_mut(slot).track(needs);
        let sample = Sample {
            ts_ms: r.ts_ms,
            value: r.value,
        };
        let appended = state.measured.insert_at(slot, sample, retention);
        state.record_day(r.metric, r.ts_ms, || engine.timezone());
        state.persisted.changed(appended);
        if rules.has_absent(r.metric) {
            state.measured.at_mut(slot).seen_at(now_ms);
            engine.arm(r.patient_id, rules, state, r.metric, now_ms);
        }
        // Alerts a person resolved no longer hold their rule.
        if !state.open.is_empty() {
            state.open.retain(|a| a.flag.is_open());
        }

        let mut outcome = Outcome::default();
        // Every rule judges the metric's newest sample: this reading as the window holds
        // it if it went in last, else read once (kept apart, undecoded, for a metric
        // NEWS2 scores).
        let latest = if appended {
            state.measured.at(slot).as_stored(sample)
        } else {
            let Some(latest) = state.measured.latest(r.metric) else {
                return outcome;
            };
            latest
        };
        debug_assert_eq!(
            state
                .measured
                .latest(r.metric)
                .map(|s| (s.ts_ms, s.value.to_bits())),
            Some((latest.ts_ms, latest.value.to_bits())),
            "the newest sample"
        );
        // NEWS2 is scored once per reading and window, however many NEWS2 rules there are.
        let mut news2_score: Option<(i64, Option<news2::Score>)> = None;
        for (index, rule) in rules.for_metric(r.metric) {
            if !state.applies(index, rule) {
                continue;
            }
            let overridden;
            let kind = match state.override_for(&rule.id) {
                None => &rule.kind,
                Some(o) => {
                    overridden = rule.kind_with(Some(o));
                    &overridden
                }
            };
            let open = state.open.iter().position(|a| a.rule_id == rule.id);
            let is_open = open.is_some();
            let metric = state.measured.at(slot);
            let window = metric;
            let verdict = match kind {
                RuleKind::Threshold(_, t) => threshold::evaluate(t, window, latest, is_open),
                RuleKind::Change(_, c) => change::evaluate(c, window, latest, is_open),
                RuleKind::Aggregate(_, a)
                    if a.min_days > 0
                        && days_in_window(state, metric, latest, a.window_ms, engine)
                            < a.min_days =>
                {
                    Verdict::Hold
                }
                RuleKind::Aggregate(_, a) => aggregate::evaluate(a, window, latest, is_open),
                RuleKind::Trend(_, t) => trend::evaluate(t, window, latest, is_open),
                // Judged once the payload is in (`finish`).
                RuleKind::Adherence(..) => {
                    self.adherence_due |= 1 << m;
                    self.now_ms = now_ms;
                    Verdict::Hold
                }
                // A reading arrived: the metric is no longer absent.
                RuleKind::Absent(..) if is_open => Verdict::Clear,
                RuleKind::Absent(..) => Verdict::Hold,
                RuleKind::News2(n) => {
                    let score = match news2_score {
                        Some((window, score)) if window == n.window_ms => score,
                        _ => {
                            let score = news2::score_of(
                                state.measured.scored_latest(),
                                n.window_ms,
                                state.hot.spo2_scale,
                            );
                            news2_score = Some((n.window_ms, score));
                            score
                        }
                    };
                    news2::evaluate(n, score, is_open)
                }
            };
            if verdict != Verdict::Hold {
                engine.apply(
                    r.patient_id,
                    state,
                    (rule, rules.version()),
                    kind,
                    verdict,
                    open,
                    now_ms,
                    &mut outcome,
                );
            }
        }
        outcome
    }
}

/// Distinct days with readings of a metric in (newest − window, newest], `latest` being
/// its newest sample: the days after the one the window starts on from the day mask,
/// that one only if the window's oldest reading is on it (a reading earlier that day is
/// outside the window).
fn days_in_window(
    state: &PatientState,
    metric: &MetricState,
    latest: Sample,
    window_ms: i64,
    engine: &Engine,
) -> u32 {
    let to = state.day_of(latest.ts_ms, || engine.timezone());
    let start = latest.ts_ms.saturating_sub(window_ms);
    let from = state.day_of(start.saturating_add(1), || engine.timezone());
    let window = metric;
    let oldest = window.get(window.start_index(start, false));
    let first_day = oldest.map(|s| state.day_of(s.ts_ms, || engine.timezone()));
    metric.days.count(from + 1, to) + u32::from(first_day == Some(from))
}

/// The rejection of a reading already accepted.
pub fn duplicate() -> Rejection {
    Rejection::new(
        RejectReason::Duplicate,
        "this (device, seq) was already accepted",
    )
}
