//! Bindings of each WIT API line the host serves, side by side.
//!
//! `v0_1` serves `homeward:plugin@0.1.x`. A future `v0_2` module goes next to
//! it with its own `bindgen!` over `wit/v0.2/`; `KindPre` and `KindInstance`
//! grow a variant per line, and `add_to_linker` links every line's host
//! interfaces (their names carry the version, so they do not clash). Code above
//! this module matches on the line only here.

pub mod v0_1;

use super::api::ApiLine;
use super::manifest::PluginKind;
use super::state::PluginState;
use super::volume::{VolumeAnswer, VolumeOp};
use crate::guest_fs::GuestTree;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker, ResourceAny};

/// Links the host interfaces of every API line.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)
}

/// A plugin pre-linked against the bindings of its API line.
pub(crate) enum KindPre {
    /// API 0.1.
    V0_1(v0_1::KindPre),
}

/// A live plugin's bindings.
pub(crate) enum KindInstance {
    /// API 0.1.
    V0_1(v0_1::KindInstance),
}

impl KindPre {
    pub(crate) fn new(
        api: ApiLine,
        kind: PluginKind,
        pre: InstancePre<PluginState>,
    ) -> wasmtime::Result<KindPre> {
        match api {
            ApiLine::V0_1 => Ok(KindPre::V0_1(v0_1::KindPre::new(kind, pre)?)),
        }
    }

    pub(crate) fn instantiate(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<KindInstance> {
        match self {
            KindPre::V0_1(pre) => Ok(KindInstance::V0_1(pre.instantiate(store)?)),
        }
    }
}

impl KindInstance {
    pub(crate) fn ping(&self, store: &mut Store<PluginState>) -> wasmtime::Result<()> {
        match self {
            KindInstance::V0_1(b) => b.ping(store),
        }
    }

    pub(crate) fn ping_payload(
        &self,
        store: &mut Store<PluginState>,
        payload: &[u8],
    ) -> wasmtime::Result<u64> {
        match self {
            KindInstance::V0_1(b) => b.ping_payload(store, payload),
        }
    }

    pub(crate) fn probe_filesystem(
        &self,
        store: &mut Store<PluginState>,
        disk: v0_1::DiskHandle,
    ) -> wasmtime::Result<
        Result<
            v0_1::filesystem_handler::exports::homeward::plugin::filesystem::ProbeResult,
            v0_1::types::Error,
        >,
    > {
        match self {
            KindInstance::V0_1(b) => b.probe_filesystem(store, disk),
        }
    }

    pub(crate) fn used_extents(
        &self,
        store: &mut Store<PluginState>,
        disk: v0_1::DiskHandle,
    ) -> wasmtime::Result<Result<Vec<v0_1::types::ByteRange>, v0_1::types::Error>> {
        match self {
            KindInstance::V0_1(b) => b.used_extents(store, disk),
        }
    }

    pub(crate) fn open_volume(
        &self,
        store: &mut Store<PluginState>,
        disk: v0_1::DiskHandle,
        writable: bool,
    ) -> wasmtime::Result<Result<ResourceAny, v0_1::types::Error>> {
        match self {
            KindInstance::V0_1(b) => b.open_volume(store, disk, writable),
        }
    }

    pub(crate) fn volume_call(
        &self,
        store: &mut Store<PluginState>,
        volume: ResourceAny,
        op: VolumeOp<'_>,
    ) -> wasmtime::Result<Result<VolumeAnswer, v0_1::types::Error>> {
        match self {
            KindInstance::V0_1(b) => b.volume_call(store, volume, op),
        }
    }

    pub(crate) fn plan_guest_step(
        &self,
        store: &mut Store<PluginState>,
        tree: Arc<dyn GuestTree>,
        context: &v0_1::guest_step::exports::homeward::plugin::post_step::StepContext,
    ) -> wasmtime::Result<
        Result<
            v0_1::guest_step::exports::homeward::plugin::post_step::StepPlan,
            v0_1::types::Error,
        >,
    > {
        match self {
            KindInstance::V0_1(b) => b.plan_guest_step(store, tree, context),
        }
    }

    /// The `hypervisor` export of a hypervisor adapter (API 0.1 types: the
    /// adapter calls in `plugin::adapter` speak them).
    pub(crate) fn hypervisor(
        &self,
    ) -> wasmtime::Result<&v0_1::hypervisor_adapter::exports::homeward::plugin::hypervisor::Guest>
    {
        match self {
            KindInstance::V0_1(b) => b.hypervisor(),
        }
    }

    /// The `cloud` export of a cloud adapter.
    pub(crate) fn cloud(
        &self,
    ) -> wasmtime::Result<&v0_1::cloud_adapter::exports::homeward::plugin::cloud::Guest> {
        match self {
            KindInstance::V0_1(b) => b.cloud(),
        }
    }

    /// The `hypervisor-snapshots` export of a hypervisor adapter (API 0.1.2),
    /// `None` when the adapter lacks it.
    pub(crate) fn hypervisor_snapshots(
        &self,
    ) -> wasmtime::Result<
        Option<&v0_1::hypervisor_snapshots::exports::homeward::plugin::hypervisor_snapshots::Guest>,
    > {
        match self {
            KindInstance::V0_1(b) => b.hypervisor_snapshots(),
        }
    }

    /// The `cloud-restore-points` export of a cloud adapter (API 0.1.1), `None`
    /// when the adapter lacks it.
    pub(crate) fn cloud_restore_points(
        &self,
    ) -> wasmtime::Result<
        Option<&v0_1::cloud_restore_points::exports::homeward::plugin::cloud_restore_points::Guest>,
    > {
        match self {
            KindInstance::V0_1(b) => b.cloud_restore_points(),
        }
    }
}
