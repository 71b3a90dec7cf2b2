//! The `hypervisor-adapter` exports, shared by the vcenter and esxi
//! plugins; [`crate::hypervisor_adapter!`] wires a plugin's type to them.

use crate::client::{self, Session};
use crate::{frozen, inventory, licence, ops, props, readiness};
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::{
    Inventory, ReadinessRequest, VmSpec,
};
use homeward_sdk::types::{Disk, EndpointInfo, Finding, Licence, PowerState, Snapshot, Vm};

/// Which kind of endpoint a plugin speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// A vCenter Server (`apiType` `VirtualCenter`).
    VCenter,
    /// A standalone ESXi host (`apiType` `HostAgent`).
    Esxi,
}

impl Flavour {
    fn api_type(self) -> &'static str {
        match self {
            Flavour::VCenter => "VirtualCenter",
            Flavour::Esxi => "HostAgent",
        }
    }

    fn plugin(self) -> &'static str {
        match self {
            Flavour::VCenter => "vcenter",
            Flavour::Esxi => "esxi",
        }
    }
}

/// The session, after checking the endpoint is of the plugin's flavour.
fn start(flavour: Flavour) -> Result<Session, Error> {
    let session = client::session()?;
    let api_type = session.content.about.api_type.as_str();
    if api_type != flavour.api_type() {
        let other = match api_type {
            "VirtualCenter" => "the vcenter plugin",
            "HostAgent" => "the esxi plugin",
            _ => "a plugin for it",
        };
        return Err(Error::invalid_input(format!(
            "{} is a {} endpoint ({}), not what the {} plugin speaks to: use {other}",
            session.settings.url,
            if api_type.is_empty() {
                "unknown"
            } else {
                api_type
            },
            session.content.about.full_name,
            flavour.plugin()
        )));
    }
    Ok(session)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Logs in (or reuses the session) and describes the endpoint.
pub fn connect(flavour: Flavour) -> Result<EndpointInfo, Error> {
    let session = start(flavour)?;
    let about = &session.content.about;
    let instance_id = if !about.instance_uuid.is_empty() {
        about.instance_uuid.clone()
    } else {
        // A standalone host has no instance UUID: its hardware UUID names it.
        let hosts = props::all("HostSystem", &["summary.hardware.uuid"])?;
        hosts
            .first()
            .map(|h| {
                let uuid = h.string("summary.hardware.uuid");
                if uuid.is_empty() {
                    format!("host:{}", h.obj.value)
                } else {
                    uuid
                }
            })
            .ok_or_else(|| Error::internal(format!("{} shows no host", session.settings.url)))?
    };
    Ok(EndpointInfo {
        product: about.full_name.clone(),
        api_version: about.api_version.clone(),
        instance_id,
    })
}

/// Logs out; safe when not logged in.
pub fn disconnect() -> Result<(), Error> {
    client::logout()
}

/// Everything the endpoint shows.
pub fn discover(flavour: Flavour) -> Result<Inventory, Error> {
    start(flavour)?;
    crate::authz::require(
        &[crate::privileges::SYSTEM_READ],
        "discovering the inventory",
    )?;
    inventory::discover()
}

/// One VM.
pub fn get_vm(flavour: Flavour, vm_id: &str) -> Result<Vm, Error> {
    start(flavour)?;
    inventory::vm(vm_id)
}

/// The licence.
pub fn get_licence(flavour: Flavour) -> Result<Licence, Error> {
    start(flavour)?;
    licence::get()
}

/// The readiness findings.
pub fn readiness(flavour: Flavour, request: &ReadinessRequest) -> Result<Vec<Finding>, Error> {
    start(flavour)?;
    readiness::findings(request, now_ms())
}

/// Power on or off.
pub fn set_power(flavour: Flavour, vm_id: &str, state: PowerState) -> Result<(), Error> {
    start(flavour)?;
    ops::set_power(vm_id, state)
}

/// Guest shutdown.
pub fn shutdown_guest(flavour: Flavour, vm_id: &str) -> Result<(), Error> {
    start(flavour)?;
    ops::shutdown_guest(vm_id)
}

/// A new VM.
pub fn create_vm(flavour: Flavour, spec: &VmSpec) -> Result<Vm, Error> {
    start(flavour)?;
    ops::create_vm(spec)
}

/// Delete a VM.
pub fn delete_vm(flavour: Flavour, vm_id: &str) -> Result<(), Error> {
    start(flavour)?;
    ops::delete_vm(vm_id)
}

/// A new disk.
pub fn add_disk(flavour: Flavour, vm_id: &str, capacity_bytes: u64) -> Result<Disk, Error> {
    start(flavour)?;
    ops::add_disk(vm_id, capacity_bytes)
}

/// Detach a disk.
pub fn detach_disk(flavour: Flavour, vm_id: &str, disk_id: &str) -> Result<(), Error> {
    start(flavour)?;
    ops::detach_disk(vm_id, disk_id)
}

/// A new snapshot.
pub fn create_snapshot(
    flavour: Flavour,
    vm_id: &str,
    name: &str,
    quiesce: bool,
) -> Result<Snapshot, Error> {
    start(flavour)?;
    ops::create_snapshot(vm_id, name, quiesce)
}

/// Delete a snapshot.
pub fn delete_snapshot(flavour: Flavour, vm_id: &str, snapshot_id: &str) -> Result<(), Error> {
    start(flavour)?;
    ops::delete_snapshot(vm_id, snapshot_id)
}

/// A disk as a snapshot froze it (API 0.1.2).
pub fn snapshot_disk(
    flavour: Flavour,
    vm_id: &str,
    snapshot_id: &str,
    disk_id: &str,
) -> Result<Disk, Error> {
    start(flavour)?;
    frozen::snapshot_disk(vm_id, snapshot_id, disk_id)
}

/// Implements the `hypervisor-adapter` exports for `$ty` with the shared
/// vSphere logic of `$flavour` ([`Flavour`]).
#[macro_export]
macro_rules! hypervisor_adapter {
    ($ty:ident, $flavour:expr) => {
        impl $crate::sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::Guest for $ty {
            fn connect() -> Result<$crate::sdk::types::EndpointInfo, $crate::sdk::Error> {
                $crate::adapter::connect($flavour)
            }
            fn disconnect() -> Result<(), $crate::sdk::Error> {
                $crate::adapter::disconnect()
            }
            fn discover() -> Result<
                $crate::sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::Inventory,
                $crate::sdk::Error,
            > {
                $crate::adapter::discover($flavour)
            }
            fn get_vm(vm_id: String) -> Result<$crate::sdk::types::Vm, $crate::sdk::Error> {
                $crate::adapter::get_vm($flavour, &vm_id)
            }
            fn get_licence() -> Result<$crate::sdk::types::Licence, $crate::sdk::Error> {
                $crate::adapter::get_licence($flavour)
            }
            fn readiness(
                request: $crate::sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::ReadinessRequest,
            ) -> Result<Vec<$crate::sdk::types::Finding>, $crate::sdk::Error> {
                $crate::adapter::readiness($flavour, &request)
            }
            fn set_power(
                vm_id: String,
                state: $crate::sdk::types::PowerState,
            ) -> Result<(), $crate::sdk::Error> {
                $crate::adapter::set_power($flavour, &vm_id, state)
            }
            fn shutdown_guest(vm_id: String) -> Result<(), $crate::sdk::Error> {
                $crate::adapter::shutdown_guest($flavour, &vm_id)
            }
            fn create_vm(
                spec: $crate::sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::VmSpec,
            ) -> Result<$crate::sdk::types::Vm, $crate::sdk::Error> {
                $crate::adapter::create_vm($flavour, &spec)
            }
            fn delete_vm(vm_id: String) -> Result<(), $crate::sdk::Error> {
                $crate::adapter::delete_vm($flavour, &vm_id)
            }
            fn add_disk(
                vm_id: String,
                capacity_bytes: u64,
            ) -> Result<$crate::sdk::types::Disk, $crate::sdk::Error> {
                $crate::adapter::add_disk($flavour, &vm_id, capacity_bytes)
            }
            fn detach_disk(vm_id: String, disk_id: String) -> Result<(), $crate::sdk::Error> {
                $crate::adapter::detach_disk($flavour, &vm_id, &disk_id)
            }
            fn create_snapshot(
                vm_id: String,
                name: String,
                quiesce: bool,
            ) -> Result<$crate::sdk::types::Snapshot, $crate::sdk::Error> {
                $crate::adapter::create_snapshot($flavour, &vm_id, &name, quiesce)
            }
            fn delete_snapshot(vm_id: String, snapshot_id: String) -> Result<(), $crate::sdk::Error> {
                $crate::adapter::delete_snapshot($flavour, &vm_id, &snapshot_id)
            }
        }

        impl $crate::sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor_snapshots::Guest
            for $ty
        {
            fn snapshot_disk(
                vm_id: String,
                snapshot_id: String,
                disk_id: String,
            ) -> Result<$crate::sdk::types::Disk, $crate::sdk::Error> {
                $crate::adapter::snapshot_disk($flavour, &vm_id, &snapshot_id, &disk_id)
            }
        }
    };
}
