//! # The lab cloud
//!
//! A `cloud-adapter` whose "endpoint" is a plain directory: a small, honest
//! Azure (Resource Manager compute, managed disks, virtual networks) for
//! `homeward demo` and for the cloud conformance suite. It keeps Azure's
//! semantics and error kinds, so a suite that passes here means something for
//! the real Azure adapter. The host writes and inspects labs with
//! `homeward::lab::cloud::LabCloud`, using this crate's [`format`] types.
//!
//! ## Configuration
//!
//! | key | kind | meaning |
//! |---|---|---|
//! | `root` | config | the lab as the plugin sees it (default `/lab`), granted read-write |
//! | `host-root` | config | the same directory on the host: disk locators are `local-path`s under it |
//! | `client-id` | config | the service principal to sign in as |
//! | `client-secret` | secret | its client secret |
//!
//! Every call signs in first (as every ARM request carries a token): a
//! missing key is `invalid-input` naming it; an unreachable lab directory
//! or one without `cloud.json` is `unavailable`, naming the directory and
//! the grant to add; an unknown client id or a wrong secret is
//! `permission-denied` naming the client id (never the secret), with no
//! missing privileges.
//!
//! ## Layout of a lab directory
//!
//! ```text
//! cloud.json                   subscription, tenant, resource group, location,
//!                              service principals (client id, secret, role),
//!                              virtual networks with subnets (written by the host only)
//! counters.json                next VM, NIC and snapshot numbers
//! vms/<vm>.json                a VM: id, vmId, size, power, disk ids (OS first), NICs
//! disks/<disk>.vhd             a managed disk: a sparse VHD fixed image
//! disks/<disk>.json            its record: id, capacity, sector size
//! disks/<disk>@<snap>.vhd      a snapshot: a frozen sparse copy of the disk's VHD
//! disks/<disk>@<snap>.json     its record: id, number, disk id, created-at, parent id
//! ```
//!
//! Every record is JSON ([`format`]); every write is atomic (a temporary
//! file, synced, then renamed). Ids are ARM ids in the lab's one subscription
//! and resource group (`/subscriptions/<sub>/resourceGroups/<rg>/providers/
//! Microsoft.Compute/virtualMachines/<name>`, `.../Microsoft.Compute/disks/<name>`,
//! `.../Microsoft.Compute/snapshots/<disk>-snap<n>`, `.../Microsoft.Network/
//! virtualNetworks/<vnet>[/subnets/<subnet>]`). The fixed segments and types
//! compare case-insensitively, names as written. New identities come from
//! `counters.json`, never from randomness: VM `n` has vmId
//! `1ab0c10d-0000-4000-8000-<n as 12 hex digits>`, NIC `n` the MAC
//! `00:0d:3a:<n as 3 bytes>` and the name `<vm>-nic<n>`.
//!
//! ## Roles
//!
//! `Contributor` may do everything. `Reader` may call `connect`, `get-vm` and
//! `get-network`; every other call is `permission-denied` with the Azure
//! actions it lacks in `missing-privileges` (checked before the object is
//! looked up, as ARM authorizes before it looks):
//!
//! | call | missing actions |
//! |---|---|
//! | `power-off` | `Microsoft.Compute/virtualMachines/powerOff/action`, or `.../deallocate/action` with `deallocate` |
//! | `start` | `Microsoft.Compute/virtualMachines/start/action` |
//! | `delete-vm` | `Microsoft.Compute/virtualMachines/delete`, `Microsoft.Network/networkInterfaces/delete` |
//! | `create-vm` | `Microsoft.Compute/virtualMachines/write`, `Microsoft.Network/networkInterfaces/write`, `Microsoft.Network/virtualNetworks/subnets/join/action`, `Microsoft.Compute/disks/write` |
//! | `disk-endpoint` (read or read-write) | `Microsoft.Compute/disks/beginGetAccess/action` (a SAS is an action, not a read) |
//! | `create-snapshot` | `Microsoft.Compute/snapshots/write` |
//! | `delete-snapshot` | `Microsoft.Compute/snapshots/delete` |
//! | `changed-ranges` | `Microsoft.Compute/snapshots/beginGetAccess/action` |
//!
//! ## Calls
//!
//! Ids that do not parse, or name another resource type, are `invalid-input`;
//! ids of another subscription or resource group are `not-found`.
//!
//! - `connect`: `product` [`format::PRODUCT`], `api-version`
//!   [`format::API_VERSION`], `instance-id` the subscription id.
//! - `get-vm`: missing → `not-found` naming the id. Power `powered-on` when
//!   running, `powered-off` when stopped or deallocated (property
//!   `power-state` = `PowerState/running|stopped|deallocated`). Disks in
//!   order, OS disk first (`controller` `osDisk`; data disks `dataDisks`
//!   with `unit` = LUN), `format` `vhd-fixed`, `locator`
//!   `local-path(<host-root>/disks/<disk>.vhd)`. One NIC per entry, with
//!   `network` = subnet id and `fixed` addressing: the private IP with the
//!   subnet's prefix length, the subnet's gateway (first host) and Azure's DNS
//!   `168.63.129.16` (what Azure reports; inside the guest Azure hands it out
//!   by DHCP); properties `nic.<i>.id`, `nic.<i>.allocation`
//!   (`Static`/`Dynamic`), `size`, `location`, `resource-group`. Snapshots:
//!   those of its disks, oldest first per disk.
//! - `power-off(deallocate)`: running → stopped, or → deallocated with
//!   `deallocate` from any state. Already off: succeeds, no change (a
//!   deallocated VM stays deallocated without `deallocate`).
//! - `start`: → running; already running: succeeds, no change.
//! - `delete-vm`: running → `conflict`; stopped or deallocated → the VM and
//!   its NICs are deleted, its disks and snapshots kept.
//! - `create-vm`, checked in this order: name (1-64 of `[A-Za-z0-9._-]`) and
//!   size (`Standard_*`/`Basic_*`) → `invalid-input`; no disks →
//!   `invalid-input`; name taken → `conflict`; each disk missing →
//!   `not-found` naming it, listed twice → `invalid-input`, attached to another
//!   VM → `conflict` naming that VM; subnet id malformed or a virtual
//!   network's → `invalid-input`, missing virtual network or subnet →
//!   `not-found` saying which; private IP malformed, outside the subnet or
//!   reserved by Azure (network, `.1`-`.3`, broadcast) → `invalid-input`,
//!   used by another VM's NIC in the subnet → `conflict`. Without a private IP
//!   the lowest free one from the fifth address on is allocated (`Dynamic`).
//!   The new VM is running.
//! - `get-network`: a virtual network id → kind `virtualNetwork` with its
//!   address space; a subnet id → kind `subnet` with its prefix. Missing →
//!   `not-found` saying whether the virtual network or only the subnet is
//!   missing (and listing what exists).
//! - `disk-endpoint(disk, access)`: missing → `not-found`; `read-write` while
//!   the disk's VM holds it allocated (running, or stopped without
//!   deallocating) → `conflict` (deallocate first). Reads are allowed on a
//!   running VM's disk, so the demo can copy while the VM runs (Azure itself
//!   refuses a SAS on a running VM's disk; the Azure adapter reads a
//!   snapshot). Answer: the `get-vm` disk record plus properties `access` and
//!   `attached-to` (the VM id) when attached.
//! - `create-snapshot(disk)`: missing → `not-found`; a frozen sparse copy;
//!   `parent-id` is the disk's newest snapshot, `quiesced` false.
//! - `create-restore-point(vm, disks, quiesce)` (API 0.1.1): VM missing →
//!   `not-found`; no disk, or a disk not attached to the VM →
//!   `invalid-input`. One snapshot per disk, as `create-snapshot` takes
//!   them; app-consistent (`quiesced`) when asked for and the VM is running,
//!   else crash-consistent with a `note` saying the VM is stopped. A failure
//!   part way deletes the snapshots already taken.
//! - `delete-snapshot(disk, snapshot)`: disk missing, or snapshot missing or
//!   of another disk → `not-found`.
//! - `changed-ranges(disk, base, target)`: either snapshot missing or of
//!   another disk → `not-found` naming it; otherwise the 64 KiB blocks
//!   ([`format::BLOCK_SIZE`]) that differ between the two copies, merged
//!   into sorted, disjoint byte ranges (the last block cut at the disk's
//!   end), method `lab-block-compare`. The same snapshot twice gives no ranges.
//!
//! The lab assumes one writer at a time (one job, or one conformance run).

pub mod arm;
pub mod auth;
pub mod compute;
pub mod disks;
pub mod format;
pub mod ipv4;
pub mod network;
pub mod restore_points;
pub mod store;

use auth::Caller;
use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::{
    Access, ChangeSet, Guest, VmSpec,
};
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::RestorePoint;
use homeward_sdk::types::{Disk, EndpointInfo, Network, Snapshot, Vm};
use homeward_sdk::{config, log};
use std::path::Path;
use store::Lab;

/// Where the lab is when config `root` is not set.
pub const DEFAULT_ROOT: &str = "/lab";

/// The exported component.
pub struct LabCloud;

/// The lab, opened and signed in to for one call.
struct Session {
    lab: Lab,
    caller: Caller,
}

/// Reads the configuration, opens the lab and signs in.
fn session() -> Result<Session, Error> {
    let root = config::get("root").unwrap_or_else(|| DEFAULT_ROOT.to_string());
    let host_root = config::require("host-root")?;
    let client_id = config::require("client-id")?;
    let secret = config::require_secret("client-secret")?;
    let lab = Lab::open(Path::new(&root), Some(Path::new(&host_root)))?;
    match auth::sign_in(&lab.cloud, &client_id, &secret) {
        Ok(caller) => Ok(Session { lab, caller }),
        Err(e) => {
            log::warn(&format!(
                "sign-in refused for application `{}`",
                client_id.escape_debug()
            ));
            Err(e)
        }
    }
}

impl Guest for LabCloud {
    fn connect() -> Result<EndpointInfo, Error> {
        let s = session()?;
        log::info(&format!(
            "signed in as `{}` ({}) to subscription {}",
            s.caller.client_id, s.caller.role, s.lab.cloud.subscription_id
        ));
        Ok(EndpointInfo {
            product: format::PRODUCT.to_string(),
            api_version: format::API_VERSION.to_string(),
            instance_id: s.lab.cloud.subscription_id.clone(),
        })
    }

    fn get_vm(vm_id: String) -> Result<Vm, Error> {
        let s = session()?;
        compute::get_vm(&s.lab, &vm_id)
    }

    fn power_off(vm_id: String, deallocate: bool) -> Result<(), Error> {
        let s = session()?;
        let state = compute::power_off(&s.lab, &s.caller, &vm_id, deallocate)?;
        log::info(&format!("{vm_id}: {}", state.azure_code()));
        Ok(())
    }

    fn start(vm_id: String) -> Result<(), Error> {
        let s = session()?;
        compute::start(&s.lab, &s.caller, &vm_id)?;
        log::info(&format!("{vm_id}: PowerState/running"));
        Ok(())
    }

    fn delete_vm(vm_id: String) -> Result<(), Error> {
        let s = session()?;
        compute::delete_vm(&s.lab, &s.caller, &vm_id)?;
        log::info(&format!("{vm_id}: deleted (disks kept)"));
        Ok(())
    }

    fn create_vm(spec: VmSpec) -> Result<Vm, Error> {
        let s = session()?;
        let vm = compute::create_vm(&s.lab, &s.caller, &spec)?;
        log::info(&format!("{}: created", vm.id));
        Ok(vm)
    }

    fn get_network(network_id: String) -> Result<Network, Error> {
        let s = session()?;
        network::get_network(&s.lab, &network_id)
    }

    fn disk_endpoint(disk_id: String, access: Access) -> Result<Disk, Error> {
        let s = session()?;
        disks::endpoint(&s.lab, &s.caller, &disk_id, access)
    }

    fn create_snapshot(disk_id: String) -> Result<Snapshot, Error> {
        let s = session()?;
        let snapshot = disks::create_snapshot(&s.lab, &s.caller, &disk_id)?;
        log::info(&format!("{disk_id}: snapshot {} taken", snapshot.id));
        Ok(snapshot)
    }

    fn delete_snapshot(disk_id: String, snapshot_id: String) -> Result<(), Error> {
        let s = session()?;
        disks::delete_snapshot(&s.lab, &s.caller, &disk_id, &snapshot_id)?;
        log::info(&format!("{disk_id}: snapshot {snapshot_id} deleted"));
        Ok(())
    }

    fn changed_ranges(disk_id: String, base: String, target: String) -> Result<ChangeSet, Error> {
        let s = session()?;
        disks::changed_ranges(&s.lab, &s.caller, &disk_id, &base, &target)
    }
}

impl homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::Guest
    for LabCloud
{
    fn create_restore_point(
        vm_id: String,
        disk_ids: Vec<String>,
        quiesce: bool,
    ) -> Result<RestorePoint, Error> {
        let s = session()?;
        let point = restore_points::create(&s.lab, &s.caller, &vm_id, &disk_ids, quiesce)?;
        log::info(&format!(
            "{vm_id}: restore point of {} disk(s) taken ({})",
            point.snapshots.len(),
            if point.quiesced {
                "app-consistent"
            } else {
                "crash-consistent"
            }
        ));
        Ok(point)
    }
}

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "lab-cloud",
    kind: cloud_adapter,
    component: LabCloud,
    files: "read-write",
}
