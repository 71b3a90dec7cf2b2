//! Errors of the data path. Each says what failed and what to do.

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source disk cannot be used.
    #[error("source {path}: {reason}")]
    Source {
        /// The source.
        path: String,
        /// Why.
        reason: String,
    },
    /// Bad configuration (endpoints, TLS files, options).
    #[error("{0}")]
    Config(String),
    /// The peer could not be reached (after retrying, if retries were allowed).
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        reason: String,
    },
    /// The TLS handshake failed on a certificate: retrying cannot help.
    #[error(
        "TLS with {endpoint} failed ({reason}): check that --tls-ca holds the CA that signed the peer's certificate and that the certificate names the host in the URL"
    )]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What the TLS library said.
        reason: String,
    },
    /// The peer refused or failed the request.
    #[error("the master target refused: {0}")]
    Refused(String),
    /// Both sides finished but their whole-disk digests differ.
    #[error(
        "the target does not match the source: whole-disk digest {target} on the master target, {source_root} here; run a delta sync to repair it"
    )]
    Mismatch {
        /// The source's digest (hex).
        source_root: String,
        /// The target's digest (hex).
        target: String,
    },
    /// A bug or an unexpected state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SyncError {
    /// Whether retrying (reconnecting and resuming) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SyncError::Unreachable { .. })
    }
}

impl From<tonic::Status> for SyncError {
    fn from(status: tonic::Status) -> Self {
        use tonic::Code;
        match status.code() {
            // A killed or restarting peer shows up as one of these.
            Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted => {
                SyncError::Unreachable {
                    endpoint: "the master target".to_string(),
                    reason: status.message().to_string(),
                }
            }
            // The peer lost our session (it restarted): reopen.
            Code::NotFound if status.message().contains("no sync session") => {
                SyncError::Unreachable {
                    endpoint: "the master target".to_string(),
                    reason: status.message().to_string(),
                }
            }
            _ => SyncError::Refused(status.message().to_string()),
        }
    }
}
