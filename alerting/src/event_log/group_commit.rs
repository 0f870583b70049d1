//! Group commit: with a durable sink, appends only queue; one writer thread writes what
//! has queued in one batch (one fsync), then retains and delivers it. The thread that
//! raised an alert never waits for the disk, no subscriber sees an event a crash could
//! take back, and every alert one reading raises shares one write: the writer is woken when
//! the reading's processing ends ([`with_origin`], a thread-local scope), not at each
//! append. This file holds the log's only thread; the rest of the log is synchronous.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use super::{AlertLog, Core, EventSink};
use crate::alert::AlertEvent;

thread_local! {
    /// When the reading being processed on this thread was received (see [`with_origin`]).
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The log whose journal writer is woken once that reading is processed.
    static WAKE_AFTER: RefCell<Option<Arc<Core>>> = const { RefCell::new(None) };
}

/// When the reading being processed on this thread was received, if one is.
pub(super) fn origin() -> Option<Instant> {
    ORIGIN.get()
}

/// Runs `f` (the processing of one reading) with `received` as the origin of every alert
/// event it appends, so the log can report reading → delivery latency. The journal writer
/// is woken once `f` returns, not at each append: every alert one reading raises shares one
/// fsync (a reading of 280/min raises the heart-rate rule and any rule an operator added).
pub fn with_origin<T>(received: Instant, f: impl FnOnce() -> T) -> T {
    /// Restores the outer origin, and wakes the writer when the outermost scope ends,
    /// panicking or not.
    struct Scope(Option<Instant>);
    impl Drop for Scope {
        fn drop(&mut self) {
            ORIGIN.set(self.0);
            if self.0.is_none() {
                if let Some(core) = WAKE_AFTER.take() {
                    core.work.notify_one();
                }
            }
        }
    }
    let _scope = Scope(ORIGIN.replace(Some(received)));
    f()
}

impl AlertLog {
    /// A log that continues a journal: the newest `capacity` events of `history` (oldest
    /// first) are retained for replay, numbering continues after `last_seq`, and every new
    /// event is written to `sink` before it is retained or handed to a subscriber.
    pub fn restored(
        capacity: usize,
        subscriber_buffer: usize,
        history: Vec<AlertEvent>,
        last_seq: u64,
        sink: Arc<dyn EventSink>,
    ) -> AlertLog {
        let mut log = AlertLog::new(capacity, subscriber_buffer, last_seq + 1);
        {
            let mut inner = log.core.inner.lock();
            let skip = history.len().saturating_sub(log.core.capacity);
            inner.dropped = skip as u64;
            inner
                .events
                .extend(history.into_iter().skip(skip).map(Arc::new));
        }
        let core = log.core.clone();
        log.writer = Some(
            std::thread::Builder::new()
                .name("journal-writer".into())
                .spawn(move || core.write_loop(sink))
                .expect("spawning the journal writer thread"),
        );
        log
    }

    /// Returns once every event appended before the call is durable and delivered.
    pub(super) fn flush_writer(&self) {
        if self.writer.is_none() {
            return;
        }
        let mut inner = self.core.inner.lock();
        let target = inner.next_seq - 1;
        if !inner.pending.is_empty() {
            // A reading still being processed on this thread may hold the writer's wake-up.
            self.core.work.notify_one();
        }
        while inner.durable_seq < target {
            self.core.durable.wait(&mut inner);
        }
    }
}

impl Core {
    /// Writes queued events in batches until the log closes and the queue is empty.
    fn write_loop(&self, sink: Arc<dyn EventSink>) {
        loop {
            let batch = {
                let mut inner = self.inner.lock();
                loop {
                    if !inner.pending.is_empty() {
                        // At most half a subscriber's buffer per batch: a burst of alerts
                        // must not cut off a subscriber that keeps up between fsyncs.
                        let n = inner.pending.len().min(self.max_batch());
                        break inner.pending.drain(..n).collect::<Vec<_>>();
                    }
                    if inner.closing {
                        return;
                    }
                    self.work.wait(&mut inner);
                }
            };
            let events: Vec<Arc<AlertEvent>> = batch.iter().map(|(e, _)| e.clone()).collect();
            sink.record(&events);
            let mut inner = self.inner.lock();
            for (event, origin) in batch {
                self.deliver(&mut inner, event, origin);
            }
            self.durable.notify_all();
        }
    }

    /// Defers waking the writer to the end of the reading being processed on this thread
    /// (see [`with_origin`]).
    pub(super) fn wake_after_reading(self: &Arc<Self>) {
        WAKE_AFTER.with_borrow_mut(|deferred| match deferred {
            Some(core) if Arc::ptr_eq(core, self) => {}
            _ => {
                // Another log (only in tests): wake it now, it is not this reading's.
                if let Some(other) = deferred.replace(self.clone()) {
                    other.work.notify_one();
                }
            }
        });
    }

    fn max_batch(&self) -> usize {
        (self.subscriber_buffer / 2).max(1)
    }
}

impl Drop for AlertLog {
    /// Writes and delivers whatever is still queued, then stops the writer.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.core.inner.lock().closing = true;
            self.core.work.notify_one();
            let _ = writer.join();
        }
    }
}
