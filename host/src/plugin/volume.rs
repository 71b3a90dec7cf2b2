//! An open file system inside a file-system handler plugin: the host side of
//! the `volume` resource.
//!
//! A [`PluginVolume`] owns the plugin instance that holds the volume, so the
//! handler's caches live exactly as long as the volume. Every method is one
//! bounded plugin call (deadline, memory cap, fuel), like any other call; a
//! stopped call retires the instance and with it the volume.
//!
//! Writes stay in the plugin until [`PluginVolume::sync`] (handlers may batch
//! metadata updates), so [`PluginVolume::close`] syncs a volume that was written
//! and reports the outcome; dropping an unsynced volume syncs on a best-effort
//! basis and logs a failure, since `Drop` cannot return it.

use super::error::PluginError;
use super::instance::{FsInfo, PluginInstance};
use crate::guest_fs::{DirEntry, FileStat};
use wasmtime::component::ResourceAny;

/// One method of the `volume` resource, with its arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) enum VolumeOp<'a> {
    Info,
    Stat(&'a str),
    ReadDir(&'a str),
    ReadFile {
        path: &'a str,
        offset: u64,
        length: u32,
    },
    ReadLink(&'a str),
    WriteFile {
        path: &'a str,
        content: &'a [u8],
        mode: u32,
    },
    CreateDir {
        path: &'a str,
        mode: u32,
    },
    CreateSymlink {
        path: &'a str,
        target: &'a str,
    },
    Remove(&'a str),
    Sync,
}

impl VolumeOp<'_> {
    /// The WIT name of the call, for errors.
    fn call_name(&self) -> &'static str {
        match self {
            VolumeOp::Info => "volume.info",
            VolumeOp::Stat(_) => "volume.stat",
            VolumeOp::ReadDir(_) => "volume.read-dir",
            VolumeOp::ReadFile { .. } => "volume.read-file",
            VolumeOp::ReadLink(_) => "volume.read-link",
            VolumeOp::WriteFile { .. } => "volume.write-file",
            VolumeOp::CreateDir { .. } => "volume.create-dir",
            VolumeOp::CreateSymlink { .. } => "volume.create-symlink",
            VolumeOp::Remove(_) => "volume.remove",
            VolumeOp::Sync => "volume.sync",
        }
    }

    fn writes(&self) -> bool {
        matches!(
            self,
            VolumeOp::WriteFile { .. }
                | VolumeOp::CreateDir { .. }
                | VolumeOp::CreateSymlink { .. }
                | VolumeOp::Remove(_)
        )
    }
}

/// What a `volume` method returned.
#[derive(Debug)]
pub(crate) enum VolumeAnswer {
    Info(FsInfo),
    Stat(FileStat),
    Entries(Vec<DirEntry>),
    Bytes(Vec<u8>),
    Text(String),
    Done,
}

/// A file system opened by a handler plugin.
pub struct PluginVolume {
    instance: PluginInstance,
    volume: Option<ResourceAny>,
    /// Written since the last successful sync.
    dirty: bool,
}

impl PluginVolume {
    pub(crate) fn new(instance: PluginInstance, volume: ResourceAny) -> Self {
        PluginVolume {
            instance,
            volume: Some(volume),
            dirty: false,
        }
    }

    /// The handler's id.
    pub fn plugin_id(&self) -> &str {
        self.instance.plugin_id()
    }

    /// What the last call cost.
    pub fn last_call(&self) -> super::CallStats {
        self.instance.last_call()
    }

    /// The facts a probe gives.
    pub fn info(&mut self) -> Result<FsInfo, PluginError> {
        match self.call(VolumeOp::Info)? {
            VolumeAnswer::Info(info) => Ok(info),
            other => Err(self.unexpected("volume.info", &other)),
        }
    }

    /// Metadata of `path`; a final symlink is not followed.
    pub fn stat(&mut self, path: &str) -> Result<FileStat, PluginError> {
        match self.call(VolumeOp::Stat(path))? {
            VolumeAnswer::Stat(stat) => Ok(stat),
            other => Err(self.unexpected("volume.stat", &other)),
        }
    }

    /// Entries of a directory, sorted by name.
    pub fn read_dir(&mut self, path: &str) -> Result<Vec<DirEntry>, PluginError> {
        match self.call(VolumeOp::ReadDir(path))? {
            VolumeAnswer::Entries(entries) => Ok(entries),
            other => Err(self.unexpected("volume.read-dir", &other)),
        }
    }

    /// Up to `length` bytes of a file from `offset`.
    pub fn read_file(
        &mut self,
        path: &str,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>, PluginError> {
        match self.call(VolumeOp::ReadFile {
            path,
            offset,
            length,
        })? {
            VolumeAnswer::Bytes(bytes) => Ok(bytes),
            other => Err(self.unexpected("volume.read-file", &other)),
        }
    }

    /// The whole content of a file, read in 4 MiB calls, at most `limit` bytes.
    pub fn read_whole(&mut self, path: &str, limit: u64) -> Result<Vec<u8>, PluginError> {
        const CHUNK: u32 = 4 << 20;
        let mut out = Vec::new();
        loop {
            let chunk = self.read_file(path, out.len() as u64, CHUNK)?;
            let done = chunk.len() < CHUNK as usize;
            out.extend_from_slice(&chunk);
            if out.len() as u64 > limit {
                return Err(PluginError::Failed {
                    plugin: self.plugin_id().to_string(),
                    call: "volume.read-file",
                    failure: super::Failure::Unsupported(format!(
                        "{path} is larger than the {limit}-byte limit of a whole-file read"
                    )),
                });
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// The target of a symlink.
    pub fn read_link(&mut self, path: &str) -> Result<String, PluginError> {
        match self.call(VolumeOp::ReadLink(path))? {
            VolumeAnswer::Text(target) => Ok(target),
            other => Err(self.unexpected("volume.read-link", &other)),
        }
    }

    /// Creates or replaces a regular file.
    pub fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<(), PluginError> {
        self.call_done(VolumeOp::WriteFile {
            path,
            content,
            mode,
        })
    }

    /// Creates a directory.
    pub fn create_dir(&mut self, path: &str, mode: u32) -> Result<(), PluginError> {
        self.call_done(VolumeOp::CreateDir { path, mode })
    }

    /// Creates a symlink.
    pub fn create_symlink(&mut self, path: &str, target: &str) -> Result<(), PluginError> {
        self.call_done(VolumeOp::CreateSymlink { path, target })
    }

    /// Removes a file or symlink.
    pub fn remove(&mut self, path: &str) -> Result<(), PluginError> {
        self.call_done(VolumeOp::Remove(path))
    }

    /// Writes every change to the device.
    pub fn sync(&mut self) -> Result<(), PluginError> {
        self.call_done(VolumeOp::Sync)?;
        self.dirty = false;
        Ok(())
    }

    /// Syncs when anything was written, then closes the volume.
    pub fn close(mut self) -> Result<(), PluginError> {
        if self.dirty {
            self.sync()?;
        }
        self.release();
        Ok(())
    }

    fn call_done(&mut self, op: VolumeOp<'_>) -> Result<(), PluginError> {
        let name = op.call_name();
        match self.call(op)? {
            VolumeAnswer::Done => Ok(()),
            other => Err(self.unexpected(name, &other)),
        }
    }

    fn call(&mut self, op: VolumeOp<'_>) -> Result<VolumeAnswer, PluginError> {
        let name = op.call_name();
        let Some(volume) = self.volume else {
            return Err(PluginError::Retired {
                plugin: self.plugin_id().to_string(),
            });
        };
        if op.writes() {
            // Set before the call: a write that fails half-way may still have
            // changed the handler's state, which only a sync settles.
            self.dirty = true;
        }
        let answer = self
            .instance
            .call(name, |b, store| b.volume_call(store, volume, op))?;
        answer.map_err(|e| PluginError::Failed {
            plugin: self.plugin_id().to_string(),
            call: name,
            failure: e.into(),
        })
    }

    fn unexpected(&self, call: &'static str, answer: &VolumeAnswer) -> PluginError {
        PluginError::Failed {
            plugin: self.plugin_id().to_string(),
            call,
            failure: super::Failure::Internal(format!(
                "the host mismatched a volume answer: {answer:?}"
            )),
        }
    }

    /// Drops the guest's resource (its destructor drops the disk handle).
    fn release(&mut self) {
        if let Some(volume) = self.volume.take()
            && !self.instance.is_retired()
        {
            let _ = self
                .instance
                .call("volume.drop", |_, store| volume.resource_drop(store));
        }
    }
}

impl Drop for PluginVolume {
    fn drop(&mut self) {
        if self.dirty
            && self.volume.is_some()
            && !self.instance.is_retired()
            && let Err(e) = self.sync()
        {
            tracing::error!(
                plugin = self.plugin_id(),
                "syncing a dropped volume failed: {e}"
            );
        }
        self.release();
    }
}
