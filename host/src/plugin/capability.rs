//! Capabilities: what a plugin asks for (its manifest), what the operator grants
//! (the plugin set), and what the plugin effectively gets, which is the
//! intersection of the two. This module is the *granter*; the runtime enforces
//! its answer (preopened directories, the HTTP send hook, the disk resource).

use crate::config::{DirGrant, Grants, HostPort, TlsGrant};
use std::fmt;
use std::str::FromStr;

/// A `host:port` pattern a manifest may ask for; `*` matches any host or any port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPattern {
    /// `None` matches any host; otherwise a normalised host name or IP.
    host: Option<String>,
    /// `None` matches any port.
    port: Option<u16>,
}

/// Why a network pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(String);

impl FromStr for NetworkPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| PatternError("expected host:port (e.g. \"*:443\")".to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| PatternError(format!("port `{p}` must be 1-65535 or *")))?,
            ),
        };
        let host = match host {
            "*" => None,
            h if h.contains('*') => {
                return Err(PatternError(
                    "a host is either * or a whole name: partial wildcards are not supported"
                        .to_string(),
                ));
            }
            h => Some(HostPort::from_authority(h, port.unwrap_or(1)).host),
        };
        Ok(NetworkPattern { host, port })
    }
}

impl fmt::Display for NetworkPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => f.write_str("*")?,
            Some(h) if h.contains(':') => write!(f, "[{h}]")?,
            Some(h) => f.write_str(h)?,
        }
        match self.port {
            None => f.write_str(":*"),
            Some(p) => write!(f, ":{p}"),
        }
    }
}

impl NetworkPattern {
    /// Whether `target` is covered by this pattern.
    pub fn matches(&self, target: &HostPort) -> bool {
        self.host.as_ref().is_none_or(|h| *h == target.host)
            && self.port.is_none_or(|p| p == target.port)
    }
}

/// Which directories a plugin may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileAccess {
    /// None at all (the default).
    #[default]
    None,
    /// Granted directories, read-only.
    ReadOnly,
    /// Granted directories, read-write where the operator allows writing.
    ReadWrite,
}

/// What a manifest asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestedCapabilities {
    /// Destinations it may call.
    pub network: Vec<NetworkPattern>,
    /// Directory access.
    pub files: FileAccess,
    /// Writing through the `disk` resource.
    pub disk_write: bool,
}

/// What a plugin effectively gets: granted by the operator *and* requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EffectiveGrants {
    /// Exact destinations outgoing HTTP may reach.
    pub network: Vec<HostPort>,
    /// Directories preopened in the plugin's WASI context.
    pub dirs: Vec<DirGrant>,
    /// Whether disks lent to it may be written.
    pub disk_write: bool,
    /// The operator's TLS trust for those of `network` that have one.
    pub tls: Vec<TlsGrant>,
}

impl EffectiveGrants {
    /// Whether outgoing HTTP to `target` is allowed.
    pub fn allows(&self, target: &HostPort) -> bool {
        self.network.contains(target)
    }
}

/// Intersects a request with a grant. Returns what the plugin gets and, for the
/// operator, one line per grant that has no effect because the plugin did not
/// ask for it (usually a mistake in the plugin set).
pub fn grant(
    requested: &RequestedCapabilities,
    granted: &Grants,
) -> (EffectiveGrants, Vec<String>) {
    let mut unused = Vec::new();
    let network: Vec<HostPort> = granted
        .network
        .iter()
        .filter(|target| {
            let asked = requested.network.iter().any(|p| p.matches(target));
            if !asked {
                let wanted: Vec<String> = requested.network.iter().map(ToString::to_string).collect();
                unused.push(if wanted.is_empty() {
                    format!("network grant {target} has no effect: the plugin asks for no network access")
                } else {
                    format!(
                        "network grant {target} has no effect: the plugin asks only for {}",
                        wanted.join(", ")
                    )
                });
            }
            asked
        })
        .cloned()
        .collect();
    let dirs = match requested.files {
        FileAccess::None => {
            unused.extend(granted.dirs.iter().map(|d| {
                format!(
                    "directory grant {} has no effect: the plugin does not ask for files",
                    d.host.display()
                )
            }));
            Vec::new()
        }
        FileAccess::ReadOnly => granted
            .dirs
            .iter()
            .map(|d| {
                if d.write {
                    unused.push(format!(
                        "directory grant {} is read-only: the plugin asks only to read",
                        d.host.display()
                    ));
                }
                DirGrant {
                    write: false,
                    ..d.clone()
                }
            })
            .collect(),
        FileAccess::ReadWrite => granted.dirs.clone(),
    };
    if granted.disk_write && !requested.disk_write {
        unused.push(
            "disk-write grant has no effect: the plugin does not ask to write disks".to_string(),
        );
    }
    // Trust settings follow their endpoint: one the plugin cannot reach needs none.
    let tls = granted
        .tls
        .iter()
        .filter(|t| network.contains(&t.endpoint))
        .cloned()
        .collect();
    let effective = EffectiveGrants {
        network,
        tls,
        dirs,
        disk_write: granted.disk_write && requested.disk_write,
    };
    (effective, unused)
}
