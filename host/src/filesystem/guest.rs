//! A guest's file system tree assembled from its disks, the way the guest
//! itself would mount it: the root volume (the one with `/etc/fstab`) and,
//! beneath it, the volumes its fstab names (`/boot`, `/var`, ...).
//!
//! Guest steps see the result as one [`GuestTree`]; their planned changes are
//! routed to the volume that holds each path ([`AssembledGuest::apply`]).
//! Volumes are found on every disk given, through the layouts (partitions,
//! LVM) and the file-system handlers; fstab entries are matched by UUID,
//! label, LVM name (`/dev/mapper/vg-lv`, `/dev/vg/lv`) or kernel device name
//! (`/dev/sdb2` = second disk, partition 2).

use super::tree::VolumeTree;
use super::{Detection, FsError, FsHandlers};
use crate::disk::BlockDevice;
use crate::disk::layout::{self, LayoutError};
use crate::guest_fs::{DirEntry, FileStat, GuestFsError, GuestTree, PlannedChange};
use crate::plugin::PluginError;
use std::sync::Arc;

/// Why a guest could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// A disk's partitions or volumes could not be read.
    #[error("disk {disk}: {source}")]
    Layout {
        /// The disk.
        disk: String,
        /// Why.
        #[source]
        source: LayoutError,
    },
    /// No volume holds `/etc/fstab`.
    #[error(
        "no root file system found: no recognised volume has /etc/fstab (volumes seen: {seen}); give every disk of the VM, or check `homeward fs probe` on each"
    )]
    NoRoot {
        /// What was found, for the operator.
        seen: String,
    },
    /// Several volumes look like a root.
    #[error("several volumes hold /etc/fstab ({candidates}): give only the disks of one VM")]
    AmbiguousRoot {
        /// The candidates.
        candidates: String,
    },
    /// A handler failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// A handler failed on the root's fstab.
    #[error("reading /etc/fstab on {volume}: {source}")]
    Fstab {
        /// The root volume.
        volume: String,
        /// Why.
        #[source]
        source: Box<PluginError>,
    },
}

/// One volume of the guest and what the handlers made of it.
struct Found {
    /// `disk0:p2`, `disk1:vg0/root`.
    name: String,
    /// Index of the disk in the order given.
    disk: usize,
    /// The layout's volume id (`p2`, `vg0/root`, `disk`).
    id: String,
    device: Arc<dyn BlockDevice>,
    detection: Detection,
}

/// One mounted volume.
struct Mount {
    /// Where it is mounted in the guest (`/`, `/boot`).
    point: String,
    tree: VolumeTree,
    /// Whether it was opened for writing.
    writable: bool,
}

/// A guest's tree: the root volume with its fstab mounts.
pub struct AssembledGuest {
    /// Longest mount point first, so the first match of a path is its mount.
    mounts: Vec<Mount>,
    notes: Vec<String>,
}

impl AssembledGuest {
    /// Finds the root file system on `disks` (named for messages) and mounts
    /// what its fstab lists. With `writable`, volumes are opened for writing
    /// where the handler can write; a volume it cannot write is opened
    /// read-only, noted, and changes there become manual steps.
    pub fn assemble(
        handlers: &FsHandlers,
        disks: &[(String, Arc<dyn BlockDevice>)],
        writable: bool,
    ) -> Result<AssembledGuest, GuestError> {
        let mut found = Vec::new();
        let mut seen = Vec::new();
        for (index, (disk_name, device)) in disks.iter().enumerate() {
            let layout = layout::resolve(device.clone()).map_err(|source| GuestError::Layout {
                disk: disk_name.clone(),
                source,
            })?;
            for volume in &layout.volumes {
                let name = format!("disk{index}:{}", volume.id);
                match handlers.detect(&volume.device, &name)? {
                    Some(detection) => {
                        seen.push(format!("{name} {}", detection.info.fs_type));
                        found.push(Found {
                            name,
                            disk: index,
                            id: volume.id.clone(),
                            device: volume.device.clone(),
                            detection,
                        });
                    }
                    None => seen.push(format!("{name} (unrecognised)")),
                }
            }
        }

        let mut roots = Vec::new();
        for (i, f) in found.iter().enumerate() {
            let mut volume = handlers.open(&f.detection, f.device.clone(), &f.name, false)?;
            if volume.stat("/etc/fstab").is_ok() {
                let fstab = volume.read_whole("/etc/fstab", 1 << 20).map_err(|source| {
                    GuestError::Fstab {
                        volume: f.name.clone(),
                        source: Box::new(source),
                    }
                })?;
                roots.push((i, String::from_utf8_lossy(&fstab).into_owned()));
            }
        }
        let (root_index, fstab) = match roots.len() {
            1 => roots.remove(0),
            0 => {
                return Err(GuestError::NoRoot {
                    seen: seen.join(", "),
                });
            }
            _ => {
                return Err(GuestError::AmbiguousRoot {
                    candidates: roots
                        .iter()
                        .map(|(i, _)| found[*i].name.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        };

        let mut notes = vec![format!(
            "root: {} ({})",
            found[root_index].name, found[root_index].detection.info.fs_type
        )];
        let mut wanted = vec![("/".to_string(), root_index)];
        for entry in parse_fstab(&fstab) {
            match found.iter().position(|f| entry.names(f)) {
                Some(i) if i != root_index => {
                    notes.push(format!(
                        "fstab: {} on {} ({})",
                        entry.point, found[i].name, entry.spec
                    ));
                    wanted.push((entry.point, i));
                }
                Some(_) => {}
                None => notes.push(format!(
                    "fstab: {} ({}) is not on the given disks; steps see the root's {} instead",
                    entry.point, entry.spec, entry.point
                )),
            }
        }

        let mut mounts = Vec::new();
        for (point, i) in wanted {
            let f = &found[i];
            let (volume, opened_writable) = if writable {
                match handlers.open(&f.detection, f.device.clone(), &f.name, true) {
                    Ok(v) => (v, true),
                    Err(e) => {
                        notes.push(format!(
                            "{} ({point}) cannot be written ({e}); changes there become manual steps",
                            f.name
                        ));
                        (
                            handlers.open(&f.detection, f.device.clone(), &f.name, false)?,
                            false,
                        )
                    }
                }
            } else {
                (
                    handlers.open(&f.detection, f.device.clone(), &f.name, false)?,
                    false,
                )
            };
            mounts.push(Mount {
                tree: VolumeTree::new(volume, format!("{} ({point})", f.name)),
                point,
                writable: opened_writable,
            });
        }
        mounts.sort_by_key(|m| std::cmp::Reverse(m.point.len()));
        Ok(AssembledGuest { mounts, notes })
    }

    /// What was found and mounted, for the operator.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The mount holding `path`, and the path inside it.
    fn route(&self, path: &str) -> Result<(&Mount, String), GuestFsError> {
        for mount in &self.mounts {
            if mount.point == "/" {
                return Ok((mount, path.to_string()));
            }
            if path == mount.point {
                return Ok((mount, "/".to_string()));
            }
            if let Some(rest) = path.strip_prefix(mount.point.as_str())
                && rest.starts_with('/')
            {
                return Ok((mount, rest.to_string()));
            }
        }
        Err(GuestFsError::InvalidPath {
            path: path.to_string(),
            reason: "guest paths must be absolute",
        })
    }

    /// Carries out one planned change on the volume that holds its path. A
    /// volume that could not be opened for writing answers `unsupported`.
    pub fn apply(&self, change: &PlannedChange) -> Result<(), GuestFsError> {
        let (mount, inner) = self.route(&change.path)?;
        if !mount.writable {
            return Err(GuestFsError::Unsupported {
                path: change.path.clone(),
                reason: format!(
                    "{} is open read-only (its handler cannot write it)",
                    mount.tree.describe()
                ),
            });
        }
        mount.tree.apply(&PlannedChange {
            path: inner,
            ..change.clone()
        })
    }

    /// Syncs every volume written and closes them all.
    pub fn close(self) -> Result<(), GuestFsError> {
        let mut first_error = None;
        for mount in self.mounts {
            if let Err(e) = mount.tree.close() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl GuestTree for AssembledGuest {
    fn stat(&self, path: &str) -> Result<FileStat, GuestFsError> {
        let (mount, inner) = self.route(path)?;
        mount.tree.stat(&inner)
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, GuestFsError> {
        let (mount, inner) = self.route(path)?;
        mount.tree.read_dir(&inner)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, GuestFsError> {
        let (mount, inner) = self.route(path)?;
        mount.tree.read_file(&inner)
    }

    fn read_link(&self, path: &str) -> Result<String, GuestFsError> {
        let (mount, inner) = self.route(path)?;
        mount.tree.read_link(&inner)
    }

    fn exists(&self, path: &str) -> bool {
        self.route(path)
            .is_ok_and(|(mount, inner)| mount.tree.exists(&inner))
    }

    fn describe(&self) -> String {
        self.mounts
            .iter()
            .rev()
            .map(|m| format!("{} on {}", m.point, m.tree.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One fstab line that mounts a block file system.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FstabEntry {
    spec: String,
    point: String,
}

/// File-system types fstab lists that are not on a disk of the guest.
const NOT_ON_DISK: &[&str] = &[
    "swap",
    "proc",
    "sysfs",
    "tmpfs",
    "devpts",
    "devtmpfs",
    "nfs",
    "nfs4",
    "cifs",
    "smbfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "none",
    "efivarfs",
    "fuse",
    "bind",
];

fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let spec = fields.next()?;
            let point = fields.next()?;
            let fs_type = fields.next().unwrap_or("auto");
            let options = fields.next().unwrap_or("");
            let is_bind = options.split(',').any(|o| o == "bind" || o == "rbind");
            (point.starts_with('/') && point != "/" && !NOT_ON_DISK.contains(&fs_type) && !is_bind)
                .then(|| FstabEntry {
                    spec: spec.to_string(),
                    point: point.trim_end_matches('/').to_string(),
                })
        })
        .collect()
}

impl FstabEntry {
    /// Whether this entry's device is `volume`.
    fn names(&self, volume: &Found) -> bool {
        let info = &volume.detection.info;
        let spec = self.spec.trim_matches('"');
        let eq = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
        if let Some(uuid) = spec
            .strip_prefix("UUID=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-uuid/"))
        {
            return eq(&info.uuid, uuid);
        }
        if let Some(label) = spec
            .strip_prefix("LABEL=")
            .or_else(|| spec.strip_prefix("/dev/disk/by-label/"))
        {
            return eq(&info.label, label);
        }
        if let Some(lv) = spec.strip_prefix("/dev/mapper/") {
            return lvm_mapper_name(lv).is_some_and(|id| id == volume.id);
        }
        if let Some(rest) = spec.strip_prefix("/dev/") {
            // `/dev/vg/lv`
            if rest.matches('/').count() == 1 && !rest.starts_with("disk/") {
                return rest == volume.id;
            }
            return kernel_name(rest) == Some((volume.disk, volume.id.clone()));
        }
        false
    }
}

/// `vg-lv` as device-mapper spells it (a `-` inside a name is doubled) → `vg/lv`.
fn lvm_mapper_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            let (vg, lv) = name.split_at(i);
            return Some(format!(
                "{}/{}",
                vg.replace("--", "-"),
                lv[1..].replace("--", "-")
            ));
        }
        i += 1;
    }
    None
}

/// `sdb2`, `vda1`, `xvdc` → (disk index, volume id): the kernel names disks in
/// the order the VM has them, which is the order the operator gave.
fn kernel_name(name: &str) -> Option<(usize, String)> {
    let rest = ["xvd", "sd", "vd", "hd"]
        .iter()
        .find_map(|p| name.strip_prefix(p))?;
    let letters: String = rest
        .chars()
        .take_while(|c| c.is_ascii_lowercase())
        .collect();
    let number = &rest[letters.len()..];
    if letters.len() != 1 || !number.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let disk = (letters.as_bytes()[0] - b'a') as usize;
    let id = if number.is_empty() {
        "disk".to_string()
    } else {
        format!("p{number}")
    };
    Some((disk, id))
}

/// Manual instructions for a change a volume could not take: which file and
/// which lines to set, as an operator would do it from a rescue shell.
pub fn manual_step(change: &PlannedChange, before: Option<&[u8]>) -> String {
    use crate::guest_fs::ChangeKind;
    let path = &change.path;
    let text = String::from_utf8_lossy(&change.content);
    match change.kind {
        ChangeKind::Remove => format!("delete {path}"),
        ChangeKind::CreateDir => format!("create the directory {path} (mode {:04o})", change.mode),
        ChangeKind::CreateSymlink => format!("create the symlink {path} -> {text}"),
        ChangeKind::CreateFile => format!(
            "create {path} (mode {:04o}) with exactly these lines:\n{}",
            change.mode,
            indent(&text)
        ),
        ChangeKind::ReplaceFile => {
            let old = before.map(String::from_utf8_lossy).unwrap_or_default();
            let old_lines: Vec<&str> = old.lines().collect();
            let new_lines: Vec<&str> = text.lines().collect();
            let removed: Vec<&str> = old_lines
                .iter()
                .filter(|l| !new_lines.contains(l))
                .copied()
                .collect();
            let added: Vec<&str> = new_lines
                .iter()
                .filter(|l| !old_lines.contains(l))
                .copied()
                .collect();
            let mut out = format!("edit {path}:");
            if !removed.is_empty() {
                out.push_str("\n  remove these lines:\n");
                out.push_str(&indent(&removed.join("\n")));
            }
            if !added.is_empty() {
                out.push_str("\n  set these lines:\n");
                out.push_str(&indent(&added.join("\n")));
            }
            // Only the lines: a later step may change the same file again, so
            // the whole content at this point would be wrong to copy.
            out
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstab_lines_and_device_names() {
        let entries = parse_fstab(
            "# comment\nUUID=abc / xfs defaults 0 0\nUUID=def /boot ext4 defaults 1 2\n\
             /dev/mapper/vg--sys-var /var xfs defaults 0 0\n/dev/mapper/vg-swap swap swap defaults 0 0\n\
             tmpfs /tmp tmpfs defaults 0 0\n/srv /export none bind 0 0\n",
        );
        let points: Vec<&str> = entries.iter().map(|e| e.point.as_str()).collect();
        assert_eq!(points, ["/boot", "/var"]);
        assert_eq!(
            lvm_mapper_name("vg--sys-var").as_deref(),
            Some("vg-sys/var")
        );
        assert_eq!(lvm_mapper_name("rhel-root").as_deref(), Some("rhel/root"));
        assert_eq!(kernel_name("sdb2"), Some((1, "p2".to_string())));
        assert_eq!(kernel_name("vda"), Some((0, "disk".to_string())));
        assert_eq!(kernel_name("nvme0n1p1"), None);
    }
}
