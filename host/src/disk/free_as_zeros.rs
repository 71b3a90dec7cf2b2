//! A device whose free space reads as zeros: the source of a sync that skips
//! what the guest's file systems do not use.
//!
//! The file-system handlers say which bytes are in use
//! ([`crate::filesystem::used_map`]). Wrapping the source in [`FreeAsZeros`]
//! makes every other byte a hole: the data path then skips it on a full sync
//! (holes are never read or sent) and sends it as a payload-free zero block on
//! a delta, so the target ends up equal to the source with free space zeroed,
//! and the whole-disk digest still proves it. Deleted-file leftovers in free
//! space are never copied, which is also the point: they are not the guest's.

use super::BlockDevice;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// `inner`, with bytes outside `in_use` reading as zeros. Read-only.
pub struct FreeAsZeros {
    inner: Arc<dyn BlockDevice>,
    in_use: Vec<Range<u64>>,
}

impl FreeAsZeros {
    /// Wraps `inner`; `in_use` must be sorted and disjoint (as
    /// [`crate::filesystem::used_map`] returns it), and is clipped to the device.
    pub fn new(inner: Arc<dyn BlockDevice>, mut in_use: Vec<Range<u64>>) -> Self {
        let capacity = inner.capacity();
        in_use.retain(|r| r.start < r.end && r.start < capacity);
        for r in &mut in_use {
            r.end = r.end.min(capacity);
        }
        FreeAsZeros { inner, in_use }
    }

    /// Bytes in use.
    pub fn bytes_in_use(&self) -> u64 {
        self.in_use.iter().map(|r| r.end - r.start).sum()
    }

    /// The in-use ranges that overlap `window`, clipped to it.
    fn overlapping(&self, window: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self.in_use.partition_point(|r| r.end <= window.start);
        self.in_use[first..]
            .iter()
            .take_while(move |r| r.start < window.end)
            .map(move |r| r.start.max(window.start)..r.end.min(window.end))
    }
}

impl BlockDevice for FreeAsZeros {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }

    fn sector_size(&self) -> u32 {
        self.inner.sector_size()
    }

    fn writable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        super::check_range(self.capacity(), offset, buf.len(), "read")?;
        let window = offset..offset + buf.len() as u64;
        buf.fill(0);
        for r in self.overlapping(window) {
            let at = (r.start - offset) as usize;
            let len = (r.end - r.start) as usize;
            self.inner.read_at(&mut buf[at..at + len], r.start)?;
        }
        Ok(())
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is a read-only sync source", self.describe()),
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        let Some(allocated) = self.inner.allocated_ranges()? else {
            return Ok(Some(self.in_use.clone()));
        };
        // Intersection of two sorted, disjoint lists.
        let mut out = Vec::new();
        for a in allocated {
            out.extend(self.overlapping(a));
        }
        Ok(Some(out))
    }

    fn describe(&self) -> String {
        format!("{} (free space skipped)", self.inner.describe())
    }
}
