//! The orchestrator's state store: the configuration server's memory (S8).
//!
//! One SQLite file holds everything the control plane knows: the server's
//! identity, sites, process servers and master targets, protection groups and
//! their failback pairs, protected items, recovery plans and points, the
//! split-brain guard's disk generations, jobs with their steps and events, and
//! API token digests.
//!
//! Durability: the file runs in WAL mode with `synchronous=FULL`, so a write
//! (a job step reported done above all) has reached the disk when its method
//! returns, and survives kill -9 and power loss. One process owns a store at a
//! time (`<store>.lock`, see [`Store::is_in_use`]).
//!
//! [`Store`] is `Send + Sync`: one connection behind a mutex; every method
//! takes `&self` and is short, so callers share an `Arc<Store>`. Methods live
//! with their record family: `sites.rs` (sites, components, plugin sets),
//! `groups.rs` (groups, plans), `items.rs` (items, points, generations),
//! `jobs.rs`, `tokens.rs`, `backup.rs` (online backup, restore).

mod backup;
mod groups;
mod items;
mod jobs;
mod lock;
pub mod records;
mod schema;
mod sites;
mod sql;
pub mod testing;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior};

pub use records::*;
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};

use lock::{LockError, StoreLock};
use sql::db;

/// How long a statement waits for a lock held by another connection (the
/// backup's reader, a restore check) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What went wrong in the store. Messages name the thing and the fix, and
/// never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened or created (names the path and the fix).
    #[error("cannot open the state store {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// The file was written by a newer Homeward (found vs supported schema).
    #[error(
        "the state store {} has schema version {found}, but this Homeward supports versions up to {supported}: \
         it was written by a newer Homeward; upgrade Homeward (or restore a backup made by this version)",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// Named thing missing: what ("group", "item"...) and its name or id.
    #[error("{what} {name:?} does not exist")]
    NotFound { what: &'static str, name: String },
    /// A name taken, a state that forbids the change...
    #[error("{0}")]
    Conflict(String),
    /// A value that does not fit (empty name, bad JSON in a column...).
    #[error("{0}")]
    Invalid(String),
    /// SQLite failed (the operation and SQLite's message).
    #[error("state store: {doing} failed: {message}")]
    Database { doing: String, message: String },
    /// Backup or restore failed (the file and why).
    #[error("backup or restore with {}: {reason}", path.display())]
    Backup { path: PathBuf, reason: String },
}

impl StoreError {
    fn not_found(what: &'static str, name: impl ToString) -> StoreError {
        StoreError::NotFound {
            what,
            name: name.to_string(),
        }
    }
}

/// The state store. See the module docs.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    // Held for the store's lifetime; dropping the store releases it.
    _lock: StoreLock,
}

impl Store {
    /// Opens the store at `path`, creating the file and the server identity on
    /// first open, and migrating it to the current schema. Refuses a file in
    /// use by another Homeward process, a file that is not a Homeward state
    /// store, and one written by a newer Homeward.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(open_error(format!(
                "the directory {} does not exist; create it or choose another state directory",
                parent.display()
            )));
        }
        let lock = StoreLock::acquire(path).map_err(|error| match error {
            LockError::InUse => open_error(
                "it is in use by another Homeward process (a running `homeward serve`?); \
                 stop that process or choose another state directory"
                    .to_string(),
            ),
            LockError::Io(error) => open_error(format!(
                "cannot create its lock file {}: {error}; check the directory is writable",
                lock::lock_path(path).display()
            )),
        })?;
        let mut conn = Connection::open(path).map_err(|error| {
            open_error(format!(
                "{error}; check the file and its directory are readable and writable"
            ))
        })?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|error| open_error(error.to_string()))?;
        check_is_homeward_store(&conn).map_err(|failure| match failure {
            FileCheck::NotHomeward(why) => open_error(format!(
                "not a Homeward state store ({why}); move the file away or choose another state directory"
            )),
            FileCheck::Sqlite(error) => open_error(error.to_string()),
        })?;
        let found = schema::user_version(&conn).map_err(|error| open_error(error.to_string()))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(|error| open_error(format!("cannot switch to WAL mode: {error}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_error(format!(
                "SQLite kept journal mode {mode:?} instead of WAL; keep the state directory on a local file system"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .map_err(|error| open_error(format!("cannot set the connection's pragmas: {error}")))?;
        schema::migrate(&mut conn, path)?;
        ensure_identity(&mut conn, path)?;
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            _lock: lock,
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Who this server is (created once, with the store).
    pub fn identity(&self) -> Result<ServerIdentity, StoreError> {
        read_identity(&self.conn())
    }

    /// Whether a Homeward process holds the store at `path` open right now
    /// (the lock `Store::open` takes). `admin restore` checks it first.
    pub fn is_in_use(path: &Path) -> Result<bool, StoreError> {
        lock::is_in_use(path).map_err(|error| StoreError::Open {
            path: path.to_path_buf(),
            reason: format!(
                "cannot check its lock file {}: {error}",
                lock::lock_path(path).display()
            ),
        })
    }

    /// The connection. A panic while it was held cannot leave a transaction
    /// open (rusqlite rolls back on drop), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `body` in one write transaction, committed when it returns Ok.
    fn write<T>(
        &self,
        doing: &str,
        body: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(doing))?;
        let value = body(&tx)?;
        tx.commit().map_err(db(doing))?;
        Ok(value)
    }
}

/// Why a file is not one we can use.
enum FileCheck {
    NotHomeward(&'static str),
    Sqlite(rusqlite::Error),
}

/// Tells a Homeward store (or a new empty file) from anything else: a file
/// that is not SQLite, or an SQLite database of another program.
fn check_is_homeward_store(conn: &Connection) -> Result<(), FileCheck> {
    let classify = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            FileCheck::NotHomeward("the file is not an SQLite database")
        }
        Some(ErrorCode::DatabaseCorrupt) => FileCheck::NotHomeward("the file is damaged"),
        _ => FileCheck::Sqlite(error),
    };
    let application_id = schema::application_id(conn).map_err(classify)?;
    let version = schema::user_version(conn).map_err(classify)?;
    if version == 0 {
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(classify)?;
        if objects > 0 {
            return Err(FileCheck::NotHomeward(
                "an SQLite database of another program",
            ));
        }
    } else if application_id != APPLICATION_ID {
        return Err(FileCheck::NotHomeward(
            "an SQLite database of another program",
        ));
    }
    Ok(())
}

/// Creates the server identity on first open; later opens keep it.
fn ensure_identity(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let doing = "creating the server identity";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(doing))?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'server_id'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(db(doing))?;
    if existing.is_none() {
        let mut bytes = [0u8; 8];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Open {
                path: path.to_path_buf(),
                reason: "the system's random source failed while creating the server identity"
                    .to_string(),
            })?;
        let server_id = format!("hw-{}", hex::encode(bytes));
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('server_id', ?1), ('created_at', ?2)",
            (server_id, now_ms().to_string()),
        )
        .map_err(db(doing))?;
    }
    tx.commit().map_err(db(doing))
}

/// The identity stored in an open file.
fn read_identity(conn: &Connection) -> Result<ServerIdentity, StoreError> {
    let doing = "reading the server identity";
    let value = |key: &str| -> Result<String, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()
        .map_err(db(doing))?
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "the state store has no {key} in table meta; it is damaged: restore a backup"
            ))
        })
    };
    let server_id = value("server_id")?;
    let created_at = value("created_at")?.parse::<u64>().map_err(|_| {
        StoreError::Invalid(
            "table meta, row created_at: not a time; the state store is damaged: restore a backup"
                .to_string(),
        )
    })?;
    let schema_version = schema::user_version(conn).map_err(db(doing))?;
    Ok(ServerIdentity {
        server_id,
        created_at,
        schema_version,
    })
}
