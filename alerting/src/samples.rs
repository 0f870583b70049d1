//! The ring a window keeps its samples in: 8 bytes a sample while every sample is stored
//! exactly that way, 16 otherwise.
//!
//! A compact sample is one word: the milliseconds from the ring's epoch (u32, 49 days)
//! and the value in thousandths (i32). A value is stored compact only if it reads back
//! as the very same `f64` (any reading with at most three decimals, which is every vital
//! sign a device sends); the first sample that cannot be (a converted unit with more
//! decimals, a span of time past 49 days) turns the ring wide, 16 bytes a sample, for as
//! long as it holds samples. Rules read the same values either way: a threshold is never
//! judged against a rounded value.

/// One sample: a reading's event time and value (a window stores it in 8 bytes, see
/// [`Samples`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub ts_ms: i64,
    pub value: f64,
}

/// Thousandths: a compact value is `round(v * SCALE)` as an `i32`.
const SCALE: f64 = 1000.0;

/// `epoch` of a wide ring: each sample takes two words, the time and the value's bits.
const WIDE: i64 = i64::MIN;

/// Samples oldest first, in a ring of words whose length is a power of two.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    buf: Box<[u64]>,
    /// Slot of the oldest sample.
    head: u32,
    len: u32,
    /// Compact: the time that offsets count from, at or before every sample's; `WIDE`
    /// otherwise.
    epoch: i64,
}

impl Samples {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn is_wide(&self) -> bool {
        self.epoch == WIDE
    }

    /// Samples the ring holds before it must grow.
    pub fn capacity(&self) -> usize {
        if self.is_wide() {
            self.buf.len() / 2
        } else {
            self.buf.len()
        }
    }

    fn slot(&self, i: usize) -> usize {
        (self.head as usize + i) & (self.capacity() - 1)
    }

    fn read(&self, slot: usize) -> Sample {
        if self.is_wide() {
            Sample {
                ts_ms: self.buf[2 * slot] as i64,
                value: f64::from_bits(self.buf[2 * slot + 1]),
            }
        } else {
            let w = self.buf[slot];
            Sample {
                ts_ms: self.epoch + (w >> 32) as i64,
                value: from_thousandths(w as u32 as i32),
            }
        }
    }

    /// Writes `s` into `slot`; a compact ring must have been made able to hold it.
    fn write(&mut self, slot: usize, s: Sample) {
        if self.is_wide() {
            self.buf[2 * slot] = s.ts_ms as u64;
            self.buf[2 * slot + 1] = s.value.to_bits();
        } else {
            self.buf[slot] = encode(self.epoch, s).expect("made to fit");
        }
    }

    /// The sample at index `i` (oldest first).
    pub fn get(&self, i: usize) -> Option<Sample> {
        (i < self.len()).then(|| self.read(self.slot(i)))
    }

    /// The sample at index `i`; panics past the end.
    pub fn at(&self, i: usize) -> Sample {
        assert!(i < self.len(), "sample {i} of {}", self.len);
        self.read(self.slot(i))
    }

    pub fn front(&self) -> Option<Sample> {
        self.get(0)
    }

    pub fn back(&self) -> Option<Sample> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    pub fn push_back(&mut self, s: Sample) {
        // A reading like the ones before it: encoded once.
        if let Some(word) = (!self.is_wide() && !self.is_empty() && self.len() < self.capacity())
            .then(|| encode(self.epoch, s))
            .flatten()
        {
            let slot = self.slot(self.len());
            self.buf[slot] = word;
            self.len += 1;
            return;
        }
        self.fit(s);
        self.reserve(1);
        self.write(self.slot(self.len()), s);
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<Sample> {
        let s = self.front()?;
        self.head = self.slot(1) as u32;
        self.len -= 1;
        Some(s)
    }

    /// Inserts `s` at index `at`, moving the samples from there one place on.
    pub fn insert(&mut self, at: usize, s: Sample) {
        assert!(at <= self.len(), "insert at {at} of {}", self.len);
        self.fit(s);
        self.reserve(1);
        for i in (at..self.len()).rev() {
            let moved = self.read(self.slot(i));
            self.write(self.slot(i + 1), moved);
        }
        self.write(self.slot(at), s);
        self.len += 1;
    }

    /// Room for `additional` more samples without growing.
    pub fn reserve(&mut self, additional: usize) {
        if self.len() + additional > self.capacity() {
            self.rebuild(self.len() + additional, self.epoch);
        }
    }

    /// The index of the first sample for which `before` is false (all those for which it
    /// is true come first).
    pub fn partition_point(&self, mut before: impl FnMut(Sample) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(self.at(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The samples from index `from` to the newest.
    pub fn range(&self, from: usize) -> Iter<'_> {
        Iter {
            samples: self,
            next: from.min(self.len()),
            end: self.len(),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        self.range(0)
    }

    /// Makes the ring able to hold `s`: the epoch moves back when `s` is older than it or
    /// forward when `s` is too far past it (and the span held allows), or the ring turns
    /// wide.
    fn fit(&mut self, s: Sample) {
        if self.is_wide() {
            return;
        }
        if self.is_empty() {
            self.epoch = s.ts_ms;
        }
        if encode(self.epoch, s).is_some() {
            return;
        }
        // Windows hold samples in time order, but the ring does not count on it.
        let (oldest, newest) = self.iter().fold((s.ts_ms, s.ts_ms), |(lo, hi), x| {
            (lo.min(x.ts_ms), hi.max(x.ts_ms))
        });
        let span_fits = newest
            .checked_sub(oldest)
            .is_some_and(|d| u32::try_from(d).is_ok());
        // Empty, at its own time: only the value can be what does not fit. As many
        // samples as before either way: room reserved stays reserved.
        let epoch = if span_fits && encode(oldest, s).is_some() {
            oldest
        } else {
            WIDE
        };
        self.rebuild(self.capacity(), epoch);
    }

    /// Moves the samples into a ring of at least `slots` slots (a power of two, at least
    /// 4), oldest at slot 0, counting times from `epoch` (`WIDE`: two words a sample).
    fn rebuild(&mut self, slots: usize, epoch: i64) {
        let held: Vec<Sample> = self.iter().collect();
        let slots = slots.max(held.len()).next_power_of_two().max(4);
        self.epoch = epoch;
        let words = if self.is_wide() { 2 * slots } else { slots };
        self.buf = vec![0; words].into_boxed_slice();
        self.head = 0;
        for (i, x) in held.into_iter().enumerate() {
            self.write(i, x);
        }
    }
}

/// `s` as a compact word counted from `epoch`, if it reads back exactly.
fn encode(epoch: i64, s: Sample) -> Option<u64> {
    let offset = u32::try_from(s.ts_ms.checked_sub(epoch)?).ok()?;
    let value = thousandths(s.value)?;
    Some(u64::from(offset) << 32 | u64::from(value as u32))
}

/// `v` in thousandths, if [`from_thousandths`] gives back exactly `v` (-0.0 reads back as
/// 0.0, which compares equal to it).
pub fn thousandths(v: f64) -> Option<i32> {
    let scaled = v * SCALE;
    // Also false for NaN.
    if !(scaled > f64::from(i32::MIN) && scaled < f64::from(i32::MAX)) {
        return None;
    }
    // Rounded half away from zero without a libm call: should the addition round the
    // wrong way, the check below says no, which costs bytes, not values.
    let scaled = (scaled + 0.5f64.copysign(scaled)) as i32;
    (from_thousandths(scaled) == v).then_some(scaled)
}

/// The value `t` thousandths stand for: the double nearest to it, which is what reading
/// the decimal would give.
pub fn from_thousandths(t: i32) -> f64 {
    f64::from(t) / SCALE
}

/// Samples of a ring in order, by value.
#[derive(Clone)]
pub struct Iter<'a> {
    samples: &'a Samples,
    next: usize,
    end: usize,
}

impl Iterator for Iter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.samples.read(self.samples.slot(self.next - 1))
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Sample> {
        (self.next < self.end).then(|| {
            self.end -= 1;
            self.samples.read(self.samples.slot(self.end))
        })
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn s(ts_ms: i64, value: f64) -> Sample {
        Sample { ts_ms, value }
    }

    #[test]
    fn readings_with_three_decimals_take_one_word_and_read_back_exactly() {
        let mut r = Samples::default();
        for (i, v) in [72.0, 36.85, 97.0, -0.125, 81.004, 2_000_000.5]
            .into_iter()
            .enumerate()
        {
            r.push_back(s(1_763_892_000_000 + i as i64 * 60_000, v));
        }
        assert!(!r.is_wide());
        assert_eq!(
            r.iter().map(|x| x.value).collect::<Vec<_>>(),
            [72.0, 36.85, 97.0, -0.125, 81.004, 2_000_000.5]
        );
        assert_eq!(
            r.buf.len() * 8,
            8 * 8,
            "six samples in a ring of eight words"
        );
    }

    #[test]
    fn a_value_with_more_decimals_turns_the_ring_wide_without_changing_any_value() {
        let mut r = Samples::default();
        r.push_back(s(0, 80.5));
        let pounds = 180.0 * 0.453_592_37;
        r.push_back(s(1, pounds));
        assert!(r.is_wide());
        assert_eq!(r.iter().collect::<Vec<_>>(), [s(0, 80.5), s(1, pounds)]);
        for v in [f64::NAN, f64::INFINITY, 3e9] {
            let mut r = Samples::default();
            r.push_back(s(0, v));
            assert!(r.is_wide());
            assert_eq!(r.back().unwrap().value.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn the_epoch_follows_the_samples_and_a_span_past_49_days_turns_wide() {
        let day = 86_400_000;
        let mut r = Samples::default();
        r.push_back(s(100 * day, 1.0));
        // Late, before the epoch: the epoch moves back.
        r.insert(0, s(99 * day, 2.0));
        assert!(!r.is_wide());
        // A window that slides for months: the epoch moves forward as old samples go.
        for d in 101..300 {
            r.push_back(s(d * day, 3.0));
            while r.front().unwrap().ts_ms < (d - 7) * day {
                r.pop_front();
            }
        }
        assert!(!r.is_wide());
        assert_eq!(r.front().unwrap().ts_ms, 292 * day);
        // Sixty days held: wide.
        r.push_back(s(352 * day, 4.0));
        assert!(r.is_wide());
        assert_eq!(r.back(), Some(s(352 * day, 4.0)));
        assert_eq!(r.front(), Some(s(292 * day, 3.0)));
    }

    proptest! {
        /// The ring behaves as a `VecDeque` of samples, whatever it is sent: times within
        /// and past 49 days of each other, values with three decimals and with more.
        #[test]
        fn matches_a_vecdeque(
            ops in proptest::collection::vec((0u8..4, -1_000_000_000i64..6_000_000_000, prop_oneof![(-5000i32..5000).prop_map(|m| f64::from(m) / 1000.0), -1e3f64..1e3], 0usize..64), 1..200),
        ) {
            let mut ring = Samples::default();
            let mut model: VecDeque<Sample> = VecDeque::new();
            for (op, ts, v, at) in ops {
                match op {
                    0 | 1 => {
                        ring.push_back(s(ts, v));
                        model.push_back(s(ts, v));
                    }
                    2 => {
                        let at = at.min(model.len());
                        ring.insert(at, s(ts, v));
                        model.insert(at, s(ts, v));
                    }
                    _ => prop_assert_eq!(ring.pop_front(), model.pop_front()),
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert!(ring.capacity() >= ring.len());
                let got: Vec<Sample> = ring.iter().collect();
                prop_assert_eq!(&got, &model.iter().copied().collect::<Vec<_>>());
                let back: Vec<Sample> = ring.iter().rev().collect();
                prop_assert_eq!(back, model.iter().rev().copied().collect::<Vec<_>>());
                for (i, x) in model.iter().enumerate() {
                    prop_assert_eq!(ring.get(i), Some(*x));
                    prop_assert_eq!(ring.range(i).count(), model.len() - i);
                }
                prop_assert_eq!(ring.get(model.len()), None);
            }
        }
    }
}
