//! What a case works with: the plugin under test, fresh instances that add
//! their cost to the case's meter, the suite's options, and a scratch
//! directory of its own.

use super::SuiteOptions;
use super::case::CaseEnd;
use crate::plugin::{
    CostMeter, CostTotals, LoadedPlugin, LogRecorder, Manifest, PluginInstance, PluginSettings,
    Runtime,
};
use std::path::Path;
use std::sync::Arc;

/// One run of a suite over one plugin: shared by every case.
pub struct SuiteRun<'a> {
    pub(crate) runtime: Runtime,
    pub(crate) wasm: &'a [u8],
    pub(crate) name: &'a str,
    pub(crate) plugin: LoadedPlugin,
    pub(crate) options: &'a SuiteOptions,
}

/// The context of one case.
pub struct CaseContext<'s> {
    run: &'s SuiteRun<'s>,
    meter: Arc<CostMeter>,
    logs: Arc<LogRecorder>,
    notes: Vec<String>,
    work: Option<tempfile::TempDir>,
}

impl<'s> CaseContext<'s> {
    pub(crate) fn new(run: &'s SuiteRun<'s>) -> Self {
        CaseContext {
            run,
            meter: Arc::new(CostMeter::default()),
            logs: Arc::new(LogRecorder::default()),
            notes: Vec::new(),
            work: None,
        }
    }

    /// The plugin's manifest.
    pub fn manifest(&self) -> &Manifest {
        self.run.plugin.manifest()
    }

    /// The options the suite runs with.
    pub fn options(&self) -> &SuiteOptions {
        self.run.options
    }

    /// The plugin as the operator configured it for this run.
    pub fn plugin(&self) -> &LoadedPlugin {
        &self.run.plugin
    }

    /// A fresh instance of the plugin under test; its calls count for this case.
    pub fn instance(&mut self) -> Result<PluginInstance, CaseEnd> {
        let plugin = &self.run.plugin;
        self.instance_of(plugin)
    }

    /// The plugin loaded again with other settings (other credentials, a
    /// granted lab directory...). Compiled once per run; later loads come
    /// from the suite's compile cache.
    pub fn load_with(&mut self, settings: PluginSettings) -> Result<LoadedPlugin, CaseEnd> {
        self.run
            .runtime
            .load(self.run.wasm, self.run.name, settings)
            .map_err(|e| {
                CaseEnd::Fail(format!("the plugin does not load with these settings: {e}"))
            })
    }

    /// A fresh instance of `plugin` (from [`load_with`](Self::load_with)); its
    /// calls count for this case.
    pub fn instance_of(&mut self, plugin: &LoadedPlugin) -> Result<PluginInstance, CaseEnd> {
        let mut instance = plugin
            .instantiate_metered(self.meter.clone())
            .map_err(|e| CaseEnd::Fail(format!("the plugin does not instantiate: {e}")))?;
        instance.record_logs(self.logs.clone());
        Ok(instance)
    }

    /// Every line the plugin logged in this case's instances so far.
    pub fn plugin_logs(&self) -> String {
        self.logs.lines().join("\n")
    }

    /// A scratch directory of this case, removed when the case ends.
    pub fn work_dir(&mut self) -> Result<&Path, CaseEnd> {
        if self.work.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("homeward-conformance-")
                .tempdir()
                .map_err(|e| CaseEnd::Fail(format!("cannot make a scratch directory: {e}")))?;
            self.work = Some(dir);
        }
        match &self.work {
            Some(dir) => Ok(dir.path()),
            None => Err(CaseEnd::Fail("no scratch directory".to_string())),
        }
    }

    /// Adds a fact to the case's report, whatever its outcome (which image
    /// source was used, which writes the plugin refused as `unsupported`).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The notes so far.
    pub(crate) fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// What the case's calls cost so far.
    pub fn cost(&self) -> CostTotals {
        self.meter.totals(self.run.plugin.fuel_metered())
    }
}
