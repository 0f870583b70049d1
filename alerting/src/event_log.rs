//! The alert event log: assigns every event its `seq`, retains recent events for replay,
//! and fans events out to subscribers. [`EventLog`] is the seam a durable journal replaces.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
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

/// Appends events and serves subscriptions. Appending and subscribing are atomic with
/// respect to each other, which is what makes replay-then-live gap- and duplicate-free.
pub trait EventLog: Send + Sync {
    /// Gives the event the next `seq`, retains it and hands it to matching subscribers.
    fn append(&self, event: NewEvent) -> Arc<AlertEvent>;
    /// Subscribes with a filter; with `after_seq`, replays retained events after it first.
    fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription;
    /// The alert as of its newest retained event, if any.
    fn find_alert(&self, alert_id: &str) -> Option<Alert>;
    fn stats(&self) -> LogStats;
}

/// Where the log writes each event before handing it to anyone: the journal.
pub trait EventSink: Send + Sync {
    fn record(&self, event: &AlertEvent);
}

/// An [`EventLog`] in memory, bounded to the newest `capacity` events, optionally writing
/// every event to a durable [`EventSink`] first.
pub struct MemoryEventLog {
    inner: Mutex<Inner>,
    capacity: usize,
    subscriber_buffer: usize,
    sink: Option<Arc<dyn EventSink>>,
}

struct Inner {
    events: VecDeque<Arc<AlertEvent>>,
    next_seq: u64,
    dropped: u64,
    overflowed: u64,
    subscribers: Vec<Subscriber>,
}

struct Subscriber {
    filter: AlertFilter,
    tx: mpsc::Sender<Arc<AlertEvent>>,
    overflowed: Arc<AtomicBool>,
}

impl MemoryEventLog {
    /// A log retaining `capacity` events, buffering `subscriber_buffer` live events per
    /// subscriber. Sequence numbers start at `first_seq` (1 for a fresh data directory).
    pub fn new(capacity: usize, subscriber_buffer: usize, first_seq: u64) -> MemoryEventLog {
        MemoryEventLog {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                next_seq: first_seq.max(1),
                dropped: 0,
                overflowed: 0,
                subscribers: Vec::new(),
            }),
            capacity: capacity.max(1),
            subscriber_buffer: subscriber_buffer.max(1),
            sink: None,
        }
    }

    /// A log that continues a journal: the newest `capacity` events of `history` (oldest
    /// first) are retained for replay, numbering continues after `last_seq`, and every new
    /// event is written to `sink` before it is retained or handed to a subscriber.
    pub fn restored(
        capacity: usize,
        subscriber_buffer: usize,
        history: Vec<AlertEvent>,
        last_seq: u64,
        sink: Arc<dyn EventSink>,
    ) -> MemoryEventLog {
        let mut log = MemoryEventLog::new(capacity, subscriber_buffer, last_seq + 1);
        {
            let inner = log.inner.get_mut();
            let skip = history.len().saturating_sub(log.capacity);
            inner.dropped = skip as u64;
            inner
                .events
                .extend(history.into_iter().skip(skip).map(Arc::new));
        }
        log.sink = Some(sink);
        log
    }
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        MemoryEventLog::new(DEFAULT_RETAINED_EVENTS, DEFAULT_SUBSCRIBER_BUFFER, 1)
    }
}

impl EventLog for MemoryEventLog {
    fn append(&self, e: NewEvent) -> Arc<AlertEvent> {
        let mut inner = self.inner.lock();
        let event = Arc::new(AlertEvent {
            seq: inner.next_seq,
            kind: e.kind,
            alert: e.alert,
            at_ms: e.at_ms,
            by: e.by,
            note: e.note,
        });
        inner.next_seq += 1;
        if let Some(sink) = &self.sink {
            sink.record(&event);
        }
        if inner.events.len() == self.capacity {
            inner.events.pop_front();
            inner.dropped += 1;
        }
        inner.events.push_back(event.clone());
        if event.alert.silenced_by.is_some() {
            // Journaled and retained for History, but held back from subscribers while
            // the silence lasts.
            return event;
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
        event
    }

    fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription {
        let (tx, live) = mpsc::channel(self.subscriber_buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let mut inner = self.inner.lock();
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
        let oldest_retained = inner.events.front().map(|e| e.seq);
        let last_seq = inner.next_seq - 1;
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
        let inner = self.inner.lock();
        inner
            .events
            .iter()
            .rev()
            .find(|e| &*e.alert.id == alert_id)
            .map(|e| e.alert.clone())
    }

    fn stats(&self) -> LogStats {
        let mut inner = self.inner.lock();
        inner.subscribers.retain(|s| !s.tx.is_closed());
        LogStats {
            retained: inner.events.len(),
            dropped: inner.dropped,
            subscribers: inner.subscribers.len(),
            overflowed_subscribers: inner.overflowed,
            last_seq: inner.next_seq - 1,
        }
    }
}
