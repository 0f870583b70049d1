//! The sliding window: one metric's recent samples for one patient, kept in event-time
//! order, trimmed to the history the rules need.

use std::collections::VecDeque;

use crate::days::DayMask;
use crate::extrema::Extrema;
pub use crate::samples::Sample;
use crate::samples::{Iter, Samples};

/// Count, minimum and maximum over a range of a window (the mean comes from
/// [`Window::count_sum_from`]: min/max rules should not pay for a sum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub count: usize,
    pub min: f64,
    pub max: f64,
}

/// What a window keeps beyond its samples, because a rule on its metric needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tracking {
    /// Min/max candidates: the extreme of any suffix without a scan (`rise`, `fall`,
    /// `min`, `max`).
    pub extrema: bool,
    /// Running sums: the mean of any suffix without a scan (`avg`), 8 more bytes a sample.
    pub sums: bool,
    /// The window of the metric's trend rules (0: none): running sums of t, t², v and t·v
    /// over the readings with ts in (newest − trend_ms, newest], kept as readings come and
    /// go, so that the least-squares line through them costs no scan (40 bytes a window).
    pub trend_ms: i64,
}

/// Samples from which a window keeps what its rules need beyond its samples (see
/// [`Window::track`]); below it, the rules scan. A home-monitoring patient's week of blood
/// pressure twice a day stays below it; an hour of vitals a minute does not.
pub const DERIVE_AT: usize = 32;

impl Tracking {
    /// What both keep. One span per metric is summed as readings come: the longest. A
    /// trend over another span (a second rule, a patient's override) is fitted by a scan
    /// of its readings.
    pub fn union(self, other: Tracking) -> Tracking {
        Tracking {
            extrema: self.extrema || other.extrema,
            sums: self.sums || other.sums,
            trend_ms: self.trend_ms.max(other.trend_ms),
        }
    }
}

/// Most samples one window keeps, whatever the rules ask: a device flooding readings
/// cannot grow a patient's memory without bound.
pub const MAX_SAMPLES: usize = 8192;

// A window holds one sample past its cap before trimming, in a ring of a power of two.
const _: () = assert!(2 * MAX_SAMPLES <= crate::samples::MAX_RING);

/// One metric's state for one patient: samples in event-time order (oldest first), and
/// what outlives them (the days measured, the last reading's server time). 40 bytes, no
/// padding: every metric a patient measures has one. After warm-up the rings reuse their
/// allocations, so pushing allocates nothing.
///
/// History past the retention is dropped in batches: rules bound what they read by event
/// time, so a few extra old samples change no verdict, and a batch costs the derived
/// state's bookkeeping once instead of at every reading.
#[derive(Debug, Clone)]
pub struct Window {
    samples: Samples,
    /// What only some rules need, kept only while they do: every other metric should not
    /// pay for it. Boxed, so a window stays 40 bytes.
    derived: Option<Box<Derived>>,
    /// Server time of the last reading in whole seconds, rounded up (0: none yet): an
    /// `absent` rule's deadline counts from it, so it may fire up to a second late,
    /// never early.
    last_wall_s: u32,
    /// The days (in the patient's time zone) with at least one reading: what outlives the
    /// samples for adherence.
    pub days: DayMask,
}

/// Whether a window whose newest sample moved from `from_ms` to `to_ms` looks at its
/// oldest samples: when event time crosses a multiple of a step between a sixteenth and
/// an eighth of the retention (a power of two of milliseconds), so history goes in
/// batches and a window holds at most an eighth of its retention more than it needs.
/// Worked out from the newest sample's time, which every reading reads, and the
/// retention given now: a window keeps no time of its next look (its state has no room
/// for one), and reading its oldest samples at every reading would cost a cache miss. A
/// shorter retention (a new rule set, a patient's override) applies within a step.
#[inline]
fn looks_now(from_ms: i64, to_ms: i64, retention_ms: i64) -> bool {
    let step = (retention_ms / 8).max(1).ilog2();
    from_ms >> step != to_ms >> step
}

/// `ms` in whole seconds, rounded up, in 32 bits (0 below zero, `u32::MAX` past 2106): a
/// time or span kept in every metric or patient, where 8 bytes would cost.
pub(crate) fn whole_seconds_up(ms: i64) -> u32 {
    u32::try_from(ms.max(0).saturating_add(999) / 1000).unwrap_or(u32::MAX)
}

/// In this order: what every reading reads (what is tracked, whether sums and a trend's
/// span are) shares the first cache line.
#[derive(Debug, Clone, Default)]
#[repr(C)]
struct Derived {
    tracking: Tracking,
    /// Sequence number of the window's oldest sample (sample `i` has `base + i`), counted
    /// from when this state was built: only what is derived refers to samples by number.
    base: u64,
    trend: Option<Box<TrendSums>>,
    /// `sums[i]` = the sum of `samples[..=i]` (parallel to `samples`).
    sums: Option<VecDeque<f64>>,
    extrema: Option<Extrema>,
}

/// Running sums over the readings with ts in (newest − `window_ms`, newest]: a suffix of
/// the samples, from the one numbered `exit_seq`. A reading that comes in is added; one
/// that leaves the span as newer ones arrive is subtracted, read where the span starts.
/// Times are seconds from `origin_ms`, which moves up to the span's start (the sums
/// rebuilt from its samples) once the span has moved on by more than its own length: at
/// most once per span of readings, so O(1) a reading amortised, and rounding never
/// accumulates for longer than that.
#[derive(Debug, Clone)]
struct TrendSums {
    window_ms: i64,
    exit_seq: u64,
    /// The time of the oldest sample in the span.
    exit_ts: i64,
    origin_ms: i64,
    /// Σt, Σt², Σv, Σt·v.
    sums: [f64; 4],
}

impl TrendSums {
    #[inline]
    fn term(origin_ms: i64, s: Sample) -> [f64; 4] {
        let t = (s.ts_ms - origin_ms) as f64 / 1000.0;
        [t, t * t, s.value, t * s.value]
    }

    /// The sums over `samples` (numbered from `base`), from scratch.
    fn build(window_ms: i64, samples: &Samples, base: u64) -> TrendSums {
        let newest = samples.back_time().unwrap_or(0);
        let from = samples.partition_point(|ts| ts <= newest.saturating_sub(window_ms));
        let origin_ms = samples.time(from).unwrap_or(0);
        let mut sums = [0.0; 4];
        for s in samples.range(from) {
            for (x, t) in sums.iter_mut().zip(TrendSums::term(origin_ms, s)) {
                *x += t;
            }
        }
        TrendSums {
            window_ms,
            exit_seq: base + from as u64,
            exit_ts: origin_ms,
            origin_ms,
            sums,
        }
    }

    fn add(&mut self, s: Sample, sign: f64) {
        for (x, t) in self.sums.iter_mut().zip(TrendSums::term(self.origin_ms, s)) {
            *x += sign * t;
        }
    }
}

/// The least-squares line through a range of a window's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Samples it was fitted to.
    pub count: usize,
    origin_ms: i64,
    /// Mean time (seconds from `origin_ms`) and mean value of those samples.
    mean_t: f64,
    mean_v: f64,
    /// Change of value per second.
    pub slope_per_s: f64,
}

impl Line {
    /// The line's value at `ts_ms`.
    pub fn at(&self, ts_ms: i64) -> f64 {
        let t = (ts_ms - self.origin_ms) as f64 / 1000.0;
        self.mean_v + self.slope_per_s * (t - self.mean_t)
    }

    /// The line from count, Σt, Σt², Σv, Σt·v (t in seconds from `origin_ms`); `None`
    /// when the times do not spread (every sample at one instant).
    fn from_sums(
        count: usize,
        origin_ms: i64,
        st: f64,
        stt: f64,
        sv: f64,
        stv: f64,
    ) -> Option<Line> {
        let n = count as f64;
        let mean_t = st / n;
        let sxx = stt - st * mean_t;
        let sxy = stv - mean_t * sv;
        (sxx > 0.0 && sxx.is_finite()).then(|| Line {
            count,
            origin_ms,
            mean_t,
            mean_v: sv / n,
            slope_per_s: sxy / sxx,
        })
    }
}

impl Default for Window {
    fn default() -> Window {
        Window {
            samples: Samples::default(),
            derived: None,
            last_wall_s: 0,
            days: DayMask::EMPTY,
        }
    }
}

impl Window {
    /// Keeps what `needs` asks for and drops what it no longer asks for. Turning
    /// something on for a window that already has samples builds it once from them.
    ///
    /// A window of fewer than [`DERIVE_AT`] samples keeps nothing: its rules scan it,
    /// which reads a line or two of samples, where derived state would cost more memory
    /// than the samples and a cache miss of its own.
    #[inline]
    pub fn track(&mut self, needs: Tracking) {
        if needs != self.tracking() {
            self.track_anew(needs);
        }
    }

    /// [`Window::track`] when what the window keeps changes.
    fn track_anew(&mut self, needs: Tracking) {
        if needs == Tracking::default() || self.samples.len() < DERIVE_AT {
            self.derived = None;
            return;
        }
        let d = self.derived.get_or_insert_with(Box::default);
        match (needs.extrema, d.extrema.is_some()) {
            (true, false) => {
                let mut e = Extrema::default();
                for (i, s) in self.samples.iter().enumerate() {
                    e.push(d.base + i as u64, s.ts_ms, s.value);
                }
                d.extrema = Some(e);
            }
            (false, true) => d.extrema = None,
            _ => {}
        }
        match (needs.sums, d.sums.is_some()) {
            (true, false) => {
                let mut total = 0.0;
                d.sums = Some(
                    self.samples
                        .iter()
                        .map(|s| {
                            total += s.value;
                            total
                        })
                        .collect(),
                );
            }
            (false, true) => d.sums = None,
            _ => {}
        }
        if d.trend.as_ref().map_or(0, |t| t.window_ms) != needs.trend_ms {
            d.trend = (needs.trend_ms > 0)
                .then(|| Box::new(TrendSums::build(needs.trend_ms, &self.samples, d.base)));
        }
        d.tracking = needs;
    }

    /// Refills the window from stored samples (a snapshot's, oldest first), then keeps
    /// what `needs` asks for: what a window tracks is built once from the samples, not
    /// kept up sample by sample. An empty window refilled with samples in time order (as
    /// snapshots hold them, trimmed already) is filled in one go, holding what was stored,
    /// and looks at its oldest samples at the next reading; anything else goes in reading
    /// by reading.
    pub fn restore(
        &mut self,
        samples: impl ExactSizeIterator<Item = Sample>,
        retention_ms: i64,
        needs: Tracking,
    ) {
        self.track(Tracking::default());
        let held: Vec<Sample> = samples.collect();
        if self.samples.is_empty() && held.is_sorted_by_key(|s| s.ts_ms) {
            // Past the cap the oldest go.
            let over = held.len().saturating_sub(MAX_SAMPLES);
            self.samples.fill(&held[over..]);
            self.samples.note_inserted(held.len());
        } else {
            self.samples.reserve(held.len().min(MAX_SAMPLES + 1));
            for s in held {
                self.insert(s, retention_ms);
            }
        }
        self.track(needs);
    }

    /// What the window keeps now.
    #[inline]
    pub fn tracking(&self) -> Tracking {
        self.derived
            .as_ref()
            .map_or(Tracking::default(), |d| d.tracking)
    }

    /// Inserts `s` at its event-time position (after samples with an equal timestamp), then
    /// drops history older than `newest - retention_ms`, in batches (see [`looks_now`]).
    /// The newest sample at or before that horizon is kept as an anchor: a run of readings
    /// that began before the horizon must still show that it did, or a `for` would be
    /// judged too short.
    ///
    /// Returns whether `s` went in last (false for a late reading placed before newer
    /// ones: then [`Window::unwritten`] may miss it or a sample after it).
    pub fn insert(&mut self, s: Sample, retention_ms: i64) -> bool {
        self.samples.note_inserted(1);
        let previous = self.samples.back_time();
        // A late reading that becomes one of the two oldest may be past the horizon at once.
        let mut oldest = false;
        let (newest, appended) = match previous {
            Some(last) if last > s.ts_ms => {
                let at = self.samples.partition_point(|ts| ts <= s.ts_ms);
                oldest = at <= 1;
                let offset = self.sum_before_first();
                let exit_at = self
                    .derived
                    .as_ref()
                    .and_then(|d| d.trend.as_ref())
                    .map(|t| self.index_of(t.exit_seq));
                self.samples.insert(at, s);
                // Late readings are rare: fix the running sums from the insertion point and
                // rebuild the extrema, whose sequence numbers shifted.
                if let Some(d) = self.derived.as_mut() {
                    if let Some(sums) = d.sums.as_mut() {
                        let before = if at == 0 { offset } else { sums[at - 1] };
                        sums.insert(at, before + s.value);
                        for x in sums.range_mut(at + 1..) {
                            *x += s.value;
                        }
                    }
                    if let (Some(t), Some(exit_at)) = (d.trend.as_mut(), exit_at) {
                        if s.ts_ms > last.saturating_sub(t.window_ms) {
                            // In the span (at or after its start): counted.
                            t.add(s, 1.0);
                            if at == exit_at {
                                t.exit_ts = s.ts_ms;
                            }
                        } else if at <= exit_at {
                            // Before the span: the span's samples moved up one.
                            t.exit_seq += 1;
                        }
                    }
                    if let Some(extrema) = d.extrema.as_mut() {
                        extrema.clear();
                        for (i, e) in self.samples.iter().enumerate() {
                            extrema.push(d.base + i as u64, e.ts_ms, e.value);
                        }
                    }
                }
                (last, false)
            }
            _ => {
                if self.samples.len() == self.samples.capacity() && self.samples.len() > 2 {
                    // Trim before the ring doubles: the batch trim's lag (an eighth of the
                    // retention) would otherwise push a window whose retention holds just
                    // under a power of two of samples (60 a minute for an hour) over it,
                    // doubling its memory for good, and every patient measuring at that
                    // cadence would fault in its new ring in the same few seconds.
                    self.trim(s.ts_ms, retention_ms);
                }
                self.samples.push_back(s);
                if let Some(d) = self.derived.as_mut() {
                    let seq = d.base + self.samples.len() as u64 - 1;
                    if let Some(extrema) = d.extrema.as_mut() {
                        extrema.push(seq, s.ts_ms, s.value);
                    }
                    if let Some(sums) = d.sums.as_mut() {
                        let total = sums.back().copied().unwrap_or(0.0) + s.value;
                        sums.push_back(total);
                    }
                    if let Some(t) = d.trend.as_mut() {
                        let samples = &self.samples;
                        let base = d.base;
                        let index =
                            |seq: u64| (seq.saturating_sub(base) as usize).min(samples.len());
                        if index(t.exit_seq) >= samples.len() - 1 {
                            // The span held nothing: it starts again at this sample.
                            **t = TrendSums {
                                exit_seq: seq,
                                exit_ts: s.ts_ms,
                                origin_ms: s.ts_ms,
                                sums: TrendSums::term(s.ts_ms, s),
                                ..**t
                            };
                        } else {
                            t.add(s, 1.0);
                            let horizon = s.ts_ms.saturating_sub(t.window_ms);
                            // Times read alone; a sample's value only as it leaves.
                            let times = samples.times();
                            let mut i = index(t.exit_seq);
                            while i < samples.len() - 1 && times.at(i) <= horizon {
                                t.add(samples.at(i), -1.0);
                                i += 1;
                            }
                            t.exit_seq = base + i as u64;
                            t.exit_ts = times.at(i);
                            if t.exit_ts.saturating_sub(t.origin_ms) > t.window_ms.max(3_600_000) {
                                **t = TrendSums::build(t.window_ms, samples, base);
                            }
                        }
                    }
                }
                (s.ts_ms, true)
            }
        };
        if oldest
            || self.samples.len() > MAX_SAMPLES
            || previous.is_some_and(|p| appended && looks_now(p, newest, retention_ms))
        {
            self.trim(newest, retention_ms);
        }
        appended
    }

    /// Drops history older than `newest - retention_ms` (`newest`: the newest sample's
    /// time), keeping an anchor.
    fn trim(&mut self, newest: i64, retention_ms: i64) {
        let horizon = newest.saturating_sub(retention_ms);
        let times = self.samples.times();
        // Past the cap, the oldest go; then a sample goes only if it is older than the
        // horizon and the next one can anchor instead (it is at or before the horizon too).
        let mut dropped = times.len().saturating_sub(MAX_SAMPLES);
        while dropped + 1 < times.len()
            && times.at(dropped) < horizon
            && times.at(dropped + 1) <= horizon
        {
            dropped += 1;
        }
        self.samples.drop_front(dropped);
        if let Some(d) = self.derived.as_mut().filter(|_| dropped > 0) {
            d.base += dropped as u64;
            if let Some(extrema) = d.extrema.as_mut() {
                extrema.drop_before(d.base);
            }
            if let Some(sums) = d.sums.as_mut() {
                // Sums stay relative to the dropped prefix: differences are all that is read.
                sums.drain(..dropped);
            }
            if let Some(t) = d.trend.as_mut().filter(|t| t.exit_seq < d.base) {
                // The cap on samples took some of the span.
                **t = TrendSums::build(t.window_ms, &self.samples, d.base);
            }
        }
    }

    /// Notes that a reading came at server time `now_ms`.
    #[inline]
    pub fn seen_at(&mut self, now_ms: i64) {
        self.last_wall_s = whole_seconds_up(now_ms);
    }

    /// Server time of the last reading (see [`Window::seen_at`]), in milliseconds; 0 if
    /// none yet.
    pub fn last_seen_ms(&self) -> i64 {
        i64::from(self.last_wall_s) * 1000
    }

    /// Starts loading, without waiting for them ([`crate::prefetch`]), the first lines a
    /// push and an evaluation will read: what the window's header points to, the newest
    /// and oldest samples and the derived state's own lines (which say where the rest is:
    /// [`Window::prefetch_far`]).
    pub fn prefetch_near(&self) {
        self.samples.prefetch_ends();
        if let Some(d) = self.derived.as_deref() {
            crate::prefetch::prefetch_lines(d);
        }
    }

    /// Starts loading what the derived state points to (min/max candidates, running sums,
    /// where a trend's span starts): it reads the derived state's lines, so a look-ahead
    /// asks for it a stage after [`Window::prefetch_near`].
    pub fn prefetch_far(&self) {
        let Some(d) = self.derived.as_ref() else {
            return;
        };
        if let Some(e) = &d.extrema {
            e.prefetch();
        }
        if let Some(back) = d.sums.as_ref().and_then(|s| s.back()) {
            crate::prefetch::prefetch(back);
        }
        if let Some(t) = &d.trend {
            crate::prefetch::prefetch(&**t);
            self.samples.prefetch(self.index_of(t.exit_seq));
        }
    }

    /// The sample at index `i` (oldest first).
    pub fn get(&self, i: usize) -> Option<Sample> {
        self.samples.get(i)
    }

    /// `s`, just appended, as [`Window::latest`] reads it back (see
    /// [`Samples::as_stored`]).
    #[inline]
    pub fn as_stored(&self, s: Sample) -> Sample {
        self.samples.as_stored(s)
    }

    /// The sample with the latest event time.
    pub fn latest(&self) -> Option<Sample> {
        self.samples.back()
    }

    /// Samples from newest to oldest.
    pub fn newest_first(&self) -> impl Iterator<Item = Sample> + '_ {
        self.samples.iter().rev()
    }

    /// Index of the first sample with ts >= `from_ms` (`inclusive`) or > `from_ms`.
    /// Devices sample at a steady rate, so the index is first guessed from the timestamps
    /// of the oldest and newest samples, then found by galloping from the guess: usually
    /// one or two probes, on lines near the guess, however long the window is.
    pub fn start_index(&self, from_ms: i64, inclusive: bool) -> usize {
        let before = |i: usize| {
            let ts = self.samples.time_at(i);
            if inclusive {
                ts < from_ms
            } else {
                ts <= from_ms
            }
        };
        let n = self.samples.len();
        let (Some(first), Some(last)) = (self.samples.time(0), self.samples.back_time()) else {
            return 0;
        };
        let span = last.abs_diff(first);
        let guess = if span == 0 || from_ms <= first {
            0
        } else if from_ms >= last {
            n - 1
        } else {
            // A float is exact enough for a guess, and cheaper than 128-bit division.
            let along = from_ms.abs_diff(first) as f64 / span as f64;
            ((along * (n - 1) as f64) as usize).min(n - 1)
        };
        // Bracket the answer in (lo, hi]: `lo` is before the start (or -1), `hi` is not
        // (or n), widening the step each time the guess is off.
        let (mut lo, mut hi): (isize, isize);
        if before(guess) {
            lo = guess as isize;
            let mut step = 1;
            hi = lo + step;
            while (hi as usize) < n && before(hi as usize) {
                lo = hi;
                step *= 2;
                hi = lo + step;
            }
            hi = hi.min(n as isize);
        } else {
            hi = guess as isize;
            let mut step = 1;
            lo = hi - step;
            while lo >= 0 && !before(lo as usize) {
                hi = lo;
                step *= 2;
                lo = hi - step;
            }
            lo = lo.max(-1);
        }
        // Binary search: the answer is the first index in (lo, hi] that is not before.
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if before(mid as usize) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi as usize
    }

    /// Count and sum of the samples from index `from` to the newest: O(1) with running
    /// sums tracked, a scan of the range otherwise.
    pub fn count_sum_from(&self, from: usize) -> (usize, f64) {
        let count = self.samples.len().saturating_sub(from);
        if count == 0 {
            return (0, 0.0);
        }
        match self.derived.as_ref().and_then(|d| d.sums.as_ref()) {
            Some(sums) => {
                let before = if from == 0 {
                    self.sum_before_first()
                } else {
                    sums[from - 1]
                };
                (count, sums[sums.len() - 1] - before)
            }
            None => (count, self.samples.range(from).map(|s| s.value).sum()),
        }
    }

    /// The least-squares line through the samples with ts in (newest − `window_ms`,
    /// newest]: from the running sums when the window tracks that span (`trend_ms`), by a
    /// scan of the span otherwise. `None` for fewer than two samples or samples all taken
    /// at one instant.
    pub fn trend_line(&self, window_ms: i64) -> Option<Line> {
        let latest = self.samples.back_time()?;
        match self
            .derived
            .as_ref()
            .and_then(|d| d.trend.as_ref())
            .filter(|t| t.window_ms == window_ms)
        {
            Some(t) => {
                let count = self.samples.len() - self.index_of(t.exit_seq);
                if count < 2 || t.exit_ts == latest {
                    return None;
                }
                let [st, stt, sv, stv] = t.sums;
                Line::from_sums(count, t.origin_ms, st, stt, sv, stv)
            }
            None => self.line_from(self.start_index(latest.saturating_sub(window_ms), false)),
        }
    }

    /// The least-squares line through the samples from index `from` to the newest, by a
    /// scan. `None` for fewer than two samples or samples all taken at one instant.
    pub fn line_from(&self, from: usize) -> Option<Line> {
        let count = self.samples.len().saturating_sub(from);
        let (first, last) = (self.samples.get(from)?, self.samples.back()?);
        if count < 2 || first.ts_ms == last.ts_ms {
            return None;
        }
        // Two passes, centred: exact enough for any times.
        let origin_ms = first.ts_ms;
        let t = |s: &Sample| (s.ts_ms - origin_ms) as f64 / 1000.0;
        let n = count as f64;
        let range = self.samples.range(from);
        let (st, sv) = range
            .clone()
            .fold((0.0, 0.0), |(a, b), s| (a + t(&s), b + s.value));
        let (mt, mv) = (st / n, sv / n);
        let (sxx, sxy) = range.fold((0.0, 0.0), |(a, b), s| {
            let dt = t(&s) - mt;
            (a + dt * dt, b + dt * (s.value - mv))
        });
        (sxx > 0.0).then(|| Line {
            count,
            origin_ms,
            mean_t: mt,
            mean_v: mv,
            slope_per_s: sxy / sxx,
        })
    }

    /// Count, minimum and maximum from index `from` to the newest: without a scan when
    /// extrema are tracked, by scanning the range otherwise.
    pub fn stats_from(&self, from: usize) -> Option<Stats> {
        let count = self.samples.len().saturating_sub(from);
        if count == 0 {
            return None;
        }
        let (min, max) = match self.derived.as_ref().and_then(|d| d.extrema.as_ref()) {
            Some(extrema) => extrema.min_max_from(self.base() + from as u64)?,
            None => self
                .samples
                .range(from)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                    (lo.min(e.value), hi.max(e.value))
                }),
        };
        Some(Stats { count, min, max })
    }

    /// Minimum and maximum of the samples with ts at or after `from_ms` (`inclusive`) or
    /// after it, `None` if there is none. With extrema tracked, from the candidates alone:
    /// the samples between the window's ends are not read, so a long window costs no
    /// cache miss in its middle.
    pub fn min_max_since(&self, from_ms: i64, inclusive: bool) -> Option<(f64, f64)> {
        match self.derived.as_ref().and_then(|d| d.extrema.as_ref()) {
            Some(extrema) => extrema.min_max_since(from_ms, inclusive),
            None => self
                .stats_from(self.start_index(from_ms, inclusive))
                .map(|s| (s.min, s.max)),
        }
    }

    /// The running sum just before the oldest sample: sums keep counting what trimming
    /// dropped (0 without sums or samples).
    fn sum_before_first(&self) -> f64 {
        match (
            self.derived.as_ref().and_then(|d| d.sums.as_ref()),
            self.samples.front(),
        ) {
            (Some(sums), Some(first)) if !sums.is_empty() => sums[0] - first.value,
            _ => 0.0,
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Samples oldest first (for tests and snapshots).
    pub fn iter(&self) -> Iter<'_> {
        self.samples.iter()
    }

    /// From now on, [`Window::unwritten`] yields only what is inserted next (the window's
    /// samples went into a snapshot).
    pub fn mark_written(&mut self) {
        self.samples.mark_written();
    }

    /// The samples appended since [`Window::mark_written`] that the window still holds,
    /// oldest first (provided no late reading went in before them since: the newest as
    /// many as were inserted), less any already trimmed away. A window that keeps little
    /// history may have trimmed all of them and more: then it is every sample held, all
    /// newer than those written before.
    pub fn unwritten(&self) -> Iter<'_> {
        self.samples
            .range(self.samples.len() - self.unwritten_count())
    }

    /// How many samples [`Window::unwritten`] yields, without reading them.
    pub fn unwritten_count(&self) -> usize {
        self.samples.unwritten().min(self.samples.len())
    }

    /// The sequence number of the oldest sample ([`Derived::base`]; 0 without derived
    /// state, which is all that numbers samples).
    fn base(&self) -> u64 {
        self.derived.as_ref().map_or(0, |d| d.base)
    }

    /// Where sample `seq` is (or would be), clamped to the samples held.
    fn index_of(&self, seq: u64) -> usize {
        usize::try_from(seq.saturating_sub(self.base()))
            .unwrap_or(usize::MAX)
            .min(self.samples.len())
    }
}

/// What the rule kinds' tests share: a window filled with samples, and a kind's verdict
/// on its newest sample.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Sample, Window};
    use crate::threshold::Verdict;

    /// A window holding `samples` (time, value), inserted in order with `retention_ms`.
    pub fn window_of(samples: &[(i64, f64)], retention_ms: i64) -> Window {
        let mut w = Window::default();
        for &(ts_ms, value) in samples {
            w.insert(Sample { ts_ms, value }, retention_ms);
        }
        w
    }

    /// `evaluate` (a rule kind's) on the window's newest sample; `Hold` if it is empty.
    pub fn judge<R>(
        evaluate: fn(&R, &Window, Sample, bool) -> Verdict,
        rule: &R,
        w: &Window,
        open: bool,
    ) -> Verdict {
        w.latest()
            .map_or(Verdict::Hold, |l| evaluate(rule, w, l, open))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(ts: i64, v: f64) -> Sample {
        Sample {
            ts_ms: ts,
            value: v,
        }
    }

    #[test]
    fn out_of_order_samples_land_in_event_time_order() {
        let mut w = Window::default();
        for ts in [10, 30, 20, 5, 30, 25] {
            w.insert(s(ts, ts as f64), 1000);
        }
        let order: Vec<i64> = w.iter().map(|x| x.ts_ms).collect();
        assert_eq!(order, vec![5, 10, 20, 25, 30, 30]);
        assert_eq!(w.latest(), Some(s(30, 30.0)));
    }

    #[test]
    fn unwritten_yields_what_was_appended_after_the_mark() {
        let mut w = Window::default();
        for ts in [10, 20, 30] {
            assert!(w.insert(s(ts, 1.0), 1000));
        }
        assert_eq!(w.unwritten_count(), 3, "nothing written yet");
        w.mark_written();
        assert!(
            w.insert(s(30, 2.0), 1000),
            "an equal timestamp goes in last"
        );
        assert!(w.insert(s(40, 3.0), 1000));
        let new: Vec<Sample> = w.unwritten().collect();
        assert_eq!(new, vec![s(30, 2.0), s(40, 3.0)]);
        assert_eq!(w.unwritten_count(), 2);
        w.mark_written();
        assert_eq!(w.unwritten().count(), 0);
        assert!(
            !w.insert(s(15, 4.0), 1000),
            "a late reading is not appended"
        );
        // Trimming takes the oldest: all but the anchor (40) go, the new one stays.
        w.mark_written();
        w.insert(s(2000, 5.0), 1000);
        assert_eq!(w.iter().next().unwrap().ts_ms, 40);
        assert_eq!(w.unwritten().collect::<Vec<_>>(), vec![s(2000, 5.0)]);
        // More inserted than held (trimmed since): what is held is all newer.
        for ts in [2001, 2002, 3500, 3600] {
            w.insert(s(ts, 6.0), 1000);
        }
        assert!(w.len() < 5, "{}", w.len());
        assert_eq!(w.unwritten().count(), w.len());
        assert_eq!(w.unwritten_count(), w.len());
        // A count that no window holds saturates.
        let mut many = Window::default();
        for ts in 0..70_000 {
            many.insert(s(ts, 1.0), 10);
        }
        assert_eq!(many.unwritten_count(), many.len());
    }

    #[test]
    fn a_shorter_retention_applies_within_a_step() {
        let mut w = Window::default();
        for ts in (0..200).map(|i| i * 1000) {
            w.insert(s(ts, 1.0), 100_000);
        }
        let before = w.len();
        assert!(before > 100, "{before}");
        // Within a step of the shorter retention (1 024 ms).
        w.insert(s(200_000, 1.0), 10_000);
        assert_eq!(w.len(), 11, "the anchor at 190 s and ten seconds after it");
        // A longer one keeps what is still held and trims later.
        for ts in (201..260).map(|i| i * 1000) {
            w.insert(s(ts, 1.0), 100_000);
        }
        assert_eq!(w.len(), 70);
    }

    #[test]
    fn retention_keeps_the_newest_and_its_history() {
        let mut w = Window::default();
        for ts in (0..100).map(|i| i * 1000) {
            w.insert(s(ts, 1.0), 10_000);
        }
        // 89 000 is the anchor; at most an eighth of the retention more is kept.
        let oldest = w.iter().next().unwrap().ts_ms;
        assert!((87_000..=89_000).contains(&oldest), "{oldest}");
        assert!((11..=13).contains(&w.len()), "{}", w.len());
        let mut zero = Window::default();
        zero.insert(s(1, 1.0), 0);
        zero.insert(s(2, 2.0), 0);
        assert_eq!(zero.len(), 1);
        // A late sample older than the anchor is dropped at once.
        zero.insert(s(0, 9.0), 0);
        assert_eq!(zero.latest(), Some(s(2, 2.0)));
        assert_eq!(zero.len(), 1);
    }

    #[test]
    fn a_window_restored_past_its_cap_keeps_the_newest() {
        let stored: Vec<Sample> = (0..MAX_SAMPLES as i64 + 100).map(|i| s(i, 1.0)).collect();
        let mut w = Window::default();
        w.restore(stored.iter().copied(), i64::MAX, Tracking::default());
        assert_eq!(w.len(), MAX_SAMPLES);
        assert_eq!(w.get(0), Some(s(100, 1.0)));
        // Out of order (never written so, but read anyway): reading by reading.
        let mut late = Window::default();
        late.restore(
            [s(5, 1.0), s(3, 2.0)].into_iter(),
            i64::MAX,
            Tracking::default(),
        );
        assert_eq!(late.iter().collect::<Vec<_>>(), [s(3, 2.0), s(5, 1.0)]);
    }

    #[test]
    fn a_window_looks_at_its_oldest_samples_once_a_step() {
        // An hour kept: a step of 2^18 ms (262 s), between a sixteenth and an eighth.
        let hour = 3_600_000;
        assert!(!looks_now(0, 262_143, hour));
        assert!(looks_now(262_143, 262_144, hour));
        assert!(!looks_now(262_144, 524_287, hour));
        // Readings a minute apart look every fourth or fifth reading.
        let looks = (1..1000)
            .filter(|m| looks_now((m - 1) * 60_000, m * 60_000, hour))
            .count();
        assert!((228..=229).contains(&looks), "{looks}");
        // Before 1970 as after; with nothing kept, at every new time.
        assert!(looks_now(-1, 0, hour));
        assert!(looks_now(5, 6, 0) && !looks_now(6, 6, 0));
    }

    #[test]
    fn a_window_takes_40_bytes() {
        assert_eq!(std::mem::size_of::<Window>(), 40);
    }

    #[test]
    fn sums_come_and_go_with_the_rules() {
        let sums = Tracking {
            extrema: false,
            sums: true,
            trend_ms: 0,
        };
        let mut w = Window::default();
        for i in 0..DERIVE_AT as i64 - 1 {
            w.insert(s(i, 1.0), 1000);
        }
        w.track(sums);
        assert_eq!(w.tracking(), Tracking::default(), "short: scanned");
        for i in 0..10 {
            w.insert(s(100 + i, i as f64), 1000);
        }
        w.track(sums);
        assert_eq!(w.tracking(), sums);
        let from = w.len() - 6;
        assert_eq!(
            w.count_sum_from(from),
            (6, 4.0 + 5.0 + 6.0 + 7.0 + 8.0 + 9.0)
        );
        w.insert(s(103, 100.0), 1000); // late: lands at `from`
        assert_eq!(w.count_sum_from(from), (7, 139.0));
        w.track(Tracking::default());
        assert_eq!(w.tracking(), Tracking::default());
        assert_eq!(w.count_sum_from(from), (7, 139.0), "a scan gives the same");
    }

    #[test]
    fn a_window_at_a_steady_cadence_trims_rather_than_doubling_its_ring() {
        // An hour at one sample a minute: 61 samples fit a ring of 64; the batch trim's
        // lag must not make it 128.
        let mut w = Window::default();
        for minute in 0..600 {
            w.insert(s(minute * 60_000, 1.0), 3_600_000);
            assert!(
                w.samples.capacity() <= 64,
                "minute {minute}: {}",
                w.samples.capacity()
            );
        }
        assert!(w.len() >= 61, "an hour kept, with its anchor: {}", w.len());
        assert_eq!(
            w.iter().next().unwrap().ts_ms,
            w.latest().unwrap().ts_ms - w.len() as i64 * 60_000 + 60_000
        );
    }

    #[test]
    fn capacity_is_bounded() {
        let mut w = Window::default();
        for i in 0..(MAX_SAMPLES as i64 + 100) {
            w.insert(s(i, 0.0), i64::MAX);
        }
        assert_eq!(w.len(), MAX_SAMPLES);
    }

    /// `v` as a device sends it: to tenths (`decimals` 0: 4-byte samples, see `Samples`),
    /// to thousandths (1: 8 bytes), or as it is (2: a window holding one such value
    /// stores 16 bytes a sample). The properties below hold in every form.
    fn as_sent(v: f64, decimals: u8) -> f64 {
        match decimals {
            0 => (v * 10.0).round() / 10.0,
            1 => (v * 1000.0).round() / 1000.0,
            _ => v,
        }
    }

    /// Milliseconds a unit of a test's time stands for: whole seconds for values in
    /// tenths, so that their windows keep 4-byte samples.
    fn unit_ms(decimals: u8) -> i64 {
        if decimals == 0 {
            1000
        } else {
            1
        }
    }

    /// The least-squares line straight from its definition, centred, over `samples`.
    fn direct_fit(samples: &[Sample]) -> Option<(f64, f64)> {
        let n = samples.len() as f64;
        let t0 = samples.first()?.ts_ms;
        let t = |s: &Sample| (s.ts_ms - t0) as f64 / 1000.0;
        let mt = samples.iter().map(t).sum::<f64>() / n;
        let mv = samples.iter().map(|s| s.value).sum::<f64>() / n;
        let sxx: f64 = samples.iter().map(|s| (t(s) - mt).powi(2)).sum();
        let sxy: f64 = samples.iter().map(|s| (t(s) - mt) * (s.value - mv)).sum();
        (samples.len() >= 2 && sxx > 0.0).then(|| {
            let slope = sxy / sxx;
            // (slope per second, value at the newest sample)
            (slope, mv + slope * (t(samples.last().unwrap()) - mt))
        })
    }

    #[test]
    fn a_line_through_a_steady_fall() {
        let mut w = Window::default();
        w.track(Tracking {
            trend_ms: 30 * 60_000,
            ..Tracking::default()
        });
        for i in 0..30 {
            w.insert(s(i * 60_000, 98.0 - 0.1 * i as f64), i64::MAX);
        }
        let line = w.trend_line(30 * 60_000).unwrap();
        assert_eq!(line.count, 30);
        assert_eq!(Some(line.count), w.line_from(0).map(|l| l.count));
        assert!((line.slope_per_s * 60.0 + 0.1).abs() < 1e-9);
        // Projected 30 minutes past the newest (29 min): 98 - 0.1 * 59.
        assert!(
            (line.at(59 * 60_000) - 92.1).abs() < 1e-9,
            "{}",
            line.at(59 * 60_000)
        );
    }

    proptest! {
        /// Lines through the tracked span, and through other spans by a scan, agree with a
        /// direct fit after every reading, over hours of readings (the origin moving with
        /// the span), late readings included.
        #[test]
        fn lines_match_a_direct_fit(
            steps in proptest::collection::vec((0i64..600, 0u8..10, 80.0f64..100.0), 2..300),
            retention_min in 5i64..120,
            span_min in 1i64..120,
            decimals in 0u8..3,
        ) {
            let span = span_min * 60_000;
            // The engine keeps at least the trend's span.
            let retention = (retention_min * 60_000).max(span);
            let mut w = Window::default();
            w.track(Tracking { trend_ms: span, ..Tracking::default() });
            let mut plain = Window::default();
            let mut newest = 1_700_000_000_000i64;
            for &(step_s, late, v) in &steps {
                let v = as_sent(v, decimals);
                let ts = if late == 0 { newest - step_s * 1000 } else { newest + step_s * 1000 };
                newest = newest.max(ts);
                w.insert(s(ts, v), retention);
                plain.insert(s(ts, v), retention);
                let got: Vec<Sample> = w.iter().collect();
                prop_assert_eq!(&got, &plain.iter().collect::<Vec<_>>());
                let newest = got.last().unwrap().ts_ms;
                for (win, width) in [(&w, span), (&plain, span), (&w, span + 7 * 60_000)] {
                    let in_span: Vec<Sample> = got.iter().copied().filter(|x| x.ts_ms > newest - width).collect();
                    match (win.trend_line(width), direct_fit(&in_span)) {
                        (Some(line), Some((slope, at_last))) => {
                            prop_assert_eq!(line.count, in_span.len());
                            prop_assert!((line.slope_per_s - slope).abs() < 1e-6 * (1.0 + slope.abs()), "slope {} vs {}", line.slope_per_s, slope);
                            prop_assert!((line.at(newest) - at_last).abs() < 1e-6, "at newest {} vs {}", line.at(newest), at_last);
                        }
                        (None, None) => {}
                        (got_line, want) => prop_assert!(false, "{:?} vs {:?} ({} samples)", got_line, want, in_span.len()),
                    }
                }
            }
        }

        /// A window restored from stored samples (derived state built once at the end)
        /// answers every question as one filled reading by reading does.
        #[test]
        fn a_restored_window_answers_as_the_one_it_was_saved_from(
            input in proptest::collection::vec((0i64..400, -5.0f64..5.0), 1..150),
            retention in 0i64..300,
            span in 1i64..100,
            decimals in 0u8..3,
        ) {
            let unit = unit_ms(decimals);
            let (retention, span) = (retention * unit, span * unit);
            let needs = Tracking { extrema: true, sums: true, trend_ms: span };
            let mut live = Window::default();
            live.track(needs);
            for &(ts, v) in &input {
                let ts = ts * unit;
                let v = as_sent(v, decimals);
                live.insert(s(ts, v), retention);
            }
            let stored: Vec<Sample> = live.iter().collect();
            let mut restored = Window::default();
            restored.restore(stored.iter().copied(), retention, needs);
            prop_assert_eq!(restored.iter().collect::<Vec<_>>(), stored.clone());
            let kept = if stored.len() >= DERIVE_AT { needs } else { Tracking::default() };
            prop_assert_eq!(restored.tracking(), kept);
            for (from, sample) in stored.iter().enumerate() {
                prop_assert_eq!(restored.stats_from(from), live.stats_from(from));
                let (n, sum) = restored.count_sum_from(from);
                let (m, want) = live.count_sum_from(from);
                prop_assert_eq!(n, m);
                prop_assert!((sum - want).abs() < 1e-6, "sums {} vs {}", sum, want);
                let t = sample.ts_ms;
                prop_assert_eq!(restored.min_max_since(t, true), live.min_max_since(t, true));
            }
            match (restored.trend_line(span), live.trend_line(span)) {
                (Some(a), Some(b)) => {
                    prop_assert_eq!(a.count, b.count);
                    prop_assert!((a.slope_per_s - b.slope_per_s).abs() < 1e-6 * (1.0 + b.slope_per_s.abs()));
                }
                (None, None) => {}
                (a, b) => prop_assert!(false, "{:?} vs {:?}", a, b),
            }
        }

        /// The window equals a naive model: all samples sorted stably by time, trimmed.
        #[test]
        fn matches_naive_model(input in proptest::collection::vec((0i64..200, -5.0f64..5.0), 1..120), retention in 0i64..80, decimals in 0u8..3) {
            let unit = unit_ms(decimals);
            let retention = retention * unit;
            let mut w = Window::default();
            w.track(Tracking { extrema: true, sums: true, trend_ms: 50 * unit });
            let mut plain = Window::default();
            let mut model: Vec<(usize, Sample)> = Vec::new();
            for (i, (ts, v)) in input.iter().enumerate() {
                let ts = &(ts * unit);
                let v = &as_sent(*v, decimals);
                w.insert(s(*ts, *v), retention);
                plain.insert(s(*ts, *v), retention);
                model.push((i, s(*ts, *v)));
                model.sort_by_key(|(i, x)| (x.ts_ms, *i));
                // Keep everything at or after the horizon, plus the newest older sample
                // when nothing sits exactly on the horizon.
                let horizon = model.last().unwrap().1.ts_ms - retention;
                let older = model.iter().filter(|(_, x)| x.ts_ms < horizon).count();
                let on_horizon = model.iter().any(|(_, x)| x.ts_ms == horizon);
                let drop = if on_horizon { older } else { older.saturating_sub(1) };
                model.drain(..drop);
            }
            let got: Vec<Sample> = w.iter().collect();
            // Running sums and extrema agree with a plain scan of every suffix, and the
            // galloping search with a linear one.
            for from in 0..got.len() {
                let stats = w.stats_from(from).unwrap();
                let untracked = plain.stats_from(from).unwrap();
                prop_assert_eq!((stats.count, stats.min, stats.max), (untracked.count, untracked.min, untracked.max), "tracked and untracked agree");
                let suffix = &got[from..];
                let scanned: f64 = suffix.iter().map(|x| x.value).sum();
                prop_assert_eq!(stats.count, suffix.len());
                let (n, sum) = w.count_sum_from(from);
                prop_assert_eq!(n, suffix.len());
                prop_assert!((sum - scanned).abs() < 1e-6, "running sums: {} vs {}", sum, scanned);
                prop_assert_eq!(stats.min, suffix.iter().map(|x| x.value).fold(f64::INFINITY, f64::min));
                prop_assert_eq!(stats.max, suffix.iter().map(|x| x.value).fold(f64::NEG_INFINITY, f64::max));
                // The guessed-then-galloping search agrees with a linear one, at each sample's
                // time and between, before and after them.
                for t in [got[from].ts_ms - 1, got[from].ts_ms, got[from].ts_ms + 1, i64::MIN, i64::MAX] {
                    prop_assert_eq!(w.start_index(t, true), got.iter().position(|x| x.ts_ms >= t).unwrap_or(got.len()), "from {} inclusive", t);
                    prop_assert_eq!(w.start_index(t, false), got.iter().position(|x| x.ts_ms > t).unwrap_or(got.len()), "from {} exclusive", t);
                    // By time, tracked (candidates) and untracked (search and scan) agree
                    // with the samples in range.
                    for inclusive in [true, false] {
                        let in_range: Vec<f64> = got.iter().filter(|x| if inclusive { x.ts_ms >= t } else { x.ts_ms > t }).map(|x| x.value).collect();
                        let want = (!in_range.is_empty()).then(|| (in_range.iter().cloned().fold(f64::INFINITY, f64::min), in_range.iter().cloned().fold(f64::NEG_INFINITY, f64::max)));
                        prop_assert_eq!(w.min_max_since(t, inclusive), want, "tracked, since {} inclusive {}", t, inclusive);
                        prop_assert_eq!(plain.min_max_since(t, inclusive), want, "untracked, since {} inclusive {}", t, inclusive);
                    }
                }
            }
            // The window holds what the model keeps, plus at most old samples that a batch
            // trim has not dropped yet: all but the oldest within 9/8 of the retention.
            let want: Vec<Sample> = model.into_iter().map(|(_, x)| x).collect();
            prop_assert!(got.ends_with(&want), "{:?} does not end with {:?}", got, want);
            let newest = want.last().unwrap().ts_ms;
            prop_assert!(got.iter().skip(1).all(|x| x.ts_ms >= newest - retention - retention / 8), "{:?}", got);
        }
    }
}
