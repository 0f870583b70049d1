//! Refused credentials and forbidden actions: counted (`vigil_auth_failures_total{reason}`),
//! logged without secrets, and written to the audit log.

use std::sync::Arc;
use std::time::Instant;

use metrics::{counter, describe_counter, Counter};
use tracing::{debug, info, warn};

use crate::audit::AuditLog;
use crate::auth::repeat_limit::{RepeatLimiter, Summary, Verdict};
use crate::untrusted::clip;

pub const AUTH_FAILURES: &str = "vigil_auth_failures_total";
pub const AUTH_FAILURES_UNLOGGED: &str = "vigil_auth_failures_unlogged_total";
/// The audit action (and repeat-grouping reason) of a session takeover.
const TAKEOVER: &str = "mqtt_takeover";

/// Why a caller was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// gRPC call without an `authorization: Bearer` header.
    MissingToken,
    /// A token that matches no configured token.
    BadToken,
    /// A valid token whose role may not call this service.
    WrongRole,
    /// A gateway publishing outside its patient prefixes, or a care team reaching for
    /// another team's alerts.
    OutOfScope,
    /// MQTT CONNECT without username or password.
    MissingCredentials,
    /// MQTT CONNECT with an unknown device or a wrong secret.
    BadCredentials,
    /// A device publishing to a topic that is not its own patient's.
    PublishDenied,
    /// A device subscribing to a topic filter that is not its own patient's reminders.
    SubscribeDenied,
    /// An MQTT client certificate that failed verification, names no provisioned device,
    /// or names another device than the CONNECT username.
    BadCertificate,
    /// An MQTT CONNECT of a device that already holds `max_sessions_per_device` sessions.
    SessionLimit,
    /// An MQTT CONNECT with a client id that another identity's session holds.
    ClientIdTaken,
    /// An MQTT CONNECT from an address throttled or locked out after failed logins (its
    /// credentials were not checked).
    Throttled,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 12] = [
        AuthFailure::MissingToken,
        AuthFailure::BadToken,
        AuthFailure::WrongRole,
        AuthFailure::OutOfScope,
        AuthFailure::MissingCredentials,
        AuthFailure::BadCredentials,
        AuthFailure::PublishDenied,
        AuthFailure::SubscribeDenied,
        AuthFailure::BadCertificate,
        AuthFailure::SessionLimit,
        AuthFailure::ClientIdTaken,
        AuthFailure::Throttled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::MissingToken => "missing_token",
            AuthFailure::BadToken => "bad_token",
            AuthFailure::WrongRole => "wrong_role",
            AuthFailure::OutOfScope => "out_of_scope",
            AuthFailure::MissingCredentials => "missing_credentials",
            AuthFailure::BadCredentials => "bad_credentials",
            AuthFailure::PublishDenied => "publish_denied",
            AuthFailure::SubscribeDenied => "subscribe_denied",
            AuthFailure::BadCertificate => "bad_certificate",
            AuthFailure::SessionLimit => "session_limit",
            AuthFailure::ClientIdTaken => "client_id_taken",
            AuthFailure::Throttled => "throttled",
        }
    }
}

/// Where failures go.
pub struct FailureLog {
    counters: [Counter; AuthFailure::ALL.len()],
    suppressed: Counter,
    repeats: RepeatLimiter,
    audit: Option<Arc<AuditLog>>,
}

impl FailureLog {
    /// Registers the counters at zero; failures are also appended to `audit`.
    pub fn new(audit: Arc<AuditLog>) -> FailureLog {
        describe_counter!(
            AUTH_FAILURES,
            "Refused credentials and forbidden actions, by reason."
        );
        describe_counter!(
            AUTH_FAILURES_UNLOGGED,
            "Refusals counted but not logged one by one (repeats of one reason and source \
             within a minute; summed up in one line)."
        );
        FailureLog {
            counters: AuthFailure::ALL.map(|r| counter!(AUTH_FAILURES, "reason" => r.as_str())),
            suppressed: counter!(AUTH_FAILURES_UNLOGGED),
            repeats: RepeatLimiter::new(Instant::now()),
            audit: Some(audit),
        }
    }

    /// Records one failure. `source` is where it came from, for grouping repeats (the
    /// peer's IP address, or the authenticated token or device); `actor` is who tried (a
    /// token name, device id or peer address), `target` what they tried (a service, method
    /// or topic); never a secret. Every failure is counted; per reason and source, the
    /// first few of each minute are logged and audited in full, the rest summed up.
    pub fn record(&self, reason: AuthFailure, source: &str, actor: &str, target: &str) {
        self.counters[reason as usize].increment(1);
        let source = clip(source);
        let (verdict, summaries) = self.repeats.admit(reason.as_str(), &source, Instant::now());
        self.write_summaries(summaries);
        if verdict == Verdict::Counted {
            self.suppressed.increment(1);
            return;
        }
        let (actor, target) = (clip(actor), clip(target));
        // The target may name a patient (a topic): debug only; the audit log keeps it.
        warn!(
            reason = reason.as_str(),
            actor = %actor, "authentication or authorisation refused"
        );
        debug!(reason = reason.as_str(), actor = %actor, target = %target, "refused target");
        if let Some(audit) = &self.audit {
            // Not synced one by one: a client spraying bad credentials must not turn into
            // an fsync per attempt. The next synced entry (or the OS) makes them durable.
            audit.record_unsynced(&actor, "auth_failure", &target, reason.as_str());
        }
    }

    /// Records that `device` took over its own session with `client_id` (allowed, as MQTT
    /// requires, but a stolen credential shows up as churn). Logged and audited like a
    /// failure, repeats summed up.
    pub fn takeover(&self, device: &str, client_id: &str) {
        let (verdict, summaries) = self.repeats.admit(TAKEOVER, device, Instant::now());
        self.write_summaries(summaries);
        if verdict == Verdict::Counted {
            self.suppressed.increment(1);
            return;
        }
        let (device, client_id) = (clip(device), clip(client_id));
        info!(device = %device, "MQTT session taken over by a new connection of the same device");
        if let Some(audit) = &self.audit {
            audit.record_unsynced(&device, TAKEOVER, &client_id, "");
        }
    }

    /// Sums up the repeats of an interval that has ended (called periodically, so that a
    /// burst is reported even when nothing follows it).
    pub fn flush(&self) {
        self.write_summaries(self.repeats.roll(Instant::now()));
    }

    fn write_summaries(&self, summaries: Vec<Summary>) {
        for s in summaries {
            let seconds = s.interval.as_secs();
            warn!(
                reason = s.reason,
                source = %s.source,
                count = s.suppressed,
                seconds,
                "further refusals of this reason and source, not logged one by one"
            );
            if let Some(audit) = &self.audit {
                let detail = format!("{}: {} more in {seconds} s", s.reason, s.suppressed);
                audit.record_unsynced(&s.source, "auth_failure_summary", "", &detail);
            }
        }
    }
}
