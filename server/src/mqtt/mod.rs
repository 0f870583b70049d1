//! MQTT ingest: the embedded rumqttd broker and the in-process consumer of `vitals/#`.

pub mod broker;
pub mod consumer;
