//! Secrets: values that must never be printed.
//!
//! [`Secret`] redacts itself in `Debug` and `Display`, so a secret that ends
//! up in a log line or an error by accident shows `<redacted>`. Secrets are
//! normally referenced (`{ env = … }` / `{ file = … }`) and only read when the
//! host is about to instantiate the plugin ([`SecretSource::resolve`]), which
//! keeps them out of the configuration file and out of memory until needed.

use std::fmt;
use std::path::PathBuf;

/// A secret value. `Debug` and `Display` print `<redacted>`; use
/// [`Secret::expose`] at the single point where the value is handed over.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text. Named so that every use stands out in review.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a plugin secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the file (works, but draws a warning).
    Inline(Secret),
    /// Read from this environment variable at resolve time.
    Env(String),
    /// Read from this file at resolve time, one trailing newline removed.
    /// Relative paths were resolved against the configuration file's directory.
    File(PathBuf),
}

/// Why a secret could not be resolved. Names the variable or path, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable `{name}` is not set")]
    EnvMissing {
        /// Variable name.
        name: String,
    },
    /// The environment variable's value is not UTF-8.
    #[error("environment variable `{name}` is not valid UTF-8")]
    EnvNotUnicode {
        /// Variable name.
        name: String,
    },
    /// The secret file could not be read (or is not UTF-8).
    // The io::Error text is included in the message (it never contains file
    // contents) rather than exposed as `source()`, so it is not printed twice.
    #[error("cannot read secret file `{}`: {error}", path.display())]
    FileUnreadable {
        /// The file that was tried.
        path: PathBuf,
        /// The underlying I/O error.
        error: std::io::Error,
    },
}

impl SecretSource {
    /// Produces the secret value now.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) => Ok(Secret(v)),
                Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::EnvMissing { name: name.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode { name: name.clone() })
                }
            },
            SecretSource::File(path) => match std::fs::read_to_string(path) {
                Ok(mut v) => {
                    // Files written by `echo` or editors end in a newline that
                    // is not part of the secret.
                    if v.ends_with('\n') {
                        v.pop();
                        if v.ends_with('\r') {
                            v.pop();
                        }
                    }
                    Ok(Secret(v))
                }
                Err(error) => Err(SecretError::FileUnreadable {
                    path: path.clone(),
                    error,
                }),
            },
        }
    }
}
