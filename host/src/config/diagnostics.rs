//! Diagnostics: located, human-readable problems found in a plugin-set file.
//!
//! Every problem the parser or [`check_files`](super::check_files) finds is a
//! [`Diagnostic`] carrying a 1-based line/column and the dotted key path, so an
//! operator can fix *all* mistakes in one edit instead of one per restart.

use std::fmt;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The file cannot be used as written; no [`PluginSet`](super::PluginSet) is produced.
    Error,
    /// The file is usable but something is risky or redundant.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in the configuration, with its location.
///
/// Displays as `homeward.toml:12:5: error: plugins.vcenter.sha256: expected 64 hex digits, found 12`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// File name (not the full path) of the configuration file, used as the
    /// prefix when displayed. Kept in the diagnostic so it can be printed on
    /// its own.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Dotted key path, e.g. `plugins.vcenter.grants.network[1]`; empty for
    /// problems that are not tied to a key (TOML syntax errors).
    pub key: String,
    /// What is wrong, and where possible how to fix it. Never contains a secret value.
    pub message: String,
}

impl Diagnostic {
    /// Whether this is an [`Severity::Error`].
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.file, self.line, self.column, self.severity
        )?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Converts a byte offset into `text` to a 1-based `(line, column)` pair.
///
/// The column counts characters, not bytes, because that is what editors
/// show. Offsets past the end are clamped to the end, and offsets inside a
/// multi-byte character are moved back to its start, so this never panics.
pub fn line_col(text: &str, byte_offset: usize) -> (usize, usize) {
    let mut offset = byte_offset.min(text.len());
    while !text.is_char_boundary(offset) {
        // Terminates: offset 0 is always a char boundary.
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Sorts diagnostics by position, keeping the discovery order for ties.
pub(crate) fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line, d.column));
}

/// Suggests the known key closest to `unknown`, if it is plausibly a typo
/// (Levenshtein distance at most 2, or identical once `_` is read as `-`,
/// which catches `memory_limit_mib`-style spellings).
pub(crate) fn suggest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    let dashed = unknown.replace('_', "-");
    if let Some(k) = known.iter().find(|k| **k == dashed) {
        return Some(k);
    }
    known
        .iter()
        .filter_map(|k| edit_distance(unknown, k, 2).map(|d| (d, *k)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance between `a` and `b` if it is `<= max`, else `None`.
fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Cheap reject first: keys in the input can be arbitrarily long.
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}
