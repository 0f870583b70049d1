//! Refused credentials and forbidden actions: counted (`vigil_auth_failures_total{reason}`),
//! logged without secrets, and written to the audit log.

use std::sync::Arc;

use metrics::{counter, describe_counter, Counter};
use tracing::{debug, warn};

use crate::audit::AuditLog;

pub const AUTH_FAILURES: &str = "vigil_auth_failures_total";

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
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 9] = [
        AuthFailure::MissingToken,
        AuthFailure::BadToken,
        AuthFailure::WrongRole,
        AuthFailure::OutOfScope,
        AuthFailure::MissingCredentials,
        AuthFailure::BadCredentials,
        AuthFailure::PublishDenied,
        AuthFailure::SubscribeDenied,
        AuthFailure::BadCertificate,
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
        }
    }
}

/// Where failures go.
pub struct FailureLog {
    counters: [Counter; AuthFailure::ALL.len()],
    audit: Option<Arc<AuditLog>>,
}

impl FailureLog {
    /// Registers the counters at zero; failures are also appended to `audit`.
    pub fn new(audit: Arc<AuditLog>) -> FailureLog {
        describe_counter!(
            AUTH_FAILURES,
            "Refused credentials and forbidden actions, by reason."
        );
        FailureLog {
            counters: AuthFailure::ALL.map(|r| counter!(AUTH_FAILURES, "reason" => r.as_str())),
            audit: Some(audit),
        }
    }

    /// Records one failure. `actor` is who tried (a token name, device id or peer address),
    /// `target` what they tried (a service, method or topic); never a secret.
    pub fn record(&self, reason: AuthFailure, actor: &str, target: &str) {
        self.counters[reason as usize].increment(1);
        // The target may name a patient (a topic): debug only; the audit log keeps it.
        warn!(
            reason = reason.as_str(),
            actor, "authentication or authorisation refused"
        );
        debug!(reason = reason.as_str(), actor, target, "refused target");
        if let Some(audit) = &self.audit {
            // Not synced one by one: a client spraying bad credentials must not turn into
            // an fsync per attempt. The next synced entry (or the OS) makes them durable.
            audit.record_unsynced(actor, "auth_failure", target, reason.as_str());
        }
    }
}
