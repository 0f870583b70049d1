//! What people do to alerts through the engine: acknowledge, resolve, snooze, silence,
//! list and subscribe. Every change is durable before it returns.

use super::*;

impl Engine {
    /// Mutes escalation and re-notification of one alert until `until_ms` (not after
    /// `now_ms`: cancels).
    pub fn snooze(
        &self,
        id: &str,
        until_ms: i64,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.durable(self.book.snooze(id, until_ms, by, note, now_ms))
    }

    /// Returns `result` once every alert event so far is durable: what a caller is told
    /// happened must survive a crash.
    pub(super) fn durable<T>(&self, result: T) -> T {
        self.book.log().flush();
        result
    }

    /// Adds a silence; alerts raised while it lasts are journaled but held back from
    /// subscribers.
    pub fn add_silence(&self, silence: Silence) {
        self.book.add_silence(silence);
    }

    /// Ends a silence now, delivering the open alerts it held.
    pub fn delete_silence(&self, id: &str, now_ms: i64) -> Option<Silence> {
        self.durable(self.book.delete_silence(id, now_ms))
    }

    /// Silences not yet ended.
    pub fn silences(&self, now_ms: i64) -> Vec<Silence> {
        self.book.silences(now_ms)
    }

    /// Gives an open alert to `assignee` (`None`: nobody).
    pub fn assign(
        &self,
        id: &str,
        assignee: Option<&str>,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.durable(self.book.assign(id, assignee, by, note, now_ms))
    }

    /// A handover: every open alert `filter` selects that is assigned to `from` goes to
    /// `to`. Returns them.
    pub fn handover(
        &self,
        filter: &AlertFilter,
        from: &str,
        to: &str,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Vec<Alert> {
        self.durable(
            self.book
                .reassign_where(|a| filter.matches(a), from, to, by, note, now_ms),
        )
    }

    /// ACTIVE → ACKNOWLEDGED, recording what it led to if `disposition` is given.
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        note: &str,
        disposition: Option<&str>,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.durable(self.book.acknowledge(id, by, note, disposition, now_ms))
    }

    /// Open → RESOLVED by a person, recording what it led to if `disposition` is given.
    pub fn resolve(
        &self,
        id: &str,
        by: &str,
        note: &str,
        disposition: Option<&str>,
        now_ms: i64,
    ) -> Result<Alert, AlertingError> {
        self.durable(self.book.resolve(id, by, note, disposition, now_ms))
    }

    /// The alert `id` if it is open (active or acknowledged).
    pub fn open_alert(&self, id: &str) -> Option<Alert> {
        self.book.get(id)
    }

    pub fn list_active(&self, filter: &AlertFilter) -> Vec<Alert> {
        self.book.list(filter)
    }

    pub fn subscribe(&self, filter: AlertFilter, after_seq: Option<u64>) -> Subscription {
        self.book.log().subscribe(filter, after_seq)
    }

    pub fn log(&self) -> &Arc<dyn EventLog> {
        self.book.log()
    }
}
