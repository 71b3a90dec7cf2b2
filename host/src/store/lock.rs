//! One process per store file: an exclusive `flock` on `<store>.lock`, held
//! by an open `Store` and by a restore. SQLite itself would let two servers
//! share the file, but two schedulers would both resume the same jobs, and a
//! restore under a running server would be overwritten by it.
//!
//! The lock is advisory and dies with its process (kill -9 included), so a
//! crashed server never leaves a stale lock behind.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// `<store>.lock`, next to the store file.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(OsString::from).unwrap_or_default();
    name.push(".lock");
    store.with_file_name(name)
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another open file description (another process, or another `Store`
    /// in this one) holds it.
    InUse,
    Io(io::Error),
}

/// The held lock; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock without waiting.
    pub fn acquire(store: &Path) -> Result<StoreLock, LockError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(store))
            .map_err(LockError::Io)?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::InUse),
            Err(TryLockError::Error(error)) => Err(LockError::Io(error)),
        }
    }
}

/// Whether some process holds the lock of `store` right now.
pub fn is_in_use(store: &Path) -> io::Result<bool> {
    let file = match File::open(lock_path(store)) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    match file.try_lock() {
        // Dropping the file releases the lock we just took.
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(error)) => Err(error),
    }
}
