//! Page blobs over the Blob service REST API (`x-ms-version` 2021-08-06),
//! signed with the account's Shared Key or authorised by a SAS: properties
//! (HEAD), `Snapshot Blob`, listing a blob's snapshots (`List Blobs` on its
//! container), deleting a snapshot, `Get Page Ranges` (with `prevsnapshot`
//! for the service's diff) and ranged reads.
//!
//! Shared Key follows "Authorize with Shared Key" for version 2009-09-19
//! and later: the string to sign is the verb, the standard headers (all
//! empty here but `Content-Length` of a body and `Range`, which travels as
//! `x-ms-range`), the sorted `x-ms-` headers and the canonicalized resource
//! `/<account><path>` plus the sorted, decoded query parameters. With a
//! path-style endpoint (Azurite: `http://127.0.0.1:10000/devstoreaccount1`)
//! the path itself starts with the account, so it appears twice, as the
//! service expects.

use crate::crypto::{self, hmac_sha256, iso8601_millis};
use crate::fault;
use crate::settings::{Storage, StorageCredential};
use crate::transport::Transport;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use homeward_sdk::Error;
use homeward_sdk::http::{Method, Request, Response, Url};

/// Blob service version of every request.
pub const VERSION: &str = "2021-08-06";

/// What a HEAD tells about a blob.
#[derive(Debug, Clone)]
pub struct Properties {
    /// Length in bytes.
    pub length: u64,
    /// `PageBlob`, `BlockBlob`, `AppendBlob`.
    pub blob_type: String,
    /// `locked` when a lease is held (Azure leases the VHD of an attached disk).
    pub lease_status: String,
}

/// One page blob (or one of its snapshots).
pub struct PageBlob<'a> {
    storage: &'a Storage,
    transport: &'a Transport,
    container: String,
    blob: String,
}

/// Percent-encoding of a query value.
pub(crate) fn query_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The string a Shared Key signature covers.
pub fn string_to_sign(
    method: &str,
    content_length: usize,
    headers: &[(String, String)],
    account: &str,
    path: &str,
    query: &[(&str, &str)],
) -> String {
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    params.sort();
    let canonical_query: String = params.iter().map(|(n, v)| format!("\n{n}:{v}")).collect();
    format!(
        "{method}\n\n\n{length}\n\n\n\n\n\n\n\n\n{canonical_headers}/{account}{path}{canonical_query}"
    )
}

/// The `Authorization` header of a Shared Key request.
pub fn shared_key_authorization(
    account: &str,
    key_base64: &str,
    to_sign: &str,
) -> Result<String, Error> {
    let key = STANDARD.decode(key_base64.trim()).map_err(|_| {
        Error::invalid_input(
            "secret `storage-key` is not base64: use the storage account's access key as the \
             portal or `az storage account keys list` shows it",
        )
    })?;
    let signature = STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    Ok(format!("SharedKey {account}:{signature}"))
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<'a> PageBlob<'a> {
    /// The blob `container/blob` of `storage`.
    pub fn new(
        storage: &'a Storage,
        transport: &'a Transport,
        container: &str,
        blob: &str,
    ) -> Self {
        PageBlob {
            storage,
            transport,
            container: container.to_string(),
            blob: blob.to_string(),
        }
    }

    /// The blob's URL without query.
    pub fn url(&self) -> String {
        format!("{}/{}/{}", self.storage.endpoint, self.container, self.blob)
    }

    /// `container/blob`, for messages.
    pub fn label(&self) -> String {
        format!(
            "page blob {}/{} in storage account {}",
            self.container, self.blob, self.storage.account
        )
    }

    /// The URL of the blob's container.
    fn container_url(&self) -> String {
        format!("{}/{}", self.storage.endpoint, self.container)
    }

    /// Sends one signed request to the blob.
    fn send(
        &self,
        method: Method,
        query: &[(&str, &str)],
        headers: Vec<(String, String)>,
    ) -> Result<Response, Error> {
        self.send_to(self.url(), method, query, headers)
    }

    /// Sends one signed request to `url` (the blob's or its container's).
    fn send_to(
        &self,
        url: String,
        method: Method,
        query: &[(&str, &str)],
        mut headers: Vec<(String, String)>,
    ) -> Result<Response, Error> {
        let mut query_text: Vec<String> = query
            .iter()
            .map(|(n, v)| format!("{n}={}", query_encode(v)))
            .collect();
        headers.push(("x-ms-date".to_string(), crypto::rfc1123(now_unix())));
        headers.push(("x-ms-version".to_string(), VERSION.to_string()));
        match &self.storage.credential {
            StorageCredential::SharedKey(key) => {
                let path = Url::parse(&url)?
                    .path_with_query
                    .split('?')
                    .next()
                    .unwrap_or("/")
                    .to_string();
                let verb = match method {
                    Method::Get => "GET",
                    Method::Put => "PUT",
                    Method::Delete => "DELETE",
                    Method::Head => "HEAD",
                    Method::Post => "POST",
                    Method::Patch => "PATCH",
                };
                let to_sign =
                    string_to_sign(verb, 0, &headers, &self.storage.account, &path, query);
                headers.push((
                    "authorization".to_string(),
                    shared_key_authorization(&self.storage.account, key, &to_sign)?,
                ));
            }
            StorageCredential::Sas(sas) => query_text.push(sas.clone()),
        }
        let full = if query_text.is_empty() {
            url
        } else {
            format!("{url}?{}", query_text.join("&"))
        };
        let mut request = Request::new(method, full);
        request.headers = headers;
        self.transport.send("Blob storage", &request)
    }

    fn fail(&self, response: &Response, what: &str) -> Error {
        fault::from_response(response, "Blob storage", what)
    }

    /// Properties of the blob (or of `snapshot`); `None` when it does not exist.
    pub fn properties(&self, snapshot: Option<&str>) -> Result<Option<Properties>, Error> {
        let query: Vec<(&str, &str)> = snapshot.map(|s| ("snapshot", s)).into_iter().collect();
        let response = self.send(Method::Head, &query, Vec::new())?;
        match response.status {
            200 => {
                let length = response
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .ok_or_else(|| {
                        Error::internal(format!("{} answered HEAD without a length", self.label()))
                    })?;
                Ok(Some(Properties {
                    length,
                    blob_type: response.header("x-ms-blob-type").unwrap_or("").to_string(),
                    lease_status: response
                        .header("x-ms-lease-status")
                        .unwrap_or("")
                        .to_string(),
                }))
            }
            404 => Ok(None),
            _ => Err(self.fail(&response, &self.label())),
        }
    }

    /// Takes a snapshot; its `x-ms-snapshot` timestamp.
    pub fn snapshot(&self) -> Result<String, Error> {
        let response = self.send(Method::Put, &[("comp", "snapshot")], Vec::new())?;
        if response.status != 201 {
            return Err(self.fail(&response, &format!("snapshot of {}", self.label())));
        }
        response
            .header("x-ms-snapshot")
            .map(str::to_string)
            .ok_or_else(|| {
                Error::internal(format!(
                    "Blob storage took a snapshot of {} without saying its x-ms-snapshot",
                    self.label()
                ))
            })
    }

    /// The ids (`x-ms-snapshot` timestamps) of the blob's snapshots, oldest
    /// first: `List Blobs` on the container with `include=snapshots` and the
    /// blob's name as prefix, page by page, keeping exact name matches (the
    /// prefix also matches `os.vhd.bak`). A missing container holds no
    /// snapshots.
    pub fn snapshots(&self) -> Result<Vec<String>, Error> {
        let what = format!("snapshots of {}", self.label());
        let mut stamps = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![
                ("restype", "container"),
                ("comp", "list"),
                ("include", "snapshots"),
                ("prefix", self.blob.as_str()),
            ];
            if !marker.is_empty() {
                query.push(("marker", marker.as_str()));
            }
            let response = self.send_to(self.container_url(), Method::Get, &query, Vec::new())?;
            match response.status {
                200 => {}
                404 => return Ok(Vec::new()),
                _ => return Err(self.fail(&response, &what)),
            }
            let (page, next) = parse_snapshot_list(&response.body, &self.blob)?;
            stamps.extend(page);
            match next {
                // A marker that does not move would page forever (until the deadline).
                Some(next) if !next.is_empty() && next != marker => marker = next,
                _ => break,
            }
        }
        sort_oldest_first(&mut stamps);
        Ok(stamps)
    }

    /// Deletes snapshot `snapshot`; `false` when there was none.
    pub fn delete_snapshot(&self, snapshot: &str) -> Result<bool, Error> {
        let response = self.send(Method::Delete, &[("snapshot", snapshot)], Vec::new())?;
        match response.status {
            200 | 202 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail(
                &response,
                &format!("snapshot {snapshot} of {}", self.label()),
            )),
        }
    }

    /// Valid page ranges of `snapshot` (the blob itself with `None`), as
    /// `[start, end)` byte ranges; with `previous`, the ranges that changed
    /// since that snapshot (written or cleared) by the service's diff.
    pub fn page_ranges(
        &self,
        snapshot: Option<&str>,
        previous: Option<&str>,
    ) -> Result<Vec<(u64, u64)>, Error> {
        let mut ranges = Vec::new();
        let mut marker = String::new();
        loop {
            let mut query = vec![("comp", "pagelist")];
            if let Some(s) = snapshot {
                query.push(("snapshot", s));
            }
            if let Some(p) = previous {
                query.push(("prevsnapshot", p));
            }
            if !marker.is_empty() {
                query.push(("marker", marker.as_str()));
            }
            let response = self.send(Method::Get, &query, Vec::new())?;
            if response.status != 200 {
                let what = match snapshot {
                    Some(s) => format!("snapshot {s} of {}", self.label()),
                    None => self.label(),
                };
                return Err(self.fail(&response, &what));
            }
            let (page, next) = parse_page_list(&response.body)?;
            ranges.extend(page);
            match next {
                Some(next) if !next.is_empty() => marker = next,
                _ => break,
            }
        }
        ranges.sort();
        Ok(ranges)
    }

    /// `length` bytes at `offset` of `snapshot` (the blob with `None`).
    pub fn read(&self, snapshot: Option<&str>, offset: u64, length: u64) -> Result<Vec<u8>, Error> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let query: Vec<(&str, &str)> = snapshot.map(|s| ("snapshot", s)).into_iter().collect();
        let range = format!("bytes={offset}-{}", offset.saturating_add(length - 1));
        let response = self.send(Method::Get, &query, vec![("x-ms-range".to_string(), range)])?;
        if response.status != 206 && response.status != 200 {
            return Err(self.fail(&response, &format!("bytes at {offset} of {}", self.label())));
        }
        if response.body.len() as u64 != length {
            return Err(Error::internal(format!(
                "Blob storage answered {} bytes for {length} at {offset} of {}",
                response.body.len(),
                self.label()
            )));
        }
        Ok(response.body)
    }
}

/// The `[start, end)` byte ranges of a page list, and its `NextMarker`.
pub type PageList = (Vec<(u64, u64)>, Option<String>);

/// The `[start, end)` ranges of a `PageList` body (`PageRange` and
/// `ClearRange` alike: in a diff both mean "changed") and its `NextMarker`.
pub fn parse_page_list(body: &[u8]) -> Result<PageList, Error> {
    let bad = |why: String| {
        Error::internal(format!(
            "Blob storage sent a page list that does not parse: {why}"
        ))
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(e.to_string()))?;
    let text = text.trim_start_matches('\u{feff}');
    let doc = roxmltree::Document::parse(text).map_err(|e| bad(e.to_string()))?;
    let mut ranges = Vec::new();
    let mut next = None;
    for node in doc.root_element().children().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "PageRange" | "ClearRange" => {
                let field = |name: &str| -> Result<u64, Error> {
                    node.children()
                        .find(|c| c.has_tag_name(name))
                        .and_then(|c| c.text())
                        .and_then(|t| t.trim().parse().ok())
                        .ok_or_else(|| bad(format!("a range without a numeric {name}")))
                };
                let (start, end) = (field("Start")?, field("End")?);
                if end < start {
                    return Err(bad(format!("range {start}-{end} ends before it starts")));
                }
                ranges.push((start, end.saturating_add(1)));
            }
            "NextMarker" => next = node.text().map(str::to_string),
            _ => {}
        }
    }
    Ok((ranges, next))
}

/// Sorts snapshot timestamps oldest first: by their time, then by their
/// text (the service writes sub-millisecond digits the time does not keep).
pub fn sort_oldest_first(stamps: &mut [String]) {
    stamps.sort_by(|a, b| (iso8601_millis(a), a.as_str()).cmp(&(iso8601_millis(b), b.as_str())));
}

/// The snapshot ids in one page of a `List Blobs` answer: the `Snapshot` of
/// every `Blob` named exactly `blob` (the blob itself has none), and the
/// page's `NextMarker`.
pub fn parse_snapshot_list(
    body: &[u8],
    blob: &str,
) -> Result<(Vec<String>, Option<String>), Error> {
    let bad = |why: String| {
        Error::internal(format!(
            "Blob storage sent a blob list that does not parse: {why}"
        ))
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(e.to_string()))?;
    let text = text.trim_start_matches('\u{feff}');
    let doc = roxmltree::Document::parse(text).map_err(|e| bad(e.to_string()))?;
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| -> String {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let root = doc.root_element();
    let mut stamps = Vec::new();
    for list in root.children().filter(|n| n.has_tag_name("Blobs")) {
        for entry in list.children().filter(|n| n.has_tag_name("Blob")) {
            if child_text(entry, "Name") != blob {
                continue;
            }
            let stamp = child_text(entry, "Snapshot");
            if !stamp.is_empty() {
                stamps.push(stamp);
            }
        }
    }
    let next = root
        .children()
        .find(|n| n.has_tag_name("NextMarker"))
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    Ok((stamps, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_for_path_style_snapshot() {
        let headers = vec![
            ("x-ms-version".to_string(), VERSION.to_string()),
            (
                "x-ms-date".to_string(),
                "Thu, 01 Jan 1970 00:00:00 GMT".to_string(),
            ),
        ];
        let s = string_to_sign(
            "PUT",
            0,
            &headers,
            "devstoreaccount1",
            "/devstoreaccount1/disks/os.vhd",
            &[("comp", "snapshot")],
        );
        assert_eq!(
            s,
            "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Thu, 01 Jan 1970 00:00:00 GMT\nx-ms-version:2021-08-06\n/devstoreaccount1/devstoreaccount1/disks/os.vhd\ncomp:snapshot"
        );
    }

    #[test]
    fn page_lists_parse() {
        let xml = b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><PageList><PageRange><Start>0</Start><End>511</End></PageRange><ClearRange><Start>1024</Start><End>2047</End></ClearRange><NextMarker /></PageList>";
        let (ranges, next) = parse_page_list(xml).unwrap();
        assert_eq!(ranges, vec![(0, 512), (1024, 2048)]);
        assert_eq!(next, None);
        assert!(
            parse_page_list(b"<PageList><PageRange><Start>9</Start></PageRange></PageList>")
                .is_err()
        );
    }

    #[test]
    fn snapshot_lists_keep_exact_names_and_sort_oldest_first() {
        let xml = b"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<EnumerationResults ServiceEndpoint=\"http://x/devstoreaccount1\" ContainerName=\"disks\">\
<Prefix>vm1/os.vhd</Prefix><Blobs>\
<Blob><Name>vm1/os.vhd</Name><Snapshot>2024-05-01T10:00:02.0000001Z</Snapshot><Properties/></Blob>\
<Blob><Name>vm1/os.vhd</Name><Snapshot>2024-05-01T10:00:01.5000000Z</Snapshot><Properties/></Blob>\
<Blob><Name>vm1/os.vhd</Name><Properties/></Blob>\
<Blob><Name>vm1/os.vhd.bak</Name><Snapshot>2024-05-01T09:00:00.0000000Z</Snapshot></Blob>\
</Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>";
        let (mut stamps, next) = parse_snapshot_list(xml, "vm1/os.vhd").unwrap();
        assert_eq!(
            stamps,
            [
                "2024-05-01T10:00:02.0000001Z",
                "2024-05-01T10:00:01.5000000Z"
            ]
        );
        assert_eq!(next.as_deref(), Some("2!abc"));
        sort_oldest_first(&mut stamps);
        assert_eq!(
            stamps,
            [
                "2024-05-01T10:00:01.5000000Z",
                "2024-05-01T10:00:02.0000001Z"
            ]
        );
        // Same millisecond: the finer digits decide.
        let mut close = vec![
            "2024-05-01T10:00:00.0001002Z".to_string(),
            "2024-05-01T10:00:00.0001001Z".to_string(),
        ];
        sort_oldest_first(&mut close);
        assert_eq!(close[0], "2024-05-01T10:00:00.0001001Z");

        let (none, next) = parse_snapshot_list(
            b"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>",
            "a",
        )
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(next, None);
        assert!(parse_snapshot_list(b"<EnumerationResults>", "a").is_err());
    }
}
