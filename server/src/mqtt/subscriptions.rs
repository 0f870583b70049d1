//! One connection's or session's topic filters and the QoS granted on each: what a
//! publish on a topic is delivered at.

use rumqttc::mqttbytes::matches;
use serde::{Deserialize, Serialize};

/// Filter → granted QoS (0 or 1), one entry per filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Subscriptions(Vec<(String, u8)>);

impl Subscriptions {
    /// Grants `qos` on `filter`, replacing an earlier grant on it; false (and nothing
    /// changed) if the filter is new and `max` filters are held already.
    pub fn set(&mut self, filter: &str, qos: u8, max: usize) -> bool {
        let held = self.0.len();
        match self.0.iter_mut().find(|(f, _)| f == filter) {
            Some(sub) => sub.1 = qos,
            None if held >= max => return false,
            None => self.0.push((filter.to_string(), qos)),
        }
        true
    }

    pub fn remove(&mut self, filter: &str) {
        self.0.retain(|(f, _)| f != filter);
    }

    /// The highest QoS granted among the filters `topic` matches (`None`: none does).
    pub fn grant(&self, topic: &str) -> Option<u8> {
        self.0
            .iter()
            .filter(|(f, _)| matches(topic, f))
            .map(|(_, q)| *q)
            .max()
    }

    /// Whether any filter holds a wildcard (`+` or `#`).
    pub fn has_wildcard(&self) -> bool {
        self.0.iter().any(|(f, _)| is_wildcard(f))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, u8)> {
        self.0.iter().map(|(f, q)| (f.as_str(), *q))
    }
}

pub fn is_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_replace_and_the_highest_matching_one_counts() {
        let mut s = Subscriptions::default();
        assert!(s.set("notify/p", 0, 2));
        assert!(s.set("notify/#", 1, 2));
        assert!(!s.set("other", 1, 2), "bounded");
        assert!(s.set("notify/p", 1, 2), "a held filter can change");
        assert_eq!(s.grant("notify/p"), Some(1));
        assert_eq!(s.grant("status/p"), None);
        assert!(s.has_wildcard());
        s.remove("notify/#");
        assert!(!s.has_wildcard());
        assert_eq!(s.iter().collect::<Vec<_>>(), [("notify/p", 1)]);
    }
}
