//! Online backup and offline restore of the state store.
//!
//! Backup runs while the server works: a separate read-only connection copies
//! every page with SQLite's backup API in one step, i.e. inside one read
//! transaction, so the copy is the consistent state of one moment; in WAL mode
//! writers carry on meanwhile. The copy is switched to a single-file journal
//! mode, synced, then opened again and checked (`PRAGMA integrity_check`,
//! identity, schema) before it is reported.
//!
//! Restore needs the server stopped (it takes the store's lock). It checks the
//! backup the same way, copies it next to the store as `<store>.restoring`,
//! syncs it, removes the old `-wal`/`-shm` files, renames the copy over the
//! store and syncs the directory. The identity in effect afterwards is the
//! backup's.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::lock::{LockError, StoreLock};
use super::records::{BackupInfo, ServerIdentity};
use super::schema::{self, APPLICATION_ID, SCHEMA_VERSION};
use super::{BUSY_TIMEOUT, Store, StoreError, read_identity};

/// Pause between retries when the source is momentarily locked.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

impl Store {
    /// Writes a consistent copy of the store to `dest` (a new file: an
    /// existing one is never overwritten) while the server keeps running,
    /// then checks the copy.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let failed = |reason: String| StoreError::Backup {
            path: dest.to_path_buf(),
            reason,
        };
        // create_new: refuses an existing file atomically, even one that
        // appears between a check and the copy.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|error| match error.kind() {
                io::ErrorKind::AlreadyExists => failed(
                    "the file already exists; Homeward never overwrites a backup: choose a new name \
                     or move the old file away"
                        .to_string(),
                ),
                _ => failed(format!("cannot create the backup file: {error}")),
            })?;
        let result = self.copy_and_check(dest);
        if result.is_err() {
            // Leave no half-written backup that looks usable.
            remove_if_present(dest);
            remove_if_present(&with_suffix(dest, "-journal"));
        }
        result
    }

    fn copy_and_check(&self, dest: &Path) -> Result<BackupInfo, StoreError> {
        let failed = |reason: String| StoreError::Backup {
            path: dest.to_path_buf(),
            reason,
        };
        let source = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| {
            failed(format!(
                "cannot read the state store {}: {error}",
                self.path.display()
            ))
        })?;
        source
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|error| failed(error.to_string()))?;
        copy_database(&source, dest).map_err(|error| failed(format!("copying failed: {error}")))?;
        drop(source);
        sync_file_and_dir(dest)
            .map_err(|error| failed(format!("cannot sync the backup to disk: {error}")))?;

        let copy = open_read_only(dest).map_err(|error| failed(error.to_string()))?;
        let identity = check_store_file(&copy, dest)?;
        drop(copy);
        let bytes = fs::metadata(dest)
            .map_err(|error| failed(format!("cannot read the backup's size: {error}")))?
            .len();
        Ok(BackupInfo {
            path: dest.to_path_buf(),
            bytes,
            server_id: identity.server_id,
            schema_version: identity.schema_version,
        })
    }

    /// Restores `backup` into the store file at `store_path` (the server must be
    /// stopped): checks the backup (integrity, schema not newer), writes it next
    /// to the store, fsyncs, renames over it and removes stale -wal/-shm files.
    /// The server identity is the one in the backup.
    pub fn restore(store_path: &Path, backup: &Path) -> Result<ServerIdentity, StoreError> {
        let store_failed = |reason: String| StoreError::Backup {
            path: store_path.to_path_buf(),
            reason,
        };
        let backup_failed = |reason: String| StoreError::Backup {
            path: backup.to_path_buf(),
            reason,
        };

        if !backup.is_file() {
            return Err(backup_failed("no such backup file".to_string()));
        }
        if let Some(dir) = store_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Restoring onto a fresh machine: the state directory may not exist yet.
            fs::create_dir_all(dir).map_err(|error| {
                store_failed(format!(
                    "cannot create the state directory {}: {error}",
                    dir.display()
                ))
            })?;
        }
        let _lock = StoreLock::acquire(store_path).map_err(|error| match error {
            LockError::InUse => store_failed(
                "the state store is in use by another Homeward process; stop the server \
                 (`homeward serve`) first, then restore"
                    .to_string(),
            ),
            LockError::Io(error) => store_failed(format!("cannot take the store's lock: {error}")),
        })?;

        let source = open_read_only(backup).map_err(|error| backup_failed(error.to_string()))?;
        let identity = check_store_file(&source, backup)?;

        let restoring = with_suffix(store_path, ".restoring");
        remove_if_present(&restoring);
        let written = copy_database(&source, &restoring)
            .map_err(|error| store_failed(format!("cannot write {}: {error}", restoring.display())))
            .and_then(|()| {
                File::open(&restoring)
                    .and_then(|file| file.sync_all())
                    .map_err(|error| {
                        store_failed(format!("cannot sync {}: {error}", restoring.display()))
                    })
            });
        drop(source);
        if let Err(error) = written {
            remove_if_present(&restoring);
            return Err(error);
        }

        // The old WAL and shared-memory files go before the rename: SQLite
        // does not check that a WAL belongs to the database beside it, and
        // would replay the old store's frames into the restored one.
        for suffix in ["-wal", "-shm"] {
            let stale = with_suffix(store_path, suffix);
            match fs::remove_file(&stale) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    remove_if_present(&restoring);
                    return Err(store_failed(format!(
                        "cannot remove {}: {error}",
                        stale.display()
                    )));
                }
            }
        }
        fs::rename(&restoring, store_path).map_err(|error| {
            store_failed(format!(
                "cannot move {} over the store: {error}",
                restoring.display()
            ))
        })?;
        sync_dir_of(store_path)
            .map_err(|error| store_failed(format!("cannot sync the state directory: {error}")))?;
        Ok(identity)
    }
}

/// Copies every page of `source` into a new database at `dest` in one backup
/// step (one read transaction on the source), then makes it a single file.
fn copy_database(source: &Connection, dest: &Path) -> Result<(), rusqlite::Error> {
    let mut target = Connection::open(dest)?;
    {
        let backup = Backup::new(source, &mut target)?;
        // -1: all pages in one step, i.e. one read transaction on the source
        // (rusqlite's run_to_completion only takes positive page counts).
        let mut waited = Duration::ZERO;
        loop {
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => continue,
                // Busy/Locked: a writer holds a lock the copy needs; wait as
                // long as any statement would (the busy timeout).
                _ if waited < BUSY_TIMEOUT => {
                    std::thread::sleep(RETRY_PAUSE);
                    waited += RETRY_PAUSE;
                }
                _ => {
                    return Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the state store stayed locked during the backup".to_string()),
                    ));
                }
            }
        }
    }
    // The copied header says WAL (the store's mode); a backup is one file.
    let _mode: String = target.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
    target.close().map_err(|(_, error)| error)
}

fn open_read_only(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Checks that an open file is a sound Homeward store this code can use and
/// returns its identity. Errors name `path`.
fn check_store_file(conn: &Connection, path: &Path) -> Result<ServerIdentity, StoreError> {
    let failed = |reason: String| StoreError::Backup {
        path: path.to_path_buf(),
        reason,
    };
    let sqlite_failed = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            failed("not a Homeward state store (the file is not an SQLite database)".to_string())
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            failed(format!("the file is damaged ({error}); use another backup"))
        }
        _ => failed(format!("cannot read it: {error}")),
    };
    let application_id = schema::application_id(conn).map_err(sqlite_failed)?;
    let version = schema::user_version(conn).map_err(sqlite_failed)?;
    if application_id != APPLICATION_ID || version == 0 {
        return Err(failed(
            "not a Homeward state store (an SQLite database of another program, or empty)"
                .to_string(),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    let problems = integrity_problems(conn).map_err(sqlite_failed)?;
    if let Some(first) = problems.first() {
        return Err(failed(format!(
            "the file fails SQLite's integrity check ({} problem(s), first: {first}); use another backup",
            problems.len()
        )));
    }
    read_identity(conn)
        .map_err(|error| failed(format!("it has no usable server identity: {error}")))
}

/// What `PRAGMA integrity_check` reports; empty when it says "ok".
fn integrity_problems(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let lines = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines.into_iter().filter(|line| line != "ok").collect())
}

/// `path` with `suffix` appended to its file name (`homeward.db-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_if_present(path: &Path) {
    // Best effort cleanup of our own partial files; the caller reports the
    // error that made the cleanup necessary.
    let _ = fs::remove_file(path);
}

fn sync_file_and_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()?;
    sync_dir_of(path)
}

/// Makes a new or renamed directory entry durable.
fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
