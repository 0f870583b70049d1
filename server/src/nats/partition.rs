//! Patients are spread over a fixed number of partitions, each evaluated by one node at a
//! time. The partition of a patient is `fnv1a32(patient id) mod partitions`: the function
//! nats-server applies in a `{{partition(n, wildcard)}}` subject mapping, so readings that
//! devices publish through nats-server's own MQTT gateway (mapped by the server) and readings
//! Vigil publishes itself (mapped here) land on the same partition subject. A test checks
//! this against a real nats-server.

/// The default partition count: it bounds the number of nodes for the cluster's life.
pub const DEFAULT_PARTITIONS: u32 = 256;

/// FNV-1a, 32 bits: the hash nats-server's `partition()` mapping function uses.
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u32::from(*b)).wrapping_mul(PRIME))
}

/// The partition of `patient_id` among `partitions` (at least 1).
pub fn partition(patient_id: &str, partitions: u32) -> u32 {
    fnv1a32(patient_id.as_bytes()) % partitions.max(1)
}

/// Subjects of one deployment, all under its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    namespace: String,
}

impl Subjects {
    pub fn new(namespace: &str) -> Subjects {
        Subjects {
            namespace: namespace.to_string(),
        }
    }

    /// Where readings of partition `p` are published: `{ns}.readings.{p}`.
    pub fn readings(&self, p: u32) -> String {
        format!("{}.readings.{p}", self.namespace)
    }

    /// Every partition's readings, for the stream: `{ns}.readings.*`.
    pub fn all_readings(&self) -> String {
        format!("{}.readings.*", self.namespace)
    }

    /// Where the owner of partition `p` writes its alert events: `{ns}.alerts.{p}`.
    pub fn alerts(&self, p: u32) -> String {
        format!("{}.alerts.{p}", self.namespace)
    }

    /// Every partition's alert events, for the stream: `{ns}.alerts.*`.
    pub fn all_alerts(&self) -> String {
        format!("{}.alerts.*", self.namespace)
    }

    /// Where people's actions on partition `p`'s alerts go to its owner: `{ns}.care.{p}`.
    pub fn care(&self, p: u32) -> String {
        format!("{}.care.{p}", self.namespace)
    }

    /// Requests for partition `p`'s patient pages.
    pub fn view(&self, p: u32) -> String {
        format!("{}.view.{p}", self.namespace)
    }

    /// Requests every owner answers (the worklist's patient summaries).
    pub fn views(&self) -> String {
        format!("{}.view.all", self.namespace)
    }

    /// A stream or bucket of this deployment: `{ns}-{what}`.
    pub fn store(&self, what: &str) -> String {
        format!("{}-{what}", self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_matches_the_published_test_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn partitions_spread_patients_and_stay_in_range() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            let p = partition(&format!("patient-{i}"), 16);
            counts[p as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(partition("p1", 1), 0);
        assert_eq!(Subjects::new("h1").readings(7), "h1.readings.7");
    }
}
