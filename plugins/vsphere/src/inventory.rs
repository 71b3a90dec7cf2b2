//! Discovery: datacenters, hosts (with their clusters), datastores,
//! networks and VMs, each listed with one property retrieval over a
//! container view of the whole inventory.

use crate::convert::{self, DATASTORE_PATHS, HOST_PATHS, VM_PATHS};
use crate::props::{self, Object};
use crate::xml::MoRef;
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::Inventory;
use homeward_sdk::types::{Network, Vm};

/// Every network VMs can attach to: standard port groups, opaque networks
/// and distributed port groups (uplink port groups excluded: no VM
/// attaches to them).
pub fn networks() -> Result<Vec<Network>, Error> {
    let mut out = Vec::new();
    for object in props::all("Network", &["name"])? {
        if object.obj.kind == "DistributedVirtualPortgroup" {
            continue; // listed below, with what tells uplinks apart
        }
        out.push(Network {
            id: object.obj.value.clone(),
            name: object.string("name"),
            kind: object.obj.kind.clone(),
            address_prefixes: Vec::new(),
        });
    }
    for object in props::all(
        "DistributedVirtualPortgroup",
        &["name", "config.uplink", "tag"],
    )? {
        let uplink = object.string("config.uplink") == "true"
            || object.get("tag").is_some_and(|t| {
                t.children
                    .iter()
                    .any(|tag| tag.text_at(&["key"]) == Some("SYSTEM/DVS.UPLINKPG"))
            });
        if uplink {
            continue;
        }
        out.push(Network {
            id: object.obj.value.clone(),
            name: object.string("name"),
            kind: object.obj.kind.clone(),
            address_prefixes: Vec::new(),
        });
    }
    Ok(out)
}

/// Everything the endpoint shows.
pub fn discover() -> Result<Inventory, Error> {
    let datacenters = props::all("Datacenter", &["name"])?
        .iter()
        .map(|o| o.string("name"))
        .collect();
    let hosts = props::all("HostSystem", HOST_PATHS)?
        .iter()
        .map(convert::host)
        .collect();
    let datastores = props::all("Datastore", DATASTORE_PATHS)?
        .iter()
        .map(convert::datastore)
        .collect();
    let vms = props::all("VirtualMachine", VM_PATHS)?
        .iter()
        .map(convert::vm)
        .collect();
    Ok(Inventory {
        datacenters,
        hosts,
        datastores,
        networks: networks()?,
        vms,
    })
}

/// The reference of a VM id.
pub fn vm_ref(vm_id: &str) -> Result<MoRef, Error> {
    if vm_id.trim().is_empty() {
        return Err(Error::invalid_input("the VM id is empty"));
    }
    Ok(MoRef::new("VirtualMachine", vm_id))
}

/// One VM's raw properties; `not-found` naming it when it does not exist.
pub fn vm_object(vm_id: &str) -> Result<Object, Error> {
    props::one(&vm_ref(vm_id)?, VM_PATHS).map_err(|e| match e {
        Error::NotFound(_) => {
            Error::not_found(format!("VM {vm_id} does not exist on the endpoint"))
        }
        other => other,
    })
}

/// One VM, fresh.
pub fn vm(vm_id: &str) -> Result<Vm, Error> {
    Ok(convert::vm(&vm_object(vm_id)?))
}

/// One host's raw properties; `not-found` naming it when it does not exist.
pub fn host_object(host_id: &str) -> Result<Object, Error> {
    let mut paths = HOST_PATHS.to_vec();
    paths.push("summary.hardware.uuid");
    props::one(&MoRef::new("HostSystem", host_id), &paths).map_err(|e| match e {
        Error::NotFound(_) => {
            Error::not_found(format!("host {host_id} does not exist on the endpoint"))
        }
        other => other,
    })
}

/// One datastore's raw properties; `not-found` naming it when it does not exist.
pub fn datastore_object(datastore_id: &str) -> Result<Object, Error> {
    props::one(&MoRef::new("Datastore", datastore_id), DATASTORE_PATHS).map_err(|e| match e {
        Error::NotFound(_) => Error::not_found(format!(
            "datastore {datastore_id} does not exist on the endpoint"
        )),
        other => other,
    })
}
