//! Topic access for an authenticated device: it publishes readings only to
//! `vitals/{its patient}` or `vitals/{its patient}/{metric}`, and subscribes only to its
//! patient's reminders, `notify/{its patient}`. Without authentication everything is allowed
//! (loopback only, see `exposure`).

use vigil_ingest::parse_topic;

/// Whether a device bound to `patient` may publish to `topic`: a reading topic (the
/// ingest grammar, `vigil_ingest::parse_topic`) of that patient, without wildcards.
pub fn may_publish(patient: &str, topic: &str) -> bool {
    parse_topic(topic.as_bytes())
        .is_ok_and(|t| t.patient_id == patient && t.metric.is_none_or(|m| !m.contains(['+', '#'])))
}

/// Whether a device bound to `patient` may subscribe to `filter` (exactly its reminder
/// topic: a wildcard could reach other patients).
pub fn may_subscribe(patient: &str, filter: &str) -> bool {
    filter
        .strip_prefix("notify/")
        .is_some_and(|rest| rest == patient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_speaks_only_for_its_own_patient() {
        assert!(may_publish("p-1", "vitals/p-1"));
        assert!(may_publish("p-1", "vitals/p-1/heart_rate"));
        assert!(
            !may_publish("p-1", "vitals/p-10"),
            "a prefix is not the patient"
        );
        assert!(!may_publish("p-1", "vitals/p-10/heart_rate"));
        assert!(!may_publish("p-1", "vitals/p-2"));
        assert!(!may_publish("p-1", "vitals/p-1/"));
        assert!(!may_publish("p-1", "vitals/p-1/a/b"));
        assert!(!may_publish("p-1", "vitals/p-1/+"));
        assert!(!may_publish("p-1", "vitals/p-1/#"));
        assert!(!may_publish("p-1", "notify/p-1"));
        assert!(!may_publish("p-1", "vitals"));
        assert!(!may_publish("p-1", "other/vitals/p-1"));

        assert!(may_subscribe("p-1", "notify/p-1"));
        assert!(!may_subscribe("p-1", "notify/#"));
        assert!(!may_subscribe("p-1", "notify/+"));
        assert!(!may_subscribe("p-1", "notify/p-10"));
        assert!(!may_subscribe("p-1", "vitals/p-1"));
        assert!(!may_subscribe("p-1", "#"));
    }
}
