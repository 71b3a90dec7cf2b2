//! `cloud-restore-points` (API 0.1.1): snapshots of several disks of one VM
//! taken together, app-consistent when asked for and the VM is running.
//!
//! The lab has no guest agent to flush applications. It stands in for
//! Azure's VM agent the way Azure decides: a running VM's restore point is
//! app-consistent when asked for; a stopped or deallocated VM has no agent
//! running, so its point is crash-consistent and `note` says why.

use crate::auth::Caller;
use crate::compute;
use crate::disks;
use crate::format::LabPower;
use crate::store::Lab;
use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::RestorePoint;

/// `create-restore-point(vm, disks, quiesce)`.
pub fn create(
    lab: &Lab,
    caller: &Caller,
    vm_id: &str,
    disk_ids: &[String],
    quiesce: bool,
) -> Result<RestorePoint, Error> {
    let vm = compute::load(lab, vm_id)?;
    if disk_ids.is_empty() {
        return Err(Error::invalid_input(format!(
            "a restore point of virtual machine `{}` needs at least one disk id",
            vm.name
        )));
    }
    for disk in disk_ids {
        if !vm.disks.iter().any(|d| d.eq_ignore_ascii_case(disk)) {
            return Err(Error::invalid_input(format!(
                "disk {disk} is not attached to virtual machine `{}` (its disks: {})",
                vm.name,
                vm.disks.join(", ")
            )));
        }
    }
    let note = match (quiesce, vm.power) {
        (false, _) | (true, LabPower::Running) => None,
        (true, power) => Some(format!(
            "virtual machine `{}` is {}: no VM agent runs to flush the guest, so the point is \
             crash-consistent",
            vm.name,
            power.azure_code()
        )),
    };
    let quiesced = quiesce && note.is_none();
    let mut snapshots = Vec::with_capacity(disk_ids.len());
    for disk in disk_ids {
        match disks::take_snapshot(lab, caller, disk, quiesced) {
            Ok(s) => snapshots.push(s),
            Err(e) => {
                // All or nothing: a partial restore point is no point at all.
                for (taken, of) in snapshots.iter().zip(disk_ids) {
                    let _ = disks::delete_snapshot(lab, caller, of, &taken.id);
                }
                return Err(e);
            }
        }
    }
    Ok(RestorePoint {
        snapshots,
        quiesced,
        note,
    })
}
