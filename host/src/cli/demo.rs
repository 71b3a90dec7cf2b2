//! `homeward demo`: the host's main job on its embedded defaults.
//!
//! Until the failback workflow lands, the main job is the plugin host itself:
//! load the embedded plugin set, then run the template guest step on a small
//! guest tree the way a failback would (plan, show each file before and after,
//! apply, plan again to prove a second run changes nothing).

use super::plugin_set::default_cache_dir;
use crate::embedded;
use crate::guest_fs::{ChangeKind, DirTree, GuestTree, PlannedChange};
use crate::plugin::instance::{self, StepContext};
use crate::plugin::{PluginSettings, Runtime, RuntimeOptions};
use anyhow::Context;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

pub fn run(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: default_cache_dir(),
        ..RuntimeOptions::default()
    })?;
    let plugin = runtime.load(
        embedded::TEMPLATE.wasm,
        "embedded:template",
        PluginSettings::default(),
    )?;
    let m = plugin.manifest();
    writeln!(
        out,
        "loaded plugin `{}` {} ({}, API {}, compiled from {:?}) in {:?}",
        m.id,
        m.version,
        m.kind,
        m.api,
        plugin.meta().compiled_from,
        started.elapsed()
    )?;

    let guest = tempfile::tempdir().context("creating a scratch guest tree")?;
    let etc = guest.path().join("etc");
    std::fs::create_dir_all(&etc)?;
    std::fs::write(
        etc.join("os-release"),
        "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=rocky\n",
    )?;
    std::fs::write(etc.join("motd"), "Authorized use only.\n")?;
    let tree = Arc::new(DirTree::new(guest.path())?);
    writeln!(out, "guest: {}", tree.describe())?;

    let context = StepContext {
        vm_name: "web01".to_string(),
        recorded_nics: Vec::new(),
        mac_map: Vec::new(),
    };
    let mut instance = plugin.instantiate()?;
    instance.ping()?;
    let plan = instance.plan_guest_step(tree.clone(), &context)?;
    writeln!(out, "plan: {}", plan.summary)?;
    for change in &plan.changes {
        let before = tree.read_file(&change.path).ok();
        writeln!(
            out,
            "  {:?} {} ({})",
            change.kind, change.path, change.reason
        )?;
        print_text(out, "    before", before.as_deref())?;
        print_text(out, "    after ", Some(&change.content))?;
        tree.apply(&to_planned(change))?;
    }
    let again = instance.plan_guest_step(tree.clone(), &context)?;
    writeln!(
        out,
        "plan after apply: {} ({} changes)",
        again.summary,
        again.changes.len()
    )?;
    writeln!(out, "done in {:?}", started.elapsed())?;
    Ok(if again.changes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_text(out: &mut dyn Write, label: &str, bytes: Option<&[u8]>) -> std::io::Result<()> {
    match bytes {
        None => writeln!(out, "{label}: (absent)")?,
        Some(bytes) => {
            for line in String::from_utf8_lossy(bytes).lines() {
                writeln!(out, "{label}: {line}")?;
            }
        }
    }
    Ok(())
}

/// The host-side form of a v0.1 plan entry.
pub fn to_planned(change: &instance::FileChange) -> PlannedChange {
    PlannedChange {
        path: change.path.clone(),
        kind: match change.kind {
            instance::ChangeKind::CreateFile => ChangeKind::CreateFile,
            instance::ChangeKind::ReplaceFile => ChangeKind::ReplaceFile,
            instance::ChangeKind::Remove => ChangeKind::Remove,
            instance::ChangeKind::CreateDir => ChangeKind::CreateDir,
            instance::ChangeKind::CreateSymlink => ChangeKind::CreateSymlink,
        },
        content: change.content.clone(),
        mode: change.mode,
    }
}
