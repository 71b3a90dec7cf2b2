//! Capability grants: what a plugin may reach outside its sandbox.
//!
//! Everything is denied by default ([`Grants::default`]); the operator opts in
//! per plugin, so a plugin set file is also an audit record of exposure.

use std::path::PathBuf;

use super::hostport::HostPort;
use super::tls::TlsGrant;

/// What one plugin is allowed to access. `Default` grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Hosts the plugin may open connections to, normalised and de-duplicated,
    /// in file order.
    pub network: Vec<HostPort>,
    /// Host directories mapped into the plugin's filesystem view.
    pub dirs: Vec<DirGrant>,
    /// Whether the plugin may write through the `disk` resource (file-system
    /// handlers changing a guest disk).
    pub disk_write: bool,
    /// How the certificates of granted endpoints are checked, for those the
    /// operator names; the others are checked against the web PKI roots.
    /// Each endpoint is also in `network`.
    pub tls: Vec<TlsGrant>,
}

/// A host directory exposed to the plugin at a guest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Host directory; relative paths in the file are resolved against the
    /// configuration file's directory.
    pub host: PathBuf,
    /// Absolute path under which the plugin sees the directory, e.g. `/guests`.
    pub guest: String,
    /// Whether the plugin may modify the directory (default read-only).
    pub write: bool,
}
