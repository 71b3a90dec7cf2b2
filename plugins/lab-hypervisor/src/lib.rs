//! The lab hypervisor (skeleton: every call is `unsupported` until it lands).

use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::{
    Guest, Inventory, ReadinessRequest, VmSpec,
};
use homeward_sdk::types::{Disk, EndpointInfo, Finding, Licence, PowerState, Snapshot, Vm};

struct LabHypervisor;

fn todo() -> Error {
    Error::Unsupported("the lab hypervisor is not built yet".to_string())
}

impl Guest for LabHypervisor {
    fn connect() -> Result<EndpointInfo, Error> { Err(todo()) }
    fn disconnect() -> Result<(), Error> { Ok(()) }
    fn discover() -> Result<Inventory, Error> { Err(todo()) }
    fn get_vm(_vm_id: String) -> Result<Vm, Error> { Err(todo()) }
    fn get_licence() -> Result<Licence, Error> { Err(todo()) }
    fn readiness(_request: ReadinessRequest) -> Result<Vec<Finding>, Error> { Err(todo()) }
    fn set_power(_vm_id: String, _state: PowerState) -> Result<(), Error> { Err(todo()) }
    fn shutdown_guest(_vm_id: String) -> Result<(), Error> { Err(todo()) }
    fn create_vm(_spec: VmSpec) -> Result<Vm, Error> { Err(todo()) }
    fn delete_vm(_vm_id: String) -> Result<(), Error> { Err(todo()) }
    fn add_disk(_vm_id: String, _capacity_bytes: u64) -> Result<Disk, Error> { Err(todo()) }
    fn detach_disk(_vm_id: String, _disk_id: String) -> Result<(), Error> { Err(todo()) }
    fn create_snapshot(_vm_id: String, _name: String, _quiesce: bool) -> Result<Snapshot, Error> { Err(todo()) }
    fn delete_snapshot(_vm_id: String, _snapshot_id: String) -> Result<(), Error> { Err(todo()) }
}

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "lab-hypervisor",
    kind: hypervisor_adapter,
    component: LabHypervisor,
    files: "read-write",
}
