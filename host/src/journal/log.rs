//! The points log (`points.log`): the journal's source of truth.
//!
//! Which points are retained, what each recorded, and which undo segments
//! make up each point's undo set is whatever replaying this log says. Every
//! change to the set of points is one record, appended and synced *before*
//! any file it retires is deleted, so a crash between the two leaves only
//! orphan files, which recovery deletes. Layout, integers little-endian:
//!
//! ```text
//! header  "HWJLOG01" | disk capacity u64 | xxh3-64 of the 16 bytes before
//! record  "HWJR" | len u32 | len bytes of JSON (a `Record`) | xxh3-64 of all before   (repeated)
//! ```
//!
//! A torn last record (crash mid-append) is ignored and cut off when the
//! journal opens; a bad record with whole records after it is damage, and
//! refuses the open. The log is rewritten as one `snapshot` record when it
//! has grown well past what it describes.

use super::error::JournalError;
use super::frame::{self, checksum, u32_at, u64_at};
use super::point::PointMeta;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log's file name in the journal directory.
pub(crate) const FILE_NAME: &str = "points.log";
const MAGIC: &[u8; 8] = b"HWJLOG01";
const HEADER_LEN: u64 = 24;
const RECORD_MAGIC: &[u8; 4] = b"HWJR";
/// Largest record: a snapshot of some ten thousand points.
const MAX_RECORD: u32 = 16 << 20;

/// One change to the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(crate) enum Record {
    /// A point was committed; its undo set is segment `file` (none for a
    /// point committed with no earlier point: nothing to undo it to).
    Commit { point: PointMeta, file: Option<u64> },
    /// A point was dropped. The oldest: its successor's undo set is
    /// deleted. Any other: its undo set joins its successor's, in front.
    Drop { seq: u64 },
    /// A point's undo set was rewritten as the single segment `file`.
    Compact { seq: u64, file: u64 },
    /// The replica is being taken back to point `to`.
    RollbackBegin { to: u64 },
    /// The replica holds point `to`; the newer points are gone.
    RollbackDone { to: u64 },
    /// The whole state (the first record of a rewritten log).
    Snapshot {
        next_seq: u64,
        points: Vec<PointState>,
    },
}

/// A retained point and the segments of its undo set, earliest-wins order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PointState {
    pub(crate) meta: PointMeta,
    pub(crate) files: Vec<u64>,
}

/// What replaying the log gives.
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// Retained points, oldest first.
    pub(crate) metas: Vec<PointMeta>,
    /// Each point's undo set (segment ids), parallel to `metas`. The undo
    /// set of point k takes the replica from k back to the point before
    /// it; the oldest point's is always empty.
    pub(crate) files: Vec<Vec<u64>>,
    /// The next point's sequence number.
    pub(crate) next_seq: u64,
    /// A rollback that began and did not finish.
    pub(crate) pending_rollback: Option<u64>,
    /// Records since the last snapshot (or the start).
    pub(crate) records: usize,
}

impl Default for State {
    /// No points; the first will be point 1.
    fn default() -> Self {
        State {
            metas: Vec::new(),
            files: Vec::new(),
            next_seq: 1,
            pending_rollback: None,
            records: 0,
        }
    }
}

impl State {
    fn index_of(&self, seq: u64) -> Option<usize> {
        self.metas.iter().position(|m| m.seq == seq)
    }

    fn referenced(&self, file: u64) -> bool {
        self.files.iter().flatten().any(|&f| f == file)
    }

    /// Applies `record`; returns the segments it retires (to delete once the
    /// record is durable). An error says why the record cannot follow the
    /// ones before it.
    pub(crate) fn apply(&mut self, record: &Record) -> Result<Vec<u64>, String> {
        if self.pending_rollback.is_some()
            && !matches!(
                record,
                Record::RollbackDone { .. } | Record::RollbackBegin { .. }
            )
        {
            return Err("a change follows a rollback that never finished".to_string());
        }
        let retired = match record {
            Record::Commit { point, file } => {
                if point.seq < self.next_seq {
                    return Err(format!(
                        "point {} is committed after point {} was",
                        point.seq,
                        self.next_seq.saturating_sub(1)
                    ));
                }
                let files = match (file, self.metas.is_empty()) {
                    (None, true) => Vec::new(),
                    (Some(f), false) if !self.referenced(*f) => vec![*f],
                    (Some(f), false) => {
                        return Err(format!("point {} reuses undo segment {f}", point.seq));
                    }
                    (Some(_), true) => {
                        return Err(format!(
                            "point {} is the first but has an undo set",
                            point.seq
                        ));
                    }
                    (None, false) => {
                        return Err(format!("point {} has no undo set", point.seq));
                    }
                };
                self.metas.push(point.clone());
                self.files.push(files);
                self.next_seq = point.seq + 1;
                Vec::new()
            }
            Record::Drop { seq } => {
                let i = self
                    .index_of(*seq)
                    .ok_or_else(|| format!("point {seq} is dropped but not retained"))?;
                if i + 1 == self.metas.len() {
                    return Err(format!("point {seq} is dropped but it is the latest"));
                }
                self.metas.remove(i);
                let mut own = self.files.remove(i);
                if i == 0 {
                    // The new oldest point needs no undo set.
                    own.append(&mut self.files[0]);
                    own
                } else {
                    own.append(&mut self.files[i]);
                    self.files[i] = own;
                    Vec::new()
                }
            }
            Record::Compact { seq, file } => {
                let i = self
                    .index_of(*seq)
                    .ok_or_else(|| format!("point {seq} is compacted but not retained"))?;
                if self.referenced(*file) {
                    return Err(format!(
                        "point {seq} is compacted into segment {file}, which is in use"
                    ));
                }
                std::mem::replace(&mut self.files[i], vec![*file])
            }
            Record::RollbackBegin { to } => {
                if self.index_of(*to).is_none() {
                    return Err(format!("a rollback to point {to}, which is not retained"));
                }
                self.pending_rollback = Some(*to);
                Vec::new()
            }
            Record::RollbackDone { to } => {
                if self.pending_rollback != Some(*to) {
                    return Err(format!("a rollback to point {to} finishes but never began"));
                }
                self.pending_rollback = None;
                let keep = self.index_of(*to).map_or(self.metas.len(), |i| i + 1);
                self.metas.truncate(keep);
                self.files.drain(keep..).flatten().collect()
            }
            Record::Snapshot { next_seq, points } => {
                if self.records != 0 {
                    return Err("a snapshot record after the first record".to_string());
                }
                let mut fresh = State {
                    next_seq: *next_seq,
                    ..State::default()
                };
                for p in points {
                    if p.meta.seq >= *next_seq
                        || fresh.metas.last().is_some_and(|m| m.seq >= p.meta.seq)
                    {
                        return Err("the snapshot's points are out of order".to_string());
                    }
                    if fresh.metas.is_empty() && !p.files.is_empty() {
                        return Err("the snapshot's oldest point has an undo set".to_string());
                    }
                    if p.files.iter().any(|&f| fresh.referenced(f)) {
                        return Err("the snapshot names a segment twice".to_string());
                    }
                    fresh.metas.push(p.meta.clone());
                    fresh.files.push(p.files.clone());
                }
                *self = fresh;
                Vec::new()
            }
        };
        self.records += 1;
        Ok(retired)
    }

    /// The state as one snapshot record.
    pub(crate) fn snapshot(&self) -> Record {
        Record::Snapshot {
            next_seq: self.next_seq,
            points: self
                .metas
                .iter()
                .zip(&self.files)
                .map(|(meta, files)| PointState {
                    meta: meta.clone(),
                    files: files.clone(),
                })
                .collect(),
        }
    }
}

/// The log as read from disk.
#[derive(Debug)]
pub(crate) struct Replayed {
    pub(crate) state: State,
    /// End of the last whole record.
    pub(crate) valid_end: u64,
    /// Bytes of a torn last record, cut off when the log is opened for appending.
    pub(crate) torn_bytes: u64,
}

fn header(capacity: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&capacity.to_le_bytes());
    let sum = checksum(&[&h[..16]]);
    h[16..].copy_from_slice(&sum.to_le_bytes());
    h
}

fn encode(record: &Record) -> Vec<u8> {
    // Serializing these plain types cannot fail; an empty payload would
    // fail to replay rather than be taken for a record.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(RECORD_MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&payload);
    let sum = checksum(&[&out]);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The record starting at `at` in `bytes` and its length, if whole and valid.
fn decode_at(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let rest = bytes.get(at..)?;
    if rest.get(..4)? != RECORD_MAGIC {
        return None;
    }
    let len = u32_at(rest, 4)?;
    if len > MAX_RECORD {
        return None;
    }
    let body_end = 8 + len as usize;
    if checksum(&[rest.get(..body_end)?]) != u64_at(rest, body_end)? {
        return None;
    }
    let record = serde_json::from_slice(&rest[8..body_end]).ok()?;
    Some((record, body_end + 8))
}

/// Reads and replays the log at `path`: `None` when there is no log;
/// otherwise what it says and the disk capacity its header records.
pub(crate) fn read(path: &Path) -> Result<Option<(Replayed, u64)>, JournalError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io(path, "read the points log", e)),
    };
    let head = bytes.get(..HEADER_LEN as usize);
    let recorded_capacity = match head {
        Some(h) if &h[..8] == MAGIC && u64_at(h, 16) == Some(checksum(&[&h[..16]])) => {
            u64_at(h, 8).unwrap_or(0)
        }
        _ => {
            return Err(JournalError::damaged(
                path,
                "the points log has no valid header",
            ));
        }
    };
    let mut state = State::default();
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        match decode_at(&bytes, at) {
            Some((record, len)) => {
                state.apply(&record).map_err(|what| {
                    JournalError::damaged(
                        path,
                        format!("the record at byte {at} cannot be replayed: {what}"),
                    )
                })?;
                at += len;
            }
            None => {
                if let Some(later) = (at + 1..bytes.len()).find(|&p| {
                    bytes[p..].starts_with(RECORD_MAGIC) && decode_at(&bytes, p).is_some()
                }) {
                    return Err(JournalError::damaged(
                        path,
                        format!(
                            "the record at byte {at} is damaged but a whole record follows at byte {later}"
                        ),
                    ));
                }
                break;
            }
        }
    }
    Ok(Some((
        Replayed {
            state,
            valid_end: at as u64,
            torn_bytes: (bytes.len() - at) as u64,
        },
        recorded_capacity,
    )))
}

/// The log, open for appending.
#[derive(Debug)]
pub(crate) struct Log {
    pub(crate) path: PathBuf,
    file: File,
    /// Size of the log.
    pub(crate) len: u64,
}

impl Log {
    /// Creates an empty log for a disk of `capacity` bytes (durably: the
    /// directory entry too).
    pub(crate) fn create(dir: &Path, capacity: u64) -> Result<Log, JournalError> {
        Self::write_new(dir, &header(capacity), None)
    }

    /// Opens the log for appending after its last whole record, cutting
    /// off a torn tail.
    pub(crate) fn open(dir: &Path, valid_end: u64) -> Result<Log, JournalError> {
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| JournalError::io(&path, "open the points log", e))?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(&path, "read the size of the points log", e))?
            .len();
        if len != valid_end {
            file.set_len(valid_end)
                .and_then(|()| file.sync_all())
                .map_err(|e| JournalError::io(&path, "cut the torn tail of the points log", e))?;
        }
        Ok(Log {
            path,
            file,
            len: valid_end,
        })
    }

    /// Appends `record` and makes it durable.
    pub(crate) fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        let bytes = encode(record);
        self.file
            .write_all_at(&bytes, self.len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| JournalError::io(&self.path, "append a record to the points log", e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Replaces the log with one holding only `state` as a snapshot: written
    /// beside it, synced, then renamed over it.
    pub(crate) fn rewrite(
        &mut self,
        dir: &Path,
        capacity: u64,
        state: &State,
    ) -> Result<(), JournalError> {
        *self = Self::write_new(dir, &header(capacity), Some(&state.snapshot()))?;
        Ok(())
    }

    fn write_new(dir: &Path, header: &[u8], record: Option<&Record>) -> Result<Log, JournalError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut bytes = header.to_vec();
        if let Some(record) = record {
            bytes.extend_from_slice(&encode(record));
        }
        let write = || -> std::io::Result<File> {
            let file = File::create(&tmp)?;
            file.write_all_at(&bytes, 0)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &path)?;
            frame::sync_dir(dir)?;
            OpenOptions::new().read(true).write(true).open(&path)
        };
        let file = write().map_err(|e| JournalError::io(&path, "write the points log", e))?;
        Ok(Log {
            path,
            file,
            len: bytes.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64) -> PointMeta {
        PointMeta {
            seq,
            taken_at: seq * 1000,
            app_consistent: false,
            consistency_id: None,
            digest: "00".into(),
            label: String::new(),
        }
    }

    #[test]
    fn drops_move_undo_sets_as_the_design_says() {
        let mut s = State::default();
        s.apply(&Record::Commit {
            point: meta(1),
            file: None,
        })
        .unwrap();
        for seq in 2..=5 {
            s.apply(&Record::Commit {
                point: meta(seq),
                file: Some(seq),
            })
            .unwrap();
        }
        // Middle: its set goes in front of its successor's.
        assert_eq!(
            s.apply(&Record::Drop { seq: 3 }).unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(s.files, vec![vec![], vec![2], vec![3, 4], vec![5]]);
        // Oldest: the successor's set is retired.
        assert_eq!(s.apply(&Record::Drop { seq: 1 }).unwrap(), vec![2]);
        assert_eq!(s.files, vec![vec![], vec![3, 4], vec![5]]);
        assert!(
            s.apply(&Record::Drop { seq: 5 }).is_err(),
            "the latest point stays"
        );
        s.apply(&Record::RollbackBegin { to: 2 }).unwrap();
        assert!(s.apply(&Record::Drop { seq: 4 }).is_err());
        assert_eq!(
            s.apply(&Record::RollbackDone { to: 2 }).unwrap(),
            vec![3, 4, 5]
        );
        assert_eq!(s.metas.len(), 1);
        assert_eq!(s.next_seq, 6);
    }
}
