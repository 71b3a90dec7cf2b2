//! Small helpers between rusqlite and the store's records: error mapping,
//! integer and JSON conversions, and reading a row into records without a
//! panic on bad data (a damaged row is an `Invalid` error naming table and row).

use std::str::FromStr;

use rusqlite::types::FromSql;
use rusqlite::{ErrorCode, Row};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Maps a SQLite error to `StoreError::Database`, saying what we were doing.
pub(super) fn db(doing: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |error| StoreError::Database {
        doing: doing.to_string(),
        message: error.to_string(),
    }
}

/// Whether the error is a UNIQUE or PRIMARY KEY violation.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => {
            failure.code == ErrorCode::ConstraintViolation
                && (failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
        }
        _ => false,
    }
}

/// A u64 (time, byte count) as SQLite's signed integer.
pub(super) fn int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Invalid(format!("{what} {value} is too large to store")))
}

/// An optional u64 as SQLite's signed integer.
pub(super) fn opt_int(value: Option<u64>, what: &str) -> Result<Option<i64>, StoreError> {
    value.map(|v| int(v, what)).transpose()
}

/// A value as JSON text for a JSON column.
pub(super) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String, StoreError> {
    // serde_json's messages do not quote the value, so no secret can leak.
    serde_json::to_string(value)
        .map_err(|error| StoreError::Invalid(format!("{what} cannot be stored as JSON: {error}")))
}

/// Checks a name the store looks things up by.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() {
        return Err(StoreError::Invalid(format!("a {what} needs a name")));
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "the {what} name {name:?} has leading or trailing spaces or control characters; choose a plain name"
        )));
    }
    Ok(())
}

/// Reads one row's columns by name, turning anything that does not fit
/// (wrong type, bad enum text, bad JSON, negative count) into an error that
/// names the table, the row and the column.
pub(super) struct RowReader<'r, 's> {
    row: &'r Row<'s>,
    table: &'static str,
    row_label: String,
}

impl<'r, 's> RowReader<'r, 's> {
    /// A row labelled by its `id` column.
    pub(super) fn by_id(row: &'r Row<'s>, table: &'static str) -> Result<Self, StoreError> {
        let id: i64 = row.get("id").map_err(|error| StoreError::Database {
            doing: format!("reading table {table}"),
            message: error.to_string(),
        })?;
        Ok(RowReader {
            row,
            table,
            row_label: format!("row {id}"),
        })
    }

    /// A row labelled by the caller (tables without an `id`).
    pub(super) fn labelled(row: &'r Row<'s>, table: &'static str, row_label: String) -> Self {
        RowReader {
            row,
            table,
            row_label,
        }
    }

    fn where_(&self, column: &str) -> String {
        format!("table {}, {}, column {column}", self.table, self.row_label)
    }

    pub(super) fn get<T: FromSql>(&self, column: &str) -> Result<T, StoreError> {
        self.row.get(column).map_err(|error| StoreError::Database {
            doing: format!("reading {}", self.where_(column)),
            message: error.to_string(),
        })
    }

    pub(super) fn u64(&self, column: &str) -> Result<u64, StoreError> {
        let value: i64 = self.get(column)?;
        u64::try_from(value).map_err(|_| {
            StoreError::Invalid(format!("{}: negative value {value}", self.where_(column)))
        })
    }

    pub(super) fn opt_u64(&self, column: &str) -> Result<Option<u64>, StoreError> {
        match self.get::<Option<i64>>(column)? {
            None => Ok(None),
            Some(value) => u64::try_from(value).map(Some).map_err(|_| {
                StoreError::Invalid(format!("{}: negative value {value}", self.where_(column)))
            }),
        }
    }

    pub(super) fn u32(&self, column: &str) -> Result<u32, StoreError> {
        let value: i64 = self.get(column)?;
        u32::try_from(value).map_err(|_| {
            StoreError::Invalid(format!(
                "{}: value {value} out of range",
                self.where_(column)
            ))
        })
    }

    pub(super) fn opt_u32(&self, column: &str) -> Result<Option<u32>, StoreError> {
        match self.get::<Option<i64>>(column)? {
            None => Ok(None),
            Some(value) => u32::try_from(value).map(Some).map_err(|_| {
                StoreError::Invalid(format!(
                    "{}: value {value} out of range",
                    self.where_(column)
                ))
            }),
        }
    }

    pub(super) fn bool(&self, column: &str) -> Result<bool, StoreError> {
        Ok(self.get::<i64>(column)? != 0)
    }

    /// An enum stored as its text.
    pub(super) fn parse<T>(&self, column: &str) -> Result<T, StoreError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text: String = self.get(column)?;
        text.parse()
            .map_err(|error| StoreError::Invalid(format!("{}: {error}", self.where_(column))))
    }

    /// A JSON column.
    pub(super) fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        self.decode(column, &text)
    }

    /// A nullable JSON column.
    pub(super) fn opt_json<T: DeserializeOwned>(
        &self,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get::<Option<String>>(column)? {
            None => Ok(None),
            Some(text) => self.decode(column, &text).map(Some),
        }
    }

    fn decode<T: DeserializeOwned>(&self, column: &str, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|error| {
            // Only the category and position: serde_json's data errors can
            // quote the stored value, which may be a job parameter we must
            // not echo.
            let category = match error.classify() {
                serde_json::error::Category::Io => "unreadable",
                serde_json::error::Category::Syntax => "not valid JSON",
                serde_json::error::Category::Data => "JSON of the wrong shape",
                serde_json::error::Category::Eof => "truncated JSON",
            };
            StoreError::Invalid(format!(
                "{} holds {category} (line {}, column {}); the state store is damaged: restore a backup",
                self.where_(column),
                error.line(),
                error.column()
            ))
        })
    }
}
