//! Azure page blobs as block devices, over the Blob REST API.
//!
//! A cloud disk is a page blob holding a fixed VHD: the disk's bytes, then
//! the 512-byte footer. [`PageBlob`] presents the disk (capacity = blob size
//! − 512 when the last 512 bytes are a VHD footer, checked with `vhd.rs`'s
//! rules; the whole blob when they are not), reads with ranged `Get Blob`,
//! writes with `Put Page` (whole 512-byte pages, at most 4 MiB a call; a
//! run of zeros is *cleared*, so the blob stays sparse), and reports
//! allocation with `Get Page Ranges`, so the data path copies only pages
//! that were ever written. A snapshot (`?snapshot=` in the URL, or
//! [`PageBlob::at_snapshot`]) is a read-only device.
//!
//! Changed blocks between two snapshots come one of two ways
//! ([`DiffMethod`], [`changed_ranges`]): the service's page-range diff
//! (`prevsnapshot`), cheap but not trustworthy everywhere (Azurite answers
//! with the whole page list and never reports cleared ranges), or
//! [`changed_ranges_by_compare`]: the page ranges of both, then every block
//! either may hold read from both and compared. The method that ran is logged.
//!
//! The device is blocking, like every [`BlockDevice`]: the data path already
//! calls devices on blocking threads. Each Blob call has a deadline covering
//! its retries (429/503 after `Retry-After`, capped); failures are typed
//! ([`BlobError`]) and reach `io::Error` callers as its source. Credentials
//! (SAS token, account key) never appear in messages or logs; the blob is
//! named by its URL without the query string.
//!
//! Transport: plain HTTP (Azurite, tested) and HTTPS with rustls, ring and
//! the webpki roots (implemented the same way, not exercised by the tests:
//! no TLS endpoint runs here).

mod auth;
mod client;
mod error;
mod http;
mod xml;

pub use auth::account_sas;
pub use client::{API_VERSION, BlobOptions, MAX_PUT_PAGE};
pub use error::BlobError;

use super::raw::push_merged;
use super::vhd::{COOKIE, FOOTER_LEN, VhdFixed, check_footer};
use super::{BlockDevice, check_range};
use crate::plugin::adapter::{BlobCredential, BlobEndpoint};
use client::BlobClient;
use std::io;
use std::ops::Range;
use std::path::Path;

/// The page size of page blobs.
pub const PAGE: u64 = 512;

/// How much of each snapshot the compare method reads per request.
const COMPARE_CHUNK: u64 = 4 << 20;

/// Opens the page blob of `endpoint` as a disk, for writing too when
/// `writable` (a snapshot never is), with the default time limits. This is
/// what a `DiskLocator::Blob` opens to.
pub fn open(endpoint: &BlobEndpoint, writable: bool) -> Result<PageBlob, BlobError> {
    open_with(endpoint, writable, &BlobOptions::default())
}

/// [`open`] with explicit time limits.
pub fn open_with(
    endpoint: &BlobEndpoint,
    writable: bool,
    options: &BlobOptions,
) -> Result<PageBlob, BlobError> {
    let client = BlobClient::new(endpoint, options)?;
    PageBlob::from_client(client, writable)
}

/// Creates a page blob at `endpoint` holding an empty fixed VHD of
/// `capacity` bytes (a positive multiple of 512): `capacity + 512` bytes,
/// the footer written at the end. Fails with [`BlobError::Conflict`] if the
/// blob exists: a disk is never created over another. Returns it writable.
pub fn create(
    endpoint: &BlobEndpoint,
    capacity: u64,
    options: &BlobOptions,
) -> Result<PageBlob, BlobError> {
    let client = BlobClient::new(endpoint, options)?;
    if capacity == 0 || !capacity.is_multiple_of(PAGE) {
        return Err(BlobError::Invalid {
            endpoint: client.endpoint().to_string(),
            reason: format!(
                "a disk of {capacity} bytes is not a positive number of 512-byte pages"
            ),
        });
    }
    if client.snapshot().is_some() {
        return Err(read_only_snapshot(&client));
    }
    client.create_page_blob(capacity + FOOTER_LEN)?;
    client.put_pages(capacity, &VhdFixed::make_footer(capacity))?;
    PageBlob::from_client(client, true)
}

/// Creates an empty page blob of `blob_size` bytes (whole pages) at
/// `endpoint`, without a footer: the target of uploading an existing VHD
/// byte for byte, footer included (write it whole, then [`open`] it again to
/// see the disk). Fails with [`BlobError::Conflict`] if the blob exists.
/// Returns the blob as a raw device, writable.
pub fn create_empty(
    endpoint: &BlobEndpoint,
    blob_size: u64,
    options: &BlobOptions,
) -> Result<PageBlob, BlobError> {
    let client = BlobClient::new(endpoint, options)?;
    if !blob_size.is_multiple_of(PAGE) {
        return Err(BlobError::Invalid {
            endpoint: client.endpoint().to_string(),
            reason: format!("a page blob of {blob_size} bytes is not whole 512-byte pages"),
        });
    }
    if client.snapshot().is_some() {
        return Err(read_only_snapshot(&client));
    }
    client.create_page_blob(blob_size)?;
    PageBlob::from_client(client, true)
}

/// Creates the container at `container_url` (`https://ACCOUNT.blob.…/NAME`)
/// with `credential`: a disk's container must exist before [`create`].
pub fn create_container(
    container_url: &str,
    credential: &BlobCredential,
    options: &BlobOptions,
) -> Result<(), BlobError> {
    let endpoint = BlobEndpoint {
        url: container_url.to_string(),
        credential: credential.clone(),
    };
    BlobClient::new(&endpoint, options)?.create_container()
}

/// A page blob (or one of its snapshots) as a disk.
pub struct PageBlob {
    client: BlobClient,
    blob_size: u64,
    capacity: u64,
    vhd_footer: bool,
    writable: bool,
}

impl std::fmt::Debug for PageBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageBlob")
            .field("endpoint", &self.client.endpoint())
            .field("snapshot", &self.client.snapshot())
            .field("capacity", &self.capacity)
            .field("vhd_footer", &self.vhd_footer)
            .field("writable", &self.writable)
            .finish()
    }
}

impl PageBlob {
    fn from_client(client: BlobClient, writable: bool) -> Result<PageBlob, BlobError> {
        if writable && client.snapshot().is_some() {
            return Err(read_only_snapshot(&client));
        }
        let props = client.properties()?;
        if props.blob_type != "PageBlob" {
            return Err(BlobError::NotPageBlob {
                endpoint: client.endpoint().to_string(),
                found: props.blob_type,
            });
        }
        let (capacity, vhd_footer) = if props.size >= FOOTER_LEN {
            let data_len = props.size - FOOTER_LEN;
            let tail = client.read(data_len..props.size)?;
            let mut footer = [0u8; FOOTER_LEN as usize];
            footer.copy_from_slice(&tail);
            if footer.starts_with(COOKIE) {
                check_footer(Path::new(client.endpoint()), &footer, data_len)?;
                (data_len, true)
            } else {
                (props.size, false)
            }
        } else {
            (props.size, false)
        };
        Ok(PageBlob {
            client,
            blob_size: props.size,
            capacity,
            vhd_footer,
            writable,
        })
    }

    /// The blob's size in bytes, footer included.
    pub fn blob_size(&self) -> u64 {
        self.blob_size
    }

    /// Whether the blob ends with a fixed-VHD footer (then the disk is the
    /// bytes before it).
    pub fn has_vhd_footer(&self) -> bool {
        self.vhd_footer
    }

    /// The snapshot this device reads, `None` for the live blob.
    pub fn snapshot_id(&self) -> Option<&str> {
        self.client.snapshot()
    }

    /// The blob's URL without query (no credential), for messages.
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// The disk's allocated pages (`Get Page Ranges`), sorted, merged and
    /// clipped to the disk (the footer is not disk data).
    pub fn page_ranges(&self) -> Result<Vec<Range<u64>>, BlobError> {
        let list = self.client.page_list(0..self.capacity, None)?;
        Ok(normalise(list.pages, self.capacity))
    }

    /// Takes a snapshot of the live blob; returns its id.
    pub fn create_snapshot(&self) -> Result<String, BlobError> {
        self.client.at_snapshot(None).snapshot_blob()
    }

    /// The same blob at snapshot `id`, read-only.
    pub fn at_snapshot(&self, id: &str) -> Result<PageBlob, BlobError> {
        PageBlob::from_client(self.client.at_snapshot(Some(id.to_string())), false)
    }

    /// The service's page-range diff (`Get Page Ranges` with
    /// `prevsnapshot`): pages of this device (blob or later snapshot) that
    /// changed or were cleared since snapshot `base`, sorted and merged.
    ///
    /// **Not trustworthy on Azurite**, which returns the whole page list and
    /// never the cleared ranges; [`changed_ranges_by_compare`] is the method
    /// that holds everywhere.
    pub fn service_diff(&self, base: &str) -> Result<Vec<Range<u64>>, BlobError> {
        let list = self.client.page_list(0..self.capacity, Some(base))?;
        let mut all = list.pages;
        all.extend(list.cleared);
        Ok(normalise(all, self.capacity))
    }

    fn io_error(&self, e: BlobError) -> io::Error {
        e.into()
    }

    /// Writes whole pages at `offset`, in `Put Page` calls of at most 4 MiB;
    /// a call's worth of zeros is cleared instead, keeping the blob sparse.
    fn write_pages(&self, data: &[u8], offset: u64) -> Result<(), BlobError> {
        for (i, chunk) in data.chunks(MAX_PUT_PAGE).enumerate() {
            let at = offset + (i * MAX_PUT_PAGE) as u64;
            if chunk.iter().all(|&b| b == 0) {
                self.client.clear_pages(at..at + chunk.len() as u64)?;
            } else {
                self.client.put_pages(at, chunk)?;
            }
        }
        Ok(())
    }
}

fn read_only_snapshot(client: &BlobClient) -> BlobError {
    BlobError::Invalid {
        endpoint: client.endpoint().to_string(),
        reason: "a blob snapshot is read-only; write to the blob itself".into(),
    }
}

/// Sorts and merges `ranges`, clipped to `[0, capacity)`.
fn normalise(mut ranges: Vec<Range<u64>>, capacity: u64) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    for r in ranges {
        push_merged(&mut out, r.start.min(capacity)..r.end.min(capacity));
    }
    out
}

impl BlockDevice for PageBlob {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len(), "read")?;
        // Bounded calls: a huge read becomes several, none holding more
        // than a few MiB in flight.
        for (i, chunk) in buf.chunks_mut(MAX_PUT_PAGE).enumerate() {
            let at = offset + (i * MAX_PUT_PAGE) as u64;
            let bytes = self
                .client
                .read(at..at + chunk.len() as u64)
                .map_err(|e| self.io_error(e))?;
            chunk.copy_from_slice(&bytes);
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open read-only", self.describe()),
            ));
        }
        check_range(self.capacity, offset, buf.len(), "write")?;
        if buf.is_empty() {
            return Ok(());
        }
        let start = offset - offset % PAGE;
        let end = (offset + buf.len() as u64).div_ceil(PAGE) * PAGE;
        if start == offset && end == offset + buf.len() as u64 {
            return self.write_pages(buf, offset).map_err(|e| self.io_error(e));
        }
        // Put Page takes whole pages only: read the partial first and last
        // pages, patch them, and write the whole span.
        let mut span = vec![0u8; (end - start) as usize];
        let first = start..start + PAGE;
        let last = end - PAGE..end;
        for page in [first, last] {
            let bytes = self
                .client
                .read(page.clone())
                .map_err(|e| self.io_error(e))?;
            let at = (page.start - start) as usize;
            span[at..at + PAGE as usize].copy_from_slice(&bytes);
        }
        let at = (offset - start) as usize;
        span[at..at + buf.len()].copy_from_slice(buf);
        self.write_pages(&span, start).map_err(|e| self.io_error(e))
    }

    fn flush(&self) -> io::Result<()> {
        // A Put Page is durable once the service acknowledged it.
        Ok(())
    }

    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        self.page_ranges().map(Some).map_err(io::Error::from)
    }

    fn describe(&self) -> String {
        match self.client.snapshot() {
            Some(s) => format!("page blob {} (snapshot {s})", self.client.endpoint()),
            None => format!("page blob {}", self.client.endpoint()),
        }
    }
}

/// How changed blocks between two snapshots are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffMethod {
    /// The service's page-range diff (`prevsnapshot`). Fast; wrong on
    /// Azurite.
    Service,
    /// Page ranges of both plus a block-by-block comparison ([`changed_ranges_by_compare`]).
    Compare,
}

impl DiffMethod {
    /// The name used in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            DiffMethod::Service => "service-diff",
            DiffMethod::Compare => "compare",
        }
    }
}

/// Blocks of `block` bytes that differ between snapshot `base` and the later
/// `target` (same blob), found by `method`, as sorted, merged byte ranges on
/// block boundaries (the last one clipped to the disk). Logs which method ran.
pub fn changed_ranges(
    base: &PageBlob,
    target: &PageBlob,
    block: u64,
    method: DiffMethod,
) -> Result<Vec<Range<u64>>, BlobError> {
    let ranges = match method {
        DiffMethod::Service => {
            let Some(base_id) = base.snapshot_id() else {
                return Err(BlobError::Invalid {
                    endpoint: base.endpoint().to_string(),
                    reason: "the service diff needs the base as a snapshot".into(),
                });
            };
            let pages = target.service_diff(base_id)?;
            let blocks = to_blocks(&pages, block, target.capacity());
            tracing::info!(
                method = method.name(),
                blob = %target.endpoint(),
                changed_ranges = blocks.len(),
                "changed blocks between snapshots from the service's page-range diff"
            );
            blocks
        }
        DiffMethod::Compare => changed_ranges_by_compare(base, target, block)
            .map_err(|e| io_to_blob(e, target.endpoint()))?,
    };
    Ok(ranges)
}

/// Blocks of `block` bytes that differ between `base` and `target`: only
/// blocks either device may hold data in (its allocated ranges, the whole
/// disk when it cannot tell) are read, from both at once in 4 MiB requests,
/// and compared block by block; everything else is zeros on both sides. Bytes beyond a device's
/// capacity count as zeros, so a grown disk's new non-zero blocks are
/// changes. Returns sorted, merged byte ranges on block boundaries (the last
/// clipped to the larger capacity) and logs that this method ran.
pub fn changed_ranges_by_compare(
    base: &dyn BlockDevice,
    target: &dyn BlockDevice,
    block: u64,
) -> io::Result<Vec<Range<u64>>> {
    if block == 0 || !block.is_multiple_of(PAGE) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block size {block} is not a positive multiple of 512"),
        ));
    }
    let capacity = base.capacity().max(target.capacity());
    let mut candidates = Vec::new();
    for device in [base, target] {
        match device.allocated_ranges()? {
            Some(ranges) => candidates.extend(ranges),
            None => candidates.push(0..device.capacity()),
        }
    }
    let candidates = to_blocks(&normalise(candidates, capacity), block, capacity);
    // Read in large pieces (one request per 4 MiB, not one per block) and
    // both snapshots at once; then compare block by block in memory. Both
    // sides are here, so comparing the bytes is exact and cheaper than
    // hashing them.
    let chunk = (COMPARE_CHUNK / block).max(1) * block;
    let chunk_len = usize::try_from(chunk).unwrap_or(usize::MAX);
    let mut changed = Vec::new();
    let mut examined = 0u64;
    let mut a = vec![0u8; chunk_len];
    let mut b = vec![0u8; chunk_len];
    for range in &candidates {
        let mut at = range.start;
        while at < range.end {
            let len = chunk.min(range.end - at);
            let n = len as usize; // len ≤ chunk, which fits in usize
            let (read_a, read_b) = std::thread::scope(|scope| {
                let a = &mut a[..n];
                let reader = scope.spawn(move || read_or_zeros(base, a, at));
                let read_b = read_or_zeros(target, &mut b[..n], at);
                let read_a = reader.join().unwrap_or_else(|_| {
                    Err(io::Error::other("the snapshot reader thread panicked"))
                });
                (read_a, read_b)
            });
            read_a?;
            read_b?;
            let mut offset = 0u64;
            while offset < len {
                let block_len = block.min(len - offset);
                let span = offset as usize..(offset + block_len) as usize;
                if a[span.clone()] != b[span] {
                    push_merged(&mut changed, at + offset..at + offset + block_len);
                }
                examined += 1;
                offset += block_len;
            }
            at += len;
        }
    }
    tracing::info!(
        method = DiffMethod::Compare.name(),
        base = %base.describe(),
        target = %target.describe(),
        blocks_compared = examined,
        changed_ranges = changed.len(),
        "changed blocks between snapshots from page ranges and block comparison"
    );
    Ok(changed)
}

/// Reads `buf` at `offset`, zeros for the part beyond the device's end.
fn read_or_zeros(d: &dyn BlockDevice, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let cap = d.capacity();
    let inside = cap.saturating_sub(offset).min(buf.len() as u64) as usize;
    buf[inside..].fill(0);
    if inside > 0 {
        d.read_at(&mut buf[..inside], offset)?;
    }
    Ok(())
}

/// Widens sorted byte ranges to whole blocks of `block`, clipped to
/// `capacity`, merged.
fn to_blocks(ranges: &[Range<u64>], block: u64, capacity: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    for r in ranges.iter().filter(|r| !r.is_empty()) {
        let start = r.start - r.start % block;
        let end = r.end.div_ceil(block).saturating_mul(block).min(capacity);
        push_merged(&mut out, start..end);
    }
    out
}

/// The [`BlobError`] inside an `io::Error` from a page-blob device, or the
/// I/O error's text for any other device.
fn io_to_blob(e: io::Error, endpoint: &str) -> BlobError {
    if e.get_ref().is_some_and(|inner| inner.is::<BlobError>())
        && let Some(inner) = e.into_inner()
        && let Ok(blob) = inner.downcast::<BlobError>()
    {
        return *blob;
    }
    BlobError::Invalid {
        endpoint: endpoint.to_string(),
        reason: "comparing the snapshots failed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_widen_merge_and_clip() {
        assert_eq!(
            to_blocks(&[512..1024, 4096..4608, 70_000..70_512], 4096, 71_000),
            vec![0..8192, 69_632..71_000]
        );
        assert_eq!(
            normalise(vec![1024..2048, 0..512, 512..1024], 1536),
            vec![0..1536]
        );
    }
}
