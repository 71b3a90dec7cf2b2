//! `homeward plugin list`, `homeward plugin inspect FILE` and
//! `homeward plugin test FILE` (the conformance suite).

use super::plugin_set::{self, Source};
use crate::conformance::{self, ImageSource, SuiteOptions, report};
use crate::plugin::capability::FileAccess;
use crate::plugin::runtime::export_names;
use crate::plugin::{Manifest, Runtime, RuntimeOptions, api};
use crate::plugin::{PluginKind, PluginSettings};
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a new plugin crate of a kind, ready to build and test.
    New(super::plugin_new::NewArgs),
    /// List the plugins of the plugin set, whether each loads, and what it is granted.
    List,
    /// Show a plugin file's manifest, exports, API version and requested capabilities.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
    /// Run the conformance suite of the plugin's kind and report every case.
    ///
    /// Exit status: 0 when no case failed, 1 when one did, 2 when the plugin
    /// could not be tested at all. With `--config`, the plugin set's entry of
    /// the same id gives the grants, configuration and secrets (for a real
    /// `--target`).
    Test {
        /// The `.wasm` component.
        file: PathBuf,
        /// The endpoint adapter suites run against (default: a lab made for the run).
        #[arg(long, value_name = "ENDPOINT")]
        target: Option<String>,
        /// Also write the report as JUnit XML.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the report as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Run only cases whose name contains this text.
        #[arg(long, value_name = "TEXT")]
        case: Option<String>,
        /// Run only the smoke cases.
        #[arg(long)]
        smoke: bool,
        /// File-system images: `auto` (real mkfs tools when installed) or `shipped`.
        #[arg(long, value_name = "SOURCE", default_value = "auto")]
        images: String,
    },
}

pub fn run(
    cmd: PluginCommand,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New(args) => super::plugin_new::run(args, out),
        PluginCommand::List => list(config, out),
        PluginCommand::Inspect { file } => inspect(&file, out),
        PluginCommand::Test {
            file,
            target,
            junit,
            json,
            case,
            smoke,
            images,
        } => {
            let images = match images.as_str() {
                "auto" => ImageSource::Auto,
                "shipped" => ImageSource::Shipped,
                other => bail!("--images {other}: use `auto` or `shipped`"),
            };
            let options = SuiteOptions {
                target,
                settings: PluginSettings::default(),
                images,
                filter: case,
                smoke_only: smoke,
            };
            test(
                &file,
                config,
                options,
                junit.as_deref(),
                json.as_deref(),
                out,
            )
        }
    }
}

fn list(config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let source = plugin_set::locate(config);
    match &source {
        Source::Embedded => writeln!(out, "plugin set: embedded defaults (nothing granted)")?,
        Source::File(path) => writeln!(out, "plugin set: {}", path.display())?,
    }
    let (_runtime, entries) = plugin_set::load_all(&source)?;
    let mut failed = false;
    writeln!(
        out,
        "{:<16} {:<9} {:<19} {:<6} {:<8} GRANTS",
        "ID", "VERSION", "KIND", "API", "STATUS"
    )?;
    for entry in &entries {
        match &entry.loaded {
            Ok(plugin) => {
                let m = plugin.manifest();
                let g = &plugin.meta().grants;
                let mut grants: Vec<String> =
                    g.network.iter().map(|h| format!("net {h}")).collect();
                grants.extend(g.dirs.iter().map(|d| {
                    format!(
                        "dir {}={}{}",
                        d.guest,
                        d.host.display(),
                        if d.write { " (rw)" } else { "" }
                    )
                }));
                if g.disk_write {
                    grants.push("disk-write".to_string());
                }
                writeln!(
                    out,
                    "{:<16} {:<9} {:<19} {:<6} {:<8} {}",
                    m.id,
                    m.version.to_string(),
                    m.kind.to_string(),
                    m.api.to_string(),
                    "ok",
                    if grants.is_empty() {
                        "-".to_string()
                    } else {
                        grants.join(", ")
                    }
                )?;
                for note in &plugin.meta().unused_grants {
                    writeln!(out, "    warning: {note}")?;
                }
            }
            Err(e) => {
                failed = true;
                writeln!(
                    out,
                    "{:<16} {:<9} {:<19} {:<6} {:<8} -",
                    entry.id, "?", "?", "?", "FAILED"
                )?;
                writeln!(out, "    {} ({}): {e}", entry.id, entry.origin)?;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn test(
    file: &Path,
    config: Option<&Path>,
    mut options: SuiteOptions,
    junit: Option<&Path>,
    json: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let manifest = match Manifest::from_component(&bytes, &name) {
        Ok(manifest) => manifest,
        Err(e) => {
            writeln!(out, "cannot test {name}: {e}")?;
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(config) = config {
        options.settings = settings_from_set(config, &manifest.id)?;
    }
    writeln!(
        out,
        "conformance: {} {} ({}, API {}){}",
        manifest.id,
        manifest.version,
        manifest.kind,
        manifest.api,
        match (&options.target, manifest.kind) {
            (Some(target), _) => format!(" against {target}"),
            (None, PluginKind::HypervisorAdapter | PluginKind::CloudAdapter) =>
                " against a lab made for this run".to_string(),
            (None, _) => String::new(),
        }
    )?;
    writeln!(out, "{}", report::table_header())?;
    let mut io_error = None;
    let report = match conformance::run(&bytes, &name, &options, &mut |case| {
        if let Err(e) = writeln!(out, "{}", report::table_row(case)).and_then(|()| out.flush()) {
            io_error.get_or_insert(e);
        }
    }) {
        Ok(report) => report,
        Err(e) => {
            writeln!(out, "cannot test {name}: {e}")?;
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(e) = io_error {
        return Err(e.into());
    }
    writeln!(out, "{}", report.summary_line())?;
    if let Some(path) = junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write the JUnit report {}", path.display()))?;
        writeln!(out, "JUnit report: {}", path.display())?;
    }
    if let Some(path) = json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write the JSON report {}", path.display()))?;
        writeln!(out, "JSON report: {}", path.display())?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The settings of plugin `id` in the plugin-set file at `path`.
fn settings_from_set(path: &Path, id: &str) -> anyhow::Result<PluginSettings> {
    let parsed = plugin_set::parse_file(path)?;
    let set = parsed
        .set
        .with_context(|| format!("{} did not yield a plugin set", path.display()))?;
    let entry = set
        .plugins
        .iter()
        .find(|entry| entry.id == id)
        .with_context(|| {
            format!(
                "{} has no [plugins.{id}] entry: add one with the grants, configuration and secrets the test should use",
                path.display()
            )
        })?;
    let mut settings = PluginSettings::from_entry(entry, &set.runtime)?;
    // The suite tests the file it was given, whatever the set expects of it.
    settings.sha256 = None;
    settings.version = None;
    Ok(settings)
}

fn inspect(file: &Path, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let manifest = Manifest::from_component(&bytes, &name)?;
    writeln!(out, "file:        {name}")?;
    writeln!(out, "size:        {} bytes", bytes.len())?;
    writeln!(out, "id:          {}", manifest.id)?;
    writeln!(out, "version:     {}", manifest.version)?;
    writeln!(
        out,
        "kind:        {} (world homeward:plugin/{})",
        manifest.kind,
        manifest.kind.world()
    )?;
    let verdict = match api::select(&manifest.id, &manifest.api) {
        Ok(line) => format!("compatible (served by {line:?} bindings)"),
        Err(e) => format!("REFUSED: {e}"),
    };
    writeln!(
        out,
        "api:         {} — this host serves {}: {verdict}",
        manifest.api,
        api::host_api()
    )?;
    let caps = &manifest.capabilities;
    writeln!(out, "requests:")?;
    if caps.network.is_empty() {
        writeln!(out, "  network:   none")?;
    } else {
        let list: Vec<String> = caps.network.iter().map(ToString::to_string).collect();
        writeln!(out, "  network:   {}", list.join(", "))?;
    }
    let files = match caps.files {
        FileAccess::None => "none",
        FileAccess::ReadOnly => "read-only (granted directories)",
        FileAccess::ReadWrite => "read-write (granted directories)",
    };
    writeln!(out, "  files:     {files}")?;
    writeln!(out, "  disk-write: {}", caps.disk_write)?;

    let runtime = Runtime::new(RuntimeOptions::default())?;
    let (component, _) = runtime.compile(&bytes, &manifest.id)?;
    writeln!(out, "exports:")?;
    for export in export_names(runtime.engine(), &component) {
        writeln!(out, "  {export}")?;
    }
    writeln!(out, "imports:")?;
    for (import, _) in component.component_type().imports(runtime.engine()) {
        writeln!(out, "  {import}")?;
    }
    Ok(ExitCode::SUCCESS)
}
