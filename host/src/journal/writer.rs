//! Writing one point: before-images saved durably, then the replica written.
//!
//! For every byte a point overwrites, the first write of the point saves
//! the byte's content at the previous point in the point's undo segment;
//! later writes of the same byte save nothing (the oldest before-image is
//! the one that matters). Replica writes wait in a batch until the segment
//! records of the batch are synced, so one `fdatasync` covers many extents
//! and no replica byte changes before its before-image is durable.

use super::Journal;
use super::error::JournalError;
use super::extents::ExtentMap;
use super::leaves::blocks_of;
use super::log::Record;
use super::point::{NewPointMeta, PointMeta};
use super::retention::{Alarm, Pruned};
use super::segment::{self, SegmentWriter};
use super::undo::{self, UndoSource};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Replica bytes held back until their before-images are synced.
const BATCH: usize = 32 << 20;

/// A point being written. Commit it with [`commit`](Self::commit); dropped
/// without committing, it is undone (or, if that fails, left for the next
/// [`Journal::open`] to undo).
pub struct PointWriter<'a> {
    journal: &'a mut Journal,
    seq: u64,
    /// `None` once sealed (or lost to a failed seal).
    segment: Option<SegmentWriter>,
    segment_path: PathBuf,
    /// Bytes whose before-image this point has saved.
    saved: ExtentMap<()>,
    pending: Vec<(u64, Vec<u8>)>,
    pending_bytes: usize,
    /// Digest blocks the point wrote.
    touched: BTreeSet<u64>,
    /// A replica write failed: the point can only be dropped.
    broken: Option<String>,
    /// The commit record was appended (or its append failed, so whether it
    /// is durable is unknown): never undo the point here.
    logged: bool,
}

/// A committed point, and what retention did after it.
#[derive(Debug)]
pub struct Committed {
    /// The point as recorded.
    pub meta: PointMeta,
    /// Points retention and the size cap dropped after the commit.
    pub pruned: Vec<Pruned>,
    /// Points the size cap dropped before their retention ended.
    pub alarms: Vec<Alarm>,
    /// Retention could not run after the commit (the point is committed
    /// all the same); [`Journal::apply_retention`] can be called again.
    pub retention_error: Option<JournalError>,
}

impl<'a> PointWriter<'a> {
    pub(crate) fn new(journal: &'a mut Journal, seq: u64, segment: SegmentWriter) -> Self {
        PointWriter {
            journal,
            seq,
            segment_path: segment.path.clone(),
            segment: Some(segment),
            saved: ExtentMap::default(),
            pending: Vec::new(),
            pending_bytes: 0,
            touched: BTreeSet::new(),
            broken: None,
            logged: false,
        }
    }

    /// The sequence number the point will have.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Writes `data` at `offset` of the replica as part of this point. The
    /// before-image of every byte not yet written by the point is saved
    /// (and synced) before the replica is written.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), JournalError> {
        if let Some(why) = &self.broken {
            return Err(self.journal.needs_recovery(why.clone()));
        }
        let capacity = self.journal.capacity;
        let len = data.len() as u64;
        if offset.checked_add(len).is_none_or(|end| end > capacity) {
            return Err(JournalError::OutOfRange {
                offset,
                len: data.len(),
                capacity,
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        let segment = self.segment.as_mut().ok_or_else(|| {
            self.journal
                .needs_recovery("the point's segment is gone".into())
        })?;
        let replica = &self.journal.replica;
        let mut before = Vec::new();
        for gap in self.saved.gaps(offset..offset + len) {
            let mut at = gap.start;
            while at < gap.end {
                let n = (gap.end - at).min(segment::MAX_RECORD as u64) as usize;
                before.resize(n, 0);
                replica
                    .read_at(&mut before, at)
                    .map_err(|e| undo::replica_error(replica.as_ref(), "read a before-image", e))?;
                segment.append(at, &before);
                at += n as u64;
            }
        }
        self.saved.fill(offset..offset + len, ());
        self.touched.extend(blocks_of(offset, len));
        if self.pending_bytes + data.len() > BATCH {
            // This write's records are in the segment buffer too, so after
            // the batch is flushed the write may go straight to the replica.
            self.flush_batch()?;
            self.write_replica(offset, data)?;
        } else {
            self.pending.push((offset, data.to_vec()));
            self.pending_bytes += data.len();
        }
        Ok(())
    }

    /// Syncs the undo records, then writes the replica bytes waiting for them.
    fn flush_batch(&mut self) -> Result<(), JournalError> {
        if let Some(segment) = self.segment.as_mut() {
            segment.sync()?;
        }
        for (offset, data) in std::mem::take(&mut self.pending) {
            self.write_replica(offset, &data)?;
        }
        self.pending_bytes = 0;
        Ok(())
    }

    fn write_replica(&mut self, offset: u64, data: &[u8]) -> Result<(), JournalError> {
        let replica = self.journal.replica.as_ref();
        replica.write_at(data, offset).map_err(|e| {
            let err = undo::replica_error(replica, "write", e);
            self.broken = Some(err.to_string());
            err
        })
    }

    /// Makes the point durable and records it: the replica is flushed, the
    /// segment sealed, and the commit record (with the replica's whole-disk
    /// digest) appended and synced. Then retention runs at `meta.taken_at`.
    pub fn commit(mut self, meta: NewPointMeta) -> Result<Committed, JournalError> {
        meta.check().map_err(JournalError::InvalidMeta)?;
        if let Some(why) = &self.broken {
            return Err(self.journal.needs_recovery(why.clone()));
        }
        self.flush_batch()?;
        let journal = &mut *self.journal;
        let replica = journal.replica.as_ref();
        replica
            .flush()
            .map_err(|e| undo::replica_error(replica, "flush", e))?;
        // The digest of the new point, without changing the leaves of the
        // latest one until the point is recorded.
        let (changes, fresh, digest) = match &journal.leaves {
            Some(leaves) => {
                let changes = leaves
                    .rehash(replica, self.touched.iter().copied())
                    .map_err(|e| undo::replica_error(replica, "read back written blocks", e))?;
                let digest = leaves.digest_with(&changes);
                (changes, None, digest)
            }
            None => {
                let leaves = super::leaves::Leaves::compute(replica).map_err(|e| {
                    undo::replica_error(replica, "read for the whole-disk digest", e)
                })?;
                let digest = leaves.digest();
                (Vec::new(), Some(leaves), digest)
            }
        };
        let segment = self
            .segment
            .take()
            .ok_or_else(|| journal.needs_recovery("the point's segment is gone".into()))?
            .seal()?;
        let first = journal.state.metas.is_empty();
        let point = PointMeta {
            seq: self.seq,
            taken_at: meta.taken_at,
            app_consistent: meta.app_consistent,
            consistency_id: meta.consistency_id,
            digest,
            label: meta.label,
        };
        let record = Record::Commit {
            point: point.clone(),
            file: (!first).then_some(segment.id),
        };
        self.logged = true;
        let retired = journal.record(&record)?;
        journal.retire(&retired);
        if first {
            // The oldest point needs no undo set.
            journal.retire(&[segment.id]);
        } else {
            journal.segments.insert(segment.id, Arc::new(segment));
        }
        match (&mut journal.leaves, fresh) {
            (_, Some(leaves)) => journal.leaves = Some(leaves),
            (Some(leaves), None) => leaves.apply(&changes),
            (None, None) => {}
        }
        journal.store_leaves();
        let (pruned, alarms, retention_error) = match journal.apply_retention(point.taken_at) {
            Ok(p) => (p.pruned, p.alarms, None),
            Err(e) => (Vec::new(), Vec::new(), Some(e)),
        };
        Ok(Committed {
            meta: point,
            pruned,
            alarms,
            retention_error,
        })
    }

    /// Undoes what the point wrote to the replica and deletes its segment.
    fn abort(&mut self) -> Result<(), JournalError> {
        let replica = self.journal.replica.as_ref();
        self.pending.clear();
        match &self.segment {
            Some(segment) => {
                undo::apply(replica, &[segment as &dyn UndoSource])?;
            }
            None => {
                // The seal failed part-way: read what is on disk.
                if let Some(scanned) = segment::scan(&self.segment_path)? {
                    undo::apply(replica, &[&scanned as &dyn UndoSource])?;
                }
            }
        }
        self.segment = None;
        std::fs::remove_file(&self.segment_path)
            .and_then(|()| super::frame::sync_dir(&self.journal.dir))
            .map_err(|e| JournalError::io(&self.segment_path, "delete the undone segment", e))
    }
}

impl Drop for PointWriter<'_> {
    fn drop(&mut self) {
        if self.logged {
            return;
        }
        if let Err(e) = self.abort() {
            let reason = format!(
                "point {} was dropped uncommitted and could not be undone: {e}",
                self.seq
            );
            tracing::error!("{reason}");
            self.journal.poisoned = Some(reason);
        }
    }
}
