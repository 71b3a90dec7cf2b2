//! The store's schema and its migrations.
//!
//! Each migration is one SQL batch, applied in its own transaction together
//! with the `PRAGMA user_version` it brings the file to, so a crash leaves the
//! file at the old version or the new one, never between. Migrations are only
//! ever appended: a released one is never edited.
//!
//! Conventions: tables are `STRICT`; names the code looks things up by are
//! real (unique) columns; complex parts are JSON text of the serde types in
//! `records.rs`; times are unix milliseconds; enums are their kebab-case text.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;
use super::sql::db;

/// `PRAGMA application_id` of a Homeward state store ("HWRD"): tells our files
/// from other SQLite databases.
pub const APPLICATION_ID: i64 = 0x4857_5244;

/// The schema version this code writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// (version reached, SQL), in order.
pub const MIGRATIONS: &[(u32, &str)] = &[(1, V1)];

const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE sites (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    plugin     TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE components (
    id               INTEGER PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    role             TEXT NOT NULL,
    site             TEXT NOT NULL,
    address          TEXT NOT NULL,
    host_id          TEXT,
    vm_id            TEXT,
    datastore_mounts TEXT NOT NULL,
    state            TEXT NOT NULL,
    detail           TEXT NOT NULL,
    registered_at    INTEGER NOT NULL,
    last_heartbeat   INTEGER
) STRICT;

CREATE TABLE plugin_sets (
    name       TEXT PRIMARY KEY,
    toml       TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE protection_groups (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    direction  TEXT NOT NULL,
    paired_id  INTEGER REFERENCES protection_groups(id),
    settings   TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE protected_items (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    group_id     INTEGER NOT NULL REFERENCES protection_groups(id),
    source       TEXT NOT NULL,
    replica      TEXT,
    physical     INTEGER NOT NULL,
    disks        TEXT NOT NULL,
    nics         TEXT NOT NULL,
    state        TEXT NOT NULL,
    state_detail TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX protected_items_by_group ON protected_items(group_id);

CREATE TABLE recovery_plans (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    entries    TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE recovery_points (
    id             INTEGER PRIMARY KEY,
    item_id        INTEGER NOT NULL REFERENCES protected_items(id),
    taken_at       INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    direction      TEXT NOT NULL,
    consistency_id TEXT,
    disks          TEXT NOT NULL
) STRICT;
CREATE INDEX recovery_points_by_item ON recovery_points(item_id, taken_at);

CREATE TABLE disk_generations (
    item_id     INTEGER NOT NULL REFERENCES protected_items(id),
    disk_index  INTEGER NOT NULL,
    side        TEXT NOT NULL,
    generation  TEXT NOT NULL,
    fingerprint TEXT,
    recorded_at INTEGER NOT NULL,
    PRIMARY KEY (item_id, disk_index, side)
) STRICT;

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    summary          TEXT NOT NULL,
    params           TEXT NOT NULL,
    state            TEXT NOT NULL,
    resources        TEXT NOT NULL,
    parent           INTEGER REFERENCES jobs(id),
    error            TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
) STRICT;
CREATE INDEX jobs_by_state ON jobs(state);

CREATE TABLE job_steps (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    step_index  INTEGER NOT NULL,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    output      TEXT NOT NULL,
    error       TEXT,
    started_at  INTEGER,
    finished_at INTEGER,
    PRIMARY KEY (job_id, step_index)
) STRICT;

CREATE TABLE job_events (
    job_id      INTEGER NOT NULL REFERENCES jobs(id),
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    step        INTEGER,
    message     TEXT NOT NULL,
    done_bytes  INTEGER NOT NULL,
    total_bytes INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) STRICT;

CREATE TABLE api_tokens (
    digest     BLOB PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
"#;

/// The `user_version` of an open file (0 for a new, empty one).
pub fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    // user_version is a signed 32-bit header field; we only ever write
    // small positive values, so anything else reads as "newer than us".
    Ok(u32::try_from(version).unwrap_or(u32::MAX))
}

/// The `application_id` of an open file.
pub fn application_id(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA application_id", [], |row| row.get(0))
}

/// Brings the file to [`SCHEMA_VERSION`], one transaction per migration.
/// Refuses a file written by a newer Homeward.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = user_version(conn).map_err(db("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        let doing = format!("migrating the schema to version {version}");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db(&doing))?;
        tx.execute_batch(sql).map_err(db(&doing))?;
        if version == 1 {
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(db(&doing))?;
        }
        tx.pragma_update(None, "user_version", version)
            .map_err(db(&doing))?;
        tx.commit().map_err(db(&doing))?;
    }
    Ok(())
}
