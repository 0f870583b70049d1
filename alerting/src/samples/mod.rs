//! The ring a window keeps its samples in: 4 bytes a sample for what devices usually
//! send, 8 or 16 bytes for what does not fit; the first one or two in the ring's header.
//!
//! Every sample is stored in one of four forms, the narrowest that holds every sample of
//! the ring exactly:
//! - narrow (4 bytes): whole seconds, or whole minutes, from the ring's epoch (u16: 18
//!   hours, or 45 days) and the value in tenths (i16: ±3 276.7) — a vital sign or a
//!   weight as a device sends it, at a device's cadence;
//! - compact (8 bytes): milliseconds from the epoch (u32, 49 days) and the value in
//!   thousandths (i32);
//! - wide (16 bytes): the time and the value's bits, for anything else (a converted unit
//!   with many decimals, NaN, months of span).
//!
//! A value is stored narrow or compact only if it reads back as the very same `f64`:
//! rules read the same values in every form, and a threshold is never judged against a
//! rounded value. The first sample that does not fit the ring's form (a time past its
//! span, or before its epoch, a value with more decimals) moves the epoch or widens the
//! form, re-encoding the ring once; an emptied ring starts narrow again.

mod words;

use words::{Buf, Size, Words};

/// One sample: a reading's event time and value (a window stores it in 4 to 16 bytes,
/// see [`Samples`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub ts_ms: i64,
    pub value: f64,
}

/// Thousandths: a compact value is `round(v * SCALE)` as an `i32`.
const SCALE: f64 = 1000.0;

/// Most samples a ring holds: a window holds far fewer. The words of a ring this size in
/// the wide form, `1 << 16`, are the most a [`Shape`] counts.
pub const MAX_RING: usize = 1 << 14;

/// How a ring stores its samples, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Form {
    /// One u32: seconds from the epoch (u16) and tenths (i16).
    #[default]
    Seconds,
    /// One u32: minutes from the epoch (u16) and tenths (i16).
    Minutes,
    /// Two u32: milliseconds from the epoch and thousandths.
    Compact,
    /// Four u32: the time and the value's bits.
    Wide,
}

impl Form {
    const ALL: [Form; 4] = [Form::Seconds, Form::Minutes, Form::Compact, Form::Wide];

    /// log2 of the u32 words a sample takes.
    fn shift(self) -> u32 {
        match self {
            Form::Seconds | Form::Minutes => 0,
            Form::Compact => 1,
            Form::Wide => 2,
        }
    }

    fn unit_ms(self) -> i64 {
        match self {
            Form::Minutes => 60_000,
            _ => 1000,
        }
    }

    /// `s` as words counted from `epoch`, if it reads back exactly.
    #[inline]
    fn encode(self, epoch: i64, s: Sample) -> Option<[u32; 4]> {
        match self {
            Form::Seconds | Form::Minutes => {
                let unit = self.unit_ms();
                let offset = s.ts_ms.checked_sub(epoch)?;
                if offset % unit != 0 {
                    return None;
                }
                let offset = u16::try_from(offset / unit).ok()?;
                let value = tenths(s.value)?;
                Some([u32::from(offset) << 16 | u32::from(value as u16), 0, 0, 0])
            }
            Form::Compact => {
                let offset = u32::try_from(s.ts_ms.checked_sub(epoch)?).ok()?;
                Some([offset, thousandths(s.value)? as u32, 0, 0])
            }
            Form::Wide => {
                let (t, v) = (s.ts_ms as u64, s.value.to_bits());
                Some([t as u32, (t >> 32) as u32, v as u32, (v >> 32) as u32])
            }
        }
    }

    #[inline]
    fn decode(self, epoch: i64, w: &[u32]) -> Sample {
        let ts_ms = self.time(epoch, w);
        match self {
            Form::Seconds | Form::Minutes => Sample {
                ts_ms,
                value: from_tenths(w[0] as u16 as i16),
            },
            Form::Compact => Sample {
                ts_ms,
                value: from_thousandths(w[1] as i32),
            },
            Form::Wide => Sample {
                ts_ms,
                value: f64::from_bits(u64::from(w[3]) << 32 | u64::from(w[2])),
            },
        }
    }

    /// The time alone: searches and trims read only times, and a value costs a division.
    #[inline]
    fn time(self, epoch: i64, w: &[u32]) -> i64 {
        match self {
            Form::Seconds | Form::Minutes => epoch + i64::from(w[0] >> 16) * self.unit_ms(),
            Form::Compact => epoch + i64::from(w[0]),
            Form::Wide => (u64::from(w[1]) << 32 | u64::from(w[0])) as i64,
        }
    }
}

/// A ring's times ([`Samples::times`]).
#[derive(Clone, Copy)]
pub struct Times<'a> {
    buf: &'a [u32],
    head: usize,
    len: usize,
    form: Form,
    epoch: i64,
}

impl Times<'_> {
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The time of the sample at index `i`; panics past the end.
    #[inline(always)]
    pub fn at(&self, i: usize) -> i64 {
        self.form.time(self.epoch, self.words(i))
    }

    /// The words of the sample at index `i` on; panics past the end.
    #[inline(always)]
    fn words(&self, i: usize) -> &[u32] {
        assert!(i < self.len, "sample {i} of {}", self.len);
        let shift = self.form.shift();
        // The ring's capacity is a power of two.
        let slot = (self.head + i) & ((self.buf.len() >> shift) - 1);
        &self.buf[slot << shift..]
    }
}

/// Writes a sample's `words` into `slot` of a ring of `1 << shift` words a slot.
#[inline]
fn store(buf: &mut [u32], slot: usize, shift: u32, words: [u32; 4]) {
    buf[slot << shift..(slot + 1) << shift].copy_from_slice(&words[..1 << shift]);
}

/// A ring's form, its number of words and its epoch's milliseconds in 16 bits (a ring is
/// in every metric a patient measures, and these fit in what one byte each would leave
/// as padding): the form in bits 0–1, log2 of the words less one in bits 2–5 (2 to
/// `1 << 16` words), the milliseconds in bits 6–15.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape(u16);

impl Shape {
    const EMPTY: Shape = Shape::new(Form::Seconds, Size::INLINE, 0);

    const fn new(form: Form, size: Size, epoch_ms: u16) -> Shape {
        Shape(form as u16 | (size.log2() as u16 - 1) << 2 | epoch_ms << 6)
    }

    #[inline]
    fn form(self) -> Form {
        Form::ALL[usize::from(self.0 & 3)]
    }

    #[inline]
    fn size(self) -> Size {
        Size::from_log2((self.0 >> 2 & 15) as u8 + 1)
    }

    /// The milliseconds past the epoch's second.
    #[inline]
    fn epoch_ms(self) -> u16 {
        self.0 >> 6
    }

    fn with_form(self, form: Form) -> Shape {
        Shape::new(form, self.size(), self.epoch_ms())
    }

    fn with_size(self, size: Size) -> Shape {
        Shape::new(self.form(), size, self.epoch_ms())
    }

    fn with_epoch_ms(self, epoch_ms: u16) -> Shape {
        Shape::new(self.form(), self.size(), epoch_ms)
    }
}

// The most words a ring has: `MAX_RING` wide samples, log2 16, 15 in four bits.
const _: () = assert!(MAX_RING << 2 == 1 << 16);

/// Samples oldest first, in a ring of slots whose number is a power of two. 20 bytes,
/// aligned to four (a window packs its own fields after them).
pub struct Samples {
    /// `capacity << form.shift()` words: the first one or two samples in place (the first
    /// readings of a metric allocate nothing, and a metric measured once a week with a
    /// week kept never does), on the heap beyond. The shape says how many.
    words: Words,
    /// The epoch, the time that offsets count from, at or before every sample's (unused
    /// when wide): its whole seconds from 1970 here, its milliseconds in the shape. Until
    /// 2106; a ring whose samples are not all within that is wide.
    epoch_s: u32,
    /// Slot of the oldest sample.
    head: u16,
    len: u16,
    /// Samples inserted since [`Samples::mark_written`] (saturating): what a window's next
    /// snapshot delta holds.
    unwritten: u16,
    shape: Shape,
}

impl Default for Samples {
    fn default() -> Samples {
        Samples {
            words: Words::default(),
            epoch_s: 0,
            head: 0,
            len: 0,
            unwritten: 0,
            shape: Shape::EMPTY,
        }
    }
}

impl Drop for Samples {
    fn drop(&mut self) {
        drop(self.take_buf());
    }
}

impl Clone for Samples {
    fn clone(&self) -> Samples {
        let (words, size) = Buf::copy_of(self.buf()).into_parts();
        Samples {
            words,
            shape: self.shape.with_size(size),
            ..*self
        }
    }
}

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Samples {
    #[inline]
    fn buf(&self) -> &[u32] {
        // SAFETY: `words` and `size` are only ever set together, from one `Buf`
        // (`set_buf`, `take_buf`).
        unsafe { self.words.slice(self.shape.size()) }
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u32] {
        // SAFETY: as in `buf`.
        unsafe { self.words.slice_mut(self.shape.size()) }
    }

    /// The ring's words as an owned buffer, leaving two empty words in place.
    fn take_buf(&mut self) -> Buf {
        let words = std::mem::take(&mut self.words);
        let size = self.shape.size();
        self.shape = self.shape.with_size(Size::INLINE);
        // SAFETY: as in `buf`; the ring holds empty words in place now.
        unsafe { words.into_buf(size) }
    }

    /// Stores `buf` as the ring's words, freeing the old ones.
    fn set_buf(&mut self, buf: Buf) {
        drop(self.take_buf());
        let (words, size) = buf.into_parts();
        self.words = words;
        self.shape = self.shape.with_size(size);
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Counts `n` samples inserted (see [`Samples::unwritten`]).
    #[inline]
    pub fn note_inserted(&mut self, n: usize) {
        self.unwritten = u16::try_from(usize::from(self.unwritten) + n).unwrap_or(u16::MAX);
    }

    /// Samples inserted since [`Samples::mark_written`] (saturating: more than a ring holds
    /// means all of them).
    pub fn unwritten(&self) -> usize {
        usize::from(self.unwritten)
    }

    /// From now on, count insertions from zero.
    pub fn mark_written(&mut self) {
        self.unwritten = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples the ring holds before it must grow.
    pub fn capacity(&self) -> usize {
        self.buf().len() >> self.form().shift()
    }

    /// Bytes a sample takes in this ring.
    pub fn sample_bytes(&self) -> usize {
        4 << self.form().shift()
    }

    fn slot(&self, i: usize) -> usize {
        (usize::from(self.head) + i) & (self.capacity() - 1)
    }

    /// The words of `slot`.
    #[inline]
    fn slot_words(&self, slot: usize) -> &[u32] {
        let shift = self.form().shift();
        &self.buf()[slot << shift..(slot + 1) << shift]
    }

    #[inline]
    fn form(&self) -> Form {
        self.shape.form()
    }

    /// The epoch in milliseconds.
    #[inline]
    fn epoch_ms(&self) -> i64 {
        i64::from(self.epoch_s) * 1000 + i64::from(self.shape.epoch_ms())
    }

    /// Counts offsets from `ms` on (see [`epoch_at_or_before`]).
    fn set_epoch(&mut self, ms: i64) {
        let (s, ms) = epoch_at_or_before(ms);
        self.epoch_s = s;
        self.shape = self.shape.with_epoch_ms(ms);
    }

    #[inline]
    fn read(&self, slot: usize) -> Sample {
        self.form().decode(self.epoch_ms(), self.slot_words(slot))
    }

    #[inline]
    fn store(&mut self, slot: usize, words: [u32; 4]) {
        let shift = self.form().shift();
        store(self.buf_mut(), slot, shift, words);
    }

    /// Writes `s` into `slot`; the ring must have been made able to hold it.
    fn write(&mut self, slot: usize, s: Sample) {
        let words = self.form().encode(self.epoch_ms(), s).expect("made to fit");
        self.store(slot, words);
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

    /// The time of the sample at index `i`, if there is one (without decoding its value).
    #[inline]
    pub fn time(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| self.times().at(i))
    }

    /// The time of the sample at index `i`; panics past the end.
    #[inline]
    pub fn time_at(&self, i: usize) -> i64 {
        self.times().at(i)
    }

    /// The time of the newest sample.
    #[inline(always)]
    pub fn back_time(&self) -> Option<i64> {
        self.len().checked_sub(1).and_then(|i| self.time(i))
    }

    /// Starts loading the sample at index `i`, if there is one ([`crate::prefetch`]).
    pub fn prefetch(&self, i: usize) {
        if i < self.len() {
            crate::prefetch::prefetch(self.slot_words(self.slot(i)));
        }
    }

    /// Starts loading the oldest and the newest sample, if any: the ring's buffer and
    /// form looked up once for both ([`Samples::times`]).
    #[inline]
    pub fn prefetch_ends(&self) {
        let times = self.times();
        if let Some(last) = times.len().checked_sub(1) {
            crate::prefetch::prefetch(times.words(0));
            crate::prefetch::prefetch(times.words(last));
        }
    }

    pub fn front(&self) -> Option<Sample> {
        self.get(0)
    }

    pub fn back(&self) -> Option<Sample> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// `s` as the ring reads it back once it holds it, without reading it: the very
    /// sample, but for a zero's sign, which only the wide form keeps (every other form
    /// holds a value only if it reads back equal to it, and only zeros of two signs
    /// compare equal). A reading's newest sample is read by every rule: this spares
    /// decoding it again (a division).
    #[inline]
    pub fn as_stored(&self, s: Sample) -> Sample {
        match self.form() {
            Form::Wide => s,
            // -0.0 + 0.0 is 0.0; every other value is itself.
            _ => Sample {
                value: s.value + 0.0,
                ..s
            },
        }
    }

    #[inline]
    pub fn push_back(&mut self, s: Sample) {
        // A reading like the ones before it: encoded once.
        if let Some(words) = (!self.is_empty() && self.len() < self.capacity())
            .then(|| self.form().encode(self.epoch_ms(), s))
            .flatten()
        {
            self.store(self.slot(self.len()), words);
            self.len += 1;
            return;
        }
        self.push_back_refit(s);
    }

    /// [`Samples::push_back`] of a sample the ring must first be made able to hold (a new
    /// form, epoch or capacity).
    #[inline(never)]
    fn push_back_refit(&mut self, s: Sample) {
        self.fit(s);
        self.reserve(1);
        self.write(self.slot(self.len()), s);
        self.len += 1;
    }

    /// Replaces what the ring holds with `samples` (oldest first, at most [`MAX_RING`]),
    /// in the narrowest form that holds them all and one allocation: a window refilled
    /// from a snapshot, without fitting and encoding sample by sample.
    pub fn fill(&mut self, samples: &[Sample]) {
        assert!(
            samples.len() <= MAX_RING,
            "a ring holds at most {MAX_RING} samples"
        );
        let epoch = epoch_ms(samples.iter().map(|x| x.ts_ms).min().unwrap_or(0));
        for form in Form::ALL {
            let shift = form.shift();
            let mut buf = Buf::zeroed(samples.len(), shift);
            let fits = samples.iter().enumerate().all(|(i, &x)| {
                form.encode(epoch, x)
                    .map(|words| store(&mut buf, i, shift, words))
                    .is_some()
            });
            if fits {
                self.set_buf(buf);
                self.shape = self.shape.with_form(form);
                self.set_epoch(epoch);
                self.head = 0;
                self.len = samples.len() as u16;
                return;
            }
        }
        unreachable!("the wide form holds every sample");
    }

    /// Drops the `n` oldest samples (all of them, if there are fewer), without reading
    /// them (a value costs a division).
    pub fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len());
        self.head = self.slot(n) as u16;
        self.len -= n as u16;
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

    /// Room for `additional` more samples without growing. Panics past [`MAX_RING`].
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len() + additional;
        assert!(need <= MAX_RING, "a ring holds at most {MAX_RING} samples");
        if need > self.capacity() {
            self.rebuild(need, self.form(), self.epoch_ms());
        }
    }

    /// The samples' times, for reading several (a trim, a search): the ring's form, epoch
    /// and buffer are looked up once, not once a sample. Every time read by index goes
    /// through it.
    #[inline]
    pub fn times(&self) -> Times<'_> {
        Times {
            buf: self.buf(),
            head: usize::from(self.head),
            len: self.len(),
            form: self.form(),
            epoch: self.epoch_ms(),
        }
    }

    /// The index of the first sample for whose time `before` is false (all those for
    /// which it is true come first).
    pub fn partition_point(&self, mut before: impl FnMut(i64) -> bool) -> usize {
        let times = self.times();
        let (mut lo, mut hi) = (0, times.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if before(times.at(mid)) {
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

    /// Makes the ring able to hold `s`: in the narrowest form that holds it and every
    /// sample held, counted from the oldest of them (the epoch moves back when `s` is
    /// older than it, forward when `s` is past the form's span).
    fn fit(&mut self, s: Sample) {
        let held = || self.iter().chain(std::iter::once(s));
        if !self.is_empty() && self.form().encode(self.epoch_ms(), s).is_some() {
            return;
        }
        // Windows hold samples in time order, but the ring does not count on it.
        let epoch = epoch_ms(held().map(|x| x.ts_ms).min().unwrap_or(s.ts_ms));
        let form = Form::ALL
            .into_iter()
            .find(|f| held().all(|x| f.encode(epoch, x).is_some()))
            .unwrap_or(Form::Wide);
        if self.is_empty() && form == self.form() {
            self.set_epoch(epoch);
        } else {
            // As many slots as before: room reserved stays reserved.
            self.rebuild(self.capacity(), form, epoch);
        }
    }

    /// Moves the samples into a ring of at least `slots` slots (see [`Buf::zeroed`]),
    /// oldest at slot 0, stored in `form` counted from `epoch`.
    fn rebuild(&mut self, slots: usize, form: Form, epoch: i64) {
        let held: Vec<Sample> = self.iter().collect();
        self.shape = self.shape.with_form(form);
        self.set_epoch(epoch);
        self.set_buf(Buf::zeroed(slots.max(held.len()), form.shift()));
        self.head = 0;
        for (i, x) in held.into_iter().enumerate() {
            self.write(i, x);
        }
    }
}

/// The epoch for samples from `ms` on, in whole seconds and milliseconds: `ms` itself as
/// far as 32-bit seconds from 1970 reach, the nearest end outside (a sample before 1970
/// is before an epoch of 0, and wide).
fn epoch_at_or_before(ms: i64) -> (u32, u16) {
    let ms = ms.clamp(0, i64::from(u32::MAX) * 1000 + 999);
    ((ms / 1000) as u32, (ms % 1000) as u16)
}

/// The epoch a ring would keep for samples from `ms` on, in milliseconds.
fn epoch_ms(ms: i64) -> i64 {
    let (s, ms) = epoch_at_or_before(ms);
    i64::from(s) * 1000 + i64::from(ms)
}

/// `v` in tenths, if [`from_tenths`] gives back exactly `v` (-0.0 as 0.0, see
/// [`thousandths`]).
fn tenths(v: f64) -> Option<i16> {
    let scaled = v * 10.0;
    // Also false for NaN.
    if !(scaled >= f64::from(i16::MIN) && scaled <= f64::from(i16::MAX)) {
        return None;
    }
    let scaled = (scaled + 0.5f64.copysign(scaled)) as i16;
    (from_tenths(scaled) == v).then_some(scaled)
}

fn from_tenths(t: i16) -> f64 {
    f64::from(t) / 10.0
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

    fn form(r: &Samples) -> Form {
        r.form()
    }

    #[test]
    fn a_shape_gives_back_its_form_size_and_milliseconds() {
        for form in Form::ALL {
            for log2 in 1..=16 {
                for ms in [0, 1, 123, 999] {
                    let shape = Shape::new(form, Size::from_log2(log2), ms);
                    assert_eq!(
                        (shape.form(), shape.size(), shape.epoch_ms()),
                        (form, Size::from_log2(log2), ms)
                    );
                    assert_eq!(shape.with_form(Form::Wide).form(), Form::Wide);
                    assert_eq!(shape.with_size(Size::INLINE).epoch_ms(), ms);
                    assert_eq!(shape.with_epoch_ms(7).size(), Size::from_log2(log2));
                }
            }
        }
    }

    #[test]
    fn dropping_from_the_front_drops_that_many_or_all() {
        let mut r = Samples::default();
        for n in 0..5i64 {
            r.push_back(s(n * 1000, 72.0));
        }
        r.drop_front(2);
        assert_eq!(
            r.iter().map(|x| x.ts_ms).collect::<Vec<_>>(),
            [2000, 3000, 4000]
        );
        r.drop_front(10);
        assert!(r.is_empty());
        r.drop_front(1);
        assert!(r.is_empty());
        r.push_back(s(5000, 72.0));
        assert_eq!(r.iter().map(|x| x.ts_ms).collect::<Vec<_>>(), [5000]);
    }

    #[test]
    fn prefetching_the_ends_changes_nothing_at_any_length_and_form() {
        for value in [72.0, 72.125, f64::MAX] {
            let mut r = Samples::default();
            r.prefetch_ends();
            for n in 1..=70i64 {
                r.push_back(s(n * 60_000, value));
                if n % 5 == 0 {
                    // A ring that has wrapped: its head is past slot 0.
                    r.drop_front(1);
                }
                let before: Vec<Sample> = r.iter().collect();
                r.prefetch_ends();
                assert_eq!(r.iter().collect::<Vec<_>>(), before, "{value} {n}");
            }
        }
    }

    #[test]
    fn times_outside_32_bit_seconds_read_back_exactly() {
        let end = i64::from(u32::MAX) * 1000;
        for (times, held) in [
            // Before an epoch of 0.
            ([-2_000, -1_000], Form::Wide),
            ([i64::MIN + 1, 0], Form::Wide),
            // The last millisecond 32-bit seconds reach is an epoch still; past it,
            // offsets count from it.
            ([end + 999, end + 1_999], Form::Seconds),
            ([end + 1_000, end + 2_000], Form::Compact),
            ([end + 1_000, i64::MAX], Form::Wide),
        ] {
            let mut r = Samples::default();
            for ts in times {
                r.push_back(s(ts, 72.0));
            }
            assert_eq!(form(&r), held, "{times:?}");
            assert_eq!(r.iter().map(|x| x.ts_ms).collect::<Vec<_>>(), times);
        }
    }

    #[test]
    fn a_sample_reads_back_as_stored_zeros_sign_and_all() {
        let bits = |x: Sample| (x.ts_ms, x.value.to_bits());
        // Negative zero after a narrow, a compact and a wide sample.
        for first in [72.0, 36.85, 1.0 / 3.0] {
            let mut r = Samples::default();
            r.push_back(s(1_000, first));
            for x in [s(2_000, -0.0), s(3_000, 0.0), s(4_000, first)] {
                r.push_back(x);
                assert_eq!(r.back().map(bits), Some(bits(r.as_stored(x))), "{first}");
            }
            let zero = r.get(1).expect("two samples").value;
            assert_eq!(zero.is_sign_negative(), form(&r) == Form::Wide, "{first}");
        }
    }

    #[test]
    fn the_first_samples_of_a_ring_are_kept_in_place() {
        assert_eq!(std::mem::size_of::<Samples>(), 20);
        assert_eq!(std::mem::align_of::<Samples>(), 4);
        let in_place = |r: &Samples| r.shape.size() == Size::INLINE;
        let mut r = Samples::default();
        r.push_back(s(1_000, 72.0));
        r.push_back(s(2_000, 73.0));
        assert!(in_place(&r), "two narrow samples");
        r.push_back(s(3_000, 74.0));
        assert!(!in_place(&r));
        assert_eq!(
            r.iter().map(|x| x.value).collect::<Vec<_>>(),
            [72.0, 73.0, 74.0]
        );
        // One compact sample fits; a second one does not.
        let mut c = Samples::default();
        c.push_back(s(1_001, 36.85));
        assert_eq!((form(&c), c.len()), (Form::Compact, 1));
        c.fill(&[s(1_001, 36.85)]);
        assert!(in_place(&c));
        c.push_back(s(2_001, 36.95));
        assert!(!in_place(&c));
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [s(1_001, 36.85), s(2_001, 36.95)]
        );
        // A wide sample never fits in place.
        let mut w = Samples::default();
        w.push_back(s(1, f64::NAN.copysign(1.0)));
        assert!(!in_place(&w));
        assert_eq!(form(&w), Form::Wide);
    }

    #[test]
    fn a_filled_ring_holds_what_one_pushed_to_holds() {
        let minute = |i: i64, v: f64| s(1_763_892_000_000 + i * 60_000, v);
        let cases: [(Vec<Sample>, Form); 4] = [
            (
                (0..60).map(|i| minute(i, 72.0 + i as f64)).collect(),
                Form::Seconds,
            ),
            ((0..2000).map(|i| minute(i, 80.5)).collect(), Form::Minutes),
            ((0..5).map(|i| minute(i, 36.85)).collect(), Form::Compact),
            ((0..5).map(|i| minute(i, 1.0 / 3.0)).collect(), Form::Wide),
        ];
        for (samples, want) in cases {
            let mut filled = Samples::default();
            filled.fill(&samples);
            let mut pushed = Samples::default();
            for &x in &samples {
                pushed.push_back(x);
            }
            assert_eq!(form(&filled), want);
            assert_eq!(form(&filled), form(&pushed));
            assert_eq!(filled.iter().collect::<Vec<_>>(), samples);
            assert_eq!(filled.capacity(), pushed.capacity());
            // It goes on as any ring.
            filled.push_back(minute(9999, 1.5));
            assert_eq!(filled.back(), Some(minute(9999, 1.5)));
        }
        let mut empty = Samples::default();
        empty.fill(&[]);
        assert!(empty.is_empty());
    }

    #[test]
    fn readings_as_devices_send_them_take_four_bytes_and_read_back_exactly() {
        let values = [72.0, 36.8, 97.0, -0.5, 81.0, 3276.7];
        let mut r = Samples::default();
        for (i, v) in values.into_iter().enumerate() {
            r.push_back(s(1_763_892_000_123 + i as i64 * 60_000, v));
        }
        assert_eq!(form(&r), Form::Seconds);
        assert_eq!(r.iter().map(|x| x.value).collect::<Vec<_>>(), values);
        assert_eq!(
            r.buf().len() * 4,
            8 * 4,
            "six samples in a ring of eight words"
        );
        assert_eq!(r.sample_bytes(), 4);
    }

    #[test]
    fn thousandths_or_milliseconds_take_eight_bytes() {
        for (second, value) in [
            (60_000, 36.85),
            (60_000, 81.004),
            (60_500, 72.0),
            (0, 4000.0),
        ] {
            let mut r = Samples::default();
            r.push_back(s(0, 72.0));
            r.push_back(s(second, value));
            assert_eq!(form(&r), Form::Compact, "{second} ms, {value}");
            assert_eq!(r.iter().collect::<Vec<_>>(), [s(0, 72.0), s(second, value)]);
        }
    }

    #[test]
    fn a_value_with_more_decimals_turns_the_ring_wide_without_changing_any_value() {
        let mut r = Samples::default();
        r.push_back(s(0, 80.5));
        let pounds = 180.0 * 0.453_592_37;
        r.push_back(s(1, pounds));
        assert_eq!(form(&r), Form::Wide);
        assert_eq!(r.iter().collect::<Vec<_>>(), [s(0, 80.5), s(1, pounds)]);
        for v in [f64::NAN, f64::INFINITY, 3e9] {
            let mut r = Samples::default();
            r.push_back(s(-5, v));
            assert_eq!(r.back().unwrap().value.to_bits(), v.to_bits());
            assert_eq!(r.back().unwrap().ts_ms, -5);
        }
        // Emptied, a ring starts narrow again.
        r.drop_front(1);
        r.drop_front(1);
        r.push_back(s(7_000, 80.5));
        assert_eq!(form(&r), Form::Seconds);
        assert_eq!(r.back(), Some(s(7_000, 80.5)));
    }

    #[test]
    fn the_epoch_follows_the_samples_and_the_form_widens_with_the_span() {
        let day = 86_400_000;
        let mut r = Samples::default();
        r.push_back(s(100 * day, 1.0));
        // Late, before the epoch: the epoch moves back.
        r.insert(0, s(99 * day, 2.0));
        assert_eq!(form(&r), Form::Minutes, "a day is past 18 hours of seconds");
        // A window that slides for months: the epoch moves forward as old samples go.
        for d in 101..300 {
            r.push_back(s(d * day, 3.0));
            while r.front().unwrap().ts_ms < (d - 7) * day {
                r.drop_front(1);
            }
        }
        assert_eq!(form(&r), Form::Minutes);
        assert_eq!(r.front().unwrap().ts_ms, 292 * day);
        // Forty-eight days held: milliseconds; sixty: wide.
        r.push_back(s(340 * day, 4.0));
        assert_eq!(form(&r), Form::Compact);
        r.push_back(s(352 * day, 4.0));
        assert_eq!(form(&r), Form::Wide);
        assert_eq!(r.back(), Some(s(352 * day, 4.0)));
        assert_eq!(r.front(), Some(s(292 * day, 3.0)));
    }

    #[test]
    fn an_hour_at_one_hertz_slides_for_days_in_four_bytes_a_sample() {
        let mut r = Samples::default();
        for t in 0..3 * 86_400i64 {
            r.push_back(s(t * 1000, 60.0 + (t % 40) as f64 / 10.0));
            if r.len() > 3600 {
                r.drop_front(1);
            }
        }
        assert_eq!(form(&r), Form::Seconds);
        assert_eq!(r.capacity(), 4096);
        assert_eq!(
            r.back(),
            Some(s((3 * 86_400 - 1) * 1000, 60.0 + 39.0 / 10.0))
        );
        assert_eq!(r.len(), 3600);
    }

    /// Times that fit each form, and times past every span.
    fn times() -> impl Strategy<Value = i64> {
        prop_oneof![
            (0i64..100_000).prop_map(|t| t * 1000),
            (0i64..100_000).prop_map(|t| t * 60_000),
            -1_000_000_000i64..6_000_000_000,
            // Whole seconds past a millisecond phase, as a device counting from its
            // first reading's time stamps them.
            (0i64..100_000).prop_map(|t| 1_763_892_000_123 + t * 1000),
            // Where 32-bit seconds from 1970 end, and the ends of time.
            (-5_000_000_000i64..5_000_000_000).prop_map(|t| i64::from(u32::MAX) * 1000 + t),
            Just(i64::MIN + 1),
            Just(i64::MAX),
        ]
    }

    proptest! {
        /// The ring behaves as a `VecDeque` of samples, whatever it is sent: times in
        /// whole seconds and minutes, within and past every form's span, values in
        /// tenths, with three decimals and with more.
        #[test]
        fn matches_a_vecdeque(
            ops in proptest::collection::vec((0u8..4, times(), prop_oneof![(-400i32..400).prop_map(|m| f64::from(m) / 10.0), (-5000i32..5000).prop_map(|m| f64::from(m) / 1000.0), -1e3f64..1e3], 0usize..64), 1..200),
        ) {
            let mut ring = Samples::default();
            let mut model: VecDeque<Sample> = VecDeque::new();
            for (op, ts, v, at) in ops {
                match op {
                    0 | 1 => {
                        ring.push_back(s(ts, v));
                        model.push_back(s(ts, v));
                        let bits = |x: Sample| (x.ts_ms, x.value.to_bits());
                        prop_assert_eq!(ring.back().map(bits), Some(bits(ring.as_stored(s(ts, v)))));
                    }
                    2 => {
                        let at = at.min(model.len());
                        ring.insert(at, s(ts, v));
                        model.insert(at, s(ts, v));
                    }
                    _ => {
                        prop_assert_eq!(ring.front(), model.pop_front());
                        ring.drop_front(1);
                    }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert!(ring.capacity() >= ring.len());
                let got: Vec<Sample> = ring.iter().collect();
                prop_assert_eq!(&got, &model.iter().copied().collect::<Vec<_>>());
                let back: Vec<Sample> = ring.iter().rev().collect();
                prop_assert_eq!(back, model.iter().rev().copied().collect::<Vec<_>>());
                prop_assert_eq!(ring.back_time(), model.back().map(|x| x.ts_ms));
                let times = ring.times();
                prop_assert_eq!(times.len(), model.len());
                for (i, x) in model.iter().enumerate() {
                    prop_assert_eq!(ring.get(i), Some(*x));
                    prop_assert_eq!((ring.time(i), ring.time_at(i)), (Some(x.ts_ms), x.ts_ms));
                    prop_assert_eq!(times.at(i), x.ts_ms);
                    prop_assert_eq!(ring.range(i).count(), model.len() - i);
                }
                prop_assert_eq!(ring.get(model.len()), None);
                prop_assert_eq!(ring.time(model.len()), None);
            }
        }
    }
}
