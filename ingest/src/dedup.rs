//! Duplicate suppression for QoS 1 redelivery and gateway retries: a reading whose
//! (patient, device, metric, seq, ts) was accepted recently is dropped as `duplicate`.

use dashmap::DashMap;

use crate::reading::Reading;

/// Recent (metric, seq) pairs remembered per device. A redelivery older than this many
/// pairs passes as new; QoS 1 redelivery resends only the in-flight window, far smaller.
pub const SLOTS_PER_DEVICE: usize = 128;

/// Remembers, per (patient, device), fingerprints of recently accepted readings.
///
/// A fingerprint covers metric, seq and the sender's own `ts`, so a device that reboots and
/// restarts its counter at 0 is not mistaken for a redelivery (its readings carry new
/// timestamps). Memory: 512 bytes per device that sends `seq`, allocated on first sight.
#[derive(Default)]
pub struct SeqFilter {
    patients: DashMap<Box<str>, Vec<DeviceSlots>>,
}

struct DeviceSlots {
    device: Box<str>,
    fingerprints: Box<[u32; SLOTS_PER_DEVICE]>,
}

impl SeqFilter {
    pub fn new() -> Self {
        SeqFilter::default()
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
        let slots = match devices.iter_mut().position(|d| &*d.device == device) {
            Some(i) => &mut devices[i].fingerprints,
            None => {
                devices.push(DeviceSlots {
                    device: device.into(),
                    fingerprints: Box::new([0; SLOTS_PER_DEVICE]),
                });
                &mut devices.last_mut().expect("just pushed").fingerprints
            }
        };
        if slots[slot] == print {
            return false;
        }
        slots[slot] = print;
        true
    }

    /// Forgets everything about a patient (unenrolment, consent withdrawn).
    pub fn forget_patient(&self, patient_id: &str) {
        self.patients.remove(patient_id);
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
    fn forgetting_a_patient_clears_its_history() {
        let f = SeqFilter::new();
        let r = reading(Some(5), 1000, Metric::HeartRate);
        assert!(f.check_and_record(&r, true));
        f.forget_patient("p1");
        assert!(f.check_and_record(&r, true));
    }
}
