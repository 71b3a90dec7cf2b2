//! `homeward fs`: look into (and fix) a guest disk offline, the way `debugfs`
//! or `virt-cat` do, through the file-system handler plugins.
//!
//! Every subcommand opens the image (raw, VMDK flat, VHD fixed), resolves its
//! partitions and logical volumes, picks a volume (`--volume`, or the only one
//! a handler recognises) and asks the handler that claims it. Operators use it
//! to inspect a failed-back disk; the tests drive the handlers through it.

use super::plugin_set;
use crate::disk::BlockDevice;
use crate::disk::layout::{self, Layout};
use crate::filesystem::{Detection, FsHandlers};
use crate::guest_fs::{FileKind, FileStat};
use crate::plugin::{PluginVolume, Runtime};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// File-system subcommands.
#[derive(Debug, Subcommand)]
pub enum FsCommand {
    /// List the disk's volumes and the file system on each.
    Probe {
        /// The disk image (raw, VMDK, VHD fixed) or block device.
        image: PathBuf,
    },
    /// Print the byte ranges of a volume that are in use.
    Used(VolumeArgs),
    /// List a directory.
    Ls {
        #[command(flatten)]
        target: VolumeArgs,
        /// Directory inside the guest.
        #[arg(default_value = "/")]
        path: String,
    },
    /// Show a file's metadata (a final symlink is not followed).
    Stat {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
    },
    /// Print a file's content.
    Cat {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
    },
    /// Print a symlink's target.
    Readlink {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
    },
    /// Create or replace a file (the image is changed in place).
    Put {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
        /// Host file with the new content.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Permission bits, in octal.
        #[arg(long, default_value = "644", value_parser = parse_mode)]
        mode: u32,
    },
    /// Create a directory (its parent must exist).
    Mkdir {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
        /// Permission bits, in octal.
        #[arg(long, default_value = "755", value_parser = parse_mode)]
        mode: u32,
    },
    /// Create a symlink at PATH pointing to TARGET.
    Ln {
        #[command(flatten)]
        target: VolumeArgs,
        /// What the link points to, as stored.
        link_target: String,
        /// Path of the new link inside the guest.
        path: String,
    },
    /// Remove a file or symlink.
    Rm {
        #[command(flatten)]
        target: VolumeArgs,
        /// Path inside the guest.
        path: String,
    },
}

/// Which disk and volume.
#[derive(Debug, Args)]
pub struct VolumeArgs {
    /// The disk image (raw, VMDK, VHD fixed) or block device.
    image: PathBuf,
    /// The volume: `disk` (a bare file system), `p1`, `p5`, `vg/lv`. Default:
    /// the only volume a handler recognises.
    #[arg(long, short = 'v')]
    volume: Option<String>,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{text:?} is not an octal mode like 644"))
}

pub fn run(cmd: FsCommand, config: Option<&Path>, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let writes = matches!(
        cmd,
        FsCommand::Put { .. }
            | FsCommand::Mkdir { .. }
            | FsCommand::Ln { .. }
            | FsCommand::Rm { .. }
    );
    // The runtime drives call deadlines: it must outlive every call.
    let (_runtime, handlers) = load_handlers(config, writes)?;
    match cmd {
        FsCommand::Probe { image } => probe(&handlers, &image, out),
        FsCommand::Used(target) => used(&handlers, &target, out),
        FsCommand::Ls { target, path } => ls(&handlers, &target, &path, out),
        FsCommand::Stat { target, path } => {
            let mut v = open(&handlers, &target, false)?;
            let stat = v
                .volume
                .stat(&path)
                .with_context(|| format!("stat {path}"))?;
            write_stat(out, &path, &stat)?;
            Ok(ExitCode::SUCCESS)
        }
        FsCommand::Cat { target, path } => {
            // Streamed in 4 MiB calls: a file may be larger than memory.
            const CHUNK: u32 = 4 << 20;
            let mut v = open(&handlers, &target, false)?;
            let mut offset = 0u64;
            loop {
                let chunk = v
                    .volume
                    .read_file(&path, offset, CHUNK)
                    .with_context(|| format!("reading {path} on {}", v.name))?;
                out.write_all(&chunk)?;
                offset += chunk.len() as u64;
                if chunk.len() < CHUNK as usize {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        FsCommand::Readlink { target, path } => {
            let mut v = open(&handlers, &target, false)?;
            writeln!(out, "{}", v.volume.read_link(&path)?)?;
            Ok(ExitCode::SUCCESS)
        }
        FsCommand::Put {
            target,
            path,
            from,
            mode,
        } => {
            let content =
                std::fs::read(&from).with_context(|| format!("cannot read {}", from.display()))?;
            let what = format!("wrote {} bytes to {path}", content.len());
            change(&handlers, &target, &what, out, |volume| {
                volume.write_file(&path, &content, mode)?;
                // Read it back through the handler before calling it done.
                if volume.read_whole(&path, content.len() as u64)? != content {
                    bail!("{path} reads back different from what was written");
                }
                Ok(())
            })
        }
        FsCommand::Mkdir { target, path, mode } => {
            let what = format!("created directory {path}");
            change(&handlers, &target, &what, out, |v| {
                Ok(v.create_dir(&path, mode)?)
            })
        }
        FsCommand::Ln {
            target,
            link_target,
            path,
        } => {
            let what = format!("created symlink {path} -> {link_target}");
            change(&handlers, &target, &what, out, |v| {
                Ok(v.create_symlink(&path, &link_target)?)
            })
        }
        FsCommand::Rm { target, path } => {
            let what = format!("removed {path}");
            change(&handlers, &target, &what, out, |v| Ok(v.remove(&path)?))
        }
    }
}

/// Opens the volume for writing, runs `op`, syncs, and reports `what`.
fn change(
    handlers: &FsHandlers,
    target: &VolumeArgs,
    what: &str,
    out: &mut dyn Write,
    op: impl FnOnce(&mut PluginVolume) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut opened = open(handlers, target, true)?;
    op(&mut opened.volume).with_context(|| format!("{what} on {}: failed", opened.name))?;
    let name = opened.name.clone();
    opened
        .volume
        .close()
        .with_context(|| format!("syncing {name}"))?;
    writeln!(out, "{what} on {name}")?;
    Ok(ExitCode::SUCCESS)
}

/// The handlers of the plugin set; for the embedded set, `writes` grants them
/// `disk-write` (the operator's write command is the grant).
fn load_handlers(config: Option<&Path>, writes: bool) -> anyhow::Result<(Runtime, FsHandlers)> {
    let source = plugin_set::locate(config);
    let (runtime, entries) = plugin_set::load_all_with(&source, writes)?;
    let mut plugins = Vec::new();
    for entry in entries {
        match entry.loaded {
            Ok(plugin) => plugins.push(plugin),
            Err(e) => tracing::warn!(plugin = entry.id, "not loaded: {e}"),
        }
    }
    Ok((runtime, FsHandlers::new(plugins)))
}

/// The disk, opened and resolved into volumes.
fn open_disk(image: &Path, writable: bool) -> anyhow::Result<(Arc<dyn BlockDevice>, Layout)> {
    let device: Arc<dyn BlockDevice> = crate::disk::open(image, writable, None)?.into();
    let layout = layout::resolve(device.clone())
        .with_context(|| format!("reading the partitions of {}", image.display()))?;
    Ok((device, layout))
}

fn probe(handlers: &FsHandlers, image: &Path, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let (device, layout) = open_disk(image, false)?;
    writeln!(
        out,
        "disk: {} ({} bytes)",
        device.describe(),
        device.capacity()
    )?;
    writeln!(out, "layout: {:?}", layout.scheme)?;
    for note in &layout.notes {
        writeln!(out, "note: {note}")?;
    }
    for volume in &layout.volumes {
        writeln!(out, "volume {} ({})", volume.id, volume.description)?;
        match handlers.detect(&volume.device, &volume.id) {
            Ok(Some(detection)) => write_detection(out, &detection)?,
            Ok(None) => writeln!(
                out,
                "  file system:  none recognised ({})",
                handlers.ids().join(", ")
            )?,
            Err(e) => writeln!(out, "  error:        {e}")?,
        }
    }
    for skipped in &layout.skipped {
        writeln!(out, "skipped {}: {}", skipped.id, skipped.reason)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_detection(out: &mut dyn Write, d: &Detection) -> std::io::Result<()> {
    let i = &d.info;
    writeln!(out, "  handler:      {}", d.plugin_id)?;
    writeln!(out, "  type:         {}", i.fs_type)?;
    writeln!(out, "  version:      {}", i.version)?;
    writeln!(out, "  uuid:         {}", i.uuid)?;
    writeln!(out, "  label:        {}", i.label)?;
    writeln!(out, "  block size:   {}", i.block_size)?;
    writeln!(out, "  total blocks: {}", i.total_blocks)?;
    writeln!(out, "  free blocks:  {}", i.free_blocks)?;
    writeln!(
        out,
        "  state:        {}",
        if i.clean { "clean" } else { "needs recovery" }
    )?;
    writeln!(out, "  features:     {}", i.features.join(" "))
}

/// An open volume and its name for messages.
struct Opened {
    volume: PluginVolume,
    name: String,
}

/// The volume `target` names, and the handler that claims it.
fn select(
    handlers: &FsHandlers,
    target: &VolumeArgs,
    writable: bool,
) -> anyhow::Result<(Arc<dyn BlockDevice>, String, Detection)> {
    let (_disk, layout) = open_disk(&target.image, writable)?;
    let image = target.image.display();
    if let Some(id) = &target.volume {
        let volume = layout.volume(id)?;
        let detection = handlers
            .detect(&volume.device, &volume.id)?
            .with_context(|| {
                format!(
                    "no handler ({}) recognises the file system on volume {id} of {image}",
                    handlers.ids().join(", ")
                )
            })?;
        return Ok((
            volume.device.clone(),
            format!("{image} volume {id}"),
            detection,
        ));
    }
    let mut found = Vec::new();
    for volume in &layout.volumes {
        if let Some(detection) = handlers.detect(&volume.device, &volume.id)? {
            found.push((volume.device.clone(), volume.id.clone(), detection));
        }
    }
    match found.len() {
        1 => {
            let (device, id, detection) = found.remove(0);
            Ok((device, format!("{image} volume {id}"), detection))
        }
        0 => bail!(
            "no handler ({}) recognises a file system on any volume of {image}; `homeward fs probe {image}` shows what is there",
            handlers.ids().join(", ")
        ),
        _ => bail!(
            "{image} has several file systems ({}): choose one with --volume",
            found
                .iter()
                .map(|(_, id, d)| format!("{id}: {}", d.info.fs_type))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn open(handlers: &FsHandlers, target: &VolumeArgs, writable: bool) -> anyhow::Result<Opened> {
    let (device, name, detection) = select(handlers, target, writable)?;
    let volume = handlers
        .open(&detection, device, &name, writable)
        .with_context(|| format!("opening {} on {name}", detection.info.fs_type))?;
    Ok(Opened { volume, name })
}

fn used(
    handlers: &FsHandlers,
    target: &VolumeArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let (device, name, detection) = select(handlers, target, false)?;
    let ranges = handlers.used_extents(&detection, &device, &name)?;
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    for r in &ranges {
        writeln!(out, "{} {}", r.start, r.end - r.start)?;
    }
    writeln!(
        out,
        "# {} ranges, {total} of {} bytes in use ({:.2}%) on {name}",
        ranges.len(),
        device.capacity(),
        100.0 * total as f64 / device.capacity().max(1) as f64
    )?;
    Ok(ExitCode::SUCCESS)
}

fn ls(
    handlers: &FsHandlers,
    target: &VolumeArgs,
    path: &str,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let mut v = open(handlers, target, false)?;
    let entries = v
        .volume
        .read_dir(path)
        .with_context(|| format!("listing {path} on {}", v.name))?;
    for entry in entries {
        let full = if path.ends_with('/') {
            format!("{path}{}", entry.name)
        } else {
            format!("{path}/{}", entry.name)
        };
        let stat = v
            .volume
            .stat(&full)
            .with_context(|| format!("stat {full}"))?;
        let link = if stat.kind == FileKind::Symlink {
            format!(" -> {}", v.volume.read_link(&full)?)
        } else {
            String::new()
        };
        writeln!(
            out,
            "{}{} {:>5} {:>5} {:>10} {}{link}",
            kind_char(stat.kind),
            mode_string(stat.mode),
            stat.uid,
            stat.gid,
            stat.size,
            entry.name
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn write_stat(out: &mut dyn Write, path: &str, s: &FileStat) -> std::io::Result<()> {
    writeln!(out, "path:     {path}")?;
    writeln!(out, "kind:     {:?}", s.kind)?;
    writeln!(out, "size:     {}", s.size)?;
    writeln!(
        out,
        "mode:     {:04o} ({}{})",
        s.mode,
        kind_char(s.kind),
        mode_string(s.mode)
    )?;
    writeln!(out, "uid:      {}", s.uid)?;
    writeln!(out, "gid:      {}", s.gid)?;
    writeln!(out, "modified: {} ms since the epoch", s.modified_ms)
}

fn kind_char(kind: FileKind) -> char {
    match kind {
        FileKind::Regular => '-',
        FileKind::Directory => 'd',
        FileKind::Symlink => 'l',
        FileKind::Other => '?',
    }
}

fn mode_string(mode: u32) -> String {
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    bits.iter()
        .map(|&(bit, c)| if mode & bit != 0 { c } else { '-' })
        .collect()
}
