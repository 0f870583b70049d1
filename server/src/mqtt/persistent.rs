//! Persistent sessions (MQTT 3.1.1 clean session 0): per client id, the subscriptions,
//! the messages not yet sent and those sent but not acknowledged, kept while the client
//! is away and resent when it comes back (§3.1.2.4, §4.4).
//!
//! Bounded: at most `max_sessions` sessions; a queue holds at most `max_queued` messages
//! (the oldest is dropped and counted), and all queues together at most `max_bytes`; a
//! session nobody has resumed for `expiry` is
//! removed. QoS 0 messages are not queued for a client that is away (as Mosquitto does by
//! default); QoS 1 and 2 messages are, and are delivered at QoS 1.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::subscriptions::{is_wildcard, Subscriptions};

/// The bounds on persistent sessions.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub max_queued: usize,
    /// Topic and payload bytes of every session's messages together.
    pub max_bytes: usize,
    /// Messages sent to one client and not yet acknowledged, at most.
    pub max_inflight: usize,
    pub expiry: Duration,
}

/// Filters one persistent session may hold: each is kept, indexed and matched against
/// every publish while the client is away.
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// A message on its way to one client: topic and payload in one shared allocation (one
/// per publish, however many sessions it reaches), 24 bytes in a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SavedMessage", into = "SavedMessage")]
pub struct Message {
    /// The topic's bytes, then the payload's.
    data: Arc<[u8]>,
    topic_len: u16,
    /// 0 or 1.
    pub qos: u8,
    pub retain: bool,
}

/// How a message is saved.
#[derive(Serialize, Deserialize)]
struct SavedMessage {
    topic: String,
    payload: Bytes,
    qos: u8,
    retain: bool,
}

impl From<SavedMessage> for Message {
    fn from(m: SavedMessage) -> Message {
        Message::new(&m.topic, &m.payload, m.qos, m.retain)
    }
}

impl From<Message> for SavedMessage {
    fn from(m: Message) -> SavedMessage {
        SavedMessage {
            topic: m.topic().to_string(),
            payload: m.payload(),
            qos: m.qos,
            retain: m.retain,
        }
    }
}

/// A packet to write: `pkid` 0 for QoS 0; `dup` when it is sent again.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub message: Message,
    pub pkid: u16,
    pub dup: bool,
}

/// What is kept of one client's session.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredSession {
    /// The authenticated device that owns it (`None` without authentication): another
    /// identity may not resume it.
    pub owner: Option<String>,
    pub subscriptions: Subscriptions,
    pub queue: VecDeque<Message>,
    /// Sent, not acknowledged, in the order sent.
    pub inflight: VecDeque<(u16, Message)>,
    next_pkid: u16,
    /// When the client went away (ms since the epoch); `None` while it is connected.
    pub away_since_ms: Option<i64>,
    /// Inflight messages to send again (with DUP) before anything else.
    #[serde(skip)]
    resend: usize,
}

impl StoredSession {
    /// Every message it holds: sent and unacknowledged, then queued.
    fn held(&self) -> impl Iterator<Item = &Message> {
        self.inflight
            .iter()
            .map(|(_, m)| m)
            .chain(self.queue.iter())
    }
}

/// Why a persistent session could not be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachRefused {
    /// Another identity's session holds the client id.
    NotOwner,
    /// `max_sessions` sessions exist.
    Full,
}

/// What the store counted, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub sessions: usize,
    /// Of them, held by a connection.
    pub connected: usize,
    /// Queued and inflight messages of every session.
    pub messages: usize,
    /// Their topic and payload bytes.
    pub bytes: usize,
    pub dropped: u64,
    pub expired: u64,
    pub redelivered: u64,
}

struct Entry {
    state: StoredSession,
    /// Woken when a message is queued; `Some` while a connection holds the session.
    wake: Option<Arc<Notify>>,
}

/// Every persistent session, and which of them each filter reaches.
pub struct SessionStore {
    limits: SessionLimits,
    sessions: HashMap<String, Entry>,
    /// Filters without wildcards → the client ids subscribed with it.
    exact: HashMap<String, HashSet<String>>,
    /// Client ids with at least one wildcard filter.
    wild: HashSet<String>,
    counts: SessionCounts,
}

impl Message {
    /// A copy of `topic` (at most 65 535 bytes, as MQTT allows) and `payload`.
    pub fn new(topic: &str, payload: &[u8], qos: u8, retain: bool) -> Message {
        let topic = &topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))];
        let mut data = Vec::with_capacity(topic.len() + payload.len());
        data.extend_from_slice(topic);
        data.extend_from_slice(payload);
        Message {
            data: data.into(),
            topic_len: topic.len() as u16,
            qos,
            retain,
        }
    }

    pub fn topic(&self) -> &str {
        std::str::from_utf8(&self.data[..usize::from(self.topic_len)]).unwrap_or_default()
    }

    /// The payload, sharing the message's allocation.
    pub fn payload(&self) -> Bytes {
        Bytes::from_owner(self.data.clone()).slice(usize::from(self.topic_len)..)
    }

    /// What it counts against `max_bytes`.
    fn size(&self) -> usize {
        self.data.len()
    }
}

impl SessionStore {
    pub fn new(limits: SessionLimits) -> SessionStore {
        SessionStore {
            limits,
            sessions: HashMap::new(),
            exact: HashMap::new(),
            wild: HashSet::new(),
            counts: SessionCounts::default(),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    pub fn counts(&self) -> SessionCounts {
        SessionCounts {
            sessions: self.sessions.len(),
            ..self.counts
        }
    }

    /// Attaches a connection of `owner` to `client_id`'s session, creating it if there is
    /// none; returns whether one was present (CONNACK's session present) and what wakes
    /// the connection when a message is queued. Messages sent before and not acknowledged
    /// are sent again first.
    pub fn attach(
        &mut self,
        client_id: &str,
        owner: Option<&str>,
    ) -> Result<(bool, Arc<Notify>), AttachRefused> {
        let wake = Arc::new(Notify::new());
        if let Some(entry) = self.sessions.get_mut(client_id) {
            if entry.state.owner.as_deref() != owner {
                return Err(AttachRefused::NotOwner);
            }
            if entry.wake.is_none() {
                self.counts.connected += 1;
            }
            entry.state.away_since_ms = None;
            entry.state.resend = entry.state.inflight.len();
            entry.wake = Some(wake.clone());
            return Ok((true, wake));
        }
        if self.sessions.len() >= self.limits.max_sessions {
            return Err(AttachRefused::Full);
        }
        self.sessions.insert(
            client_id.to_string(),
            Entry {
                state: StoredSession {
                    owner: owner.map(str::to_string),
                    ..StoredSession::default()
                },
                wake: Some(wake.clone()),
            },
        );
        self.counts.connected += 1;
        Ok((false, wake))
    }

    /// The connection holding `wake` went away at `now_ms` (a newer connection that took
    /// the session over keeps it).
    pub fn detach(&mut self, client_id: &str, wake: &Arc<Notify>, now_ms: i64) {
        if let Some(entry) = self.sessions.get_mut(client_id) {
            if entry.wake.as_ref().is_some_and(|w| Arc::ptr_eq(w, wake)) {
                entry.wake = None;
                entry.state.away_since_ms = Some(now_ms);
                self.counts.connected -= 1;
            }
        }
    }

    /// Removes `client_id`'s session (a clean-session connect discards it), unless another
    /// identity owns it; true if one was removed.
    pub fn discard(&mut self, client_id: &str, owner: Option<&str>) -> bool {
        match self.sessions.get(client_id) {
            Some(e) if e.state.owner.as_deref() == owner => {
                self.remove(client_id);
                true
            }
            _ => false,
        }
    }

    fn remove(&mut self, client_id: &str) {
        let Some(entry) = self.sessions.remove(client_id) else {
            return;
        };
        if entry.wake.is_some() {
            self.counts.connected -= 1;
        }
        for (filter, _) in entry.state.subscriptions.iter() {
            self.unindex(client_id, filter);
        }
        self.wild.remove(client_id);
        self.counts.messages -= entry.state.held().count();
        self.counts.bytes -= entry.state.held().map(Message::size).sum::<usize>();
    }

    fn unindex(&mut self, client_id: &str, filter: &str) {
        if let Some(ids) = self.exact.get_mut(filter) {
            ids.remove(client_id);
            if ids.is_empty() {
                self.exact.remove(filter);
            }
        }
    }

    /// Subscribes `client_id` to `filter` with `qos` granted (replacing an earlier
    /// subscription to the same filter); false if the session holds
    /// [`MAX_SUBSCRIPTIONS`] other filters already.
    pub fn subscribe(&mut self, client_id: &str, filter: &str, qos: u8) -> bool {
        let Some(entry) = self.sessions.get_mut(client_id) else {
            return false;
        };
        if !entry
            .state
            .subscriptions
            .set(filter, qos, MAX_SUBSCRIPTIONS)
        {
            return false;
        }
        self.index(client_id, filter);
        true
    }

    /// Makes publishes that `filter` matches reach `client_id`.
    fn index(&mut self, client_id: &str, filter: &str) {
        if is_wildcard(filter) {
            self.wild.insert(client_id.to_string());
        } else {
            self.exact
                .entry(filter.to_string())
                .or_default()
                .insert(client_id.to_string());
        }
    }

    pub fn unsubscribe(&mut self, client_id: &str, filter: &str) {
        let Some(entry) = self.sessions.get_mut(client_id) else {
            return;
        };
        entry.state.subscriptions.remove(filter);
        if !entry.state.subscriptions.has_wildcard() {
            self.wild.remove(client_id);
        }
        self.unindex(client_id, filter);
    }

    /// Queues a publish for every session subscribed to `topic`, at the lower of its QoS
    /// and the subscription's (one copy per session however many of its filters match);
    /// returns how many sessions it reached.
    pub fn dispatch(&mut self, topic: &str, payload: &Bytes, qos: u8) -> usize {
        // The sessions with a matching filter and their grant: every wildcard holder, and
        // the holders of this exact topic that hold no wildcard (those are counted once).
        let exact = self.exact.get(topic).into_iter().flatten();
        let reached: Vec<(String, u8)> = self
            .wild
            .iter()
            .chain(exact.filter(|id| !self.wild.contains(*id)))
            .filter_map(|id| {
                let entry = self.sessions.get(id)?;
                Some((id.clone(), entry.state.subscriptions.grant(topic)?))
            })
            .collect();
        if reached.is_empty() {
            return 0;
        }
        // One copy for every session it reaches: a slice of a connection's read buffer
        // would keep that whole buffer alive for as long as the message is queued.
        let template = Message::new(topic, payload, 0, false);
        let mut count = 0;
        for (id, granted) in reached {
            let message = Message {
                qos: qos.min(granted).min(1),
                ..template.clone()
            };
            if self.enqueue(&id, message) {
                count += 1;
            }
        }
        count
    }

    /// Queues `message` for `client_id` (a retained message on subscribe, or a publish);
    /// false if it was not kept (QoS 0 for a client that is away).
    pub fn enqueue(&mut self, client_id: &str, message: Message) -> bool {
        let Some(entry) = self.sessions.get_mut(client_id) else {
            return false;
        };
        if message.qos == 0 && entry.wake.is_none() {
            return false;
        }
        let size = message.size();
        while entry.state.queue.len() >= self.limits.max_queued
            || self.counts.bytes + size > self.limits.max_bytes
        {
            let Some(old) = entry.state.queue.pop_front() else {
                // Nothing of this session's left to drop: the new message goes.
                self.counts.dropped += 1;
                return false;
            };
            self.counts.dropped += 1;
            self.counts.messages -= 1;
            self.counts.bytes -= old.size();
        }
        entry.state.queue.push_back(message);
        self.counts.messages += 1;
        self.counts.bytes += size;
        if let Some(wake) = &entry.wake {
            wake.notify_one();
        }
        true
    }

    /// What to write to `client_id` now: unacknowledged messages again (DUP, same packet
    /// ids) first, then queued ones while fewer than `max_inflight` await acknowledgement.
    /// Only the connection holding the session (`wake`) is given anything: one it was
    /// taken over from gets nothing more.
    pub fn next_out(&mut self, client_id: &str, wake: &Arc<Notify>) -> Vec<Outgoing> {
        let max_inflight = self.limits.max_inflight;
        let Some(entry) = self.sessions.get_mut(client_id) else {
            return Vec::new();
        };
        if !entry.wake.as_ref().is_some_and(|w| Arc::ptr_eq(w, wake)) {
            return Vec::new();
        }
        let state = &mut entry.state;
        let mut out = Vec::new();
        let resend = std::mem::take(&mut state.resend);
        for (pkid, message) in state.inflight.iter().take(resend) {
            out.push(Outgoing {
                message: message.clone(),
                pkid: *pkid,
                dup: true,
            });
        }
        self.counts.redelivered += out.len() as u64;
        while state.inflight.len() < max_inflight {
            let Some(message) = state.queue.pop_front() else {
                break;
            };
            if message.qos == 0 {
                self.counts.messages -= 1;
                self.counts.bytes -= message.size();
                out.push(Outgoing {
                    message,
                    pkid: 0,
                    dup: false,
                });
                continue;
            }
            let pkid = next_free_pkid(state);
            state.inflight.push_back((pkid, message.clone()));
            out.push(Outgoing {
                message,
                pkid,
                dup: false,
            });
        }
        out
    }

    /// `client_id` acknowledged packet `pkid`.
    pub fn ack(&mut self, client_id: &str, pkid: u16) {
        if let Some(entry) = self.sessions.get_mut(client_id) {
            let inflight = &mut entry.state.inflight;
            if let Some(at) = inflight.iter().position(|(p, _)| *p == pkid) {
                let (_, message) = inflight.remove(at).expect("found above");
                self.counts.messages -= 1;
                self.counts.bytes -= message.size();
                // Acknowledged before it was sent again: one less to resend.
                if at < entry.state.resend {
                    entry.state.resend -= 1;
                }
            }
        }
    }

    /// Removes the sessions whose client has been away longer than the expiry at `now_ms`;
    /// returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let expiry = i64::try_from(self.limits.expiry.as_millis()).unwrap_or(i64::MAX);
        let gone: Vec<String> = self
            .sessions
            .iter()
            .filter(|(_, e)| {
                e.state
                    .away_since_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) > expiry)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.remove(id);
        }
        self.counts.expired += gone.len() as u64;
        gone.len()
    }

    /// Every session, to be saved (a connected one as if its client went away at
    /// `now_ms`).
    pub fn all(&self, now_ms: i64) -> Vec<(String, StoredSession)> {
        self.sessions
            .iter()
            .map(|(id, e)| {
                let mut state = e.state.clone();
                state.away_since_ms.get_or_insert(now_ms);
                (id.clone(), state)
            })
            .collect()
    }

    /// Puts saved sessions back, every client away.
    pub fn restore(&mut self, saved: Vec<(String, StoredSession)>) {
        for (id, state) in saved {
            if self.sessions.len() >= self.limits.max_sessions {
                break;
            }
            self.counts.messages += state.held().count();
            self.counts.bytes += state.held().map(Message::size).sum::<usize>();
            for (filter, _) in state.subscriptions.iter() {
                self.index(&id, filter);
            }
            self.sessions.insert(id, Entry { state, wake: None });
        }
    }
}

/// The next packet id (1..=65535) not awaiting acknowledgement.
fn next_free_pkid(state: &mut StoredSession) -> u16 {
    loop {
        state.next_pkid = state.next_pkid.checked_add(1).unwrap_or(1);
        let pkid = state.next_pkid;
        if !state.inflight.iter().any(|(p, _)| *p == pkid) {
            return pkid;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_queued: usize) -> SessionStore {
        SessionStore::new(SessionLimits {
            max_sessions: 3,
            max_queued,
            max_bytes: 1000,
            max_inflight: 2,
            expiry: Duration::from_secs(60),
        })
    }

    fn payloads(out: &[Outgoing]) -> Vec<(String, u16, bool)> {
        out.iter()
            .map(|o| {
                (
                    String::from_utf8(o.message.payload().to_vec()).unwrap(),
                    o.pkid,
                    o.dup,
                )
            })
            .collect()
    }

    #[test]
    fn queues_while_away_and_resends_unacknowledged_with_dup() {
        let mut s = store(10);
        let (present, wake) = s.attach("app", None).unwrap();
        assert!(!present);
        assert_eq!(s.counts().connected, 1);
        s.subscribe("app", "notify/p1", 1);
        s.dispatch("notify/p1", &Bytes::from("a"), 1);
        s.dispatch("notify/other", &Bytes::from("x"), 1);
        assert_eq!(
            payloads(&s.next_out("app", &wake)),
            [("a".into(), 1, false)]
        );
        s.detach("app", &wake, 1_000);
        assert_eq!(s.counts().connected, 0);
        for p in ["b", "c", "d"] {
            s.dispatch("notify/p1", &Bytes::from(p), 1);
        }
        // QoS 0 is not kept for a client that is away.
        s.dispatch("notify/p1", &Bytes::from("q0"), 0);
        assert_eq!(s.counts().messages, 4);
        let (present, wake) = s.attach("app", None).unwrap();
        assert!(present);
        // "a" again (same id, DUP), then one more: two await acknowledgement at most.
        assert_eq!(
            payloads(&s.next_out("app", &wake)),
            [("a".into(), 1, true), ("b".into(), 2, false)]
        );
        assert!(s.next_out("app", &wake).is_empty());
        s.ack("app", 1);
        s.ack("app", 2);
        assert_eq!(
            payloads(&s.next_out("app", &wake)),
            [("c".into(), 3, false), ("d".into(), 4, false)]
        );
        assert_eq!(s.counts().redelivered, 1);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts() {
        let mut s = store(2);
        let (_, wake) = s.attach("app", None).unwrap();
        s.subscribe("app", "n/#", 1);
        s.detach("app", &wake, 0);
        for p in ["1", "2", "3", "4"] {
            s.dispatch("n/x", &Bytes::from(p), 1);
        }
        assert_eq!(s.counts().dropped, 2);
        assert_eq!(s.counts().bytes, 2 * 4, "topic and payload of the two kept");
        let (_, wake) = s.attach("app", None).unwrap();
        let got: Vec<_> = payloads(&s.next_out("app", &wake))
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(got, ["3", "4"]);
    }

    #[test]
    fn owners_limits_expiry_and_discard() {
        let mut s = store(10);
        let (_, wake) = s.attach("a", Some("dev-1")).unwrap();
        assert_eq!(
            s.attach("a", Some("dev-2")).unwrap_err(),
            AttachRefused::NotOwner
        );
        s.attach("b", None).unwrap();
        s.attach("c", None).unwrap();
        assert_eq!(s.attach("d", None).unwrap_err(), AttachRefused::Full);
        assert!(!s.discard("a", Some("dev-2")));
        assert!(s.discard("c", None));
        assert_eq!(s.counts().connected, 2, "a and b");
        for i in 0..MAX_SUBSCRIPTIONS {
            assert!(s.subscribe("a", &format!("t/{i}"), 1));
        }
        assert!(!s.subscribe("a", "one/more", 1), "bounded");
        assert!(s.subscribe("a", "t/0", 0), "a filter it holds can change");
        s.detach("a", &wake, 0);
        assert_eq!(s.expire(60_000), 0);
        assert_eq!(s.expire(60_001), 1);
        assert_eq!(s.counts().sessions, 1);
    }

    #[test]
    fn a_takeover_keeps_the_session_attached() {
        let mut s = store(10);
        let (_, old) = s.attach("a", None).unwrap();
        s.subscribe("a", "t", 1);
        let (present, new) = s.attach("a", None).unwrap();
        assert!(present);
        s.dispatch("t", &Bytes::from("m"), 1);
        assert!(s.next_out("a", &old).is_empty(), "taken over: nothing more");
        assert_eq!(s.next_out("a", &new).len(), 1);
        s.detach("a", &old, 5);
        assert_eq!(s.all(9)[0].1.away_since_ms, Some(9), "still attached");
    }

    #[test]
    fn saved_sessions_come_back_subscribed() {
        let mut s = store(10);
        let (_, wake) = s.attach("a", None).unwrap();
        s.subscribe("a", "t", 1);
        s.dispatch("t", &Bytes::from("1"), 1);
        s.next_out("a", &wake);
        s.dispatch("t", &Bytes::from("2"), 1);
        s.detach("a", &wake, 0);
        let mut back = store(10);
        back.restore(s.all(0));
        back.dispatch("t", &Bytes::from("3"), 1);
        let (_, wake) = back.attach("a", None).unwrap();
        let got: Vec<_> = payloads(&back.next_out("a", &wake));
        assert_eq!(got, [("1".into(), 1, true), ("2".into(), 2, false)]);
        back.ack("a", 1);
        assert_eq!(
            payloads(&back.next_out("a", &wake)),
            [("3".into(), 3, false)]
        );
    }
}
