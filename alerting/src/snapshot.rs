//! Window snapshots: what a patient's windows hold, in a form the journal can keep, so a
//! restart does not blind `for`, `rise`/`fall` and aggregate rules until fresh history
//! arrives.

use serde::{Deserialize, Serialize};
use vigil_ingest::Metric;

use crate::window::{Sample, Window};

/// One patient's windows. Metrics are stored by name, so a build that adds or reorders
/// metrics still reads older snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientSnapshot {
    pub windows: Vec<MetricHistory>,
}

/// One metric's samples, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricHistory {
    pub metric: String,
    /// (event time in epoch ms, value in the canonical unit)
    pub samples: Vec<(i64, f64)>,
}

impl PatientSnapshot {
    /// Copies what `windows` hold.
    pub fn of(windows: &[Window; Metric::COUNT]) -> PatientSnapshot {
        PatientSnapshot {
            windows: Metric::ALL
                .iter()
                .zip(windows)
                .filter(|(_, w)| !w.is_empty())
                .map(|(m, w)| MetricHistory {
                    metric: m.name().to_string(),
                    samples: w.iter().map(|s| (s.ts_ms, s.value)).collect(),
                })
                .collect(),
        }
    }

    /// Compact binary form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("snapshots serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<PatientSnapshot, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The samples of each metric this build knows, for restoring.
    pub fn histories(&self) -> impl Iterator<Item = (Metric, impl Iterator<Item = Sample> + '_)> {
        self.windows.iter().filter_map(|h| {
            let metric = Metric::parse(&h.metric)?;
            Some((
                metric,
                h.samples
                    .iter()
                    .map(|&(ts_ms, value)| Sample { ts_ms, value }),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_unknown_metrics() {
        let mut windows: [Window; Metric::COUNT] = Default::default();
        for (i, v) in [70.0, 72.5, 71.0].iter().enumerate() {
            windows[Metric::HeartRate.index()].insert(
                Sample {
                    ts_ms: 1000 + i as i64,
                    value: *v,
                },
                i64::MAX,
            );
        }
        let mut snap = PatientSnapshot::of(&windows);
        assert_eq!(snap.windows.len(), 1);
        let bytes = snap.encode();
        assert!(bytes.len() < 3 * 16 + 32, "{} bytes", bytes.len());
        assert_eq!(PatientSnapshot::decode(&bytes).unwrap(), snap);
        snap.windows.push(MetricHistory {
            metric: "from_a_newer_build".into(),
            samples: vec![(1, 1.0)],
        });
        let restored: Vec<(Metric, Vec<Sample>)> =
            snap.histories().map(|(m, s)| (m, s.collect())).collect();
        assert_eq!(restored.len(), 1);
        assert_eq!(restored[0].0, Metric::HeartRate);
        assert_eq!(restored[0].1.len(), 3);
    }
}
