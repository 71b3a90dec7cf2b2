//! The plugin conformance suite: `homeward plugin test PLUGIN.wasm`.
//!
//! It certifies that a plugin behaves as its WIT world promises, so the host
//! can rely on it. The runner loads the plugin with fuel metering on, reads
//! which world it targets, and runs the cases of that kind's suite (plus the
//! cases every plugin gets), each in fresh instances:
//!
//! ```text
//!  PLUGIN.wasm ──► load (fuel on) ──► kind ──► suites::cases(kind)
//!                                                 │ for each case
//!                                                 ├─ requirement missing? ─► SKIP (reason)
//!                                                 ├─ body(CaseContext) ─────► PASS / FAIL (assertion) / SKIP (reason)
//!                                                 └─ cost: fuel, peak memory, calls, time
//!  Report ──► table (terminal) · JSON (--json) · JUnit XML (--junit)
//! ```
//!
//! - [`case`]: a case, its requirements, and the assertion helpers.
//! - [`context`]: what a case works with (instances metered into its cost).
//! - [`report`]: the result and its renderings.
//! - [`suites`]: the cases, one module per plugin kind.
//!
//! Adapter suites run against a target: the endpoint given with `--target`,
//! or else a lab (`crate::lab`) the suite creates for the run. File-system
//! cases run on images made by the real `mkfs` tools when they are installed,
//! and on small images shipped with the suite otherwise. Guest-step cases run
//! on fixture guest trees.

pub mod case;
pub mod context;
pub mod report;
pub mod suites;

pub use case::{Case, CaseEnd, ErrorKind, Requirement, expect_error, expect_no_trap, expect_ok};
pub use context::CaseContext;
pub use report::{CaseReport, Outcome, PluginSummary, Report};

use crate::plugin::capability::FileAccess;
use crate::plugin::{Manifest, PluginError, PluginSettings, Runtime, RuntimeOptions};
use context::SuiteRun;
use sha2::{Digest, Sha256};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Instant;

/// Where the file-system suite gets its images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageSource {
    /// Made by the real `mkfs` tools when they are installed, else shipped.
    #[default]
    Auto,
    /// Only the small images shipped with the suite.
    Shipped,
}

/// How a run is set up.
#[derive(Debug, Clone, Default)]
pub struct SuiteOptions {
    /// The endpoint adapter suites run against; `None` means a lab.
    pub target: Option<String>,
    /// The operator's settings of the plugin (grants, configuration, secrets),
    /// for runs against a real target.
    pub settings: PluginSettings,
    /// Where file-system images come from.
    pub images: ImageSource,
    /// Run only cases whose name contains this text.
    pub filter: Option<String>,
    /// Run only the smoke cases.
    pub smoke_only: bool,
}

/// Why a run could not start at all (as opposed to a case failing).
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The plugin does not load: nothing can be certified.
    #[error("{0}")]
    Load(#[from] PluginError),
    /// The suite's own scratch space could not be made.
    #[error("cannot make the suite's scratch directory: {0}")]
    Scratch(std::io::Error),
}

/// Runs the suite for `wasm`'s kind and reports every case; `on_case` sees
/// each result as soon as it is known (the CLI prints rows as they come).
pub fn run(
    wasm: &[u8],
    name: &str,
    options: &SuiteOptions,
    on_case: &mut dyn FnMut(&CaseReport),
) -> Result<Report, ConformanceError> {
    let started = Instant::now();
    let cache = tempfile::Builder::new()
        .prefix("homeward-conformance-cache-")
        .tempdir()
        .map_err(ConformanceError::Scratch)?;
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        fuel: true,
        ..RuntimeOptions::default()
    })?;
    let plugin = runtime.load(wasm, name, options.settings.clone())?;
    let manifest = plugin.manifest().clone();
    let run = SuiteRun {
        runtime,
        wasm,
        name,
        plugin,
        options,
    };

    let mut cases = Vec::new();
    for case in suites::cases(manifest.kind) {
        if options.smoke_only && !case.smoke {
            continue;
        }
        if let Some(filter) = &options.filter
            && !case.name.contains(filter.as_str())
        {
            continue;
        }
        let report = run_case(&run, &manifest, &case);
        on_case(&report);
        cases.push(report);
    }

    Ok(Report {
        plugin: PluginSummary {
            id: manifest.id.clone(),
            version: manifest.version.to_string(),
            kind: manifest.kind.to_string(),
            api: manifest.api.to_string(),
            sha256: hex::encode(Sha256::digest(wasm)),
        },
        suite: manifest.kind.to_string(),
        target: match manifest.kind {
            crate::plugin::PluginKind::HypervisorAdapter
            | crate::plugin::PluginKind::CloudAdapter => {
                Some(options.target.clone().unwrap_or_else(|| "lab".to_string()))
            }
            _ => None,
        },
        host_version: env!("CARGO_PKG_VERSION").to_string(),
        counts: Report::count(&cases),
        duration_ms: elapsed_ms(started),
        cases,
    })
}

fn run_case(run: &SuiteRun<'_>, manifest: &Manifest, case: &Case) -> CaseReport {
    let started = Instant::now();
    let mut ctx = CaseContext::new(run);
    let outcome = match unmet_requirement(manifest, case.requires) {
        Some(reason) => Outcome::Skip { reason },
        None => match catch_unwind(AssertUnwindSafe(|| (case.run)(&mut ctx))) {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(CaseEnd::Fail(message))) => Outcome::Fail { message },
            Ok(Err(CaseEnd::Skip(reason))) => Outcome::Skip { reason },
            Err(panic) => Outcome::Fail {
                message: format!(
                    "the suite itself failed (a bug in Homeward, not in the plugin; please report it): {}",
                    panic_text(panic.as_ref())
                ),
            },
        },
    };
    let cost = ctx.cost();
    let notes = ctx.take_notes();
    CaseReport {
        name: case.name.to_string(),
        summary: case.summary.to_string(),
        smoke: case.smoke,
        outcome,
        // A case that made no call (skipped up front) has no cost to show.
        fuel: cost.fuel.filter(|_| cost.calls > 0),
        peak_memory_bytes: cost.peak_memory_bytes,
        calls: cost.calls,
        duration_ms: elapsed_ms(started),
        notes,
    }
}

/// The reason a case cannot run, if one of its requirements is missing.
fn unmet_requirement(manifest: &Manifest, requires: &[Requirement]) -> Option<String> {
    let caps = &manifest.capabilities;
    requires.iter().find_map(|r| match r {
        Requirement::DiskWrite if !caps.disk_write => Some(
            "the plugin does not declare `disk-write`, so it is a read-only handler and write cases do not apply"
                .to_string(),
        ),
        Requirement::Network if caps.network.is_empty() => Some(
            "the plugin declares no network access, so it has no remote endpoint to lose".to_string(),
        ),
        Requirement::Tool { name, package } if find_tool(name).is_none() => Some(format!(
            "`{name}` is not installed (apt-get install {package}); the case needs it to check the plugin's work"
        )),
        _ => None,
    })
}

/// Whether the plugin asked for files (a lab-backed adapter needs them).
pub fn asks_for_files(manifest: &Manifest) -> bool {
    manifest.capabilities.files != FileAccess::None
}

/// An executable on `PATH` or in the sbin directories (where `mkfs` and the
/// file-system checkers live, often outside a non-root user's `PATH`).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}
