//! Virtual machines: `get-vm`, `power-off`, `start`, `delete-vm`,
//! `create-vm`, and the VM record the API returns.

use crate::auth::{Caller, actions};
use crate::disks;
use crate::format::{self, AZURE_DNS, Allocation, LabPower, NicFile, VM_TYPE, VmFile};
use crate::network;
use crate::store::{Lab, describe, now_millis};
use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::VmSpec;
use homeward_sdk::types::{Addressing, NicConfig, PowerState, StaticAddressing, Vm};
use std::net::Ipv4Addr;

/// The VM `id` names; `not-found` when there is none.
pub fn load(lab: &Lab, id: &str) -> Result<VmFile, Error> {
    let name = lab.name_in(id, VM_TYPE, "virtual machine")?;
    lab.vm(&name)?.ok_or_else(|| {
        Error::not_found(format!(
            "virtual machine `{name}` ({id}) does not exist in resource group {}",
            lab.cloud.resource_group
        ))
    })
}

/// `get-vm`.
pub fn get_vm(lab: &Lab, id: &str) -> Result<Vm, Error> {
    let vm = load(lab, id)?;
    to_api(lab, &vm)
}

/// `power-off`: running or stopped → stopped, or deallocated with
/// `deallocate`. Powering off a VM that is already off succeeds and changes
/// nothing (a deallocated VM stays deallocated), as in Azure.
pub fn power_off(
    lab: &Lab,
    caller: &Caller,
    id: &str,
    deallocate: bool,
) -> Result<LabPower, Error> {
    let action = if deallocate {
        actions::VM_DEALLOCATE
    } else {
        actions::VM_POWER_OFF
    };
    let verb = if deallocate {
        "deallocate"
    } else {
        "power off"
    };
    caller.may(
        &lab.cloud,
        &format!("{verb} virtual machine {id}"),
        &[action],
    )?;
    let mut vm = load(lab, id)?;
    let next = match (vm.power, deallocate) {
        (_, true) => LabPower::Deallocated,
        (LabPower::Running, false) => LabPower::Stopped,
        (state, false) => state,
    };
    if next != vm.power {
        vm.power = next;
        lab.save_vm(&vm)?;
    }
    Ok(next)
}

/// `start`: any state → running; starting a running VM succeeds and changes
/// nothing, as in Azure.
pub fn start(lab: &Lab, caller: &Caller, id: &str) -> Result<(), Error> {
    caller.may(
        &lab.cloud,
        &format!("start virtual machine {id}"),
        &[actions::VM_START],
    )?;
    let mut vm = load(lab, id)?;
    if vm.power != LabPower::Running {
        vm.power = LabPower::Running;
        lab.save_vm(&vm)?;
    }
    Ok(())
}

/// `delete-vm`: deletes a stopped or deallocated VM and its NICs, keeping its
/// disks (and their snapshots). A running VM is a `conflict`.
pub fn delete_vm(lab: &Lab, caller: &Caller, id: &str) -> Result<(), Error> {
    caller.may(
        &lab.cloud,
        &format!("delete virtual machine {id}"),
        &[actions::VM_DELETE, actions::NIC_DELETE],
    )?;
    let vm = load(lab, id)?;
    if vm.power == LabPower::Running {
        return Err(Error::conflict(format!(
            "virtual machine `{}` is running: power it off (power-off) before deleting it",
            vm.name
        )));
    }
    lab.remove_vm(&vm.name)
}

/// Longest VM name Azure accepts (Linux VMs).
const MAX_VM_NAME: usize = 64;

/// `create-vm`: a running VM from existing disks, with one NIC in the given
/// subnet. See the crate documentation for the order of the checks.
pub fn create_vm(lab: &Lab, caller: &Caller, spec: &VmSpec) -> Result<Vm, Error> {
    caller.may(
        &lab.cloud,
        &format!("create virtual machine `{}`", spec.name.escape_debug()),
        &[
            actions::VM_WRITE,
            actions::NIC_WRITE,
            actions::SUBNET_JOIN,
            actions::DISK_WRITE,
        ],
    )?;
    if !format::valid_name(&spec.name) || spec.name.len() > MAX_VM_NAME {
        return Err(Error::invalid_input(format!(
            "`{}` is not a valid virtual machine name: 1 to {MAX_VM_NAME} letters, digits, `-`, \
             `_` or `.`, starting with a letter or digit and not ending with `.`",
            spec.name.escape_debug()
        )));
    }
    if !valid_size(&spec.size) {
        return Err(Error::invalid_input(format!(
            "`{}` is not an Azure VM size (Standard_<family>..., e.g. Standard_D2s_v5)",
            spec.size.escape_debug()
        )));
    }
    if spec.disk_ids.is_empty() {
        return Err(Error::invalid_input(
            "a virtual machine needs at least one disk (the OS disk, first in disk-ids)",
        ));
    }
    let vm = lab.locked(|| allocate(lab, spec))?;
    to_api(lab, &vm)
}

/// The part of `create-vm` that reads and then writes what other calls share
/// (the name, attached disks, taken addresses, the counters): run under the
/// lab's lock, so concurrent calls never hand out the same address or MAC.
fn allocate(lab: &Lab, spec: &VmSpec) -> Result<VmFile, Error> {
    if let Some(existing) = lab.vm(&spec.name)? {
        return Err(Error::conflict(format!(
            "a virtual machine named `{}` already exists ({})",
            existing.name, existing.id
        )));
    }

    let vms = lab.vms()?;
    let mut disk_ids = Vec::with_capacity(spec.disk_ids.len());
    for id in &spec.disk_ids {
        let disk = disks::load(lab, id)?;
        if disk_ids
            .iter()
            .any(|d: &String| d.eq_ignore_ascii_case(&disk.id))
        {
            return Err(Error::invalid_input(format!(
                "disk `{}` is listed twice in disk-ids",
                disk.name
            )));
        }
        if let Some(owner) = disks::attached_to(&vms, &disk.id) {
            return Err(Error::conflict(format!(
                "disk `{}` is attached to virtual machine `{}`: delete that VM (its disks are \
                 kept) before attaching the disk elsewhere",
                disk.name, owner.name
            )));
        }
        disk_ids.push(disk.id);
    }

    let subnet = network::subnet(lab, &spec.subnet_id)?;
    let taken: Vec<(Ipv4Addr, &str)> = vms
        .iter()
        .flat_map(|vm| vm.nics.iter().map(move |nic| (nic, vm.name.as_str())))
        .filter(|(nic, _)| nic.subnet_id.eq_ignore_ascii_case(&subnet.id))
        .filter_map(|(nic, vm)| nic.private_ip.parse().ok().map(|ip| (ip, vm)))
        .collect();
    let (private_ip, allocation) = match &spec.private_ip {
        Some(text) => {
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                Error::invalid_input(format!(
                    "private IP `{}` is not an IPv4 address",
                    text.escape_debug()
                ))
            })?;
            if !subnet.prefix.contains(ip) {
                return Err(Error::invalid_input(format!(
                    "private IP {ip} is outside subnet {} ({}/{})",
                    subnet.label, subnet.prefix.network, subnet.prefix.len
                )));
            }
            if subnet.prefix.is_reserved(ip) {
                return Err(Error::invalid_input(format!(
                    "private IP {ip} is reserved by Azure in subnet {} (the network and \
                     broadcast addresses and the first three hosts): choose another",
                    subnet.label
                )));
            }
            if let Some((_, owner)) = taken.iter().find(|(t, _)| *t == ip) {
                return Err(Error::conflict(format!(
                    "private IP {ip} is already used in subnet {} by virtual machine `{owner}`",
                    subnet.label
                )));
            }
            (ip, Allocation::Static)
        }
        None => {
            let held: Vec<Ipv4Addr> = taken.iter().map(|(ip, _)| *ip).collect();
            let ip = subnet.prefix.first_free(&held).ok_or_else(|| {
                Error::conflict(format!("subnet {} has no free address left", subnet.label))
            })?;
            (ip, Allocation::Dynamic)
        }
    };

    let mut counters = lab.counters()?;
    let vm_number = counters.take_vm();
    let nic_number = counters.take_nic();
    // Numbers are spent before the VM exists, so a failure in between skips
    // them instead of handing the same identity out twice.
    lab.save_counters(&counters)?;
    let nic_name = format::nic_name(&spec.name, nic_number);
    let vm = VmFile {
        id: lab.cloud.vm_id(&spec.name),
        vm_id: format::vm_uuid(vm_number),
        name: spec.name.clone(),
        size: spec.size.clone(),
        power: LabPower::Running,
        os_type: "Linux".to_string(),
        disks: disk_ids,
        nics: vec![NicFile {
            id: lab.cloud.nic_id(&nic_name),
            mac: format::nic_mac(nic_number),
            subnet_id: subnet.id,
            private_ip: private_ip.to_string(),
            allocation,
        }],
        created_at: now_millis(),
    };
    lab.save_vm(&vm)?;
    Ok(vm)
}

/// Whether `size` looks like an Azure VM size name.
fn valid_size(size: &str) -> bool {
    let family = size
        .strip_prefix("Standard_")
        .or_else(|| size.strip_prefix("Basic_"));
    family.is_some_and(|f| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    })
}

/// The API's record of `vm`.
pub fn to_api(lab: &Lab, vm: &VmFile) -> Result<Vm, Error> {
    let mut api_disks = Vec::with_capacity(vm.disks.len());
    let mut snapshots = Vec::new();
    for (position, disk_id) in vm.disks.iter().enumerate() {
        let disk = disks::load(lab, disk_id).map_err(|e| {
            Error::internal(format!(
                "virtual machine `{}` lists disk {disk_id}, which the lab cannot read: {}",
                vm.name,
                describe(&e)
            ))
        })?;
        api_disks.push(disks::to_api(lab, &disk, Some(position))?);
        for snapshot in lab.snapshots_of(&disk.name)? {
            snapshots.push(disks::snapshot_to_api(&disk, &snapshot));
        }
    }
    let mut nics = Vec::with_capacity(vm.nics.len());
    let mut properties = vec![
        ("size".to_string(), vm.size.clone()),
        ("power-state".to_string(), vm.power.azure_code().to_string()),
        ("location".to_string(), lab.cloud.location.clone()),
        (
            "resource-group".to_string(),
            lab.cloud.resource_group.clone(),
        ),
    ];
    for (i, nic) in vm.nics.iter().enumerate() {
        let subnet = network::subnet(lab, &nic.subnet_id).map_err(|e| {
            Error::internal(format!(
                "NIC {} of virtual machine `{}` is in subnet {}, which the lab cannot resolve: {}",
                nic.id,
                vm.name,
                nic.subnet_id,
                describe(&e)
            ))
        })?;
        nics.push(NicConfig {
            mac: nic.mac.clone(),
            network: Some(nic.subnet_id.clone()),
            device_name: None,
            addressing: Addressing::Fixed(StaticAddressing {
                addresses: vec![(nic.private_ip.clone(), subnet.prefix.len)],
                gateways: vec![subnet.prefix.gateway().to_string()],
                dns_servers: vec![AZURE_DNS.to_string()],
                dns_search: Vec::new(),
            }),
        });
        properties.push((format!("nic.{i}.id"), nic.id.clone()));
        properties.push((
            format!("nic.{i}.allocation"),
            format!("{:?}", nic.allocation),
        ));
    }
    Ok(Vm {
        id: vm.id.clone(),
        name: vm.name.clone(),
        uuid: vm.vm_id.clone(),
        power: match vm.power {
            LabPower::Running => PowerState::PoweredOn,
            LabPower::Stopped | LabPower::Deallocated => PowerState::PoweredOff,
        },
        guest_os: vm.os_type.clone(),
        host_id: None,
        disks: api_disks,
        nics,
        snapshots,
        properties,
    })
}
