//! The plugin manifest: read from the component's `homeward-manifest` custom
//! section before any of the plugin's code is compiled or run.
//!
//! The SDK's `plugin!` macro writes it; `sdk/src/manifest.rs` documents the
//! schema. The section lives in the component's core module, so the reader walks
//! nested modules.

use super::capability::{FileAccess, NetworkPattern, RequestedCapabilities};
use super::error::PluginError;
use serde::Deserialize;
use std::fmt;

/// Name of the custom section that holds the manifest.
pub const SECTION: &str = "homeward-manifest";

/// The schema version of the manifest text this host reads.
const SCHEMA: u32 = 1;

/// The kinds of plugin, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    /// `hypervisor-adapter`
    HypervisorAdapter,
    /// `cloud-adapter`
    CloudAdapter,
    /// `filesystem-handler`
    FilesystemHandler,
    /// `guest-step`
    GuestStep,
}

impl PluginKind {
    /// Every kind.
    pub const ALL: [PluginKind; 4] = [
        PluginKind::HypervisorAdapter,
        PluginKind::CloudAdapter,
        PluginKind::FilesystemHandler,
        PluginKind::GuestStep,
    ];

    /// The WIT world's name.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::HypervisorAdapter => "hypervisor-adapter",
            PluginKind::CloudAdapter => "cloud-adapter",
            PluginKind::FilesystemHandler => "filesystem-handler",
            PluginKind::GuestStep => "guest-step",
        }
    }

    /// The interface the world exports besides the probes (without package and version).
    pub fn main_export(self) -> &'static str {
        match self {
            PluginKind::HypervisorAdapter => "hypervisor",
            PluginKind::CloudAdapter => "cloud",
            PluginKind::FilesystemHandler => "filesystem",
            PluginKind::GuestStep => "post-step",
        }
    }

    fn from_world(name: &str) -> Option<PluginKind> {
        PluginKind::ALL.into_iter().find(|k| k.world() == name)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Unique id in a plugin set: `[a-z0-9][a-z0-9-]{0,62}`.
    pub id: String,
    /// The plugin's own version.
    pub version: semver::Version,
    /// The WIT API version it was built against.
    pub api: semver::Version,
    /// Its kind (exactly one in API 0.1).
    pub kind: PluginKind,
    /// What it asks to be allowed.
    pub capabilities: RequestedCapabilities,
    /// The manifest text, as found.
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    schema: u32,
    id: String,
    version: String,
    api: String,
    kinds: Vec<String>,
    #[serde(default)]
    capabilities: RawCapabilities,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCapabilities {
    #[serde(default)]
    network: Vec<String>,
    #[serde(default)]
    files: Option<String>,
    #[serde(default)]
    disk_write: bool,
}

/// Checks that `id` is a valid plugin id.
pub fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && id.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Manifest {
    /// Reads the manifest of the component in `bytes`; `name` says where the
    /// bytes came from, for errors. Checks only the bytes, not the API version.
    pub fn from_component(bytes: &[u8], name: &str) -> Result<Manifest, PluginError> {
        let text = find_section(bytes, name)?;
        Manifest::parse(&text, name)
    }

    /// Parses manifest text.
    pub fn parse(text: &str, name: &str) -> Result<Manifest, PluginError> {
        let bad = |reason: String| PluginError::BadManifest {
            name: name.to_string(),
            reason,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if raw.schema != SCHEMA {
            return Err(bad(format!(
                "schema {} is not known to this host (it reads schema {SCHEMA}): upgrade the host",
                raw.schema
            )));
        }
        if !valid_id(&raw.id) {
            return Err(bad(format!(
                "id `{}` must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
                raw.id
            )));
        }
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| bad(format!("version `{}` is not semver: {e}", raw.version)))?;
        let api = semver::Version::parse(&raw.api)
            .map_err(|e| bad(format!("api `{}` is not semver: {e}", raw.api)))?;
        let kind = match raw.kinds.as_slice() {
            [one] => PluginKind::from_world(one).ok_or_else(|| {
                bad(format!(
                    "kind `{one}` is not one of hypervisor-adapter, cloud-adapter, filesystem-handler, guest-step"
                ))
            })?,
            [] => return Err(bad("`kinds` is empty".to_string())),
            _ => return Err(bad("a plugin has exactly one kind in API 0.1".to_string())),
        };
        let network = raw
            .capabilities
            .network
            .iter()
            .map(|p| {
                p.parse::<NetworkPattern>()
                    .map_err(|e| bad(format!("network `{p}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let files = match raw.capabilities.files.as_deref() {
            None | Some("none") => FileAccess::None,
            Some("read-only") => FileAccess::ReadOnly,
            Some("read-write") => FileAccess::ReadWrite,
            Some(other) => {
                return Err(bad(format!(
                    "files = `{other}`: expected \"none\", \"read-only\" or \"read-write\""
                )));
            }
        };
        Ok(Manifest {
            id: raw.id,
            version,
            api,
            kind,
            capabilities: RequestedCapabilities {
                network,
                files,
                disk_write: raw.capabilities.disk_write,
            },
            text: text.to_string(),
        })
    }
}

/// Finds the manifest section, checking on the way that the bytes are a
/// well-formed component (so a truncated file fails here, before compilation).
fn find_section(bytes: &[u8], name: &str) -> Result<String, PluginError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(PluginError::NotWasm {
            name: name.to_string(),
        });
    }
    let mut found: Option<&[u8]> = None;
    let mut is_component = false;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| PluginError::Malformed {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        match payload {
            wasmparser::Payload::Version { encoding, .. } => {
                if encoding == wasmparser::Encoding::Component {
                    is_component = true;
                } else if !is_component {
                    return Err(PluginError::CoreModule {
                        name: name.to_string(),
                    });
                }
            }
            wasmparser::Payload::CustomSection(reader) if reader.name() == SECTION => {
                if found.is_some() {
                    return Err(PluginError::BadManifest {
                        name: name.to_string(),
                        reason: "more than one `homeward-manifest` section".to_string(),
                    });
                }
                found = Some(reader.data());
            }
            _ => {}
        }
    }
    let data = found.ok_or_else(|| PluginError::NoManifest {
        name: name.to_string(),
    })?;
    String::from_utf8(data.to_vec()).map_err(|_| PluginError::BadManifest {
        name: name.to_string(),
        reason: "the section is not UTF-8 text".to_string(),
    })
}
