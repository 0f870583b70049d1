//! Retained messages (MQTT 3.1.1 §3.3.1.3) on topics outside `vitals/`: the last retained
//! publish of each topic, handed to every new subscription that matches it. Bounded in
//! count and bytes; a retained publish past either bound is still delivered to current
//! subscribers but not kept, and counted.

use std::collections::BTreeMap;

use bytes::Bytes;
use rumqttc::mqttbytes::matches;
use serde::{Deserialize, Serialize};

/// The bounds on what retained messages may hold.
#[derive(Debug, Clone, Copy)]
pub struct RetainLimits {
    pub max_messages: usize,
    /// Topic and payload bytes of every retained message together.
    pub max_bytes: usize,
}

/// One retained message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retained {
    pub payload: Bytes,
    /// The QoS it was published with (0 or 1: QoS 2 is delivered as 1).
    pub qos: u8,
}

/// What a retained publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    Stored,
    Replaced,
    /// An empty payload removed the topic's retained message (or there was none).
    Cleared,
    /// Storing it would pass `max_messages` or `max_bytes`: not kept.
    Refused,
}

/// Retained messages by topic.
#[derive(Debug)]
pub struct RetainedStore {
    limits: RetainLimits,
    by_topic: BTreeMap<String, Retained>,
    bytes: usize,
}

impl RetainedStore {
    pub fn new(limits: RetainLimits) -> RetainedStore {
        RetainedStore {
            limits,
            by_topic: BTreeMap::new(),
            bytes: 0,
        }
    }

    /// Stores, replaces or (empty payload) clears `topic`'s retained message.
    pub fn set(&mut self, topic: &str, payload: Bytes, qos: u8) -> RetainOutcome {
        let old = self
            .by_topic
            .get(topic)
            .map(|r| topic.len() + r.payload.len());
        if payload.is_empty() {
            if let Some(old) = old {
                self.by_topic.remove(topic);
                self.bytes -= old;
            }
            return RetainOutcome::Cleared;
        }
        let new = topic.len() + payload.len();
        let bytes = self.bytes - old.unwrap_or(0) + new;
        let count = self.by_topic.len() + usize::from(old.is_none());
        if bytes > self.limits.max_bytes || count > self.limits.max_messages {
            return RetainOutcome::Refused;
        }
        self.bytes = bytes;
        let qos = qos.min(1);
        match self
            .by_topic
            .insert(topic.to_string(), Retained { payload, qos })
        {
            Some(_) => RetainOutcome::Replaced,
            None => RetainOutcome::Stored,
        }
    }

    /// The retained messages whose topic matches `filter`, in topic order.
    pub fn matching(&self, filter: &str) -> Vec<(String, Retained)> {
        if !filter.contains(['+', '#']) {
            return self
                .by_topic
                .get(filter)
                .map(|r| vec![(filter.to_string(), r.clone())])
                .unwrap_or_default();
        }
        self.by_topic
            .iter()
            .filter(|(topic, _)| matches(topic, filter))
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect()
    }

    /// Retained messages kept.
    pub fn count(&self) -> usize {
        self.by_topic.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Every retained message, to be saved.
    pub fn all(&self) -> Vec<(String, Retained)> {
        self.by_topic
            .iter()
            .map(|(t, r)| (t.clone(), r.clone()))
            .collect()
    }

    /// Puts saved messages back (within the current limits; the rest are counted refused).
    pub fn restore(&mut self, saved: Vec<(String, Retained)>) -> usize {
        saved
            .into_iter()
            .filter(|(topic, r)| {
                self.set(topic, r.payload.clone(), r.qos) == RetainOutcome::Refused
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_messages: usize, max_bytes: usize) -> RetainedStore {
        RetainedStore::new(RetainLimits {
            max_messages,
            max_bytes,
        })
    }

    #[test]
    fn set_replace_clear_and_bounds() {
        let mut s = store(2, 100);
        assert_eq!(s.set("a/1", Bytes::from("on"), 1), RetainOutcome::Stored);
        assert_eq!(s.set("a/1", Bytes::from("off"), 2), RetainOutcome::Replaced);
        assert_eq!(s.matching("a/1")[0].1.payload, Bytes::from("off"));
        assert_eq!(s.matching("a/1")[0].1.qos, 1, "QoS 2 is kept as 1");
        assert_eq!(s.bytes(), 6);
        assert_eq!(s.set("a/2", Bytes::from("x"), 0), RetainOutcome::Stored);
        assert_eq!(s.set("a/3", Bytes::from("x"), 0), RetainOutcome::Refused);
        assert_eq!(s.matching("a/+").len(), 2);
        assert_eq!(s.matching("#").len(), 2);
        assert_eq!(s.set("a/1", Bytes::new(), 0), RetainOutcome::Cleared);
        assert_eq!(s.count(), 1);
        assert_eq!(s.bytes(), 4);
        assert_eq!(
            s.set("b", Bytes::from(vec![0u8; 97]), 0),
            RetainOutcome::Refused
        );
        assert_eq!(
            s.set("b", Bytes::from(vec![0u8; 95]), 0),
            RetainOutcome::Stored
        );
        assert_eq!(s.bytes(), 100);
    }

    #[test]
    fn restore_counts_what_no_longer_fits() {
        let mut s = store(10, 1000);
        for t in ["x/1", "x/2", "x/3"] {
            s.set(t, Bytes::from("v"), 1);
        }
        let mut small = store(2, 1000);
        assert_eq!(small.restore(s.all()), 1);
        assert_eq!(small.count(), 2);
    }
}
