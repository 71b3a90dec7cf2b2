//! Versions of the WIT API (`homeward:plugin`) this host serves, and the rule
//! that decides whether a plugin built for one of them can load.
//!
//! The host serves every API line it has bindings for (`wit::v0_1` today). A
//! plugin built for `0.1.x` loads on any host that serves `0.1.y` with `y >= x`:
//! within a line, later patch versions only add functions and types. When 0.2
//! arrives, the host keeps `wit::v0_1` beside `wit::v0_2` (as Zed keeps its
//! `since_vX_Y` modules), so 0.1 plugins keep loading.

use super::error::PluginError;
use semver::Version;

/// An API line this host has bindings for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiLine {
    /// `homeward:plugin@0.1.x`, bindings in `plugin::wit::v0_1`.
    V0_1,
}

/// The newest API version of each line this host serves, newest line first.
pub const SERVED: &[(ApiLine, Version)] = &[(ApiLine::V0_1, Version::new(0, 1, 2))];

/// The newest API version this host serves.
pub fn host_api() -> Version {
    SERVED[0].1.clone()
}

/// Picks the bindings for a plugin built against `plugin_api`, or explains why
/// none fits.
pub fn select(plugin_id: &str, plugin_api: &Version) -> Result<ApiLine, PluginError> {
    let refuse = |fix| PluginError::IncompatibleApi {
        plugin: plugin_id.to_string(),
        plugin_api: plugin_api.clone(),
        host_api: host_api(),
        fix,
    };
    if !plugin_api.pre.is_empty() {
        return Err(refuse(
            "pre-release API versions are not served; rebuild the plugin with a released SDK",
        ));
    }
    for (line, served) in SERVED {
        if same_line(plugin_api, served) {
            return if provides(served, plugin_api) {
                Ok(*line)
            } else {
                Err(refuse(
                    "the plugin needs functions this host does not have yet; upgrade Homeward",
                ))
            };
        }
    }
    if plugin_api > &host_api() {
        Err(refuse(
            "the plugin is newer than this host; upgrade Homeward, or use a plugin release built for this API",
        ))
    } else {
        Err(refuse(
            "this host no longer serves that API; use a plugin release built for this API",
        ))
    }
}

/// Semver compatibility: same major, and for 0.x the same minor.
fn same_line(a: &Version, b: &Version) -> bool {
    a.major == b.major && (a.major > 0 || a.minor == b.minor)
}

/// Whether a host serving `served` has everything a plugin built for
/// `plugin` (of the same line) may call: for 0.x the line fixes the minor and
/// patches add; from 1.0 on minors add too.
fn provides(served: &Version, plugin: &Version) -> bool {
    (plugin.minor, plugin.patch) <= (served.minor, served.patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_serves_the_versions_up_to_its_own() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(same_line(&v("0.1.3"), &v("0.1.0")) && !same_line(&v("0.2.0"), &v("0.1.0")));
        assert!(provides(&v("0.1.2"), &v("0.1.1")));
        assert!(!provides(&v("0.1.1"), &v("0.1.2")));
        assert!(same_line(&v("1.2.0"), &v("1.1.5")));
        assert!(
            !provides(&v("1.1.5"), &v("1.2.0")),
            "a 1.2 plugin may call what 1.1.5 lacks"
        );
        assert!(provides(&v("1.2.0"), &v("1.1.9")));
    }
}
