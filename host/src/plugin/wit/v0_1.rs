//! `homeward:plugin@0.1.x`: generated bindings, and the host side of its
//! interfaces (`log`, `config`, `disk`, `guest-fs`).
//!
//! The host interfaces are generated once, from the `host-imports` world; each
//! kind's world reuses them through `with`, so `types::Error` is one Rust type
//! whatever the kind.

use super::super::error::Failure;
use super::super::manifest::PluginKind;
use super::super::state::PluginState;
use super::super::volume::{VolumeAnswer, VolumeOp};
use crate::disk::BlockDevice;
use crate::guest_fs::{self, GuestFsError, GuestTree};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;
use wasmtime::component::{HasSelf, InstancePre, Linker, Resource, ResourceAny};

mod host_imports {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "host-imports",
        imports: { default: trappable },
        with: {
            "homeward:plugin/disk.disk": super::DiskHandle,
            "homeward:plugin/guest-fs.guest-fs": super::GuestFsHandle,
        },
    });
}

pub use host_imports::homeward::plugin::types;
use host_imports::homeward::plugin::{config, disk, guest_fs as guest_fs_api, log};

/// Bindings of the `hypervisor-adapter-base` world: what every hypervisor
/// adapter of the line exports. `hypervisor-snapshots` (0.1.2) is looked up
/// apart ([`hypervisor_snapshots`]) so that older adapters keep loading.
pub mod hypervisor_adapter {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "hypervisor-adapter-base",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
        },
    });
}

/// Bindings of the whole `hypervisor-adapter` world, used only for its
/// optional `hypervisor-snapshots` export.
pub mod hypervisor_snapshots {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "hypervisor-adapter",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
        },
    });
}

/// Bindings of the `cloud-adapter-base` world: what every cloud adapter of
/// the line exports. `cloud-restore-points` (0.1.1) is looked up apart
/// ([`cloud_restore_points`]) so that 0.1.0 adapters keep loading.
pub mod cloud_adapter {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "cloud-adapter-base",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
        },
    });
}

/// Bindings of the whole `cloud-adapter` world, used only for its optional
/// `cloud-restore-points` export (`exports::homeward::plugin::cloud_restore_points`).
pub mod cloud_restore_points {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "cloud-adapter",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
        },
    });
}

/// Bindings of the `filesystem-handler` world.
pub mod filesystem_handler {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "filesystem-handler",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
            "homeward:plugin/disk": super::host_imports::homeward::plugin::disk,
        },
    });
}

/// Bindings of the `guest-step` world.
pub mod guest_step {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "guest-step",
        with: {
            "homeward:plugin/types": super::host_imports::homeward::plugin::types,
            "homeward:plugin/log": super::host_imports::homeward::plugin::log,
            "homeward:plugin/config": super::host_imports::homeward::plugin::config,
            "homeward:plugin/guest-fs": super::host_imports::homeward::plugin::guest_fs,
        },
    });
}

/// Most bytes one `disk.read` or `disk.write` moves, so a plugin cannot make
/// the host allocate without bound.
const MAX_DISK_IO: usize = 16 * 1024 * 1024;

/// Most bytes of one log message.
const MAX_LOG_MESSAGE: usize = 16 * 1024;

/// A disk lent to a plugin (the `disk` resource).
pub struct DiskHandle {
    /// The identity shown to the plugin.
    pub id: String,
    /// The bytes.
    pub device: Arc<dyn BlockDevice>,
    /// Whether this plugin may write it (grant, request and device all agree).
    pub writable: bool,
}

/// A guest tree lent to a plugin (the `guest-fs` resource).
pub struct GuestFsHandle {
    /// The tree.
    pub tree: Arc<dyn GuestTree>,
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    host_imports::HostImports::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)
}

use cloud_restore_points::exports::homeward::plugin::cloud_restore_points::{
    Guest as RestorePointsGuest, GuestIndices as RestorePointsIndices,
};
use hypervisor_snapshots::exports::homeward::plugin::hypervisor_snapshots::{
    Guest as SnapshotsGuest, GuestIndices as SnapshotsIndices,
};

pub(crate) enum KindPre {
    Hypervisor {
        pre: hypervisor_adapter::HypervisorAdapterBasePre<PluginState>,
        /// Present when the adapter exports `hypervisor-snapshots` (0.1.2).
        snapshots: Option<SnapshotsIndices>,
    },
    Cloud {
        pre: cloud_adapter::CloudAdapterBasePre<PluginState>,
        /// Present when the adapter exports `cloud-restore-points` (0.1.1).
        restore_points: Option<RestorePointsIndices>,
    },
    Filesystem(filesystem_handler::FilesystemHandlerPre<PluginState>),
    GuestStep(guest_step::GuestStepPre<PluginState>),
}

pub(crate) enum KindInstance {
    Hypervisor {
        bindings: hypervisor_adapter::HypervisorAdapterBase,
        snapshots: Option<SnapshotsGuest>,
    },
    Cloud {
        bindings: cloud_adapter::CloudAdapterBase,
        restore_points: Option<RestorePointsGuest>,
    },
    Filesystem(filesystem_handler::FilesystemHandler),
    GuestStep(guest_step::GuestStep),
}

impl KindPre {
    pub(crate) fn new(kind: PluginKind, pre: InstancePre<PluginState>) -> wasmtime::Result<Self> {
        Ok(match kind {
            PluginKind::HypervisorAdapter => KindPre::Hypervisor {
                snapshots: SnapshotsIndices::new(&pre).ok(),
                pre: hypervisor_adapter::HypervisorAdapterBasePre::new(pre)?,
            },
            PluginKind::CloudAdapter => KindPre::Cloud {
                restore_points: RestorePointsIndices::new(&pre).ok(),
                pre: cloud_adapter::CloudAdapterBasePre::new(pre)?,
            },
            PluginKind::FilesystemHandler => {
                KindPre::Filesystem(filesystem_handler::FilesystemHandlerPre::new(pre)?)
            }
            PluginKind::GuestStep => KindPre::GuestStep(guest_step::GuestStepPre::new(pre)?),
        })
    }

    pub(crate) fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<KindInstance> {
        Ok(match self {
            KindPre::Hypervisor { pre, snapshots } => {
                let instance = pre.instance_pre().instantiate(&mut *store)?;
                KindInstance::Hypervisor {
                    bindings: hypervisor_adapter::HypervisorAdapterBase::new(
                        &mut *store,
                        &instance,
                    )?,
                    snapshots: match snapshots {
                        Some(indices) => Some(indices.load(&mut *store, &instance)?),
                        None => None,
                    },
                }
            }
            KindPre::Cloud {
                pre,
                restore_points,
            } => {
                let instance = pre.instance_pre().instantiate(&mut *store)?;
                KindInstance::Cloud {
                    bindings: cloud_adapter::CloudAdapterBase::new(&mut *store, &instance)?,
                    restore_points: match restore_points {
                        Some(indices) => Some(indices.load(&mut *store, &instance)?),
                        None => None,
                    },
                }
            }
            KindPre::Filesystem(p) => KindInstance::Filesystem(p.instantiate(store)?),
            KindPre::GuestStep(p) => KindInstance::GuestStep(p.instantiate(store)?),
        })
    }
}

/// Calls the same world-level export whatever the kind (the probes every world has).
macro_rules! every_kind {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            KindInstance::Hypervisor { bindings: $b, .. } => $call,
            KindInstance::Cloud { bindings: $b, .. } => $call,
            KindInstance::Filesystem($b) => $call,
            KindInstance::GuestStep($b) => $call,
        }
    };
}

impl KindInstance {
    pub(crate) fn ping(&self, store: &mut Store<PluginState>) -> wasmtime::Result<()> {
        every_kind!(self, b => b.call_ping(&mut *store))
    }

    pub(crate) fn ping_payload(
        &self,
        store: &mut Store<PluginState>,
        payload: &[u8],
    ) -> wasmtime::Result<u64> {
        every_kind!(self, b => b.call_ping_payload(&mut *store, payload))
    }

    pub(crate) fn plan_guest_step(
        &self,
        store: &mut Store<PluginState>,
        tree: Arc<dyn GuestTree>,
        context: &guest_step::exports::homeward::plugin::post_step::StepContext,
    ) -> wasmtime::Result<
        Result<guest_step::exports::homeward::plugin::post_step::StepPlan, types::Error>,
    > {
        let KindInstance::GuestStep(b) = self else {
            wasmtime::bail!("not a guest-step plugin");
        };
        let root = store.data_mut().table.push(GuestFsHandle { tree })?;
        let borrowed = Resource::<GuestFsHandle>::new_borrow(root.rep());
        let result = b
            .homeward_plugin_post_step()
            .call_plan(&mut *store, borrowed, context);
        // The handle is the host's: take it back whatever the plugin did.
        store.data_mut().table.delete(root)?;
        result
    }
}

impl KindInstance {
    /// `filesystem.probe` on `device`, lent as a `disk` resource for the call.
    pub(crate) fn probe_filesystem(
        &self,
        store: &mut Store<PluginState>,
        disk: DiskHandle,
    ) -> wasmtime::Result<
        Result<
            filesystem_handler::exports::homeward::plugin::filesystem::ProbeResult,
            types::Error,
        >,
    > {
        let KindInstance::Filesystem(b) = self else {
            wasmtime::bail!("not a filesystem-handler plugin");
        };
        with_lent_disk(store, disk, |store, borrowed| {
            b.homeward_plugin_filesystem().call_probe(store, borrowed)
        })
    }
}

impl KindInstance {
    /// `filesystem.used-extents` on `device`, lent for the call.
    pub(crate) fn used_extents(
        &self,
        store: &mut Store<PluginState>,
        disk: DiskHandle,
    ) -> wasmtime::Result<Result<Vec<types::ByteRange>, types::Error>> {
        let KindInstance::Filesystem(b) = self else {
            wasmtime::bail!("not a filesystem-handler plugin");
        };
        with_lent_disk(store, disk, |store, borrowed| {
            b.homeward_plugin_filesystem()
                .call_used_extents(store, borrowed)
        })
    }

    /// `volume.open`: the disk is handed over (owned) for the volume's life;
    /// the plugin drops it when the volume goes.
    pub(crate) fn open_volume(
        &self,
        store: &mut Store<PluginState>,
        disk: DiskHandle,
        writable: bool,
    ) -> wasmtime::Result<Result<ResourceAny, types::Error>> {
        let KindInstance::Filesystem(b) = self else {
            wasmtime::bail!("not a filesystem-handler plugin");
        };
        let handle = store.data_mut().table.push(disk)?;
        b.homeward_plugin_filesystem()
            .volume()
            .call_open(&mut *store, handle, writable)
    }

    /// One method of an open `volume`.
    pub(crate) fn volume_call(
        &self,
        store: &mut Store<PluginState>,
        volume: ResourceAny,
        op: VolumeOp<'_>,
    ) -> wasmtime::Result<Result<VolumeAnswer, types::Error>> {
        let KindInstance::Filesystem(b) = self else {
            wasmtime::bail!("not a filesystem-handler plugin");
        };
        let api = b.homeward_plugin_filesystem().volume();
        let store = &mut *store;
        Ok(match op {
            VolumeOp::Info => Ok(VolumeAnswer::Info(api.call_info(store, volume)?)),
            VolumeOp::Stat(path) => api
                .call_stat(store, volume, path)?
                .map(|s| VolumeAnswer::Stat(stat_from_wit(s))),
            VolumeOp::ReadDir(path) => api.call_read_dir(store, volume, path)?.map(|entries| {
                VolumeAnswer::Entries(
                    entries
                        .into_iter()
                        .map(|e| guest_fs::DirEntry {
                            name: e.name,
                            kind: kind_from_wit(e.kind),
                        })
                        .collect(),
                )
            }),
            VolumeOp::ReadFile {
                path,
                offset,
                length,
            } => api
                .call_read_file(store, volume, path, offset, length)?
                .map(VolumeAnswer::Bytes),
            VolumeOp::ReadLink(path) => api
                .call_read_link(store, volume, path)?
                .map(VolumeAnswer::Text),
            VolumeOp::WriteFile {
                path,
                content,
                mode,
            } => api
                .call_write_file(store, volume, path, content, mode)?
                .map(|()| VolumeAnswer::Done),
            VolumeOp::CreateDir { path, mode } => api
                .call_create_dir(store, volume, path, mode)?
                .map(|()| VolumeAnswer::Done),
            VolumeOp::CreateSymlink { path, target } => api
                .call_create_symlink(store, volume, path, target)?
                .map(|()| VolumeAnswer::Done),
            VolumeOp::Remove(path) => api
                .call_remove(store, volume, path)?
                .map(|()| VolumeAnswer::Done),
            VolumeOp::Sync => api.call_sync(store, volume)?.map(|()| VolumeAnswer::Done),
        })
    }
}

impl KindInstance {
    /// The `hypervisor` export of a hypervisor adapter.
    pub(crate) fn hypervisor(
        &self,
    ) -> wasmtime::Result<&hypervisor_adapter::exports::homeward::plugin::hypervisor::Guest> {
        let KindInstance::Hypervisor { bindings, .. } = self else {
            wasmtime::bail!("not a hypervisor-adapter plugin");
        };
        Ok(bindings.homeward_plugin_hypervisor())
    }

    /// The `hypervisor-snapshots` export of a hypervisor adapter, `None` when
    /// the adapter was built before API 0.1.2 and lacks it.
    pub(crate) fn hypervisor_snapshots(&self) -> wasmtime::Result<Option<&SnapshotsGuest>> {
        let KindInstance::Hypervisor { snapshots, .. } = self else {
            wasmtime::bail!("not a hypervisor-adapter plugin");
        };
        Ok(snapshots.as_ref())
    }

    /// The `cloud` export of a cloud adapter.
    pub(crate) fn cloud(
        &self,
    ) -> wasmtime::Result<&cloud_adapter::exports::homeward::plugin::cloud::Guest> {
        let KindInstance::Cloud { bindings, .. } = self else {
            wasmtime::bail!("not a cloud-adapter plugin");
        };
        Ok(bindings.homeward_plugin_cloud())
    }

    /// The `cloud-restore-points` export of a cloud adapter, `None` when the
    /// adapter was built for API 0.1.0 and lacks it.
    pub(crate) fn cloud_restore_points(&self) -> wasmtime::Result<Option<&RestorePointsGuest>> {
        let KindInstance::Cloud { restore_points, .. } = self else {
            wasmtime::bail!("not a cloud-adapter plugin");
        };
        Ok(restore_points.as_ref())
    }
}

/// Lends `disk` to the plugin for one call as a borrowed `disk` resource,
/// and takes it back from the table whatever the call did.
fn with_lent_disk<R>(
    store: &mut Store<PluginState>,
    disk: DiskHandle,
    call: impl FnOnce(&mut Store<PluginState>, Resource<DiskHandle>) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let handle = store.data_mut().table.push(disk)?;
    let borrowed = Resource::<DiskHandle>::new_borrow(handle.rep());
    let result = call(store, borrowed);
    store.data_mut().table.delete(handle)?;
    result
}

fn stat_from_wit(s: types::FileStat) -> guest_fs::FileStat {
    guest_fs::FileStat {
        kind: kind_from_wit(s.kind),
        size: s.size,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        modified_ms: s.modified_at,
    }
}

fn kind_from_wit(k: types::FileKind) -> guest_fs::FileKind {
    match k {
        types::FileKind::Regular => guest_fs::FileKind::Regular,
        types::FileKind::Directory => guest_fs::FileKind::Directory,
        types::FileKind::Symlink => guest_fs::FileKind::Symlink,
        types::FileKind::Other => guest_fs::FileKind::Other,
    }
}

impl From<types::Error> for Failure {
    fn from(e: types::Error) -> Self {
        match e {
            types::Error::NotFound(m) => Failure::NotFound(m),
            types::Error::PermissionDenied(p) => Failure::PermissionDenied {
                message: p.message,
                missing: p.missing_privileges,
            },
            types::Error::Unsupported(m) => Failure::Unsupported(m),
            types::Error::InvalidInput(m) => Failure::InvalidInput(m),
            types::Error::Conflict(m) => Failure::Conflict(m),
            types::Error::Unavailable(u) => Failure::Unavailable {
                message: u.message,
                retry_after: u.retry_after_ms.map(Duration::from_millis),
            },
            types::Error::Internal(m) => Failure::Internal(m),
        }
    }
}

impl From<GuestFsError> for types::Error {
    fn from(e: GuestFsError) -> Self {
        let message = e.to_string();
        match e {
            GuestFsError::NotFound(_) => types::Error::NotFound(message),
            GuestFsError::InvalidPath { .. } | GuestFsError::WrongKind { .. } => {
                types::Error::InvalidInput(message)
            }
            GuestFsError::TooLarge { .. } | GuestFsError::Unsupported { .. } => {
                types::Error::Unsupported(message)
            }
            GuestFsError::SymlinkLoop(_) | GuestFsError::Io { .. } => {
                types::Error::Internal(message)
            }
        }
    }
}

fn io_to_wit(e: std::io::Error, what: &str) -> types::Error {
    let message = format!("{what}: {e}");
    match e.kind() {
        std::io::ErrorKind::InvalidInput => types::Error::InvalidInput(message),
        std::io::ErrorKind::PermissionDenied => {
            types::Error::PermissionDenied(types::PermissionDenied {
                message,
                missing_privileges: Vec::new(),
            })
        }
        std::io::ErrorKind::NotFound => types::Error::NotFound(message),
        _ => types::Error::Internal(message),
    }
}

// --- The host side of each interface ---------------------------------------

impl types::Host for PluginState {}

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let plugin = self.plugin_id();
        let message = truncate(&message, MAX_LOG_MESSAGE);
        if let Some(recorder) = &self.log_recorder {
            let name = match level {
                log::Level::Trace => "trace",
                log::Level::Debug => "debug",
                log::Level::Info => "info",
                log::Level::Warn => "warn",
                log::Level::Error => "error",
            };
            recorder.record(name, message);
        }
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", plugin, "{message}"),
            log::Level::Debug => tracing::debug!(target: "plugin", plugin, "{message}"),
            log::Level::Info => tracing::info!(target: "plugin", plugin, "{message}"),
            log::Level::Warn => tracing::warn!(target: "plugin", plugin, "{message}"),
            log::Level::Error => tracing::error!(target: "plugin", plugin, "{message}"),
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl config::Host for PluginState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.meta.config.get(&key).cloned())
    }

    fn entries(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .meta
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn secret(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.meta.secrets.get(&key).map(|s| s.expose().to_string()))
    }
}

impl disk::Host for PluginState {}

impl disk::HostDisk for PluginState {
    fn info(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<disk::DiskInfo> {
        let d = self.table.get(&disk)?;
        Ok(disk::DiskInfo {
            id: d.id.clone(),
            capacity_bytes: d.device.capacity(),
            sector_size: d.device.sector_size(),
            writable: d.writable,
        })
    }

    fn read(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        length: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        let d = self.table.get(&disk)?;
        let length = length as usize;
        if length > MAX_DISK_IO {
            return Ok(Err(types::Error::InvalidInput(format!(
                "disk.read of {length} bytes is over the {MAX_DISK_IO}-byte limit per call"
            ))));
        }
        let mut buf = vec![0u8; length];
        Ok(d.device
            .read_at(&mut buf, offset)
            .map(|()| buf)
            .map_err(|e| io_to_wit(e, &format!("reading disk {}", d.id))))
    }

    fn write(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let d = self.table.get(&disk)?;
        if !d.writable {
            return Ok(Err(types::Error::PermissionDenied(
                types::PermissionDenied {
                    message: format!(
                        "disk {} is read-only for this plugin: writing needs `disk-write` in the manifest and in the operator's grants",
                        d.id
                    ),
                    missing_privileges: vec!["disk-write".to_string()],
                },
            )));
        }
        if data.len() > MAX_DISK_IO {
            return Ok(Err(types::Error::InvalidInput(format!(
                "disk.write of {} bytes is over the {MAX_DISK_IO}-byte limit per call",
                data.len()
            ))));
        }
        Ok(d.device
            .write_at(&data, offset)
            .map_err(|e| io_to_wit(e, &format!("writing disk {}", d.id))))
    }

    fn flush(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<Result<(), types::Error>> {
        let d = self.table.get(&disk)?;
        Ok(d.device
            .flush()
            .map_err(|e| io_to_wit(e, &format!("flushing disk {}", d.id))))
    }

    fn drop(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<()> {
        self.table.delete(disk)?;
        Ok(())
    }
}

fn stat_to_wit(s: guest_fs::FileStat) -> types::FileStat {
    types::FileStat {
        kind: kind_to_wit(s.kind),
        size: s.size,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        modified_at: s.modified_ms,
    }
}

fn kind_to_wit(k: guest_fs::FileKind) -> types::FileKind {
    match k {
        guest_fs::FileKind::Regular => types::FileKind::Regular,
        guest_fs::FileKind::Directory => types::FileKind::Directory,
        guest_fs::FileKind::Symlink => types::FileKind::Symlink,
        guest_fs::FileKind::Other => types::FileKind::Other,
    }
}

impl guest_fs_api::Host for PluginState {}

impl guest_fs_api::HostGuestFs for PluginState {
    fn stat(
        &mut self,
        fs: Resource<GuestFsHandle>,
        path: String,
    ) -> wasmtime::Result<Result<types::FileStat, types::Error>> {
        let tree = &self.table.get(&fs)?.tree;
        Ok(tree.stat(&path).map(stat_to_wit).map_err(Into::into))
    }

    fn read_dir(
        &mut self,
        fs: Resource<GuestFsHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<types::DirEntry>, types::Error>> {
        let tree = &self.table.get(&fs)?.tree;
        Ok(tree
            .read_dir(&path)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| types::DirEntry {
                        name: e.name,
                        kind: kind_to_wit(e.kind),
                    })
                    .collect()
            })
            .map_err(Into::into))
    }

    fn read_file(
        &mut self,
        fs: Resource<GuestFsHandle>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        let tree = &self.table.get(&fs)?.tree;
        Ok(tree.read_file(&path).map_err(Into::into))
    }

    fn read_link(
        &mut self,
        fs: Resource<GuestFsHandle>,
        path: String,
    ) -> wasmtime::Result<Result<String, types::Error>> {
        let tree = &self.table.get(&fs)?.tree;
        Ok(tree.read_link(&path).map_err(Into::into))
    }

    fn exists(&mut self, fs: Resource<GuestFsHandle>, path: String) -> wasmtime::Result<bool> {
        let tree = &self.table.get(&fs)?.tree;
        Ok(tree.exists(&path))
    }

    fn drop(&mut self, fs: Resource<GuestFsHandle>) -> wasmtime::Result<()> {
        // Borrowed handles are reclaimed by the host after the call; an owned one
        // (never lent today) would be deleted here.
        if fs.owned() {
            self.table.delete(fs)?;
        }
        Ok(())
    }
}
