//! API tokens: only their SHA-256 digests are stored, so a stolen store file
//! or backup gives no working token. The token itself lives only in the file
//! handed to the operator.

use rusqlite::OptionalExtension;

use super::records::Role;
use super::sql::{RowReader, check_name, db, int};
use super::{Store, StoreError, now_ms};

impl Store {
    /// Records the digest of token `name` with its role. A name that already
    /// has a token gets the new one instead (rotation: the old one stops
    /// working). The same digest under two names is a Conflict.
    pub fn add_token(&self, name: &str, role: Role, digest: &[u8; 32]) -> Result<(), StoreError> {
        check_name("token", name)?;
        let now = int(now_ms(), "time")?;
        let doing = "recording an API token";
        self.write(doing, |tx| {
            let holder: Option<String> = tx
                .query_row(
                    "SELECT name FROM api_tokens WHERE digest = ?1",
                    [&digest[..]],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db(doing))?;
            if let Some(holder) = holder
                && holder != name
            {
                return Err(StoreError::Conflict(format!(
                    "that token is already recorded as {holder:?}; create a new token for {name:?}"
                )));
            }
            tx.execute(
                "INSERT INTO api_tokens (digest, name, role, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, role = excluded.role, \
                 created_at = excluded.created_at",
                (&digest[..], name, role.as_str(), now),
            )
            .map_err(db(doing))?;
            Ok(())
        })
    }

    /// The name and role of the token with this digest, if it is known.
    pub fn token_role(&self, digest: &[u8; 32]) -> Result<Option<(String, Role)>, StoreError> {
        let conn = self.conn();
        let doing = "looking up an API token";
        let mut stmt = conn
            .prepare_cached("SELECT rowid AS id, name, role FROM api_tokens WHERE digest = ?1")
            .map_err(db(doing))?;
        let mut rows = stmt.query([&digest[..]]).map_err(db(doing))?;
        let Some(row) = rows.next().map_err(db(doing))? else {
            return Ok(None);
        };
        let r = RowReader::by_id(row, "api_tokens")?;
        Ok(Some((r.get("name")?, r.parse("role")?)))
    }
}
