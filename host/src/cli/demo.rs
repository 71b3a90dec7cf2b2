//! `homeward demo`: the host's main job on its embedded defaults.
//!
//! Until the failback workflow lands, the main job is the guest fix-up a
//! failback ends with: load the embedded plugins, make a small guest disk (an
//! ext4 image made by `mkfs.ext4`, or a directory when e2fsprogs is missing),
//! open its file system through the ext4 handler plugin, and run the template
//! guest step on it the way a failback would: plan, show each file before and
//! after, apply through the handler, plan again to prove a second run changes
//! nothing, and let `e2fsck` judge the disk.

use super::plugin_set::default_cache_dir;
use crate::config::Grants;
use crate::disk::BlockDevice;
use crate::disk::layout;
use crate::embedded;
use crate::filesystem::{FsHandlers, VolumeTree};
use crate::guest_fs::{DirTree, GuestFsError, GuestTree, PlannedChange};
use crate::plugin::instance::StepContext;
use crate::plugin::{PluginSettings, Runtime, RuntimeOptions};
use anyhow::Context;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
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

    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let guest = DemoGuest::prepare(&runtime, scratch.path(), out)?;
    let tree = guest.tree();
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
        guest.apply(&PlannedChange::from(change))?;
    }
    let again = instance.plan_guest_step(tree.clone(), &context)?;
    writeln!(
        out,
        "plan after apply: {} ({} changes)",
        again.summary,
        again.changes.len()
    )?;
    // The tree's other holders go first, so the disk can be synced and closed.
    drop((tree, instance));
    let disk_clean = guest.finish(out)?;
    writeln!(out, "done in {:?}", started.elapsed())?;
    Ok(if again.changes.is_empty() && disk_clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The guest the demo fixes: a real disk when `mkfs.ext4` can make one.
enum DemoGuest {
    Disk {
        tree: Arc<VolumeTree>,
        image: PathBuf,
    },
    Dir(Arc<DirTree>),
}

impl DemoGuest {
    fn prepare(runtime: &Runtime, scratch: &Path, out: &mut dyn Write) -> anyhow::Result<Self> {
        let source = scratch.join("guest");
        let etc = source.join("etc");
        std::fs::create_dir_all(&etc)?;
        std::fs::write(
            etc.join("os-release"),
            "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=rocky\n",
        )?;
        std::fs::write(etc.join("motd"), "Authorized use only.\n")?;

        let image = scratch.join("web01-root.img");
        let made = std::fs::File::create(&image)
            .and_then(|f| f.set_len(32 << 20))
            .and_then(|()| {
                Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-b", "4096", "-L", "web01-root", "-d"])
                    .arg(&source)
                    .arg(&image)
                    .status()
            });
        match made {
            Ok(status) if status.success() => {}
            other => {
                writeln!(
                    out,
                    "mkfs.ext4 is not usable here ({other:?}): the guest is a directory instead of a disk"
                )?;
                return Ok(DemoGuest::Dir(Arc::new(DirTree::new(&source)?)));
            }
        }

        // The demo changes its own scratch disk: grant the handlers `disk-write`.
        let settings = || PluginSettings {
            grants: Grants {
                disk_write: true,
                ..Grants::default()
            },
            ..PluginSettings::default()
        };
        let handlers = FsHandlers::new(
            [embedded::FS_EXT4, embedded::FS_XFS, embedded::FS_REISERFS]
                .into_iter()
                .map(|p| runtime.load(p.wasm, &format!("embedded:{}", p.id), settings()))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let disk: Arc<dyn BlockDevice> = crate::disk::open(&image, true, None)?.into();
        let layout = layout::resolve(disk)?;
        let volume = layout.volume("disk")?;
        let detection = handlers
            .detect(&volume.device, &volume.id)?
            .context("no handler recognised the demo disk")?;
        writeln!(
            out,
            "disk: {} — {} {} (uuid {}, label {}), opened by plugin `{}`",
            image.display(),
            detection.info.fs_type,
            detection.info.version,
            detection.info.uuid,
            detection.info.label,
            detection.plugin_id
        )?;
        let opened = handlers.open(&detection, volume.device.clone(), &volume.id, true)?;
        let name = format!("{} volume {}", image.display(), volume.id);
        Ok(DemoGuest::Disk {
            tree: Arc::new(VolumeTree::new(opened, name)),
            image,
        })
    }

    fn tree(&self) -> Arc<dyn GuestTree> {
        match self {
            DemoGuest::Disk { tree, .. } => tree.clone(),
            DemoGuest::Dir(tree) => tree.clone(),
        }
    }

    fn apply(&self, change: &PlannedChange) -> Result<(), GuestFsError> {
        match self {
            DemoGuest::Disk { tree, .. } => tree.apply(change),
            DemoGuest::Dir(tree) => tree.apply(change),
        }
    }

    /// Syncs the disk and shows what its own checker says; false when the
    /// checker ran and found the file system damaged.
    fn finish(self, out: &mut dyn Write) -> anyhow::Result<bool> {
        let DemoGuest::Disk { tree, image } = self else {
            return Ok(true);
        };
        let tree = Arc::into_inner(tree).context("the guest tree is still shared")?;
        tree.close()?;
        match Command::new("e2fsck").arg("-fn").arg(&image).output() {
            Ok(check) => {
                let clean = check.status.success();
                let verdict = if clean { "clean" } else { "NOT CLEAN" };
                writeln!(out, "e2fsck -fn {}: {verdict}", image.display())?;
                Ok(clean)
            }
            Err(e) => {
                writeln!(out, "e2fsck not run: {e}")?;
                Ok(true)
            }
        }
    }
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
