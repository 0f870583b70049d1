//! The ingest pipeline shared by MQTT and gRPC: validate, drop duplicates, hand to the
//! engine, count the outcome. Rejections are logged at `debug` only, without values.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::debug;
use vigil_alerting::Engine;
use vigil_ingest::{decode_payload, parse_topic, Reading, Rejection, SeqFilter, Validator};
use vigil_proto::v1;

use crate::telemetry::{Source, Telemetry};

pub struct Pipeline {
    engine: Arc<Engine>,
    validator: Validator,
    dedup: SeqFilter,
    telemetry: Arc<Telemetry>,
}

impl Pipeline {
    pub fn new(engine: Arc<Engine>, validator: Validator, telemetry: Arc<Telemetry>) -> Pipeline {
        Pipeline {
            engine,
            validator,
            dedup: SeqFilter::new(),
            telemetry,
        }
    }

    /// Forgets a patient's duplicate-tracking state (unenrolment, consent withdrawn).
    pub fn forget_patient(&self, patient_id: &str) {
        self.dedup.forget_patient(patient_id);
    }

    /// Handles one MQTT PUBLISH on `vitals/#`.
    pub fn mqtt_publish(&self, topic: &[u8], payload: &[u8], received: Instant) {
        self.telemetry.mqtt_payload();
        let topic = match parse_topic(topic) {
            Ok(t) => t,
            Err(rejection) => return self.reject(None, &rejection),
        };
        let now = now_ms();
        decode_payload(payload, topic.metric.is_some(), |wire| {
            let result = wire.and_then(|wire| {
                let reading =
                    self.validator
                        .from_wire(topic.patient_id, topic.metric, &wire, now)?;
                self.accept(&reading, wire.ts.is_some(), Source::Mqtt, received, now)
            });
            if let Err(rejection) = result {
                self.reject(Some(topic.patient_id), &rejection);
            }
        });
    }

    /// Handles one gRPC batch; rejections are appended to `ack` with their index
    /// (`index_base` + position in this batch).
    pub fn grpc_batch(
        &self,
        batch: &v1::ReadingBatch,
        index_base: u64,
        received: Instant,
        ack: &mut v1::PublishAck,
    ) {
        let now = now_ms();
        for (i, r) in batch.readings.iter().enumerate() {
            let result = self.validator.from_proto(r, now).and_then(|reading| {
                self.accept(&reading, r.ts_ms != 0, Source::Grpc, received, now)
            });
            match result {
                Ok(()) => ack.accepted += 1,
                Err(rejection) => {
                    self.reject(Some(&r.patient_id), &rejection);
                    ack.rejected += 1;
                    ack.rejections.push(v1::Rejection {
                        index: u32::try_from(index_base + i as u64).unwrap_or(u32::MAX),
                        reason: rejection.to_string(),
                    });
                }
            }
        }
    }

    fn accept(
        &self,
        r: &Reading<'_>,
        ts_given: bool,
        source: Source,
        received: Instant,
        now: i64,
    ) -> Result<(), Rejection> {
        let outcome = self
            .engine
            .process_if(r, now, |r| self.dedup.check_and_record(r, ts_given))?;
        self.telemetry.ingested(source);
        self.telemetry.outcome(&outcome, Some(received));
        Ok(())
    }

    fn reject(&self, patient_id: Option<&str>, rejection: &Rejection) {
        self.telemetry.rejected(rejection.reason);
        debug!(patient_id, reason = rejection.reason.as_str(), detail = %rejection.detail, "reading rejected");
    }
}

/// Server time, Unix epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
