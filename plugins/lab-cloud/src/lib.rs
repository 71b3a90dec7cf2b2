//! The lab cloud (skeleton: every call is `unsupported` until it lands).

use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::{
    Access, ChangeSet, Guest, VmSpec,
};
use homeward_sdk::types::{Disk, EndpointInfo, Network, Snapshot, Vm};

struct LabCloud;

fn todo() -> Error {
    Error::Unsupported("the lab cloud is not built yet".to_string())
}

impl Guest for LabCloud {
    fn connect() -> Result<EndpointInfo, Error> {
        Err(todo())
    }
    fn get_vm(_vm_id: String) -> Result<Vm, Error> {
        Err(todo())
    }
    fn power_off(_vm_id: String, _deallocate: bool) -> Result<(), Error> {
        Err(todo())
    }
    fn start(_vm_id: String) -> Result<(), Error> {
        Err(todo())
    }
    fn delete_vm(_vm_id: String) -> Result<(), Error> {
        Err(todo())
    }
    fn create_vm(_spec: VmSpec) -> Result<Vm, Error> {
        Err(todo())
    }
    fn get_network(_network_id: String) -> Result<Network, Error> {
        Err(todo())
    }
    fn disk_endpoint(_disk_id: String, _access: Access) -> Result<Disk, Error> {
        Err(todo())
    }
    fn create_snapshot(_disk_id: String) -> Result<Snapshot, Error> {
        Err(todo())
    }
    fn delete_snapshot(_disk_id: String, _snapshot_id: String) -> Result<(), Error> {
        Err(todo())
    }
    fn changed_ranges(
        _disk_id: String,
        _base: String,
        _target: String,
    ) -> Result<ChangeSet, Error> {
        Err(todo())
    }
}

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "lab-cloud",
    kind: cloud_adapter,
    component: LabCloud,
    files: "read-write",
}
