//! Turning TOML text into a [`PluginSet`], collecting every problem.
//!
//! We parse with `toml::de::DeTable`, which keeps a byte span for every key
//! and value, and validate by hand instead of via `serde::Deserialize`:
//! serde stops at the first error and loses positions, whereas an operator
//! wants all mistakes, each with its line, in one run.

use std::collections::BTreeMap;
use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::diagnostics::{self, Diagnostic, Severity, line_col};
use super::grants::{DirGrant, Grants};
use super::hostport::HostPort;
use super::secret::{Secret, SecretSource};
use super::tls::{Thumbprint, ThumbprintAlgorithm, TlsGrant, TlsTrust};
use super::{Parsed, PluginEntry, PluginSet, RuntimeSettings};

type SKey<'i> = Spanned<DeString<'i>>;
type SValue<'i> = Spanned<DeValue<'i>>;

// Known keys per table, used both for validation and "did you mean" hints.
const TOP_KEYS: &[&str] = &["runtime", "plugins"];
const RUNTIME_KEYS: &[&str] = &["cache-dir", "memory-limit-mib", "call-timeout-ms"];
const PLUGIN_KEYS: &[&str] = &[
    "path",
    "sha256",
    "version",
    "memory-limit-mib",
    "call-timeout-ms",
    "fuel",
    "grants",
    "config",
    "secrets",
];
const GRANT_KEYS: &[&str] = &["network", "dirs", "disk-write", "tls"];
const TLS_KEYS: &[&str] = &["ca", "thumbprint"];
const DIR_KEYS: &[&str] = &["host", "guest", "write"];
const SECRET_KEYS: &[&str] = &["env", "file"];

const MIB: u64 = 1024 * 1024;
/// Allowed `memory-limit-mib`: at most 4 GiB, the wasm32 address-space limit.
const MEMORY_MIB: RangeInclusive<i64> = 1..=4096;
/// Allowed `call-timeout-ms`: up to one hour.
const TIMEOUT_MS: RangeInclusive<i64> = 1..=3_600_000;

/// Parses `text` (the contents of `source`); see [`super::parse`].
pub(crate) fn parse(text: &str, source: &Path) -> Parsed {
    let mut p = Parser {
        text,
        file: source.file_name().map_or_else(
            || source.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        ),
        base_dir: source.parent().map(Path::to_path_buf).unwrap_or_default(),
        diagnostics: Vec::new(),
    };

    let root = match DeTable::parse(text) {
        Ok(root) => root.into_inner(),
        Err(e) => {
            // Without a tree nothing else can be checked reliably, so this
            // is the only diagnostic. Only the message is used, never the
            // rendered snippet, which could quote a secret on that line.
            let offset = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().replace('\n', "; ");
            p.push(
                Severity::Error,
                offset..offset,
                String::new(),
                format!("invalid TOML: {message}"),
            );
            return p.finish(None);
        }
    };

    let mut runtime = RuntimeSettings::default();
    let mut plugins = Vec::new();
    let mut saw_plugins = false;
    for (key, value) in in_file_order(&root) {
        match key.get_ref().as_ref() {
            "runtime" => {
                if let Some(t) = p.table(value, "runtime") {
                    runtime = p.runtime(t);
                }
            }
            "plugins" => {
                saw_plugins = true;
                if let Some(t) = p.table(value, "plugins") {
                    plugins = p.plugins(key, t);
                }
            }
            _ => p.unknown_key("", key, TOP_KEYS),
        }
    }
    if !saw_plugins {
        p.error(
            0..0,
            "plugins".into(),
            "no plugins configured: add a [plugins.ID] table".into(),
        );
    }

    p.finish(Some(PluginSet {
        source: source.to_path_buf(),
        runtime,
        plugins,
    }))
}

/// Table entries sorted by where their key appears (the map itself is
/// sorted by name), so plugins keep file order.
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a SKey<'i>, &'a SValue<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// Appends `key` to a dotted key path, quoting it when it is not a bare key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let seg = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        seg
    } else {
        format!("{parent}.{seg}")
    }
}

/// `[a-z0-9][a-z0-9-]{0,62}`: safe as a file name, log field and URL segment.
fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

struct Parser<'t> {
    text: &'t str,
    file: String,
    /// Directory of the configuration file; relative paths are joined to it.
    base_dir: PathBuf,
    diagnostics: Vec<Diagnostic>,
}

impl Parser<'_> {
    fn finish(mut self, set: Option<PluginSet>) -> Parsed {
        diagnostics::sort(&mut self.diagnostics);
        let ok = !self.diagnostics.iter().any(Diagnostic::is_error);
        Parsed {
            set: set.filter(|_| ok),
            diagnostics: self.diagnostics,
        }
    }

    fn push(&mut self, severity: Severity, span: Range<usize>, key: String, message: String) {
        let (line, column) = line_col(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line,
            column,
            key,
            message,
        });
    }

    fn error(&mut self, span: Range<usize>, key: String, message: String) {
        self.push(Severity::Error, span, key, message);
    }

    fn warning(&mut self, span: Range<usize>, key: String, message: String) {
        self.push(Severity::Warning, span, key, message);
    }

    fn unknown_key(&mut self, parent: &str, key: &SKey<'_>, known: &[&str]) {
        let name = key.get_ref().as_ref();
        let hint = match diagnostics::suggest(name, known) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("expected one of: {}", known.join(", ")),
        };
        self.error(
            key.span(),
            join(parent, name),
            format!("unknown key `{}`; {hint}", name.escape_debug()),
        );
    }

    fn type_error(&mut self, v: &SValue<'_>, key: &str, expected: &str) {
        self.error(
            v.span(),
            key.to_owned(),
            format!("expected {expected}, found {}", v.get_ref().type_str()),
        );
    }

    // ---- typed accessors: report a type error and return None on mismatch ----

    fn table<'a, 'i>(&mut self, v: &'a SValue<'i>, key: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error(v, key, "a table");
                None
            }
        }
    }

    fn str<'a>(&mut self, v: &'a SValue<'_>, key: &str) -> Option<&'a str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s),
            _ => {
                self.type_error(v, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, v: &SValue<'_>, key: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(v, key, "a boolean (true or false)");
                None
            }
        }
    }

    fn int(&mut self, v: &SValue<'_>, key: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.error(v.span(), key.to_owned(), "integer out of range".into());
                    None
                }
            },
            _ => {
                self.type_error(v, key, "an integer");
                None
            }
        }
    }

    fn int_in(&mut self, v: &SValue<'_>, key: &str, range: RangeInclusive<i64>) -> Option<u64> {
        let n = self.int(v, key)?;
        if range.contains(&n) {
            u64::try_from(n).ok()
        } else {
            self.error(
                v.span(),
                key.to_owned(),
                format!(
                    "must be between {} and {}, found {n}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }

    /// A non-empty path string, resolved against the config file's directory.
    fn path(&mut self, v: &SValue<'_>, key: &str) -> Option<PathBuf> {
        let s = self.str(v, key)?;
        if s.is_empty() {
            self.error(v.span(), key.to_owned(), "path must not be empty".into());
            return None;
        }
        if s.contains('\0') {
            self.error(v.span(), key.to_owned(), "path must not contain NUL".into());
            return None;
        }
        let p = Path::new(s);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        })
    }

    // ---- sections ----

    fn runtime(&mut self, t: &DeTable<'_>) -> RuntimeSettings {
        let mut rt = RuntimeSettings::default();
        for (k, v) in in_file_order(t) {
            let key = join("runtime", k.get_ref());
            match k.get_ref().as_ref() {
                "cache-dir" => rt.cache_dir = self.path(v, &key).or(rt.cache_dir),
                "memory-limit-mib" => {
                    if let Some(m) = self.int_in(v, &key, MEMORY_MIB) {
                        rt.memory_limit_bytes = m * MIB;
                    }
                }
                "call-timeout-ms" => {
                    if let Some(ms) = self.int_in(v, &key, TIMEOUT_MS) {
                        rt.call_timeout = Duration::from_millis(ms);
                    }
                }
                _ => self.unknown_key("runtime", k, RUNTIME_KEYS),
            }
        }
        rt
    }

    fn plugins(&mut self, key: &SKey<'_>, t: &DeTable<'_>) -> Vec<PluginEntry> {
        if t.is_empty() {
            self.error(
                key.span(),
                "plugins".into(),
                "no plugins configured: add a [plugins.ID] table".into(),
            );
        }
        in_file_order(t)
            .into_iter()
            .filter_map(|(id, v)| self.plugin(id, v))
            .collect()
    }

    fn plugin(&mut self, id_key: &SKey<'_>, v: &SValue<'_>) -> Option<PluginEntry> {
        let id = id_key.get_ref().as_ref();
        let kp = join("plugins", id);
        if !valid_id(id) {
            self.error(
                id_key.span(),
                kp.clone(),
                "invalid plugin id: use 1 to 63 characters from a-z, 0-9 and `-`, \
                 not starting with `-`"
                    .into(),
            );
        }
        let t = self.table(v, &kp)?;
        let mut entry = PluginEntry {
            id: id.to_owned(),
            path: PathBuf::new(),
            sha256: None,
            version: None,
            memory_limit_bytes: None,
            call_timeout: None,
            fuel: None,
            grants: Grants::default(),
            config: BTreeMap::new(),
            secrets: BTreeMap::new(),
            line: line_col(self.text, id_key.span().start).0,
        };
        let mut has_path = false;
        for (k, v) in in_file_order(t) {
            let key = join(&kp, k.get_ref());
            match k.get_ref().as_ref() {
                "path" => {
                    has_path = true;
                    if let Some(p) = self.path(v, &key) {
                        entry.path = p;
                    }
                }
                "sha256" => entry.sha256 = self.sha256(v, &key),
                "version" => entry.version = self.version(v, &key),
                "memory-limit-mib" => {
                    entry.memory_limit_bytes = self.int_in(v, &key, MEMORY_MIB).map(|m| m * MIB);
                }
                "call-timeout-ms" => {
                    entry.call_timeout =
                        self.int_in(v, &key, TIMEOUT_MS).map(Duration::from_millis);
                }
                "fuel" => entry.fuel = self.fuel(v, &key),
                "grants" => {
                    if let Some(t) = self.table(v, &key) {
                        entry.grants = self.grants(t, &key);
                    }
                }
                "config" => {
                    if let Some(t) = self.table(v, &key) {
                        entry.config = self.config(t, &key);
                    }
                }
                "secrets" => {
                    if let Some(t) = self.table(v, &key) {
                        entry.secrets = self.secrets(t, &key);
                    }
                }
                _ => self.unknown_key(&kp, k, PLUGIN_KEYS),
            }
        }
        if !has_path {
            self.error(
                id_key.span(),
                join(&kp, "path"),
                "missing required key `path` (the plugin's .wasm file)".into(),
            );
        }
        Some(entry)
    }

    fn sha256(&mut self, v: &SValue<'_>, key: &str) -> Option<[u8; 32]> {
        let s = self.str(v, key)?;
        let mut digest = [0u8; 32];
        let problem = if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
            format!(
                "expected 64 hex digits, found non-hex character `{}`",
                c.escape_debug()
            )
        } else if s.len() != 64 {
            format!("expected 64 hex digits, found {}", s.len())
        } else if hex::decode_to_slice(s, &mut digest).is_err() {
            // Unreachable after the checks above; kept so no input can panic.
            "expected 64 hex digits".to_owned()
        } else {
            return Some(digest);
        };
        self.error(v.span(), key.to_owned(), problem);
        None
    }

    fn version(&mut self, v: &SValue<'_>, key: &str) -> Option<semver::VersionReq> {
        let s = self.str(v, key)?;
        match semver::VersionReq::parse(s) {
            Ok(req) => Some(req),
            Err(e) => {
                self.error(
                    v.span(),
                    key.to_owned(),
                    format!("invalid version requirement `{}`: {e}", s.escape_debug()),
                );
                None
            }
        }
    }

    fn fuel(&mut self, v: &SValue<'_>, key: &str) -> Option<u64> {
        let n = self.int(v, key)?;
        match u64::try_from(n) {
            Ok(f) if f > 0 => Some(f),
            _ => {
                self.error(
                    v.span(),
                    key.to_owned(),
                    format!("must be greater than 0, found {n}"),
                );
                None
            }
        }
    }

    fn grants(&mut self, t: &DeTable<'_>, kp: &str) -> Grants {
        let mut grants = Grants::default();
        let mut tls = Vec::new();
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            match k.get_ref().as_ref() {
                "network" => {
                    if let Some(items) = self.array(v, &key) {
                        grants.network = self.network(items, &key);
                    }
                }
                "dirs" => {
                    if let Some(items) = self.array(v, &key) {
                        grants.dirs = self.dirs(items, &key);
                    }
                }
                "disk-write" => grants.disk_write = self.bool(v, &key).unwrap_or(false),
                "tls" => {
                    if let Some(t) = self.table(v, &key) {
                        tls = self.tls_grants(t, &key);
                    }
                }
                _ => self.unknown_key(kp, k, GRANT_KEYS),
            }
        }
        // Trust is a property of a reachable endpoint; one that is not
        // granted is a slip (a typo in either list), not a harmless extra.
        for (grant, span, key) in tls {
            if grants.network.contains(&grant.endpoint) {
                grants.tls.push(grant);
            } else {
                let endpoint = grant.endpoint;
                let message = format!(
                    "TLS setting for {endpoint}, which is not granted: add \"{endpoint}\" to \
                     grants.network, or correct the host:port"
                );
                self.error(span, key, message);
            }
        }
        grants
    }

    /// `tls = { "host:port" = { ca = "PATH" } | { thumbprint = "sha256:…" } }`,
    /// with the span and key path of each entry (to report ungranted ones).
    fn tls_grants(&mut self, t: &DeTable<'_>, kp: &str) -> Vec<(TlsGrant, Range<usize>, String)> {
        let mut out: Vec<(TlsGrant, Range<usize>, String)> = Vec::new();
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            let endpoint = match k.get_ref().parse::<HostPort>() {
                Ok(hp) => hp,
                Err(e) => {
                    self.error(k.span(), key, e.to_string());
                    continue;
                }
            };
            let Some(entry) = self.table(v, &key) else {
                continue;
            };
            let Some(trust) = self.tls_trust(v.span(), entry, &key) else {
                continue;
            };
            if let Some((_, _, first)) = out.iter().find(|(g, _, _)| g.endpoint == endpoint) {
                let message = format!("{endpoint} already has a TLS setting at {first}");
                self.error(k.span(), key, message);
                continue;
            }
            out.push((TlsGrant { endpoint, trust }, k.span(), key));
        }
        out
    }

    /// `{ ca = "PATH" }` or `{ thumbprint = "…" }`: exactly one.
    fn tls_trust(&mut self, span: Range<usize>, t: &DeTable<'_>, kp: &str) -> Option<TlsTrust> {
        let mut found: Vec<Option<TlsTrust>> = Vec::new();
        let mut unknown = false;
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            match k.get_ref().as_ref() {
                "ca" => found.push(self.path(v, &key).map(TlsTrust::Ca)),
                "thumbprint" => found.push(self.thumbprint(v, &key).map(TlsTrust::Thumbprint)),
                _ => {
                    unknown = true;
                    self.unknown_key(kp, k, TLS_KEYS);
                }
            }
        }
        match found.len() {
            1 => found.pop().flatten(),
            0 => {
                if !unknown {
                    let message = "expected { ca = \"PEM file\" } or \
                                   { thumbprint = \"sha256:AB:CD:…\" }"
                        .to_owned();
                    self.error(span, kp.to_owned(), message);
                }
                None
            }
            _ => {
                let message = "use either `ca` or `thumbprint`, not both".to_owned();
                self.error(span, kp.to_owned(), message);
                None
            }
        }
    }

    fn thumbprint(&mut self, v: &SValue<'_>, key: &str) -> Option<Thumbprint> {
        let s = self.str(v, key)?;
        match s.parse::<Thumbprint>() {
            Ok(t) => {
                if t.algorithm() == ThumbprintAlgorithm::Sha1 {
                    self.warning(
                        v.span(),
                        key.to_owned(),
                        "SHA-1 thumbprint: accepted, but prefer the SHA-256 thumbprint \
                         (vCenter shows both)"
                            .into(),
                    );
                }
                Some(t)
            }
            Err(e) => {
                self.error(v.span(), key.to_owned(), e.to_string());
                None
            }
        }
    }

    fn array<'a, 'i>(&mut self, v: &'a SValue<'i>, key: &str) -> Option<&'a [SValue<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.type_error(v, key, "an array");
                None
            }
        }
    }

    fn network(&mut self, items: &[SValue<'_>], kp: &str) -> Vec<HostPort> {
        // (normalised entry, index it was first seen at)
        let mut seen: Vec<(HostPort, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{kp}[{i}]");
            let Some(s) = self.str(item, &key) else {
                continue;
            };
            match s.parse::<HostPort>() {
                Ok(hp) => {
                    if let Some((_, first)) = seen.iter().find(|(h, _)| *h == hp) {
                        // Harmless but usually a copy-paste slip; keep one.
                        let message = format!("duplicate network grant `{hp}` (same as [{first}])");
                        self.warning(item.span(), key, message);
                    } else {
                        seen.push((hp, i));
                    }
                }
                Err(e) => self.error(item.span(), key, e.to_string()),
            }
        }
        seen.into_iter().map(|(hp, _)| hp).collect()
    }

    fn dirs(&mut self, items: &[SValue<'_>], kp: &str) -> Vec<DirGrant> {
        let mut dirs: Vec<(DirGrant, usize)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{kp}[{i}]");
            let Some(t) = self.table(item, &key) else {
                continue;
            };
            let Some(grant) = self.dir(item.span(), t, &key) else {
                continue;
            };
            if let Some((_, first)) = dirs.iter().find(|(d, _)| d.guest == grant.guest) {
                // Two host directories cannot both be mounted at one guest path.
                let message = format!(
                    "guest path `{}` is already mapped by [{first}]",
                    grant.guest.escape_debug()
                );
                self.error(item.span(), join(&key, "guest"), message);
                continue;
            }
            dirs.push((grant, i));
        }
        dirs.into_iter().map(|(d, _)| d).collect()
    }

    fn dir(&mut self, span: Range<usize>, t: &DeTable<'_>, kp: &str) -> Option<DirGrant> {
        let (mut host, mut guest, mut write) = (None, None, false);
        let (mut saw_host, mut saw_guest) = (false, false);
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            match k.get_ref().as_ref() {
                "host" => {
                    saw_host = true;
                    host = self.path(v, &key);
                }
                "guest" => {
                    saw_guest = true;
                    guest = self.guest_path(v, &key);
                }
                "write" => write = self.bool(v, &key).unwrap_or(false),
                _ => self.unknown_key(kp, k, DIR_KEYS),
            }
        }
        for (saw, name, what) in [
            (saw_host, "host", "the directory on this machine"),
            (
                saw_guest,
                "guest",
                "where the plugin sees it, e.g. \"/data\"",
            ),
        ] {
            if !saw {
                self.error(
                    span.clone(),
                    join(kp, name),
                    format!("missing required key `{name}` ({what})"),
                );
            }
        }
        Some(DirGrant {
            host: host?,
            guest: guest?,
            write,
        })
    }

    fn guest_path(&mut self, v: &SValue<'_>, key: &str) -> Option<String> {
        let s = self.str(v, key)?;
        let problem = if !s.starts_with('/') {
            "guest path must be absolute (start with `/`)"
        } else if Path::new(s).components().any(|c| c == Component::ParentDir) {
            "guest path must not contain `..`"
        } else if s.contains('\0') {
            "guest path must not contain NUL"
        } else {
            return Some(s.to_owned());
        };
        self.error(
            v.span(),
            key.to_owned(),
            format!("{problem}, found `{}`", s.escape_debug()),
        );
        None
    }

    fn config(&mut self, t: &DeTable<'_>, kp: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            // Plugins receive config as text; integers and booleans are
            // accepted for convenience and passed on in their TOML spelling.
            let text = match v.get_ref() {
                DeValue::String(s) => Some(s.to_string()),
                DeValue::Boolean(b) => Some(b.to_string()),
                DeValue::Integer(_) => self.int(v, &key).map(|n| n.to_string()),
                other => {
                    let message = format!(
                        "config values must be strings, integers or booleans, found {}",
                        other.type_str()
                    );
                    self.error(v.span(), key, message);
                    None
                }
            };
            if let Some(text) = text {
                out.insert(k.get_ref().to_string(), text);
            }
        }
        out
    }

    fn secrets(&mut self, t: &DeTable<'_>, kp: &str) -> BTreeMap<String, SecretSource> {
        let mut out = BTreeMap::new();
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            // Messages here name types and keys only, never the value.
            let source = match v.get_ref() {
                DeValue::String(s) => {
                    self.warning(
                        v.span(),
                        key,
                        "inline secret in the configuration file; prefer \
                         `{ env = \"VAR\" }` or `{ file = \"PATH\" }`"
                            .into(),
                    );
                    Some(SecretSource::Inline(Secret::new(s.as_ref())))
                }
                DeValue::Table(t) => self.secret_ref(v.span(), t, &key),
                other => {
                    let message = format!(
                        "expected a string, {{ env = \"VAR\" }} or {{ file = \"PATH\" }}, found {}",
                        other.type_str()
                    );
                    self.error(v.span(), key, message);
                    None
                }
            };
            if let Some(source) = source {
                out.insert(k.get_ref().to_string(), source);
            }
        }
        out
    }

    /// `{ env = "VAR" }` or `{ file = "PATH" }`.
    fn secret_ref(
        &mut self,
        span: Range<usize>,
        t: &DeTable<'_>,
        kp: &str,
    ) -> Option<SecretSource> {
        let mut found: Vec<Option<SecretSource>> = Vec::new();
        let mut unknown = false;
        for (k, v) in in_file_order(t) {
            let key = join(kp, k.get_ref());
            match k.get_ref().as_ref() {
                "env" => found.push(self.env_name(v, &key).map(SecretSource::Env)),
                "file" => found.push(self.path(v, &key).map(SecretSource::File)),
                _ => {
                    unknown = true;
                    self.unknown_key(kp, k, SECRET_KEYS);
                }
            }
        }
        match found.len() {
            1 => found.pop().flatten(),
            0 => {
                if !unknown {
                    let message = "expected { env = \"VAR\" } or { file = \"PATH\" }".to_owned();
                    self.error(span, kp.to_owned(), message);
                }
                None
            }
            _ => {
                let message = "use either `env` or `file`, not both".to_owned();
                self.error(span, kp.to_owned(), message);
                None
            }
        }
    }

    fn env_name(&mut self, v: &SValue<'_>, key: &str) -> Option<String> {
        let s = self.str(v, key)?;
        if s.is_empty() || s.contains(['=', '\0']) {
            self.error(
                v.span(),
                key.to_owned(),
                "environment variable name must be non-empty and contain no `=` or NUL".into(),
            );
            return None;
        }
        Some(s.to_owned())
    }
}
