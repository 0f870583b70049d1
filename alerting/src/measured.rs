//! What a patient holds per metric, for the metrics the patient measures only: the sliding
//! window, the last reading's server time and the measured days, and for NEWS2's
//! parameters their newest sample apart. A patient with a scale holds one metric's state,
//! not ten.

use vigil_ingest::Metric;

use crate::patient::PatientKey;
use crate::thin::ThinPair;
use crate::window::{Sample, Window};

/// Marks a metric without a sample (no reading has this time: readings are validated
/// against the server's clock).
const NONE_MS: i64 = i64::MIN;

/// One measured metric's state: its window, which also keeps the last reading's server
/// time and the measured days. 40 bytes: a patient's block of seven, with five newest
/// samples and the patient's id after them, is 384 bytes, the allocator's 384-byte class.
pub type MetricState = Window;

/// No sample: `ts_ms` is [`NONE_MS`].
const NO_SAMPLE: Sample = Sample {
    ts_ms: NONE_MS,
    value: 0.0,
};

fn some_sample(s: Sample) -> Option<Sample> {
    (s.ts_ms != NONE_MS).then_some(s)
}

/// Per metric measured, its state, in the metric table's order; nothing for the others.
/// After the states, in the same allocation, the newest sample of each measured NEWS2
/// parameter ([`SCORED`]), in the metric table's order: NEWS2 reads every parameter's at
/// each of their readings, in a line or two, without touching the windows (other
/// metrics' newest samples are read from their windows). Last, the patient's id (the
/// patient map's key, [`Measured::key`]): beside the newest samples, which every reading
/// loads, it costs no line of its own, and in what the allocator's size class would
/// leave unused it costs no byte either. 16 bytes: the arrays' lengths are `len` and
/// `scored_len`, so the block is held by a bare pointer ([`ThinPair`]) and set, with
/// `present` and the lengths, only together ([`Measured::set`]).
pub struct Measured {
    block: ThinPair<MetricState, Sample, PatientKey>,
    /// Bit per metric with a state; a metric's state is at the number of bits below its own.
    present: u16,
    /// Bits in `present`, and in `present & SCORED` (kept: counting bits takes a dozen
    /// instructions on the baseline x86_64 target, which has no `popcnt`).
    len: u8,
    scored_len: u8,
    /// Bit per metric: an absence deadline is pending in the timer heap (kept here, in
    /// what would be this struct's padding, rather than in 8 more bytes of the patient's).
    pub armed: u16,
}

/// Where a metric's state is among a patient's ([`Measured::made`]): valid while the
/// metrics the patient measures stay the same (a reading adds its metric first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    metric: Metric,
    index: usize,
}

/// Bit per metric NEWS2 scores: their newest samples are kept apart.
const SCORED: u16 = {
    let mut bits = 0u16;
    let mut i = 0;
    while i < crate::rule::NEWS2_METRICS.len() {
        bits |= 1 << crate::rule::NEWS2_METRICS[i] as u16;
        i += 1;
    }
    bits
};

const _: () = assert!(Metric::COUNT <= 16);

impl Drop for Measured {
    fn drop(&mut self) {
        if !self.block.is_unset() {
            drop(self.take());
        }
    }
}

impl Clone for Measured {
    fn clone(&self) -> Measured {
        let mut copy = Measured {
            block: ThinPair::unset(),
            present: 0,
            len: 0,
            scored_len: 0,
            armed: self.armed,
        };
        copy.set(
            self.present,
            self.states().to_vec(),
            self.newest().to_vec(),
            self.key().clone(),
        );
        copy
    }
}

/// Only tests build states apart from a patient: a patient's own is made with its id
/// ([`Measured::new`]), which the map finds it by.
#[cfg(test)]
impl Default for Measured {
    /// Nothing measured, for a patient with the empty id.
    fn default() -> Measured {
        Measured::new(PatientKey::default())
    }
}

impl std::fmt::Debug for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Measured {
    /// Nothing measured yet, for patient `key`.
    pub fn new(key: PatientKey) -> Measured {
        Measured {
            block: ThinPair::new(Vec::new(), Vec::new(), key),
            present: 0,
            len: 0,
            scored_len: 0,
            armed: 0,
        }
    }

    /// The patient's id, the patient map's key.
    #[inline]
    pub fn key(&self) -> &PatientKey {
        // SAFETY: as in `states`.
        unsafe { self.block.tail(self.len(), usize::from(self.scored_len)) }
    }

    #[inline]
    fn states(&self) -> &[MetricState] {
        // SAFETY: the block and the lengths are only ever set together (`set`, `take`).
        unsafe { self.block.first(self.len()) }
    }

    #[inline]
    fn states_mut(&mut self) -> &mut [MetricState] {
        let len = self.len();
        // SAFETY: as in `states`.
        unsafe { self.block.first_mut(len) }
    }

    #[inline]
    fn newest(&self) -> &[Sample] {
        // SAFETY: as in `states`.
        unsafe { self.block.second(self.len(), usize::from(self.scored_len)) }
    }

    #[inline]
    fn newest_mut(&mut self) -> &mut [Sample] {
        let (len, scored_len) = (self.len(), usize::from(self.scored_len));
        // SAFETY: as in `states`.
        unsafe { self.block.second_mut(len, scored_len) }
    }

    /// The bits, both arrays and the key, leaving the block unset: only for `set` to
    /// replace, or to drop.
    fn take(&mut self) -> (u16, Vec<MetricState>, Vec<Sample>, PatientKey) {
        let (len, scored_len) = (self.len(), usize::from(self.scored_len));
        let present = std::mem::take(&mut self.present);
        (self.len, self.scored_len) = (0, 0);
        let block = std::mem::replace(&mut self.block, ThinPair::unset());
        // SAFETY: as in `states`.
        let (states, newest, key) = unsafe { block.into_parts(len, scored_len) };
        (present, states, newest, key)
    }

    /// Replaces what is measured (freeing the old block, unless it was taken).
    fn set(
        &mut self,
        present: u16,
        states: Vec<MetricState>,
        newest: Vec<Sample>,
        key: PatientKey,
    ) {
        let len = present.count_ones() as usize;
        let scored_len = (present & SCORED).count_ones() as usize;
        assert!(
            states.len() == len && newest.len() == scored_len,
            "a state per bit, a newest sample per scored bit"
        );
        if !self.block.is_unset() {
            drop(self.take());
        }
        self.block = ThinPair::new(states, newest, key);
        (self.present, self.len, self.scored_len) = (present, len as u8, scored_len as u8);
    }

    /// Where `m`'s entry is among those of the metrics in `among` the patient measures.
    #[inline]
    fn slot_among(&self, m: Metric, among: u16) -> Option<usize> {
        let bit = 1u16 << m.index();
        let bits = self.present & among;
        (bits & bit != 0).then(|| ones(bits & (bit - 1)))
    }

    #[inline]
    fn slot(&self, m: Metric) -> Option<usize> {
        self.slot_among(m, u16::MAX)
    }

    /// The metric's state, if the patient measures it.
    #[inline]
    pub fn get(&self, m: Metric) -> Option<&MetricState> {
        self.slot(m).map(|i| &self.states()[i])
    }

    /// The metric's state, made empty if the patient did not measure it yet (the states
    /// are reallocated to fit: at most once per metric in a patient's life).
    #[inline]
    pub fn entry(&mut self, m: Metric) -> &mut MetricState {
        let slot = self.made(m);
        self.at_mut(slot)
    }

    /// Where the metric's state is, made empty if the patient did not measure it yet (as
    /// [`Measured::entry`]): a reading's work finds it once, then goes by [`Slot`].
    #[inline]
    pub fn made(&mut self, m: Metric) -> Slot {
        let index = self.slot(m).unwrap_or_else(|| self.add(m));
        Slot { metric: m, index }
    }

    /// The state at `slot` ([`Measured::made`]; the metrics measured have not changed
    /// since).
    #[inline]
    pub fn at(&self, slot: Slot) -> &MetricState {
        debug_assert_eq!(self.slot(slot.metric), Some(slot.index));
        &self.states()[slot.index]
    }

    /// The state at `slot`, as [`Measured::at`].
    #[inline]
    pub fn at_mut(&mut self, slot: Slot) -> &mut MetricState {
        debug_assert_eq!(self.slot(slot.metric), Some(slot.index));
        &mut self.states_mut()[slot.index]
    }

    #[cold]
    fn add(&mut self, m: Metric) -> usize {
        self.ensure([m]);
        self.slot(m).expect("just made")
    }

    /// Makes a state for each of `metrics` the patient has none for, reallocating once
    /// (a patient's windows refilled from a snapshot: all of them at once).
    pub fn ensure(&mut self, metrics: impl IntoIterator<Item = Metric>) {
        let wanted = metrics
            .into_iter()
            .fold(self.present, |bits, m| bits | 1 << m.index());
        if wanted == self.present {
            return;
        }
        let mut states = Vec::with_capacity(wanted.count_ones() as usize);
        let mut newest = Vec::with_capacity((wanted & SCORED).count_ones() as usize);
        let (present, old_states, old_newest, key) = self.take();
        let (mut old_states, mut old_newest) = (old_states.into_iter(), old_newest.into_iter());
        for m in Metric::ALL {
            let bit = 1u16 << m.index();
            if present & bit != 0 {
                states.push(old_states.next().expect("a state per bit"));
            } else if wanted & bit != 0 {
                states.push(MetricState::default());
            }
            if present & SCORED & bit != 0 {
                newest.push(old_newest.next().expect("a newest sample per scored bit"));
            } else if wanted & SCORED & bit != 0 {
                newest.push(NO_SAMPLE);
            }
        }
        self.set(wanted, states, newest, key);
    }

    /// Inserts `s` into the metric's window (see [`Window::insert`]; the state is made if
    /// need be) and keeps its newest sample: `s` as stored if it was appended, else the
    /// one kept already (a late reading is not the newest, and a trim keeps the newest).
    #[inline]
    pub fn insert(&mut self, m: Metric, s: Sample, retention_ms: i64) -> bool {
        let slot = self.made(m);
        self.insert_at(slot, s, retention_ms)
    }

    /// [`Measured::insert`] into the state at `slot` ([`Measured::made`]).
    #[inline]
    pub fn insert_at(&mut self, slot: Slot, s: Sample, retention_ms: i64) -> bool {
        let (m, i) = (slot.metric, slot.index);
        let appended = self.at_mut(slot).insert(s, retention_ms);
        if let (true, Some(j)) = (appended, self.slot_among(m, SCORED)) {
            let newest = self.states()[i].as_stored(s);
            self.newest_mut()[j] = newest;
        }
        debug_assert_eq!(
            self.latest(m).map(|s| (s.ts_ms, s.value.to_bits())),
            self.states()[i]
                .latest()
                .map(|s| (s.ts_ms, s.value.to_bits())),
            "the newest sample kept apart is the window's"
        );
        appended
    }

    /// Takes the metric's newest sample from its window again (after it was refilled).
    pub fn sync_latest(&mut self, m: Metric) {
        if let Some(i) = self.slot(m) {
            self.keep_newest(m, i);
        }
    }

    /// Copies the newest sample of `m` (its state at `i`) apart, if NEWS2 scores it.
    #[inline]
    fn keep_newest(&mut self, m: Metric, i: usize) {
        if let Some(j) = self.slot_among(m, SCORED) {
            self.newest_mut()[j] = self.states()[i].latest().unwrap_or(NO_SAMPLE);
        }
    }

    /// The newest sample of `m`, if any.
    #[inline]
    pub fn latest(&self, m: Metric) -> Option<Sample> {
        match self.slot_among(m, SCORED) {
            Some(j) => some_sample(self.newest()[j]),
            None => self.window(m)?.latest(),
        }
    }

    /// The newest sample of each NEWS2 parameter measured, with its metric (in the metric
    /// table's order): the samples kept apart, read in one pass (NEWS2 reads all of them
    /// at every reading).
    #[inline]
    pub fn scored_latest(&self) -> impl Iterator<Item = (Metric, Sample)> + Clone + '_ {
        let mut bits = self.present & SCORED;
        self.newest().iter().filter_map(move |&s| {
            let m = Metric::ALL[bits.trailing_zeros() as usize];
            bits &= bits - 1;
            some_sample(s).map(|s| (m, s))
        })
    }

    /// Every measured metric's newest sample there is.
    pub fn all_latest(&self) -> impl Iterator<Item = Sample> + '_ {
        self.states().iter().filter_map(|s| s.latest())
    }

    /// The window of `m`, if the patient measures it.
    #[inline]
    pub fn window(&self, m: Metric) -> Option<&Window> {
        self.get(m)
    }

    /// Each measured metric and its state, in the metric table's order.
    pub fn iter(&self) -> impl Iterator<Item = (Metric, &MetricState)> + '_ {
        self.metrics().zip(self.states().iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Metric, &mut MetricState)> + '_ {
        self.metrics().zip(self.states_mut().iter_mut())
    }

    fn metrics(&self) -> impl Iterator<Item = Metric> + use<> {
        let present = self.present;
        Metric::ALL
            .into_iter()
            .filter(move |m| present & (1 << m.index()) != 0)
    }

    /// Metrics measured.
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// Starts loading the newest samples NEWS2 reads and the patient's id after them
    /// (which a lookup compares).
    #[inline]
    pub fn prefetch_newest(&self) {
        let start = self.newest().as_ptr().cast::<u8>();
        let end = std::ptr::from_ref(self.key()).wrapping_add(1).cast::<u8>();
        crate::prefetch::prefetch_range(start, end);
    }

    /// Starts loading the lines of `m`'s state (its window's header first).
    #[inline]
    pub fn prefetch(&self, m: Metric) {
        if let Some(s) = self.get(m) {
            crate::prefetch::prefetch_lines(s);
        }
    }
}

/// Set bits of each byte value: the baseline x86_64 target has no popcount instruction,
/// so `count_ones` is a dozen instructions there, on every metric lookup of every rule.
const BYTE_ONES: [u8; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).count_ones() as u8;
        i += 1;
    }
    table
};

/// `bits.count_ones()`, by two lookups in a table of four cache lines.
#[inline]
fn ones(bits: u16) -> usize {
    usize::from(BYTE_ONES[usize::from(bits as u8)] + BYTE_ONES[usize::from(bits >> 8)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ones_counts_the_set_bits_of_every_mask() {
        for bits in 0..=u16::MAX {
            assert_eq!(ones(bits), bits.count_ones() as usize, "{bits:#x}");
        }
    }

    fn sample(ts_ms: i64, value: f64) -> Sample {
        Sample { ts_ms, value }
    }

    #[test]
    fn the_patients_id_stays_with_the_block_as_it_grows_and_is_copied() {
        let id = "a-patient-id-longer-than-twenty-four-bytes";
        let mut m = Measured::new(PatientKey::from(id));
        assert_eq!(m.key(), id);
        for (i, metric) in [
            Metric::Weight,
            Metric::Spo2,
            Metric::HeartRate,
            Metric::RespRate,
        ]
        .into_iter()
        .enumerate()
        {
            m.insert(metric, sample(1000, i as f64), i64::MAX);
            assert_eq!(m.key(), id, "after {metric:?}");
        }
        m.ensure(Metric::ALL);
        let copy = m.clone();
        drop(m);
        assert_eq!((copy.key().as_str(), copy.len()), (id, Metric::COUNT));
        assert_eq!(copy.latest(Metric::Spo2), Some(sample(1000, 1.0)));
    }

    #[test]
    fn only_measured_metrics_hold_state_and_each_finds_its_own() {
        let mut m = Measured::default();
        assert!(m.is_empty());
        assert_eq!(m.latest(Metric::Weight), None);
        // Added out of the table's order.
        for (i, metric) in [Metric::Weight, Metric::HeartRate, Metric::Spo2]
            .into_iter()
            .enumerate()
        {
            m.insert(metric, sample(1000, i as f64), i64::MAX);
        }
        assert_eq!(m.len(), 3);
        assert_eq!(m.latest(Metric::Weight), Some(sample(1000, 0.0)));
        assert_eq!(m.latest(Metric::HeartRate), Some(sample(1000, 1.0)));
        assert_eq!(m.latest(Metric::Spo2), Some(sample(1000, 2.0)));
        assert_eq!(m.all_latest().count(), 3);
        assert!(m.get(Metric::Temperature).is_none());
        let order: Vec<Metric> = m.iter().map(|(metric, _)| metric).collect();
        let mut sorted = order.clone();
        sorted.sort_by_key(|metric| metric.index());
        assert_eq!(order, sorted);
        // A late reading does not replace the newest.
        m.insert(Metric::Spo2, sample(500, 9.0), i64::MAX);
        assert_eq!(m.latest(Metric::Spo2), Some(sample(1000, 2.0)));
        assert_eq!(m.window(Metric::Spo2).map(Window::len), Some(2));
        m.prefetch_newest();
        m.prefetch(Metric::Spo2);
        m.prefetch(Metric::Temperature);
        // Made in one go, around those already there, which keep their samples.
        m.ensure([Metric::Temperature, Metric::Spo2, Metric::Glucose]);
        assert_eq!(m.len(), 5);
        assert_eq!(m.latest(Metric::Spo2), Some(sample(1000, 2.0)));
        assert_eq!(m.latest(Metric::Weight), Some(sample(1000, 0.0)));
        assert_eq!(m.latest(Metric::Glucose), None);
        assert_eq!(m.window(Metric::Glucose).map(Window::len), Some(0));
        m.insert(Metric::Glucose, sample(2000, 5.5), i64::MAX);
        assert_eq!(m.latest(Metric::Glucose), Some(sample(2000, 5.5)));
        assert_eq!(m.latest(Metric::HeartRate), Some(sample(1000, 1.0)));
    }

    proptest::proptest! {
        /// Whatever order metrics come in, by reading or all at once, the states answer as
        /// a map from metric to its samples would; copies are equal and apart.
        #[test]
        fn answers_as_a_map_of_metrics_to_samples(
            ops in proptest::collection::vec((0usize..Metric::COUNT, 0i64..50, proptest::bool::ANY), 1..80),
        ) {
            use std::collections::BTreeMap;
            let mut m = Measured::default();
            let mut model: BTreeMap<usize, Vec<Sample>> = BTreeMap::new();
            for (i, (metric, ts, many)) in ops.into_iter().enumerate() {
                let metric_of = |i: usize| Metric::ALL[i];
                if many {
                    // A restore's `ensure`: this metric and the two after it.
                    let some: Vec<usize> = (metric..Metric::COUNT).take(3).collect();
                    m.ensure(some.iter().map(|&i| metric_of(i)));
                    for i in some {
                        model.entry(i).or_default();
                    }
                } else {
                    let s = sample(ts * 1000, i as f64);
                    m.insert(metric_of(metric), s, i64::MAX);
                    let w = model.entry(metric).or_default();
                    w.push(s);
                    w.sort_by_key(|x| x.ts_ms);
                }
                proptest::prop_assert_eq!(m.len(), model.len());
                let copy = m.clone();
                for (metric, state) in m.iter() {
                    let want = &model[&metric.index()];
                    proptest::prop_assert_eq!(&state.iter().collect::<Vec<_>>(), want);
                    proptest::prop_assert_eq!(m.latest(metric), want.last().copied());
                    proptest::prop_assert_eq!(copy.latest(metric), want.last().copied());
                }
                proptest::prop_assert_eq!(m.iter().map(|(metric, _)| metric.index()).collect::<Vec<_>>(), model.keys().copied().collect::<Vec<_>>());
                let scored: Vec<(Metric, Sample)> = Metric::ALL
                    .into_iter()
                    .filter(|metric| SCORED & 1 << metric.index() != 0)
                    .filter_map(|metric| Some((metric, *model.get(&metric.index())?.last()?)))
                    .collect();
                proptest::prop_assert_eq!(m.scored_latest().collect::<Vec<_>>(), scored);
                drop(copy);
            }
        }
    }

    #[test]
    fn a_metric_costs_its_state_and_no_more() {
        // Seven of them (a home patient's vitals, blood pressure and weight), five newest
        // samples and the id fill the allocator's 384-byte class; the fixed part holds
        // one pointer.
        assert_eq!(std::mem::size_of::<MetricState>(), 40);
        assert_eq!(std::mem::size_of::<Measured>(), 16);
    }
}
