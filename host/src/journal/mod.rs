//! The master target's journal: the replica disk plus the undo sets of its
//! recovery points, so a failover can bring up any retained point without
//! copying the whole disk.
//!
//! It is an **undo journal**. The replica always holds the latest point.
//! Writing point k saves, for every extent it overwrites, the replica's
//! before-image (its content at the point before) in point k's *undo set*,
//! durably, before the replica is touched. Then:
//!
//! - the latest point is the replica itself (failover needs no replay);
//! - point j is, byte by byte, the undo set of the earliest later point
//!   that covers the byte, else the replica ([`PointView`], `view.rs`);
//! - dropping the oldest point deletes its successor's undo set (the new
//!   oldest point needs none); dropping a middle point m puts m's undo set
//!   in front of m+1's (earlier wins), which takes m+1 back to m-1, and
//!   compaction later rewrites merged sets that are mostly shadowed;
//! - a point a crash interrupted is undone from its own undo records.
//!
//! Files in the journal directory:
//!
//! - `points.log` (`log.rs`): the source of truth, an append-only log of
//!   checksummed records: commits, drops, compactions, rollbacks;
//! - `seg-<id>.undo` (`segment.rs`): one undo segment per point written
//!   (and per compaction): checksummed before-image records, sealed with an
//!   index when the point commits;
//! - `leaves` (`leaves.rs`): a cache of the latest point's per-block digests,
//!   so a commit hashes only the blocks it wrote;
//! - `lock`: held while a [`Journal`] is open.
//!
//! Crash safety (`kill -9` at any moment leaves every committed point
//! intact) rests on one ordering per operation, each step synced before the
//! next starts:
//!
//! | operation | order |
//! |---|---|
//! | begin | segment created with its header, directory synced (the header is synced with the first records) |
//! | write | undo records appended and `fdatasync`ed, then the replica written (batched) |
//! | commit | replica flushed; segment sealed and synced; commit record appended and synced |
//! | drop, compact | (compact: new segment written, sealed, synced, directory synced); log record synced; then old files deleted |
//! | rollback | rollback-begin synced; undo sets applied; replica flushed; digest checked; rollback-done synced; files deleted |
//!
//! Opening replays the log, checks every segment it names (header and
//! index), and only then changes anything: it cuts a torn log tail, undoes an
//! uncommitted point (a `Live` segment newer than the log's last point),
//! finishes an interrupted rollback, and deletes files no record names.

mod error;
mod extents;
mod frame;
mod leaves;
mod log;
mod maintain;
mod point;
mod recover;
mod retention;
mod segment;
mod undo;
mod view;
mod writer;

pub use error::JournalError;
pub use point::{MAX_CONSISTENCY_ID, MAX_LABEL, NewPointMeta, PointMeta};
pub use recover::{Recovered, UndonePoint};
pub use retention::{Alarm, PruneReason, Pruned, Pruning, Retention};
pub use view::PointView;
pub use writer::{Committed, PointWriter};

use crate::disk::BlockDevice;
use leaves::Leaves;
use log::{Log, Record, State};
use segment::{Header, Kind, Segment, SegmentWriter};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// How much a journal keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size cap of the journal directory's segments and log, in bytes. When
    /// retention leaves the journal above it, the oldest points are dropped
    /// early (with an [`Alarm`]); the latest point always stays. The undo
    /// set of the point being written may take the journal over the cap
    /// until it commits.
    pub max_bytes: u64,
    /// Retention by age, thinning and count.
    pub retention: Retention,
}

impl Default for JournalOptions {
    /// No size cap, ASR-like retention.
    fn default() -> Self {
        JournalOptions {
            max_bytes: u64::MAX,
            retention: Retention::default(),
        }
    }
}

/// One replica disk and its journal directory.
pub struct Journal {
    dir: PathBuf,
    replica: Arc<dyn BlockDevice>,
    capacity: u64,
    options: JournalOptions,
    log: Log,
    state: State,
    /// The segments the log names, by id.
    segments: HashMap<u64, Arc<Segment>>,
    next_file: u64,
    /// Per-block digests of the replica at the latest point, once known.
    leaves: Option<Leaves>,
    /// Bumped, under the write lock, before the replica changes.
    epoch: Arc<RwLock<u64>>,
    /// Set when a failure left state only recovery settles.
    poisoned: Option<String>,
    _lock: File,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("replica", &self.replica.describe())
            .field("points", &self.state.metas.len())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens the journal in `dir` for `replica`, creating it if `dir` holds
    /// none, and recovers from a crash: an uncommitted point is undone, an
    /// interrupted rollback finished, orphan files deleted. A damaged
    /// journal is refused before the replica or any journal file changes.
    pub fn open(
        dir: &Path,
        replica: Arc<dyn BlockDevice>,
        options: JournalOptions,
    ) -> Result<(Journal, Recovered), JournalError> {
        recover::open(dir, replica, options)
    }

    /// Starts the next point.
    pub fn begin(&mut self) -> Result<PointWriter<'_>, JournalError> {
        self.usable()?;
        let seq = self.state.next_seq;
        let id = self.next_file;
        self.next_file += 1;
        let header = Header {
            kind: Kind::Live,
            seq,
            capacity: self.capacity,
        };
        let segment = SegmentWriter::create(&self.dir, id, header)?;
        self.bump_epoch();
        Ok(PointWriter::new(self, seq, segment))
    }

    /// The retained points, oldest first.
    pub fn points(&self) -> &[PointMeta] {
        &self.state.metas
    }

    /// The latest point: what the replica holds.
    pub fn latest(&self) -> Option<&PointMeta> {
        self.state.metas.last()
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The replica disk.
    pub fn replica(&self) -> &Arc<dyn BlockDevice> {
        &self.replica
    }

    /// The options in effect.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Point `seq` as a read-only disk. It reads the replica for every byte
    /// no later undo set covers, so it fails (rather than mixing points)
    /// once the replica changes.
    pub fn view(&self, seq: u64) -> Result<PointView, JournalError> {
        self.usable()?;
        let i = self.index_of(seq)?;
        let mut builder = view::ViewBuilder::new();
        for files in &self.state.files[i + 1..] {
            for id in files {
                builder.add(self.segment(*id)?);
            }
        }
        let describe = format!(
            "point {seq} of journal {} over {}",
            self.dir.display(),
            self.replica.describe()
        );
        Ok(builder.build(seq, self.replica.clone(), self.epoch.clone(), describe))
    }

    /// Takes the replica back to point `seq` (a failover to an older point);
    /// the newer points are dropped. Crash-safe: an interrupted rollback is
    /// finished by [`open`](Self::open). The replica's digest is checked
    /// against the one `seq` recorded.
    pub fn rollback_to(&mut self, seq: u64) -> Result<(), JournalError> {
        self.usable()?;
        let i = self.index_of(seq)?;
        if i + 1 == self.state.metas.len() {
            return Ok(());
        }
        let sources = self.undo_sets_after(i)?;
        let refs: Vec<&dyn undo::UndoSource> = sources.iter().map(|s| s.as_ref() as _).collect();
        undo::verify(&refs)?;
        self.record(&Record::RollbackBegin { to: seq })?;
        self.finish_rollback(seq)
    }

    /// Drops the points retention no longer keeps at `now_ms` (Unix ms),
    /// then, while the journal is over its size cap, the oldest points, each
    /// with an [`Alarm::DroppedEarly`]. The latest point always stays.
    pub fn apply_retention(&mut self, now_ms: u64) -> Result<Pruning, JournalError> {
        self.usable()?;
        self.prune(now_ms)
    }

    /// Size of the journal on disk: the segments of the retained points and
    /// the points log.
    pub fn bytes(&self) -> u64 {
        self.log.len + self.segments.values().map(|s| s.len).sum::<u64>()
    }

    fn index_of(&self, seq: u64) -> Result<usize, JournalError> {
        self.state
            .metas
            .iter()
            .position(|m| m.seq == seq)
            .ok_or_else(|| JournalError::NoSuchPoint {
                dir: self.dir.clone(),
                seq,
                retained: retained_list(&self.state.metas),
            })
    }

    fn segment(&self, id: u64) -> Result<Arc<Segment>, JournalError> {
        self.segments.get(&id).cloned().ok_or_else(|| {
            JournalError::damaged(
                self.dir.join(segment::file_name(id)),
                "the points log names this segment but it is not open",
            )
        })
    }

    /// The segments of the undo sets of the points after index `i`, in
    /// earliest-wins order.
    fn undo_sets_after(&self, i: usize) -> Result<Vec<Arc<Segment>>, JournalError> {
        self.state.files[i + 1..]
            .iter()
            .flatten()
            .map(|id| self.segment(*id))
            .collect()
    }

    /// Applies the rest of a rollback to `to` whose begin record is durable.
    fn finish_rollback(&mut self, to: u64) -> Result<(), JournalError> {
        let result = self.finish_rollback_inner(to);
        if let Err(e) = &result {
            self.poisoned = Some(format!("the rollback to point {to} did not finish: {e}"));
        }
        result
    }

    fn finish_rollback_inner(&mut self, to: u64) -> Result<(), JournalError> {
        let i = self.index_of(to)?;
        let sources = self.undo_sets_after(i)?;
        let refs: Vec<&dyn undo::UndoSource> = sources.iter().map(|s| s.as_ref() as _).collect();
        self.bump_epoch();
        let touched = undo::apply(self.replica.as_ref(), &refs)?;
        let replica = self.replica.as_ref();
        let read_error = |e| undo::replica_error(replica, "read for the whole-disk digest", e);
        let (changes, digest) = match &self.leaves {
            Some(leaves) => {
                let changes = leaves.rehash(replica, touched).map_err(read_error)?;
                let digest = leaves.digest_with(&changes);
                (changes, digest)
            }
            None => {
                let leaves = Leaves::compute(replica).map_err(read_error)?;
                let digest = leaves.digest();
                self.leaves = Some(leaves);
                (Vec::new(), digest)
            }
        };
        let recorded = &self.state.metas[i].digest;
        if &digest != recorded {
            return Err(JournalError::DigestMismatch {
                seq: to,
                recorded: recorded.clone(),
                actual: digest,
            });
        }
        let retired = self.record(&Record::RollbackDone { to })?;
        self.retire(&retired);
        if let Some(leaves) = &mut self.leaves {
            leaves.apply(&changes);
        }
        self.store_leaves();
        Ok(())
    }

    /// Appends `record` to the log and applies it to the state; returns the
    /// segments it retires. A record the state refuses is a bug and is not
    /// written; a failed append poisons the journal (whether the record is
    /// durable is unknown until the log is read again).
    fn record(&mut self, record: &Record) -> Result<Vec<u64>, JournalError> {
        let mut next = self.state.clone();
        let retired = next.apply(record).map_err(|what| {
            JournalError::damaged(
                &self.log.path,
                format!("refusing to append a record: {what}"),
            )
        })?;
        if let Err(e) = self.log.append(record) {
            self.poisoned = Some(format!("a points-log append failed: {e}"));
            return Err(e);
        }
        self.state = next;
        Ok(retired)
    }

    /// Deletes segments no record names any more. A file that cannot be
    /// deleted is only an orphan: the next open deletes it.
    fn retire(&mut self, ids: &[u64]) {
        for id in ids {
            self.segments.remove(id);
            let path = self.dir.join(segment::file_name(*id));
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot delete retired undo segment {}: {e}", path.display());
            }
        }
    }

    fn store_leaves(&self) {
        if let (Some(leaves), Some(latest)) = (&self.leaves, self.state.metas.last()) {
            let path = self.dir.join(recover::LEAVES_FILE);
            if let Err(e) = leaves.store(&path, latest.seq) {
                tracing::warn!("cannot write the digest cache {}: {e}", path.display());
            }
        }
    }

    fn bump_epoch(&self) {
        *self.epoch.write().unwrap_or_else(|e| e.into_inner()) += 1;
    }

    fn usable(&self) -> Result<(), JournalError> {
        match &self.poisoned {
            Some(reason) => Err(self.needs_recovery(reason.clone())),
            None => Ok(()),
        }
    }

    fn needs_recovery(&self, reason: String) -> JournalError {
        JournalError::NeedsRecovery {
            dir: self.dir.clone(),
            reason,
        }
    }
}

fn retained_list(metas: &[PointMeta]) -> String {
    if metas.is_empty() {
        return "none".to_string();
    }
    let seqs: Vec<String> = metas.iter().map(|m| m.seq.to_string()).collect();
    seqs.join(", ")
}
