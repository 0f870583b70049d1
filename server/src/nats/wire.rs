//! What travels through the cluster's streams: a reading as a node accepted it, an alert
//! event as its partition's owner raised it, and the headers that order and fence them.

use async_nats::HeaderMap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use vigil_alerting::{Alert, AlertEvent};
use vigil_ingest::{Metric, Reading};

/// Header: the readings-stream sequence of the last reading the owner had applied when it
/// wrote an event, and the event's place among those written since (together, how far
/// the partition's alert subject is written: a new owner replaying the readings does not
/// write again what is there).
pub const APPLIED: &str = "Vigil-Applied";
/// Header on a new owner's marker (no body): the node that took the partition over.
pub const TAKEOVER: &str = "Vigil-Takeover";

/// An accepted reading on `{ns}.readings.{p}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReading {
    #[serde(rename = "p")]
    pub patient_id: String,
    /// The metric's index in [`Metric::ALL`].
    #[serde(rename = "m")]
    pub metric: u8,
    #[serde(rename = "v")]
    pub value: f64,
    /// Event time (Unix ms).
    #[serde(rename = "t")]
    pub ts_ms: i64,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Server time the edge node accepted it (Unix ms): the time its owner judges it at,
    /// so any owner judges it alike.
    #[serde(rename = "r")]
    pub received_ms: i64,
}

impl StreamReading {
    pub fn of(r: &Reading<'_>, received_ms: i64) -> StreamReading {
        StreamReading {
            patient_id: r.patient_id.to_string(),
            metric: r.metric.index() as u8,
            value: r.value,
            ts_ms: r.ts_ms,
            device_id: r.device_id.map(str::to_string),
            seq: r.seq,
            received_ms,
        }
    }

    pub fn encode(&self) -> Bytes {
        serde_json::to_vec(self)
            .expect("a reading serializes")
            .into()
    }

    /// `None` for a body that is not a reading (or names no metric Vigil knows).
    pub fn decode(body: &[u8]) -> Option<StreamReading> {
        let r: StreamReading = serde_json::from_slice(body).ok()?;
        (usize::from(r.metric) < Metric::COUNT).then_some(r)
    }

    pub fn reading(&self) -> Reading<'_> {
        Reading {
            patient_id: &self.patient_id,
            metric: Metric::ALL[usize::from(self.metric)],
            value: self.value,
            ts_ms: self.ts_ms,
            device_id: self.device_id.as_deref(),
            seq: self.seq,
        }
    }

    /// A reading with a device sequence number is stored once however often it is sent
    /// (a device retrying through another node).
    pub fn msg_id(&self) -> Option<String> {
        let (device, seq) = (self.device_id.as_deref()?, self.seq?);
        Some(format!(
            "{}:{device}:{seq}:{}",
            self.patient_id, self.metric
        ))
    }
}

/// The readings of one partition accepted together (one MQTT publish, or one partition's
/// share of a gRPC batch), stored as one message: a JSON array.
pub fn encode_group(readings: &[&StreamReading]) -> Bytes {
    serde_json::to_vec(readings)
        .expect("readings serialize")
        .into()
}

/// A message of the readings stream: an array of readings, or one reading (a message a
/// nats-server mapping put there). `None` for anything else.
pub fn decode_group(body: &[u8]) -> Option<Vec<StreamReading>> {
    if body.first() == Some(&b'[') {
        let group: Vec<StreamReading> = serde_json::from_slice(body).ok()?;
        group
            .iter()
            .all(|r| usize::from(r.metric) < Metric::COUNT)
            .then_some(group)
    } else {
        StreamReading::decode(body).map(|r| vec![r])
    }
}

/// A group is stored once however often it is sent when every reading in it has a device
/// sequence number (a device retrying a publish through another node sends the same group).
pub fn group_msg_id(readings: &[&StreamReading]) -> Option<String> {
    use sha2::{Digest, Sha256};
    let ids: Option<Vec<String>> = readings.iter().map(|r| r.msg_id()).collect();
    let ids = ids?;
    if let [one] = ids.as_slice() {
        return Some(one.clone());
    }
    let digest = Sha256::digest(ids.join("\n").as_bytes());
    Some(
        digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
}

/// The `Nats-Msg-Id` of an alert event: the episode (its derived alert id), what happened,
/// the escalation level and when (the server time a reading is judged at travels with the
/// reading). A replayed or retried event has the same one, so the stream keeps one copy.
pub fn event_msg_id(e: &AlertEvent) -> String {
    format!(
        "{}:{:?}:{}:{}",
        e.alert.id, e.kind, e.alert.escalation_level, e.at_ms
    )
}

/// An alert event's body: the journal's JSON form.
pub fn encode_event(e: &AlertEvent) -> Bytes {
    serde_json::to_vec(e)
        .expect("an alert event serializes")
        .into()
}

/// An alert event from the stream, numbered with the stream's sequence.
pub fn decode_event(body: &[u8], seq: u64) -> Option<AlertEvent> {
    let mut e: AlertEvent = serde_json::from_slice(body).ok()?;
    e.seq = seq;
    Some(e)
}

/// (readings-stream sequence applied, index of the event since) from `Vigil-Applied`.
pub fn applied(headers: Option<&HeaderMap>) -> Option<(u64, u32)> {
    let v = headers?.get(APPLIED)?.as_str();
    let (seq, index) = v.split_once('.')?;
    Some((seq.parse().ok()?, index.parse().ok()?))
}

pub fn applied_value((seq, index): (u64, u32)) -> String {
    format!("{seq}.{index}")
}

/// Whether a message on an alert subject is a new owner's marker rather than an event.
pub fn is_marker(headers: Option<&HeaderMap>) -> bool {
    headers.is_some_and(|h| h.get(TAKEOVER).is_some())
}

/// A person's action on an alert, sent by the node that took it to the node that owns
/// the alert's partition (`{ns}.care.{p}`, request and reply).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CareRequest {
    pub alert_id: String,
    /// Who is recorded, and the note (already attributed by the node that took the call).
    pub by: String,
    pub note: String,
    pub action: CareAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CareAction {
    Acknowledge {
        disposition: Option<String>,
    },
    Resolve {
        disposition: Option<String>,
    },
    /// Until this server time (0 cancels a snooze).
    Snooze {
        until_ms: i64,
    },
    /// Who answers for the alert (claim: the person acting; none: released).
    Assign {
        assignee: Option<String>,
    },
}

impl CareAction {
    /// Applies the action to `engine` (this node's, or the partition owner's).
    pub fn apply(
        &self,
        engine: &vigil_alerting::Engine,
        alert_id: &str,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, vigil_alerting::AlertingError> {
        match self {
            CareAction::Acknowledge { disposition } => {
                engine.acknowledge(alert_id, by, note, disposition.as_deref(), now_ms)
            }
            CareAction::Resolve { disposition } => {
                engine.resolve(alert_id, by, note, disposition.as_deref(), now_ms)
            }
            CareAction::Snooze { until_ms } => engine.snooze(alert_id, *until_ms, by, note, now_ms),
            CareAction::Assign { assignee } => {
                engine.assign(alert_id, assignee.as_deref(), by, note, now_ms)
            }
        }
    }
}

/// The owner's answer: the alert after the action (its event is in the alert stream), or
/// why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareReply {
    Done(Box<Alert>),
    NotFound(String),
    Refused(String),
}

/// What the console asks of the nodes evaluating patients: one patient's page (from the
/// owner of its partition), or every owner's patient summaries for the worklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewRequest {
    Patient { id: String, max_samples: usize },
    Summaries { care_team: Option<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewReply {
    Patient(Option<Box<vigil_alerting::engine::PatientView>>),
    Summaries {
        partition: u32,
        summaries: Vec<vigil_alerting::engine::PatientSummary>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_travels_unchanged_and_a_foreign_body_is_refused() {
        let r = Reading {
            patient_id: "p-1",
            metric: Metric::ALL[2],
            value: 97.5,
            ts_ms: 1_700_000_000_123,
            device_id: Some("oxi-9"),
            seq: Some(41),
        };
        let wire = StreamReading::of(&r, 1_700_000_000_500);
        let back = StreamReading::decode(&wire.encode()).unwrap();
        assert_eq!(back, wire);
        assert_eq!(back.reading(), r);
        assert_eq!(back.msg_id().as_deref(), Some("p-1:oxi-9:41:2"));
        assert!(
            StreamReading::decode(b"{\"p\":\"x\",\"m\":200,\"v\":1,\"t\":1,\"r\":1}").is_none()
        );
        assert!(StreamReading::decode(b"not json").is_none());
    }

    #[test]
    fn a_group_travels_unchanged_and_a_single_reading_still_reads() {
        let r = |seq: Option<u64>| StreamReading {
            patient_id: "p-1".into(),
            metric: 0,
            value: 72.0,
            ts_ms: 1,
            device_id: Some("strap".into()),
            seq,
            received_ms: 2,
        };
        let (a, b) = (r(Some(1)), r(Some(2)));
        let group = [&a, &b];
        assert_eq!(
            decode_group(&encode_group(&group)).unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(decode_group(&a.encode()).unwrap(), vec![a.clone()]);
        assert!(decode_group(b"[{\"p\":\"x\",\"m\":200,\"v\":1,\"t\":1,\"r\":1}]").is_none());
        assert_eq!(group_msg_id(&[&a]), a.msg_id());
        let id = group_msg_id(&group).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(group_msg_id(&group), Some(id));
        assert_ne!(group_msg_id(&[&b, &a]), group_msg_id(&group));
        assert_eq!(group_msg_id(&[&a, &r(None)]), None);
    }

    #[test]
    fn the_applied_header_reads_back() {
        let mut h = HeaderMap::new();
        h.insert(APPLIED, applied_value((123, 4)).as_str());
        assert_eq!(applied(Some(&h)), Some((123, 4)));
        assert!(!is_marker(Some(&h)));
        assert_eq!(applied(None), None);
    }
}
