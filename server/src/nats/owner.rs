//! One partition on the node that holds its lease: an engine of its own, rebuilt by
//! replaying the partition's readings, judging new ones as they arrive, and writing the
//! alert events it raises to the partition's alert subject.
//!
//! Taking a partition over, in order:
//! 1. read the partition's alert subject: every alert's newest state, and how far the
//!    former owner had written (`Vigil-Applied`: the readings-stream sequence it had applied
//!    and the event's index since);
//! 2. write a marker conditional on the subject's last sequence: from then on a former
//!    owner that wakes up fails every write (it expects an older last sequence);
//! 3. replay the partition's readings into a fresh engine, writing nothing for what the
//!    former owner had written; at that point take the alerts' states from the stream
//!    (acknowledgements, escalations, resolutions by people, absences raised by a clock);
//! 4. judge new readings as they come, and run the clock, writing every event.
//!
//! Every write carries `Nats-Expected-Last-Subject-Sequence` (the fence) and a
//! `Nats-Msg-Id` derived from the episode (a retry is stored once), and is made only while
//! the lease is known to be held.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vigil_alerting::{
    Alert, AlertEvent, AlertFilter, AlertLog, AlertingError, Engine, EngineConfig,
    EscalationPolicy, EventLog,
};

use tokio::sync::broadcast::error::RecvError;

use super::catalog::Change;
use super::cluster::Cluster;
use super::wire::{self, CareReply, CareRequest, ViewReply, ViewRequest};
use crate::clock::now_ms;
use crate::telemetry::Telemetry;

/// What every partition's engine starts from: the rules, patients and silences in force
/// on this node (the configuration's, changed by the cluster catalog).
#[derive(Clone)]
pub struct Template {
    /// The node's own engine, which admits readings: it holds what is in force.
    pub front: Arc<Engine>,
    pub open_enrollment: bool,
    pub escalation: EscalationPolicy,
    pub min_history_ms: i64,
}

impl Template {
    /// An engine for partition `p`'s patients, raising into `log`, with episode-derived
    /// alert ids.
    fn engine(&self, p: u32, partitions: u32, log: Arc<dyn EventLog>) -> Engine {
        let patients = self
            .front
            .profiles()
            .into_iter()
            .filter(|pp| super::partition::partition(&pp.id, partitions) == p)
            .map(|pp| (*pp).clone())
            .collect();
        let engine = Engine::new(
            EngineConfig {
                rules: self.front.rules().rules().to_vec(),
                patients,
                open_enrollment: self.open_enrollment,
                escalation: self.escalation.clone(),
            },
            log,
        );
        engine.set_rules_version((*self.front.rules_version()).clone());
        engine.derive_alert_ids();
        engine.keep_history(self.min_history_ms);
        engine.set_timezone(self.front.timezone());
        for silence in self.front.silences(now_ms()) {
            engine.add_silence(silence);
        }
        engine
    }
}

/// Until when this node knows it holds a partition's lease: renewed by the ownership loop,
/// read before every write.
#[derive(Debug)]
pub struct LeaseClock(Mutex<Instant>);

impl LeaseClock {
    pub fn new(until: Instant) -> LeaseClock {
        LeaseClock(Mutex::new(until))
    }

    pub fn extend(&self, until: Instant) {
        *self.0.lock() = until;
    }

    pub fn held(&self) -> bool {
        Instant::now() < *self.0.lock()
    }
}

/// Why an owner stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum OwnerEnd {
    #[error("another node wrote to the partition's alert subject: this node no longer owns it")]
    Fenced,
    #[error("the lease ran out before the write was made")]
    LeaseLapsed,
    #[error(
        "{0} catalog changes were missed: the partition is taken over again from what is in force"
    )]
    Behind(u64),
    #[error("NATS: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> OwnerEnd {
    OwnerEnd::Nats(e.to_string())
}

pub struct Owner {
    pub cluster: Arc<Cluster>,
    pub partition: u32,
    pub template: Arc<Template>,
    pub lease: Arc<LeaseClock>,
    pub telemetry: Arc<Telemetry>,
    /// Partitions of this node being rebuilt (`/readyz` is 503 while any is).
    pub rebuilding: Arc<AtomicUsize>,
}

/// Counts a partition as rebuilding until dropped.
struct Rebuilding(Arc<AtomicUsize>);

impl Rebuilding {
    fn start(count: &Arc<AtomicUsize>) -> Rebuilding {
        count.fetch_add(1, Ordering::AcqRel);
        Rebuilding(count.clone())
    }
}

impl Drop for Rebuilding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The partition's alert subject as read at takeover.
struct Written {
    /// Every alert's newest state.
    alerts: HashMap<Arc<str>, Alert>,
    /// The subject's last sequence (0: nothing written yet).
    last_seq: u64,
    /// How far the readings were judged and written.
    applied: (u64, u32),
}

/// Takes a partition's adherence counts out of the node's gauge when its owner stops.
struct AdherenceCounted(Arc<Telemetry>, u32);

impl Drop for AdherenceCounted {
    fn drop(&mut self) {
        self.0.below_adherence(Some(self.1), Vec::new());
    }
}

impl Owner {
    /// Runs until cancelled (the lease was lost or given up) or until it cannot go on.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), OwnerEnd> {
        let started = Instant::now();
        let mut rebuilding = Some(Rebuilding::start(&self.rebuilding));
        let p = self.partition;
        let _counted = AdherenceCounted(self.telemetry.clone(), p);
        let written = self.read_written().await?;
        let mut last_seq = self.mark_takeover(&written).await?;
        let log = Arc::new(AlertLog::new(1024, 1 << 16, 1));
        // Before the engine copies what is in force: no change made meanwhile is missed
        // (one applied twice changes nothing).
        let mut changes = self.cluster.catalog.subscribe();
        let engine = self
            .template
            .engine(p, self.cluster.settings.partitions, log.clone());
        let mut events = log.subscribe(AlertFilter::default(), None);
        // The newest snapshot's windows; the replay starts after the reading it covers.
        let start_after = self.restore(&engine).await?;
        // People's actions on this partition's alerts, taken by any node; answered once
        // rebuilt.
        let mut care = self
            .cluster
            .client
            .subscribe(self.cluster.subjects.care(p))
            .await
            .map_err(nats)?;
        // The console's questions: this partition's patient pages and summaries.
        let client = &self.cluster.client;
        let mut views = futures_util::stream::select(
            client
                .subscribe(self.cluster.subjects.view(p))
                .await
                .map_err(nats)?,
            client
                .subscribe(self.cluster.subjects.views())
                .await
                .map_err(nats)?,
        );

        let subject = self.cluster.subjects.readings(p);
        let readings = self.cluster.readings().await.map_err(nats)?;
        let newest = match readings.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(nats(e)),
        };
        let consumer = readings
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: start_after + 1,
                },
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        let mut messages = consumer.messages().await.map_err(nats)?;
        // Replayed: the readings stored before the takeover (up to `newest`). The alerts'
        // states are adopted where the former owner stopped writing; the rebuild is over
        // once the replay reached `newest` (then the clock, people's actions and snapshots
        // start).
        let mut replayed = 0u64;
        let mut adopted = false;
        if newest <= start_after {
            self.adopt(&engine, &written, &mut adopted);
            self.rebuilt(started, 0, &mut rebuilding);
        }
        let every = self.cluster.settings.snapshot_every;
        let mut snapshots = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        snapshots.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut snapshot_seq = start_after;
        let mut clock = tokio::time::interval(Duration::from_secs(1));
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut cursor = (written.applied.0, written.applied.1.saturating_add(1));
        loop {
            tokio::select! {
                () = cancel.cancelled() => {
                    // Given up (shutdown, rebalancing): the next owner starts from here.
                    if rebuilding.is_none() && cursor.0 > snapshot_seq {
                        self.snapshot(&engine, cursor.0).await;
                    }
                    return Ok(());
                }
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(OwnerEnd::Nats("the readings consumer ended".into()));
                    };
                    let message = message.map_err(nats)?;
                    let (seq, pending) = {
                        let info = message.info().map_err(nats)?;
                        (info.stream_sequence, info.pending)
                    };
                    if seq > written.applied.0 {
                        self.adopt(&engine, &written, &mut adopted);
                    }
                    let received = self.judge(&engine, &message.payload);
                    cursor = (seq, 0);
                    let skip = (!adopted).then_some(written.applied);
                    self.write(&mut events, &mut last_seq, &mut cursor, skip).await?;
                    if rebuilding.is_some() {
                        replayed += 1;
                        if seq >= newest {
                            self.adopt(&engine, &written, &mut adopted);
                            self.rebuilt(started, replayed, &mut rebuilding);
                        }
                    } else {
                        let age = (now_ms() - received) as f64 / 1000.0;
                        self.telemetry.partition_lag(p, pending, age);
                    }
                }
                _ = clock.tick(), if rebuilding.is_none() => {
                    engine.tick(now_ms());
                    self.telemetry.below_adherence(Some(p), engine.below_adherence());
                    self.write(&mut events, &mut last_seq, &mut cursor, None).await?;
                }
                _ = snapshots.tick(), if rebuilding.is_none() && cursor.0 > snapshot_seq => {
                    self.snapshot(&engine, cursor.0).await;
                    snapshot_seq = cursor.0;
                }
                change = changes.recv(), if rebuilding.is_none() => {
                    match change {
                        Ok(change) => self.change(&engine, &change),
                        Err(RecvError::Lagged(missed)) => return Err(OwnerEnd::Behind(missed)),
                        Err(RecvError::Closed) => {
                            return Err(OwnerEnd::Nats("the catalog feed ended".into()))
                        }
                    }
                    self.write(&mut events, &mut last_seq, &mut cursor, None).await?;
                }
                request = views.next(), if rebuilding.is_none() => {
                    let Some(request) = request else {
                        return Err(OwnerEnd::Nats("the view subscription ended".into()));
                    };
                    if let (Some(to), Some(reply)) = (request.reply, self.view(&engine, &request.payload)) {
                        let body = serde_json::to_vec(&reply).expect("a view serializes");
                        if let Err(e) = self.cluster.client.publish(to, body.into()).await {
                            debug!(error = %e, "a view was not sent");
                        }
                    }
                }
                request = care.next(), if rebuilding.is_none() => {
                    let Some(request) = request else {
                        return Err(OwnerEnd::Nats("the care subscription ended".into()));
                    };
                    let reply = self.care(&engine, &request.payload);
                    // Answered once the event is in the alert stream.
                    self.write(&mut events, &mut last_seq, &mut cursor, None).await?;
                    if let Some(to) = request.reply {
                        let body = serde_json::to_vec(&reply).expect("a care reply serializes");
                        if let Err(e) = self.cluster.client.publish(to, body.into()).await {
                            debug!(error = %e, "a care reply was not sent");
                        }
                    }
                }
            }
        }
    }

    /// Restores the partition's newest snapshot into `engine`; the readings-stream sequence
    /// it covers (0: none, replay everything).
    async fn restore(&self, engine: &Engine) -> Result<u64, OwnerEnd> {
        let snapshot = super::snapshot::load(&self.cluster.snapshots, self.partition)
            .await
            .map_err(nats)?;
        let Some(snapshot) = snapshot else {
            return Ok(0);
        };
        let now = now_ms();
        for (patient, windows) in &snapshot.patients {
            engine.restore_snapshot(patient, windows, &[], now);
        }
        debug!(
            partition = self.partition,
            patients = snapshot.patients.len(),
            readings_seq = snapshot.readings_seq,
            "partition snapshot restored"
        );
        Ok(snapshot.readings_seq)
    }

    /// Publishes the partition's windows as of the reading `applied` (while the lease is
    /// held); a failure only means a longer replay for the next owner.
    async fn snapshot(&self, engine: &Engine, applied: u64) {
        if !self.lease.held() {
            return;
        }
        let snapshot = super::snapshot::PartitionSnapshot {
            partition: self.partition,
            readings_seq: applied,
            taken_ms: now_ms(),
            node: self.cluster.settings.node_id.clone(),
            patients: engine.whole_snapshots(),
        };
        match super::snapshot::save(&self.cluster.snapshots, &snapshot).await {
            Ok(bytes) => self.telemetry.partition_snapshot(bytes),
            Err(e) => {
                warn!(partition = self.partition, error = %e, "partition snapshot not published")
            }
        }
    }

    /// Applies a change of the cluster catalog to this partition's engine (patients of other
    /// partitions and devices are not its business).
    fn change(&self, engine: &Engine, change: &Change) {
        let mine = |id: &str| self.cluster.partition_of(id) == self.partition;
        let now = now_ms();
        match change {
            Change::Rule(rule, approval) => {
                engine.put_rule(rule.clone(), approval.clone());
            }
            Change::RuleGone(id, approval) => {
                engine.delete_rule(id, approval.clone(), now);
            }
            Change::Patient(profile) if mine(&profile.id) => {
                engine.enroll(profile.clone(), now);
            }
            Change::PatientGone(id) if mine(id) => {
                engine.unenroll(id, now);
            }
            Change::Silence(silence) => engine.add_silence(silence.clone()),
            Change::SilenceGone(id) => {
                engine.delete_silence(id, now);
            }
            Change::Patient(_)
            | Change::PatientGone(_)
            | Change::Device(_)
            | Change::DeviceGone(_)
            | Change::RuleApproval(..)
            | Change::Review(_) => {}
        }
    }

    /// Answers the console's question about this partition's patients (`None`: not one
    /// this node reads).
    fn view(&self, engine: &Engine, body: &[u8]) -> Option<ViewReply> {
        match serde_json::from_slice::<ViewRequest>(body).ok()? {
            ViewRequest::Patient { id, max_samples } => Some(ViewReply::Patient(
                engine
                    .patient_view(&id, max_samples, crate::clock::now_ms())
                    .map(Box::new),
            )),
            ViewRequest::Summaries { care_team } => Some(ViewReply::Summaries {
                partition: self.partition,
                summaries: engine
                    .patient_summaries(|p| care_team.as_deref().is_none_or(|t| *p.care_team == *t)),
            }),
        }
    }

    /// Applies a person's action taken by any node to this partition's engine.
    fn care(&self, engine: &Engine, body: &[u8]) -> CareReply {
        let Ok(r) = serde_json::from_slice::<CareRequest>(body) else {
            return CareReply::Refused("not a care request this node reads".into());
        };
        let done = r
            .action
            .apply(engine, &r.alert_id, &r.by, &r.note, now_ms());
        match done {
            Ok(alert) => CareReply::Done(Box::new(alert)),
            Err(e @ AlertingError::AlertNotFound(_)) => CareReply::NotFound(e.to_string()),
            Err(e) => CareReply::Refused(e.to_string()),
        }
    }

    /// Reads the partition's alert subject from its first retained message to its last.
    async fn read_written(&self) -> Result<Written, OwnerEnd> {
        let mut alerts = HashMap::new();
        let mut applied = (0, 0);
        let last_seq = self
            .cluster
            .read_alerts(self.partition, |_, headers, event| {
                if let Some(a) = wire::applied(headers) {
                    applied = a;
                }
                if let Some(event) = event {
                    alerts.insert(event.alert.id.clone(), event.alert);
                }
            })
            .await
            .map_err(OwnerEnd::Nats)?;
        Ok(Written {
            alerts,
            last_seq,
            applied,
        })
    }

    /// Writes the marker that fences the former owner off; returns the subject's new last
    /// sequence.
    async fn mark_takeover(&self, written: &Written) -> Result<u64, OwnerEnd> {
        if !self.lease.held() {
            return Err(OwnerEnd::LeaseLapsed);
        }
        let marker = PublishMessage::build()
            .header(wire::TAKEOVER, self.cluster.settings.node_id.as_str())
            .header(wire::APPLIED, wire::applied_value(written.applied).as_str())
            .expected_last_subject_sequence(written.last_seq);
        let subject = self.cluster.subjects.alerts(self.partition);
        let ack = self
            .cluster
            .js
            .send_publish(subject, marker)
            .await
            .map_err(nats)?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(OwnerEnd::Fenced),
            Err(e) => Err(nats(e)),
        }
    }

    /// Judges the readings of one message, each at the server time its edge node accepted
    /// it; returns the last one's.
    fn judge(&self, engine: &Engine, body: &[u8]) -> i64 {
        let Some(group) = wire::decode_group(body) else {
            debug!(
                partition = self.partition,
                "a message on the readings subject is not a reading"
            );
            return now_ms();
        };
        let mut received = now_ms();
        // Consecutive readings of one patient (a payload) are judged under one lock, and
        // adherence once they are all in.
        let mut locked: Option<(&str, vigil_alerting::LockedPatient<'_>)> = None;
        for wire in &group {
            let reading = wire.reading();
            let patient = match locked.take() {
                Some((id, patient)) if id == reading.patient_id => Ok(patient),
                other => {
                    if let Some((_, previous)) = other {
                        self.telemetry.outcome(&previous.finish());
                    }
                    engine.lock_patient(reading.patient_id)
                }
            };
            match patient {
                Ok(mut patient) => {
                    let outcome = patient.process(&reading, wire.received_ms);
                    self.telemetry.outcome(&outcome);
                    locked = Some((reading.patient_id, patient));
                }
                Err(rejection) => self.telemetry.rejected(rejection.reason),
            }
            received = wire.received_ms;
        }
        if let Some((_, patient)) = locked {
            self.telemetry.outcome(&patient.finish());
        }
        received
    }

    /// Brings the engine's alerts in line with the stream (once) when the replay has
    /// reached where the former owner stopped writing.
    fn adopt(&self, engine: &Engine, written: &Written, adopted: &mut bool) {
        if !*adopted {
            *adopted = true;
            engine.adopt_alerts(written.alerts.values().cloned().collect());
        }
    }

    /// The replay reached the readings stored before the takeover: the rebuild is over.
    fn rebuilt(&self, started: Instant, replayed: u64, rebuilding: &mut Option<Rebuilding>) {
        *rebuilding = None;
        let took = started.elapsed();
        self.telemetry.partition_rebuilt(took, replayed);
        info!(
            partition = self.partition,
            replayed,
            took_ms = took.as_millis() as u64,
            "partition taken over"
        );
    }

    /// Writes every event the engine raised since the last call, in order; events at or
    /// before `skip_through` (the former owner wrote them) are dropped.
    async fn write(
        &self,
        events: &mut vigil_alerting::Subscription,
        last_seq: &mut u64,
        cursor: &mut (u64, u32),
        skip_through: Option<(u64, u32)>,
    ) -> Result<(), OwnerEnd> {
        while let Ok(event) = events.live.try_recv() {
            let at = *cursor;
            cursor.1 = cursor.1.saturating_add(1);
            if skip_through.is_some_and(|through| at <= through) {
                continue;
            }
            *last_seq = self.publish(&event, *last_seq, at).await?;
        }
        Ok(())
    }

    async fn publish(
        &self,
        event: &AlertEvent,
        last_seq: u64,
        applied: (u64, u32),
    ) -> Result<u64, OwnerEnd> {
        let subject = self.cluster.subjects.alerts(self.partition);
        let msg_id = wire::event_msg_id(event);
        let body = wire::encode_event(event);
        loop {
            if !self.lease.held() {
                warn!(
                    partition = self.partition,
                    "lease not renewed in time: stopping before writing an alert event"
                );
                return Err(OwnerEnd::LeaseLapsed);
            }
            let message = PublishMessage::build()
                .payload(body.clone())
                .message_id(&msg_id)
                .header(wire::APPLIED, wire::applied_value(applied).as_str())
                .expected_last_subject_sequence(last_seq);
            let ack = match self.cluster.js.send_publish(subject.clone(), message).await {
                Ok(pending) => pending.await,
                Err(e) => {
                    debug!(error = %e, "alert event not sent; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match ack {
                Ok(ack) if ack.duplicate => return Ok(last_seq),
                Ok(ack) => return Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    warn!(
                        partition = self.partition,
                        "another node wrote to this partition's alerts: stopping"
                    );
                    return Err(OwnerEnd::Fenced);
                }
                Err(e) => {
                    debug!(error = %e, "alert event not acknowledged; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
