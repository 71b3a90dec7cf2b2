//! Block devices: the disks the host reads and writes.
//!
//! Everything that moves disk bytes (the replication data path, the `disk`
//! resource lent to file-system plugins) goes through [`BlockDevice`]. Formats
//! are implementations of it, so neither the data path nor a plugin learns
//! where or how bytes are stored:
//!
//! - [`RawFile`] (`raw.rs`): a raw image or a block device node;
//! - [`VmdkFlat`] (`vmdk.rs`): a VMDK text descriptor with flat extents
//!   (`monolithicFlat`, ESXi's `vmfs`, `twoGbMaxExtentFlat`);
//! - [`VhdFixed`] (`vhd.rs`): raw data followed by a 512-byte VHD footer, the
//!   format Azure page blobs hold;
//! - [`PageBlob`](page_blob::PageBlob) (`page_blob.rs`): an Azure page blob
//!   (a fixed VHD in the cloud) over the Blob REST API, reached through a
//!   `DiskLocator::Blob` by [`page_blob::open`];
//! - [`FreeAsZeros`] (`free_as_zeros.rs`): another device with the free space
//!   of its file systems reading as zeros, for syncs that skip free space.
//!
//! Only formats whose data is stored in place, at the guest offset plus a
//! constant, are served: reads and writes are one `pread`/`pwrite` each, with
//! no lock, no allocation map and no copy, so several threads can move 1 MiB
//! blocks at once. Every other format is refused by [`detect`] with the
//! `qemu-img convert` command that makes it usable (`image.rs`), and [`open`]
//! and [`create`] are the entry points that pick the implementation.

mod free_as_zeros;
pub mod image;
pub mod layout;
pub mod page_blob;
mod raw;
mod vhd;
mod vmdk;

pub use free_as_zeros::FreeAsZeros;
pub use image::{DiskError, ImageFormat, create, detect, open};
pub use layout::{DiskView, Layout, LayoutError, Volume};
pub use raw::RawFile;
pub use vhd::VhdFixed;
pub use vmdk::VmdkFlat;

use std::io;
use std::ops::Range;

/// A disk the host can read, and maybe write, at byte offsets.
pub trait BlockDevice: Send + Sync {
    /// Size in bytes, as the guest sees it.
    fn capacity(&self) -> u64;

    /// Logical sector size in bytes.
    fn sector_size(&self) -> u32 {
        512
    }

    /// Whether writes are allowed.
    fn writable(&self) -> bool;

    /// Fills `buf` from `offset`. Reading past the end is an error.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// Writes `buf` at `offset`. Writing past the end is an error.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes completed writes durable.
    fn flush(&self) -> io::Result<()>;

    /// Byte ranges that may hold data, sorted and not overlapping, when the
    /// format or the file system knows (sparse files, allocation maps);
    /// `None` when unknown, meaning every byte may hold data. Bytes outside
    /// the ranges read as zeros.
    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        Ok(None)
    }

    /// Where the device's bytes are, for messages (never a credential).
    fn describe(&self) -> String;
}

/// Checks that `len` bytes at `offset` fit in a device of `capacity` bytes.
pub(crate) fn check_range(capacity: u64, offset: u64, len: usize, what: &str) -> io::Result<()> {
    let end = offset.checked_add(len as u64);
    match end {
        Some(end) if end <= capacity => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} of {len} bytes at offset {offset} runs past the end of the {capacity}-byte disk"
            ),
        )),
    }
}

/// 32 bytes that differ between any two calls, in this process or another,
/// for identifiers written into new images (VHD unique id, VMDK CID). They
/// need to be unique, not secret, so the current time, the process id, a
/// counter and `context` hashed together are enough, without an RNG crate.
pub(crate) fn fresh_id(context: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.update(context);
    h.finalize().into()
}
