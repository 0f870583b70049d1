//! Readings from every transport: validate, drop duplicates, hand to the engine, count the
//! outcome. Rejections are logged at `debug` only, without values.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use smallvec::SmallVec;
use tracing::debug;
use vigil_alerting::engine::duplicate;
use vigil_alerting::{Engine, LockedPatient, LookAhead, RuleSet};
use vigil_ingest::{
    decode_payload_into, parse_topic, DedupLimits, DedupStats, Metric, Reading, RejectReason,
    Rejection, SeqFilter, Validator, WireReading,
};
use vigil_proto::raw_batch::RawBatch;

use crate::clock::now_ms;
use crate::nats::cluster::Cluster;
use crate::nats::wire::StreamReading;
use crate::telemetry::{Source, Telemetry};

/// Rejections listed one by one in an answer (all are counted by reason): a stream of
/// millions of bad readings must not make an answer of hundreds of megabytes.
pub const MAX_LISTED_REJECTIONS: usize = 1000;

/// What a request of readings came to: every reading accepted or rejected, the first
/// [`MAX_LISTED_REJECTIONS`] rejections listed with their index, all counted by reason.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub accepted: u64,
    pub rejected: u64,
    /// (index across the request, why), in index order.
    pub listed: Vec<(u64, Rejection)>,
    /// Every rejection, by its reason's stable code.
    pub by_reason: BTreeMap<&'static str, u64>,
    /// Rejected as `not_permitted` (outside the caller's patient prefixes).
    pub not_permitted: u64,
    /// Cluster mode: the accepted readings, to be stored in the readings stream before
    /// the request is answered.
    pub forward: Vec<StreamReading>,
}

impl BatchOutcome {
    fn rejected(&mut self, index: u64, rejection: Rejection) {
        self.rejected += 1;
        *self.by_reason.entry(rejection.reason.as_str()).or_default() += 1;
        if self.listed.len() < MAX_LISTED_REJECTIONS {
            self.listed.push((index, rejection));
        }
    }
}

/// One payload's validated readings, with whether each carried its own timestamp; on the
/// stack for payloads of up to 16 readings.
type Readings<'a> = SmallVec<[(Reading<'a>, bool); 16]>;

pub struct Pipeline {
    engine: Arc<Engine>,
    validator: Validator,
    dedup: SeqFilter,
    telemetry: Arc<Telemetry>,
    /// Cluster mode: accepted readings go to the readings stream, for their partition's
    /// owner to judge, instead of to this node's engine (which then only admits).
    cluster: Option<Arc<Cluster>>,
}

impl Pipeline {
    pub fn new(
        engine: Arc<Engine>,
        validator: Validator,
        dedup: DedupLimits,
        telemetry: Arc<Telemetry>,
    ) -> Pipeline {
        Pipeline {
            engine,
            validator,
            dedup: SeqFilter::with_limits(dedup),
            telemetry,
            cluster: None,
        }
    }

    /// Passes accepted readings to the cluster instead of judging them here.
    pub fn forwarding_to(mut self, cluster: Arc<Cluster>) -> Pipeline {
        self.cluster = Some(cluster);
        self
    }

    /// Cluster mode: stores accepted readings in the readings stream and returns once
    /// JetStream acknowledged every one (only then may the sender be answered).
    pub async fn store(&self, readings: Vec<StreamReading>) -> Result<(), String> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let n = readings.len();
        cluster.store(readings).await.map_err(|e| {
            self.telemetry.cluster_publish_failed(n);
            e.to_string()
        })
    }

    /// The duplicate filter's size and evictions, for metrics.
    pub fn dedup_stats(&self) -> DedupStats {
        self.dedup.stats()
    }

    /// The metrics the pipeline records into, for the listeners that feed it.
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// Forgets a patient's duplicate-tracking state (unenrolment, consent withdrawn).
    pub fn forget_patient(&self, patient_id: &str) {
        self.dedup.forget_patient(patient_id);
    }

    /// Handles one MQTT PUBLISH on `vitals/`: decodes every reading first, then locks the
    /// patient once for all of them. In cluster mode, returns the accepted readings for
    /// [`Pipeline::store`] instead.
    pub fn mqtt_publish(
        &self,
        topic: &[u8],
        payload: &[u8],
        received: Instant,
    ) -> Vec<StreamReading> {
        self.telemetry.mqtt_payload();
        let topic = match parse_topic(topic) {
            Ok(t) => t,
            Err(rejection) => {
                self.reject(None, &rejection);
                return Vec::new();
            }
        };
        let now = now_ms();
        let mut wires: Vec<WireReading<'_>> = Vec::new();
        decode_payload_into(payload, topic.metric.is_some(), &mut wires, |rejection| {
            self.reject(Some(topic.patient_id), &rejection)
        });
        let mut readings = Readings::new();
        for wire in &wires {
            match self
                .validator
                .from_wire(topic.patient_id, topic.metric, wire, now)
            {
                Ok(r) => readings.push((r, wire.ts.is_some())),
                Err(rejection) => self.reject(Some(topic.patient_id), &rejection),
            }
        }
        if readings.is_empty() {
            return Vec::new();
        }
        if self.cluster.is_some() {
            let mut out = Vec::new();
            for (r, ts_given) in &readings {
                match self.pass_on(r, *ts_given, now, &mut out) {
                    Ok(()) => {}
                    Err(rejection) => self.reject(Some(topic.patient_id), &rejection),
                }
            }
            self.telemetry.ingested(Source::Mqtt, out.len() as u64);
            return out;
        }
        let mut patient = match self.engine.lock_patient(topic.patient_id) {
            Ok(patient) => patient,
            Err(rejection) => {
                for _ in &readings {
                    self.reject(Some(topic.patient_id), &rejection);
                }
                return Vec::new();
            }
        };
        patient.prefetch(readings.iter().map(|(r, _)| r.metric));
        let mut accepted = 0;
        for (r, ts_given) in &readings {
            match self.accept(&mut patient, r, *ts_given, received, now) {
                Ok(()) => accepted += 1,
                Err(rejection) => self.reject(Some(topic.patient_id), &rejection),
            }
        }
        self.release(patient, received);
        self.telemetry.ingested(Source::Mqtt, accepted);
        Vec::new()
    }

    /// Handles one batch (gRPC, and any transport that batches); rejections are added to
    /// `outcome` with their index (`index_base` + position in this batch). Consecutive
    /// readings of one patient share one lock. Readings of patients the caller may not
    /// publish for (`permitted` false) are rejected as `not_permitted`.
    pub fn batch(
        &self,
        batch: &RawBatch,
        index_base: u64,
        received: Instant,
        permitted: impl Fn(&str) -> bool,
        outcome: &mut BatchOutcome,
    ) {
        let now = now_ms();
        let accepted_before = outcome.accepted;
        // One rule set for the whole batch (a change applies from the next batch).
        let rules = self.engine.rules();
        let mut locked: Option<(&str, LockedPatient<'_>)> = None;
        let mut ahead = Ahead::of(batch, self.cluster.is_none());
        for (i, r) in batch.iter().enumerate() {
            let allowed = if permitted(r.patient_id) {
                Ok(())
            } else {
                outcome.not_permitted += 1;
                Err(Rejection::new(
                    RejectReason::NotPermitted,
                    "this token may not publish for that patient id (outside its patient_prefixes)",
                ))
            };
            let result = allowed
                .and_then(|()| self.validator.from_proto(r, now))
                .and_then(|reading| {
                    if self.cluster.is_some() {
                        return self.pass_on(&reading, r.ts_ms != 0, now, &mut outcome.forward);
                    }
                    let patient = match locked.take() {
                        Some((id, patient)) if id == reading.patient_id => patient,
                        other => {
                            // Release the previous patient before locking the next one.
                            if let Some((_, previous)) = other {
                                self.release(previous, received);
                            }
                            ahead.lock(i, &self.engine, batch, reading.patient_id, &rules)?
                        }
                    };
                    let patient = &mut locked.insert((r.patient_id, patient)).1;
                    self.accept(patient, &reading, r.ts_ms != 0, received, now)
                });
            match result {
                Ok(()) => outcome.accepted += 1,
                Err(rejection) => {
                    self.reject(Some(r.patient_id), &rejection);
                    outcome.rejected(index_base + i as u64, rejection);
                }
            }
        }
        if let Some((_, patient)) = locked {
            self.release(patient, received);
        }
        self.telemetry
            .ingested(Source::Grpc, outcome.accepted - accepted_before);
    }

    /// Validates a reading a transport decoded itself (FHIR) and checks that its patient
    /// is admitted (enrolled, consenting); duplicates are found when it is taken.
    pub fn check<'a>(
        &self,
        patient_id: &'a str,
        candidate: vigil_ingest::Candidate<'a>,
        now: i64,
    ) -> Result<Reading<'a>, Rejection> {
        let reading = self.validator.validate(patient_id, candidate, now)?;
        self.engine.admission(reading.patient_id)?;
        Ok(reading)
    }

    /// Counts a reading refused before it was checked (a transport's own decoding).
    pub fn refused(&self, patient_id: Option<&str>, rejection: &Rejection) {
        self.reject(patient_id, rejection);
    }

    /// Takes checked readings: each judged (in cluster mode, added to `forward` for the
    /// readings stream), a duplicate dropped. Returns how many were duplicates.
    pub fn take(
        &self,
        readings: &[Reading<'_>],
        received: Instant,
        source: Source,
        forward: &mut Vec<StreamReading>,
    ) -> usize {
        let now = now_ms();
        let (mut accepted, mut duplicates) = (0, 0);
        for r in readings {
            let result = if self.cluster.is_some() {
                self.pass_on(r, true, now, forward)
            } else {
                self.engine
                    .lock_patient(r.patient_id)
                    .and_then(|mut patient| {
                        let accepted = self.accept(&mut patient, r, true, received, now);
                        self.release(patient, received);
                        accepted
                    })
            };
            match result {
                Ok(()) => accepted += 1,
                Err(rejection) => {
                    if rejection.reason == RejectReason::Duplicate {
                        duplicates += 1;
                    }
                    self.reject(Some(r.patient_id), &rejection);
                }
            }
        }
        self.telemetry.ingested(source, accepted);
        duplicates
    }

    /// Cluster mode: refuses a reading of a patient not admitted (not enrolled, no
    /// consent) or a duplicate, else adds it to what goes to the readings stream.
    fn pass_on(
        &self,
        r: &Reading<'_>,
        ts_given: bool,
        now: i64,
        out: &mut Vec<StreamReading>,
    ) -> Result<(), Rejection> {
        self.engine.admission(r.patient_id)?;
        if !self.dedup.check_and_record(r, ts_given) {
            return Err(duplicate());
        }
        out.push(StreamReading::of(r, now));
        Ok(())
    }

    /// Refuses a duplicate, or hands a reading of the locked patient to the engine and
    /// counts the outcome (the caller counts accepted readings, once per payload or batch).
    fn accept(
        &self,
        patient: &mut LockedPatient<'_>,
        r: &Reading<'_>,
        ts_given: bool,
        received: Instant,
        now: i64,
    ) -> Result<(), Rejection> {
        if !self.dedup.check_and_record(r, ts_given) {
            return Err(duplicate());
        }
        let outcome = vigil_alerting::with_origin(received, || patient.process(r, now));
        if outcome.raised_total() > 0 {
            self.telemetry.raised_after(received);
        }
        self.telemetry.outcome(&outcome);
        Ok(())
    }

    /// Ends a payload's readings of one patient: what is judged once they are all in
    /// (adherence) is judged now.
    fn release(&self, patient: LockedPatient<'_>, received: Instant) {
        let outcome = vigil_alerting::with_origin(received, || patient.finish());
        if outcome.raised_total() > 0 {
            self.telemetry.raised_after(received);
        }
        self.telemetry.outcome(&outcome);
    }

    fn reject(&self, patient_id: Option<&str>, rejection: &Rejection) {
        self.telemetry.rejected(rejection.reason);
        debug!(patient_id, reason = rejection.reason.as_str(), detail = %rejection.detail, "reading rejected");
    }
}

impl super::App {
    /// A batch from `caller`, confined to the patients it may publish for; a batch reaching
    /// outside them is counted once as an authorisation failure (its other readings are
    /// still taken).
    pub fn publish_batch(
        &self,
        caller: &super::Caller,
        batch: &RawBatch,
        index_base: u64,
        outcome: &mut BatchOutcome,
    ) {
        let who = caller.principal.as_deref();
        let refused_before = outcome.not_permitted;
        self.ingest.batch(
            batch,
            index_base,
            Instant::now(),
            |patient| who.is_none_or(|p| p.may_publish_for(patient)),
            outcome,
        );
        let refused = outcome.not_permitted - refused_before;
        self.outside_prefixes(who, refused, "Ingest", "readings");
    }

    /// Records once (counted, audited) that a gateway sent `n` `what` for patients outside
    /// its `patient_prefixes` through `service`.
    pub(super) fn outside_prefixes(
        &self,
        who: Option<&crate::auth::Principal>,
        n: u64,
        service: &str,
        what: &str,
    ) {
        if let (Some(p), true) = (who, n > 0) {
            self.auth.failures.record(
                crate::auth::AuthFailure::OutOfScope,
                &p.name,
                &p.name,
                &format!("{service}: {n} {what} outside patient_prefixes"),
            );
        }
    }
}

/// Prefetching for a batch whose consecutive readings mostly belong to different patients
/// (a gateway's): where each patient's run of readings starts, and which run is next; see
/// [`vigil_alerting::LookAhead`]. A batch of longer runs (a device's
/// upload) keeps its patients' lines in cache across each run and is not prefetched: the
/// extra lookups would cost more than they save.
struct Ahead<'b> {
    starts: Vec<u32>,
    next: usize,
    /// Places are runs.
    look: LookAhead<'b>,
}

impl<'b> Ahead<'b> {
    fn of(batch: &'b RawBatch, enabled: bool) -> Ahead<'b> {
        let mut starts = Vec::new();
        if enabled {
            let mut previous = None;
            for (i, r) in batch.iter().enumerate() {
                if previous != Some(r.patient_id) {
                    starts.push(i as u32);
                    previous = Some(r.patient_id);
                }
            }
            // Runs of two readings or more on average.
            if 2 * starts.len() < batch.len() {
                starts.clear();
            }
        }
        Ahead {
            starts,
            next: 0,
            look: LookAhead::new(),
        }
    }

    /// Locks `patient_id`, the patient of reading `index`, whose run starts there:
    /// prefetches the patients whose runs start some runs after this one, and locks this
    /// one with the hash the look-ahead kept for it ([`LookAhead`]).
    fn lock<'e>(
        &mut self,
        index: usize,
        engine: &'e Engine,
        batch: &'b RawBatch,
        patient_id: &'b str,
        rules: &'e RuleSet,
    ) -> Result<LockedPatient<'e>, Rejection> {
        // `next`: the first run starting after `index`.
        while self
            .starts
            .get(self.next)
            .is_some_and(|&at| at as usize <= index)
        {
            self.next += 1;
        }
        let Some(run) = self.next.checked_sub(1) else {
            return engine.lock_patient_under(patient_id, rules);
        };
        let starts = &self.starts;
        self.look.ahead_of(engine, run, |run| {
            let r = batch.get(*starts.get(run)? as usize)?;
            Some((r.patient_id, Metric::parse(r.metric)))
        });
        self.look.lock(engine, run, patient_id, rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use vigil_proto::v1;

    fn batch(ids: &[&str]) -> RawBatch {
        let readings = ids
            .iter()
            .map(|id| v1::Reading {
                patient_id: id.to_string(),
                metric: "heart_rate".into(),
                value: 70.0,
                ..Default::default()
            })
            .collect();
        let encoded = v1::ReadingBatch { readings }.encode_to_vec();
        RawBatch::decode(encoded.as_slice()).expect("a batch")
    }

    #[test]
    fn a_gateway_batch_is_prefetched_by_patient_runs_and_a_device_upload_is_not() {
        let gateway = batch(&["a", "b", "b", "c", "d", "e"]);
        assert_eq!(Ahead::of(&gateway, true).starts, [0, 1, 3, 4, 5]);
        assert!(Ahead::of(&gateway, false).starts.is_empty(), "cluster mode");
        let uploads = batch(&["a", "a", "a", "b", "b", "b"]);
        assert!(Ahead::of(&uploads, true).starts.is_empty());
    }
}
