//! The Blob REST operations the page-blob device needs, each one a bounded
//! call: authorised (SAS or Shared Key), under one deadline that covers its
//! retries, retried on 429 and 503 after `Retry-After` (capped), and turned
//! into a typed [`BlobError`] otherwise.

use super::auth::{Auth, percent_decode, percent_encode};
use super::error::BlobError;
use super::http::{Http, HttpError, Request, Response};
use super::xml;
use crate::plugin::adapter::{BlobCredential, BlobEndpoint};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The Blob service version every request asks for (`x-ms-version`): it has
/// paginated `Get Page Ranges` (2020-10-02) and Azurite serves it.
pub const API_VERSION: &str = "2021-08-06";

/// The largest `Put Page` the service takes.
pub const MAX_PUT_PAGE: usize = 4 * 1024 * 1024;

/// Largest XML answer read (a page list of a fragmented multi-TiB disk is
/// paginated by the service well below this).
const MAX_XML: usize = 64 * 1024 * 1024;

/// Time limits of blob calls.
#[derive(Debug, Clone)]
pub struct BlobOptions {
    /// The deadline of one call, all its retries included.
    pub deadline: Duration,
    /// Attempts of a call that keeps getting 429 or 503.
    pub max_attempts: u32,
    /// The longest single wait before a retry, whatever `Retry-After` says.
    pub max_retry_wait: Duration,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            deadline: Duration::from_secs(60),
            max_attempts: 5,
            max_retry_wait: Duration::from_secs(30),
        }
    }
}

/// Requests to one blob (or one container), authorised one way.
#[derive(Clone)]
pub(super) struct BlobClient {
    http: Arc<Http>,
    auth: Arc<Auth>,
    /// `scheme://host[:port]/path`, for messages.
    endpoint: String,
    /// The URL path as sent (percent-encoded).
    path: String,
    snapshot: Option<String>,
    options: BlobOptions,
}

/// One operation's request.
pub(super) struct Call<'a> {
    pub operation: &'static str,
    pub method: &'static str,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    pub max_body: usize,
}

impl<'a> Call<'a> {
    pub fn new(operation: &'static str, method: &'static str) -> Call<'a> {
        Call {
            operation,
            method,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
            max_body: MAX_XML,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What `Get Blob Properties` says about a blob.
#[derive(Debug, Clone)]
pub(super) struct Properties {
    pub size: u64,
    pub blob_type: String,
}

impl BlobClient {
    /// A client for `endpoint`. A `snapshot=` parameter in the URL selects
    /// that snapshot; other query parameters count as an embedded SAS.
    pub fn new(endpoint: &BlobEndpoint, options: &BlobOptions) -> Result<BlobClient, BlobError> {
        let raw = endpoint.url.trim();
        let shown = raw.split(['?', '#']).next().unwrap_or_default().to_string();
        let invalid = |reason: String| BlobError::InvalidEndpoint {
            endpoint: shown.clone(),
            reason,
        };
        let url = url::Url::parse(raw).map_err(|e| invalid(format!("not a URL ({e})")))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(invalid(format!("scheme {other} is not http or https"))),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(invalid("it has no host".into())),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });
        let path = url.path().to_string();
        if path.len() <= 1 {
            return Err(invalid("it names no container or blob".into()));
        }
        let mut snapshot = None;
        let mut embedded = Vec::new();
        for part in url
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            match part.strip_prefix("snapshot=") {
                Some(s) => snapshot = Some(percent_decode(s)),
                None => embedded.push(part),
            }
        }
        let auth = match &endpoint.credential {
            BlobCredential::None if embedded.is_empty() => Auth::None,
            BlobCredential::None => Auth::sas(&embedded.join("&")),
            BlobCredential::SasToken(token) => Auth::sas(token),
            BlobCredential::SharedKey((account, key)) => {
                Auth::shared_key(account, key).map_err(invalid)?
            }
        };
        let endpoint_shown = format!(
            "{}://{}{}",
            url.scheme(),
            match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_string(),
            },
            path
        );
        let http = Http::new(&host, port, https).map_err(invalid)?;
        Ok(BlobClient {
            http: Arc::new(http),
            auth: Arc::new(auth),
            endpoint: endpoint_shown,
            path,
            snapshot,
            options: options.clone(),
        })
    }

    /// The same blob at `snapshot` (or the base blob for `None`).
    pub fn at_snapshot(&self, snapshot: Option<String>) -> BlobClient {
        BlobClient {
            snapshot,
            ..self.clone()
        }
    }

    /// The blob's URL without query, for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The snapshot this client reads, if any.
    pub fn snapshot(&self) -> Option<&str> {
        self.snapshot.as_deref()
    }

    /// `Get Blob Properties` (HEAD).
    pub fn properties(&self) -> Result<Properties, BlobError> {
        let op = "Get Blob Properties";
        let r = self.call(Call::new(op, "HEAD"))?;
        let size = r
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| self.protocol(op, "no Content-Length"))?;
        let blob_type = r.header("x-ms-blob-type").unwrap_or("unknown").to_string();
        Ok(Properties { size, blob_type })
    }

    /// `Get Blob` of bytes `range` (`x-ms-range`), which must exist.
    pub fn read(&self, range: Range<u64>) -> Result<Vec<u8>, BlobError> {
        let op = "Get Blob";
        let len = usize::try_from(range.end - range.start)
            .map_err(|_| self.protocol(op, "range too large"))?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let mut call = Call::new(op, "GET").header(
            "x-ms-range",
            format!("bytes={}-{}", range.start, range.end - 1),
        );
        // Room for an error document too, which may be longer than a small read.
        call.max_body = len.max(64 * 1024);
        let r = self.call(call)?;
        if r.body.len() != len {
            return Err(self.protocol(
                op,
                &format!(
                    "asked for {len} bytes at {}, got {}",
                    range.start,
                    r.body.len()
                ),
            ));
        }
        Ok(r.body)
    }

    /// `Put Page` with `x-ms-page-write: update` of `data` at `offset`
    /// (both whole pages, at most 4 MiB).
    pub fn put_pages(&self, offset: u64, data: &[u8]) -> Result<(), BlobError> {
        let end = offset + data.len() as u64;
        let mut call = Call::new("Put Page", "PUT")
            .query("comp", "page")
            .header("x-ms-page-write", "update")
            .header("x-ms-range", format!("bytes={offset}-{}", end - 1));
        call.body = data;
        self.call(call).map(drop)
    }

    /// `Put Page` with `x-ms-page-write: clear` over `range` (whole pages):
    /// the pages read as zeros and stop counting as allocated.
    pub fn clear_pages(&self, range: Range<u64>) -> Result<(), BlobError> {
        let call = Call::new("Put Page (clear)", "PUT")
            .query("comp", "page")
            .header("x-ms-page-write", "clear")
            .header(
                "x-ms-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            );
        self.call(call).map(drop)
    }

    /// `Get Page Ranges` over `range`, all pages of the answer; with
    /// `prev_snapshot`, the service's diff against that snapshot.
    pub fn page_list(
        &self,
        range: Range<u64>,
        prev_snapshot: Option<&str>,
    ) -> Result<xml::PageList, BlobError> {
        let op = if prev_snapshot.is_some() {
            "Get Page Ranges (diff)"
        } else {
            "Get Page Ranges"
        };
        let mut all = xml::PageList::default();
        let mut marker: Option<String> = None;
        if range.is_empty() {
            return Ok(all);
        }
        loop {
            let mut call = Call::new(op, "GET").query("comp", "pagelist").header(
                "x-ms-range",
                format!("bytes={}-{}", range.start, range.end - 1),
            );
            if let Some(prev) = prev_snapshot {
                call = call.query("prevsnapshot", prev);
            }
            if let Some(m) = &marker {
                call = call.query("marker", m.clone());
            }
            let r = self.call(call)?;
            let text = String::from_utf8_lossy(&r.body);
            let list = xml::parse_page_list(&text).map_err(|e| self.protocol(op, &e))?;
            all.pages.extend(list.pages);
            all.cleared.extend(list.cleared);
            match list.next_marker {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => break,
            }
        }
        Ok(all)
    }

    /// `Put Blob` of an empty page blob of `size` bytes; refuses to replace
    /// an existing blob (`If-None-Match: *`).
    pub fn create_page_blob(&self, size: u64) -> Result<(), BlobError> {
        let call = Call::new("Put Blob", "PUT")
            .header("x-ms-blob-type", "PageBlob")
            .header("x-ms-blob-content-length", size.to_string())
            .header("If-None-Match", "*");
        self.call(call).map(drop)
    }

    /// `Snapshot Blob`; returns the new snapshot's id (`x-ms-snapshot`).
    pub fn snapshot_blob(&self) -> Result<String, BlobError> {
        let op = "Snapshot Blob";
        let r = self.call(Call::new(op, "PUT").query("comp", "snapshot"))?;
        r.header("x-ms-snapshot")
            .map(str::to_string)
            .ok_or_else(|| self.protocol(op, "no x-ms-snapshot header"))
    }

    /// `Create Container` (this client's URL names the container).
    pub fn create_container(&self) -> Result<(), BlobError> {
        let call = Call::new("Create Container", "PUT").query("restype", "container");
        self.call(call).map(drop)
    }

    /// Runs one call under the deadline, retrying 429 and 503.
    pub fn call(&self, call: Call<'_>) -> Result<Response, BlobError> {
        let deadline = Instant::now() + self.options.deadline;
        let mut query = call.query.clone();
        if let Some(s) = &self.snapshot {
            query.push(("snapshot".to_string(), s.clone()));
        }
        let mut target = self.path.clone();
        let mut separator = '?';
        for (name, value) in &query {
            target.push(separator);
            target.push_str(&percent_encode(name));
            target.push('=');
            target.push_str(&percent_encode(value));
            separator = '&';
        }
        if let Some(sas) = self.auth.query() {
            target.push(separator);
            target.push_str(sas);
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut headers = vec![
                ("x-ms-version".to_string(), API_VERSION.to_string()),
                (
                    "x-ms-date".to_string(),
                    httpdate::fmt_http_date(SystemTime::now()),
                ),
            ];
            headers.extend(call.headers.iter().cloned());
            if let Some(h) =
                self.auth
                    .authorization(call.method, &self.path, &query, &headers, call.body.len())
            {
                headers.push(h);
            }
            let request = Request {
                method: call.method,
                target: &target,
                headers: &headers,
                body: call.body,
                max_body: call.max_body,
            };
            let response = self
                .http
                .send(&request, deadline)
                .map_err(|e| self.transport_error(call.operation, e))?;
            if (200..300).contains(&response.status) {
                return Ok(response);
            }
            if !matches!(response.status, 429 | 503) {
                return Err(self.status_error(call.operation, &response));
            }
            let throttled = || BlobError::Throttled {
                endpoint: self.endpoint.clone(),
                operation: call.operation,
                status: response.status,
                attempts,
            };
            if attempts >= self.options.max_attempts {
                return Err(throttled());
            }
            let wait = retry_after(&response)
                .unwrap_or_else(|| Duration::from_millis(500) * 2u32.pow(attempts.min(8) - 1))
                .min(self.options.max_retry_wait);
            if Instant::now() + wait >= deadline {
                return Err(throttled());
            }
            tracing::debug!(
                endpoint = %self.endpoint,
                operation = call.operation,
                status = response.status,
                wait_ms = wait.as_millis() as u64,
                "blob service busy; retrying"
            );
            std::thread::sleep(wait);
        }
    }

    fn protocol(&self, operation: &'static str, detail: &str) -> BlobError {
        BlobError::Protocol {
            endpoint: self.endpoint.clone(),
            operation,
            detail: self.auth.redact(detail),
        }
    }

    fn transport_error(&self, operation: &'static str, e: HttpError) -> BlobError {
        match e {
            HttpError::TimedOut => BlobError::TimedOut {
                endpoint: self.endpoint.clone(),
                operation,
                after: self.options.deadline,
            },
            HttpError::Connect(detail) | HttpError::Broken(detail) => BlobError::Unavailable {
                endpoint: self.endpoint.clone(),
                operation,
                detail: self.auth.redact(&detail),
            },
        }
    }

    fn status_error(&self, operation: &'static str, r: &Response) -> BlobError {
        let body = String::from_utf8_lossy(&r.body);
        let code = r
            .header("x-ms-error-code")
            .map(str::to_string)
            .or_else(|| xml::element_text(&body, "Code").map(xml::unescape))
            .unwrap_or_default();
        let code = self.auth.redact(code.trim());
        let endpoint = self.endpoint.clone();
        match r.status {
            // Authentication messages quote the string-to-sign and the
            // signature; only the code is kept.
            401 | 403 => BlobError::PermissionDenied {
                endpoint,
                operation,
                status: r.status,
                code,
            },
            404 => BlobError::NotFound {
                endpoint,
                operation,
                code,
            },
            409 | 412 => BlobError::Conflict {
                endpoint,
                operation,
                code,
            },
            status => {
                let message = xml::element_text(&body, "Message")
                    .map(xml::unescape)
                    .unwrap_or_default();
                // The first line only: later ones are diagnostics that may
                // quote the request.
                let first: String = message
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                BlobError::Service {
                    endpoint,
                    operation,
                    status,
                    code,
                    message: self.auth.redact(&first),
                }
            }
        }
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(r: &Response) -> Option<Duration> {
    let value = r.header("retry-after")?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or_default())
}
