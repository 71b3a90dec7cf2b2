//! `cloud-restore-points` (API 0.1.1): one blob snapshot per disk of a VM,
//! taken back to back.
//!
//! This adapter reads disks as page blobs and snapshots them with `Snapshot
//! Blob`, which cannot flush the guest. Azure's app-consistent restore points
//! go through the VM agent and produce managed-disk restore points, which
//! are not page blobs this adapter could hand to the data path. So a point
//! asked to quiesce is crash-consistent here, and `note` says so: the
//! replication cycle records it as such instead of failing.

use crate::arm::Arm;
use crate::compute;
use crate::disks;
use crate::settings::Settings;
use crate::transport::Transport;
use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::RestorePoint;

/// Why an asked-for app-consistent point is crash-consistent.
pub const NO_QUIESCE: &str = "blob snapshots of page-blob disks cannot quiesce the guest (Azure's \
     app-consistent restore points need the VM agent and managed disks): the point is \
     crash-consistent";

/// `create-restore-point(vm, disks, quiesce)`.
pub fn create(
    settings: &Settings,
    transport: &Transport,
    vm_id: &str,
    disk_ids: &[String],
    quiesce: bool,
) -> Result<RestorePoint, Error> {
    let vm = compute::get_vm(&Arm::new(settings, transport), vm_id)?;
    if disk_ids.is_empty() {
        return Err(Error::invalid_input(format!(
            "a restore point of virtual machine `{}` needs at least one disk id",
            vm.name
        )));
    }
    for disk in disk_ids {
        if !vm.disks.iter().any(|d| d.id.eq_ignore_ascii_case(disk)) {
            let attached: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
            return Err(Error::invalid_input(format!(
                "disk {disk} is not attached to virtual machine `{}` (its disks: {})",
                vm.name,
                attached.join(", ")
            )));
        }
    }
    let mut snapshots = Vec::with_capacity(disk_ids.len());
    for disk in disk_ids {
        match disks::create_snapshot(settings, transport, disk) {
            Ok(s) => snapshots.push(s),
            Err(e) => {
                // All or nothing: a partial restore point is no point at all.
                for (taken, of) in snapshots.iter().zip(disk_ids) {
                    let _ = disks::delete_snapshot(settings, transport, of, &taken.id);
                }
                return Err(e);
            }
        }
    }
    Ok(RestorePoint {
        snapshots,
        quiesced: false,
        note: quiesce.then(|| NO_QUIESCE.to_string()),
    })
}
