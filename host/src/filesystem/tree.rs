//! A guest tree served from a real guest disk: the `guest-fs` resource that
//! guest steps read, answered by a file-system handler's open volume.
//!
//! The handler resolves paths (symlinks inside the guest root only, as the
//! SDK's resolver does), so this adapter only translates errors and bounds
//! whole-file reads by [`MAX_READ`]. [`VolumeTree::apply`] carries out a
//! guest step's planned change on the disk, as [`crate::guest_fs::DirTree::apply`]
//! does on a directory, and [`VolumeTree::close`] makes the changes durable.

use crate::guest_fs::{
    ChangeKind, DirEntry, FileKind, FileStat, GuestFsError, GuestTree, MAX_READ, PlannedChange,
};
use crate::plugin::{Failure, PluginError, PluginVolume};
use std::sync::Mutex;

/// A guest's root file system on an open volume, read-only.
pub struct VolumeTree {
    volume: Mutex<PluginVolume>,
    name: String,
}

impl VolumeTree {
    /// Serves `volume`; `name` says which disk and volume it is, for messages.
    pub fn new(volume: PluginVolume, name: impl Into<String>) -> Self {
        VolumeTree {
            volume: Mutex::new(volume),
            name: name.into(),
        }
    }

    /// Carries out one planned change on the volume. Replacing a symlink with
    /// a file removes the link first, so the change lands on the path itself,
    /// never on whatever the guest's link points to.
    pub fn apply(&self, change: &PlannedChange) -> Result<(), GuestFsError> {
        let path = change.path.as_str();
        let mode = change.mode & 0o7777;
        self.with(path, |v| match change.kind {
            ChangeKind::CreateFile | ChangeKind::ReplaceFile => {
                if v.stat(path).is_ok_and(|s| s.kind == FileKind::Symlink) {
                    v.remove(path)?;
                }
                v.write_file(path, &change.content, mode)
            }
            ChangeKind::Remove => v.remove(path),
            ChangeKind::CreateDir => v.create_dir(path, mode),
            ChangeKind::CreateSymlink => {
                v.create_symlink(path, &String::from_utf8_lossy(&change.content))
            }
        })
    }

    /// Syncs what [`VolumeTree::apply`] wrote and closes the volume.
    pub fn close(self) -> Result<(), GuestFsError> {
        let name = self.name;
        let volume = self.volume.into_inner().map_err(|_| GuestFsError::Io {
            path: "/".to_string(),
            reason: format!("{name}: an earlier call panicked while holding the volume"),
        })?;
        volume.close().map_err(|e| to_guest_error("/", e))
    }

    fn with<R>(
        &self,
        path: &str,
        f: impl FnOnce(&mut PluginVolume) -> Result<R, PluginError>,
    ) -> Result<R, GuestFsError> {
        let mut volume = self.volume.lock().map_err(|_| GuestFsError::Io {
            path: path.to_string(),
            reason: format!(
                "{}: an earlier call panicked while holding the volume",
                self.name
            ),
        })?;
        f(&mut volume).map_err(|e| to_guest_error(path, e))
    }
}

fn to_guest_error(path: &str, e: PluginError) -> GuestFsError {
    match e {
        PluginError::Failed {
            failure: Failure::NotFound(_),
            ..
        } => GuestFsError::NotFound(path.to_string()),
        PluginError::Failed {
            failure: Failure::Unsupported(reason),
            ..
        } => GuestFsError::Unsupported {
            path: path.to_string(),
            reason,
        },
        other => GuestFsError::Io {
            path: path.to_string(),
            reason: other.to_string(),
        },
    }
}

impl GuestTree for VolumeTree {
    fn stat(&self, path: &str) -> Result<FileStat, GuestFsError> {
        self.with(path, |v| v.stat(path))
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, GuestFsError> {
        self.with(path, |v| v.read_dir(path))
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, GuestFsError> {
        let stat = self.stat(path)?;
        if stat.kind == FileKind::Regular && stat.size > MAX_READ {
            return Err(GuestFsError::TooLarge {
                path: path.to_string(),
                size: stat.size,
            });
        }
        self.with(path, |v| v.read_whole(path, MAX_READ))
    }

    fn read_link(&self, path: &str) -> Result<String, GuestFsError> {
        self.with(path, |v| v.read_link(path))
    }

    fn exists(&self, path: &str) -> bool {
        match self.stat(path) {
            Ok(stat) if stat.kind == FileKind::Symlink => {
                // Follow the link the way the handler resolves paths: a
                // readable target (file or directory) exists.
                self.with(path, |v| v.read_file(path, 0, 0)).is_ok()
                    || self.with(path, |v| v.read_dir(path)).is_ok()
            }
            Ok(_) => true,
            Err(_) => false,
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}
