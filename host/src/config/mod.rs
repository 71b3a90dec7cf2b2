//! The operator's plugin set: `homeward.toml`.
//!
//! The file lists which WASM plugins the host loads, what each is granted and
//! its own configuration. Everything not granted is denied.
//!
//! ```toml
//! # optional runtime section
//! [runtime]
//! cache-dir = "/var/cache/homeward"  # optional; relative paths are relative to this file's directory
//! memory-limit-mib = 256              # default per plugin instance, 1..=4096, default 256
//! call-timeout-ms = 30000             # default wall-clock deadline per call, 1..=3600000, default 30000
//!
//! [plugins.vcenter]                   # the key is the plugin id: [a-z0-9][a-z0-9-]{0,62}
//! path = "plugins/vcenter.wasm"       # required; relative to this file's directory
//! sha256 = "…64 hex digits…"          # optional expected digest of the file
//! version = "^0.1"                    # optional semver requirement on the plugin's version
//! memory-limit-mib = 128              # optional override, same range
//! call-timeout-ms = 5000              # optional override, same range
//! fuel = 1000000000                   # optional, > 0: deterministic instruction budget per call
//!
//! [plugins.vcenter.grants]            # optional; everything denied by default
//! network = ["vc.lab.example:443", "127.0.0.1:8989", "[::1]:443"]  # host:port only
//! dirs = [ { host = "/srv/guests", guest = "/guests", write = false } ]
//! disk-write = true                   # default false
//! # optional, per granted endpoint: its CA (PEM) or its pinned certificate
//! # thumbprint (sha256:… as vCenter shows it, or sha1:…); default: web PKI roots
//! tls = { "vc.lab.example:443" = { ca = "certs/vc-ca.pem" }, "[::1]:443" = { thumbprint = "sha256:AB:CD:…" } }
//!
//! [plugins.vcenter.config]            # strings (integers and booleans are converted to text)
//! datacenter = "DC0"
//!
//! [plugins.vcenter.secrets]
//! password = "inline value"           # allowed, but warned about
//! token = { env = "VC_TOKEN" }        # read from the environment at resolve time
//! key = { file = "/etc/homeward/key" } # read from a file at resolve time, trailing newline trimmed
//! ```
//!
//! Usage: [`load`] or [`parse`] produce a [`Parsed`] with *all* problems as
//! [`Diagnostic`]s (so the operator fixes everything in one go) and a
//! [`PluginSet`] only if there were no errors. [`check_files`] then verifies
//! the plugin files and granted directories on disk. Secrets are resolved
//! late, with [`SecretSource::resolve`], and never printed.
//!
//! Relative paths are resolved against the configuration file's directory,
//! not the working directory, so the same file works however the host is
//! started.

mod diagnostics;
mod files;
mod grants;
mod hostport;
mod parser;
mod secret;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diagnostics::{Diagnostic, Severity, line_col};
pub use files::{check_files, sha256_file};
pub use grants::{DirGrant, Grants};
pub use hostport::{HostPort, HostPortError};
pub use secret::{Secret, SecretError, SecretSource};
pub use tls::{
    CaFileError, Thumbprint, ThumbprintAlgorithm, ThumbprintError, TlsGrant, TlsTrust, read_ca_file,
};

/// A validated plugin set, as read from one configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginSet {
    /// The configuration file this was read from.
    pub source: PathBuf,
    /// Host-wide settings and per-plugin defaults.
    pub runtime: RuntimeSettings,
    /// Plugins in the order they appear in the file.
    pub plugins: Vec<PluginEntry>,
}

/// The `[runtime]` section: host-wide settings and per-plugin defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Where compiled modules are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Default linear-memory limit per plugin instance, in bytes.
    pub memory_limit_bytes: u64,
    /// Default wall-clock deadline per call into a plugin.
    pub call_timeout: Duration,
}

impl Default for RuntimeSettings {
    /// 256 MiB, 30 s, no cache directory.
    fn default() -> Self {
        RuntimeSettings {
            cache_dir: None,
            memory_limit_bytes: 256 * 1024 * 1024,
            call_timeout: Duration::from_secs(30),
        }
    }
}

impl RuntimeSettings {
    /// Memory limit for `plugin`: its override or the runtime default.
    pub fn memory_limit_for(&self, plugin: &PluginEntry) -> u64 {
        plugin.memory_limit_bytes.unwrap_or(self.memory_limit_bytes)
    }

    /// Call deadline for `plugin`: its override or the runtime default.
    pub fn call_timeout_for(&self, plugin: &PluginEntry) -> Duration {
        plugin.call_timeout.unwrap_or(self.call_timeout)
    }
}

/// One `[plugins.ID]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginEntry {
    /// The plugin id (the table key).
    pub id: String,
    /// The `.wasm` file, resolved against the configuration file's directory.
    pub path: PathBuf,
    /// Expected SHA-256 of the file, if pinned.
    pub sha256: Option<[u8; 32]>,
    /// Requirement on the plugin's self-reported version.
    pub version: Option<semver::VersionReq>,
    /// Memory limit override in bytes (see [`RuntimeSettings::memory_limit_for`]).
    pub memory_limit_bytes: Option<u64>,
    /// Call deadline override (see [`RuntimeSettings::call_timeout_for`]).
    pub call_timeout: Option<Duration>,
    /// Instruction budget per call, if metered.
    pub fuel: Option<u64>,
    /// What the plugin may access.
    pub grants: Grants,
    /// Plugin configuration, passed to the plugin as text.
    pub config: BTreeMap<String, String>,
    /// Named secrets, resolved when the plugin is instantiated.
    pub secrets: BTreeMap<String, SecretSource>,
    /// 1-based line of the plugin's `[plugins.ID]` header (or first key).
    pub line: usize,
}

/// Result of [`parse`]: the plugin set if valid, plus every diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// `None` if any diagnostic is an error.
    pub set: Option<PluginSet>,
    /// Errors and warnings, sorted by line (then column).
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and validates a plugin set. `source` is the file the text came
/// from; it names the file in diagnostics and is the base for relative paths.
/// Never touches the filesystem and never panics, whatever the input.
pub fn parse(text: &str, source: &Path) -> Parsed {
    parser::parse(text, source)
}

/// Reads `path` and [`parse`]s it. Only I/O failures (including non-UTF-8
/// content) are `Err`; configuration problems are in [`Parsed::diagnostics`].
pub fn load(path: &Path) -> std::io::Result<Parsed> {
    let text = std::fs::read_to_string(path)?;
    Ok(parse(&text, path))
}
