//! The on-disk cache of compiled plugins.
//!
//! Compiling a component takes tens of milliseconds; loading a precompiled one
//! takes tens of microseconds. Entries are keyed by the SHA-256 of the
//! component's bytes *and* of the engine's compatibility hash (wasmtime version,
//! target, compiler settings such as fuel metering), so a changed plugin or a
//! changed engine never picks up a stale artifact.
//!
//! Safety: wasmtime trusts a precompiled artifact as much as code it compiled
//! itself. The cache directory is created owner-only (0700) and entries are
//! written atomically (temporary file, then rename), so only this host's own
//! output is ever loaded from it. An entry that fails to load is compiled again
//! and replaced.

use super::error::PluginError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a compiled component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Loaded from the cache.
    Cache,
    /// Compiled now (and stored, when a cache is configured).
    Compiled,
}

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Opens (creating, owner-only) the cache directory.
    pub fn open(dir: &Path) -> std::io::Result<CompileCache> {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(CompileCache {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cache file for `bytes` compiled by `engine`.
    fn entry(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut engine_hash = ShaHasher(Sha256::new());
        engine
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let engine_digest = engine_hash.0.finalize();
        let content = Sha256::digest(bytes);
        self.dir.join(format!(
            "{}-{}.cwasm",
            hex::encode(&content[..16]),
            hex::encode(&engine_digest[..8])
        ))
    }

    /// Loads the compiled form of `bytes`, compiling and storing it on a miss.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        plugin: &str,
    ) -> Result<(Component, CompileSource), PluginError> {
        let entry = self.entry(engine, bytes);
        // Read the entry into memory rather than mapping it: a mapped file that
        // someone truncates later would crash the host (SIGBUS) mid-call.
        if let Ok(bytes) = std::fs::read(&entry) {
            // SAFETY: the entry was written by `store` below into an owner-only
            // directory, from a component this engine compiled (see module docs);
            // wasmtime checks its header and engine compatibility on load.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => return Ok((component, CompileSource::Cache)),
                Err(e) => tracing::warn!(
                    plugin,
                    entry = %entry.display(),
                    "cached compilation unusable ({e}); compiling again"
                ),
            }
        }
        let component = compile(engine, bytes, plugin)?;
        if let Err(e) = self.store(&entry, &component) {
            tracing::warn!(plugin, dir = %self.dir.display(), "cannot write the compile cache: {e}");
        }
        Ok((component, CompileSource::Compiled))
    }

    fn store(&self, entry: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.as_file().sync_data()?;
        tmp.persist(entry)?;
        Ok(())
    }
}

/// Compiles without a cache.
pub fn compile(engine: &Engine, bytes: &[u8], plugin: &str) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(|e| PluginError::Compile {
        plugin: plugin.to_string(),
        reason: format!("{e:#}"),
    })
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes
/// (`DefaultHasher` is not).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
