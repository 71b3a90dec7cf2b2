//! Outgoing HTTP over `wasi:http`, for adapters that talk to REST or SOAP endpoints.
//!
//! The host lets a request through only when the plugin's manifest asks for the
//! destination (`network: ["*:443"]`) *and* the operator granted that exact
//! `host:port` in the plugin set. A denied request comes back as
//! [`Error::PermissionDenied`] naming the destination, so the operator sees what to grant.
//!
//! Requests are blocking: a plugin call is one synchronous unit of work, and the
//! host bounds it with the call deadline anyway.

use crate::Error;

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// HEAD
    Head,
    /// PATCH
    Patch,
}

/// A parsed `http://` or `https://` URL, split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `true` for https.
    pub https: bool,
    /// `host[:port]` as written.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path_with_query: String,
}

impl Url {
    /// Parses an absolute http(s) URL. Fragments are dropped; user-info is refused
    /// (credentials belong in secrets, not URLs that end up in logs).
    pub fn parse(url: &str) -> Result<Url, Error> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(Error::invalid_input(format!(
                "URL `{url}` must start with http:// or https://"
            )));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() {
            return Err(Error::invalid_input(format!("URL `{url}` has no host")));
        }
        if authority.contains('@') {
            return Err(Error::invalid_input(
                "URLs with user-info are refused: put credentials in the plugin's secrets"
                    .to_string(),
            ));
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Url {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body (empty for none).
    pub body: Vec<u8>,
    /// Connect and first-byte timeout in milliseconds; `None` leaves the host's default.
    pub timeout_ms: Option<u64>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the connect and first-byte timeout.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
}

/// A response with its whole body.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, lower-case names, in order.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request and reads the whole response.
#[cfg(target_arch = "wasm32")]
pub fn send(request: &Request) -> Result<Response, Error> {
    wasi_impl::send(request)
}

/// Sends a request and reads the whole response (only available in a plugin).
#[cfg(not(target_arch = "wasm32"))]
pub fn send(request: &Request) -> Result<Response, Error> {
    Err(Error::unsupported(format!(
        "HTTP to {} is only available inside a wasm32-wasip2 plugin",
        request.url
    )))
}

#[cfg(target_arch = "wasm32")]
mod wasi_impl {
    use super::{Method, Request, Response, Url};
    use crate::Error;
    use wasi::http::outgoing_handler;
    use wasi::http::types::{
        ErrorCode, Fields, Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use wasi::io::streams::StreamError;

    /// `wasi:io` streams accept at most 4096 bytes per blocking write.
    const WRITE_CHUNK: usize = 4096;

    pub fn send(request: &Request) -> Result<Response, Error> {
        let url = Url::parse(&request.url)?;
        let entries: Vec<(String, Vec<u8>)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        let headers = Fields::from_list(&entries).map_err(|e| {
            Error::invalid_input(format!("bad request header for {}: {e:?}", url.authority))
        })?;
        let outgoing = OutgoingRequest::new(headers);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Delete => WasiMethod::Delete,
            Method::Head => WasiMethod::Head,
            Method::Patch => WasiMethod::Patch,
        };
        let scheme = if url.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let setup = outgoing
            .set_method(&method)
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(Some(&url.authority)))
            .and_then(|()| outgoing.set_path_with_query(Some(&url.path_with_query)));
        if setup.is_err() {
            return Err(Error::invalid_input(format!(
                "the host refused URL {}",
                request.url
            )));
        }
        let body = outgoing
            .body()
            .map_err(|()| Error::internal("request body taken twice"))?;
        let options = request.timeout_ms.map(|ms| {
            let options = RequestOptions::new();
            let nanos = ms.saturating_mul(1_000_000);
            // Setting a timeout may be unsupported by a host; the request still goes.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            options
        });
        // Hand the request over before writing the body: the host buffers only a
        // little of it, so writing first could wait for a reader that never comes.
        let future = outgoing_handler::handle(outgoing, options)
            .map_err(|e| map_error_code(e, &url.authority))?;
        {
            let stream = body
                .write()
                .map_err(|()| Error::internal("request body stream taken twice"))?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| stream_error(e, &url.authority))?;
            }
        }
        OutgoingBody::finish(body, None).map_err(|e| map_error_code(e, &url.authority))?;

        future.subscribe().block();
        let incoming = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(map_error_code(code, &url.authority)),
            Some(Err(())) | None => {
                return Err(Error::internal(format!(
                    "response from {} was lost by the host",
                    url.authority
                )));
            }
        };
        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(n, v)| {
                (
                    n.to_ascii_lowercase(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        let body = incoming
            .consume()
            .map_err(|()| Error::internal("response body taken twice"))?;
        let mut bytes = Vec::new();
        {
            let stream = body
                .stream()
                .map_err(|()| Error::internal("response body stream taken twice"))?;
            loop {
                match stream.blocking_read(64 * 1024) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(stream_error(e, &url.authority)),
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }

    fn stream_error(e: StreamError, authority: &str) -> Error {
        match e {
            StreamError::Closed => {
                Error::unavailable(format!("connection to {authority} closed early"), None)
            }
            StreamError::LastOperationFailed(err) => Error::unavailable(
                format!("I/O with {authority} failed: {}", err.to_debug_string()),
                None,
            ),
        }
    }

    fn map_error_code(code: ErrorCode, authority: &str) -> Error {
        match code {
            ErrorCode::HttpRequestDenied => Error::permission_denied(
                format!(
                    "the host denied HTTP to {authority}: the operator must grant it in the plugin set (grants.network) and the manifest must ask for it"
                ),
                &[],
            ),
            ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
                Error::not_found(format!("host {authority} could not be resolved"))
            }
            ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::DestinationUnavailable
            | ErrorCode::DnsTimeout => {
                Error::unavailable(format!("cannot reach {authority}: {code:?}"), None)
            }
            ErrorCode::TlsCertificateError | ErrorCode::TlsProtocolError => {
                Error::permission_denied(
                    format!(
                        "TLS with {authority} failed ({code:?}): check the endpoint's certificate or the configured CA"
                    ),
                    &[],
                )
            }
            // The host explains its own refusals (an untrusted certificate,
            // a pin that does not match) in the message: show it as written.
            ErrorCode::InternalError(Some(message)) => {
                Error::internal(format!("HTTP to {authority} failed: {message}"))
            }
            other => Error::internal(format!("HTTP to {authority} failed: {other:?}")),
        }
    }
}
