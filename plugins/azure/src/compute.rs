//! Virtual machines over ARM (`Microsoft.Compute`, api-version 2023-03-01):
//! `get-vm`, `power-off` (`powerOff` or `deallocate`), `start`, `delete-vm`
//! and `create-vm`, and the VM record the API returns.

use crate::arm::{Arm, COMPUTE_API, ResourceId, text};
use crate::disks::{self, DiskRef};
use crate::network::{self, Prefix};
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::VmSpec;
use homeward_sdk::http::Method;
use homeward_sdk::types::{Disk, PowerState, Snapshot, Vm};
use homeward_sdk::{Error, log};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

/// The VM type.
pub const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
/// Bytes in the GiB of `diskSizeGB`.
const GIB: u64 = 1 << 30;

fn vm_id(id: &str) -> Result<ResourceId, Error> {
    crate::arm::parse_kind(id, VM_TYPE, "virtual machine")
}

fn label(id: &ResourceId) -> String {
    format!("virtual machine `{}`", id.name)
}

/// The VM with its instance view, or `not-found`.
fn fetch(arm: &Arm<'_>, id: &ResourceId) -> Result<Value, Error> {
    arm.get_optional(&id.path(), COMPUTE_API, "&$expand=instanceView", &label(id))?
        .ok_or_else(|| {
            Error::not_found(format!(
                "virtual machine `{}` does not exist in resource group {} of subscription {}",
                id.name, id.resource_group, id.subscription
            ))
        })
}

/// The `PowerState/...` code of a VM body with its instance view ("" when absent).
pub fn power_code(vm: &Value) -> String {
    vm["properties"]["instanceView"]["statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["code"].as_str())
        .find(|c| c.starts_with("PowerState/"))
        .unwrap_or("")
        .to_string()
}

/// The API's power state of a `PowerState/...` code.
pub fn power_state(code: &str) -> PowerState {
    match code.strip_prefix("PowerState/") {
        Some("running" | "starting") => PowerState::PoweredOn,
        Some("stopped" | "stopping" | "deallocated" | "deallocating") => PowerState::PoweredOff,
        _ => PowerState::Unknown,
    }
}

/// `get-vm`.
pub fn get_vm(arm: &Arm<'_>, id: &str) -> Result<Vm, Error> {
    let id = vm_id(id)?;
    let vm = fetch(arm, &id)?;
    to_api(arm, &id, &vm)
}

/// The record of one disk entry of a VM's storage profile, and the page
/// blob it maps to when it is in the configured account (or managed).
fn disk_entry(
    arm: &Arm<'_>,
    entry: &Value,
    position: Option<u32>,
) -> Result<(Disk, Option<DiskRef>), Error> {
    let managed = text(entry, "/managedDisk/id");
    let uri = text(entry, "/vhd/uri");
    let (id, disk_ref) = if !managed.is_empty() {
        let parsed = DiskRef::parse(managed)?;
        (managed.to_string(), Some(parsed))
    } else if !uri.is_empty() {
        match disks::blob_id_of_uri(arm.settings, uri) {
            Some(blob_id) => {
                let parsed = DiskRef::parse(&blob_id)?;
                (blob_id, Some(parsed))
            }
            None => (uri.to_string(), None),
        }
    } else {
        return Err(Error::internal(format!(
            "a disk of the VM has neither managedDisk.id nor vhd.uri: {entry}"
        )));
    };
    let capacity = entry["diskSizeGB"]
        .as_u64()
        .unwrap_or(0)
        .saturating_mul(GIB);
    let name = non_empty(text(entry, "/name"), &id);
    let disk = disks::record(
        arm.settings,
        &id,
        disk_ref.as_ref(),
        &name,
        capacity,
        position,
        None,
    );
    Ok((disk, disk_ref))
}

/// The snapshots of the disks in `disk_refs` (page blobs), oldest first per
/// disk. Without storage settings there is no blob to ask, which is no
/// reason to fail `get-vm`: the list stays empty (logged at debug).
fn disk_snapshots(
    arm: &Arm<'_>,
    vm_name: &str,
    disk_refs: &[DiskRef],
) -> Result<Vec<Snapshot>, Error> {
    if disk_refs.is_empty() {
        return Ok(Vec::new());
    }
    let Some(storage) = arm.settings.storage.as_ref() else {
        log::debug(&format!(
            "virtual machine `{vm_name}`: disk snapshots not listed, as no storage is configured \
             (config `storage-account`) to map its disks to page blobs"
        ));
        return Ok(Vec::new());
    };
    let mut snapshots = Vec::new();
    for disk_ref in disk_refs {
        snapshots.extend(disks::snapshots_of(storage, arm.transport, disk_ref)?);
    }
    Ok(snapshots)
}

fn non_empty(value: &str, fallback: &str) -> String {
    if value.is_empty() { fallback } else { value }.to_string()
}

/// The API's record of VM `vm` (a body with its instance view).
pub fn to_api(arm: &Arm<'_>, id: &ResourceId, vm: &Value) -> Result<Vm, Error> {
    let props = &vm["properties"];
    let storage = &props["storageProfile"];
    let mut api_disks = Vec::new();
    let mut disk_refs = Vec::new();
    if !storage["osDisk"].is_null() {
        let (mut disk, disk_ref) = disk_entry(arm, &storage["osDisk"], None)?;
        disk.controller = Some("osDisk".to_string());
        disk.properties.push(("role".to_string(), "os".to_string()));
        api_disks.push(disk);
        disk_refs.extend(disk_ref);
    }
    let mut data: Vec<&Value> = storage["dataDisks"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    data.sort_by_key(|d| d["lun"].as_u64().unwrap_or(u64::MAX));
    for entry in data {
        let lun = entry["lun"].as_u64().and_then(|l| u32::try_from(l).ok());
        let (mut disk, disk_ref) = disk_entry(arm, entry, lun)?;
        disk.controller = Some("dataDisks".to_string());
        disk.properties
            .push(("role".to_string(), "data".to_string()));
        api_disks.push(disk);
        disk_refs.extend(disk_ref);
    }
    let name = non_empty(text(vm, "/name"), &id.name);
    let snapshots = disk_snapshots(arm, &name, &disk_refs)?;
    let code = power_code(vm);
    let mut properties = vec![
        (
            "size".to_string(),
            text(vm, "/properties/hardwareProfile/vmSize").to_string(),
        ),
        ("power-state".to_string(), code.clone()),
        ("location".to_string(), text(vm, "/location").to_string()),
        ("resource-group".to_string(), id.resource_group.clone()),
        (
            "provisioning-state".to_string(),
            text(vm, "/properties/provisioningState").to_string(),
        ),
    ];
    let mut nics = Vec::new();
    let refs: Vec<&Value> = props["networkProfile"]["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for (i, nic_ref) in refs.iter().enumerate() {
        let nic_id = text(nic_ref, "/id");
        let (config, nic) = network::nic_config(arm, nic_id)?;
        let allocation =
            nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAllocationMethod"]
                .as_str()
                .unwrap_or("")
                .to_string();
        properties.push((format!("nic.{i}.id"), non_empty(text(&nic, "/id"), nic_id)));
        properties.push((format!("nic.{i}.allocation"), allocation));
        nics.push(config);
    }
    Ok(Vm {
        id: non_empty(text(vm, "/id"), &id.path()),
        name,
        uuid: text(vm, "/properties/vmId").to_string(),
        power: power_state(&code),
        guest_os: text(vm, "/properties/storageProfile/osDisk/osType").to_string(),
        host_id: None,
        disks: api_disks,
        nics,
        snapshots,
        properties,
    })
}

/// `power-off`: `powerOff`, or `deallocate` with `deallocate`; waits for
/// the operation. A VM already in the asked state is left alone (ARM
/// accepts the action anyway; skipping it saves a long-running operation).
pub fn power_off(arm: &Arm<'_>, id: &str, deallocate: bool) -> Result<String, Error> {
    let id = vm_id(id)?;
    let (action, done) = if deallocate {
        ("deallocate", &["PowerState/deallocated"][..])
    } else {
        (
            "powerOff",
            &["PowerState/stopped", "PowerState/deallocated"][..],
        )
    };
    let vm = fetch(arm, &id)?;
    let code = power_code(&vm);
    if done.contains(&code.as_str()) {
        return Ok(code);
    }
    arm.change(
        Method::Post,
        &format!("{}/{action}", id.path()),
        COMPUTE_API,
        None,
        &format!("{action} of {}", label(&id)),
    )?;
    Ok(done[0].to_string())
}

/// `start`: waits for the operation; a running VM is left alone.
pub fn start(arm: &Arm<'_>, id: &str) -> Result<(), Error> {
    let id = vm_id(id)?;
    let vm = fetch(arm, &id)?;
    if power_code(&vm) == "PowerState/running" {
        return Ok(());
    }
    arm.change(
        Method::Post,
        &format!("{}/start", id.path()),
        COMPUTE_API,
        None,
        &format!("start of {}", label(&id)),
    )?;
    Ok(())
}

/// `delete-vm`: a running VM is a `conflict` (power it off first); a
/// stopped or deallocated one is deleted with its NICs, never its disks.
/// ARM answers a DELETE of a missing VM with 204, so the VM is read first
/// to answer `not-found`.
pub fn delete_vm(arm: &Arm<'_>, id: &str) -> Result<(), Error> {
    let id = vm_id(id)?;
    let vm = fetch(arm, &id)?;
    let code = power_code(&vm);
    if matches!(code.as_str(), "PowerState/running" | "PowerState/starting") {
        return Err(Error::conflict(format!(
            "virtual machine `{}` is running ({code}): power it off (power-off) before deleting it",
            id.name
        )));
    }
    let nic_ids: Vec<String> = vm["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["id"].as_str().map(String::from))
        .collect();
    arm.change(
        Method::Delete,
        &id.path(),
        COMPUTE_API,
        None,
        &format!("deletion of {}", label(&id)),
    )?;
    for nic in nic_ids {
        network::delete_nic(arm, &nic)?;
    }
    Ok(())
}

/// Longest VM name Azure accepts (Linux VMs).
const MAX_VM_NAME: usize = 64;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_VM_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !name.ends_with('.')
}

/// The `storageProfile` disk entry attaching disk `id`.
fn attach_entry(arm: &Arm<'_>, id: &str, lun: Option<usize>) -> Result<Value, Error> {
    let mut entry = match DiskRef::parse(id)? {
        DiskRef::Managed(managed) => json!({
            "name": managed.name,
            "createOption": "Attach",
            "managedDisk": { "id": managed.path() },
        }),
        blob @ DiskRef::Blob { .. } => {
            let storage = arm.settings.storage("attaching a page-blob disk")?;
            json!({
                "name": blob.blob_stem(),
                "createOption": "Attach",
                "vhd": { "uri": blob.url(storage) },
            })
        }
    };
    match lun {
        None => entry["osType"] = json!(arm.settings.os_type),
        Some(lun) => entry["lun"] = json!(lun),
    }
    Ok(entry)
}

/// `create-vm`: checks the name, size, disks and subnet; creates a NIC in
/// the subnet (static private IP when asked) and the VM attaching the
/// disks (OS disk first); waits for both. If the VM cannot be created, the
/// NIC made for it is deleted again.
pub fn create_vm(arm: &Arm<'_>, spec: &VmSpec) -> Result<Vm, Error> {
    if !valid_name(&spec.name) {
        return Err(Error::invalid_input(format!(
            "`{}` is not a valid virtual machine name: 1 to {MAX_VM_NAME} letters, digits, `-`, \
             `_` or `.`, starting with a letter or digit and not ending with `.`",
            spec.name.escape_debug()
        )));
    }
    if !(spec.size.starts_with("Standard_") || spec.size.starts_with("Basic_")) {
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
    for (i, disk) in spec.disk_ids.iter().enumerate() {
        if spec.disk_ids[..i]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(disk))
        {
            return Err(Error::invalid_input(format!(
                "disk `{}` is listed twice in disk-ids",
                disk.escape_debug()
            )));
        }
    }
    let settings = arm.settings;
    let id = ResourceId::parse(&ResourceId::build(
        &settings.subscription_id,
        &settings.resource_group,
        VM_TYPE,
        &spec.name,
    ))?;
    if arm
        .get_optional(&id.path(), COMPUTE_API, "", &label(&id))?
        .is_some()
    {
        return Err(Error::conflict(format!(
            "a virtual machine named `{}` already exists in resource group {}",
            spec.name, settings.resource_group
        )));
    }
    let subnet = network::subnet(arm, &spec.subnet_id)?;
    let private_ip = match &spec.private_ip {
        None => None,
        Some(text) => {
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                Error::invalid_input(format!(
                    "private IP `{}` is not an IPv4 address",
                    text.escape_debug()
                ))
            })?;
            let inside = subnet
                .prefixes
                .iter()
                .filter_map(|p| Prefix::parse(p))
                .any(|p| p.contains(ip));
            if !inside {
                return Err(Error::invalid_input(format!(
                    "private IP {ip} is outside subnet {} ({})",
                    subnet.label,
                    subnet.prefixes.join(", ")
                )));
            }
            Some(ip)
        }
    };
    let mut disk_entries = Vec::with_capacity(spec.disk_ids.len());
    for (i, disk) in spec.disk_ids.iter().enumerate() {
        disk_entries.push(attach_entry(arm, disk, i.checked_sub(1))?);
    }
    let mut entries = disk_entries.into_iter();
    let os_disk = entries.next().unwrap_or(Value::Null);
    let data_disks: Vec<Value> = entries.collect();

    let nic_name = format!("{}-nic0", spec.name);
    let nic_id = network::create_nic(
        arm,
        &settings.resource_group,
        &nic_name,
        &subnet,
        private_ip,
    )?;
    let body = json!({
        "location": subnet.location,
        "properties": {
            "hardwareProfile": { "vmSize": spec.size },
            "storageProfile": { "osDisk": os_disk, "dataDisks": data_disks },
            "networkProfile": {
                "networkInterfaces": [{
                    "id": nic_id,
                    "properties": { "primary": true, "deleteOption": "Delete" },
                }],
            },
        },
    });
    if let Err(e) = arm.change(
        Method::Put,
        &id.path(),
        COMPUTE_API,
        Some(&body),
        &format!("creation of {}", label(&id)),
    ) {
        // Best effort: the NIC was made for this VM only.
        let _ = network::delete_nic(arm, &nic_id);
        return Err(e);
    }
    let vm = fetch(arm, &id)?;
    to_api(arm, &id, &vm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_codes_map_to_states() {
        assert_eq!(power_state("PowerState/running"), PowerState::PoweredOn);
        assert_eq!(
            power_state("PowerState/deallocated"),
            PowerState::PoweredOff
        );
        assert_eq!(power_state("PowerState/stopped"), PowerState::PoweredOff);
        assert_eq!(power_state(""), PowerState::Unknown);
        let vm = json!({"properties": {"instanceView": {"statuses": [
            {"code": "ProvisioningState/succeeded"}, {"code": "PowerState/deallocated"}]}}});
        assert_eq!(power_code(&vm), "PowerState/deallocated");
    }

    #[test]
    fn vm_names() {
        assert!(valid_name("web-01"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("web."));
        assert!(!valid_name(""));
    }
}
