//! Guest file trees: what guest post-steps read through the `guest-fs` resource.
//!
//! A [`GuestTree`] answers path questions about one guest's root file system.
//! The host serves it from a directory (fixture guests, conformance runs: see
//! [`DirTree`]) or, with the file-system handlers, from the guest's disks. Every
//! implementation confines paths to the guest root: `..` stops at `/`, and
//! absolute symlinks resolve against the guest root, never the host's.

mod dir_tree;

pub use dir_tree::DirTree;

/// Largest file `read_file` returns: guest configuration files are small, and a
/// bound keeps a hostile guest from exhausting the host.
pub const MAX_READ: u64 = 64 * 1024 * 1024;

/// The kind of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Device, FIFO or socket.
    Other,
}

/// Metadata of one file, as `lstat` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Kind.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o7777` mask).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Last modification, milliseconds since the epoch.
    pub modified_ms: u64,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: FileKind,
}

/// Why a guest path could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestFsError {
    /// No such file.
    #[error("{0}: no such file in the guest")]
    NotFound(String),
    /// The path is not absolute or not UTF-8-clean.
    #[error("{path}: {reason}")]
    InvalidPath {
        /// The path.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Wrong kind of file for the operation.
    #[error("{path}: is not a {expected}")]
    WrongKind {
        /// The path.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Too large to read whole.
    #[error("{path}: {size} bytes is more than the {MAX_READ}-byte limit of read-file")]
    TooLarge {
        /// The path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The backend cannot do this here (a file-system handler that cannot
    /// write this volume or this structure): the operator must do it by hand.
    #[error("{path}: unsupported: {reason}")]
    Unsupported {
        /// The path.
        path: String,
        /// What the backend said.
        reason: String,
    },
    /// Too many symlinks (a loop).
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    /// Anything else the backend reported.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// What happened.
        reason: String,
    },
}

/// One guest's root file system, read-only.
pub trait GuestTree: Send + Sync {
    /// Metadata of `path`; a final symlink is not followed.
    fn stat(&self, path: &str) -> Result<FileStat, GuestFsError>;

    /// Entries of a directory, sorted by name, without `.` and `..`.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, GuestFsError>;

    /// The content of a regular file, symlinks followed inside the root.
    fn read_file(&self, path: &str) -> Result<Vec<u8>, GuestFsError>;

    /// The target of a symlink, as stored.
    fn read_link(&self, path: &str) -> Result<String, GuestFsError>;

    /// Whether `path` exists, symlinks followed inside the root.
    fn exists(&self, path: &str) -> bool;

    /// What this tree is, for messages.
    fn describe(&self) -> String;
}

/// What a planned change does (the host-side form of a guest step's plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Create a regular file that does not exist.
    CreateFile,
    /// Replace an existing regular file.
    ReplaceFile,
    /// Remove a file or symlink.
    Remove,
    /// Create a directory.
    CreateDir,
    /// Create a symlink whose target is `content`.
    CreateSymlink,
}

/// One planned change to a guest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedChange {
    /// Absolute guest path.
    pub path: String,
    /// What to do.
    pub kind: ChangeKind,
    /// New content, or the symlink target.
    pub content: Vec<u8>,
    /// Permission bits for what is created.
    pub mode: u32,
}
