//! vSphere privileges: which ones each operation needs, and which ones
//! Homeward needs in all.
//!
//! The names are vSphere's own, so an operator can copy a missing one into a
//! vCenter role as it is. The vcenter and esxi plugins check them before
//! each change (so a refusal lists every missing privilege, not only the
//! first one vSphere would name) and in the `privileges` readiness finding.

/// Reading the inventory (discover, get-vm, get-licence, readiness).
pub const SYSTEM_READ: &str = "System.Read";
/// Creating a VM.
pub const VM_CREATE: &str = "VirtualMachine.Inventory.Create";
/// Deleting a VM.
pub const VM_DELETE: &str = "VirtualMachine.Inventory.Delete";
/// Adding a new disk.
pub const ADD_NEW_DISK: &str = "VirtualMachine.Config.AddNewDisk";
/// Removing a disk.
pub const REMOVE_DISK: &str = "VirtualMachine.Config.RemoveDisk";
/// Allocating space on a datastore.
pub const ALLOCATE_SPACE: &str = "Datastore.AllocateSpace";
/// Attaching a NIC to a network.
pub const NETWORK_ASSIGN: &str = "Network.Assign";
/// Placing a VM in a resource pool (every new VM needs it).
pub const ASSIGN_TO_POOL: &str = "Resource.AssignVMToPool";
/// Powering on.
pub const POWER_ON: &str = "VirtualMachine.Interact.PowerOn";
/// Powering off (hard, or a guest shutdown).
pub const POWER_OFF: &str = "VirtualMachine.Interact.PowerOff";
/// Taking a snapshot.
pub const CREATE_SNAPSHOT: &str = "VirtualMachine.State.CreateSnapshot";
/// Deleting a snapshot.
pub const REMOVE_SNAPSHOT: &str = "VirtualMachine.State.RemoveSnapshot";

/// Every privilege Homeward needs on a hypervisor endpoint for reprotect and
/// failback. The `privileges` readiness finding lists exactly the ones of
/// these an account lacks.
pub const HOMEWARD_REQUIRED: &[&str] = &[
    "System.Anonymous",
    "System.View",
    SYSTEM_READ,
    ALLOCATE_SPACE,
    NETWORK_ASSIGN,
    ASSIGN_TO_POOL,
    VM_CREATE,
    VM_DELETE,
    ADD_NEW_DISK,
    REMOVE_DISK,
    POWER_ON,
    POWER_OFF,
    CREATE_SNAPSHOT,
    REMOVE_SNAPSHOT,
];

/// The ones of `needed` that `held` lacks, in the order of `needed`, without repeats.
pub fn missing<'a>(needed: &[&'a str], held: &[String]) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = Vec::new();
    for p in needed {
        if !held.iter().any(|h| h == p) && !out.contains(p) {
            out.push(p);
        }
    }
    out
}
