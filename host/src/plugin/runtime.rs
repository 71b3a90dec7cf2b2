//! The plugin runtime: one wasmtime engine, one linker, the epoch ticker, the
//! compile cache, and [`Runtime::load`], which turns bytes into a
//! [`LoadedPlugin`] only after every check has passed.
//!
//! Order of checks in `load`, cheapest and safest first: digest, manifest (read
//! from a custom section without compiling), id and version expectations, API
//! version, compilation (or the cache), exports against the declared kind,
//! linking. No plugin code runs before `LoadedPlugin::instantiate`.

use super::api;
use super::cache::{self, CompileCache, CompileSource};
use super::capability;
use super::error::PluginError;
use super::loaded::{LoadedPlugin, PluginMeta, PluginSettings};
use super::manifest::Manifest;
use super::state::PluginState;
use super::wit::{self, KindPre};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel (deterministic instruction counts, for conformance runs). Code
    /// compiled with metering is slower, so production runtimes leave it off.
    pub fuel: bool,
    /// How many instances may be alive at once, across all plugins.
    pub max_instances: u32,
    /// Resolution of call deadlines.
    pub epoch_tick: Duration,
    /// Pre-allocate instance slots (fast instantiation; reserves address space).
    /// Off means wasmtime's on-demand allocator.
    pub pooling: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            fuel: false,
            max_instances: 64,
            epoch_tick: Duration::from_millis(10),
            pooling: true,
        }
    }
}

/// Largest linear memory any instance may have (the whole wasm32 address
/// space); per-plugin caps are enforced below it by `MemoryCap`.
const POOL_MEMORY_BYTES: usize = 4 << 30;

/// How much of a pooled memory or table stays resident between instances.
const KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Loads plugins and owns what their instances share.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache: Option<CompileCache>,
    options: RuntimeOptions,
    _ticker: EpochTicker,
}

impl Runtime {
    /// A runtime with the given options.
    pub fn new(options: RuntimeOptions) -> Result<Runtime, PluginError> {
        let setup = |reason: String| PluginError::Setup { reason };
        let mut pool = PoolingAllocationConfig::default();
        let n = options.max_instances.max(1);
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .max_memory_size(POOL_MEMORY_BYTES)
            // Reset a reused slot's first pages with memset instead of
            // madvise: cheaper for the small heaps plugins mostly have.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(options.fuel)
            .allocation_strategy(if options.pooling {
                InstanceAllocationStrategy::Pooling(pool)
            } else {
                InstanceAllocationStrategy::OnDemand
            });
        let engine = Engine::new(&config).map_err(|e| setup(format!("wasmtime engine: {e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker))
            .and_then(|()| wit::add_to_linker(&mut linker))
            .map_err(|e| setup(format!("linking host interfaces: {e:#}")))?;

        let cache = match &options.cache_dir {
            Some(dir) => match CompileCache::open(dir) {
                Ok(cache) => Some(cache),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "compile cache disabled: {e}");
                    None
                }
            },
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone(), options.epoch_tick);
        Ok(Runtime {
            engine,
            linker,
            cache,
            options,
            _ticker: ticker,
        })
    }

    /// The engine (for benchmarks and tools).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether this runtime meters fuel.
    pub fn meters_fuel(&self) -> bool {
        self.options.fuel
    }

    /// Reads and loads a plugin file.
    pub fn load_file(
        &self,
        path: &Path,
        settings: PluginSettings,
    ) -> Result<LoadedPlugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.load(&bytes, &path.display().to_string(), settings)
    }

    /// Checks, compiles and links a plugin; `name` says where the bytes came from.
    pub fn load(
        &self,
        bytes: &[u8],
        name: &str,
        settings: PluginSettings,
    ) -> Result<LoadedPlugin, PluginError> {
        let unexpected = |reason: String| PluginError::Unexpected {
            name: name.to_string(),
            reason,
        };
        if let Some(expected) = settings.sha256 {
            let actual: [u8; 32] = Sha256::digest(bytes).into();
            if actual != expected {
                return Err(unexpected(format!(
                    "SHA-256 is {}, but the plugin set expects {}: the file changed since the plugin set was written; restore it or update `sha256`",
                    hex::encode(actual),
                    hex::encode(expected)
                )));
            }
        }
        let manifest = Manifest::from_component(bytes, name)?;
        if let Some(expected) = &settings.expected_id
            && *expected != manifest.id
        {
            return Err(unexpected(format!(
                "its manifest says it is plugin `{}`, but the plugin set lists it as `{expected}`",
                manifest.id
            )));
        }
        if let Some(req) = &settings.version
            && !req.matches(&manifest.version)
        {
            return Err(unexpected(format!(
                "plugin `{}` is version {}, which does not satisfy the plugin set's requirement `{req}`",
                manifest.id, manifest.version
            )));
        }
        let api = api::select(&manifest.id, &manifest.api)?;

        let (component, compiled_from) = self.compile(bytes, &manifest.id)?;
        let exports = export_names(&self.engine, &component);
        check_kind(&manifest, &exports)?;

        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                plugin: manifest.id.clone(),
                reason: format!("{e:#}"),
            })?;
        let pre = KindPre::new(api, manifest.kind, pre).map_err(|e| PluginError::Link {
            plugin: manifest.id.clone(),
            reason: format!("{e:#}"),
        })?;

        let (grants, unused_grants) = capability::grant(&manifest.capabilities, &settings.grants);
        // Reported by `homeward config check` and `plugin list`; a debug line here.
        for note in &unused_grants {
            tracing::debug!(plugin = %manifest.id, "{note}");
        }
        let meta = PluginMeta {
            source: name.to_string(),
            api,
            grants,
            unused_grants,
            config: settings.config,
            secrets: settings.secrets,
            limits: settings.limits,
            exports,
            compiled_from,
            manifest,
        };
        Ok(LoadedPlugin {
            meta: Arc::new(meta),
            engine: self.engine.clone(),
            pre,
            fuel_metered: self.options.fuel,
            epoch_tick: self.options.epoch_tick,
        })
    }

    /// Compiles (or loads from the cache) without any other check: for tools
    /// and benchmarks.
    pub fn compile(
        &self,
        bytes: &[u8],
        plugin: &str,
    ) -> Result<(Component, CompileSource), PluginError> {
        match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes, plugin),
            None => Ok((
                cache::compile(&self.engine, bytes, plugin)?,
                CompileSource::Compiled,
            )),
        }
    }
}

/// The names a component exports (`homeward:plugin/post-step@0.1.0`, `ping`...).
pub fn export_names(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Checks that the component exports what its declared kind needs.
fn check_kind(manifest: &Manifest, exports: &[String]) -> Result<(), PluginError> {
    let main = manifest.kind.main_export();
    let wanted = format!("homeward:plugin/{main}@");
    let has_main = exports.iter().any(|e| e.starts_with(&wanted));
    let has_probes = ["ping", "ping-payload"]
        .iter()
        .all(|p| exports.iter().any(|e| e == p));
    if has_main && has_probes {
        return Ok(());
    }
    Err(PluginError::KindMismatch {
        plugin: manifest.id.clone(),
        declared: manifest.kind.to_string(),
        missing: if has_main {
            "ping and ping-payload".to_string()
        } else {
            format!("homeward:plugin/{main}")
        },
        exports: if exports.is_empty() {
            "it exports nothing".to_string()
        } else {
            format!("it exports {}", exports.join(", "))
        },
    })
}

/// Advances the engine's epoch on a fixed tick, so call deadlines fire. Stops
/// when dropped.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> EpochTicker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("homeward-epoch".to_string())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            });
        match thread {
            Ok(thread) => EpochTicker {
                stop: Some(stop),
                thread: Some(thread),
            },
            Err(e) => {
                // Without the ticker deadlines never fire; say so loudly.
                tracing::error!("cannot start the epoch thread, call deadlines are off: {e}");
                EpochTicker {
                    stop: None,
                    thread: None,
                }
            }
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
