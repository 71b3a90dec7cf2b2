//! A retained point as a read-only disk, without copying the replica.
//!
//! The content of point j at a byte is in the undo set of the earliest point
//! after j whose set covers the byte, else in the replica. A view maps every
//! covered byte to its record once, when it is made, and reads the rest from
//! the replica. Records are verified against their checksums when read; the
//! last few are kept, so small sequential reads do not verify a record again
//! for every call.
//!
//! A view stays correct only while the replica does not change: writing or
//! rolling back a point makes every earlier view fail its reads with
//! [`JournalError::StaleView`] instead of returning a mix of two points.

use super::error::JournalError;
use super::extents::ExtentMap;
use super::segment::{Entry, Segment};
use crate::disk::BlockDevice;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, RwLock};

/// Verified records kept by a view.
const CACHED_RECORDS: usize = 8;

/// Where a byte of the point comes from: a record of one of the segments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    segment: usize,
    entry: Entry,
}

/// A verified record: (segment, record position) and its before-image.
type CachedRecord = ((usize, u64), Arc<Vec<u8>>);

/// A retained point as a read-only [`BlockDevice`].
pub struct PointView {
    seq: u64,
    replica: Arc<dyn BlockDevice>,
    segments: Vec<Arc<Segment>>,
    map: ExtentMap<Source>,
    epoch: Arc<RwLock<u64>>,
    made_at: u64,
    cache: Mutex<VecDeque<CachedRecord>>,
    describe: String,
}

impl std::fmt::Debug for PointView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointView")
            .field("seq", &self.seq)
            .field("describe", &self.describe)
            .finish_non_exhaustive()
    }
}

/// Builds a view from the undo sets of the points after it, oldest first
/// (each set's segments in earliest-wins order).
pub(crate) struct ViewBuilder {
    segments: Vec<Arc<Segment>>,
    map: ExtentMap<Source>,
}

impl ViewBuilder {
    pub(crate) fn new() -> Self {
        ViewBuilder {
            segments: Vec::new(),
            map: ExtentMap::default(),
        }
    }

    /// Adds a segment; bytes an earlier segment covers keep their source.
    pub(crate) fn add(&mut self, segment: Arc<Segment>) {
        let index = self.segments.len();
        for entry in &segment.index {
            self.map.fill(
                entry.range(),
                Source {
                    segment: index,
                    entry: *entry,
                },
            );
        }
        self.segments.push(segment);
    }

    /// The bytes covered by the segments added, each with its source: the
    /// live part of a merged undo set.
    pub(crate) fn extents(
        &self,
    ) -> impl Iterator<Item = (std::ops::Range<u64>, &Arc<Segment>, Entry)> {
        self.map.iter().filter_map(|(range, source)| {
            Some((range, self.segments.get(source.segment)?, source.entry))
        })
    }

    /// How many bytes the segments added cover.
    pub(crate) fn covered(&self) -> u64 {
        self.map.covered()
    }

    pub(crate) fn build(
        self,
        seq: u64,
        replica: Arc<dyn BlockDevice>,
        epoch: Arc<RwLock<u64>>,
        describe: String,
    ) -> PointView {
        let made_at = *epoch.read().unwrap_or_else(|e| e.into_inner());
        PointView {
            seq,
            replica,
            segments: self.segments,
            map: self.map,
            epoch,
            made_at,
            cache: Mutex::new(VecDeque::new()),
            describe,
        }
    }
}

impl PointView {
    /// The point this view shows.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes served from undo records rather than the replica.
    pub fn journal_bytes(&self) -> u64 {
        self.map.covered()
    }

    fn record(&self, source: &Source) -> Result<Arc<Vec<u8>>, JournalError> {
        let key = (source.segment, source.entry.pos);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, data)) = cache.iter().find(|(k, _)| *k == key) {
            return Ok(data.clone());
        }
        let segment = self
            .segments
            .get(source.segment)
            .ok_or(JournalError::StaleView { seq: self.seq })?;
        let data = Arc::new(segment.read(&source.entry)?);
        if cache.len() == CACHED_RECORDS {
            cache.pop_front();
        }
        cache.push_back((key, data.clone()));
        Ok(data)
    }
}

impl BlockDevice for PointView {
    fn capacity(&self) -> u64 {
        self.replica.capacity()
    }

    fn sector_size(&self) -> u32 {
        self.replica.sector_size()
    }

    fn writable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        crate::disk::check_range(self.capacity(), offset, buf.len(), "read")?;
        // Held for the whole read: the journal bumps the epoch under the
        // write lock before it changes the replica, so a read either
        // finishes first or sees the new epoch and fails.
        let epoch = self.epoch.read().unwrap_or_else(|e| e.into_inner());
        if *epoch != self.made_at {
            return Err(io::Error::other(JournalError::StaleView { seq: self.seq }));
        }
        let end = offset + buf.len() as u64;
        for (range, source) in self.map.pieces(offset..end) {
            let dst = &mut buf[(range.start - offset) as usize..(range.end - offset) as usize];
            match source {
                None => self.replica.read_at(dst, range.start)?,
                Some((_, source)) => {
                    let data = self.record(source).map_err(io::Error::other)?;
                    let at = (range.start - source.entry.offset) as usize;
                    let src = data.get(at..at + dst.len()).ok_or_else(|| {
                        io::Error::other(format!(
                            "{}: an undo record is shorter than its index says",
                            self.describe
                        ))
                    })?;
                    dst.copy_from_slice(src);
                }
            }
        }
        Ok(())
    }

    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is read-only", self.describe),
        ))
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
