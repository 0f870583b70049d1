//! Every Prometheus metric Vigil exports, declared in one place with its help text, and
//! pre-registered handles so the hot path never looks a metric up by name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use vigil_alerting::{Engine, Journal, Outcome, Severity};
use vigil_ingest::RejectReason;

pub const READINGS_INGESTED: &str = "vigil_readings_ingested_total";
pub const READINGS_REJECTED: &str = "vigil_readings_rejected_total";
pub const ALERTS_RAISED: &str = "vigil_alerts_raised_total";
pub const ALERTS_RESOLVED: &str = "vigil_alerts_auto_resolved_total";
pub const ACTIVE_ALERTS: &str = "vigil_active_alerts";
pub const PATIENTS_TRACKED: &str = "vigil_patients_tracked";
pub const ALERT_SUBSCRIBERS: &str = "vigil_alert_subscribers";
pub const ALERT_LATENCY: &str = "vigil_alert_latency_seconds";
pub const ALERT_RAISE_LATENCY: &str = "vigil_alert_raise_latency_seconds";
pub const EVENTS_RETAINED: &str = "vigil_alert_events_retained";
pub const EVENTS_DROPPED: &str = "vigil_alert_events_dropped_total";
pub const SUBSCRIBERS_CUT_OFF: &str = "vigil_alert_subscribers_cut_off_total";
pub const LAST_EVENT_SEQ: &str = "vigil_alert_last_seq";
pub const MQTT_PAYLOADS: &str = "vigil_mqtt_payloads_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "vigil_mqtt_tls_handshake_failures_total";
pub const REMINDERS_SENT: &str = "vigil_patient_reminders_total";
pub const ABSENCE_DEADLINES: &str = "vigil_absence_deadlines";
pub const PATIENTS_BELOW_ADHERENCE: &str = "vigil_patients_below_adherence";
pub const ALERTS_ESCALATED: &str = "vigil_alerts_escalated_total";
pub const ALERTS_RENOTIFIED: &str = "vigil_alerts_renotified_total";
pub const JOURNAL_BYTES: &str = "vigil_journal_bytes";
pub const SNAPSHOT_SECONDS: &str = "vigil_window_snapshot_seconds";
pub const SNAPSHOT_BYTES: &str = "vigil_window_snapshot_bytes_total";
pub const SNAPSHOT_FAILURES: &str = "vigil_window_snapshot_failures_total";
pub const SNAPSHOTS: &str = "vigil_window_snapshots_total";
pub const SNAPSHOT_RUNNING: &str = "vigil_window_snapshot_running";
pub const JOURNAL_EVENTS: &str = "vigil_journal_events";
pub const JOURNAL_WRITE_ERRORS: &str = "vigil_journal_write_errors_total";
pub const JOURNAL_WRITE: &str = "vigil_journal_write_seconds";
pub const JOURNAL_COMPACTED: &str = "vigil_journal_events_compacted_total";
pub const AUDIT_BYTES: &str = "vigil_audit_log_bytes";
pub const AUDIT_WRITE_ERRORS: &str = "vigil_audit_write_errors_total";
pub const MQTT_REFUSED: &str = "vigil_mqtt_connects_refused_total";
pub const MQTT_TAKEOVERS: &str = "vigil_mqtt_session_takeovers_total";
pub const MQTT_PERSISTENT_SESSIONS: &str = "vigil_mqtt_persistent_sessions";
pub const MQTT_QUEUED: &str = "vigil_mqtt_queued_messages";
pub const MQTT_QUEUE_DROPPED: &str = "vigil_mqtt_queued_dropped_total";
pub const MQTT_SESSIONS_EXPIRED: &str = "vigil_mqtt_sessions_expired_total";
pub const MQTT_REDELIVERED: &str = "vigil_mqtt_redelivered_total";
pub const MQTT_RETAINED: &str = "vigil_mqtt_retained_messages";
pub const MQTT_RETAINED_BYTES: &str = "vigil_mqtt_retained_bytes";
pub const MQTT_RETAINED_REFUSED: &str = "vigil_mqtt_retained_refused_total";
pub const THROTTLED_ADDRESSES: &str = "vigil_auth_throttled_addresses";
pub const PASSWORD_CHECKS: &str = "vigil_auth_password_checks";
pub const DEDUP_DEVICES: &str = "vigil_dedup_devices";
pub const DEDUP_EVICTIONS: &str = "vigil_dedup_evictions_total";
pub const CONSOLE_SESSIONS: &str = "vigil_console_sessions";
pub const NOTIFICATIONS: &str = "vigil_notifications_total";
pub const NOTIFICATION_LATENCY: &str = "vigil_notification_latency_seconds";
pub const NOTIFIER_BACKLOG: &str = "vigil_notifier_backlog";
pub const NOTIFIER_FALLBACKS: &str = "vigil_notifier_fallbacks_total";
pub const CARE_TEAM_UNREACHED: &str = "vigil_care_team_unreached";
pub const DISPOSITIONS: &str = "vigil_alert_dispositions_total";
pub const CLUSTER_PARTITIONS: &str = "vigil_cluster_partitions_owned";
pub const CLUSTER_NODES: &str = "vigil_cluster_nodes_live";
pub const CLUSTER_NOTIFIERS: &str = "vigil_cluster_notifiers_held";
pub const CLUSTER_CONFIG_DIFFERS: &str = "vigil_cluster_config_differs";
pub const HTTP_REQUESTS: &str = "vigil_http_request_duration_seconds";
pub const CLUSTER_TAKEOVERS: &str = "vigil_cluster_takeovers_total";
pub const CLUSTER_REBUILD: &str = "vigil_cluster_rebuild_seconds";
pub const CLUSTER_LOST: &str = "vigil_cluster_partitions_lost_total";
pub const CLUSTER_PUBLISH_FAILURES: &str = "vigil_cluster_publish_failures_total";
pub const CLUSTER_REPLAYED: &str = "vigil_cluster_replayed_readings_total";
pub const CLUSTER_SNAPSHOT_BYTES: &str = "vigil_cluster_snapshot_bytes_total";
pub const CLUSTER_LAG_READINGS: &str = "vigil_cluster_partition_lag_readings";
pub const CLUSTER_LAG_SECONDS: &str = "vigil_cluster_partition_lag_seconds";

/// Why an MQTT CONNECT was refused (the `reason` label of [`MQTT_REFUSED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectRefusal {
    /// Not MQTT 3.1.1 (CONNACK 1).
    ProtocolVersion,
    /// An empty client id with clean session 0, or one longer than 256 bytes (CONNACK 2).
    BadClientId,
    /// `max_connections` reached (CONNACK 3).
    MaxConnections,
    /// The device already holds `max_sessions_per_device` sessions (CONNACK 3).
    SessionLimit,
    /// Another identity's session holds the client id (CONNACK 2).
    ClientIdTaken,
    /// Missing or wrong credentials or certificate (CONNACK 5).
    NotAuthorized,
    /// The source address failed a login too recently (CONNACK 3, not checked).
    Throttled,
    /// The source address is locked out after too many failures (CONNACK 3, not checked).
    LockedOut,
    /// The Argon2 pool and its queue were full (CONNACK 3, not checked).
    ChecksBusy,
    /// Clean session 0 when `max_persistent_sessions` sessions are kept (CONNACK 3).
    PersistentSessions,
}

impl ConnectRefusal {
    pub const ALL: [ConnectRefusal; 10] = [
        ConnectRefusal::ProtocolVersion,
        ConnectRefusal::BadClientId,
        ConnectRefusal::MaxConnections,
        ConnectRefusal::SessionLimit,
        ConnectRefusal::ClientIdTaken,
        ConnectRefusal::NotAuthorized,
        ConnectRefusal::Throttled,
        ConnectRefusal::LockedOut,
        ConnectRefusal::ChecksBusy,
        ConnectRefusal::PersistentSessions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectRefusal::ProtocolVersion => "protocol_version",
            ConnectRefusal::BadClientId => "bad_client_id",
            ConnectRefusal::MaxConnections => "max_connections",
            ConnectRefusal::SessionLimit => "session_limit",
            ConnectRefusal::ClientIdTaken => "client_id_taken",
            ConnectRefusal::NotAuthorized => "not_authorized",
            ConnectRefusal::Throttled => "throttled",
            ConnectRefusal::LockedOut => "locked_out",
            ConnectRefusal::ChecksBusy => "checks_busy",
            ConnectRefusal::PersistentSessions => "persistent_sessions",
        }
    }
}

/// What the bounds on client-held state read at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bounds {
    pub throttled_addresses: usize,
    pub password_checks: usize,
    pub dedup: vigil_ingest::DedupStats,
}

/// Histogram buckets for reading→alert latency: 10 µs to 1 s.
/// Notifications cross the network to a receiver (and wait out retries): seconds to minutes.
pub const NOTIFICATION_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

pub const LATENCY_BUCKETS: [f64; 16] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Where a reading came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mqtt,
    Grpc,
    Fhir,
}

/// Registered metric handles.
pub struct Telemetry {
    ingested: [Counter; 3],
    rejected: [Counter; RejectReason::ALL.len()],
    raised: [Counter; 3],
    auto_resolved: Counter,
    latency: Histogram,
    raise_latency: Histogram,
    journal_write: Histogram,
    mqtt_payloads: Counter,
    tls_handshake_failures: Counter,
    active_alerts: Gauge,
    patients_tracked: Gauge,
    subscribers: Gauge,
    console_sessions: Gauge,
    events_retained: Gauge,
    events_dropped: Counter,
    subscribers_cut_off: Counter,
    last_seq: Gauge,
    reminders: Counter,
    deadlines: Gauge,
    escalated: Counter,
    renotified: Counter,
    journal_bytes: Gauge,
    snapshot_seconds: Gauge,
    /// Whole, delta.
    snapshot_bytes: [Counter; 2],
    snapshot_failures: Counter,
    snapshots: Counter,
    snapshot_running: Gauge,
    journal_events: Gauge,
    journal_write_errors: Counter,
    journal_compacted: Counter,
    mqtt_refused: [Counter; ConnectRefusal::ALL.len()],
    mqtt_takeovers: Counter,
    /// Persistent sessions, their messages, dropped, expired, redelivered.
    mqtt_sessions: ([Gauge; 2], Gauge, Counter, Counter, Counter),
    /// Retained messages, their bytes, refused.
    mqtt_retained: (Gauge, Gauge, Counter),
    throttled_addresses: Gauge,
    password_checks: Gauge,
    dedup_devices: Gauge,
    /// Per patient, in total.
    dedup_evictions: [Counter; 2],
    /// Per engine (`None`: the node's; `Some(p)`: partition `p`'s in cluster mode), the
    /// patients below each adherence rule at its last sweep.
    below_adherence: parking_lot::Mutex<BTreeMap<Option<u32>, RuleCounts>>,
}

/// Patients per rule id.
type RuleCounts = Vec<(Arc<str>, u64)>;

impl Telemetry {
    /// Installs the global Prometheus recorder and registers every metric at zero.
    pub fn install() -> anyhow::Result<(Telemetry, PrometheusHandle)> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(ALERT_LATENCY.into()), &LATENCY_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(ALERT_RAISE_LATENCY.into()), &LATENCY_BUCKETS)?
            .set_buckets_for_metric(Matcher::Full(JOURNAL_WRITE.into()), &LATENCY_BUCKETS)?
            .set_buckets_for_metric(
                Matcher::Full(NOTIFICATION_LATENCY.into()),
                &NOTIFICATION_BUCKETS,
            )?
            .install_recorder()?;
        Ok((Telemetry::register(), handle))
    }

    /// Registers handles with whatever recorder is installed (none in unit tests).
    pub fn register() -> Telemetry {
        describe_counter!(
            READINGS_INGESTED,
            "Readings accepted, by source (mqtt, grpc)."
        );
        describe_counter!(READINGS_REJECTED, "Readings refused, by reason.");
        describe_counter!(ALERTS_RAISED, "Alerts raised, by severity.");
        describe_counter!(
            ALERTS_RESOLVED,
            "Alerts the engine resolved because the condition cleared."
        );
        describe_gauge!(ACTIVE_ALERTS, "Open alerts (active or acknowledged).");
        describe_gauge!(
            PATIENTS_TRACKED,
            "Patients with state in the store (enrolled or seen)."
        );
        describe_gauge!(
            ALERT_SUBSCRIBERS,
            "Open alert streams: gRPC Subscribe and the console's live boards."
        );
        describe_counter!(
            NOTIFICATIONS,
            "Alert events notified, by notifier and outcome: sent, retried (one per retried request), failed (refused for good), heartbeat."
        );
        describe_gauge!(
            NOTIFIER_BACKLOG,
            "Selected alert events a notifier has not had confirmed yet."
        );
        describe_counter!(
            NOTIFIER_FALLBACKS,
            "Messages a notifier could not deliver, handed to its care team's fallback: sent, failed, none (no fallback)."
        );
        describe_counter!(
            DISPOSITIONS,
            "What alerts led to, recorded when acknowledged or resolved by hand, by rule and disposition."
        );
        describe_gauge!(
            CARE_TEAM_UNREACHED,
            "1 for a care team that no notifier and no open console board reaches, else 0."
        );
        describe_histogram!(
            NOTIFICATION_LATENCY,
            Unit::Seconds,
            "From an alert event to its notification confirmed by the receiver."
        );
        describe_gauge!(
            CONSOLE_SESSIONS,
            "Console sign-in sessions held (expired ones are counted until they are swept)."
        );
        describe_histogram!(
            ALERT_LATENCY,
            Unit::Seconds,
            "From receipt of a reading to hand-off of the alert it raised to subscribers."
        );
        describe_histogram!(
            ALERT_RAISE_LATENCY,
            Unit::Seconds,
            "From receipt of a reading to the engine raising the alert (before the journal's fsync)."
        );
        describe_gauge!(EVENTS_RETAINED, "Alert events retained for replay.");
        describe_counter!(
            EVENTS_DROPPED,
            "Alert events dropped from the retention window (oldest first)."
        );
        describe_counter!(
            SUBSCRIBERS_CUT_OFF,
            "Subscribers disconnected because they fell too far behind."
        );
        describe_gauge!(LAST_EVENT_SEQ, "Sequence number of the newest alert event.");
        describe_counter!(MQTT_PAYLOADS, "MQTT PUBLISH payloads received on vitals/#.");
        describe_counter!(
            TLS_HANDSHAKE_FAILURES,
            "TLS handshakes on the MQTT listener that failed or timed out."
        );
        describe_counter!(
            REMINDERS_SENT,
            "Patient reminders published on notify/{patient_id}."
        );
        describe_gauge!(
            ABSENCE_DEADLINES,
            "Pending absence deadlines (at most one per patient and metric)."
        );
        describe_gauge!(
            PATIENTS_BELOW_ADHERENCE,
            "Patients measured on fewer days than an adherence rule asks, at its last hourly sweep, by rule."
        );
        describe_counter!(
            ALERTS_ESCALATED,
            "Escalation levels reached by alerts nobody acknowledged."
        );
        describe_counter!(
            ALERTS_RENOTIFIED,
            "Acknowledged alerts made active again after renotify_after."
        );
        describe_gauge!(JOURNAL_BYTES, "Bytes the journal holds on disk.");
        describe_gauge!(
            SNAPSHOT_SECONDS,
            "How long the last window snapshot took (copy, encode, write, fsync; pauses between slices included)."
        );
        describe_counter!(
            SNAPSHOT_BYTES,
            Unit::Bytes,
            "Bytes of window snapshots written, by kind: whole (every sample) or delta (samples added since the previous snapshot)."
        );
        describe_gauge!(
            SNAPSHOT_RUNNING,
            "1 while a window snapshot is being written, else 0."
        );
        describe_counter!(
            SNAPSHOTS,
            "Window snapshots completed (periodic and the one at shutdown)."
        );
        describe_counter!(
            SNAPSHOT_FAILURES,
            "Window snapshot writes that failed (their patients' next snapshots are whole; a restart before then starts their rules with older history)."
        );
        describe_histogram!(
            JOURNAL_WRITE,
            Unit::Seconds,
            "How long each batch of alert events took to write to the journal and fsync."
        );
        describe_gauge!(JOURNAL_EVENTS, "Alert events held in the journal.");
        describe_counter!(
            JOURNAL_WRITE_ERRORS,
            "Alert events that could not be written to the journal (delivered, not durable)."
        );
        describe_counter!(
            JOURNAL_COMPACTED,
            "Alert events removed from the journal after the retention period."
        );
        describe_gauge!(
            AUDIT_BYTES,
            "Bytes the audit log holds on disk, rotated files included."
        );
        describe_counter!(
            AUDIT_WRITE_ERRORS,
            "Audit entries that could not be written (full or failing disk)."
        );
        describe_counter!(MQTT_REFUSED, "MQTT CONNECTs refused, by reason.");
        describe_counter!(
            MQTT_TAKEOVERS,
            "MQTT sessions ended by a new session of the same device and client id."
        );
        describe_gauge!(
            MQTT_PERSISTENT_SESSIONS,
            "MQTT persistent sessions (clean session 0) kept, by state: connected, away (client gone, messages kept)."
        );
        describe_gauge!(
            MQTT_QUEUED,
            "Messages held for persistent sessions: queued, or sent and not acknowledged."
        );
        describe_counter!(
            MQTT_QUEUE_DROPPED,
            "Messages dropped from a full persistent-session queue (the oldest goes)."
        );
        describe_counter!(
            MQTT_SESSIONS_EXPIRED,
            "Persistent sessions removed after their client stayed away past the expiry."
        );
        describe_counter!(
            MQTT_REDELIVERED,
            "Unacknowledged QoS 1 messages sent again (DUP) when a persistent session resumed."
        );
        describe_gauge!(MQTT_RETAINED, "Retained MQTT messages kept.");
        describe_gauge!(
            MQTT_RETAINED_BYTES,
            "Topic and payload bytes of the retained MQTT messages kept."
        );
        describe_counter!(
            MQTT_RETAINED_REFUSED,
            "Retained publishes not kept because the count or byte bound was reached."
        );
        describe_gauge!(
            THROTTLED_ADDRESSES,
            "Source addresses with failed device logins remembered (throttled or locked out)."
        );
        describe_gauge!(
            PASSWORD_CHECKS,
            "Argon2 checks of device secrets running or waiting for a worker."
        );
        describe_gauge!(
            DEDUP_DEVICES,
            "Devices whose recent seq numbers are remembered for duplicate suppression."
        );
        describe_counter!(
            DEDUP_EVICTIONS,
            "Devices forgotten by duplicate suppression, by the bound that forgot them."
        );
        describe_gauge!(
            CLUSTER_PARTITIONS,
            "Partitions this node holds the lease of and evaluates (cluster mode)."
        );
        describe_histogram!(
            HTTP_REQUESTS,
            Unit::Seconds,
            "HTTP requests by route pattern and status: time to the answer's head."
        );
        describe_gauge!(
            CLUSTER_CONFIG_DIFFERS,
            "Other live nodes whose configuration differs from this node's in a section (cluster mode)."
        );
        describe_gauge!(
            CLUSTER_NOTIFIERS,
            "Notifiers this node holds the lease of and runs (cluster mode)."
        );
        describe_gauge!(
            CLUSTER_NODES,
            "Vigil nodes this node sees alive in the cluster (cluster mode)."
        );
        describe_counter!(
            CLUSTER_TAKEOVERS,
            "Partitions this node took over and rebuilt (cluster mode)."
        );
        describe_histogram!(
            CLUSTER_REBUILD,
            Unit::Seconds,
            "Time from taking a partition's lease to judging its new readings: reading the alert subject, fencing, replaying readings."
        );
        describe_counter!(
            CLUSTER_LOST,
            "Partitions this node stopped evaluating, by why (lost lease, fenced, error, rebalanced)."
        );
        describe_counter!(
            CLUSTER_REPLAYED,
            "Readings replayed to rebuild partitions taken over (those after the partition's snapshot)."
        );
        describe_counter!(
            CLUSTER_SNAPSHOT_BYTES,
            "Bytes of partition snapshots this node published."
        );
        describe_gauge!(
            CLUSTER_LAG_READINGS,
            "Readings stored for a partition this node owns and not yet judged."
        );
        describe_gauge!(
            CLUSTER_LAG_SECONDS,
            "Age of the reading a partition's owner judged last: from its acceptance at the edge to its judgement."
        );
        describe_counter!(
            CLUSTER_PUBLISH_FAILURES,
            "Accepted readings that could not be stored in the readings stream: their senders got no acknowledgement."
        );
        Telemetry {
            ingested: [
                counter!(READINGS_INGESTED, "source" => "mqtt"),
                counter!(READINGS_INGESTED, "source" => "grpc"),
                counter!(READINGS_INGESTED, "source" => "fhir"),
            ],
            rejected: RejectReason::ALL
                .map(|r| counter!(READINGS_REJECTED, "reason" => r.as_str())),
            raised: Severity::ALL.map(|s| counter!(ALERTS_RAISED, "severity" => s.as_str())),
            auto_resolved: counter!(ALERTS_RESOLVED),
            latency: histogram!(ALERT_LATENCY),
            raise_latency: histogram!(ALERT_RAISE_LATENCY),
            journal_write: histogram!(JOURNAL_WRITE),
            mqtt_payloads: counter!(MQTT_PAYLOADS),
            tls_handshake_failures: counter!(TLS_HANDSHAKE_FAILURES),
            active_alerts: gauge!(ACTIVE_ALERTS),
            patients_tracked: gauge!(PATIENTS_TRACKED),
            subscribers: gauge!(ALERT_SUBSCRIBERS),
            console_sessions: gauge!(CONSOLE_SESSIONS),
            events_retained: gauge!(EVENTS_RETAINED),
            events_dropped: counter!(EVENTS_DROPPED),
            subscribers_cut_off: counter!(SUBSCRIBERS_CUT_OFF),
            last_seq: gauge!(LAST_EVENT_SEQ),
            reminders: counter!(REMINDERS_SENT),
            deadlines: gauge!(ABSENCE_DEADLINES),
            escalated: counter!(ALERTS_ESCALATED),
            renotified: counter!(ALERTS_RENOTIFIED),
            journal_bytes: gauge!(JOURNAL_BYTES),
            snapshot_seconds: gauge!(SNAPSHOT_SECONDS),
            snapshot_bytes: [
                counter!(SNAPSHOT_BYTES, "kind" => "whole"),
                counter!(SNAPSHOT_BYTES, "kind" => "delta"),
            ],
            snapshot_failures: counter!(SNAPSHOT_FAILURES),
            snapshots: counter!(SNAPSHOTS),
            snapshot_running: gauge!(SNAPSHOT_RUNNING),
            journal_events: gauge!(JOURNAL_EVENTS),
            journal_write_errors: counter!(JOURNAL_WRITE_ERRORS),
            journal_compacted: counter!(JOURNAL_COMPACTED),
            mqtt_refused: ConnectRefusal::ALL
                .map(|r| counter!(MQTT_REFUSED, "reason" => r.as_str())),
            mqtt_takeovers: counter!(MQTT_TAKEOVERS),
            mqtt_sessions: (
                [
                    gauge!(MQTT_PERSISTENT_SESSIONS, "state" => "connected"),
                    gauge!(MQTT_PERSISTENT_SESSIONS, "state" => "away"),
                ],
                gauge!(MQTT_QUEUED),
                counter!(MQTT_QUEUE_DROPPED),
                counter!(MQTT_SESSIONS_EXPIRED),
                counter!(MQTT_REDELIVERED),
            ),
            mqtt_retained: (
                gauge!(MQTT_RETAINED),
                gauge!(MQTT_RETAINED_BYTES),
                counter!(MQTT_RETAINED_REFUSED),
            ),
            throttled_addresses: gauge!(THROTTLED_ADDRESSES),
            password_checks: gauge!(PASSWORD_CHECKS),
            dedup_devices: gauge!(DEDUP_DEVICES),
            dedup_evictions: [
                counter!(DEDUP_EVICTIONS, "reason" => "patient_limit"),
                counter!(DEDUP_EVICTIONS, "reason" => "total_limit"),
            ],
            below_adherence: Default::default(),
        }
    }

    /// What one engine's last adherence sweep counted (empty: the engine is gone, or has no
    /// adherence rule); the gauge sums every engine of the node per rule.
    pub fn below_adherence(&self, engine: Option<u32>, counts: RuleCounts) {
        let mut all = self.below_adherence.lock();
        if all.get(&engine).map_or(counts.is_empty(), |c| *c == counts) {
            return;
        }
        // Rules no longer counted anywhere go to 0 rather than keep their last value.
        let mut sums: BTreeMap<Arc<str>, u64> = all
            .values()
            .flatten()
            .map(|(rule, _)| (rule.clone(), 0))
            .collect();
        if counts.is_empty() {
            all.remove(&engine);
        } else {
            all.insert(engine, counts);
        }
        for (rule, n) in all.values().flatten() {
            *sums.entry(rule.clone()).or_default() += n;
        }
        for (rule, n) in sums {
            gauge!(PATIENTS_BELOW_ADHERENCE, "rule" => rule.to_string()).set(n as f64);
        }
    }

    /// An MQTT CONNECT was refused.
    pub fn mqtt_refused(&self, reason: ConnectRefusal) {
        self.mqtt_refused[reason as usize].increment(1);
    }

    /// An MQTT session was ended by a new one of the same identity and client id.
    pub fn mqtt_takeover(&self) {
        self.mqtt_takeovers.increment(1);
    }

    /// What the persistent sessions hold and have counted.
    pub fn mqtt_sessions(&self, c: crate::mqtt::persistent::SessionCounts) {
        let (sessions, messages, dropped, expired, redelivered) = &self.mqtt_sessions;
        sessions[0].set(c.connected as f64);
        sessions[1].set(c.sessions.saturating_sub(c.connected) as f64);
        messages.set(c.messages as f64);
        dropped.absolute(c.dropped);
        expired.absolute(c.expired);
        redelivered.absolute(c.redelivered);
    }

    /// What the retained messages hold, and how many were refused so far.
    pub fn mqtt_retained(&self, count: usize, bytes: usize, refused: u64) {
        let (kept, size, refusals) = &self.mqtt_retained;
        kept.set(count as f64);
        size.set(bytes as f64);
        refusals.absolute(refused);
    }

    /// Updates the gauges of client-held state, just before a scrape.
    pub fn bounds(&self, b: Bounds) {
        self.throttled_addresses.set(b.throttled_addresses as f64);
        self.password_checks.set(b.password_checks as f64);
        self.dedup_devices.set(b.dedup.devices as f64);
        self.dedup_evictions[0].absolute(b.dedup.evicted_per_patient);
        self.dedup_evictions[1].absolute(b.dedup.evicted_total);
    }

    /// Updates the journal's gauges.
    pub fn journal(&self, journal: &Journal) {
        self.journal_bytes.set(journal.disk_bytes() as f64);
        self.journal_events.set(journal.event_count() as f64);
        self.journal_errors(journal);
    }

    /// Updates the journal's write-error count (cheap: read at every scrape, so that a
    /// failing disk shows at once).
    pub fn journal_errors(&self, journal: &Journal) {
        self.journal_write_errors.absolute(journal.write_errors());
    }

    /// A window snapshot took `took` and wrote `whole` and `delta` bytes.
    pub fn snapshot(&self, took: std::time::Duration, whole: u64, delta: u64) {
        self.snapshot_seconds.set(took.as_secs_f64());
        self.snapshots.increment(1);
        self.snapshot_bytes[0].increment(whole);
        self.snapshot_bytes[1].increment(delta);
    }

    /// Whether a window snapshot is being written.
    pub fn snapshot_running(&self, running: bool) {
        self.snapshot_running.set(if running { 1.0 } else { 0.0 });
    }

    /// A window snapshot's write failed.
    pub fn snapshot_failed(&self) {
        self.snapshot_failures.increment(1);
    }

    pub fn compacted(&self, events: u64) {
        self.journal_compacted.increment(events);
    }

    /// `n` readings accepted (counted once per payload or batch, not per reading).
    pub fn ingested(&self, source: Source, n: u64) {
        if n > 0 {
            self.ingested[source as usize].increment(n);
        }
    }

    pub fn rejected(&self, reason: RejectReason) {
        self.rejected[reason.index()].increment(1);
    }

    pub fn mqtt_payload(&self) {
        self.mqtt_payloads.increment(1);
    }

    /// A TLS handshake on the MQTT listener failed or timed out (a certificate that failed
    /// verification is also an auth failure, `bad_certificate`).
    pub fn tls_handshake_failed(&self) {
        self.tls_handshake_failures.increment(1);
    }

    /// A gRPC `Subscribe` or console event stream started (+1) or ended (-1). Internal
    /// subscribers (the reminder publisher, the demo feed) are not counted.
    pub fn subscriber(&self, delta: f64) {
        self.subscribers.increment(delta);
    }

    /// A notifier's delivery: `sent`, `retried` or `failed`.
    pub fn notification(&self, notifier: &str, outcome: &'static str) {
        metrics::counter!(NOTIFICATIONS, "notifier" => notifier.to_string(), "outcome" => outcome)
            .increment(1);
    }

    /// Selected events `notifier` has not had confirmed.
    pub fn notifier_backlog(&self, notifier: &str, events: usize) {
        metrics::gauge!(NOTIFIER_BACKLOG, "notifier" => notifier.to_string()).set(events as f64);
    }

    /// A message `notifier` could not deliver, handed to `fallback`: `sent`, `failed`, or
    /// `none` (the care team has no fallback).
    pub fn notifier_fallback(&self, notifier: &str, fallback: &str, outcome: &'static str) {
        metrics::counter!(NOTIFIER_FALLBACKS, "notifier" => notifier.to_string(), "fallback" => fallback.to_string(), "outcome" => outcome)
            .increment(1);
    }

    /// A disposition recorded for an alert of `rule` (no patient in the labels).
    pub fn disposition(&self, rule: &str, disposition: &str) {
        metrics::counter!(DISPOSITIONS, "rule" => rule.to_string(), "disposition" => disposition.to_string())
            .increment(1);
    }

    /// Whether any notifier or open console board reaches `care_team`.
    pub fn care_team_reached(&self, care_team: &str, reached: bool) {
        metrics::gauge!(CARE_TEAM_UNREACHED, "care_team" => care_team.to_string())
            .set(if reached { 0.0 } else { 1.0 });
    }

    /// A notification confirmed `seconds` after its event.
    pub fn notification_latency(&self, notifier: &str, seconds: f64) {
        metrics::histogram!(NOTIFICATION_LATENCY, "notifier" => notifier.to_string())
            .record(seconds);
    }

    /// A partition rebuilt after `took`, replaying `replayed` readings (cluster mode).
    pub fn partition_rebuilt(&self, took: std::time::Duration, replayed: u64) {
        metrics::counter!(CLUSTER_TAKEOVERS).increment(1);
        metrics::counter!(CLUSTER_REPLAYED).increment(replayed);
        metrics::histogram!(CLUSTER_REBUILD).record(took.as_secs_f64());
    }

    /// A partition snapshot of `bytes` published (cluster mode).
    pub fn partition_snapshot(&self, bytes: usize) {
        metrics::counter!(CLUSTER_SNAPSHOT_BYTES).increment(bytes as u64);
    }

    /// The partitions this node owns and the nodes it sees (cluster mode).
    pub fn cluster_membership(&self, owned: usize, nodes: usize) {
        metrics::gauge!(CLUSTER_PARTITIONS).set(owned as f64);
        metrics::gauge!(CLUSTER_NODES).set(nodes as f64);
    }

    /// How many other live nodes' configuration differs from this node's in `section`.
    pub fn config_differs(&self, section: &str, nodes: usize) {
        metrics::gauge!(CLUSTER_CONFIG_DIFFERS, "section" => section.to_string()).set(nodes as f64);
    }

    /// The notifiers this node runs (cluster mode).
    pub fn notifiers_held(&self, held: usize) {
        metrics::gauge!(CLUSTER_NOTIFIERS).set(held as f64);
    }

    /// How far behind the owner of `partition` is (cluster mode).
    pub fn partition_lag(&self, partition: u32, readings: u64, seconds: f64) {
        let p = partition.to_string();
        metrics::gauge!(CLUSTER_LAG_READINGS, "partition" => p.clone()).set(readings as f64);
        metrics::gauge!(CLUSTER_LAG_SECONDS, "partition" => p).set(seconds.max(0.0));
    }

    /// A partition given up, and why (cluster mode).
    pub fn partition_lost(&self, why: &'static str) {
        metrics::counter!(CLUSTER_LOST, "why" => why).increment(1);
    }

    /// Readings not stored in the readings stream (cluster mode).
    pub fn cluster_publish_failed(&self, readings: usize) {
        metrics::counter!(CLUSTER_PUBLISH_FAILURES).increment(readings as u64);
    }

    pub fn console_sessions(&self, open: usize) {
        self.console_sessions.set(open as f64);
    }

    pub fn reminder_sent(&self) {
        self.reminders.increment(1);
    }

    /// A reading received at `received` has just raised at least one alert.
    pub fn raised_after(&self, received: Instant) {
        self.raise_latency.record(received.elapsed().as_secs_f64());
    }

    /// Records what a reading or a clock tick changed (latency is recorded on delivery,
    /// by [`Telemetry::alert_delivered`]).
    pub fn outcome(&self, outcome: &Outcome) {
        for (i, &n) in outcome.raised.iter().enumerate() {
            if n > 0 {
                self.raised[i].increment(u64::from(n));
            }
        }
        if outcome.resolved > 0 {
            self.auto_resolved.increment(u64::from(outcome.resolved));
        }
        // Counters only for what happened: an increment is an atomic write to a line every
        // worker shares, and readings almost never change anything (adding zeros is a
        // measurable cost under gRPC load).
        if outcome.escalated > 0 {
            self.escalated.increment(u64::from(outcome.escalated));
        }
        if outcome.renotified > 0 {
            self.renotified.increment(u64::from(outcome.renotified));
        }
    }

    /// An alert raised by a reading received at `origin` was journaled and handed to every
    /// subscriber.
    pub fn alert_delivered(&self, origin: Instant) {
        self.latency.record(origin.elapsed().as_secs_f64());
    }

    /// One batch of alert events written to the journal and fsynced in `took`.
    pub fn journal_written(&self, took: std::time::Duration) {
        self.journal_write.record(took.as_secs_f64());
    }

    /// Updates the gauges that are read from the engine, just before a scrape.
    pub fn refresh(&self, engine: &Engine) {
        let stats = engine.log().stats();
        self.active_alerts.set(engine.active_alerts() as f64);
        self.patients_tracked.set(engine.patients_tracked() as f64);
        self.events_retained.set(stats.retained as f64);
        self.events_dropped.absolute(stats.dropped);
        self.subscribers_cut_off
            .absolute(stats.overflowed_subscribers);
        self.last_seq.set(stats.last_seq as f64);
        self.deadlines.set(engine.pending_deadlines() as f64);
        self.below_adherence(None, engine.below_adherence());
    }
}

/// One HTTP request answered (`route`: its pattern, e.g. `/api/patients/{id}`).
pub fn http_request(route: &str, status: u16, took: std::time::Duration) {
    metrics::histogram!(HTTP_REQUESTS, "route" => route.to_string(), "status" => status.to_string())
        .record(took.as_secs_f64());
}
