//! Keeping the journal within its policy: dropping points (retention and
//! the size cap), compacting merged undo sets, and rewriting a grown log.

use super::log::Record;
use super::retention::{Alarm, PruneReason, Pruned, Pruning};
use super::segment::{Header, Kind, SegmentWriter};
use super::view::ViewBuilder;
use super::{Journal, JournalError};
use std::sync::Arc;

/// Compact a merged undo set when less than this share of its bytes is live.
const COMPACT_LIVE_SHARE: f64 = 0.5;
/// Bytes a compaction buffers before syncing them.
const COMPACT_SYNC_EVERY: u64 = 32 << 20;

impl Journal {
    pub(super) fn prune(&mut self, now_ms: u64) -> Result<Pruning, JournalError> {
        let mut pruning = Pruning::default();
        let plan: Vec<(u64, u64, PruneReason)> = self
            .options
            .retention
            .plan(&self.state.metas, now_ms)
            .into_iter()
            .map(|(i, why)| {
                let m = &self.state.metas[i];
                (m.seq, m.taken_at, why)
            })
            .collect();
        for (seq, taken_at, reason) in plan {
            self.drop_point(seq)?;
            pruning.pruned.push(Pruned {
                seq,
                taken_at,
                reason,
            });
        }
        self.compact_merged()?;
        let cap = self.options.max_bytes;
        while self.bytes() > cap && self.state.metas.len() > 1 {
            let oldest = self.state.metas[0].clone();
            let before = self.bytes();
            self.drop_point(oldest.seq)?;
            pruning.pruned.push(Pruned {
                seq: oldest.seq,
                taken_at: oldest.taken_at,
                reason: PruneReason::SizeCap,
            });
            pruning.alarms.push(Alarm::DroppedEarly {
                seq: oldest.seq,
                taken_at: oldest.taken_at,
                reason: format!(
                    "the journal {} held {before} bytes, over its size cap (max_bytes) of {cap} bytes, so its oldest point was dropped before its retention ended; raise max_bytes, shorten the retention (keep_all_for, max_age, max_points), or lower the change rate",
                    self.dir.display()
                ),
            });
        }
        self.rewrite_log_if_grown()?;
        Ok(pruning)
    }

    /// Drops one point (never the latest): the oldest's successor loses
    /// its undo set; a middle point's set joins its successor's.
    fn drop_point(&mut self, seq: u64) -> Result<(), JournalError> {
        let retired = self.record(&Record::Drop { seq })?;
        self.retire(&retired);
        Ok(())
    }

    /// Rewrites undo sets made of several segments whose bytes are mostly
    /// shadowed (thinning merges sets without copying them).
    fn compact_merged(&mut self) -> Result<(), JournalError> {
        let candidates: Vec<u64> = self
            .state
            .metas
            .iter()
            .zip(&self.state.files)
            .filter(|(_, files)| files.len() > 1)
            .map(|(m, _)| m.seq)
            .collect();
        for seq in candidates {
            self.compact(seq)?;
        }
        Ok(())
    }

    fn compact(&mut self, seq: u64) -> Result<(), JournalError> {
        let i = self.index_of(seq)?;
        let mut builder = ViewBuilder::new();
        let mut stored = 0u64;
        for id in self.state.files[i].clone() {
            let segment = self.segment(id)?;
            stored += segment.data_bytes();
            builder.add(segment);
        }
        let live = builder.covered();
        if (live as f64) >= COMPACT_LIVE_SHARE * stored as f64 {
            return Ok(());
        }
        let id = self.next_file;
        self.next_file += 1;
        let header = Header {
            kind: Kind::Compacted,
            seq,
            capacity: self.capacity,
        };
        let mut writer = SegmentWriter::create(&self.dir, id, header)?;
        let mut last: Option<((u64, u64), Vec<u8>)> = None;
        let mut unsynced = 0u64;
        for (range, segment, entry) in builder.extents() {
            let key = (segment.id, entry.pos);
            if last.as_ref().is_none_or(|(k, _)| *k != key) {
                last = Some((key, segment.read(&entry)?));
            }
            if let Some((_, data)) = &last {
                let at = (range.start - entry.offset) as usize;
                let len = (range.end - range.start) as usize;
                let piece = data.get(at..at + len).ok_or_else(|| {
                    JournalError::damaged(
                        &segment.path,
                        "an undo record is shorter than its index says",
                    )
                })?;
                writer.append(range.start, piece);
                unsynced += len as u64;
            }
            if unsynced >= COMPACT_SYNC_EVERY {
                writer.sync()?;
                unsynced = 0;
            }
        }
        // Sealing syncs the file; creating it synced its directory entry.
        let segment = writer.seal()?;
        let retired = self.record(&Record::Compact { seq, file: id })?;
        self.segments.insert(id, Arc::new(segment));
        self.retire(&retired);
        Ok(())
    }

    /// Rewrites the log as one snapshot when it holds many more records
    /// than points, so replay stays short however long the journal lives.
    fn rewrite_log_if_grown(&mut self) -> Result<(), JournalError> {
        if self.state.records <= 4 * self.state.metas.len() + 1024 {
            return Ok(());
        }
        let result = self.log.rewrite(&self.dir, self.capacity, &self.state);
        if let Err(e) = &result {
            self.poisoned = Some(format!("rewriting the points log failed: {e}"));
        }
        result?;
        self.state.records = 1;
        Ok(())
    }
}
