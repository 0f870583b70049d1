//! The one way to consume the alert stream: every retained event after a position, then
//! live events, with no gap and no duplicate between the two; optionally a position kept
//! under the consumer's name (in the journal; in cluster mode, in the cluster's bucket), so
//! a restart resumes where it stopped. gRPC
//! `Subscribe`, patient reminders and the demo's feed are consumers of this kind; a
//! notifier or the console's live board is one more.

use std::collections::BTreeSet;
use std::sync::Arc;

use vigil_alerting::{AlertEvent, AlertFilter, EventLog, Progress, Subscription};
pub use vigil_alerting::{PositionError, Positions};

/// What a consumer does when it falls further behind than its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// End the feed with [`FeedEnd::Behind`]: a remote client resubscribes from where it got.
    CutOff,
    /// Resubscribe at once from the last event handed out (from the retained events).
    Resume,
}

/// Why a feed gave no further event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedEnd {
    /// Cut off for falling behind; `resume_after` is where to resubscribe.
    Behind { resume_after: u64 },
    /// The log shut down.
    Closed,
}

pub struct AlertFeed {
    /// The engine's log on a single node; the mirror of the cluster's alert stream in
    /// cluster mode.
    log: Arc<dyn EventLog>,
    filter: AlertFilter,
    subscription: Subscription,
    replay: std::vec::IntoIter<Arc<AlertEvent>>,
    /// The last event handed out, else where the feed started.
    position: u64,
    lag: Lag,
    /// Where the position is kept, and under which name.
    durable: Option<(Arc<dyn Positions>, String)>,
    /// Events after the position that were handled ahead of their turn before a restart:
    /// not handed out again.
    skip: BTreeSet<u64>,
}

impl AlertFeed {
    /// Events after `after` (retained ones first), or only live ones without it.
    pub fn open(
        log: Arc<dyn EventLog>,
        filter: AlertFilter,
        after: Option<u64>,
        lag: Lag,
    ) -> AlertFeed {
        let mut subscription = log.subscribe(filter.clone(), after);
        let replay = std::mem::take(&mut subscription.replay).into_iter();
        let position = after.unwrap_or(subscription.last_seq);
        AlertFeed {
            log,
            filter,
            subscription,
            replay,
            position,
            lag,
            durable: None,
            skip: BTreeSet::new(),
        }
    }

    /// A feed whose position is kept in `positions` under `name`: it resumes after the last
    /// event it [committed](AlertFeed::commit); the first time, it starts with live events.
    /// It never cuts itself off (it resumes from its position instead).
    pub fn durable(
        log: Arc<dyn EventLog>,
        positions: Arc<dyn Positions>,
        name: &str,
        filter: AlertFilter,
    ) -> Result<AlertFeed, PositionError> {
        let progress = positions.progress(name)?;
        let after = progress.as_ref().map(|p| p.through);
        let mut feed = AlertFeed::open(log, filter, after, Lag::Resume);
        feed.skip = progress
            .map(|p| p.also.into_iter().collect())
            .unwrap_or_default();
        feed.durable = Some((positions, name.to_string()));
        Ok(feed)
    }

    /// The next event, waiting for one. Cancel-safe: usable in `select!`.
    pub async fn next(&mut self) -> Result<Arc<AlertEvent>, FeedEnd> {
        loop {
            if let Some(event) = self.replay.next() {
                if let Some(event) = self.hand_out(event) {
                    return Ok(event);
                }
                continue;
            }
            match self.subscription.live.recv().await {
                Some(event) => {
                    if let Some(event) = self.hand_out(event) {
                        return Ok(event);
                    }
                }
                None if !self.subscription.overflowed() => return Err(FeedEnd::Closed),
                None if self.lag == Lag::CutOff => {
                    return Err(FeedEnd::Behind {
                        resume_after: self.position,
                    })
                }
                None => {
                    tracing::debug!(after = self.position, "alert feed resubscribing");
                    self.subscription =
                        self.log.subscribe(self.filter.clone(), Some(self.position));
                    self.replay = std::mem::take(&mut self.subscription.replay).into_iter();
                    self.warn_if_missed();
                }
            }
        }
    }

    /// The next event if one is already there, without waiting.
    pub fn try_next(&mut self) -> Option<Arc<AlertEvent>> {
        loop {
            let event = match self.replay.next() {
                Some(event) => event,
                None => self.subscription.live.try_recv().ok()?,
            };
            if let Some(event) = self.hand_out(event) {
                return Some(event);
            }
        }
    }

    /// Events already waiting to be handed out (before selection by the consumer).
    pub fn waiting(&self) -> usize {
        self.replay.len() + self.subscription.live.len()
    }

    /// Says so when events after the position are no longer retained: the feed goes on
    /// with the oldest retained one, and the consumer never sees those before it.
    fn warn_if_missed(&self) {
        if let Some(oldest) = self.subscription.oldest_retained {
            if self.position + 1 < oldest {
                let name = self.durable.as_ref().map_or("", |(_, n)| n.as_str());
                tracing::warn!(
                    consumer = name,
                    after = self.position,
                    oldest,
                    "alert events after this consumer's position are no longer retained ([server] retained_events): it goes on with the oldest retained one"
                );
            }
        }
    }

    fn hand_out(&mut self, event: Arc<AlertEvent>) -> Option<Arc<AlertEvent>> {
        if event.seq <= self.position {
            // Already handed out (or before where the feed starts): a log still being
            // filled (a cluster node's copy of the alert stream) delivers older events live.
            return None;
        }
        self.position = event.seq;
        if self.skip.is_empty() || !self.skip.remove(&event.seq) {
            Some(event)
        } else {
            None
        }
    }

    /// The last event handed out, else where the feed started: the `after_seq` to resume
    /// with.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Seq of the newest event when the feed started: live events come after it.
    pub fn started_at(&self) -> u64 {
        self.subscription.last_seq
    }

    /// The oldest event still retained for replay when the feed started.
    pub fn oldest_retained(&self) -> Option<u64> {
        self.subscription.oldest_retained
    }

    /// Journals the position (a durable feed only): a restart resumes after it. Call it
    /// once the events up to the position are handled.
    pub fn commit(&self) -> Result<(), PositionError> {
        self.commit_progress(&Progress {
            through: self.position,
            also: Vec::new(),
        })
    }

    /// Journals where a consumer that handles events out of order stands (a durable feed
    /// only): everything up to `progress.through`, and `progress.also` above it.
    pub fn commit_progress(&self, progress: &Progress) -> Result<(), PositionError> {
        match &self.durable {
            Some((positions, name)) => positions.put_progress(name, progress),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_alerting::{AlertLog, Engine, EngineConfig, Journal, RuleSpec};
    use vigil_ingest::{Metric, Reading};

    const T0: i64 = 1_763_892_000_000;

    /// An engine whose rule raises at once for a heart rate above 120, with a subscriber
    /// buffer of `buffer` events.
    fn engine(buffer: usize) -> Arc<Engine> {
        let rule = RuleSpec {
            id: "tachycardia".into(),
            metric: Some("heart_rate".into()),
            above: Some(120.0),
            severity: Some("high".into()),
            ..RuleSpec::default()
        }
        .validate()
        .unwrap();
        Arc::new(Engine::new(
            EngineConfig::open(vec![rule]),
            Arc::new(AlertLog::new(1000, buffer, 1)),
        ))
    }

    /// Raises one alert per patient id given.
    fn raise(engine: &Engine, patients: &[&str]) {
        for p in patients {
            let reading = Reading {
                patient_id: p,
                metric: Metric::HeartRate,
                value: 150.0,
                ts_ms: T0,
                device_id: None,
                seq: None,
            };
            engine.process(&reading, T0).unwrap();
        }
    }

    async fn seqs(feed: &mut AlertFeed, n: usize) -> Vec<u64> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(feed.next().await.unwrap().seq);
        }
        out
    }

    /// A cluster node's copy of the alert stream is filled after a feed opened on it: the
    /// events up to the feed's position arrive live, and are not handed out.
    #[tokio::test]
    async fn a_feed_on_a_log_still_being_filled_skips_what_precedes_its_position() {
        let source = engine(100);
        raise(&source, &["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"]);
        let copy = Arc::new(AlertLog::new(100, 100, 1));
        copy.mirror_from(1);
        let mut feed = AlertFeed::open(copy.clone(), AlertFilter::default(), Some(5), Lag::Resume);
        let events = source
            .log()
            .subscribe(AlertFilter::default(), Some(0))
            .replay;
        assert_eq!(events.len(), 8);
        for e in events {
            copy.insert_numbered((*e).clone());
        }
        assert_eq!(seqs(&mut feed, 3).await, vec![6, 7, 8]);
        assert!(feed.try_next().is_none());
    }

    #[tokio::test]
    async fn a_durable_feed_resumes_after_its_journaled_position() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("journal")).unwrap());
        let engine = engine(64);
        raise(&engine, &["p1", "p2"]);
        let open = |e: &Arc<Engine>| {
            AlertFeed::durable(
                e.log().clone(),
                journal.clone(),
                "reminders",
                AlertFilter::default(),
            )
            .unwrap()
        };
        // First start: live events only.
        let mut feed = open(&engine);
        raise(&engine, &["p3"]);
        assert_eq!(seqs(&mut feed, 1).await, vec![3]);
        feed.commit().unwrap();
        drop(feed);
        // Events while the consumer is away are replayed from after its position.
        raise(&engine, &["p4", "p5"]);
        let mut feed = open(&engine);
        assert_eq!(seqs(&mut feed, 2).await, vec![4, 5]);
        raise(&engine, &["p6"]);
        assert_eq!(seqs(&mut feed, 1).await, vec![6]);
    }

    #[tokio::test]
    async fn events_handled_ahead_of_their_turn_are_not_handed_out_again() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(&dir.path().join("journal")).unwrap());
        let engine = engine(64);
        let open = || {
            AlertFeed::durable(
                engine.log().clone(),
                journal.clone(),
                "notifier:x",
                AlertFilter::default(),
            )
            .unwrap()
        };
        let mut feed = open();
        raise(&engine, &["p1", "p2", "p3", "p4"]);
        assert_eq!(seqs(&mut feed, 4).await, vec![1, 2, 3, 4]);
        assert_eq!(feed.try_next().map(|e| e.seq), None);
        // 1 and 3 handled (3 ahead of 2), then a restart.
        feed.commit_progress(&Progress {
            through: 1,
            also: vec![3],
        })
        .unwrap();
        drop(feed);
        let mut feed = open();
        assert_eq!(feed.waiting(), 3, "2, 3 and 4 replayed, 3 to be skipped");
        assert_eq!(feed.try_next().map(|e| e.seq), Some(2));
        assert_eq!(feed.try_next().map(|e| e.seq), Some(4));
        assert_eq!(feed.try_next().map(|e| e.seq), None);
    }

    #[tokio::test]
    async fn a_consumer_that_falls_behind_resumes_or_is_cut_off() {
        let engine = engine(2);
        let mut resuming = AlertFeed::open(
            engine.log().clone(),
            AlertFilter::default(),
            None,
            Lag::Resume,
        );
        let mut cut = AlertFeed::open(
            engine.log().clone(),
            AlertFilter::default(),
            None,
            Lag::CutOff,
        );
        raise(&engine, &["p1", "p2", "p3", "p4", "p5"]);
        assert_eq!(
            seqs(&mut resuming, 5).await,
            vec![1, 2, 3, 4, 5],
            "no gap, no duplicate"
        );
        assert_eq!(seqs(&mut cut, 2).await, vec![1, 2]);
        assert_eq!(
            cut.next().await.unwrap_err(),
            FeedEnd::Behind { resume_after: 2 }
        );
        let mut again = AlertFeed::open(
            engine.log().clone(),
            AlertFilter::default(),
            Some(2),
            Lag::CutOff,
        );
        assert_eq!(seqs(&mut again, 3).await, vec![3, 4, 5]);
    }
}
