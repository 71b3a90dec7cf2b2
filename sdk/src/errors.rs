//! Constructors for [`Error`], the one error type of the API.
//!
//! Every case is something an operator can act on, so every message should say
//! what failed and how to fix it. Never put a secret in a message.

use crate::Error;
use crate::types::{PermissionDenied, Unavailable};

impl Error {
    /// The named object does not exist.
    pub fn not_found(what: impl Into<String>) -> Self {
        Error::NotFound(what.into())
    }

    /// The account lacks `missing` privileges.
    pub fn permission_denied(message: impl Into<String>, missing: &[&str]) -> Self {
        Error::PermissionDenied(PermissionDenied {
            message: message.into(),
            missing_privileges: missing.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// This plugin or endpoint cannot do it.
    pub fn unsupported(what: impl Into<String>) -> Self {
        Error::Unsupported(what.into())
    }

    /// The request (or the data it points at) is malformed.
    pub fn invalid_input(what: impl Into<String>) -> Self {
        Error::InvalidInput(what.into())
    }

    /// The request clashes with the current state.
    pub fn conflict(what: impl Into<String>) -> Self {
        Error::Conflict(what.into())
    }

    /// Retryable: the endpoint cannot answer now.
    pub fn unavailable(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        Error::Unavailable(Unavailable {
            message: message.into(),
            retry_after_ms,
        })
    }

    /// A bug or an unexpected answer.
    pub fn internal(what: impl Into<String>) -> Self {
        Error::Internal(what.into())
    }

    /// Whether the host may retry the call later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

impl From<crate::bytes::OutOfBounds> for Error {
    fn from(e: crate::bytes::OutOfBounds) -> Self {
        Error::InvalidInput(e.to_string())
    }
}
