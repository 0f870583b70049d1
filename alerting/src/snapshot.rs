//! Window snapshots: what a patient's windows hold, in a form the journal can keep, so a
//! restart does not blind `for`, `rise`/`fall` and aggregate rules until fresh history
//! arrives.
//!
//! Snapshots are incremental. A patient's first snapshot is *whole* (every sample of every
//! window); the ones after it are *deltas* holding only the samples appended since the
//! previous one, stored beside it until the next whole snapshot replaces them all. A whole
//! snapshot is written again when a late reading went in before samples already written,
//! when the deltas hold as many samples as the windows, or after [`MAX_DELTAS`] deltas.
//!
//! A metric whose values all have at most three decimals (what devices send) is stored
//! delta-encoded ([`PackedHistory`]: 2 bytes a sample for a whole number a minute); any
//! other as (time, value) pairs ([`MetricHistory`], about 15).

use serde::{Deserialize, Serialize};
use vigil_ingest::Metric;

use crate::days::DayMask;
use crate::measured::Measured;
use crate::samples::{from_thousandths, thousandths};
use crate::window::Sample;

/// One patient's windows and measured days. Metrics are stored by name, so a build that
/// adds or reorders metrics still reads older snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientSnapshot {
    /// Metrics with a value that thousandths do not hold exactly (every metric, in
    /// snapshots written before [`PatientSnapshot::packed`]).
    pub windows: Vec<MetricHistory>,
    /// Each metric's days with readings. Encoded after the windows: a build that does
    /// not know them stops reading before them, and one that does reads snapshots
    /// written without them as having none.
    #[serde(default)]
    pub days: Vec<MetricDays>,
    /// Metrics whose values are all whole thousandths, delta-encoded. Last, for the same
    /// reason as `days` (a build from before them restores none of these metrics).
    #[serde(default)]
    pub packed: Vec<PackedHistory>,
}

/// A snapshot as written before packed histories.
#[derive(Deserialize)]
struct WindowsAndDays {
    windows: Vec<MetricHistory>,
    days: Vec<MetricDays>,
}

/// A snapshot as written before measured days were kept.
#[derive(Deserialize)]
struct WindowsOnly {
    windows: Vec<MetricHistory>,
}

/// One metric's samples, oldest first, each value a whole number of thousandths:
/// steps from one sample to the next in the coarsest units that hold them exactly, which
/// postcard writes as varints (a reading a minute of a whole number: two bytes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedHistory {
    pub metric: String,
    /// The first sample's time (epoch ms) and value (thousandths).
    first: (i64, i64),
    /// The units of the steps: milliseconds of time, thousandths of value.
    units: (u64, i64),
    /// Each later sample: the time after the one before, and the change of value, in
    /// `units`.
    steps: Vec<(u64, i64)>,
}

/// Units tried for the steps, coarsest first.
const TIME_UNITS: [u64; 3] = [60_000, 1000, 1];
const VALUE_UNITS: [i64; 4] = [1000, 100, 10, 1];

impl PackedHistory {
    /// `samples` packed, if every value is whole thousandths and times never go back.
    fn pack(metric: Metric, mut samples: impl Iterator<Item = Sample>) -> Option<PackedHistory> {
        let point = |s: Sample| Some((s.ts_ms, i64::from(thousandths(s.value)?)));
        let first = point(samples.next()?)?;
        let mut prev = first;
        let mut steps = samples
            .map(|s| {
                let (ts, v) = point(s)?;
                let step = (u64::try_from(ts.checked_sub(prev.0)?).ok()?, v - prev.1);
                prev = (ts, v);
                Some(step)
            })
            .collect::<Option<Vec<_>>>()?;
        let units = (
            TIME_UNITS
                .into_iter()
                .find(|u| steps.iter().all(|s| s.0 % u == 0))?,
            VALUE_UNITS
                .into_iter()
                .find(|u| steps.iter().all(|s| s.1 % u == 0))?,
        );
        for s in &mut steps {
            *s = (s.0 / units.0, s.1 / units.1);
        }
        Some(PackedHistory {
            metric: metric.name().to_string(),
            first,
            units,
            steps,
        })
    }

    fn len(&self) -> usize {
        1 + self.steps.len()
    }
}

/// The samples of one stored history, oldest first.
#[derive(Debug, Clone)]
pub enum HistorySamples<'a> {
    Pairs(std::slice::Iter<'a, (i64, f64)>),
    Packed {
        /// The next sample's time and thousandths (None: `steps` gives it).
        next: Option<(i64, i64)>,
        prev: (i64, i64),
        units: (u64, i64),
        steps: std::slice::Iter<'a, (u64, i64)>,
    },
}

impl Iterator for HistorySamples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let (ts_ms, value) = match self {
            HistorySamples::Pairs(pairs) => {
                return pairs.next().map(|&(ts_ms, value)| Sample { ts_ms, value })
            }
            HistorySamples::Packed {
                next,
                prev,
                units,
                steps,
            } => {
                let point = match next.take() {
                    Some(p) => p,
                    None => {
                        let &(dt, dv) = steps.next()?;
                        // Wrapping: only a corrupt record overflows, and it must not panic.
                        (
                            prev.0.wrapping_add(dt.wrapping_mul(units.0) as i64),
                            prev.1.wrapping_add(dv.wrapping_mul(units.1)),
                        )
                    }
                };
                *prev = point;
                point
            }
        };
        Some(Sample {
            ts_ms,
            // Packed values were whole thousandths of an i32; a corrupt one saturates.
            value: from_thousandths(value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match self {
            HistorySamples::Pairs(pairs) => pairs.len(),
            HistorySamples::Packed { next, steps, .. } => usize::from(next.is_some()) + steps.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for HistorySamples<'_> {}

/// One metric's samples as [`PatientSnapshot::of`] and `since` store them: packed when
/// they can be.
fn history_of(
    metric: Metric,
    samples: impl Iterator<Item = Sample> + Clone,
    windows: &mut Vec<MetricHistory>,
    packed: &mut Vec<PackedHistory>,
) {
    match PackedHistory::pack(metric, samples.clone()) {
        Some(p) => packed.push(p),
        None => windows.push(MetricHistory {
            metric: metric.name().to_string(),
            samples: samples.map(|s| (s.ts_ms, s.value)).collect(),
        }),
    }
}

/// One metric's [`DayMask`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricDays {
    pub metric: String,
    pub newest: i32,
    pub bits: u32,
    pub first_day: i32,
}

fn days_of(measured: &Measured) -> Vec<MetricDays> {
    measured
        .iter()
        .map(|(m, s)| (m, &s.days))
        .filter(|(_, d)| !d.is_empty())
        .map(|(m, d)| {
            let (newest, bits, first_day) = d.parts();
            MetricDays {
                metric: m.name().to_string(),
                newest,
                bits,
                first_day,
            }
        })
        .collect()
}

/// One metric's samples, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricHistory {
    pub metric: String,
    /// (event time in epoch ms, value in the canonical unit)
    pub samples: Vec<(i64, f64)>,
}

impl PatientSnapshot {
    /// Copies what the windows and measured days hold.
    pub fn of(measured: &Measured) -> PatientSnapshot {
        let mut out = PatientSnapshot {
            days: days_of(measured),
            ..PatientSnapshot::default()
        };
        for (m, s) in measured.iter().filter(|(_, s)| !s.is_empty()) {
            history_of(m, s.iter(), &mut out.windows, &mut out.packed);
        }
        out
    }

    /// Compact binary form (postcard).
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("snapshots serialize")
    }

    /// Reads this build's snapshots and those of the builds before it (which end before
    /// the fields added since).
    pub fn decode(bytes: &[u8]) -> Result<PatientSnapshot, postcard::Error> {
        let shorter = |e| match e {
            postcard::Error::DeserializeUnexpectedEnd => Ok(()),
            e => Err(e),
        };
        match postcard::from_bytes(bytes) {
            Ok(snapshot) => return Ok(snapshot),
            Err(e) => shorter(e)?,
        }
        match postcard::from_bytes::<WindowsAndDays>(bytes) {
            Ok(w) => {
                return Ok(PatientSnapshot {
                    windows: w.windows,
                    days: w.days,
                    packed: Vec::new(),
                })
            }
            Err(e) => shorter(e)?,
        }
        postcard::from_bytes::<WindowsOnly>(bytes).map(|w| PatientSnapshot {
            windows: w.windows,
            ..PatientSnapshot::default()
        })
    }

    /// The samples appended to the windows since their last write (per metric,
    /// [`crate::window::Window::unwritten`]) and still held.
    fn since(measured: &Measured) -> PatientSnapshot {
        let mut out = PatientSnapshot {
            days: days_of(measured),
            ..PatientSnapshot::default()
        };
        for (m, s) in measured.iter() {
            if s.unwritten_count() > 0 {
                history_of(m, s.unwritten(), &mut out.windows, &mut out.packed);
            }
        }
        out
    }

    /// Samples held, all metrics together.
    pub fn sample_count(&self) -> usize {
        self.windows.iter().map(|h| h.samples.len()).sum::<usize>()
            + self.packed.iter().map(PackedHistory::len).sum::<usize>()
    }

    /// The samples of each metric this build knows, oldest first (a metric stored in
    /// both forms, which this build never writes, yields two runs).
    pub fn histories(&self) -> impl Iterator<Item = (Metric, HistorySamples<'_>)> + '_ {
        let pairs = self.windows.iter().filter_map(|h| {
            Some((
                Metric::parse(&h.metric)?,
                HistorySamples::Pairs(h.samples.iter()),
            ))
        });
        let packed = self.packed.iter().filter_map(|h| {
            Some((
                Metric::parse(&h.metric)?,
                HistorySamples::Packed {
                    next: Some(h.first),
                    prev: h.first,
                    units: h.units,
                    steps: h.steps.iter(),
                },
            ))
        });
        pairs.chain(packed)
    }

    /// The measured days of each metric this build knows.
    pub fn day_masks(&self) -> impl Iterator<Item = (Metric, DayMask)> + '_ {
        self.days.iter().filter_map(|d| {
            Some((
                Metric::parse(&d.metric)?,
                DayMask::from_parts(d.newest, d.bits, d.first_day),
            ))
        })
    }
}

/// Deltas stored after a whole snapshot before the next one is whole again: bounds the
/// records a restart reads per patient.
pub const MAX_DELTAS: u32 = 32;

// A patient's count of deltas is a byte, and one past the last is still counted.
const _: () = assert!(MAX_DELTAS < u8::MAX as u32);

/// What one snapshot writes for one patient.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapshotPart {
    /// Every sample; replaces the stored snapshot and all its deltas.
    Whole(PatientSnapshot),
    /// The samples appended since the last write, stored as delta number `index`.
    Delta {
        index: u32,
        samples: PatientSnapshot,
    },
}

/// The kind of a patient's next write, and the samples it holds.
enum Plan {
    Delta(usize),
    Whole(usize),
}

/// What the store holds of one patient's windows, so that a snapshot writes only what is
/// new (each metric's window counts what went in since its last write ended, see
/// [`crate::window::Window::unwritten`]). Kept in the patient's state; only [`Persisted::changed`] is on the
/// per-reading path.
#[derive(Debug, Clone, Default)]
pub struct Persisted {
    /// The windows changed since the last write.
    dirty: bool,
    /// The next write must be whole: a late reading went in before samples already
    /// written (what a window counts as new no longer says which samples those are), or the
    /// last write failed.
    rewrite: bool,
    /// A whole snapshot is stored.
    has_whole: bool,
    /// Deltas stored after it (numbered from 0): at most [`MAX_DELTAS`], so a byte (the
    /// struct is 8 bytes, in every patient's state).
    deltas: u8,
    /// Samples those deltas hold (saturating: a whole snapshot is due long before).
    delta_samples: u32,
}

impl Persisted {
    /// After a reading went into a window; `appended` is what
    /// [`crate::window::Window::insert`] returned.
    #[inline]
    pub fn changed(&mut self, appended: bool) {
        self.dirty = true;
        self.rewrite |= !appended;
    }

    /// What to write for the windows now, marking it written; None if nothing changed.
    pub fn take(&mut self, measured: &mut Measured) -> Option<SnapshotPart> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        // Decided on counts first: when a whole snapshot is due, no delta is built only
        // to be thrown away (windows that turn over within an interval: every snapshot).
        let part = if matches!(self.plan(measured), Plan::Delta(_)) {
            let samples = PatientSnapshot::since(measured);
            self.delta_samples = self
                .delta_samples
                .saturating_add(saturate(samples.sample_count()));
            self.deltas += 1;
            SnapshotPart::Delta {
                index: u32::from(self.deltas) - 1,
                samples,
            }
        } else {
            (
                self.has_whole,
                self.rewrite,
                self.deltas,
                self.delta_samples,
            ) = (true, false, 0, 0);
            SnapshotPart::Whole(PatientSnapshot::of(measured))
        };
        Persisted::remember(measured);
        Some(part)
    }

    /// Samples the next [`Persisted::take`] would write (0: nothing changed).
    pub fn pending(&self, measured: &Measured) -> usize {
        if !self.dirty {
            return 0;
        }
        match self.plan(measured) {
            Plan::Delta(n) | Plan::Whole(n) => n,
        }
    }

    /// Whether the next write is a delta or whole, with the samples it holds.
    fn plan(&self, measured: &Measured) -> Plan {
        let held: usize = measured.iter().map(|(_, s)| s.len()).sum();
        if !self.has_whole || self.rewrite || u32::from(self.deltas) >= MAX_DELTAS {
            return Plan::Whole(held);
        }
        let added: usize = measured.iter().map(|(_, s)| s.unwritten_count()).sum();
        if self.delta_samples as usize + added < held {
            Plan::Delta(added)
        } else {
            Plan::Whole(held)
        }
    }

    /// The last part taken could not be written: the next write is whole.
    pub fn failed(&mut self) {
        self.dirty = true;
        self.rewrite = true;
    }

    /// After the windows were refilled from a whole snapshot and `deltas` deltas holding
    /// `delta_samples` samples: the next write is the next delta.
    pub fn restored(&mut self, measured: &mut Measured, deltas: u32, delta_samples: usize) {
        *self = Persisted {
            has_whole: true,
            // More than a byte holds (more than MAX_DELTAS): the next write is whole.
            deltas: u8::try_from(deltas).unwrap_or(u8::MAX),
            delta_samples: saturate(delta_samples),
            ..Persisted::default()
        };
        Persisted::remember(measured);
    }

    fn remember(measured: &mut Measured) {
        for (_, s) in measured.iter_mut() {
            s.mark_written();
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::window::Window;

    #[test]
    fn measured_days_round_trip_and_older_snapshots_still_read() {
        let mut measured = Measured::default();
        measured.insert(
            Metric::Weight,
            Sample {
                ts_ms: 86_400_000 * 100,
                value: 80.0,
            },
            i64::MAX,
        );
        let weight_state = measured.entry(Metric::Weight);
        weight_state.days.record(100);
        weight_state.days.record(97);
        let days = weight_state.days;
        let snap = PatientSnapshot::of(&measured);
        let back = PatientSnapshot::decode(&snap.encode()).unwrap();
        assert_eq!(back, snap);
        let masks: Vec<(Metric, DayMask)> = back.day_masks().collect();
        assert_eq!(masks, vec![(Metric::Weight, days)]);
        let weight = vec![MetricHistory {
            metric: "weight".into(),
            samples: vec![(86_400_000 * 100, 80.0)],
        }];
        let read_weight = |snap: &PatientSnapshot| -> Vec<(Metric, Vec<Sample>)> {
            snap.histories().map(|(m, s)| (m, s.collect())).collect()
        };
        assert_eq!(
            read_weight(&snap),
            read_weight(&PatientSnapshot {
                windows: weight.clone(),
                ..PatientSnapshot::default()
            })
        );
        // Written by a build without measured days: the windows alone.
        #[derive(Serialize)]
        struct Old<'a> {
            windows: &'a [MetricHistory],
        }
        let old = postcard::to_stdvec(&Old { windows: &weight }).unwrap();
        let read = PatientSnapshot::decode(&old).unwrap();
        assert_eq!(read.windows, weight);
        assert!(read.days.is_empty());
        // Written by a build with days but without packed histories.
        #[derive(Serialize)]
        struct WithDays<'a> {
            windows: &'a [MetricHistory],
            days: &'a [MetricDays],
        }
        let old = postcard::to_stdvec(&WithDays {
            windows: &weight,
            days: &snap.days,
        })
        .unwrap();
        let read = PatientSnapshot::decode(&old).unwrap();
        assert_eq!((&read.windows, &read.days), (&weight, &snap.days));
        assert_eq!(read_weight(&read), read_weight(&snap));
        // And builds without days, or without packed histories, read the new form
        // (trailing bytes are left alone): its pairs and days, not its packed metrics.
        let new_read_by_old: WindowsOnly = postcard::from_bytes(&snap.encode()).unwrap();
        assert_eq!(new_read_by_old.windows, snap.windows);
        let new_read_by_old: WindowsAndDays = postcard::from_bytes(&snap.encode()).unwrap();
        assert_eq!(new_read_by_old.days, snap.days);
    }

    #[test]
    fn device_values_are_packed_and_others_kept_exactly() {
        let mut windows = Measured::default();
        // An hour of heart rate at one a minute; weights converted from pounds.
        for minute in 0..60 {
            let ts_ms = 1_763_892_000_000 + minute * 60_000;
            windows.insert(
                Metric::HeartRate,
                Sample {
                    ts_ms,
                    value: 70.0 + (minute % 5) as f64,
                },
                i64::MAX,
            );
            windows.insert(
                Metric::Weight,
                Sample {
                    ts_ms,
                    value: (180.0 + minute as f64) * 0.453_592_37,
                },
                i64::MAX,
            );
        }
        let snap = PatientSnapshot::of(&windows);
        assert_eq!(snap.packed.len(), 1);
        assert_eq!(snap.windows.len(), 1);
        let bytes = snap.encode();
        let packed_bytes = postcard::to_stdvec(&snap.packed).unwrap().len();
        assert!(
            packed_bytes <= 60 * 2 + 32,
            "{packed_bytes} bytes for 60 packed samples"
        );
        let back = PatientSnapshot::decode(&bytes).unwrap();
        let got: Vec<(Metric, Vec<Sample>)> =
            back.histories().map(|(m, s)| (m, s.collect())).collect();
        let want: Vec<(Metric, Vec<Sample>)> = [Metric::Weight, Metric::HeartRate]
            .into_iter()
            .map(|m| (m, windows.window(m).unwrap().iter().collect()))
            .collect();
        assert_eq!(got, want);
        for (_, samples) in back.histories() {
            assert_eq!(samples.len(), 60);
        }
        assert_eq!(back.sample_count(), 120);
    }

    #[test]
    fn round_trips_and_skips_unknown_metrics() {
        let mut windows = Measured::default();
        for (i, v) in [70.0, 72.5, 71.0].iter().enumerate() {
            windows.insert(
                Metric::HeartRate,
                Sample {
                    ts_ms: 1000 + i as i64,
                    value: *v,
                },
                i64::MAX,
            );
        }
        let mut snap = PatientSnapshot::of(&windows);
        assert_eq!(snap.packed.len(), 1);
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

    fn windows_with(samples: &[(i64, f64)]) -> Measured {
        let mut windows = Measured::default();
        for &(ts_ms, value) in samples {
            windows.insert(Metric::ALL[0], Sample { ts_ms, value }, i64::MAX);
        }
        windows
    }

    fn push(p: &mut Persisted, windows: &mut Measured, ts_ms: i64) {
        let appended = windows.insert(Metric::ALL[0], Sample { ts_ms, value: 1.0 }, i64::MAX);
        p.changed(appended);
    }

    fn delta_len(part: Option<SnapshotPart>) -> usize {
        match part {
            Some(SnapshotPart::Delta { samples, .. }) => samples.sample_count(),
            other => panic!("expected a delta, got {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_is_whole_first_then_holds_only_what_was_added() {
        let mut windows = windows_with(&[]);
        let mut p = Persisted::default();
        assert_eq!(p.take(&mut windows), None, "nothing changed");
        for ts in 0..100 {
            push(&mut p, &mut windows, ts * 1000);
        }
        assert!(
            matches!(p.take(&mut windows), Some(SnapshotPart::Whole(s)) if s.sample_count() == 100)
        );
        assert_eq!(p.take(&mut windows), None);
        for ts in 100..103 {
            push(&mut p, &mut windows, ts * 1000);
        }
        match p.take(&mut windows) {
            Some(SnapshotPart::Delta { index: 0, samples }) => assert_eq!(
                samples.histories().flat_map(|(_, s)| s).collect::<Vec<_>>(),
                [100_000, 101_000, 102_000].map(|ts_ms| Sample { ts_ms, value: 1.0 })
            ),
            other => panic!("expected delta 0, got {other:?}"),
        }
        push(&mut p, &mut windows, 103_000);
        assert!(matches!(
            p.take(&mut windows),
            Some(SnapshotPart::Delta { index: 1, .. })
        ));
        // A late reading shifts samples already written: the next write is whole.
        push(&mut p, &mut windows, 50_500);
        assert!(
            matches!(p.take(&mut windows), Some(SnapshotPart::Whole(s)) if s.sample_count() == 105)
        );
        push(&mut p, &mut windows, 104_000);
        assert_eq!(
            delta_len(p.take(&mut windows)),
            1,
            "numbering restarts after it"
        );
        // A failed write makes the next one whole.
        p.failed();
        assert!(matches!(p.take(&mut windows), Some(SnapshotPart::Whole(_))));
    }

    #[test]
    fn deltas_give_way_to_a_whole_snapshot_when_they_grow() {
        // After MAX_DELTAS deltas.
        let mut windows = windows_with(&[]);
        let mut p = Persisted::default();
        let mut ts = 0;
        for _ in 0..1000 {
            push(&mut p, &mut windows, ts);
            ts += 1;
        }
        assert!(matches!(p.take(&mut windows), Some(SnapshotPart::Whole(_))));
        for i in 0..MAX_DELTAS {
            push(&mut p, &mut windows, ts);
            ts += 1;
            assert!(
                matches!(p.take(&mut windows), Some(SnapshotPart::Delta { index, .. }) if index == i)
            );
        }
        push(&mut p, &mut windows, ts);
        assert!(matches!(p.take(&mut windows), Some(SnapshotPart::Whole(_))));
        // When the deltas would hold as many samples as the windows: windows of about
        // 20 samples (retention 20 ms, one sample a ms), 5 more samples per snapshot.
        let mut windows = windows_with(&[]);
        let mut p = Persisted::default();
        let add = |p: &mut Persisted, windows: &mut Measured, from: i64| {
            for ts in from..from + 5 {
                p.changed(windows.insert(
                    Metric::ALL[0],
                    Sample {
                        ts_ms: ts,
                        value: 1.0,
                    },
                    20,
                ));
            }
        };
        add(&mut p, &mut windows, 0);
        assert!(matches!(p.take(&mut windows), Some(SnapshotPart::Whole(_))));
        let mut deltas = 0;
        for from in (5..).step_by(5) {
            add(&mut p, &mut windows, from);
            match p.take(&mut windows) {
                Some(SnapshotPart::Delta { .. }) => deltas += 1,
                _ => break,
            }
            assert!(deltas < 10, "never whole again");
        }
        assert!(
            (2..=5).contains(&deltas),
            "{deltas} deltas before the next whole"
        );
    }

    proptest::proptest! {
        /// Restoring the whole snapshot and its deltas gives back the windows, whatever
        /// the order of readings (late ones included), trimming and snapshot times.
        #[test]
        fn whole_plus_deltas_restore_the_windows(
            steps in proptest::collection::vec((0i64..40, 0u8..12, 0u8..8), 1..300),
            retention in proptest::prop_oneof![proptest::strategy::Just(i64::MAX), 0i64..400],
            exact in proptest::bool::ANY,
        ) {
            let mut live = Measured::default();
            let mut p = Persisted::default();
            let mut stored: Vec<PatientSnapshot> = Vec::new();
            let mut newest = 0;
            let take = |p: &mut Persisted, live: &mut Measured, stored: &mut Vec<PatientSnapshot>| {
                match p.take(live) {
                    Some(SnapshotPart::Whole(s)) => *stored = vec![s],
                    Some(SnapshotPart::Delta { index, samples }) => {
                        proptest::prop_assert_eq!(index as usize, stored.len() - 1);
                        stored.push(samples);
                    }
                    None => {}
                }
                Ok(())
            };
            for (i, &(step, late, snapshot)) in steps.iter().enumerate() {
                // Mostly forward in time, sometimes late (before the newest).
                let ts = if late == 0 { newest - step } else { newest + step };
                newest = newest.max(ts);
                let metric = i % 2;
                // Device values (packed), or some that are not whole thousandths (pairs).
                let value = if exact || i % 3 != 0 { i as f64 } else { i as f64 / 7.0 };
                let appended = live.insert(Metric::ALL[metric], Sample { ts_ms: ts, value }, retention);
                p.changed(appended);
                if snapshot == 0 {
                    take(&mut p, &mut live, &mut stored)?;
                }
            }
            take(&mut p, &mut live, &mut stored)?;
            let mut restored = Measured::default();
            for part in &stored {
                let part = PatientSnapshot::decode(&part.encode()).unwrap();
                for (metric, samples) in part.histories() {
                    for s in samples {
                        restored.insert(metric, s, retention);
                    }
                }
            }
            for m in 0..2 {
                // What rules can read: everything since the horizon (trimming is batched,
                // so older samples may differ).
                let m = Metric::ALL[m];
                let horizon = live.latest(m).map_or(0, |s| s.ts_ms.saturating_sub(retention));
                let recent = |w: Option<&Window>| -> Vec<Sample> {
                    w.into_iter().flat_map(Window::iter).filter(|s| s.ts_ms >= horizon).collect()
                };
                proptest::prop_assert_eq!(recent(live.window(m)), recent(restored.window(m)));
            }
        }
    }
}
