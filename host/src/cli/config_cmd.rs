//! `homeward config check`: every problem of the plugin-set file, with its line.

use super::plugin_set::{self, Source};
use crate::config::{self, Diagnostic, Severity};
use crate::plugin::{PluginSettings, Runtime, RuntimeOptions};
use anyhow::{Context, bail};
use clap::Subcommand;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Config subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report every bad key, path, version requirement or digest, with its line.
    Check,
}

pub fn run(cmd: ConfigCommand, config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check => check(config, out),
    }
}

fn check(config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let path = match plugin_set::locate(config) {
        Source::File(path) => path,
        Source::Embedded => bail!("no plugin-set file: pass --config FILE or create ./homeward.toml"),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = config::parse(&text, &path);
    let mut diagnostics = parsed.diagnostics.clone();
    if let Some(set) = &parsed.set {
        diagnostics.extend(config::check_files(set, &text));
        // Files that exist and match their digest are loaded, so a wrong id,
        // version requirement or API version is reported too.
        if !diagnostics.iter().any(Diagnostic::is_error) {
            let runtime = Runtime::new(RuntimeOptions::default())?;
            let file = path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            for entry in &set.plugins {
                let result = PluginSettings::from_entry(entry, &set.runtime)
                    .map_err(|e| e.to_string())
                    .and_then(|settings| runtime.load_file(&entry.path, settings).map(drop).map_err(|e| e.to_string()));
                if let Err(message) = result {
                    diagnostics.push(Diagnostic {
                        severity: Severity::Error,
                        file: file.clone(),
                        line: entry.line,
                        column: 1,
                        key: format!("plugins.{}", entry.id),
                        message,
                    });
                }
            }
        }
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    for d in &diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    writeln!(out, "{}: {errors} error(s), {warnings} warning(s)", path.display())?;
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
