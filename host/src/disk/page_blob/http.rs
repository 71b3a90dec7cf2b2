//! A small blocking HTTP/1.1 client for the Blob service.
//!
//! [`BlockDevice`](crate::disk::BlockDevice) calls are synchronous and the
//! data path already runs them on blocking threads, so a blocking client over
//! `std::net::TcpStream` (plain for `http://`, rustls with the webpki roots
//! for `https://`) fits better than driving hyper from a foreign runtime.
//! It speaks just what the Blob REST API needs: one request at a time per
//! connection, `Content-Length` or chunked answers, idle connections kept for
//! reuse. Every exchange is bounded by a deadline (connect, each read and
//! write, and the whole body) and by a cap on the answer's size, so a stuck
//! or hostile server cannot hang the caller or exhaust memory.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The longest status line plus headers accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Idle connections kept per endpoint.
const MAX_IDLE: usize = 16;

/// Why an exchange failed before an HTTP answer was complete.
#[derive(Debug)]
pub(super) enum HttpError {
    /// No connection could be opened (refused, unreachable, name unknown).
    Connect(String),
    /// The deadline passed.
    TimedOut,
    /// The connection broke or the answer was not HTTP.
    Broken(String),
}

/// One answer.
#[derive(Debug)]
pub(super) struct Response {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request. `target` is the origin-form path and query.
pub(super) struct Request<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    /// The largest body accepted in the answer.
    pub max_body: usize,
}

/// Connections to one `host:port`.
pub(super) struct Http {
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    idle: Mutex<Vec<Conn>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

type Conn = BufReader<Stream>;

impl Http {
    /// A client for `host:port`, over TLS when `https`.
    pub fn new(host: &str, port: u16, https: bool) -> Result<Http, String> {
        Ok(Http {
            host: host.to_string(),
            port,
            tls: if https { Some(tls_config()?) } else { None },
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` and reads the whole answer, all before `deadline`.
    ///
    /// A reused connection that turns out to be closed (the server dropped
    /// it while idle) is retried once on a fresh one when nothing of the
    /// answer arrived; the Blob operations sent here are idempotent.
    pub fn send(&self, req: &Request<'_>, deadline: Instant) -> Result<Response, HttpError> {
        if let Some(conn) = self.take_idle() {
            match self.exchange(conn, req, deadline) {
                Err(Attempt::Stale) => {}
                Err(Attempt::Failed(e)) => return Err(e),
                Ok(r) => return Ok(r),
            }
        }
        let conn = self.connect(deadline)?;
        match self.exchange(conn, req, deadline) {
            Ok(r) => Ok(r),
            Err(Attempt::Failed(e)) => Err(e),
            Err(Attempt::Stale) => Err(HttpError::Broken(
                "the server closed the connection without answering".into(),
            )),
        }
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().ok().and_then(|mut idle| idle.pop())
    }

    fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, HttpError> {
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| HttpError::Connect(format!("cannot resolve {}: {e}", self.host)))?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            let left = remaining(deadline).ok_or(HttpError::TimedOut)?;
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) if is_timeout(&e) => return Err(HttpError::TimedOut),
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            HttpError::Connect(match last {
                Some(e) => e.to_string(),
                None => format!("{} has no address", self.host),
            })
        })?;
        // Requests are written whole; waiting for more to coalesce only adds latency.
        let _ = tcp.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name =
                    rustls::pki_types::ServerName::try_from(self.host.clone()).map_err(|e| {
                        HttpError::Connect(format!("{} is not a TLS name: {e}", self.host))
                    })?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| HttpError::Connect(format!("TLS setup failed: {e}")))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        };
        Ok(BufReader::with_capacity(64 * 1024, stream))
    }

    fn exchange(
        &self,
        mut conn: Conn,
        req: &Request<'_>,
        deadline: Instant,
    ) -> Result<Response, Attempt> {
        set_timeouts(conn.get_ref().tcp(), deadline).map_err(Attempt::Failed)?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            req.method,
            req.target,
            host_header(&self.host, self.port, self.tls.is_some()),
            req.body.len()
        );
        for (name, value) in req.headers {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let stream = conn.get_mut();
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(req.body))
            .and_then(|()| stream.flush())
            .map_err(|e| {
                if is_timeout(&e) {
                    Attempt::Failed(HttpError::TimedOut)
                } else {
                    Attempt::Stale
                }
            })?;

        let head = read_head(&mut conn, deadline)?;
        let (status, headers, close) = parse_head(&head).map_err(Attempt::Failed)?;
        let has_body = req.method != "HEAD" && status != 204 && status != 304 && status >= 200;
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = match header(&headers, "content-length") {
            Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
                Attempt::Failed(HttpError::Broken(format!("bad Content-Length {v:?}")))
            })?),
            None => None,
        };
        let mut reusable = !close;
        let body = if !has_body {
            Vec::new()
        } else if chunked {
            read_chunked(&mut conn, req.max_body, deadline).map_err(Attempt::Failed)?
        } else if let Some(len) = length {
            if len > req.max_body {
                return Err(Attempt::Failed(too_large(req.max_body)));
            }
            let mut body = vec![0u8; len];
            read_exact(&mut conn, &mut body, deadline).map_err(Attempt::Failed)?;
            body
        } else {
            reusable = false;
            read_to_end(&mut conn, req.max_body, deadline).map_err(Attempt::Failed)?
        };
        if reusable {
            self.put_idle(conn);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// How one exchange on one connection ended, when it did not answer.
enum Attempt {
    /// The connection was dead before any answer: try a fresh one.
    Stale,
    Failed(HttpError),
}

/// The TLS settings shared by every `https://` endpoint: ring and the
/// webpki roots, the crates the rest of the host already uses for TLS.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
                .map_err(|e| format!("TLS is not available: {e}"))
        })
        .clone()
}

fn host_header(host: &str, port: u16, https: bool) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if (https && port == 443) || (!https && port == 80) {
        host
    } else {
        format!("{host}:{port}")
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn set_timeouts(tcp: &TcpStream, deadline: Instant) -> Result<(), HttpError> {
    let left = remaining(deadline).ok_or(HttpError::TimedOut)?;
    tcp.set_read_timeout(Some(left))
        .and_then(|()| tcp.set_write_timeout(Some(left)))
        .map_err(|e| HttpError::Broken(e.to_string()))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

fn io_failure(e: io::Error) -> HttpError {
    if is_timeout(&e) {
        HttpError::TimedOut
    } else {
        HttpError::Broken(e.to_string())
    }
}

fn too_large(max: usize) -> HttpError {
    HttpError::Broken(format!(
        "the answer is larger than the {max} bytes expected"
    ))
}

/// Reads up to and including the blank line that ends the headers.
fn read_head(conn: &mut Conn, deadline: Instant) -> Result<Vec<u8>, Attempt> {
    let mut head = Vec::new();
    loop {
        if Instant::now() >= deadline {
            return Err(Attempt::Failed(HttpError::TimedOut));
        }
        let available = match conn.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if head.is_empty() && !is_timeout(&e) => return Err(Attempt::Stale),
            Err(e) => return Err(Attempt::Failed(io_failure(e))),
        };
        if available.is_empty() {
            return Err(if head.is_empty() {
                Attempt::Stale
            } else {
                Attempt::Failed(HttpError::Broken(
                    "the answer ended inside its headers".into(),
                ))
            });
        }
        // Take bytes up to the end of the head, never beyond: what follows is body.
        let mut taken = available.len();
        let before = head.len();
        head.extend_from_slice(available);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            taken = end + 4 - before;
            head.truncate(end + 4);
        }
        conn.consume(taken);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(Attempt::Failed(HttpError::Broken(
                "the answer's headers are too long".into(),
            )));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

type Head = (u16, Vec<(String, String)>, bool);

fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head)
        .map_err(|_| HttpError::Broken("the answer's headers are not text".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            HttpError::Broken(format!(
                "not an HTTP answer: {:?}",
                status_line.chars().take(80).collect::<String>()
            ))
        })?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Broken(format!("bad header line {line:?}")));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let close = version == "HTTP/1.0"
        || header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Ok((status, headers, close))
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn read_exact(conn: &mut Conn, buf: &mut [u8], deadline: Instant) -> Result<(), HttpError> {
    let mut done = 0;
    while done < buf.len() {
        if Instant::now() >= deadline {
            return Err(HttpError::TimedOut);
        }
        match conn.read(&mut buf[done..]) {
            Ok(0) => return Err(HttpError::Broken("the answer ended early".into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e)),
        }
    }
    Ok(())
}

fn read_to_end(conn: &mut Conn, max: usize, deadline: Instant) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(HttpError::TimedOut);
        }
        match conn.read(&mut buf) {
            Ok(0) => return Ok(body),
            Ok(n) => {
                if body.len() + n > max {
                    return Err(too_large(max));
                }
                body.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(e)),
        }
    }
}

fn read_line(conn: &mut Conn, deadline: Instant) -> Result<String, HttpError> {
    let mut line = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        read_exact(conn, &mut byte, deadline)?;
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > 1024 {
            return Err(HttpError::Broken("a chunk header is too long".into()));
        }
    }
    Ok(String::from_utf8_lossy(&line).trim().to_string())
}

fn read_chunked(conn: &mut Conn, max: usize, deadline: Instant) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(conn, deadline)?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Broken(format!("bad chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, then the blank line.
            while !read_line(conn, deadline)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > max {
            return Err(too_large(max));
        }
        let start = body.len();
        body.resize(start + size, 0);
        read_exact(conn, &mut body[start..], deadline)?;
        let mut crlf = [0u8; 2];
        read_exact(conn, &mut crlf, deadline)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_parses_status_and_lowercases_names() {
        let (status, headers, close) =
            parse_head(b"HTTP/1.1 206 Partial Content\r\nX-Ms-Blob-Type: PageBlob\r\nConnection: close\r\n\r\n")
                .unwrap();
        assert_eq!(status, 206);
        assert_eq!(header(&headers, "x-ms-blob-type"), Some("PageBlob"));
        assert!(close);
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn host_header_omits_default_ports() {
        assert_eq!(
            host_header("a.blob.core.windows.net", 443, true),
            "a.blob.core.windows.net"
        );
        assert_eq!(host_header("127.0.0.1", 10000, false), "127.0.0.1:10000");
        assert_eq!(host_header("::1", 80, false), "[::1]");
    }
}
