//! The control API's client side: connecting to a server with a token, and
//! what a failed call means for the command line ([`ClientError::exit_code`]).
//!
//! Exit codes: 0 ok, 1 the operation failed (a job failed, the server could
//! not do it), 2 usage or input error, 3 cannot reach or authenticate to the
//! server, 4 not found, 5 refused (precondition, readiness, split brain).

use super::auth;
use super::proto::control_client::ControlClient;
use std::path::Path;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest message the client takes (a backup chunk is 1 MiB).
const MAX_MESSAGE: usize = 16 << 20;

/// Why a client command did not do what was asked, by what the operator
/// can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The arguments or an input file are wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The server cannot be reached (exit 3).
    #[error("cannot reach the Homeward server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server does not accept the token, or the token's role is not
    /// enough (exit 3).
    #[error("{0}")]
    Unauthorized(String),
    /// The thing named does not exist (exit 4).
    #[error("{0}")]
    NotFound(String),
    /// The server refused: a precondition, readiness or the split-brain
    /// guard (exit 5).
    #[error("{0}")]
    Refused(String),
    /// The operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    /// The command's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Failed(_) => 1,
            ClientError::Usage(_) => 2,
            ClientError::Unreachable { .. } | ClientError::Unauthorized(_) => 3,
            ClientError::NotFound(_) => 4,
            ClientError::Refused(_) => 5,
        }
    }

    /// A failed call to the server at `url`, by its status code.
    pub fn from_status(status: &Status, url: &str) -> ClientError {
        let message = status.message().to_string();
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded => ClientError::Unreachable {
                url: url.to_string(),
                reason: message,
            },
            Code::Unauthenticated => ClientError::Unauthorized(format!(
                "the server at {url} does not accept the token: {message}"
            )),
            Code::PermissionDenied => ClientError::Unauthorized(message),
            Code::NotFound => ClientError::NotFound(message),
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
                ClientError::Refused(message)
            }
            Code::InvalidArgument | Code::OutOfRange => ClientError::Usage(message),
            _ => ClientError::Failed(message),
        }
    }
}

/// Puts the bearer token on every call.
#[derive(Clone)]
pub struct BearerToken {
    header: MetadataValue<tonic::metadata::Ascii>,
}

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// A connected client.
pub type Client = ControlClient<InterceptedService<Channel, BearerToken>>;

/// A connection to one server.
pub struct Connection {
    /// The gRPC client (cheap to clone).
    pub client: Client,
    /// The server's URL, for messages.
    pub url: String,
}

impl Connection {
    /// Connects to `url` with the token in `token_file`.
    pub async fn open(url: &str, token_file: &Path) -> Result<Connection, ClientError> {
        let token = auth::read_token_file(token_file).map_err(|e| {
            ClientError::Unauthorized(format!(
                "{e}; give the server's token file with --token-file (or HOMEWARD_TOKEN_FILE)"
            ))
        })?;
        Connection::open_with_token(url, &token).await
    }

    /// Connects to `url` with `token`.
    pub async fn open_with_token(url: &str, token: &str) -> Result<Connection, ClientError> {
        // The token is never part of an error message.
        let header = format!("Bearer {token}").parse().map_err(|_| {
            ClientError::Usage(
                "the token holds characters an HTTP header cannot carry; use the token file the \
                 server wrote"
                    .to_string(),
            )
        })?;
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| {
                ClientError::Usage(format!(
                    "`{url}` is not a server URL ({e}); say e.g. http://127.0.0.1:9440"
                ))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                reason: transport_reason(&e),
            })?;
        let client = ControlClient::with_interceptor(channel, BearerToken { header })
            .max_decoding_message_size(MAX_MESSAGE);
        Ok(Connection {
            client,
            url: url.to_string(),
        })
    }

    /// The error for a failed call.
    pub fn error(&self, status: &Status) -> ClientError {
        ClientError::from_status(status, &self.url)
    }
}

/// The innermost cause of a transport error (tonic's own says only
/// "transport error").
fn transport_reason(e: &tonic::transport::Error) -> String {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    format!("{reason}; is `homeward serve` running there?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_status() {
        let url = "http://127.0.0.1:1";
        let code = |c: Code| ClientError::from_status(&Status::new(c, "x"), url).exit_code();
        assert_eq!(code(Code::NotFound), 4);
        assert_eq!(code(Code::FailedPrecondition), 5);
        assert_eq!(code(Code::AlreadyExists), 5);
        assert_eq!(code(Code::InvalidArgument), 2);
        assert_eq!(code(Code::Unauthenticated), 3);
        assert_eq!(code(Code::PermissionDenied), 3);
        assert_eq!(code(Code::Unavailable), 3);
        assert_eq!(code(Code::Internal), 1);
    }
}
