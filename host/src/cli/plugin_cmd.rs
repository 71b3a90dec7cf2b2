//! `homeward plugin list` and `homeward plugin inspect FILE`.

use super::plugin_set::{self, Source};
use crate::plugin::capability::FileAccess;
use crate::plugin::runtime::export_names;
use crate::plugin::{Manifest, Runtime, RuntimeOptions, api};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Plugin subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the plugins of the plugin set, whether each loads, and what it is granted.
    List,
    /// Show a plugin file's manifest, exports, API version and requested capabilities.
    Inspect {
        /// The `.wasm` component.
        file: PathBuf,
    },
}

pub fn run(
    cmd: PluginCommand,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::List => list(config, out),
        PluginCommand::Inspect { file } => inspect(&file, out),
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
