//! Duplicate suppression for QoS 1 redelivery and gateway retries: a reading whose
//! (patient, device, metric, seq, ts) was accepted recently is dropped as `duplicate`.
//! The devices remembered are bounded per patient and in total, the oldest forgotten first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use dashmap::DashMap;

use crate::reading::Reading;

/// Recent (metric, seq) pairs remembered per device. A redelivery older than this many
/// pairs passes as new; QoS 1 redelivery resends only the in-flight window, far smaller.
pub const SLOTS_PER_DEVICE: usize = 128;

/// Memory one remembered device costs, roughly: its fingerprints, its id and its place in
/// the eviction order.
pub const BYTES_PER_DEVICE: usize = SLOTS_PER_DEVICE * 4 + 96;

/// How many devices are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupLimits {
    /// In all; beyond, the device seen first is forgotten.
    pub devices: usize,
    /// Per patient; beyond, that patient's device seen first is forgotten.
    pub per_patient: usize,
}

impl Default for DedupLimits {
    fn default() -> Self {
        DedupLimits {
            devices: 100_000,
            per_patient: 8,
        }
    }
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupStats {
    /// Devices remembered now.
    pub devices: usize,
    /// Devices forgotten because their patient had `per_patient` newer ones.
    pub evicted_per_patient: u64,
    /// Devices forgotten because `devices` newer ones were remembered in all.
    pub evicted_total: u64,
}

/// Remembers, per (patient, device), fingerprints of recently accepted readings.
///
/// A fingerprint covers metric, seq and the sender's own `ts`, so a device that reboots and
/// restarts its counter at 0 is not mistaken for a redelivery (its readings carry new
/// timestamps). A forgotten device's next readings are all new to the filter: a redelivery
/// that arrives after its device was forgotten is accepted a second time.
pub struct SeqFilter {
    patients: DashMap<Box<str>, Vec<DeviceSlots>>,
    /// Every device remembered, in the order first seen (with stale entries for devices
    /// already forgotten, which are skipped, and compacted away when they pile up).
    order: Mutex<VecDeque<Seen>>,
    limits: DedupLimits,
    tracked: AtomicUsize,
    next_id: AtomicU64,
    evicted_per_patient: AtomicU64,
    evicted_total: AtomicU64,
}

struct DeviceSlots {
    device: Box<str>,
    /// Tells this remembrance from a later one of the same device in `order`.
    id: u64,
    fingerprints: Box<[u32; SLOTS_PER_DEVICE]>,
}

struct Seen {
    patient: Box<str>,
    device: Box<str>,
    id: u64,
}

impl Default for SeqFilter {
    fn default() -> Self {
        SeqFilter::with_limits(DedupLimits::default())
    }
}

impl SeqFilter {
    pub fn new() -> Self {
        SeqFilter::default()
    }

    pub fn with_limits(limits: DedupLimits) -> Self {
        SeqFilter {
            patients: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
            limits: DedupLimits {
                devices: limits.devices.max(1),
                per_patient: limits.per_patient.max(1),
            },
            tracked: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            evicted_per_patient: AtomicU64::new(0),
            evicted_total: AtomicU64::new(0),
        }
    }

    /// Records `reading` and returns `true` if it is new, `false` if it is a duplicate.
    /// Readings without a `seq` or without a device id are always new.
    /// `ts_given` says whether the sender supplied `ts` (receive times differ on redelivery).
    pub fn check_and_record(&self, reading: &Reading<'_>, ts_given: bool) -> bool {
        let (Some(seq), Some(device)) = (reading.seq, reading.device_id) else {
            return true;
        };
        let metric = reading.metric.index() as u64;
        let slot = ((seq.wrapping_mul(9).wrapping_add(metric)) % SLOTS_PER_DEVICE as u64) as usize;
        let ts = if ts_given { reading.ts_ms } else { i64::MIN };
        let print = fingerprint(metric, seq, ts);

        let mut devices = match self.patients.get_mut(reading.patient_id) {
            Some(d) => d,
            None => self.patients.entry(reading.patient_id.into()).or_default(),
        };
        if let Some(known) = devices.iter_mut().find(|d| &*d.device == device) {
            let slots = &mut known.fingerprints;
            if slots[slot] == print {
                return false;
            }
            slots[slot] = print;
            return true;
        }
        if devices.len() >= self.limits.per_patient {
            devices.remove(0);
            self.tracked.fetch_sub(1, Ordering::Relaxed);
            self.evicted_per_patient.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut fingerprints = Box::new([0; SLOTS_PER_DEVICE]);
        fingerprints[slot] = print;
        devices.push(DeviceSlots {
            device: device.into(),
            id,
            fingerprints,
        });
        // The patient's shard is released before the order is touched: eviction locks
        // other patients' shards, always after the order, never the other way round.
        drop(devices);
        self.remember(reading.patient_id, device, id);
        true
    }

    /// Forgets everything about a patient (unenrolment, consent withdrawn).
    pub fn forget_patient(&self, patient_id: &str) {
        if let Some((_, devices)) = self.patients.remove(patient_id) {
            self.tracked.fetch_sub(devices.len(), Ordering::Relaxed);
        }
    }

    pub fn stats(&self) -> DedupStats {
        DedupStats {
            devices: self.tracked.load(Ordering::Relaxed),
            evicted_per_patient: self.evicted_per_patient.load(Ordering::Relaxed),
            evicted_total: self.evicted_total.load(Ordering::Relaxed),
        }
    }

    /// Appends a newly remembered device to the order, then forgets the oldest while more
    /// than `limits.devices` are remembered.
    fn remember(&self, patient: &str, device: &str, id: u64) {
        let mut order = self.order.lock().unwrap_or_else(|p| p.into_inner());
        order.push_back(Seen {
            patient: patient.into(),
            device: device.into(),
            id,
        });
        self.tracked.fetch_add(1, Ordering::Relaxed);
        while self.tracked.load(Ordering::Relaxed) > self.limits.devices {
            let Some(oldest) = order.pop_front() else {
                break;
            };
            if self.forget(&oldest) {
                self.evicted_total.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Entries of devices forgotten per patient or with their patient stay behind in the
        // order; drop them once they are as many as the live ones.
        if order.len() > 2 * self.limits.devices {
            order.retain(|seen| self.is_remembered(seen));
        }
    }

    /// Removes the device `seen` names, if that remembrance is still there.
    fn forget(&self, seen: &Seen) -> bool {
        let Some(mut devices) = self.patients.get_mut(&*seen.patient) else {
            return false;
        };
        let Some(i) = devices.iter().position(|d| d.id == seen.id) else {
            return false;
        };
        devices.remove(i);
        self.tracked.fetch_sub(1, Ordering::Relaxed);
        if devices.is_empty() {
            drop(devices);
            self.patients.remove_if(&*seen.patient, |_, d| d.is_empty());
        }
        true
    }

    fn is_remembered(&self, seen: &Seen) -> bool {
        self.patients.get(&*seen.patient).is_some_and(|d| {
            d.iter()
                .any(|d| d.id == seen.id && *d.device == *seen.device)
        })
    }
}

/// A non-zero 32-bit mix of (metric, seq, ts); zero marks an empty slot.
fn fingerprint(metric: u64, seq: u64, ts: i64) -> u32 {
    let mut h = seq ^ (metric << 58) ^ (ts as u64).rotate_left(17);
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h as u32) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;

    fn reading(seq: Option<u64>, ts: i64, metric: Metric) -> Reading<'static> {
        Reading {
            patient_id: "p1",
            metric,
            value: 70.0,
            ts_ms: ts,
            device_id: Some("cuff-1"),
            seq,
        }
    }

    #[test]
    fn redelivery_is_a_duplicate() {
        let f = SeqFilter::new();
        let r = reading(Some(42), 1000, Metric::HeartRate);
        assert!(f.check_and_record(&r, true));
        assert!(!f.check_and_record(&r, true));
        assert!(f.check_and_record(&reading(Some(43), 1000, Metric::HeartRate), true));
    }

    #[test]
    fn same_seq_other_metric_or_device_or_patient_is_new() {
        let f = SeqFilter::new();
        assert!(f.check_and_record(&reading(Some(1), 1000, Metric::HeartRate), true));
        assert!(f.check_and_record(&reading(Some(1), 1000, Metric::Spo2), true));
        let mut other = reading(Some(1), 1000, Metric::HeartRate);
        other.device_id = Some("cuff-2");
        assert!(f.check_and_record(&other, true));
        other.patient_id = "p2";
        assert!(f.check_and_record(&other, true));
    }

    #[test]
    fn device_reboot_with_new_timestamps_is_not_a_duplicate() {
        let f = SeqFilter::new();
        assert!(f.check_and_record(&reading(Some(0), 1000, Metric::HeartRate), true));
        assert!(f.check_and_record(&reading(Some(0), 9000, Metric::HeartRate), true));
    }

    #[test]
    fn readings_without_seq_are_never_duplicates() {
        let f = SeqFilter::new();
        let r = reading(None, 1000, Metric::HeartRate);
        assert!(f.check_and_record(&r, true));
        assert!(f.check_and_record(&r, true));
    }

    #[test]
    fn devices_beyond_the_bounds_are_forgotten_oldest_first() {
        let f = SeqFilter::with_limits(DedupLimits {
            devices: 3,
            per_patient: 2,
        });
        let on = |patient: &'static str, device: &'static str| Reading {
            patient_id: patient,
            device_id: Some(device),
            ..reading(Some(7), 1000, Metric::HeartRate)
        };
        assert!(f.check_and_record(&on("p1", "a"), true));
        assert!(f.check_and_record(&on("p1", "b"), true));
        assert!(
            f.check_and_record(&on("p1", "c"), true),
            "a is forgotten for p1"
        );
        assert_eq!(f.stats().evicted_per_patient, 1);
        assert!(
            !f.check_and_record(&on("p1", "b"), true),
            "b is still remembered"
        );
        assert!(f.check_and_record(&on("p1", "a"), true), "a is new again");
        assert!(f.check_and_record(&on("p2", "d"), true));
        assert!(f.check_and_record(&on("p3", "e"), true));
        let stats = f.stats();
        assert_eq!(stats.devices, 3, "{stats:?}");
        assert!(stats.evicted_total >= 1, "{stats:?}");
        // The newest three are remembered: p1's a, p2's d, p3's e.
        assert!(!f.check_and_record(&on("p3", "e"), true));
        assert!(!f.check_and_record(&on("p2", "d"), true));
        assert!(!f.check_and_record(&on("p1", "a"), true));
        for i in 0..1000 {
            let device: &'static str = Box::leak(format!("d{i}").into_boxed_str());
            f.check_and_record(&on("p9", device), true);
        }
        assert_eq!(f.stats().devices, 3);
        assert!(
            f.order.lock().unwrap().len() <= 2 * 3 + 1,
            "stale entries compacted"
        );
        f.forget_patient("p9");
        assert!(f.stats().devices < 3);
    }

    #[test]
    fn forgetting_a_patient_clears_its_history() {
        let f = SeqFilter::new();
        let r = reading(Some(5), 1000, Metric::HeartRate);
        assert!(f.check_and_record(&r, true));
        f.forget_patient("p1");
        assert!(f.check_and_record(&r, true));
    }
}
