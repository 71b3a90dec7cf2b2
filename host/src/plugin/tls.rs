//! TLS to an endpoint the operator gave a trust setting (`grants.tls`), and
//! the words for every refusal.
//!
//! A granted `host:port` with a CA file is verified against that CA (chain,
//! name, dates) instead of the web PKI roots; one with a pinned thumbprint is
//! accepted only if the server's end-entity certificate has exactly that
//! thumbprint. Either way the handshake signature is still verified, so a
//! peer must hold the certificate's private key. Verification is never off.
//!
//! `EndpointTrust` builds one rustls client configuration per endpoint on
//! first use; `Connector::send` carries one request over TCP, TLS and
//! HTTP/1.1 within the request's timeouts (the shape of
//! `wasmtime_wasi_http::default_send_request`, which still serves endpoints
//! without a setting). A refused certificate ends the connection before any
//! byte of the request is sent, with an error that names the endpoint, what
//! was expected, and the thumbprint the server presented, so the operator can
//! compare it with the one vCenter shows.

use crate::config::{HostPort, Thumbprint, ThumbprintAlgorithm, TlsGrant, TlsTrust, read_ca_file};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// The future that finishes a response's connection, as `wasi:http` wants it.
pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// What `wasmtime_wasi_http` waits when a request sets no timeout; kept the
/// same so a setting changes trust, not timing. The plugin call's own
/// deadline bounds everything anyway.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The trust settings of one plugin instance's endpoints, and the client
/// configurations made from them (built on first use: reading a CA file costs
/// nothing next to a handshake, and an instance that never calls out never
/// reads it).
pub(crate) struct EndpointTrust {
    grants: Vec<TlsGrant>,
    built: HashMap<HostPort, Arc<Connector>>,
}

impl EndpointTrust {
    pub(crate) fn new(grants: &[TlsGrant]) -> EndpointTrust {
        EndpointTrust {
            grants: grants.to_vec(),
            built: HashMap::new(),
        }
    }

    /// The connector for `endpoint`, if it has a setting; `Err` says why the
    /// setting cannot be used (an unreadable CA file, say).
    pub(crate) fn connector(
        &mut self,
        endpoint: &HostPort,
    ) -> Option<Result<Arc<Connector>, String>> {
        if let Some(connector) = self.built.get(endpoint) {
            return Some(Ok(connector.clone()));
        }
        let grant = self.grants.iter().find(|g| g.endpoint == *endpoint)?;
        let built = Connector::new(grant).map(Arc::new);
        if let Ok(connector) = &built {
            self.built.insert(endpoint.clone(), connector.clone());
        }
        Some(built)
    }
}

/// HTTPS to one endpoint under its operator-given trust.
pub(crate) struct Connector {
    endpoint: HostPort,
    trust: TlsTrust,
    config: Arc<ClientConfig>,
}

impl Connector {
    fn new(grant: &TlsGrant) -> Result<Connector, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let check = match &grant.trust {
            TlsTrust::Ca(path) => {
                let roots = read_ca_file(path).map_err(|e| e.to_string())?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("CA file `{}` cannot be used: {e}", path.display()))?;
                Check::Ca(webpki)
            }
            TlsTrust::Thumbprint(pin) => Check::Pin(pin.clone()),
        };
        let verifier = Arc::new(EndpointVerifier {
            check,
            provider: provider.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Connector {
            endpoint: grant.endpoint.clone(),
            trust: grant.trust.clone(),
            config: Arc::new(config),
        })
    }

    /// Sends `request` (an `https` URI naming this endpoint) and returns the
    /// response with the future that drives the rest of its connection.
    pub(crate) async fn send(
        &self,
        plugin: &str,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .unwrap_or(DEFAULT_TIMEOUT);
        let between_bytes_timeout = options
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(DEFAULT_TIMEOUT)
            .max(Duration::from_nanos(1));

        // The name the plugin asked for, not the normalised one: a CA-issued
        // certificate names the host as the operator's URL spells it.
        let uri = request.uri();
        let host = uri
            .host()
            .ok_or(Error::HttpRequestUriInvalid)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::from(ip),
            Err(_) => ServerName::try_from(host.clone()).map_err(|e| {
                Error::InternalError(Some(format!("invalid TLS name `{host}`: {e}")))
            })?,
        };

        let tcp = tokio::time::timeout(
            connect_timeout,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let tls = tokio::time::timeout(connect_timeout, connector.connect(server_name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|e| {
                let message = self.explain(plugin, &e);
                tracing::warn!(plugin = %plugin, destination = %self.endpoint, "{message}");
                Error::InternalError(Some(message))
            })?;

        let (mut sender, connection) = tokio::time::timeout(
            connect_timeout,
            hyper::client::conn::http1::handshake::<_, WasiBody>(TokioIo::new(tls)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Hyper)?;

        // On the wire the request line carries only the path: scheme and
        // authority belong to proxies (the `host` header names the server).
        let path = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_string();
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(path)
            .build()
            .map_err(|e| Error::InternalError(Some(format!("request path: {e}"))))?;

        let mut response = pin!(tokio::time::timeout(
            first_byte_timeout,
            sender.send_request(request)
        ));
        let mut connection = Some(connection);
        // The connection must be driven for the response to arrive.
        let response = poll_fn(|cx| {
            if let Poll::Ready(answer) = response.as_mut().poll(cx) {
                return Poll::Ready(first_answer(answer));
            }
            let Some(driving) = connection.as_mut() else {
                return Poll::Pending;
            };
            let Poll::Ready(ended) = Pin::new(driving).poll(cx) else {
                return Poll::Pending;
            };
            connection = None;
            match ended {
                Ok(()) => response.as_mut().poll(cx).map(first_answer),
                Err(e) => Poll::Ready(Err(connection_error(e))),
            }
        })
        .await?;

        let (head, incoming) = response.into_parts();
        let body = ResponseBody {
            incoming,
            idle: Box::pin(tokio::time::sleep(between_bytes_timeout)),
            gap: between_bytes_timeout,
        };
        let io = async move {
            match connection {
                Some(rest) => rest.await.map_err(connection_error),
                None => Ok(()),
            }
        };
        Ok((
            http::Response::from_parts(head, body.boxed_unsync()),
            Box::new(io) as IoFuture,
        ))
    }

    /// The operator's words for a failed handshake under this setting.
    fn explain(&self, plugin: &str, error: &std::io::Error) -> String {
        let endpoint = &self.endpoint;
        let Some(refusal) = refusal_of(error) else {
            return format!("TLS handshake with {endpoint} failed: {error}");
        };
        let presented = &refusal.presented;
        match (&self.trust, &refusal.reason) {
            (TlsTrust::Thumbprint(pin), Reason::Mismatch) => {
                let also = if pin.algorithm() == ThumbprintAlgorithm::Sha256 {
                    String::new()
                } else {
                    format!(" ({})", refusal.presented_sha256)
                };
                format!(
                    "TLS to {endpoint} refused: the server presented a certificate with \
                     thumbprint {presented}{also}, but [plugins.{plugin}] grants.tls pins \
                     {pin}; compare with the thumbprint the endpoint shows (vCenter: \
                     Administration > Certificates) and update the pin only if they match"
                )
            }
            (TlsTrust::Ca(path), Reason::Untrusted(why)) => format!(
                "TLS to {endpoint} refused: its certificate is not trusted by the CA file {} \
                 ({why}); the server presented thumbprint {}",
                path.display(),
                refusal.presented_sha256
            ),
            // A refusal always matches its setting; say what is known anyway.
            (_, Reason::Mismatch | Reason::Untrusted(_)) => {
                format!("TLS to {endpoint} refused: {refusal}")
            }
        }
    }
}

/// The words for a failed handshake under the default trust (web PKI roots),
/// naming the fix when the certificate was the problem.
pub(crate) fn explain_default_failure(
    plugin: &str,
    endpoint: &HostPort,
    error: &std::io::Error,
) -> String {
    match rustls_error_of(error) {
        Some(rustls::Error::InvalidCertificate(why)) => format!(
            "TLS to {endpoint} refused: its certificate is not trusted by the public CA roots \
             ({why}); for a self-signed or internal-CA certificate, give {endpoint} a trust \
             setting in [plugins.{plugin}] grants.tls: its CA (ca = PEM file) or its \
             certificate thumbprint (thumbprint = sha256:AB:CD:...)"
        ),
        _ => format!("TLS handshake with {endpoint} failed: {error}"),
    }
}

/// hyper's answer to the request, in `wasi:http` terms.
fn first_answer(
    answer: Result<Result<http::Response<Incoming>, hyper::Error>, tokio::time::error::Elapsed>,
) -> Result<http::Response<Incoming>, Error> {
    match answer {
        Err(_) => Err(Error::ConnectionReadTimeout),
        Ok(Err(e)) => Err(connection_error(e)),
        Ok(Ok(response)) => Ok(response),
    }
}

fn connection_error(e: hyper::Error) -> Error {
    if e.is_timeout() {
        Error::HttpResponseTimeout
    } else {
        Error::Hyper(e)
    }
}

/// A response body that fails when no frame arrives within `gap`.
struct ResponseBody {
    incoming: Incoming,
    idle: Pin<Box<tokio::time::Sleep>>,
    gap: Duration,
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.gap;
                this.idle.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(connection_error(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

/// How an endpoint's certificate is checked.
#[derive(Debug)]
enum Check {
    /// Chain, name and dates against the operator's CA.
    Ca(Arc<WebPkiServerVerifier>),
    /// Exactly this end-entity certificate.
    Pin(Thumbprint),
}

/// The certificate verifier of an endpoint with a trust setting.
#[derive(Debug)]
struct EndpointVerifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EndpointVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let refused = |reason: Reason, algorithm: ThumbprintAlgorithm| {
            let refusal = Refusal {
                reason,
                presented: Thumbprint::of(algorithm, end_entity.as_ref()),
                presented_sha256: Thumbprint::of(ThumbprintAlgorithm::Sha256, end_entity.as_ref()),
            };
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
                refusal,
            ))))
        };
        match &self.check {
            // Pinning vouches for this certificate whatever its issuer, name
            // or dates: that is what the operator asked for, as with govc.
            Check::Pin(pin) if pin.matches(end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Check::Pin(pin) => Err(refused(Reason::Mismatch, pin.algorithm())),
            Check::Ca(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map_err(|e| {
                    refused(
                        Reason::Untrusted(e.to_string()),
                        ThumbprintAlgorithm::Sha256,
                    )
                }),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a certificate was refused.
#[derive(Debug)]
enum Reason {
    /// Its thumbprint is not the pinned one.
    Mismatch,
    /// The CA does not vouch for it (webpki's words).
    Untrusted(String),
}

/// A refused certificate, carried through rustls and tokio-rustls as the
/// source of their errors so [`Connector::explain`] can show what was seen.
#[derive(Debug)]
struct Refusal {
    reason: Reason,
    /// Its thumbprint, in the pin's algorithm (SHA-256 for a CA check).
    presented: Thumbprint,
    presented_sha256: Thumbprint,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::Mismatch => write!(
                f,
                "certificate thumbprint {} is not the pinned one",
                self.presented
            ),
            Reason::Untrusted(why) => write!(
                f,
                "certificate {} not trusted: {why}",
                self.presented_sha256
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// The rustls error inside a tokio-rustls handshake error, if it is one.
fn rustls_error_of(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The [`Refusal`] inside a handshake error, if a verifier of ours refused.
fn refusal_of(error: &std::io::Error) -> Option<&Refusal> {
    match rustls_error_of(error)? {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<Refusal>()
        }
        _ => None,
    }
}
