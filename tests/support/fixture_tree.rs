//! A guest root built by hand in a temp dir, for the guest-step tests:
//! files with modes, directories and symlinks at guest paths, and reading
//! them back. The step fixtures (`guest_net.rs`, `guest_nm.rs`) build on it.

use homeward::guest_fs::{ChangeKind, PlannedChange};
use homeward_sdk::guest_step::exports::homeward::plugin::post_step as sdk;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// A guest root in a temp dir, removed on drop.
pub struct FixtureTree {
    /// The temp dir holding the root.
    pub dir: tempfile::TempDir,
}

impl Default for FixtureTree {
    fn default() -> Self {
        FixtureTree {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }
}

impl FixtureTree {
    /// The host path of guest path `path`.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// Writes a guest file (mode 0644), creating its directories.
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) -> &Self {
        self.write_mode(path, content, 0o644)
    }

    /// Writes a guest file with `mode`, creating its directories.
    pub fn write_mode(&self, path: &str, content: impl AsRef<[u8]>, mode: u32) -> &Self {
        let host = self.path(path);
        std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        std::fs::write(&host, content).expect("write fixture");
        std::fs::set_permissions(&host, std::fs::Permissions::from_mode(mode)).expect("chmod");
        self
    }

    /// Creates a guest directory (and its parents).
    pub fn mkdir(&self, path: &str) -> &Self {
        std::fs::create_dir_all(self.path(path)).expect("mkdir");
        self
    }

    /// Makes `path` a symlink to `target` (parents created).
    pub fn symlink(&self, path: &str, target: &str) -> &Self {
        let host = self.path(path);
        std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(target, host).expect("symlink");
        self
    }

    /// A guest file's text.
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A symlink's target.
    pub fn read_link(&self, path: &str) -> String {
        std::fs::read_link(self.path(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .to_string_lossy()
            .into_owned()
    }

    /// A file's permission bits (a symlink's own).
    pub fn mode(&self, path: &str) -> u32 {
        std::fs::symlink_metadata(self.path(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    /// Whether `path` exists (a dangling symlink counts).
    pub fn has(&self, path: &str) -> bool {
        std::fs::symlink_metadata(self.path(path)).is_ok()
    }
}

/// The host-side form of an entry of a plan made natively (the SDK's types),
/// so native plans are applied by the host's own `DirTree::apply`.
pub fn planned_change(change: &sdk::FileChange) -> PlannedChange {
    PlannedChange {
        path: change.path.clone(),
        kind: match change.kind {
            sdk::ChangeKind::CreateFile => ChangeKind::CreateFile,
            sdk::ChangeKind::ReplaceFile => ChangeKind::ReplaceFile,
            sdk::ChangeKind::Remove => ChangeKind::Remove,
            sdk::ChangeKind::CreateDir => ChangeKind::CreateDir,
            sdk::ChangeKind::CreateSymlink => ChangeKind::CreateSymlink,
        },
        content: change.content.clone(),
        mode: change.mode,
    }
}
