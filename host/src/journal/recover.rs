//! Opening a journal: checking everything first, then recovering from a
//! crash.
//!
//! All checks come before any change, so a damaged journal is refused with
//! the replica and every journal file as they were: the log replays, every
//! segment it names opens with a valid header and index, and the segment of
//! an uncommitted point scans without damage (its records verified). Only
//! then does recovery cut a torn log tail, undo the uncommitted point, finish
//! an interrupted rollback and delete the files no record names.

use super::error::JournalError;
use super::leaves::Leaves;
use super::log::{self, Log};
use super::segment::{self, Kind, Scanned, Segment};
use super::undo::{self, UndoSource};
use super::{Journal, JournalOptions, frame};
use crate::disk::BlockDevice;
use std::collections::{BTreeMap, HashMap};
use std::fs::{OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The digest cache's file name.
pub(super) const LEAVES_FILE: &str = "leaves";
const LOCK_FILE: &str = "lock";

/// What opening the journal found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The point being written when the journal was last closed or killed,
    /// now undone: the replica holds the latest committed point again. (A
    /// log cut short by damage can leave several: this is the oldest.)
    pub undone_point: Option<UndonePoint>,
    /// A rollback (to this point) that a crash interrupted, now finished.
    pub finished_rollback: Option<u64>,
    /// Bytes of a torn last record cut off the points log.
    pub torn_log_bytes: u64,
    /// Files deleted because no record names them (left by a crash between
    /// a record and the deletion it allowed, or by an unfinished compaction).
    pub removed_files: usize,
    /// Whether the journal was created by this open.
    pub created: bool,
}

/// An uncommitted point undone on open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndonePoint {
    /// The sequence number it would have had.
    pub seq: u64,
    /// Before-images written back.
    pub records: usize,
    /// Bytes written back.
    pub bytes: u64,
    /// Bytes of a torn last undo record, ignored: its replica write never
    /// happened (records are synced before the replica is written).
    pub torn_bytes: u64,
}

pub(super) fn open(
    dir: &Path,
    replica: Arc<dyn BlockDevice>,
    options: JournalOptions,
) -> Result<(Journal, Recovered), JournalError> {
    if !replica.writable() {
        return Err(JournalError::ReadOnly {
            replica: replica.describe(),
        });
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| JournalError::io(dir, "create the journal directory", e))?;
    let lock = take_lock(dir)?;
    let capacity = replica.capacity();
    let mut recovered = Recovered::default();

    // Checks: nothing below changes a file until they all pass.
    let files = list(dir)?;
    let log_path = dir.join(log::FILE_NAME);
    let replayed = match log::read(&log_path)? {
        Some((replayed, recorded)) => {
            if recorded != capacity {
                return Err(JournalError::CapacityMismatch {
                    dir: dir.to_path_buf(),
                    journal: recorded,
                    replica: replica.describe(),
                    capacity,
                });
            }
            Some(replayed)
        }
        None if !files.segments.is_empty() => {
            return Err(JournalError::damaged(
                &log_path,
                "the points log is missing but undo segments are there",
            ));
        }
        None => None,
    };
    let state = replayed
        .as_ref()
        .map(|r| r.state.clone())
        .unwrap_or_default();
    let mut segments = HashMap::new();
    for &id in state.files.iter().flatten() {
        let segment = Segment::open(dir, id)?;
        if segment.header.capacity != capacity {
            return Err(JournalError::damaged(
                &segment.path,
                format!(
                    "the segment was written for a {}-byte disk",
                    segment.header.capacity
                ),
            ));
        }
        segments.insert(id, Arc::new(segment));
    }
    if let Some(to) = state.pending_rollback {
        // The rollback will be finished: its undo sets must all read back.
        let i = state
            .metas
            .iter()
            .position(|m| m.seq == to)
            .unwrap_or(state.metas.len());
        for &id in state.files.iter().skip(i + 1).flatten() {
            if let Some(segment) = segments.get(&id) {
                undo::verify(&[segment.as_ref() as &dyn UndoSource])?;
            }
        }
    }
    let mut uncommitted: Vec<Scanned> = Vec::new();
    let mut orphans: Vec<PathBuf> = files.temporary.clone();
    for (&id, path) in &files.segments {
        if segments.contains_key(&id) {
            continue;
        }
        // Only the segment of a point newer than the log's last is read in
        // full; any other file no record names is deleted unread.
        let uncommitted_point = segment::header_of(path)?.is_some_and(|h| {
            h.kind == Kind::Live && h.seq >= state.next_seq && h.capacity == capacity
        });
        if uncommitted_point && let Some(s) = segment::scan(path)? {
            uncommitted.push(s);
        } else {
            orphans.push(path.clone());
        }
    }

    // Recovery.
    let log = match &replayed {
        Some(r) => {
            recovered.torn_log_bytes = r.torn_bytes;
            Log::open(dir, r.valid_end)?
        }
        None => {
            recovered.created = true;
            Log::create(dir, capacity)?
        }
    };
    // Newest first; there is at most one unless a crash hit an undo itself.
    uncommitted.sort_by_key(|s| std::cmp::Reverse(s.header.seq));
    for s in &uncommitted {
        undo::apply(replica.as_ref(), &[s as &dyn UndoSource])?;
        recovered.undone_point = Some(UndonePoint {
            seq: s.header.seq,
            records: s.index.len(),
            bytes: s.index.iter().map(|e| u64::from(e.len)).sum(),
            torn_bytes: s.torn_bytes,
        });
        orphans.push(s.path.clone());
    }
    let next_file = files.segments.keys().next_back().map_or(1, |id| id + 1);
    let latest = state.metas.last().map(|m| m.seq);
    let leaves = latest.and_then(|seq| Leaves::load(&dir.join(LEAVES_FILE), seq, capacity));
    let pending = state.pending_rollback;
    let mut journal = Journal {
        dir: dir.to_path_buf(),
        replica,
        capacity,
        options,
        log,
        state,
        segments,
        next_file,
        leaves,
        epoch: Arc::new(RwLock::new(0)),
        poisoned: None,
        _lock: lock,
    };
    if let Some(to) = pending {
        journal.finish_rollback(to)?;
        recovered.finished_rollback = Some(to);
    }
    for path in &orphans {
        match std::fs::remove_file(path) {
            Ok(()) => recovered.removed_files += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::io(path, "delete a file no record names", e)),
        }
    }
    if !orphans.is_empty() {
        frame::sync_dir(dir).map_err(|e| JournalError::io(dir, "sync the journal directory", e))?;
    }
    Ok((journal, recovered))
}

fn take_lock(dir: &Path) -> Result<std::fs::File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| JournalError::io(&path, "open the lock file", e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::InUse {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(JournalError::io(&path, "lock the journal", e)),
    }
}

/// The journal's files in its directory.
struct Listing {
    /// Undo segments by id.
    segments: BTreeMap<u64, PathBuf>,
    /// Temporary files of an interrupted rewrite.
    temporary: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Listing, JournalError> {
    let mut listing = Listing {
        segments: BTreeMap::new(),
        temporary: Vec::new(),
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| JournalError::io(dir, "list the journal directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io(dir, "list the journal directory", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = segment::parse_name(name) {
            listing.segments.insert(id, entry.path());
        } else if name == format!("{}.tmp", log::FILE_NAME) || name == format!("{LEAVES_FILE}.tmp")
        {
            listing.temporary.push(entry.path());
        }
    }
    Ok(listing)
}
