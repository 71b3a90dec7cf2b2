//! The lab hypervisor: a `hypervisor-adapter` whose endpoint is a plain
//! directory, for `homeward demo` and as the target of the hypervisor
//! conformance suite. It behaves like a small, honest vSphere: the same
//! privilege names, the same error kinds a vCenter gives, VMDK-flat disks.
//!
//! # Configuration
//!
//! | key | kind | meaning |
//! |---|---|---|
//! | `root` | config | where the lab is inside the sandbox (default `/lab`); grant it read-write |
//! | `user` | config | the account to log in as |
//! | `password` | secret | its password |
//!
//! # The lab format
//!
//! See [`format`] for the layout and the types (shared with the host's
//! `homeward::lab::hypervisor`). `site.json` holds the endpoint, licence,
//! accounts (user, password, vSphere privileges held on the whole
//! inventory), datacenters, hosts (a host's `datastores` is the one record of
//! which host mounts which datastore; a datastore's `host-ids` are derived
//! from it), datastores, networks and id counters. Each datastore is the
//! directory `datastores/<name>/`; it is `accessible` while that directory
//! exists, and its free bytes are its capacity minus the size of every file
//! in it (thin disks count at their provisioned size: the sandbox cannot see
//! allocated blocks, and so the figure is the same on any host file system).
//! Each VM is `datastores/<ds>/<vm-name>/vm.json` plus one VMDK monolithicFlat
//! disk per attached disk (`<vm>.vmdk` + sparse `<vm>-flat.vmdk`, then
//! `<vm>_1.vmdk`...). Ids come from counters (`vm-N`, `snapshot-N`, disk UUID
//! `6000c290-0000-0000-0000-<N>`, BIOS UUID `564d0000-...-<N>`, MAC
//! `00:50:56:..`), never from randomness, so runs are reproducible. Every JSON
//! file is replaced atomically (temporary file + rename).
//!
//! # Behaviour
//!
//! - **Session.** `connect` checks `user` and secret `password` against the
//!   accounts (wrong → `permission-denied` "wrong user or password for lab
//!   user X", no privileges listed, the password never echoed) and keeps the
//!   user logged in for the life of the instance; `disconnect` forgets it;
//!   any call before `connect` logs in implicitly. Privileges are read afresh
//!   on every call. A missing lab directory or `site.json` is `unavailable`
//!   naming the path and the grant to add.
//! - **Order of checks** in every call: log in, privileges
//!   (`permission-denied` listing exactly the missing ones), then for changes
//!   the licence (a free licence makes the API read-only: `unsupported`, like
//!   vSphere's `RestrictedVersion`), then the request itself (`invalid-input`),
//!   then the objects it names (`not-found`), then the state (`conflict`).
//! - **Privileges** (vSphere names, see [`privileges`]): reads (`discover`,
//!   `get-vm`, `get-licence`, `readiness`) need `System.Read`; `set-power`
//!   needs `VirtualMachine.Interact.PowerOn` or `.PowerOff`; `shutdown-guest`
//!   `.PowerOff`; `create-vm` needs `VirtualMachine.Inventory.Create` and
//!   `Resource.AssignVMToPool`, plus `VirtualMachine.Config.AddNewDisk` and
//!   `Datastore.AllocateSpace` when it has disks and `Network.Assign` when it
//!   has NICs; `delete-vm` `VirtualMachine.Inventory.Delete`; `add-disk`
//!   `VirtualMachine.Config.AddNewDisk` + `Datastore.AllocateSpace`;
//!   `detach-disk` `VirtualMachine.Config.RemoveDisk`; snapshots
//!   `VirtualMachine.State.CreateSnapshot` / `RemoveSnapshot`.
//! - **readiness** (operation `reprotect` or `failback`, else
//!   `invalid-input`; objects named but missing → `not-found`). Findings, all
//!   `blocking`: `privileges` (details: exactly the missing ones of
//!   [`privileges::HOMEWARD_REQUIRED`]); `snapshots` (reprotect and the VM has
//!   snapshots; details: their names); `licence` (failback on a free licence,
//!   or any operation on an expired one; details: the edition); `disk-uuid`
//!   (the master target VM's `disk.EnableUUID` is not `TRUE`); and
//!   `datastore-reach` (the datastore is not mounted by the master target's
//!   host, which is `master-target-host-id` or else the master target VM's
//!   host; details: datastore id, host id).
//! - **set-power** to `powered-on` / `powered-off`: already in that state →
//!   `conflict`; `suspended`/`unknown` → `invalid-input`.
//! - **shutdown-guest**: VM not powered on, or guest tools not running →
//!   `conflict` (the latter says to power off instead); otherwise powered off.
//!   Tools run while a VM with `tools-installed` is powered on.
//! - **create-vm**: name must be 1–80 characters, no slash or control
//!   character, no leading dot; cpus ≥ 1; memory a multiple of 4 MiB; disk
//!   sizes positive multiples of 512 (`invalid-input`). Host, datastore or
//!   network missing → `not-found` naming which; host disconnected →
//!   `conflict`; datastore not mounted by the host, or a network the host
//!   lacks → `invalid-input`; name taken (any VM, or a directory of that
//!   name on the datastore) → `conflict`; disks larger than the datastore's
//!   free bytes → `conflict`. Creates the directory, thin disks on `scsi0`
//!   units 0, 1, ... (never 7), one NIC per network; the VM is powered off,
//!   without tools.
//! - **delete-vm**: not powered off → `conflict`; removes the VM's directory.
//! - **add-disk**: a thin disk at the first free unit of `scsi0`, labelled
//!   `Hard disk N` (first free N), in the first unused file name (files of
//!   detached disks stay). **detach-disk**: unknown disk → `not-found`;
//!   removes it from `vm.json` and keeps its files.
//! - **create-snapshot**: empty name → `invalid-input`; `quiesce` while guest
//!   tools are not running → `conflict` (as vSphere's quiesce fault). Copies
//!   every disk (sparse copy) to `<vm>/snapshots/<snapshot-id>/`, so a
//!   snapshot is a real frozen point; its parent is the current snapshot.
//!   **delete-snapshot**: unknown → `not-found`; children move to its parent;
//!   its copies are deleted (consolidation). **snapshot-disk** (API 0.1.2):
//!   VM, snapshot or disk unknown, or a disk added after the snapshot →
//!   `not-found`; else the disk record located at its frozen copy
//!   (`<vm>/snapshots/<snapshot-id>/<file>`), property `access` `read`.
//! - **Disks** are reported with `format: vmdk-flat`, `locator:
//!   datastore-file((<datastore name>, "<vm>/<vm>.vmdk"))`, sector size 512,
//!   controller `scsi0` and its unit, and properties `thin`, `datastore-path`
//!   (`[ds1] web01/web01.vmdk`) and `flat-file`. The disk id is its UUID.
//! - **VMs** carry properties `cpus`, `memory-mib`, `tools-running`,
//!   `datastore`, `config-path`, `current-snapshot` (if any) and
//!   `extra-config.<key>` per `extraConfig` entry; NICs report the network
//!   id and DHCP addressing.

pub mod convert;
pub mod format;
pub mod ops;
pub mod privileges;
pub mod readiness;
pub mod store;
pub mod vmdk;

use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::{
    Guest, Inventory, ReadinessRequest, VmSpec,
};
use homeward_sdk::types::{Disk, EndpointInfo, Finding, Licence, PowerState, Snapshot, Vm};

/// The plugin's exports; each delegates to [`ops`].
pub struct LabHypervisor;

impl Guest for LabHypervisor {
    fn connect() -> Result<EndpointInfo, Error> {
        ops::connect()
    }
    fn disconnect() -> Result<(), Error> {
        ops::disconnect()
    }
    fn discover() -> Result<Inventory, Error> {
        ops::discover()
    }
    fn get_vm(vm_id: String) -> Result<Vm, Error> {
        ops::get_vm(&vm_id)
    }
    fn get_licence() -> Result<Licence, Error> {
        ops::get_licence()
    }
    fn readiness(request: ReadinessRequest) -> Result<Vec<Finding>, Error> {
        ops::readiness(&request)
    }
    fn set_power(vm_id: String, state: PowerState) -> Result<(), Error> {
        ops::set_power(&vm_id, state)
    }
    fn shutdown_guest(vm_id: String) -> Result<(), Error> {
        ops::shutdown_guest(&vm_id)
    }
    fn create_vm(spec: VmSpec) -> Result<Vm, Error> {
        ops::create_vm(spec)
    }
    fn delete_vm(vm_id: String) -> Result<(), Error> {
        ops::delete_vm(&vm_id)
    }
    fn add_disk(vm_id: String, capacity_bytes: u64) -> Result<Disk, Error> {
        ops::add_disk(&vm_id, capacity_bytes)
    }
    fn detach_disk(vm_id: String, disk_id: String) -> Result<(), Error> {
        ops::detach_disk(&vm_id, &disk_id)
    }
    fn create_snapshot(vm_id: String, name: String, quiesce: bool) -> Result<Snapshot, Error> {
        ops::create_snapshot(&vm_id, &name, quiesce)
    }
    fn delete_snapshot(vm_id: String, snapshot_id: String) -> Result<(), Error> {
        ops::delete_snapshot(&vm_id, &snapshot_id)
    }
}

impl homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor_snapshots::Guest
    for LabHypervisor
{
    fn snapshot_disk(vm_id: String, snapshot_id: String, disk_id: String) -> Result<Disk, Error> {
        ops::snapshot_disk(&vm_id, &snapshot_id, &disk_id)
    }
}

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "lab-hypervisor",
    kind: hypervisor_adapter,
    component: LabHypervisor,
    files: "read-write",
}
