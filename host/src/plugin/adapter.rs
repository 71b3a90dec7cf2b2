//! Calls into hypervisor and cloud adapters.
//!
//! Each method runs one export of the adapter's world under the plugin's
//! limits (deadline, memory, fuel) and turns the plugin's `error` into
//! [`PluginError::Failed`], which names the plugin and the call. The records
//! are the WIT API's own (re-exported below), so what an adapter returns
//! reaches the caller unchanged.

use super::error::PluginError;
use super::instance::PluginInstance;

pub use super::wit::v0_1::cloud_adapter::exports::homeward::plugin::cloud::{
    Access, ChangeSet, VmSpec as CloudVmSpec,
};
pub use super::wit::v0_1::cloud_restore_points::exports::homeward::plugin::cloud_restore_points::RestorePoint;
pub use super::wit::v0_1::hypervisor_adapter::exports::homeward::plugin::hypervisor::{
    Inventory, ReadinessRequest, VmSpec as HypervisorVmSpec,
};
pub use super::wit::v0_1::types::{
    BlobCredential, BlobEndpoint, ByteRange, Disk, DiskFormat, DiskLocator, EndpointInfo, Finding,
    HypervisorHost, Licence, Network, NicConfig, PowerState, Severity, Snapshot, Vm,
};

/// Generates one method per adapter export: run the call under the limits,
/// then name the plugin and the call in the plugin's error.
macro_rules! adapter_calls {
    ($world:ident: $(
        $(#[$doc:meta])*
        fn $name:ident = $wit:literal => $export:ident($($arg:ident: $ty:ty => $pass:expr),*) -> $ret:ty;
    )*) => {
        impl PluginInstance {
            $(
                $(#[$doc])*
                pub fn $name(&mut self, $($arg: $ty),*) -> Result<$ret, PluginError> {
                    let plugin = self.plugin_id().to_string();
                    let answer = self.call($wit, |b, store| b.$world()?.$export(store, $($pass),*))?;
                    answer.map_err(|e| PluginError::Failed { plugin, call: $wit, failure: e.into() })
                }
            )*
        }
    };
}

adapter_calls! { hypervisor:
    /// `hypervisor.connect`: logs in and says what the endpoint is.
    fn hypervisor_connect = "hypervisor.connect" => call_connect() -> EndpointInfo;
    /// `hypervisor.disconnect`: logs out.
    fn hypervisor_disconnect = "hypervisor.disconnect" => call_disconnect() -> ();
    /// `hypervisor.discover`: the whole inventory.
    fn hypervisor_discover = "hypervisor.discover" => call_discover() -> Inventory;
    /// `hypervisor.get-vm`.
    fn hypervisor_get_vm = "hypervisor.get-vm" => call_get_vm(vm_id: &str => vm_id) -> Vm;
    /// `hypervisor.get-licence`.
    fn hypervisor_get_licence = "hypervisor.get-licence" => call_get_licence() -> Licence;
    /// `hypervisor.readiness`: the findings of every check that applies.
    fn hypervisor_readiness = "hypervisor.readiness" => call_readiness(request: &ReadinessRequest => request) -> Vec<Finding>;
    /// `hypervisor.set-power`.
    fn hypervisor_set_power = "hypervisor.set-power" => call_set_power(vm_id: &str => vm_id, state: PowerState => state) -> ();
    /// `hypervisor.shutdown-guest`.
    fn hypervisor_shutdown_guest = "hypervisor.shutdown-guest" => call_shutdown_guest(vm_id: &str => vm_id) -> ();
    /// `hypervisor.create-vm`.
    fn hypervisor_create_vm = "hypervisor.create-vm" => call_create_vm(spec: &HypervisorVmSpec => spec) -> Vm;
    /// `hypervisor.delete-vm`.
    fn hypervisor_delete_vm = "hypervisor.delete-vm" => call_delete_vm(vm_id: &str => vm_id) -> ();
    /// `hypervisor.add-disk`.
    fn hypervisor_add_disk = "hypervisor.add-disk" => call_add_disk(vm_id: &str => vm_id, capacity_bytes: u64 => capacity_bytes) -> Disk;
    /// `hypervisor.detach-disk`.
    fn hypervisor_detach_disk = "hypervisor.detach-disk" => call_detach_disk(vm_id: &str => vm_id, disk_id: &str => disk_id) -> ();
    /// `hypervisor.create-snapshot`.
    fn hypervisor_create_snapshot = "hypervisor.create-snapshot" => call_create_snapshot(vm_id: &str => vm_id, name: &str => name, quiesce: bool => quiesce) -> Snapshot;
    /// `hypervisor.delete-snapshot`.
    fn hypervisor_delete_snapshot = "hypervisor.delete-snapshot" => call_delete_snapshot(vm_id: &str => vm_id, snapshot_id: &str => snapshot_id) -> ();
}

adapter_calls! { cloud:
    /// `cloud.connect`: checks credentials and says what the endpoint is.
    fn cloud_connect = "cloud.connect" => call_connect() -> EndpointInfo;
    /// `cloud.get-vm`.
    fn cloud_get_vm = "cloud.get-vm" => call_get_vm(vm_id: &str => vm_id) -> Vm;
    /// `cloud.power-off`; `deallocate` releases the compute too.
    fn cloud_power_off = "cloud.power-off" => call_power_off(vm_id: &str => vm_id, deallocate: bool => deallocate) -> ();
    /// `cloud.start`.
    fn cloud_start = "cloud.start" => call_start(vm_id: &str => vm_id) -> ();
    /// `cloud.delete-vm`.
    fn cloud_delete_vm = "cloud.delete-vm" => call_delete_vm(vm_id: &str => vm_id) -> ();
    /// `cloud.create-vm`.
    fn cloud_create_vm = "cloud.create-vm" => call_create_vm(spec: &CloudVmSpec => spec) -> Vm;
    /// `cloud.get-network`.
    fn cloud_get_network = "cloud.get-network" => call_get_network(network_id: &str => network_id) -> Network;
    /// `cloud.disk-endpoint`: where the host reads (or writes) a disk.
    fn cloud_disk_endpoint = "cloud.disk-endpoint" => call_disk_endpoint(disk_id: &str => disk_id, access: Access => access) -> Disk;
    /// `cloud.create-snapshot`.
    fn cloud_create_snapshot = "cloud.create-snapshot" => call_create_snapshot(disk_id: &str => disk_id) -> Snapshot;
    /// `cloud.delete-snapshot`.
    fn cloud_delete_snapshot = "cloud.delete-snapshot" => call_delete_snapshot(disk_id: &str => disk_id, snapshot_id: &str => snapshot_id) -> ();
    /// `cloud.changed-ranges` between two snapshots of a disk.
    fn cloud_changed_ranges = "cloud.changed-ranges" => call_changed_ranges(disk_id: &str => disk_id, base: &str => base, target: &str => target) -> ChangeSet;
}

/// What an optional export's call gives: `None` when the plugin lacks the
/// export, else the plugin's own answer.
type OptionalAnswer<R> = Option<Result<R, super::wit::v0_1::types::Error>>;

impl PluginInstance {
    /// Runs a call into an export the plugin may lack (one added after
    /// 0.1.0): `Ok(None)` when it lacks it, the plugin's error named like
    /// every other call's.
    fn optional_call<R>(
        &mut self,
        call: &'static str,
        f: impl FnOnce(
            &super::wit::KindInstance,
            &mut wasmtime::Store<super::state::PluginState>,
        ) -> wasmtime::Result<OptionalAnswer<R>>,
    ) -> Result<Option<R>, PluginError> {
        let plugin = self.plugin_id().to_string();
        match self.call(call, f)? {
            None => Ok(None),
            Some(Ok(answer)) => Ok(Some(answer)),
            Some(Err(e)) => Err(PluginError::Failed {
                plugin,
                call,
                failure: e.into(),
            }),
        }
    }

    /// Whether this cloud adapter exports `cloud-restore-points` (API 0.1.1):
    /// adapters built for 0.1.0 do not.
    pub fn cloud_has_restore_points(&mut self) -> Result<bool, PluginError> {
        self.call("cloud-restore-points", |b, _| {
            Ok(b.cloud_restore_points()?.is_some())
        })
    }

    /// `cloud-restore-points.create-restore-point`: snapshots of `disk_ids` of
    /// `vm_id` at one instant, quiesced when asked and possible. `Ok(None)`
    /// when the adapter lacks the interface (built for API 0.1.0).
    pub fn cloud_create_restore_point(
        &mut self,
        vm_id: &str,
        disk_ids: &[String],
        quiesce: bool,
    ) -> Result<Option<RestorePoint>, PluginError> {
        self.optional_call(
            "cloud-restore-points.create-restore-point",
            |b, store| match b.cloud_restore_points()? {
                Some(api) => api
                    .call_create_restore_point(store, vm_id, disk_ids, quiesce)
                    .map(Some),
                None => Ok(None),
            },
        )
    }

    /// Whether this hypervisor adapter exports `hypervisor-snapshots` (API
    /// 0.1.2): adapters built before do not.
    pub fn hypervisor_has_snapshot_disks(&mut self) -> Result<bool, PluginError> {
        self.call("hypervisor-snapshots", |b, _| {
            Ok(b.hypervisor_snapshots()?.is_some())
        })
    }

    /// `hypervisor-snapshots.snapshot-disk`: where disk `disk_id` of `vm_id`
    /// is as snapshot `snapshot_id` froze it. `Ok(None)` when the adapter
    /// lacks the interface (built before API 0.1.2).
    pub fn hypervisor_snapshot_disk(
        &mut self,
        vm_id: &str,
        snapshot_id: &str,
        disk_id: &str,
    ) -> Result<Option<Disk>, PluginError> {
        self.optional_call("hypervisor-snapshots.snapshot-disk", |b, store| {
            match b.hypervisor_snapshots()? {
                Some(api) => api
                    .call_snapshot_disk(store, vm_id, snapshot_id, disk_id)
                    .map(Some),
                None => Ok(None),
            }
        })
    }
}
