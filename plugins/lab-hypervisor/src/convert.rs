//! From the lab's files to the API's records (`vm`, `disk`, `datastore`...).

use crate::format::{self, DiskConfig, Power, SECTOR_SIZE};
use crate::store::{Lab, VmEntry};
use homeward_sdk::Error;
use homeward_sdk::types::{
    Addressing, Datastore, Disk, DiskFormat, DiskLocator, EndpointInfo, HypervisorHost, Licence,
    Network, NicConfig, PowerState, Snapshot, Vm,
};

fn prop(key: &str, value: impl ToString) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// What `connect` reports.
pub fn endpoint(lab: &Lab) -> EndpointInfo {
    let e = &lab.site.endpoint;
    EndpointInfo {
        product: e.product.clone(),
        api_version: e.api_version.clone(),
        instance_id: e.instance_id.clone(),
    }
}

/// The licence.
pub fn licence(lab: &Lab) -> Licence {
    let l = &lab.site.licence;
    Licence {
        product: l.product.clone(),
        edition: l.edition.clone(),
        free: l.free,
        expires_at: l.expires_at,
    }
}

/// A power state of the API.
pub fn power(p: Power) -> PowerState {
    match p {
        Power::PoweredOn => PowerState::PoweredOn,
        Power::PoweredOff => PowerState::PoweredOff,
        Power::Suspended => PowerState::Suspended,
    }
}

/// One disk: VMDK flat on the VM's datastore.
pub fn disk(vm: &VmEntry, d: &DiskConfig) -> Disk {
    Disk {
        id: d.uuid.clone(),
        label: d.label.clone(),
        capacity_bytes: d.capacity_bytes,
        sector_size: SECTOR_SIZE,
        controller: Some(d.controller.clone()),
        unit: Some(d.unit),
        format: DiskFormat::VmdkFlat,
        locator: DiskLocator::DatastoreFile((vm.datastore.clone(), vm.relative(&d.file))),
        properties: vec![
            prop("thin", d.thin),
            prop("datastore-path", vm.datastore_path(&d.file)),
            prop("flat-file", vm.relative(&format::flat_name(&d.file))),
        ],
    }
}

/// A disk as snapshot copy `frozen` (relative to the VM's directory) holds
/// it: the same record as [`disk`], located at the copy, read only.
pub fn frozen_disk(vm: &VmEntry, d: &DiskConfig, frozen: &str) -> Disk {
    let mut disk = disk(vm, d);
    disk.locator = DiskLocator::DatastoreFile((vm.datastore.clone(), vm.relative(frozen)));
    disk.properties = vec![
        prop("thin", d.thin),
        prop("datastore-path", vm.datastore_path(frozen)),
        prop("flat-file", vm.relative(&format::flat_name(frozen))),
        prop("access", "read"),
    ];
    disk
}

/// One VM with its disks, NICs and snapshots.
pub fn vm(vm: &VmEntry) -> Vm {
    let c = &vm.config;
    let mut properties = vec![
        prop("cpus", c.cpus),
        prop("memory-mib", c.memory_mib),
        prop("tools-running", c.tools_running()),
        prop("datastore", &vm.datastore),
        prop("config-path", vm.datastore_path(format::VM_FILE)),
    ];
    if let Some(current) = &c.current_snapshot {
        properties.push(prop("current-snapshot", current));
    }
    for (key, value) in &c.extra_config {
        properties.push(prop(&format!("extra-config.{key}"), value));
    }
    Vm {
        id: c.id.clone(),
        name: c.name.clone(),
        uuid: c.uuid.clone(),
        power: power(c.power),
        guest_os: c.guest_os.clone(),
        host_id: Some(c.host.clone()),
        disks: c.disks.iter().map(|d| disk(vm, d)).collect(),
        nics: c
            .nics
            .iter()
            .map(|n| NicConfig {
                mac: n.mac.clone(),
                network: Some(n.network.clone()),
                device_name: None,
                addressing: Addressing::Dhcp,
            })
            .collect(),
        snapshots: c
            .snapshots
            .iter()
            .map(|s| Snapshot {
                id: s.id.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                created_at: s.created_at,
                parent_id: s.parent.clone(),
                quiesced: s.quiesced,
            })
            .collect(),
        properties,
    }
}

/// One host.
pub fn host(h: &format::Host) -> HypervisorHost {
    HypervisorHost {
        id: h.id.clone(),
        name: h.name.clone(),
        version: h.version.clone(),
        cluster_id: h.cluster.clone(),
        connected: h.connected,
        datastore_ids: h.datastores.clone(),
        network_ids: h.networks.clone(),
    }
}

/// One datastore, with its free space measured now.
pub fn datastore(lab: &Lab, d: &format::Datastore) -> Result<Datastore, Error> {
    let accessible = lab.datastore_accessible(d);
    Ok(Datastore {
        id: d.id.clone(),
        name: d.name.clone(),
        url: format!("ds:///vmfs/volumes/{}/", d.id),
        capacity_bytes: d.capacity_bytes,
        free_bytes: if accessible {
            lab.datastore_free(d)?
        } else {
            0
        },
        kind: d.kind.clone(),
        accessible,
        host_ids: lab.datastore_hosts(&d.id),
    })
}

/// One network.
pub fn network(n: &format::Network) -> Network {
    Network {
        id: n.id.clone(),
        name: n.name.clone(),
        kind: n.kind.clone(),
        address_prefixes: Vec::new(),
    }
}
