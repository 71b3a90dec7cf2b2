//! vim25 objects to Homeward's records: VMs (disks, NICs, snapshots),
//! hosts, datastores and networks.

use crate::props::Object;
use crate::time::unix_millis;
use crate::xml::Element;
use homeward_sdk::types::{
    Addressing, Datastore, Disk, DiskFormat, DiskLocator, HypervisorHost, NicConfig, PowerState,
    Snapshot, StaticAddressing, Vm,
};
use std::collections::BTreeMap;

/// The advanced setting that makes a VM expose disk serial numbers (S15).
pub const ENABLE_UUID_KEY: &str = "disk.EnableUUID";

/// VM properties every VM record needs.
pub const VM_PATHS: &[&str] = &[
    "name",
    "config.uuid",
    "config.instanceUuid",
    "config.guestFullName",
    "config.guestId",
    "config.hardware.device",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.extraConfig",
    "config.template",
    "runtime.powerState",
    "runtime.host",
    "snapshot",
    "guest.toolsRunningStatus",
    "guest.net",
    "summary.config.vmPathName",
];

/// Host properties a host record needs.
pub const HOST_PATHS: &[&str] = &[
    "name",
    "parent",
    "runtime.connectionState",
    "datastore",
    "network",
    "summary.config.product.fullName",
];

/// Datastore properties a datastore record needs.
pub const DATASTORE_PATHS: &[&str] = &[
    "name",
    "summary.capacity",
    "summary.freeSpace",
    "summary.url",
    "summary.type",
    "summary.accessible",
    "host",
];

/// A `[datastore] path/in/it.vmdk` path split into its datastore and path.
pub fn split_datastore_path(text: &str) -> Option<(String, String)> {
    let rest = text.trim().strip_prefix('[')?;
    let (ds, path) = rest.split_once(']')?;
    Some((ds.to_string(), path.trim_start().to_string()))
}

fn power(text: &str) -> PowerState {
    match text {
        "poweredOn" => PowerState::PoweredOn,
        "poweredOff" => PowerState::PoweredOff,
        "suspended" => PowerState::Suspended,
        _ => PowerState::Unknown,
    }
}

/// The devices of a VM (`config.hardware.device`).
pub fn devices(vm: &Object) -> Vec<Element> {
    vm.get("config.hardware.device")
        .map(|d| d.children.clone())
        .unwrap_or_default()
}

/// `scsi0`, `ide1`, `sata0`, `nvme0` for a controller device.
fn controller_name(device: &Element) -> Option<String> {
    let kind = device.xsi_type.as_deref()?;
    let family = match kind {
        "VirtualIDEController" => "ide",
        "VirtualAHCIController" | "VirtualSATAController" => "sata",
        "VirtualNVMEController" => "nvme",
        "ParaVirtualSCSIController"
        | "VirtualLsiLogicController"
        | "VirtualLsiLogicSASController"
        | "VirtualBusLogicController"
        | "VirtualSCSIController" => "scsi",
        _ => return None,
    };
    let bus: u32 = device.number_at(&["busNumber"]).unwrap_or(0);
    Some(format!("{family}{bus}"))
}

/// Whether a device is a SCSI controller (new disks go on one).
pub fn is_scsi_controller(device: &Element) -> bool {
    controller_name(device).is_some_and(|n| n.starts_with("scsi"))
}

/// The identity Homeward gives a disk: its VMware UUID, or (when the
/// endpoint reports none) the VM and the device key, which are stable too.
pub fn disk_id(vm_id: &str, device: &Element) -> String {
    match device.text_at(&["backing", "uuid"]).map(str::trim) {
        Some(uuid) if !uuid.is_empty() => uuid.to_string(),
        _ => format!(
            "{vm_id}:disk-{}",
            device.text_at(&["key"]).unwrap_or_default().trim()
        ),
    }
}

/// A `VirtualDisk` device as a disk record.
pub fn disk(vm_id: &str, device: &Element, all: &[Element]) -> Disk {
    let controller = device.number_at::<i64>(&["controllerKey"]).and_then(|key| {
        all.iter()
            .find(|d| d.number_at::<i64>(&["key"]) == Some(key))
            .and_then(controller_name)
    });
    let capacity = device
        .number_at::<u64>(&["capacityInBytes"])
        .filter(|b| *b > 0)
        .or_else(|| {
            device
                .number_at::<u64>(&["capacityInKB"])
                .map(|kb| kb.saturating_mul(1024))
        })
        .unwrap_or(0);
    let file = device
        .text_at(&["backing", "fileName"])
        .unwrap_or_default()
        .trim()
        .to_string();
    let (datastore, path) = split_datastore_path(&file).unwrap_or_default();
    let mut properties = vec![
        ("datastore-path".to_string(), file.clone()),
        (
            "device-key".to_string(),
            device
                .text_at(&["key"])
                .unwrap_or_default()
                .trim()
                .to_string(),
        ),
    ];
    if let Some(thin) = device.bool_at(&["backing", "thinProvisioned"]) {
        properties.push(("thin".to_string(), thin.to_string()));
    }
    if let Some(kind) = device.child("backing").and_then(|b| b.xsi_type.clone()) {
        properties.push(("backing".to_string(), kind));
    }
    if let Some(flat) = path.strip_suffix(".vmdk") {
        properties.push(("flat-file".to_string(), format!("{flat}-flat.vmdk")));
    }
    Disk {
        id: disk_id(vm_id, device),
        label: device
            .text_at(&["deviceInfo", "label"])
            .unwrap_or_default()
            .to_string(),
        capacity_bytes: capacity,
        sector_size: 512,
        controller,
        unit: device.number_at(&["unitNumber"]),
        format: DiskFormat::VmdkFlat,
        locator: DiskLocator::DatastoreFile((datastore, path)),
        properties,
    }
}

/// The network id a NIC's backing names.
fn nic_network(backing: &Element) -> Option<String> {
    match backing.xsi_type.as_deref()? {
        "VirtualEthernetCardNetworkBackingInfo" => backing
            .moref_at(&["network"])
            .map(|m| m.value)
            .or_else(|| backing.text_at(&["deviceName"]).map(str::to_string)),
        "VirtualEthernetCardDistributedVirtualPortBackingInfo" => backing
            .text_at(&["port", "portgroupKey"])
            .map(|s| s.trim().to_string()),
        "VirtualEthernetCardOpaqueNetworkBackingInfo" => {
            backing.text_at(&["opaqueNetworkId"]).map(str::to_string)
        }
        _ => None,
    }
}

/// Addresses the guest reports as manually configured on the NIC with `mac`.
fn addressing(vm: &Object, mac: &str) -> Addressing {
    let Some(net) = vm.get("guest.net") else {
        return Addressing::Dhcp;
    };
    let mut addresses = Vec::new();
    for nic in &net.children {
        let nic_mac = nic.text_at(&["macAddress"]).unwrap_or_default();
        if !nic_mac.eq_ignore_ascii_case(mac) {
            continue;
        }
        let Some(config) = nic.child("ipConfig") else {
            continue;
        };
        for address in config.children_named("ipAddress") {
            let manual = address.text_at(&["origin"]) == Some("manual");
            let ip = address.text_at(&["ipAddress"]).unwrap_or_default();
            let prefix: Option<u8> = address.number_at(&["prefixLength"]);
            if let (true, false, Some(prefix)) = (manual, ip.is_empty(), prefix) {
                addresses.push((ip.to_string(), prefix));
            }
        }
    }
    if addresses.is_empty() {
        Addressing::Dhcp
    } else {
        Addressing::Fixed(StaticAddressing {
            addresses,
            gateways: Vec::new(),
            dns_servers: Vec::new(),
            dns_search: Vec::new(),
        })
    }
}

fn flatten(tree: &Element, parent: Option<&str>, out: &mut Vec<Snapshot>) {
    let id = tree
        .moref_at(&["snapshot"])
        .map(|m| m.value)
        .unwrap_or_default();
    out.push(Snapshot {
        id: id.clone(),
        name: tree.text_at(&["name"]).unwrap_or_default().to_string(),
        description: tree
            .text_at(&["description"])
            .unwrap_or_default()
            .to_string(),
        created_at: tree
            .text_at(&["createTime"])
            .and_then(unix_millis)
            .unwrap_or(0),
        parent_id: parent.map(str::to_string),
        quiesced: tree.bool_at(&["quiesced"]).unwrap_or(false),
    });
    for child in tree.children_named("childSnapshotList") {
        flatten(child, Some(&id), out);
    }
}

/// A VM's snapshot tree, flat, parents before children.
pub fn snapshots(vm: &Object) -> Vec<Snapshot> {
    let mut out = Vec::new();
    if let Some(info) = vm.get("snapshot") {
        for root in info.children_named("rootSnapshotList") {
            flatten(root, None, &mut out);
        }
    }
    out
}

/// A VM as Homeward's record.
pub fn vm(object: &Object) -> Vm {
    let id = object.obj.value.clone();
    let all = devices(object);
    let disks = all
        .iter()
        .filter(|d| d.is_type("VirtualDisk"))
        .map(|d| disk(&id, d, &all))
        .collect();
    let nics = all
        .iter()
        .filter_map(|d| {
            let mac = d.text_at(&["macAddress"])?.trim().to_ascii_lowercase();
            Some(NicConfig {
                network: d.child("backing").and_then(nic_network),
                device_name: None,
                addressing: addressing(object, &mac),
                mac,
            })
        })
        .collect();
    let mut properties: Vec<(String, String)> = Vec::new();
    let mut put = |key: &str, value: String| {
        if !value.is_empty() {
            properties.push((key.to_string(), value));
        }
    };
    put("cpus", object.string("config.hardware.numCPU"));
    put("memory-mib", object.string("config.hardware.memoryMB"));
    put("guest-id", object.string("config.guestId"));
    put("instance-uuid", object.string("config.instanceUuid"));
    put("config-path", object.string("summary.config.vmPathName"));
    put("template", object.string("config.template"));
    put(
        "tools-running",
        (object.string("guest.toolsRunningStatus") == "guestToolsRunning").to_string(),
    );
    if let Some((ds, _)) = split_datastore_path(&object.string("summary.config.vmPathName")) {
        put("datastore", ds);
    }
    if let Some(current) = object
        .get("snapshot")
        .and_then(|s| s.moref_at(&["currentSnapshot"]))
    {
        put("current-snapshot", current.value);
    }
    for (key, value) in extra_config(object) {
        put(&format!("extra-config.{key}"), value);
    }
    Vm {
        id,
        name: object.string("name"),
        uuid: object.string("config.uuid"),
        power: power(&object.string("runtime.powerState")),
        guest_os: object.string("config.guestFullName"),
        host_id: object.moref("runtime.host").map(|m| m.value),
        disks,
        nics,
        snapshots: snapshots(object),
        properties,
    }
}

/// A VM's `config.extraConfig` as key → value.
pub fn extra_config(vm: &Object) -> BTreeMap<String, String> {
    vm.get("config.extraConfig")
        .map(|e| {
            e.children
                .iter()
                .filter_map(|o| {
                    Some((
                        o.text_at(&["key"])?.to_string(),
                        o.text_at(&["value"]).unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A host as Homeward's record.
pub fn host(object: &Object) -> HypervisorHost {
    let cluster_id = object
        .moref("parent")
        .filter(|p| p.kind == "ClusterComputeResource")
        .map(|p| p.value);
    HypervisorHost {
        id: object.obj.value.clone(),
        name: object.string("name"),
        version: object.string("summary.config.product.fullName"),
        cluster_id,
        connected: object.string("runtime.connectionState") == "connected",
        datastore_ids: object
            .morefs("datastore")
            .into_iter()
            .map(|m| m.value)
            .collect(),
        network_ids: object
            .morefs("network")
            .into_iter()
            .map(|m| m.value)
            .collect(),
    }
}

/// A datastore as Homeward's record.
pub fn datastore(object: &Object) -> Datastore {
    let capacity: u64 = object.number("summary.capacity").unwrap_or(0);
    let free: u64 = object.number("summary.freeSpace").unwrap_or(0);
    let host_ids = object
        .get("host")
        .map(|mounts| {
            mounts
                .children
                .iter()
                .filter_map(|m| m.moref_at(&["key"]))
                .map(|m| m.value)
                .collect()
        })
        .unwrap_or_default();
    Datastore {
        id: object.obj.value.clone(),
        name: object.string("name"),
        url: object.string("summary.url"),
        capacity_bytes: capacity,
        free_bytes: free.min(capacity),
        kind: object.string("summary.type"),
        accessible: object.string("summary.accessible") != "false",
        host_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::MoRef;

    fn vm_object(devices: &str, snapshot: &str) -> Object {
        let ns = r#"xmlns:X="http://www.w3.org/2001/XMLSchema-instance""#;
        let mut props = BTreeMap::new();
        props.insert(
            "config.hardware.device".to_string(),
            Element::parse(&format!("<val {ns}>{devices}</val>")).unwrap(),
        );
        props.insert(
            "snapshot".to_string(),
            Element::parse(&format!("<val {ns}>{snapshot}</val>")).unwrap(),
        );
        Object {
            obj: MoRef::new("VirtualMachine", "vm-7"),
            props,
        }
    }

    #[test]
    fn disks_nics_and_snapshot_trees() {
        let devices = r#"<VirtualDevice X:type="ParaVirtualSCSIController"><key>1000</key><busNumber>0</busNumber></VirtualDevice><VirtualDevice X:type="VirtualDisk"><key>2000</key><deviceInfo><label>Hard disk 1</label></deviceInfo><backing X:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds 1] web/web.vmdk</fileName><thinProvisioned>true</thinProvisioned><uuid>6000C29a-1</uuid></backing><controllerKey>1000</controllerKey><unitNumber>1</unitNumber><capacityInKB>8192</capacityInKB></VirtualDevice><VirtualDevice X:type="VirtualVmxnet3"><key>4000</key><backing X:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName><network type="Network">network-7</network></backing><macAddress>00:50:56:AA:BB:CC</macAddress></VirtualDevice>"#;
        let snapshot = r#"<currentSnapshot type="VirtualMachineSnapshot">snapshot-2</currentSnapshot><rootSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-1</snapshot><name>a</name><createTime>1970-01-01T00:00:01Z</createTime><quiesced>false</quiesced><childSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-2</snapshot><name>b</name><quiesced>true</quiesced></childSnapshotList></rootSnapshotList>"#;
        let vm = vm(&vm_object(devices, snapshot));
        assert_eq!(vm.disks.len(), 1);
        let d = &vm.disks[0];
        assert_eq!(d.id, "6000C29a-1");
        assert_eq!(d.capacity_bytes, 8 << 20);
        assert_eq!(d.controller.as_deref(), Some("scsi0"));
        assert_eq!(d.unit, Some(1));
        assert!(
            matches!(&d.locator, DiskLocator::DatastoreFile((ds, p)) if ds == "ds 1" && p == "web/web.vmdk")
        );
        assert_eq!(vm.nics.len(), 1);
        assert_eq!(vm.nics[0].mac, "00:50:56:aa:bb:cc");
        assert_eq!(vm.nics[0].network.as_deref(), Some("network-7"));
        assert_eq!(vm.snapshots.len(), 2);
        assert_eq!(vm.snapshots[0].created_at, 1000);
        assert_eq!(vm.snapshots[1].parent_id.as_deref(), Some("snapshot-1"));
        assert!(vm.snapshots[1].quiesced);
    }

    #[test]
    fn disk_without_uuid_gets_a_stable_id() {
        let devices = r#"<VirtualDevice X:type="VirtualDisk"><key>2001</key><backing X:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] a/a.vmdk</fileName></backing><capacityInKB>1</capacityInKB></VirtualDevice>"#;
        let vm = vm(&vm_object(devices, ""));
        assert_eq!(vm.disks[0].id, "vm-7:disk-2001");
    }
}
