//! A loaded plugin: checked, compiled, linked, ready to instantiate.

use super::api::ApiLine;
use super::cache::CompileSource;
use super::capability::EffectiveGrants;
use super::error::PluginError;
use super::instance::PluginInstance;
use super::limits::Limits;
use super::manifest::Manifest;
use super::state::PluginState;
use super::wit;
use crate::config::{Grants, PluginEntry, RuntimeSettings, Secret, SecretError};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::{Engine, Store};

/// What the operator says about one plugin: expectations, grants, configuration
/// and limits. Built from a plugin-set entry, or by hand in tests and tools.
#[derive(Debug, Clone, Default)]
pub struct PluginSettings {
    /// The id the plugin must have.
    pub expected_id: Option<String>,
    /// The SHA-256 the file must have.
    pub sha256: Option<[u8; 32]>,
    /// A requirement on the plugin's version.
    pub version: Option<semver::VersionReq>,
    /// What the operator grants.
    pub grants: Grants,
    /// Plain configuration (`config` interface).
    pub config: BTreeMap<String, String>,
    /// Resolved secrets (`config.secret`).
    pub secrets: BTreeMap<String, Secret>,
    /// Limits of each instance.
    pub limits: Limits,
}

impl PluginSettings {
    /// Settings of a plugin-set entry; resolves its secrets now, so a missing
    /// environment variable or file is reported at load time, not mid-job.
    pub fn from_entry(entry: &PluginEntry, runtime: &RuntimeSettings) -> Result<Self, SecretError> {
        let secrets = entry
            .secrets
            .iter()
            .map(|(k, source)| Ok((k.clone(), source.resolve()?)))
            .collect::<Result<_, SecretError>>()?;
        Ok(PluginSettings {
            expected_id: Some(entry.id.clone()),
            sha256: entry.sha256,
            version: entry.version.clone(),
            grants: entry.grants.clone(),
            config: entry.config.clone(),
            secrets,
            limits: Limits {
                memory_bytes: runtime.memory_limit_for(entry),
                call_timeout: runtime.call_timeout_for(entry),
                fuel: entry.fuel,
            },
        })
    }
}

/// Facts about a loaded plugin that every instance shares.
#[derive(Debug)]
pub struct PluginMeta {
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it was loaded from.
    pub source: String,
    /// The API line whose bindings serve it.
    pub api: ApiLine,
    /// What it effectively gets.
    pub grants: EffectiveGrants,
    /// Operator grants that have no effect (the plugin did not ask).
    pub unused_grants: Vec<String>,
    /// Plain configuration.
    pub config: BTreeMap<String, String>,
    /// Secrets.
    pub secrets: BTreeMap<String, Secret>,
    /// Limits.
    pub limits: Limits,
    /// The component's exports, by name.
    pub exports: Vec<String>,
    /// Whether compilation came from the cache.
    pub compiled_from: CompileSource,
}

/// A plugin ready to instantiate. Cheap to keep; instances are made on demand.
pub struct LoadedPlugin {
    pub(crate) meta: Arc<PluginMeta>,
    pub(crate) engine: Engine,
    pub(crate) pre: wit::KindPre,
    pub(crate) fuel_metered: bool,
    pub(crate) epoch_tick: std::time::Duration,
}

impl LoadedPlugin {
    /// Its manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.meta.manifest
    }

    /// Everything known about it.
    pub fn meta(&self) -> &PluginMeta {
        &self.meta
    }

    /// A fresh instance in its own store, inside the plugin's sandbox.
    pub fn instantiate(&self) -> Result<PluginInstance, PluginError> {
        self.instantiate_with(None)
    }

    /// [`instantiate`](Self::instantiate), adding the cost of every call
    /// (start-up included) to `meter`.
    pub fn instantiate_metered(
        &self,
        meter: Arc<super::instance::CostMeter>,
    ) -> Result<PluginInstance, PluginError> {
        self.instantiate_with(Some(meter))
    }

    /// Whether calls are fuel-metered (the runtime was made with `fuel`).
    pub fn fuel_metered(&self) -> bool {
        self.fuel_metered
    }

    fn instantiate_with(
        &self,
        meter: Option<Arc<super::instance::CostMeter>>,
    ) -> Result<PluginInstance, PluginError> {
        let plugin = self.meta.manifest.id.clone();
        let state =
            PluginState::new(self.meta.clone()).map_err(|reason| PluginError::Instantiate {
                plugin: plugin.clone(),
                reason,
            })?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        let mut instance =
            PluginInstance::new(store, self.meta.clone(), self.fuel_metered, self.epoch_tick);
        if let Some(meter) = meter {
            instance.attach_meter(meter);
        }
        instance.start(&self.pre)?;
        Ok(instance)
    }
}
