//! Errors of the master-target journal. Each names the file or the disk and
//! says what is wrong; none carries disk contents.

use std::io;
use std::path::PathBuf;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A journal file could not be read or written.
    #[error("journal file {path}: cannot {action}: {source}")]
    Io {
        /// The file (or the journal directory).
        path: PathBuf,
        /// What was being done ("append a record", "read the index", …).
        action: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// A journal file is not what the journal wrote: a damaged record in the
    /// middle, a missing or unreadable index, a file the log names but the
    /// directory lacks. Nothing was changed.
    #[error(
        "journal file {path} is damaged: {what}; the journal was not changed (restore the directory from a backup, or start a new journal with a full sync)"
    )]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// Reading or writing the replica disk failed.
    #[error("replica {replica}: cannot {action}: {source}")]
    Replica {
        /// The replica, as its device describes itself.
        replica: String,
        /// What was being done.
        action: &'static str,
        /// The device's error.
        source: io::Error,
    },
    /// The journal was made for a disk of another size.
    #[error(
        "journal {dir} belongs to a {journal}-byte disk, but the replica {replica} has {capacity} bytes"
    )]
    CapacityMismatch {
        /// The journal directory.
        dir: PathBuf,
        /// Capacity recorded in the journal.
        journal: u64,
        /// The replica.
        replica: String,
        /// The replica's capacity.
        capacity: u64,
    },
    /// The replica was opened read-only.
    #[error("replica {replica} is open read-only; the journal must write it")]
    ReadOnly {
        /// The replica.
        replica: String,
    },
    /// Another `Journal` (in this process or another) has the directory open.
    #[error("journal {dir} is in use by another process or another open journal")]
    InUse {
        /// The journal directory.
        dir: PathBuf,
    },
    /// No retained point has this sequence number.
    #[error("journal {dir} has no point {seq} (retained: {retained})")]
    NoSuchPoint {
        /// The journal directory.
        dir: PathBuf,
        /// The point asked for.
        seq: u64,
        /// The retained points, for the message.
        retained: String,
    },
    /// A write outside the disk.
    #[error(
        "write of {len} bytes at offset {offset} runs past the end of the {capacity}-byte replica"
    )]
    OutOfRange {
        /// Offset of the write.
        offset: u64,
        /// Length of the write.
        len: usize,
        /// The replica's capacity.
        capacity: u64,
    },
    /// Point metadata the journal refuses to record.
    #[error("invalid point metadata: {0}")]
    InvalidMeta(String),
    /// A view was read after the replica changed under it.
    #[error(
        "the replica changed since this view of point {seq} was made (a point was written or rolled back); make a new view"
    )]
    StaleView {
        /// The point the view shows.
        seq: u64,
    },
    /// After undoing points, the replica's digest is not the one recorded
    /// for the point it should now hold: the journal or the replica was
    /// changed behind the journal's back.
    #[error(
        "after rolling back to point {seq} the replica's whole-disk digest is {actual}, but the point recorded {recorded}; the replica or the journal was changed outside the journal"
    )]
    DigestMismatch {
        /// The point rolled back to.
        seq: u64,
        /// Its recorded digest (hex).
        recorded: String,
        /// The replica's digest now (hex).
        actual: String,
    },
    /// An earlier failure left the journal in a state only recovery can
    /// settle (an uncommitted point that could not be undone, a log append
    /// whose outcome is unknown).
    #[error("journal {dir} needs recovery after an earlier failure ({reason}); open it again")]
    NeedsRecovery {
        /// The journal directory.
        dir: PathBuf,
        /// The earlier failure.
        reason: String,
    },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Self {
        JournalError::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn damaged(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        JournalError::Damaged {
            path: path.into(),
            what: what.into(),
        }
    }
}
