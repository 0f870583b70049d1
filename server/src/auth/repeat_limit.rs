//! Repeated refusals in bounded log space: per (reason, source), the first few of an
//! interval are written in full and the rest only counted, then summed up in one line when
//! the interval ends. A client spraying bad credentials costs a counter, not a log line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Entries written in full per (reason, source) and interval.
pub const IN_FULL: u64 = 3;
/// Length of one interval.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Sources tracked per interval; beyond, further sources share one "other sources" entry.
pub const MAX_SOURCES: usize = 1024;
/// The source an occurrence is counted under once [`MAX_SOURCES`] are tracked.
pub const OTHER_SOURCES: &str = "other sources";

/// Whether one occurrence is to be written in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    InFull,
    Counted,
}

/// Occurrences of one (reason, source) that an ended interval counted without writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub reason: &'static str,
    pub source: String,
    pub suppressed: u64,
    pub interval: Duration,
}

pub struct RepeatLimiter {
    state: Mutex<State>,
}

struct State {
    started: Instant,
    seen: HashMap<(&'static str, Box<str>), u64>,
}

impl RepeatLimiter {
    pub fn new(now: Instant) -> RepeatLimiter {
        RepeatLimiter {
            state: Mutex::new(State {
                started: now,
                seen: HashMap::new(),
            }),
        }
    }

    /// Counts one occurrence; returns whether to write it, and the summaries of an
    /// interval that ended before `now`.
    pub fn admit(
        &self,
        reason: &'static str,
        source: &str,
        now: Instant,
    ) -> (Verdict, Vec<Summary>) {
        let mut state = self.state.lock();
        let summaries = state.roll(now);
        let tracked = state.seen.len();
        let count = match state.seen.get_mut(&(reason, source.into())) {
            Some(count) => count,
            None => {
                let source = if tracked < MAX_SOURCES {
                    source
                } else {
                    OTHER_SOURCES
                };
                state.seen.entry((reason, source.into())).or_insert(0)
            }
        };
        *count += 1;
        let verdict = if *count <= IN_FULL {
            Verdict::InFull
        } else {
            Verdict::Counted
        };
        (verdict, summaries)
    }

    /// The summaries of an interval that ended before `now` (for a periodic flush, so a
    /// burst is summed up even if nothing follows it).
    pub fn roll(&self, now: Instant) -> Vec<Summary> {
        self.state.lock().roll(now)
    }
}

impl State {
    fn roll(&mut self, now: Instant) -> Vec<Summary> {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < INTERVAL {
            return Vec::new();
        }
        self.started = now;
        let mut summaries: Vec<Summary> = self
            .seen
            .drain()
            .filter(|(_, count)| *count > IN_FULL)
            .map(|((reason, source), count)| Summary {
                reason,
                source: source.into(),
                suppressed: count - IN_FULL,
                interval: elapsed,
            })
            .collect();
        summaries.sort_by(|a, b| (a.reason, &a.source).cmp(&(b.reason, &b.source)));
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_few_are_written_and_the_rest_summed_up_once() {
        let t0 = Instant::now();
        let limiter = RepeatLimiter::new(t0);
        let verdicts: Vec<Verdict> = (0..10)
            .map(|_| limiter.admit("bad_credentials", "10.0.0.7", t0).0)
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::InFull).count(),
            3
        );
        assert_eq!(verdicts[3..], [Verdict::Counted; 7]);
        // Another source and another reason have their own allowance.
        assert_eq!(
            limiter.admit("bad_credentials", "10.0.0.8", t0).0,
            Verdict::InFull
        );
        assert_eq!(
            limiter.admit("bad_token", "10.0.0.7", t0).0,
            Verdict::InFull
        );
        assert!(
            limiter.roll(t0 + INTERVAL / 2).is_empty(),
            "interval not over"
        );

        let summaries = limiter.roll(t0 + INTERVAL);
        assert_eq!(
            summaries,
            vec![Summary {
                reason: "bad_credentials",
                source: "10.0.0.7".into(),
                suppressed: 7,
                interval: INTERVAL,
            }]
        );
        assert!(limiter.roll(t0 + INTERVAL * 2).is_empty(), "summed up once");
        let (verdict, _) = limiter.admit("bad_credentials", "10.0.0.7", t0 + INTERVAL * 2);
        assert_eq!(verdict, Verdict::InFull, "a new interval, a new allowance");
    }

    #[test]
    fn sources_beyond_the_bound_share_one_entry() {
        let t0 = Instant::now();
        let limiter = RepeatLimiter::new(t0);
        for i in 0..MAX_SOURCES + 500 {
            limiter.admit(
                "missing_credentials",
                &format!("10.1.{}.{}", i / 256, i % 256),
                t0,
            );
        }
        let summaries = limiter.roll(t0 + INTERVAL);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].source, OTHER_SOURCES);
        assert_eq!(summaries[0].suppressed, 500 - IN_FULL);
        assert_eq!(limiter.state.lock().seen.len(), 0);
    }
}
