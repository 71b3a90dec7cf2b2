//! Finding the plugin set the operator means: `--config FILE`, else
//! `./homeward.toml`, else the embedded defaults.

use crate::config::{self, Grants, Parsed};
use crate::embedded;
use crate::plugin::{LoadedPlugin, PluginError, PluginSettings, Runtime, RuntimeOptions};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// Where plugins come from.
pub enum Source {
    /// A plugin-set file.
    File(PathBuf),
    /// The plugins built into the binary, with nothing granted.
    Embedded,
}

/// The plugin set in effect.
pub fn locate(explicit: Option<&Path>) -> Source {
    match explicit {
        Some(path) => Source::File(path.to_path_buf()),
        None => {
            let default = PathBuf::from("homeward.toml");
            if default.exists() {
                Source::File(default)
            } else {
                Source::Embedded
            }
        }
    }
}

/// The default compile cache: `$XDG_CACHE_HOME/homeward` or `~/.cache/homeward`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("homeward").join("components"))
}

/// Reads and parses a plugin-set file, failing with every diagnostic if it has errors.
pub fn parse_file(path: &Path) -> anyhow::Result<Parsed> {
    let parsed = config::load(path).with_context(|| format!("cannot read {}", path.display()))?;
    if parsed.has_errors() {
        let lines: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
        bail!(
            "{} has errors (run `homeward config check`):\n{}",
            path.display(),
            lines.join("\n")
        );
    }
    Ok(parsed)
}

/// One plugin of the set, loaded or not.
pub struct Entry {
    /// Plugin id as listed.
    pub id: String,
    /// Where its bytes come from.
    pub origin: String,
    /// The loaded plugin, or why it did not load.
    pub loaded: Result<LoadedPlugin, PluginError>,
}

/// Loads every plugin of the set into `runtime`.
pub fn load_all(source: &Source) -> anyhow::Result<(Runtime, Vec<Entry>)> {
    load_all_with(source, false)
}

/// [`load_all`], granting `disk-write` to the embedded plugins when
/// `embedded_disk_write`: a command that changes a disk the operator named
/// (`homeward fs put`) is itself the grant. A plugin-set file's grants are
/// never widened.
pub fn load_all_with(
    source: &Source,
    embedded_disk_write: bool,
) -> anyhow::Result<(Runtime, Vec<Entry>)> {
    match source {
        Source::Embedded => {
            let runtime = Runtime::new(RuntimeOptions {
                cache_dir: default_cache_dir(),
                ..RuntimeOptions::default()
            })?;
            let entries = embedded::ALL
                .iter()
                .map(|p| Entry {
                    id: p.id.to_string(),
                    origin: "embedded".to_string(),
                    loaded: runtime.load(
                        p.wasm,
                        &format!("embedded:{}", p.id),
                        PluginSettings {
                            grants: Grants {
                                disk_write: embedded_disk_write,
                                ..Grants::default()
                            },
                            ..PluginSettings::default()
                        },
                    ),
                })
                .collect();
            Ok((runtime, entries))
        }
        Source::File(path) => {
            let parsed = parse_file(path)?;
            let set = parsed
                .set
                .with_context(|| format!("{} did not yield a plugin set", path.display()))?;
            let runtime = Runtime::new(RuntimeOptions {
                cache_dir: set.runtime.cache_dir.clone().or_else(default_cache_dir),
                ..RuntimeOptions::default()
            })?;
            let entries = set
                .plugins
                .iter()
                .map(|entry| {
                    let loaded = match PluginSettings::from_entry(entry, &set.runtime) {
                        Ok(settings) => runtime.load_file(&entry.path, settings),
                        Err(e) => Err(PluginError::Unexpected {
                            name: entry.path.display().to_string(),
                            reason: e.to_string(),
                        }),
                    };
                    Entry {
                        id: entry.id.clone(),
                        origin: entry.path.display().to_string(),
                        loaded,
                    }
                })
                .collect();
            Ok((runtime, entries))
        }
    }
}
