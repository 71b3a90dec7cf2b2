//! One conformance case: its name, what it needs, and how it ends.
//!
//! A case is a plain function over a [`CaseContext`]. It
//! returns `Ok(())` when the plugin behaved, [`CaseEnd::Fail`] with the
//! assertion that did not hold, or [`CaseEnd::Skip`] with the reason it does
//! not apply (decided at run time, e.g. "the handler claimed none of the
//! suite's images"). What a case needs up front (a capability, a tool, a
//! target) is declared in [`Case::requires`], so the runner can skip it with
//! a reason before it runs, as csi-sanity does.

use super::context::CaseContext;
use crate::plugin::{Failure, PluginError};
use std::fmt;

/// A case body.
pub type CaseFn = fn(&mut CaseContext<'_>) -> Result<(), CaseEnd>;

/// One case of a suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// `<suite>/<what-it-checks>`, stable across releases (CI systems key on it).
    pub name: &'static str,
    /// One line: the behaviour it checks.
    pub summary: &'static str,
    /// Smoke cases are the minimum a freshly scaffolded plugin passes.
    pub smoke: bool,
    /// What the case needs; missing any of them skips it with the reason.
    pub requires: &'static [Requirement],
    /// The body.
    pub run: CaseFn,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// Something a case needs before it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// The plugin declares `disk-write` (a file-system handler that writes).
    DiskWrite,
    /// The plugin declares network access (an adapter with a remote endpoint).
    Network,
    /// An executable on `PATH`, with the package that provides it.
    Tool {
        /// Executable name.
        name: &'static str,
        /// Debian package to install.
        package: &'static str,
    },
}

/// How a case ended, when it did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseEnd {
    /// An assertion did not hold; the message says which and what was seen.
    Fail(String),
    /// The case does not apply; the message says why.
    Skip(String),
}

/// Fails the case with a formatted assertion message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err($crate::conformance::CaseEnd::Fail(format!($($message)+)));
        }
    };
}
pub(crate) use ensure;

/// The kind of error the API lets a plugin return, for cases that expect one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `not-found`
    NotFound,
    /// `permission-denied`
    PermissionDenied,
    /// `unsupported`
    Unsupported,
    /// `invalid-input`
    InvalidInput,
    /// `conflict`
    Conflict,
    /// `unavailable`
    Unavailable,
    /// `internal`
    Internal,
}

impl ErrorKind {
    /// The kind of a plugin's failure.
    pub fn of(failure: &Failure) -> ErrorKind {
        match failure {
            Failure::NotFound(_) => ErrorKind::NotFound,
            Failure::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            Failure::Unsupported(_) => ErrorKind::Unsupported,
            Failure::InvalidInput(_) => ErrorKind::InvalidInput,
            Failure::Conflict(_) => ErrorKind::Conflict,
            Failure::Unavailable { .. } => ErrorKind::Unavailable,
            Failure::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The WIT case name.
    pub fn wit_name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidInput => "invalid-input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The plugin's answer, or a failed case that says which call failed and how.
pub fn expect_ok<T>(what: &str, result: Result<T, PluginError>) -> Result<T, CaseEnd> {
    result.map_err(|e| CaseEnd::Fail(format!("{what}: expected success, got: {e}")))
}

/// The plugin's typed error of one of `kinds`; anything else (success, another
/// kind, a trap or a stopped call) fails the case.
pub fn expect_error<T: fmt::Debug>(
    what: &str,
    result: Result<T, PluginError>,
    kinds: &[ErrorKind],
) -> Result<Failure, CaseEnd> {
    let wanted = kinds
        .iter()
        .map(|k| format!("`{}`", k.wit_name()))
        .collect::<Vec<_>>()
        .join(" or ");
    match result {
        Ok(value) => Err(CaseEnd::Fail(format!(
            "{what}: expected {wanted}, got success: {value:?}"
        ))),
        Err(PluginError::Failed { failure, .. }) if kinds.contains(&ErrorKind::of(&failure)) => {
            Ok(failure)
        }
        Err(PluginError::Failed { failure, .. }) => Err(CaseEnd::Fail(format!(
            "{what}: expected {wanted}, got `{}`: {failure}",
            ErrorKind::of(&failure).wit_name()
        ))),
        Err(other) => Err(CaseEnd::Fail(format!(
            "{what}: expected a typed {wanted} error, but the call was stopped: {other}"
        ))),
    }
}

/// Fails the case unless the call returned a typed error or succeeded: a trap,
/// a deadline or a memory-cap stop on bad input is a bug in the plugin.
pub fn expect_no_trap<T>(what: &str, result: Result<T, PluginError>) -> Result<Option<T>, CaseEnd> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(PluginError::Failed { .. }) => Ok(None),
        Err(other) => Err(CaseEnd::Fail(format!(
            "{what}: the plugin must answer bad input with a typed error, but the call was stopped: {other}"
        ))),
    }
}
