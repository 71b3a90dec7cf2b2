//! [`DiskView`]: a volume as a [`BlockDevice`] made of byte ranges of a disk.
//!
//! A partition is one range; an LVM linear logical volume is one range per
//! segment, in logical order, possibly on several physical volumes of the
//! same disk. One type serves both, so file-system handlers and the data path
//! see a plain block device either way. Every view refers to the whole disk
//! directly (an LV's ranges are computed as absolute disk offsets), never to
//! another view, so a read is one lookup and at most one `read_at` per range.

use super::super::raw::push_merged;
use super::super::{BlockDevice, check_range};
use super::error::LayoutError;
use std::io;
use std::ops::Range;
use std::sync::Arc;

/// One contiguous range of a view: `len` bytes at `disk_offset` on the disk,
/// seen at `start` in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Offset of the range in the view.
    pub start: u64,
    /// Offset of the range on the disk.
    pub disk_offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A block device made of ranges of another one (a partition, a logical
/// volume). Reads and writes are bounds-checked against the view, and pass
/// through to the disk.
pub struct DiskView {
    disk: Arc<dyn BlockDevice>,
    extents: Vec<Extent>,
    capacity: u64,
    label: String,
}

impl DiskView {
    /// The `len` bytes of `disk` at `offset`; `label` says what they are
    /// ("partition 2") in [`BlockDevice::describe`].
    pub fn window(
        disk: Arc<dyn BlockDevice>,
        offset: u64,
        len: u64,
        label: impl Into<String>,
    ) -> Result<DiskView, LayoutError> {
        DiskView::concat(disk, &[(offset, len)], label)
    }

    /// The ranges `(disk offset, length)` of `disk`, one after the other.
    /// Each must lie inside the disk; empty ranges are dropped.
    pub fn concat(
        disk: Arc<dyn BlockDevice>,
        ranges: &[(u64, u64)],
        label: impl Into<String>,
    ) -> Result<DiskView, LayoutError> {
        let label = label.into();
        let disk_capacity = disk.capacity();
        let mut extents = Vec::with_capacity(ranges.len());
        let mut capacity: u64 = 0;
        for &(disk_offset, len) in ranges {
            let end = disk_offset.checked_add(len);
            if end.is_none_or(|end| end > disk_capacity) {
                return Err(LayoutError::damaged(
                    format!("{label} of {}", disk.describe()),
                    format!(
                        "{len} bytes at byte {disk_offset} run past the end of the \
                         {disk_capacity}-byte disk"
                    ),
                ));
            }
            if len == 0 {
                continue;
            }
            extents.push(Extent {
                start: capacity,
                disk_offset,
                len,
            });
            capacity = capacity.checked_add(len).ok_or_else(|| {
                LayoutError::damaged(label.clone(), "total size overflows 64 bits")
            })?;
        }
        Ok(DiskView {
            disk,
            extents,
            capacity,
            label,
        })
    }

    /// The ranges of the disk this view is made of, in view order.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Calls `io` for each piece of `[offset, offset + len)`: (position in
    /// the caller's buffer, disk offset, length). The range must already be
    /// checked against the capacity.
    fn each_piece(
        &self,
        offset: u64,
        len: usize,
        mut io: impl FnMut(Range<usize>, u64) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut done: usize = 0;
        // The first extent that ends after `offset`.
        let mut index = self
            .extents
            .partition_point(|e| e.start.saturating_add(e.len) <= offset);
        while done < len {
            let Some(extent) = self.extents.get(index) else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{}: no extent holds byte {}", self.describe(), offset),
                ));
            };
            let pos = offset.saturating_add(done as u64);
            let within = pos.saturating_sub(extent.start);
            let available = extent.len.saturating_sub(within);
            let n = usize::try_from(available)
                .unwrap_or(usize::MAX)
                .min(len - done);
            io(done..done + n, extent.disk_offset.saturating_add(within))?;
            done += n;
            index += 1;
        }
        Ok(())
    }
}

impl BlockDevice for DiskView {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn sector_size(&self) -> u32 {
        self.disk.sector_size()
    }

    fn writable(&self) -> bool {
        self.disk.writable()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len(), "read")?;
        self.each_piece(offset, buf.len(), |piece, at| {
            // `piece` is inside `buf`: each_piece never goes past `len`.
            match buf.get_mut(piece) {
                Some(part) => self.disk.read_at(part, at),
                None => Err(io::Error::other("piece outside the buffer")),
            }
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len(), "write")?;
        self.each_piece(offset, buf.len(), |piece, at| match buf.get(piece) {
            Some(part) => self.disk.write_at(part, at),
            None => Err(io::Error::other("piece outside the buffer")),
        })
    }

    fn flush(&self) -> io::Result<()> {
        self.disk.flush()
    }

    /// The disk's data ranges that fall inside the view, translated to view
    /// offsets.
    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        let Some(disk_ranges) = self.disk.allocated_ranges()? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for extent in &self.extents {
            let extent_end = extent.disk_offset.saturating_add(extent.len);
            let first = disk_ranges.partition_point(|r| r.end <= extent.disk_offset);
            for r in disk_ranges.iter().skip(first) {
                if r.start >= extent_end {
                    break;
                }
                let start = r.start.max(extent.disk_offset);
                let end = r.end.min(extent_end);
                let to_view = |at: u64| extent.start.saturating_add(at - extent.disk_offset);
                push_merged(&mut out, to_view(start)..to_view(end));
            }
        }
        Ok(Some(out))
    }

    fn describe(&self) -> String {
        let ranges: Vec<String> = self
            .extents
            .iter()
            .take(4)
            .map(|e| format!("{}..{}", e.disk_offset, e.disk_offset.saturating_add(e.len)))
            .collect();
        let more = if self.extents.len() > 4 { ", ..." } else { "" };
        format!(
            "{} {} (bytes {}{more})",
            self.disk.describe(),
            self.label,
            ranges.join(", ")
        )
    }
}
