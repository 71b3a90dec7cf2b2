//! Writing before-images back to the replica: undoing an uncommitted point,
//! and rolling the replica back to an older point.
//!
//! Undo sets are applied newest first, and the segments of one set last to
//! first, so the before-image that lands last on each byte is the one from
//! the earliest set covering it: the byte's content at the target point.
//! Applying the same sequence again from the start gives the same result, so
//! an undo a crash interrupted is simply done again.

use super::error::JournalError;
use super::leaves::blocks_of;
use super::segment::{Entry, Scanned, Segment, SegmentWriter};
use crate::disk::BlockDevice;
use std::collections::BTreeSet;

/// Something holding before-images.
pub(crate) trait UndoSource {
    /// Its entries, in the order they were written.
    fn entries(&self) -> &[Entry];
    /// The verified before-image of one entry.
    fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError>;
}

impl UndoSource for Segment {
    fn entries(&self) -> &[Entry] {
        &self.index
    }
    fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        Segment::read(self, entry)
    }
}

impl UndoSource for Scanned {
    fn entries(&self) -> &[Entry] {
        &self.index
    }
    fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        Scanned::read(self, entry)
    }
}

/// Only the records already durable: only they can have reached the replica.
impl UndoSource for SegmentWriter {
    fn entries(&self) -> &[Entry] {
        self.durable_entries()
    }
    fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        SegmentWriter::read(self, entry)
    }
}

/// Reads every record of `sources`, so damage is found before anything is
/// written.
pub(crate) fn verify(sources: &[&dyn UndoSource]) -> Result<(), JournalError> {
    for source in sources {
        for entry in source.entries() {
            source.read(entry)?;
        }
    }
    Ok(())
}

/// Writes the before-images of `sources` to `replica`, `sources` last to
/// first and each one's records last to first, then flushes the replica.
/// Returns the digest blocks written.
pub(crate) fn apply(
    replica: &dyn BlockDevice,
    sources: &[&dyn UndoSource],
) -> Result<BTreeSet<u64>, JournalError> {
    let mut touched = BTreeSet::new();
    for source in sources.iter().rev() {
        for entry in source.entries().iter().rev() {
            let data = source.read(entry)?;
            replica
                .write_at(&data, entry.offset)
                .map_err(|e| replica_error(replica, "write a before-image back", e))?;
            touched.extend(blocks_of(entry.offset, u64::from(entry.len)));
        }
    }
    replica
        .flush()
        .map_err(|e| replica_error(replica, "flush", e))?;
    Ok(touched)
}

/// An error of the replica device.
pub(crate) fn replica_error(
    replica: &dyn BlockDevice,
    action: &'static str,
    source: std::io::Error,
) -> JournalError {
    JournalError::Replica {
        replica: replica.describe(),
        action,
        source,
    }
}
