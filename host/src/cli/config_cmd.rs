//! `homeward config check`: every problem of the plugin-set file, with its line.

use super::plugin_set::{self, Source};
use crate::config::{self, Diagnostic, PluginEntry, Severity};
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

pub fn run(
    cmd: ConfigCommand,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check => check(config, out),
    }
}

fn check(config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let path = match plugin_set::locate(config) {
        Source::File(path) => path,
        Source::Embedded => {
            bail!("no plugin-set file: pass --config FILE or create ./homeward.toml")
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = config::parse(&text, &path);
    let mut diagnostics = parsed.diagnostics.clone();
    if let Some(set) = &parsed.set {
        diagnostics.extend(config::check_files(set, &text));
        // Files that exist and match their digest are loaded, so a wrong id,
        // version requirement or API version is reported too.
        if !diagnostics.iter().any(Diagnostic::is_error) {
            let runtime = Runtime::new(RuntimeOptions::default())?;
            let file = path
                .file_name()
                .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
            for entry in &set.plugins {
                let mut report = |severity, key: String, message: String| {
                    diagnostics.push(Diagnostic {
                        severity,
                        file: file.clone(),
                        line: entry.line,
                        column: 1,
                        key,
                        message,
                    });
                };
                for (name, source) in &entry.secrets {
                    if let Err(e) = source.resolve() {
                        report(
                            Severity::Error,
                            format!("plugins.{}.secrets.{name}", entry.id),
                            e.to_string(),
                        );
                    }
                }
                // Loading needs no secrets: check the plugin itself regardless.
                let settings = PluginSettings::from_entry(&without_secrets(entry), &set.runtime)
                    .unwrap_or_default();
                match runtime.load_file(&entry.path, settings) {
                    Ok(plugin) => {
                        for note in &plugin.meta().unused_grants {
                            report(
                                Severity::Warning,
                                format!("plugins.{}.grants", entry.id),
                                note.clone(),
                            );
                        }
                    }
                    Err(e) => report(
                        Severity::Error,
                        format!("plugins.{}", entry.id),
                        e.to_string(),
                    ),
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
    writeln!(
        out,
        "{}: {errors} error(s), {warnings} warning(s)",
        path.display()
    )?;
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn without_secrets(entry: &PluginEntry) -> PluginEntry {
    PluginEntry {
        secrets: Default::default(),
        ..entry.clone()
    }
}
