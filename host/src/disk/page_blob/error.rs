//! What can go wrong with a page blob, typed, and never with a secret in it.
//!
//! Every variant names the blob by its URL without the query string (where a
//! SAS would be), and text a server sent is passed through the credential's
//! redaction before it is kept.

use crate::disk::DiskError;
use std::io;
use std::time::Duration;

/// A page-blob failure.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The endpoint is not a blob URL Homeward can use.
    #[error("{endpoint} is not a usable page blob endpoint: {reason}")]
    InvalidEndpoint {
        /// The URL without its query.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },

    /// Nothing answers at the endpoint (refused, unreachable, name unknown,
    /// connection broken).
    #[error(
        "blob endpoint {endpoint} is unavailable ({operation}): {detail}; check that the storage \
         service is running and reachable from this machine"
    )]
    Unavailable {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// What the connection attempt said.
        detail: String,
    },

    /// The call's deadline passed before an answer.
    #[error("{operation} on {endpoint} got no answer within {after:?} (the call's deadline)")]
    TimedOut {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },

    /// The service refused the credential (HTTP 401 or 403).
    #[error(
        "{operation} on {endpoint}: permission denied (HTTP {status} {code}); check the SAS \
         token (permissions, expiry) or the account name and key"
    )]
    PermissionDenied {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// 401 or 403.
        status: u16,
        /// The service's error code (`AuthenticationFailed`, ...).
        code: String,
    },

    /// The blob, snapshot or container does not exist (HTTP 404).
    #[error("{operation} on {endpoint}: not found ({code})")]
    NotFound {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// The service's error code (`BlobNotFound`, `ContainerNotFound`, ...).
        code: String,
    },

    /// The object exists already (HTTP 409, or 412 for a create that must not
    /// replace anything).
    #[error("{operation} on {endpoint}: it already exists or is in use ({code})")]
    Conflict {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// The service's error code.
        code: String,
    },

    /// Still throttled (429 or 503) when the retries or the deadline ran out.
    #[error(
        "{operation} on {endpoint}: the service is still busy (HTTP {status}) after {attempts} \
         attempts; try again later or lower the parallelism"
    )]
    Throttled {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// 429 or 503.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },

    /// Any other error answer.
    #[error("{operation} on {endpoint} failed: HTTP {status} {code}: {message}")]
    Service {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The service's error code.
        code: String,
        /// The service's message, redacted and shortened.
        message: String,
    },

    /// The answer was not what the Blob API specifies.
    #[error("{operation} on {endpoint}: unexpected answer: {detail}")]
    Protocol {
        /// The URL without its query.
        endpoint: String,
        /// The Blob operation.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },

    /// The blob is a block or append blob.
    #[error(
        "{endpoint} is a {found}, not a page blob: disks must be page blobs (VHD fixed); \
         copy it as a page blob (`az storage blob copy start --destination-blob-type PageBlob`)"
    )]
    NotPageBlob {
        /// The URL without its query.
        endpoint: String,
        /// The blob type the service reported.
        found: String,
    },

    /// A request the device cannot carry out (a write to a snapshot, a size
    /// that is not whole pages, ...).
    #[error("{endpoint}: {reason}")]
    Invalid {
        /// The URL without its query.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },

    /// The blob's last 512 bytes look like a VHD footer but are not a valid
    /// fixed-disk one.
    #[error(transparent)]
    Footer(#[from] DiskError),
}

impl BlobError {
    /// The closest I/O error kind, for callers that see [`io::Error`]s.
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            BlobError::InvalidEndpoint { .. } | BlobError::Invalid { .. } => {
                io::ErrorKind::InvalidInput
            }
            BlobError::Unavailable { .. } => io::ErrorKind::NotConnected,
            BlobError::TimedOut { .. } => io::ErrorKind::TimedOut,
            BlobError::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            BlobError::NotFound { .. } => io::ErrorKind::NotFound,
            BlobError::Conflict { .. } => io::ErrorKind::AlreadyExists,
            BlobError::Throttled { .. } => io::ErrorKind::ResourceBusy,
            BlobError::Footer(_) | BlobError::NotPageBlob { .. } => io::ErrorKind::InvalidData,
            BlobError::Service { .. } | BlobError::Protocol { .. } => io::ErrorKind::Other,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BlobError::Unavailable { .. }
                | BlobError::TimedOut { .. }
                | BlobError::Throttled { .. }
        )
    }
}

impl From<BlobError> for io::Error {
    fn from(e: BlobError) -> io::Error {
        io::Error::new(e.io_kind(), e)
    }
}
