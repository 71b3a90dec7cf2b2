//! Checks against the filesystem: plugin files exist and match their digest,
//! granted directories exist, CA files of TLS settings hold usable certificates.
//!
//! Kept apart from parsing so `parse` stays pure (testable without files, usable
//! for a "lint" command on another machine) and the host can decide when to
//! touch the disk.
//!
//! Locations: rather than storing spans in [`PluginEntry`](super::PluginEntry)
//! (which would make the public type awkward to build by hand), the caller
//! passes the same text again and we re-parse it to find the line of each
//! `path`, `sha256`, `dirs[i].host` and `tls."host:port".ca` value. If the
//! text does not match (e.g. it changed), diagnostics fall back to the
//! plugin's `line`.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::Path;

use sha2::{Digest, Sha256};
use toml::de::DeTable;

use super::PluginSet;
use super::diagnostics::{self, Diagnostic, Severity, line_col};
use super::hostport::HostPort;
use super::parser::join;
use super::tls::{TlsTrust, read_ca_file};

/// Verifies on disk what `parse` could only check syntactically.
///
/// For each plugin: `path` must be a readable regular file (error at the
/// `path` key) and, if `sha256` is set, the file's digest must match (error at
/// the `sha256` key, showing both digests). Each granted `dirs[i].host` must
/// be an existing directory, and each TLS `ca` a PEM file of usable CA
/// certificates. `text` must be the text `set` was parsed from; it
/// is only used to locate keys. Results are sorted by line.
pub fn check_files(set: &PluginSet, text: &str) -> Vec<Diagnostic> {
    let file = set.source.file_name().map_or_else(
        || set.source.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let root = DeTable::parse(text).ok().map(|r| r.into_inner());
    let mut out = Vec::new();

    for plugin in &set.plugins {
        let kp = join("plugins", &plugin.id);
        let mut report = |segments: &[Seg<'_>], key: String, message: String| {
            let (line, column) = root
                .as_ref()
                .and_then(|r| span_of(r, &plugin.id, segments))
                .map_or((plugin.line, 1), |s| line_col(text, s.start));
            out.push(Diagnostic {
                severity: Severity::Error,
                file: file.clone(),
                line,
                column,
                key,
                message,
            });
        };

        let shown = plugin.path.display();
        match open_regular_file(&plugin.path) {
            Err(e) => report(
                &[Seg::Key("path")],
                join(&kp, "path"),
                format!("cannot read plugin file `{shown}`: {e}"),
            ),
            Ok(f) => {
                if let Some(expected) = plugin.sha256 {
                    match hash_reader(f) {
                        Ok(actual) if actual == expected => {}
                        Ok(actual) => report(
                            &[Seg::Key("sha256")],
                            join(&kp, "sha256"),
                            format!(
                                "digest mismatch for `{shown}`: expected {}, actual {}",
                                hex::encode(expected),
                                hex::encode(actual)
                            ),
                        ),
                        Err(e) => report(
                            &[Seg::Key("path")],
                            join(&kp, "path"),
                            format!("cannot read plugin file `{shown}`: {e}"),
                        ),
                    }
                }
            }
        }

        for (i, dir) in plugin.grants.dirs.iter().enumerate() {
            let segments = [
                Seg::Key("grants"),
                Seg::Key("dirs"),
                Seg::Index(i),
                Seg::Key("host"),
            ];
            let key = format!("{kp}.grants.dirs[{i}].host");
            let shown = dir.host.display();
            match std::fs::metadata(&dir.host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => report(
                    &segments,
                    key,
                    format!("granted directory `{shown}` is not a directory"),
                ),
                Err(e) => report(
                    &segments,
                    key,
                    format!("granted directory `{shown}` is not accessible: {e}"),
                ),
            }
        }

        for tls in &plugin.grants.tls {
            let TlsTrust::Ca(path) = &tls.trust else {
                continue;
            };
            if let Err(e) = read_ca_file(path) {
                let segments = [
                    Seg::Key("grants"),
                    Seg::Key("tls"),
                    Seg::Endpoint(&tls.endpoint),
                    Seg::Key("ca"),
                ];
                let key = join(
                    &join(&format!("{kp}.grants.tls"), &tls.endpoint.to_string()),
                    "ca",
                );
                report(&segments, key, e.to_string());
            }
        }
    }
    diagnostics::sort(&mut out);
    out
}

/// Streams a file through SHA-256.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    hash_reader(File::open(path)?)
}

fn hash_reader(mut reader: impl Read) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    // io::copy streams in fixed-size chunks and retries on EINTR.
    io::copy(&mut reader, &mut hasher)?;
    Ok(hasher.finalize().into())
}

/// Opens `path` and makes sure it is a regular file (opening a directory
/// succeeds on Unix, so check the handle's metadata).
fn open_regular_file(path: &Path) -> io::Result<File> {
    let f = File::open(path)?;
    if f.metadata()?.is_file() {
        Ok(f)
    } else {
        Err(io::Error::other("not a regular file"))
    }
}

/// One step in a key path below `plugins.ID`.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
    /// The key of a table that names this endpoint, however it is spelled.
    Endpoint(&'a HostPort),
}

/// Byte span of the value at `plugins.<id>.<segments...>` in `root`.
fn span_of(root: &DeTable<'_>, id: &str, segments: &[Seg<'_>]) -> Option<Range<usize>> {
    let mut cur = root.get("plugins")?.get_ref().get(id)?;
    for seg in segments {
        cur = match seg {
            Seg::Key(k) => cur.get_ref().get(*k)?,
            Seg::Index(i) => cur.get_ref().get(*i)?,
            Seg::Endpoint(endpoint) => match cur.get_ref() {
                toml::de::DeValue::Table(t) => t
                    .iter()
                    .find(|(k, _)| k.get_ref().parse::<HostPort>().ok().as_ref() == Some(*endpoint))
                    .map(|(_, v)| v)?,
                _ => return None,
            },
        };
    }
    Some(cur.span())
}
