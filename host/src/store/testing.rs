//! For tests only: edits a store file behind the `Store`'s back, to build the
//! damaged or foreign files the store must refuse (a newer schema version, a
//! row with bad JSON). Never called by Homeward itself.

use std::path::Path;

use rusqlite::Connection;

use super::StoreError;
use super::sql::db;

/// Runs SQL statements on the file at `path` directly (the store must not be
/// open, or must tolerate the change).
pub fn execute_sql(path: &Path, sql: &str) -> Result<(), StoreError> {
    let conn = Connection::open(path).map_err(db("opening the file for a test edit"))?;
    conn.execute_batch(sql).map_err(db("running a test edit"))
}

/// Sets `PRAGMA user_version`, e.g. to fake a store from a newer Homeward.
pub fn set_schema_version(path: &Path, version: u32) -> Result<(), StoreError> {
    execute_sql(path, &format!("PRAGMA user_version = {version};"))
}
