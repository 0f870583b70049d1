//! Vigil's ingest stage: decodes MQTT payloads and gRPC messages, validates and normalises
//! them into [`Reading`]s, and says exactly why anything was refused.
//!
//! Bytes in, `Reading`s out; no knowledge of windows, rules or alerts.

pub mod decode;
pub mod dedup;
pub mod fhir;
pub mod metric;
pub mod reading;
pub mod reject;
pub mod timestamp;
pub mod topic;
pub mod unit;
pub mod validate;
mod wire;

pub use decode::{decode_payload, decode_payload_into, WireReading};
pub use dedup::{DedupLimits, DedupStats, SeqFilter};
pub use metric::Metric;
pub use reading::Reading;
pub use reject::{RejectReason, Rejection};
pub use topic::{parse_topic, validate_patient_id, ReadingTopic};
pub use validate::{Candidate, Validator};
