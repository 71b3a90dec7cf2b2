//! How the two roles connect: gRPC over TLS (rustls) with certificates from
//! configuration, or plaintext when, and only when, both ends are on loopback
//! (tests, `homeward sync`).
//!
//! HTTP/2 is tuned for bulk transfer: 1 MiB blocks through the default 64 KiB
//! flow-control windows would stall on every round trip.

use super::MAX_BLOCK_SIZE;
use super::error::SyncError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig,
};

/// Stream window: several blocks in flight per stream.
const STREAM_WINDOW: u32 = 32 << 20;
/// Connection window: room for every stream of a connection.
const CONNECTION_WINDOW: u32 = 64 << 20;
/// HTTP/2 frame size: a block in a few frames instead of 64 (h2's default is 16 KiB).
const FRAME_SIZE: u32 = 1 << 20;
/// Largest gRPC message: one block plus its envelope.
pub const MAX_MESSAGE: usize = MAX_BLOCK_SIZE + (64 << 10);

/// PEM files of a TLS identity and the CA that signs the peers.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// This side's certificate chain.
    pub cert: PathBuf,
    /// This side's private key.
    pub key: PathBuf,
    /// The CA that signed the other side's certificate.
    pub ca: PathBuf,
}

/// Transport security of one side.
#[derive(Debug, Clone)]
pub enum Security {
    /// Mutual TLS with these files.
    Tls(TlsFiles),
    /// No encryption; refused unless every address involved is loopback.
    PlaintextLoopback,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, SyncError> {
    std::fs::read(path)
        .map_err(|e| SyncError::Config(format!("cannot read the {what} {}: {e}", path.display())))
}

impl TlsFiles {
    fn identity(&self) -> Result<Identity, SyncError> {
        Ok(Identity::from_pem(
            read(&self.cert, "TLS certificate")?,
            read(&self.key, "TLS key")?,
        ))
    }

    fn ca(&self) -> Result<Certificate, SyncError> {
        Ok(Certificate::from_pem(read(&self.ca, "CA certificate")?))
    }
}

/// A gRPC server builder for `addr` with this security.
pub fn server(addr: SocketAddr, security: &Security) -> Result<Server, SyncError> {
    let mut builder = Server::builder()
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(FRAME_SIZE))
        .tcp_nodelay(true);
    match security {
        Security::PlaintextLoopback => {
            if !addr.ip().is_loopback() {
                return Err(SyncError::Config(format!(
                    "plaintext is allowed only on loopback, not on {addr}: configure TLS (--tls-cert, --tls-key, --tls-ca)"
                )));
            }
        }
        Security::Tls(files) => {
            let tls = ServerTlsConfig::new()
                .identity(files.identity()?)
                .client_ca_root(files.ca()?);
            builder = builder
                .tls_config(tls)
                .map_err(|e| SyncError::Config(format!("TLS configuration: {e}")))?;
        }
    }
    Ok(builder)
}

/// Connects to a peer at `url` (`https://host:port`, or `http://` on loopback).
pub async fn connect(url: &str, security: &Security) -> Result<Channel, SyncError> {
    let unreachable = |reason: String| SyncError::Unreachable {
        endpoint: url.to_string(),
        reason,
    };
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| SyncError::Config(format!("bad endpoint `{url}`: {e}")))?
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(CONNECTION_WINDOW))
        .max_frame_size(Some(FRAME_SIZE))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .http2_keep_alive_interval(Duration::from_secs(30));
    let uri = endpoint.uri().clone();
    match (uri.scheme_str(), security) {
        (Some("http"), Security::PlaintextLoopback) => {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(SyncError::Config(format!(
                    "plaintext is allowed only to loopback, not to {url}: use https:// with TLS"
                )));
            }
        }
        (Some("https"), Security::Tls(files)) => {
            let tls = ClientTlsConfig::new()
                .ca_certificate(files.ca()?)
                .identity(files.identity()?);
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| SyncError::Config(format!("TLS configuration: {e}")))?;
        }
        (Some("http"), Security::Tls(_)) => {
            return Err(SyncError::Config(format!(
                "{url} is plaintext but TLS is configured: use https://"
            )));
        }
        (Some("https"), Security::PlaintextLoopback) => {
            return Err(SyncError::Config(format!(
                "{url} needs TLS: pass --tls-cert, --tls-key and --tls-ca"
            )));
        }
        _ => {
            return Err(SyncError::Config(format!(
                "endpoint `{url}` must start with http:// or https://"
            )));
        }
    }
    endpoint.connect().await.map_err(|e| {
        let reason = format!("{e:?}");
        if CERTIFICATE_ERRORS
            .iter()
            .any(|marker| reason.contains(marker))
        {
            SyncError::Tls {
                endpoint: url.to_string(),
                reason: certificate_reason(&reason),
            }
        } else {
            unreachable(reason)
        }
    })
}

/// What rustls calls certificate problems: these do not go away by retrying.
const CERTIFICATE_ERRORS: &[&str] = &[
    "InvalidCertificate",
    "CertificateRequired",
    "BadCertificate",
    "UnknownIssuer",
];

/// The certificate complaint alone, e.g. `InvalidCertificate(UnknownIssuer)`.
fn certificate_reason(debug: &str) -> String {
    match debug.find("InvalidCertificate") {
        Some(at) => {
            let tail = &debug[at..];
            match tail.find(')') {
                Some(end) => tail[..=end].to_string(),
                None => tail.to_string(),
            }
        }
        None => debug.to_string(),
    }
}

/// Accepted connections of `listener`, with Nagle's algorithm off. tonic's
/// `tcp_nodelay` applies only to listeners it binds itself; without this, small
/// replies (acks, `Open`) wait ~40 ms for delayed ACKs.
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}
