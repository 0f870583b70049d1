//! Errors of the alerting crate, each with a message a caller can act on.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum AlertingError {
    /// No alert with this id exists, open or in the retained history.
    #[error("no alert with id '{0}'")]
    AlertNotFound(String),
    /// The requested lifecycle transition is not allowed from the alert's current state.
    #[error("alert '{id}' is {state}: cannot {action}")]
    IllegalTransition {
        id: String,
        state: &'static str,
        action: &'static str,
    },
    /// A rule definition is invalid; the message names the offending key.
    #[error("{0}")]
    InvalidRule(String),
}
