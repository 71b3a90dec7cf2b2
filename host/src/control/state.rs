//! The server's state directory (`--state-dir`, default `./homeward-state`):
//!
//! ```text
//!  homeward.db            the state store (SQLite; homeward.db.lock while a server holds it)
//!  tokens/                0700
//!    operator.token       0600, the operator role's token
//!    read-only.token      0600, the read-only role's token
//! ```

use crate::store::Role;
use std::path::{Path, PathBuf};

/// The state directory when none is given.
pub const DEFAULT_STATE_DIR: &str = "homeward-state";

/// Paths inside one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state store file.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("homeward.db")
    }

    /// The directory of the token files.
    pub fn tokens_dir(&self) -> PathBuf {
        self.root.join("tokens")
    }

    /// The token file of a role.
    pub fn token_path(&self, role: Role) -> PathBuf {
        self.tokens_dir().join(format!("{}.token", role.as_str()))
    }
}
