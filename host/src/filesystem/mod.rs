//! File systems on guest disks, through the file-system handler plugins.
//!
//! The host does not parse ext4, XFS or ReiserFS itself: it asks the
//! `filesystem-handler` plugins of the operator's set. [`FsHandlers`] holds
//! them and answers the three questions the rest of the host has about a
//! volume (a whole disk, a partition or a logical volume, see
//! [`crate::disk::layout`]):
//!
//! - *what is on it?* [`FsHandlers::detect`] probes every handler; the first
//!   that says "mine" wins. A handler that finds its own file system damaged
//!   answers with an error, which is reported only if nobody claims the volume.
//! - *which bytes are in use?* [`FsHandlers::used_extents`], so the data path
//!   can skip free space ([`used_map`] does it for a whole disk);
//! - *what is in it?* [`FsHandlers::open`] gives a [`PluginVolume`] to read
//!   and write files, and [`VolumeTree`] serves one as a guest tree to guest
//!   steps.
//!
//! [`AssembledGuest`] (`guest.rs`) puts a whole guest together from its disks:
//! the root volume found by its `/etc/fstab`, and the volumes that fstab
//! mounts beneath it.
//!
//! Each probe runs in a fresh instance, so a handler that traps on a hostile
//! volume cannot poison the next call.

mod guest;
mod tree;

pub use guest::{AssembledGuest, GuestError, manual_step};
pub use tree::VolumeTree;

use crate::disk::BlockDevice;
use crate::disk::layout::{Extent, Volume};
use crate::plugin::instance::{FsInfo, ProbeResult};
use crate::plugin::{Failure, LoadedPlugin, PluginError, PluginKind, PluginVolume};
use std::ops::Range;
use std::sync::Arc;

/// Why a file-system question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The plugin set has no file-system handler.
    #[error(
        "no file-system handler plugin is loaded: add fs-ext4, fs-xfs or fs-reiserfs to the plugin set, or run without --config to use the embedded ones"
    )]
    NoHandlers,

    /// Handlers recognised their own type on the volume but found it damaged.
    #[error("{volume}: {}", damaged_list(findings))]
    Damaged {
        /// The volume.
        volume: String,
        /// (handler, what it found), one per handler that objected.
        findings: Vec<(String, String)>,
    },

    /// A handler failed or was stopped.
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

fn damaged_list(findings: &[(String, String)]) -> String {
    findings
        .iter()
        .map(|(plugin, finding)| format!("{plugin} found a damaged file system: {finding}"))
        .collect::<Vec<_>>()
        .join("; ")
        + " (check it with the file system's own checker, e.g. e2fsck -fn, xfs_repair -n, reiserfsck --check)"
}

/// A volume a handler recognised.
#[derive(Debug, Clone)]
pub struct Detection {
    /// Index of the handler in the set.
    handler: usize,
    /// The handler's plugin id.
    pub plugin_id: String,
    /// What the handler reported.
    pub info: FsInfo,
}

/// The file-system handler plugins of a plugin set.
pub struct FsHandlers {
    handlers: Vec<LoadedPlugin>,
}

impl FsHandlers {
    /// Keeps the `filesystem-handler` plugins of `plugins`, in order.
    pub fn new(plugins: impl IntoIterator<Item = LoadedPlugin>) -> Self {
        FsHandlers {
            handlers: plugins
                .into_iter()
                .filter(|p| p.manifest().kind == PluginKind::FilesystemHandler)
                .collect(),
        }
    }

    /// Ids of the handlers, in probe order.
    pub fn ids(&self) -> Vec<&str> {
        self.handlers
            .iter()
            .map(|p| p.manifest().id.as_str())
            .collect()
    }

    /// Which handler's file system `device` holds, if any. `volume` names
    /// the volume in messages and in the `disk` resource the handlers see.
    pub fn detect(
        &self,
        device: &Arc<dyn BlockDevice>,
        volume: &str,
    ) -> Result<Option<Detection>, FsError> {
        if self.handlers.is_empty() {
            return Err(FsError::NoHandlers);
        }
        let mut findings = Vec::new();
        for (index, plugin) in self.handlers.iter().enumerate() {
            let id = plugin.manifest().id.clone();
            let answer = plugin
                .instantiate()
                .and_then(|mut instance| instance.probe_filesystem(device.clone(), volume));
            match answer {
                Ok(ProbeResult::Mine(info)) => {
                    return Ok(Some(Detection {
                        handler: index,
                        plugin_id: id,
                        info,
                    }));
                }
                Ok(ProbeResult::NotMine) => {}
                Err(PluginError::Failed {
                    failure: Failure::InvalidInput(message),
                    ..
                }) => findings.push((id, message)),
                Err(other) => findings.push((id, other.to_string())),
            }
        }
        if findings.is_empty() {
            Ok(None)
        } else {
            Err(FsError::Damaged {
                volume: volume.to_string(),
                findings,
            })
        }
    }

    /// The byte ranges of `device` in use, by the handler that recognised it.
    pub fn used_extents(
        &self,
        detection: &Detection,
        device: &Arc<dyn BlockDevice>,
        volume: &str,
    ) -> Result<Vec<Range<u64>>, FsError> {
        let plugin = self.handler(detection)?;
        Ok(plugin.instantiate()?.used_extents(device.clone(), volume)?)
    }

    /// Opens the file system, for writing when `writable`.
    pub fn open(
        &self,
        detection: &Detection,
        device: Arc<dyn BlockDevice>,
        volume: &str,
        writable: bool,
    ) -> Result<PluginVolume, FsError> {
        let plugin = self.handler(detection)?;
        Ok(plugin
            .instantiate()?
            .open_volume(device, volume, writable)?)
    }

    fn handler(&self, detection: &Detection) -> Result<&LoadedPlugin, FsError> {
        self.handlers
            .get(detection.handler)
            .ok_or(FsError::NoHandlers)
    }
}

/// The bytes of a `capacity`-byte disk that hold data, for a sync that skips
/// free space: every byte except the free space of the file systems the
/// handlers recognise. Volumes no handler knows, partition tables, gaps and
/// swap are kept whole, so nothing a guest needs is ever skipped. Returns the
/// sorted, merged ranges and, per volume, what was decided (for the log).
pub fn used_map(
    handlers: &FsHandlers,
    capacity: u64,
    volumes: &[Volume],
) -> Result<(Vec<Range<u64>>, Vec<String>), FsError> {
    let mut free: Vec<Range<u64>> = Vec::new();
    let mut notes = Vec::new();
    for volume in volumes {
        let Some(detection) = handlers.detect(&volume.device, &volume.id)? else {
            notes.push(format!(
                "{}: no file system recognised; copied whole",
                volume.id
            ));
            continue;
        };
        let used = handlers.used_extents(&detection, &volume.device, &volume.id)?;
        let used_bytes: u64 = used.iter().map(|r| r.end - r.start).sum();
        notes.push(format!(
            "{}: {} ({}), {} of {} bytes in use",
            volume.id,
            detection.info.fs_type,
            detection.plugin_id,
            used_bytes,
            volume.device.capacity()
        ));
        for gap in complement(&used, volume.device.capacity()) {
            free.extend(to_disk(&volume.extents, gap));
        }
    }
    free.sort_by_key(|r| r.start);
    Ok((complement(&merge(free), capacity), notes))
}

/// The ranges of `[0, len)` not covered by sorted, disjoint `ranges`.
fn complement(ranges: &[Range<u64>], len: u64) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let mut at = 0;
    for r in ranges {
        if r.start > at {
            out.push(at..r.start.min(len));
        }
        at = at.max(r.end);
    }
    if at < len {
        out.push(at..len);
    }
    out
}

fn merge(sorted: Vec<Range<u64>>) -> Vec<Range<u64>> {
    let mut out: Vec<Range<u64>> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Maps a range of a volume onto the disk through the volume's extents.
fn to_disk(extents: &[Extent], range: Range<u64>) -> Vec<Range<u64>> {
    extents
        .iter()
        .filter_map(|e| {
            let start = range.start.max(e.start);
            let end = range.end.min(e.start + e.len);
            (start < end)
                .then(|| e.disk_offset + (start - e.start)..e.disk_offset + (end - e.start))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complement_and_segment_mapping() {
        assert_eq!(complement(&[2..4, 6..8], 10), vec![0..2, 4..6, 8..10]);
        assert_eq!(complement(&[0..4, 4..10], 10), Vec::<Range<u64>>::new());
        // A volume made of disk bytes 100..110 then 50..60.
        let extents = [
            Extent {
                start: 0,
                disk_offset: 100,
                len: 10,
            },
            Extent {
                start: 10,
                disk_offset: 50,
                len: 10,
            },
        ];
        assert_eq!(to_disk(&extents, 5..15), vec![105..110, 50..55]);
    }
}
