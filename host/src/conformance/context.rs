//! What a case works with: the plugin under test, fresh instances that add
//! their cost to the case's meter, the suite's options, and a scratch
//! directory of its own.

use super::SuiteOptions;
use super::case::CaseEnd;
use crate::plugin::{
    CostMeter, CostTotals, LoadedPlugin, Manifest, PluginInstance, PluginSettings, Runtime,
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
    work: Option<tempfile::TempDir>,
}

impl<'s> CaseContext<'s> {
    pub(crate) fn new(run: &'s SuiteRun<'s>) -> Self {
        CaseContext {
            run,
            meter: Arc::new(CostMeter::default()),
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
        self.run
            .plugin
            .instantiate_metered(self.meter.clone())
            .map_err(|e| CaseEnd::Fail(format!("the plugin does not instantiate: {e}")))
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
        plugin
            .instantiate_metered(self.meter.clone())
            .map_err(|e| CaseEnd::Fail(format!("the plugin does not instantiate: {e}")))
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

    /// What the case's calls cost so far.
    pub fn cost(&self) -> CostTotals {
        self.meter.totals(self.run.plugin.fuel_metered())
    }
}

/// Runs `f` with every `tracing` event of this thread (the plugin's own log
/// lines and the host's) written to a buffer, and returns that text too.
/// Plugin calls run on the caller's thread, so a case sees everything its
/// calls logged: the secret-leak checks search it.
pub fn capture_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = buffer
        .0
        .lock()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    (result, text)
}
