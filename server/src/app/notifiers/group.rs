//! A lane's pending events, and the groups they are sent in: the oldest pending event with
//! the other pending events of the same patient (Alertmanager's `group_by`), so that a storm
//! costs one message per patient instead of one per event. Events of one alert stay in
//! `seq` order: a group takes a patient's events oldest first, and the rest follow later.
//!
//! Because a group takes events ahead of their turn, where the lane stands is "every event
//! up to `through`, and these others": [`Pending::progress`].

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use vigil_alerting::{AlertEvent, Progress};

/// The most events one message carries.
pub const MAX_GROUP: usize = 20;
/// How far into the queue a group looks for the same patient's events: taking a group
/// costs at most this much, however long the queue.
const LOOK_AHEAD: usize = 1000;

#[derive(Default)]
pub struct Pending {
    queue: VecDeque<Arc<AlertEvent>>,
    /// Sent (or being sent) but not yet in `through`: kept out of `through` until done.
    in_flight: BTreeSet<u64>,
    /// Delivered ahead of their turn, above `through`.
    done: BTreeSet<u64>,
}

impl Pending {
    pub fn push(&mut self, event: Arc<AlertEvent>) {
        self.queue.push_back(event);
    }

    /// Events selected and not yet confirmed, those being sent included.
    pub fn backlog(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// The oldest pending event and the next pending events of its patient (at most
    /// [`MAX_GROUP`] in all, oldest first); empty when nothing is pending.
    pub fn take_group(&mut self) -> Vec<Arc<AlertEvent>> {
        let Some(first) = self.queue.front() else {
            return Vec::new();
        };
        let patient = first.alert.patient_id.clone();
        let picked: Vec<usize> = self
            .queue
            .iter()
            .take(LOOK_AHEAD)
            .enumerate()
            .filter(|(_, e)| e.alert.patient_id == patient)
            .map(|(i, _)| i)
            .take(MAX_GROUP)
            .collect();
        let mut group: Vec<_> = picked
            .iter()
            .rev()
            .filter_map(|&i| self.queue.remove(i))
            .collect();
        group.reverse();
        self.in_flight.extend(group.iter().map(|e| e.seq));
        group
    }

    /// Records `group` as handled (delivered, or given up on) and returns where the lane
    /// stands; `handed_out` is the feed's position (every event up to it was seen).
    pub fn finish(&mut self, group: &[Arc<AlertEvent>], handed_out: u64) -> Progress {
        for e in group {
            self.in_flight.remove(&e.seq);
            self.done.insert(e.seq);
        }
        let oldest_open = self
            .queue
            .iter()
            .map(|e| e.seq)
            .chain(self.in_flight.iter().copied())
            .min();
        let through = match oldest_open {
            Some(seq) => seq - 1,
            None => handed_out,
        };
        self.done = self.done.split_off(&(through + 1));
        Progress {
            through,
            also: self.done.iter().copied().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, patient: &str) -> Arc<AlertEvent> {
        let event = serde_json::json!({
            "seq": seq, "kind": "raised", "at_ms": 0, "by": "", "note": "",
            "alert": {
                "id": format!("a{seq}"), "patient_id": patient, "rule_id": "r",
                "severity": "low", "metric": "heart_rate", "unit": "/min", "value": 0.0,
                "message": "", "state": "active", "care_team": "t",
                "observed_at_ms": 0, "raised_at_ms": 0,
            }
        });
        Arc::new(serde_json::from_value(event).unwrap())
    }

    fn seqs(group: &[Arc<AlertEvent>]) -> Vec<u64> {
        group.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_group_is_the_oldest_event_with_its_patients_next_events_in_order() {
        let mut p = Pending::default();
        for (seq, who) in [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a")] {
            p.push(event(seq, who));
        }
        let a = p.take_group();
        assert_eq!(seqs(&a), [1, 3, 5]);
        assert_eq!(p.backlog(), 5);
        // b (2) is still pending: the lane stands at 1, with 3 and 5 done ahead.
        let at = p.finish(&a, 5);
        assert_eq!((at.through, at.also.clone()), (1, vec![3, 5]));
        let b = p.take_group();
        assert_eq!(seqs(&b), [2]);
        let at = p.finish(&b, 5);
        assert_eq!((at.through, at.also.clone()), (3, vec![5]));
        let c = p.take_group();
        let at = p.finish(&c, 7);
        assert_eq!((at.through, at.also.len()), (7, 0));
        assert!(p.take_group().is_empty());
    }

    #[test]
    fn a_group_carries_at_most_max_group_events() {
        let mut p = Pending::default();
        for seq in 1..=(MAX_GROUP as u64 + 5) {
            p.push(event(seq, "a"));
        }
        let first = p.take_group();
        assert_eq!(first.len(), MAX_GROUP);
        assert_eq!(p.queued(), 5);
        assert_eq!(p.take_group()[0].seq, MAX_GROUP as u64 + 1);
    }

    #[test]
    fn an_event_in_flight_holds_the_position_back() {
        let mut p = Pending::default();
        p.push(event(1, "a"));
        p.push(event(2, "b"));
        let a = p.take_group();
        let b = p.take_group();
        // b finishes first (another order cannot happen in one lane, but the arithmetic
        // must not count a as done).
        let at = p.finish(&b, 2);
        assert_eq!((at.through, at.also.clone()), (0, vec![2]));
        let at = p.finish(&a, 2);
        assert_eq!((at.through, at.also.len()), (2, 0));
    }
}
