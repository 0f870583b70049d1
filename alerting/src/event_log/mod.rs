//! The alert event log: assigns every event its `seq`, retains recent events for replay,
//! and fans events out to subscribers. [`EventLog`] is the seam a durable journal (or a
//! cluster's log) stands behind; `group_commit.rs` writes to it.

mod group_commit;

pub use group_commit::with_origin;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::mpsc;

use crate::alert::{Alert, AlertEvent, EventKind};
use crate::filter::AlertFilter;

/// Default number of events retained for `after_seq` replay.
pub const DEFAULT_RETAINED_EVENTS: usize = 100_000;
/// Default live-event buffer per subscriber before it is cut off as too slow.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 4096;

/// A new event, before the log gives it a `seq`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: EventKind,
    pub alert: Alert,
    pub at_ms: i64,
    pub by: String,
    pub note: String,
}

/// What a subscriber receives: a replay of retained events, then live ones.
pub struct Subscription {
    /// Retained events with `seq > after_seq` that match the filter, oldest first.
    pub replay: Vec<Arc<AlertEvent>>,
    /// Live events, strictly after the last replayed one. Closed when the subscriber is
    /// cut off (see [`Subscription::overflowed`]) or the log shuts down.
    pub live: mpsc::Receiver<Arc<AlertEvent>>,
    /// Oldest seq still retained (`None` if none): a client whose `after_seq` is older has
    /// missed events that can no longer be replayed.
    pub oldest_retained: Option<u64>,
    /// Seq of the newest event when the subscription started (0 if none): live events
    /// start right after it, so a live-only client can later resume with it.
    pub last_seq: u64,
    overflowed: Arc<AtomicBool>,
}

impl Subscription {
    /// True once the subscriber's buffer overflowed and the log stopped feeding it.
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Counters describing the log, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LogStats {
    pub retained: usize,
    pub dropped: u64,
    pub subscribers: usize,
    pub overflowed_subscribers: u64,
    pub last_seq: u64,
}

/// Called for every RAISED event with an origin, once it has been handed to subscribers.
pub type DeliveryHook = Box<dyn Fn(&AlertEvent, Instant) + Send + Sync>;

/// Appends events and serves subscriptions. Appending and subscribing are atomic with
/// respect to each other, which is what makes replay-then-live gap- and duplicate-free.
pub trait EventLog: Send + Sync {
    /// Gives the event the next `seq`; it is retained and handed to matching subscribers
    /// once it is durable (at once for a log without a durable sink).
    fn append(&self, event: NewEvent) -> Arc<AlertEvent>;
    /// Subscribes with a filter; with `after_seq`, replays retained events after it first.
    fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription;
    /// The alert as of its newest event, if any is retained or about to be.
    fn find_alert(&self, alert_id: &str) -> Option<Alert>;
    fn stats(&self) -> LogStats;
    /// Returns once every event appended before the call is durable and delivered.
    fn flush(&self) {}
    /// Installs the hook told of each RAISED event's delivery (at most one; later calls
    /// are ignored).
    fn on_delivered(&self, _hook: DeliveryHook) {}
}

/// Where the log writes events before handing them to anyone: the journal. Events come
/// in `seq` order, in batches (group commit: one fsync for every event appended while the
/// previous batch was being written).
pub trait EventSink: Send + Sync {
    fn record(&self, events: &[Arc<AlertEvent>]);
}

/// An [`EventLog`] in memory, bounded to the newest `capacity` events, optionally writing
/// every event to a durable [`EventSink`] first.
///
/// With a sink, `append` only queues the event: a writer thread writes what has queued
/// in one batch, then retains and delivers it. The thread that raised an alert (the MQTT
/// consumer) never waits for the disk, and no subscriber ever sees an event that a crash
/// could take back.
pub struct AlertLog {
    core: Arc<Core>,
    writer: Option<std::thread::JoinHandle<()>>,
}

struct Core {
    inner: Mutex<Inner>,
    capacity: usize,
    subscriber_buffer: usize,
    /// Wakes the writer when events queue or the log closes.
    work: Condvar,
    /// Wakes `flush` callers when a batch became durable.
    durable: Condvar,
    on_delivered: OnceLock<DeliveryHook>,
}

struct Inner {
    events: VecDeque<Arc<AlertEvent>>,
    next_seq: u64,
    /// Newest seq retained and delivered.
    durable_seq: u64,
    /// Appended, not yet durable (with a sink), in seq order, with their origins.
    pending: Vec<(Arc<AlertEvent>, Option<Instant>)>,
    closing: bool,
    /// A mirror's first sequence: nothing before it exists to be missed, even where the
    /// first events it holds come later (sequences it skipped were not events).
    floor: Option<u64>,
    dropped: u64,
    overflowed: u64,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    filter: AlertFilter,
    tx: mpsc::Sender<Arc<AlertEvent>>,
    overflowed: Arc<AtomicBool>,
}

impl AlertLog {
    /// A log retaining `capacity` events, buffering `subscriber_buffer` live events per
    /// subscriber. Sequence numbers start at `first_seq` (1 for a fresh data directory).
    pub fn new(capacity: usize, subscriber_buffer: usize, first_seq: u64) -> AlertLog {
        let first_seq = first_seq.max(1);
        AlertLog {
            core: Arc::new(Core {
                inner: Mutex::new(Inner {
                    events: VecDeque::new(),
                    next_seq: first_seq,
                    durable_seq: first_seq - 1,
                    pending: Vec::new(),
                    closing: false,
                    floor: None,
                    dropped: 0,
                    overflowed: 0,
                    subscribers: Vec::new(),
                }),
                capacity: capacity.max(1),
                subscriber_buffer: subscriber_buffer.max(1),
                work: Condvar::new(),
                durable: Condvar::new(),
                on_delivered: OnceLock::new(),
            }),
            writer: None,
        }
    }
}

impl Core {
    /// Retains `event` and hands it to matching subscribers.
    fn deliver(&self, inner: &mut Inner, event: Arc<AlertEvent>, origin: Option<Instant>) {
        inner.durable_seq = event.seq;
        if inner.events.len() == self.capacity {
            inner.events.pop_front();
            inner.dropped += 1;
        }
        inner.events.push_back(event.clone());
        if event.alert.silenced_by.is_some() {
            // Journaled and retained for History, but held back from subscribers while
            // the silence lasts.
            return;
        }
        // Told just before the hand-off, so that a subscriber that has the event can count
        // on the measurement being recorded.
        if let (Some(origin), Some(hook)) = (origin, self.on_delivered.get()) {
            if event.kind == EventKind::Raised {
                hook(&event, origin);
            }
        }
        let mut cut_off = 0;
        inner.subscribers.retain(|s| {
            if s.tx.is_closed() {
                return false;
            }
            if !s.filter.matches(&event.alert) {
                return true;
            }
            match s.tx.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    s.overflowed.store(true, Ordering::Release);
                    cut_off += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        inner.overflowed += cut_off;
    }
}

impl AlertLog {
    /// Says where a mirror starts: `after_seq` from just before it replays everything.
    pub fn mirror_from(&self, seq: u64) {
        let mut inner = self.core.inner.lock();
        if inner.floor.is_none() && inner.events.is_empty() {
            inner.floor = Some(seq);
        }
    }

    /// Every retained event of one alert, oldest first.
    pub fn events_of(&self, alert_id: &str) -> Vec<AlertEvent> {
        let inner = self.core.inner.lock();
        inner
            .events
            .iter()
            .filter(|e| &*e.alert.id == alert_id)
            .map(|e| (**e).clone())
            .collect()
    }

    /// Takes an event numbered elsewhere (a mirror of a cluster's alert stream: `seq` is the
    /// stream's sequence) and hands it to subscribers at once. Numbers must rise; gaps are
    /// allowed. Only for a log without a sink, appended to by no one else. False (and
    /// nothing done) for a number not above the newest.
    pub fn insert_numbered(&self, event: AlertEvent) -> bool {
        let mut inner = self.core.inner.lock();
        if event.seq < inner.next_seq {
            return false;
        }
        inner.next_seq = event.seq + 1;
        self.core.deliver(&mut inner, Arc::new(event), None);
        true
    }
}

impl Default for AlertLog {
    fn default() -> Self {
        AlertLog::new(DEFAULT_RETAINED_EVENTS, DEFAULT_SUBSCRIBER_BUFFER, 1)
    }
}

impl EventLog for AlertLog {
    fn append(&self, e: NewEvent) -> Arc<AlertEvent> {
        let mut inner = self.core.inner.lock();
        let event = Arc::new(AlertEvent {
            seq: inner.next_seq,
            kind: e.kind,
            alert: e.alert,
            at_ms: e.at_ms,
            by: e.by,
            note: e.note,
        });
        inner.next_seq += 1;
        let origin = group_commit::origin();
        if self.writer.is_some() {
            inner.pending.push((event.clone(), origin));
            if origin.is_some() {
                self.core.wake_after_reading();
            } else {
                self.core.work.notify_one();
            }
        } else {
            self.core.deliver(&mut inner, event.clone(), origin);
        }
        event
    }

    fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription {
        let (tx, live) = mpsc::channel(self.core.subscriber_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut inner = self.core.inner.lock();
        let replay = match after_seq {
            None => Vec::new(),
            Some(after) => {
                let start = inner.events.partition_point(|e| e.seq <= after);
                inner
                    .events
                    .range(start..)
                    .filter(|e| e.alert.silenced_by.is_none() && filter.matches(&e.alert))
                    .cloned()
                    .collect()
            }
        };
        let oldest_retained = match (inner.floor, inner.events.front()) {
            (Some(floor), _) if inner.dropped == 0 => Some(floor),
            (_, front) => front.map(|e| e.seq),
        };
        // Live delivery continues after the newest delivered event (queued ones follow).
        let last_seq = inner.durable_seq;
        inner.subscribers.push(Subscriber {
            filter,
            tx,
            overflowed: overflowed.clone(),
        });
        Subscription {
            replay,
            live,
            oldest_retained,
            last_seq,
            overflowed,
        }
    }

    fn find_alert(&self, alert_id: &str) -> Option<Alert> {
        let inner = self.core.inner.lock();
        inner
            .events
            .iter()
            .chain(inner.pending.iter().map(|(e, _)| e))
            .rev()
            .find(|e| &*e.alert.id == alert_id)
            .map(|e| e.alert.clone())
    }

    fn stats(&self) -> LogStats {
        let mut inner = self.core.inner.lock();
        inner.subscribers.retain(|s| !s.tx.is_closed());
        LogStats {
            retained: inner.events.len(),
            dropped: inner.dropped,
            subscribers: inner.subscribers.len(),
            overflowed_subscribers: inner.overflowed,
            last_seq: inner.next_seq - 1,
        }
    }

    fn on_delivered(&self, hook: DeliveryHook) {
        let _ = self.core.on_delivered.set(hook);
    }

    fn flush(&self) {
        self.flush_writer();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alert::{AlertState, Severity};

    /// A sink that takes its time and remembers the batches it was given.
    #[derive(Default)]
    struct SlowSink {
        batches: Mutex<Vec<Vec<u64>>>,
    }

    impl EventSink for SlowSink {
        fn record(&self, events: &[Arc<AlertEvent>]) {
            std::thread::sleep(Duration::from_millis(30));
            self.batches
                .lock()
                .push(events.iter().map(|e| e.seq).collect());
        }
    }

    fn event(n: usize) -> NewEvent {
        NewEvent {
            kind: EventKind::Raised,
            alert: Alert {
                id: format!("a{n}").into(),
                patient_id: "p".into(),
                rule_id: "r".into(),
                severity: Severity::High,
                metric: "heart_rate",
                unit: "/min",
                value: 150.0,
                message: String::new(),
                patient_message: None,
                state: AlertState::Active,
                care_team: "ward".into(),
                observed_at_ms: 0,
                raised_at_ms: 0,
                acknowledged: None,
                resolved: None,
                escalation_level: 0,
                escalated_to: vec![],
                active_since_ms: 0,
                snoozed_until_ms: 0,
                silenced_by: None,
                disposition: None,
                assignee: None,
                parameters: None,
                rule_set_version: 0,
                rule_set_hash: None,
            },
            at_ms: 0,
            by: String::new(),
            note: String::new(),
        }
    }

    #[test]
    fn group_commit_delivers_in_order_only_after_the_sink_wrote() {
        let sink = Arc::new(SlowSink::default());
        let log = AlertLog::restored(100, 100, vec![], 0, sink.clone());
        let mut sub = log.subscribe(AlertFilter::default(), None);
        let started = std::time::Instant::now();
        for n in 0..20 {
            log.append(event(n));
        }
        assert!(
            started.elapsed() < Duration::from_millis(30),
            "appending never waits for the disk"
        );
        assert!(
            sub.live.try_recv().is_err(),
            "nothing delivered before it is durable"
        );
        log.flush();
        let written: Vec<u64> = sink.batches.lock().concat();
        assert_eq!(
            written,
            (1..=20).collect::<Vec<_>>(),
            "every event, in seq order"
        );
        let batches = sink.batches.lock().clone();
        assert!(
            batches.len() < 20,
            "events appended during a write share the next fsync: {batches:?}"
        );
        assert!(
            batches.iter().all(|b| b.len() <= 50),
            "no batch larger than half a subscriber's buffer"
        );
        let delivered: Vec<u64> = std::iter::from_fn(|| sub.live.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(delivered, (1..=20).collect::<Vec<_>>());
        assert_eq!(
            log.subscribe(AlertFilter::default(), Some(0)).replay.len(),
            20
        );
    }

    #[test]
    fn the_delivery_hook_sees_raised_events_with_their_reading_origin() {
        let sink = Arc::new(SlowSink::default());
        let log = AlertLog::restored(100, 100, vec![], 0, sink);
        let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let record = seen.clone();
        log.on_delivered(Box::new(move |e, origin| {
            record.lock().push((e.seq, origin))
        }));
        let received = Instant::now();
        with_origin(received, || log.append(event(1)));
        log.append(event(2)); // no origin: a timer's event, not a reading's
        log.flush();
        let seen = seen.lock().clone();
        assert_eq!(seen, vec![(1, received)]);
        assert!(
            received.elapsed() >= Duration::from_millis(30),
            "after the write"
        );
    }

    #[test]
    fn the_alerts_of_one_reading_share_one_write() {
        let sink = Arc::new(SlowSink::default());
        let log = AlertLog::restored(100, 100, vec![], 0, sink.clone());
        log.append(event(0));
        log.flush();
        // Let the writer go back to waiting: it takes whatever is queued when it looks.
        std::thread::sleep(Duration::from_millis(50));
        with_origin(Instant::now(), || {
            log.append(event(1));
            // The rest of the reading's rules take their time: the writer waits for them.
            std::thread::sleep(Duration::from_millis(20));
            log.append(event(2));
        });
        log.flush();
        assert_eq!(*sink.batches.lock(), vec![vec![1], vec![2, 3]]);
    }

    #[test]
    fn flushing_inside_a_reading_does_not_wait_for_its_end() {
        let sink = Arc::new(SlowSink::default());
        let log = Arc::new(AlertLog::restored(100, 100, vec![], 0, sink.clone()));
        log.append(event(0));
        log.flush();
        std::thread::sleep(Duration::from_millis(50));
        let (done, flushed) = std::sync::mpsc::channel();
        let reading = log.clone();
        std::thread::spawn(move || {
            with_origin(Instant::now(), || {
                reading.append(event(1));
                reading.flush();
                let _ = done.send(());
            })
        });
        assert!(
            flushed.recv_timeout(Duration::from_secs(5)).is_ok(),
            "flush returned while its own reading held the writer's wake-up"
        );
        assert_eq!(sink.batches.lock().concat(), vec![1, 2]);
    }

    #[test]
    fn dropping_the_log_writes_what_is_queued() {
        let sink = Arc::new(SlowSink::default());
        let log = AlertLog::restored(100, 100, vec![], 7, sink.clone());
        for n in 0..3 {
            log.append(event(n));
        }
        drop(log);
        assert_eq!(sink.batches.lock().concat(), vec![8, 9, 10]);
    }

    /// A mirror of a cluster's stream: events keep the stream's numbers, gaps and all; a
    /// subscriber from the mirror's start misses nothing; numbers never go back.
    #[test]
    fn a_mirror_keeps_the_numbers_it_is_given() {
        let log = AlertLog::new(100, 100, 1);
        log.mirror_from(1);
        let numbered = |n: usize, seq: u64| {
            let e = event(n);
            AlertEvent {
                seq,
                kind: e.kind,
                alert: e.alert,
                at_ms: e.at_ms,
                by: e.by,
                note: e.note,
            }
        };
        let mut live = log.subscribe(AlertFilter::default(), None);
        assert!(log.insert_numbered(numbered(1, 5)));
        assert!(log.insert_numbered(numbered(2, 9)));
        assert!(
            !log.insert_numbered(numbered(3, 9)),
            "a number not above the newest"
        );
        assert_eq!(live.live.try_recv().unwrap().seq, 5);
        assert_eq!(live.live.try_recv().unwrap().seq, 9);
        let from_start = log.subscribe(AlertFilter::default(), Some(0));
        assert_eq!(from_start.oldest_retained, Some(1));
        assert_eq!(
            from_start.replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![5, 9]
        );
        assert_eq!(log.stats().last_seq, 9);
    }
}
