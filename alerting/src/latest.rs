//! Each metric's newest sample, kept inline in a patient's state: NEWS2 reads every
//! parameter's without touching seven separate window buffers.

use vigil_ingest::Metric;

use crate::window::Sample;

/// Marks a metric without a sample (no reading has this time: readings are validated
/// against the server's clock).
const NONE_MS: i64 = i64::MIN;

/// A sample per metric, or none: 16 bytes a metric (an `Option<Sample>` takes 24).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest([Sample; Metric::COUNT]);

impl Default for Latest {
    fn default() -> Latest {
        Latest(
            [Sample {
                ts_ms: NONE_MS,
                value: 0.0,
            }; Metric::COUNT],
        )
    }
}

impl Latest {
    #[inline]
    pub fn get(&self, m: Metric) -> Option<Sample> {
        let s = self.0[m.index()];
        (s.ts_ms != NONE_MS).then_some(s)
    }

    #[inline]
    pub fn set(&mut self, m: Metric, s: Option<Sample>) {
        self.0[m.index()] = s.unwrap_or(Latest::default().0[0]);
    }

    /// The samples there are, in the metric table's order.
    pub fn iter(&self) -> impl Iterator<Item = Sample> + '_ {
        Metric::ALL.iter().filter_map(|&m| self.get(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_has_a_sample_once_set_and_none_once_cleared() {
        let mut l = Latest::default();
        assert_eq!(l.get(Metric::Spo2), None);
        let s = Sample {
            ts_ms: -1,
            value: 97.0,
        };
        l.set(Metric::Spo2, Some(s));
        assert_eq!(l.get(Metric::Spo2), Some(s));
        assert_eq!(l.iter().collect::<Vec<_>>(), [s]);
        l.set(Metric::Spo2, None);
        assert_eq!(l.get(Metric::Spo2), None);
        assert_eq!(std::mem::size_of::<Latest>(), 16 * Metric::COUNT);
    }
}
