//! Why an operation was refused, in terms every transport can translate (gRPC codes, HTTP
//! statuses): what the caller did wrong, or what the server cannot do right now.

use vigil_alerting::{AlertingError, JournalError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong (a field, a limit): fix it and retry.
    #[error("{0}")]
    Invalid(String),
    /// What the request names does not exist (or no longer).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this (role or scope); already counted and audited.
    #[error("{0}")]
    Denied(String),
    /// Not in the state the request needs (an alert already resolved, a patient not
    /// enrolled).
    #[error("{0}")]
    Precondition(String),
    /// A bound on what clients may hold is reached: retry later.
    #[error("{0}")]
    Exhausted(String),
    /// The change could not be made durable: nothing was changed, retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl From<AlertingError> for AppError {
    fn from(e: AlertingError) -> Self {
        match e {
            AlertingError::AlertNotFound(_) => AppError::NotFound(e.to_string()),
            AlertingError::IllegalTransition { .. } => AppError::Precondition(e.to_string()),
            AlertingError::InvalidRule(_) => AppError::Invalid(e.to_string()),
        }
    }
}

impl From<JournalError> for AppError {
    /// A journal write that failed: the change was not applied, so the caller may retry.
    fn from(e: JournalError) -> Self {
        AppError::Unavailable(format!(
            "the change could not be made durable ({e}); nothing was changed, retry later"
        ))
    }
}
