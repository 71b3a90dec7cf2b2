//! Block devices: the disks the host reads and writes.
//!
//! Everything that moves disk bytes (the replication data path, the `disk`
//! resource lent to file-system plugins) goes through [`BlockDevice`]. Formats
//! (raw today; VMDK flat, VHD fixed and page blobs with the data path) are
//! implementations of it, so a plugin never learns where or how bytes are stored.

mod raw;

pub use raw::RawFile;

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
