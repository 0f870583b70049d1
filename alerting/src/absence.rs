//! Deadlines for `absent` rules: at most one entry per (patient, metric) in a min-heap,
//! pushed when a patient's metric is first seen (or re-armed after firing), so an idle
//! patient costs nothing per tick and a reading costs no heap operation.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use parking_lot::Mutex;
use vigil_ingest::Metric;

/// One pending deadline.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline {
    pub due_ms: i64,
    pub patient_id: Arc<str>,
    pub metric: usize,
}

/// The deadline heap.
#[derive(Default)]
pub struct AbsenceTimers {
    heap: Mutex<BinaryHeap<Reverse<Deadline>>>,
}

impl AbsenceTimers {
    pub fn schedule(&self, due_ms: i64, patient_id: Arc<str>, metric: Metric) {
        self.heap.lock().push(Reverse(Deadline {
            due_ms,
            patient_id,
            metric: metric.index(),
        }));
    }

    /// Removes and returns the earliest deadline if it is due at `now_ms`.
    pub fn pop_due(&self, now_ms: i64) -> Option<Deadline> {
        let mut heap = self.heap.lock();
        if heap.peek().is_some_and(|Reverse(d)| d.due_ms <= now_ms) {
            heap.pop().map(|Reverse(d)| d)
        } else {
            None
        }
    }

    pub fn len(&self) -> usize {
        self.heap.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t = AbsenceTimers::default();
        t.schedule(30, "b".into(), Metric::Weight);
        t.schedule(10, "a".into(), Metric::HeartRate);
        assert!(t.pop_due(5).is_none());
        assert_eq!(&*t.pop_due(30).unwrap().patient_id, "a");
        assert_eq!(&*t.pop_due(30).unwrap().patient_id, "b");
        assert!(t.is_empty());
    }
}
