//! The plugins a server runs workflows with: adapters by plugin id (a site
//! names its adapter by that id), the file-system handlers, and the guest
//! post-steps in the order they run.

use super::OrchestratorError;
use crate::cli::plugin_set::{self, Source};
use crate::filesystem::FsHandlers;
use crate::plugin::manifest::PluginKind;
use crate::plugin::{LoadedPlugin, PluginInstance, Runtime};
use crate::store::{Site, SiteKind};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;

/// The order guest steps run in: NetworkManager is restored first (S16), so
/// the static IP reset (S17) finds the network system the guest had.
const STEP_ORDER: &[&str] = &["networkmanager-restore", "static-ip-reset"];
/// The SDK's example step is embedded for `plugin test`, never run on guests.
const NOT_A_PRODUCT_STEP: &str = "template";

/// The plugins workflows use, loaded once per server.
pub struct Env {
    // Kept alive for the plugins' engine and compile cache.
    _runtime: Runtime,
    adapters: BTreeMap<String, LoadedPlugin>,
    fs: FsHandlers,
    steps: Vec<LoadedPlugin>,
}

impl Env {
    /// Loads the plugin set in effect: `--config FILE`, `./homeward.toml`, or
    /// the embedded defaults (whose file-system handlers may write: a server
    /// on embedded defaults fixes the guests it fails back).
    pub fn load(config: Option<&Path>) -> anyhow::Result<Env> {
        let source = plugin_set::locate(config);
        let (runtime, entries) = plugin_set::load_all_with(&source, true)?;
        let mut plugins = Vec::new();
        for entry in entries {
            let plugin = entry.loaded.with_context(|| {
                format!(
                    "plugin `{}` ({}) does not load; fix it or remove it from the plugin set",
                    entry.id, entry.origin
                )
            })?;
            plugins.push(plugin);
        }
        if matches!(source, Source::Embedded) {
            tracing::info!("workflows run on the embedded plugins");
        }
        Ok(Env::from_plugins(runtime, plugins))
    }

    /// An environment of already loaded plugins (the demo and tests load the
    /// lab adapters with their lab's settings).
    pub fn from_plugins(runtime: Runtime, plugins: Vec<LoadedPlugin>) -> Env {
        let mut adapters = BTreeMap::new();
        let mut handlers = Vec::new();
        let mut steps = Vec::new();
        for plugin in plugins {
            let id = plugin.manifest().id.clone();
            match plugin.manifest().kind {
                PluginKind::HypervisorAdapter | PluginKind::CloudAdapter => {
                    adapters.insert(id, plugin);
                }
                PluginKind::FilesystemHandler => handlers.push(plugin),
                PluginKind::GuestStep if id != NOT_A_PRODUCT_STEP => steps.push(plugin),
                PluginKind::GuestStep => {}
            }
        }
        steps.sort_by_key(|p| {
            let id = p.manifest().id.as_str();
            let rank = STEP_ORDER
                .iter()
                .position(|known| *known == id)
                .unwrap_or(STEP_ORDER.len());
            (rank, id.to_string())
        });
        Env {
            _runtime: runtime,
            adapters,
            fs: FsHandlers::new(handlers),
            steps,
        }
    }

    /// A connected instance of the adapter `site` names, of the kind the
    /// site is.
    pub fn adapter(&self, site: &Site) -> Result<PluginInstance, OrchestratorError> {
        let plugin = self.adapters.get(&site.plugin).ok_or_else(|| {
            OrchestratorError::NotFound(format!(
                "site `{}` uses plugin `{}`, which the server's plugin set does not hold; \
                 add it to the plugin set or change the site",
                site.name, site.plugin
            ))
        })?;
        let expected = match site.kind {
            SiteKind::OnPremises => PluginKind::HypervisorAdapter,
            SiteKind::Cloud => PluginKind::CloudAdapter,
        };
        if plugin.manifest().kind != expected {
            return Err(OrchestratorError::Invalid(format!(
                "site `{}` is {}, but plugin `{}` is a {}",
                site.name,
                site.kind.as_str(),
                site.plugin,
                plugin.manifest().kind
            )));
        }
        let mut instance = plugin.instantiate().map_err(plugin_error)?;
        match site.kind {
            SiteKind::OnPremises => instance.hypervisor_connect().map(drop),
            SiteKind::Cloud => instance.cloud_connect().map(drop),
        }
        .map_err(plugin_error)?;
        Ok(instance)
    }

    /// The file-system handlers (guest disks are read and fixed through them).
    pub fn fs_handlers(&self) -> &FsHandlers {
        &self.fs
    }

    /// The guest post-steps, in the order they run.
    pub fn guest_steps(&self) -> &[LoadedPlugin] {
        &self.steps
    }
}

/// A plugin's failure as the orchestrator reports it: transient when the
/// endpoint is unavailable, else as the plugin said it.
pub(crate) fn plugin_error(e: crate::plugin::PluginError) -> OrchestratorError {
    OrchestratorError::Plugin(e.to_string())
}
