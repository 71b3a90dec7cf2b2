//! The changes an adapter makes: power, guest shutdown, VMs, disks and
//! snapshots. Each checks, in this order: the session, the privileges it
//! needs (refused with every missing one), the request itself
//! (`invalid-input`), the objects it names (`not-found`), their state
//! (`conflict`); then vSphere does it and a task failure comes back typed.

use crate::client::{self, method};
use crate::convert::{self, split_datastore_path};
use crate::inventory;
use crate::privileges::*;
use crate::props::{self, Object};
use crate::spec::{self, NewVm, NicBacking, SCSI_CONTROLLER_UNIT, SCSI_UNITS};
use crate::task;
use crate::xml::{Element, MoRef, leaf};
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::VmSpec;
use homeward_sdk::types::{Disk, PowerState, Snapshot, Vm};

/// Longest VM name vSphere accepts.
const MAX_NAME: usize = 80;

fn power_state(vm: &Object) -> String {
    vm.string("runtime.powerState")
}

/// Changes a VM's power state (hard).
pub fn set_power(vm_id: &str, state: PowerState) -> Result<(), Error> {
    let (privilege, wanted, method_name) = match state {
        PowerState::PoweredOn => (POWER_ON, "poweredOn", "PowerOnVM_Task"),
        PowerState::PoweredOff => (POWER_OFF, "poweredOff", "PowerOffVM_Task"),
        other => {
            return Err(Error::invalid_input(format!(
                "set-power takes powered-on or powered-off, not {other:?}"
            )));
        }
    };
    let what = format!(
        "powering VM {vm_id} {}",
        if wanted == "poweredOn" { "on" } else { "off" }
    );
    crate::authz::require(&[privilege], &what)?;
    let vm = inventory::vm_object(vm_id)?;
    let current = power_state(&vm);
    if current == wanted {
        return Err(Error::conflict(format!(
            "{what}: VM {} ({vm_id}) is already {current}",
            vm.string("name")
        )));
    }
    task::run(&method(method_name, &vm.obj, ""), &what)?;
    Ok(())
}

/// Asks the guest to shut down (guest tools carry the request).
pub fn shutdown_guest(vm_id: &str) -> Result<(), Error> {
    let what = format!("shutting down the guest of VM {vm_id}");
    crate::authz::require(&[POWER_OFF], &what)?;
    let vm = inventory::vm_object(vm_id)?;
    let current = power_state(&vm);
    if current != "poweredOn" {
        return Err(Error::conflict(format!(
            "{what}: VM {} is {current}, not powered on",
            vm.string("name")
        )));
    }
    client::call(&method("ShutdownGuest", &vm.obj, ""), &what).map_err(|e| match e {
        Error::Conflict(m) if m.contains("ToolsUnavailable") => Error::conflict(format!(
            "{m}; guest tools are not running in VM {}, so power it off instead",
            vm.string("name")
        )),
        other => other,
    })?;
    Ok(())
}

/// Whether `name` is one vSphere takes for a VM.
fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '%'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "VM name {name:?} must be 1-{MAX_NAME} characters without control characters, '/', '\\' or '%'"
        )))
    }
}

fn check_disk_size(bytes: u64) -> Result<(), Error> {
    if bytes == 0 || !bytes.is_multiple_of(1024) {
        return Err(Error::invalid_input(format!(
            "disk size {bytes} bytes must be a positive multiple of 1024 (vSphere sizes disks in KiB)"
        )));
    }
    Ok(())
}

/// The datacenter an entity belongs to, by walking its parents.
fn datacenter_of(start: &MoRef) -> Result<MoRef, Error> {
    let mut current = start.clone();
    for _ in 0..64 {
        if current.kind == "Datacenter" {
            return Ok(current);
        }
        current = props::one(&current, &["parent"])?
            .moref("parent")
            .ok_or_else(|| {
                Error::internal(format!(
                    "{} {} has no datacenter above it",
                    start.kind, start.value
                ))
            })?;
    }
    Err(Error::internal(format!(
        "the inventory above {} {} is deeper than 64 levels",
        start.kind, start.value
    )))
}

/// How a NIC attaches to network `id`, which `host` must have.
fn nic_backing(id: &str, host: &Object) -> Result<NicBacking, Error> {
    let networks = inventory::networks()?;
    let network = networks
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| Error::not_found(format!("network {id} does not exist on the endpoint")))?;
    if !host.morefs("network").iter().any(|m| m.value == id) {
        return Err(Error::invalid_input(format!(
            "host {} ({}) has no network {} ({id}); pick one of its networks",
            host.string("name"),
            host.obj.value,
            network.name
        )));
    }
    if network.kind == "DistributedVirtualPortgroup" {
        let pg = props::one(
            &MoRef::new("DistributedVirtualPortgroup", id),
            &["key", "config.distributedVirtualSwitch"],
        )?;
        let switch = pg.moref("config.distributedVirtualSwitch").ok_or_else(|| {
            Error::internal(format!("distributed port group {id} names no switch"))
        })?;
        let switch = props::one(&switch, &["uuid"])?;
        Ok(NicBacking::Distributed {
            switch_uuid: switch.string("uuid"),
            portgroup_key: pg.text("key").map(str::trim).unwrap_or(id).to_string(),
        })
    } else {
        Ok(NicBacking::Network {
            name: network.name.clone(),
            id: id.to_string(),
        })
    }
}

/// Creates a VM on the chosen host, datastore and networks (S4).
pub fn create_vm(spec: &VmSpec) -> Result<Vm, Error> {
    let what = format!("creating VM {}", spec.name);
    let mut needed = vec![VM_CREATE, ASSIGN_TO_POOL];
    if !spec.disk_sizes.is_empty() {
        needed.extend([ADD_NEW_DISK, ALLOCATE_SPACE]);
    }
    if !spec.network_ids.is_empty() {
        needed.push(NETWORK_ASSIGN);
    }
    crate::authz::require(&needed, &what)?;

    check_name(&spec.name)?;
    if spec.cpus == 0 {
        return Err(Error::invalid_input("a VM needs at least one vCPU"));
    }
    if spec.memory_mib == 0 || !spec.memory_mib.is_multiple_of(4) {
        return Err(Error::invalid_input(format!(
            "memory {} MiB must be a positive multiple of 4",
            spec.memory_mib
        )));
    }
    if spec.guest_id.trim().is_empty() {
        return Err(Error::invalid_input(
            "guest-id is empty (e.g. otherLinux64Guest)",
        ));
    }
    for bytes in &spec.disk_sizes {
        check_disk_size(*bytes)?;
    }
    if spec.disk_sizes.len() > (SCSI_UNITS - 1) as usize {
        return Err(Error::invalid_input(format!(
            "{} disks do not fit on one SCSI controller (at most {})",
            spec.disk_sizes.len(),
            SCSI_UNITS - 1
        )));
    }

    let host = inventory::host_object(&spec.host_id)?;
    let datastore = inventory::datastore_object(&spec.datastore_id)?;
    let datastore_name = datastore.string("name");
    if host.string("runtime.connectionState") != "connected" {
        return Err(Error::conflict(format!(
            "{what}: host {} ({}) is {}, not connected",
            host.string("name"),
            spec.host_id,
            host.string("runtime.connectionState")
        )));
    }
    if !host
        .morefs("datastore")
        .iter()
        .any(|m| m.value == spec.datastore_id)
    {
        return Err(Error::invalid_input(format!(
            "host {} ({}) does not mount datastore {datastore_name} ({}); pick one it mounts",
            host.string("name"),
            spec.host_id,
            spec.datastore_id
        )));
    }
    let nics = spec
        .network_ids
        .iter()
        .map(|id| nic_backing(id, &host))
        .collect::<Result<Vec<_>, _>>()?;

    let compute = host
        .moref("parent")
        .ok_or_else(|| Error::internal(format!("host {} has no parent", spec.host_id)))?;
    let pool = props::one(&compute, &["resourcePool"])?
        .moref("resourcePool")
        .ok_or_else(|| {
            Error::internal(format!(
                "{} {} has no resource pool",
                compute.kind, compute.value
            ))
        })?;
    let datacenter = datacenter_of(&compute)?;
    let folder = props::one(&datacenter, &["vmFolder"])?
        .moref("vmFolder")
        .ok_or_else(|| {
            Error::internal(format!("datacenter {} has no VM folder", datacenter.value))
        })?;

    let search = client::session()?
        .content
        .search_index
        .ok_or_else(|| Error::internal("the endpoint's service content has no search index"))?;
    let found = client::call(
        &method(
            "FindChild",
            &search,
            &format!("{}{}", folder.xml("entity"), leaf("name", &spec.name)),
        ),
        &what,
    )?;
    if let Some(existing) = found.child("returnval").and_then(Element::moref) {
        return Err(Error::conflict(format!(
            "{what}: the name is taken by {} {} in the datacenter's VM folder",
            existing.kind, existing.value
        )));
    }

    let config = spec::vm_config(&NewVm {
        name: &spec.name,
        guest_id: &spec.guest_id,
        datastore: &datastore_name,
        cpus: spec.cpus,
        memory_mib: spec.memory_mib,
        disks: &spec.disk_sizes,
        nics: &nics,
    });
    let args = format!(
        "{config}{}{}",
        pool.xml("pool"),
        MoRef::new("HostSystem", &spec.host_id).xml("host")
    );
    let result = task::run(&method("CreateVM_Task", &folder, &args), &what)?;
    let vm = result
        .as_ref()
        .and_then(Element::moref)
        .ok_or_else(|| Error::internal(format!("{what}: the task returned no VM")))?;
    inventory::vm(&vm.value)
}

/// Deletes a powered-off VM and its files.
pub fn delete_vm(vm_id: &str) -> Result<(), Error> {
    let what = format!("deleting VM {vm_id}");
    crate::authz::require(&[VM_DELETE], &what)?;
    let vm = inventory::vm_object(vm_id)?;
    let current = power_state(&vm);
    if current != "poweredOff" {
        return Err(Error::conflict(format!(
            "{what}: VM {} is {current}; power it off first",
            vm.string("name")
        )));
    }
    task::run(&method("Destroy_Task", &vm.obj, ""), &what)?;
    Ok(())
}

fn device_keys(vm: &Object) -> Vec<i64> {
    convert::devices(vm)
        .iter()
        .filter_map(|d| d.number_at::<i64>(&["key"]))
        .collect()
}

/// Creates a thin disk in the VM's directory and attaches it.
pub fn add_disk(vm_id: &str, capacity_bytes: u64) -> Result<Disk, Error> {
    let what = format!("adding a disk to VM {vm_id}");
    crate::authz::require(&[ADD_NEW_DISK, ALLOCATE_SPACE], &what)?;
    check_disk_size(capacity_bytes)?;
    let vm = inventory::vm_object(vm_id)?;
    let (datastore, _) = split_datastore_path(&vm.string("summary.config.vmPathName"))
        .ok_or_else(|| Error::internal(format!("{what}: the VM reports no datastore path")))?;
    let devices = convert::devices(&vm);
    let mut changes = String::new();
    let (controller_key, unit) = match devices.iter().find(|d| convert::is_scsi_controller(d)) {
        Some(controller) => {
            let key: i64 = controller.number_at(&["key"]).unwrap_or_default();
            let used: Vec<u32> = devices
                .iter()
                .filter(|d| d.number_at::<i64>(&["controllerKey"]) == Some(key))
                .filter_map(|d| d.number_at(&["unitNumber"]))
                .collect();
            let unit = (0..SCSI_UNITS)
                .find(|u| *u != SCSI_CONTROLLER_UNIT && !used.contains(u))
                .ok_or_else(|| {
                    Error::conflict(format!("{what}: its SCSI controller has no free unit"))
                })?;
            (i32::try_from(key).unwrap_or_default(), unit)
        }
        None => {
            changes.push_str(&spec::add_controller(spec::NEW_CONTROLLER_KEY));
            (spec::NEW_CONTROLLER_KEY, 0)
        }
    };
    changes.push_str(&spec::add_disk(
        -1,
        controller_key,
        unit,
        capacity_bytes,
        &datastore,
    ));
    let before = device_keys(&vm);
    task::run(
        &method(
            "ReconfigVM_Task",
            &vm.obj,
            &format!("<spec>{changes}</spec>"),
        ),
        &what,
    )?;
    let after = inventory::vm_object(vm_id)?;
    let all = convert::devices(&after);
    all.iter()
        .filter(|d| d.is_type("VirtualDisk"))
        .find(|d| {
            d.number_at::<i64>(&["key"])
                .is_some_and(|k| !before.contains(&k))
        })
        .map(|d| convert::disk(vm_id, d, &all))
        .ok_or_else(|| Error::internal(format!("{what}: the reconfigured VM shows no new disk")))
}

/// Detaches a disk, keeping its file.
pub fn detach_disk(vm_id: &str, disk_id: &str) -> Result<(), Error> {
    let what = format!("detaching disk {disk_id} from VM {vm_id}");
    crate::authz::require(&[REMOVE_DISK], &what)?;
    let vm = inventory::vm_object(vm_id)?;
    let devices = convert::devices(&vm);
    let disk = devices
        .iter()
        .filter(|d| d.is_type("VirtualDisk"))
        .find(|d| convert::disk_id(vm_id, d) == disk_id)
        .ok_or_else(|| {
            Error::not_found(format!(
                "VM {} ({vm_id}) has no disk {disk_id}",
                vm.string("name")
            ))
        })?;
    let change = spec::remove_disk(
        disk.number_at(&["key"]).unwrap_or_default(),
        disk.number_at(&["controllerKey"]).unwrap_or_default(),
        disk.number_at(&["unitNumber"]).unwrap_or_default(),
        disk.text_at(&["backing", "fileName"]).unwrap_or_default(),
        disk.number_at(&["capacityInKB"]).unwrap_or_default(),
    );
    task::run(
        &method(
            "ReconfigVM_Task",
            &vm.obj,
            &format!("<spec>{change}</spec>"),
        ),
        &what,
    )?;
    Ok(())
}

/// Takes a snapshot (without memory); `quiesce` asks guest tools to flush first.
pub fn create_snapshot(vm_id: &str, name: &str, quiesce: bool) -> Result<Snapshot, Error> {
    let what = format!("taking snapshot {name:?} of VM {vm_id}");
    crate::authz::require(&[CREATE_SNAPSHOT], &what)?;
    if name.trim().is_empty() {
        return Err(Error::invalid_input("a snapshot needs a name"));
    }
    let vm = inventory::vm_object(vm_id)?;
    let args = format!(
        "{}{}{}{}",
        leaf("name", name),
        leaf("description", "taken by Homeward"),
        leaf("memory", "false"),
        leaf("quiesce", if quiesce { "true" } else { "false" })
    );
    let result = task::run(&method("CreateSnapshot_Task", &vm.obj, &args), &what)?;
    let id = result
        .as_ref()
        .and_then(Element::moref)
        .map(|m| m.value)
        .ok_or_else(|| Error::internal(format!("{what}: the task returned no snapshot")))?;
    let fresh = inventory::vm_object(vm_id)?;
    convert::snapshots(&fresh)
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Error::internal(format!("{what}: snapshot {id} is not in the VM's tree")))
}

/// Deletes one snapshot, consolidating it into its parent (children stay).
pub fn delete_snapshot(vm_id: &str, snapshot_id: &str) -> Result<(), Error> {
    let what = format!("deleting snapshot {snapshot_id} of VM {vm_id}");
    crate::authz::require(&[REMOVE_SNAPSHOT], &what)?;
    let vm = inventory::vm_object(vm_id)?;
    if !convert::snapshots(&vm).iter().any(|s| s.id == snapshot_id) {
        return Err(Error::not_found(format!(
            "VM {} ({vm_id}) has no snapshot {snapshot_id}",
            vm.string("name")
        )));
    }
    let snapshot = MoRef::new("VirtualMachineSnapshot", snapshot_id);
    let args = format!(
        "{}{}",
        leaf("removeChildren", "false"),
        leaf("consolidate", "true")
    );
    task::run(&method("RemoveSnapshot_Task", &snapshot, &args), &what)?;
    Ok(())
}
