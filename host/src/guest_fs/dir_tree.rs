//! A guest tree served from a host directory, confined to it.
//!
//! Paths are resolved one component at a time with `lstat`, so the host never
//! asks the OS to follow a guest symlink: a guest link to `/etc/shadow` means the
//! guest's `/etc/shadow`, under the root, and `..` at the root stays at the root.

use super::{
    ChangeKind, DirEntry, FileKind, FileStat, GuestFsError, GuestTree, MAX_READ, PlannedChange,
};
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// How many symlinks one resolution may follow, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// A guest root file system kept in a host directory.
#[derive(Debug, Clone)]
pub struct DirTree {
    root: PathBuf,
}

impl DirTree {
    /// Serves the tree under `root`, which must be a directory.
    pub fn new(root: &Path) -> std::io::Result<DirTree> {
        let root = fs::canonicalize(root)?;
        if !root.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", root.display()),
            ));
        }
        Ok(DirTree { root })
    }

    /// Resolves a guest path to a host path under the root. With `follow_last`,
    /// a final symlink is followed too.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, GuestFsError> {
        if !path.starts_with('/') {
            return Err(GuestFsError::InvalidPath {
                path: path.to_string(),
                reason: "guest paths must be absolute",
            });
        }
        if path.contains('\0') {
            return Err(GuestFsError::InvalidPath {
                path: path.to_string(),
                reason: "guest paths cannot contain NUL",
            });
        }
        // `done` is the resolved guest path so far, as components under the root.
        let mut done: Vec<String> = Vec::new();
        let mut pending: Vec<String> = components(path).rev().collect();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = self.host_path(&done).join(&part);
            let is_last = pending.is_empty();
            let meta = match fs::symlink_metadata(&candidate) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(GuestFsError::NotFound(path.to_string()));
                }
                Err(e) => return Err(io_error(path, e)),
            };
            if meta.file_type().is_symlink() && (!is_last || follow_last) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(GuestFsError::SymlinkLoop(path.to_string()));
                }
                let target = fs::read_link(&candidate).map_err(|e| io_error(path, e))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(components(&target).rev());
                continue;
            }
            if !is_last && !meta.is_dir() {
                return Err(GuestFsError::NotFound(path.to_string()));
            }
            done.push(part);
        }
        Ok(self.host_path(&done))
    }

    /// Applies one planned change under the root. The parent directory is
    /// resolved inside the root like any other path, and the final component
    /// is never followed, so a change cannot land outside the guest.
    pub fn apply(&self, change: &PlannedChange) -> Result<(), GuestFsError> {
        let path = change.path.as_str();
        let (parent, name) = path.rsplit_once('/').ok_or(GuestFsError::InvalidPath {
            path: path.to_string(),
            reason: "guest paths must be absolute",
        })?;
        if name.is_empty() || name == "." || name == ".." {
            return Err(GuestFsError::InvalidPath {
                path: path.to_string(),
                reason: "a change must name a file, not a directory path",
            });
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        let target = self.resolve(parent, true)?.join(name);
        let io = |e| io_error(path, e);
        match change.kind {
            ChangeKind::CreateFile | ChangeKind::ReplaceFile => {
                if fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_symlink()) {
                    fs::remove_file(&target).map_err(io)?;
                }
                fs::write(&target, &change.content).map_err(io)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(change.mode & 0o7777))
                    .map_err(io)
            }
            ChangeKind::Remove => fs::remove_file(&target).map_err(io),
            ChangeKind::CreateDir => {
                fs::create_dir(&target).map_err(io)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(change.mode & 0o7777))
                    .map_err(io)
            }
            ChangeKind::CreateSymlink => {
                let link = String::from_utf8_lossy(&change.content).into_owned();
                std::os::unix::fs::symlink(link, &target).map_err(io)
            }
        }
    }

    fn host_path(&self, parts: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(parts);
        p
    }
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
}

fn io_error(path: &str, e: std::io::Error) -> GuestFsError {
    GuestFsError::Io {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

fn kind_of(meta: &Metadata) -> FileKind {
    let t = meta.file_type();
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_file() {
        FileKind::Regular
    } else {
        FileKind::Other
    }
}

impl GuestTree for DirTree {
    fn stat(&self, path: &str) -> Result<FileStat, GuestFsError> {
        let host = self.resolve(path, false)?;
        let meta = fs::symlink_metadata(&host).map_err(|e| io_error(path, e))?;
        let modified_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Ok(FileStat {
            kind: kind_of(&meta),
            size: meta.len(),
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            modified_ms,
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, GuestFsError> {
        let host = self.resolve(path, true)?;
        if !host.is_dir() {
            return Err(GuestFsError::WrongKind {
                path: path.to_string(),
                expected: "directory",
            });
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&host).map_err(|e| io_error(path, e))? {
            let entry = entry.map_err(|e| io_error(path, e))?;
            let meta = entry.metadata().map_err(|e| io_error(path, e))?;
            entries.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind: kind_of(&meta),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, GuestFsError> {
        let host = self.resolve(path, true)?;
        let meta = fs::symlink_metadata(&host).map_err(|e| io_error(path, e))?;
        if !meta.is_file() {
            return Err(GuestFsError::WrongKind {
                path: path.to_string(),
                expected: "regular file",
            });
        }
        if meta.len() > MAX_READ {
            return Err(GuestFsError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
            });
        }
        fs::read(&host).map_err(|e| io_error(path, e))
    }

    fn read_link(&self, path: &str) -> Result<String, GuestFsError> {
        let host = self.resolve(path, false)?;
        let meta = fs::symlink_metadata(&host).map_err(|e| io_error(path, e))?;
        if !meta.file_type().is_symlink() {
            return Err(GuestFsError::WrongKind {
                path: path.to_string(),
                expected: "symbolic link",
            });
        }
        let target = fs::read_link(&host).map_err(|e| io_error(path, e))?;
        Ok(target.to_string_lossy().into_owned())
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path, true).is_ok()
    }

    fn describe(&self) -> String {
        format!("guest tree at {}", self.root.display())
    }
}
