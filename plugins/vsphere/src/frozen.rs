//! `snapshot-disk` (API 0.1.2): where a disk is as a snapshot froze it, the
//! way VADP backups find it.
//!
//! When vSphere takes a snapshot it makes each disk's current file read-only
//! and gives the VM a new delta (`-000001.vmdk`) to write to. The frozen file
//! is named in the snapshot's own configuration: the `VirtualDisk` of the
//! `VirtualMachineSnapshot`'s `config.hardware.device` whose `backing.uuid`
//! is the disk's id. That file is whole (a flat VMDK the host reads) only
//! when its backing has no `parent`; a backing with a parent means the
//! snapshot froze a delta left by an older snapshot (or a linked clone's
//! delta), a chain the host cannot read, so the answer is `unsupported`
//! telling the operator what to consolidate.

use crate::convert;
use crate::inventory;
use crate::props::{self, Object};
use crate::xml::{Element, MoRef};
use homeward_sdk::Error;
use homeward_sdk::types::{Disk, Snapshot};

/// The snapshot properties the answer needs.
const SNAPSHOT_PATHS: &[&str] = &["config.hardware.device"];

/// Disk backings whose file holds the whole disk as a flat extent (when it
/// has no parent). Other backings (sparse, SE sparse, raw device mappings)
/// are not files the host reads.
const FLAT_BACKINGS: &[&str] = &[
    "VirtualDiskFlatVer2BackingInfo",
    "VirtualDiskFlatVer1BackingInfo",
];

/// Disk `disk_id` of `vm_id` as snapshot `snapshot_id` froze it.
pub fn snapshot_disk(vm_id: &str, snapshot_id: &str, disk_id: &str) -> Result<Disk, Error> {
    let vm = inventory::vm_object(vm_id)?;
    let vm_name = vm.string("name");
    let tree = convert::snapshots(&vm);
    if !tree.iter().any(|s| s.id == snapshot_id) {
        return Err(Error::not_found(format!(
            "VM {vm_name} ({vm_id}) has no snapshot {snapshot_id}"
        )));
    }
    let snapshot = props::one(
        &MoRef::new("VirtualMachineSnapshot", snapshot_id),
        SNAPSHOT_PATHS,
    )
    .map_err(|e| match e {
        // Deleted between the two reads.
        Error::NotFound(_) => Error::not_found(format!(
            "VM {vm_name} ({vm_id}) has no snapshot {snapshot_id}"
        )),
        other => other,
    })?;
    frozen_disk(
        &FrozenVm {
            vm: &vm,
            snapshots: &tree,
        },
        &snapshot,
        snapshot_id,
        disk_id,
    )
}

/// The VM a snapshot belongs to, as read just before its snapshot.
struct FrozenVm<'a> {
    /// The VM's properties (`name`, `config.hardware.device`).
    vm: &'a Object,
    /// Its snapshot tree, flat.
    snapshots: &'a [Snapshot],
}

impl FrozenVm<'_> {
    fn label(&self) -> String {
        format!("VM {} ({})", self.vm.string("name"), self.vm.obj.value)
    }

    /// The snapshot's name and id, for messages.
    fn snapshot_label(&self, snapshot_id: &str) -> String {
        match self.snapshots.iter().find(|s| s.id == snapshot_id) {
            Some(s) if !s.name.is_empty() => format!("snapshot {:?} ({snapshot_id})", s.name),
            _ => format!("snapshot {snapshot_id}"),
        }
    }

    /// The names of the snapshots above `snapshot_id`, oldest first.
    fn older_snapshots(&self, snapshot_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut parent = self
            .snapshots
            .iter()
            .find(|s| s.id == snapshot_id)
            .and_then(|s| s.parent_id.clone());
        // A tree deeper than the list has entries is a cycle: stop there.
        while let Some(id) = parent.take() {
            if out.len() >= self.snapshots.len() {
                break;
            }
            match self.snapshots.iter().find(|s| s.id == id) {
                Some(s) => {
                    out.push(if s.name.is_empty() {
                        s.id.clone()
                    } else {
                        format!("{:?} ({})", s.name, s.id)
                    });
                    parent = s.parent_id.clone();
                }
                None => break,
            }
        }
        out.reverse();
        out
    }
}

/// The answer from the snapshot's devices: the disk record located at the
/// frozen file, read only; `not-found` or `unsupported` saying why not.
fn frozen_disk(
    vm: &FrozenVm<'_>,
    snapshot: &Object,
    snapshot_id: &str,
    disk_id: &str,
) -> Result<Disk, Error> {
    let vm_id = vm.vm.obj.value.as_str();
    let frozen_devices = snapshot
        .get("config.hardware.device")
        .map(|d| d.children.clone())
        .ok_or_else(|| {
            Error::internal(format!(
                "{} of {} shows no hardware in its configuration",
                vm.snapshot_label(snapshot_id),
                vm.label()
            ))
        })?;
    let Some(device) = frozen_devices
        .iter()
        .filter(|d| d.is_type("VirtualDisk"))
        .find(|d| convert::disk_id(vm_id, d).eq_ignore_ascii_case(disk_id))
    else {
        let attached_now = convert::devices(vm.vm)
            .iter()
            .filter(|d| d.is_type("VirtualDisk"))
            .any(|d| convert::disk_id(vm_id, d).eq_ignore_ascii_case(disk_id));
        return Err(Error::not_found(if attached_now {
            format!(
                "{} of {} holds no disk {disk_id}: the disk was attached after the snapshot was taken",
                vm.snapshot_label(snapshot_id),
                vm.label()
            )
        } else {
            format!("{} has no disk {disk_id}", vm.label())
        }));
    };
    check_whole_file(vm, device, snapshot_id, disk_id)?;
    let mut disk = convert::disk(vm_id, device, &frozen_devices);
    disk.properties
        .push(("access".to_string(), "read".to_string()));
    Ok(disk)
}

/// `unsupported` unless the frozen file is a whole flat disk: a backing with
/// a parent is a delta, and a non-flat backing no file the host reads.
fn check_whole_file(
    vm: &FrozenVm<'_>,
    device: &Element,
    snapshot_id: &str,
    disk_id: &str,
) -> Result<(), Error> {
    let backing = device.child("backing");
    let file = device
        .text_at(&["backing", "fileName"])
        .unwrap_or_default()
        .trim();
    let what = format!(
        "disk {disk_id} of {} at {}",
        vm.label(),
        vm.snapshot_label(snapshot_id)
    );
    if let Some(kind) = backing.and_then(|b| b.xsi_type.as_deref())
        && !FLAT_BACKINGS.contains(&kind)
    {
        return Err(Error::unsupported(format!(
            "{what} is backed by a {kind} ({file}), not a flat VMDK the host can read; \
             replicate this disk another way or convert it to a flat (thin or thick) disk"
        )));
    }
    if let Some(parent) = backing.and_then(|b| b.child("parent")) {
        let parent_file = parent.text_at(&["fileName"]).unwrap_or_default().trim();
        let older = vm.older_snapshots(snapshot_id);
        let remedy = if older.is_empty() {
            "the VM has no older snapshot, so the disk is a linked clone's delta: \
             consolidate the VM's disks (or make it a full clone) and take the snapshot again"
                .to_string()
        } else {
            format!(
                "delete (consolidate) the VM's older snapshots {} so that vSphere merges their \
                 deltas and {} sits on the base disk, then ask again",
                older.join(", "),
                vm.snapshot_label(snapshot_id)
            )
        };
        return Err(Error::unsupported(format!(
            "{what} froze the delta {file} on top of {parent_file}, a chain of files the host \
             cannot read as one disk: {remedy}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const NS: &str = r#"xmlns:X="http://www.w3.org/2001/XMLSchema-instance""#;

    fn devices(xml: &str) -> Element {
        Element::parse(&format!("<val {NS}>{xml}</val>")).unwrap()
    }

    fn object(kind: &str, id: &str, props: &[(&str, Element)]) -> Object {
        Object {
            obj: MoRef::new(kind, id),
            props: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    const CONTROLLER: &str = r#"<VirtualDevice X:type="ParaVirtualSCSIController"><key>1000</key><busNumber>0</busNumber></VirtualDevice>"#;

    fn disk_device(uuid: &str, file: &str, parent: Option<&str>) -> String {
        let parent = parent
            .map(|p| {
                format!(
                    r#"<parent X:type="VirtualDiskFlatVer2BackingInfo"><fileName>{p}</fileName></parent>"#
                )
            })
            .unwrap_or_default();
        format!(
            r#"<VirtualDevice X:type="VirtualDisk"><key>2000</key><deviceInfo><label>Hard disk 1</label></deviceInfo><backing X:type="VirtualDiskFlatVer2BackingInfo"><fileName>{file}</fileName><thinProvisioned>true</thinProvisioned><uuid>{uuid}</uuid>{parent}</backing><controllerKey>1000</controllerKey><unitNumber>0</unitNumber><capacityInKB>8192</capacityInKB></VirtualDevice>"#
        )
    }

    fn snapshots() -> Vec<Snapshot> {
        let snapshot = |id: &str, name: &str, parent: Option<&str>| Snapshot {
            id: id.to_string(),
            name: name.to_string(),
            description: String::new(),
            created_at: 0,
            parent_id: parent.map(str::to_string),
            quiesced: false,
        };
        vec![
            snapshot("snapshot-1", "nightly", None),
            snapshot("snapshot-2", "cycle", Some("snapshot-1")),
        ]
    }

    fn vm(live: &str) -> Object {
        object(
            "VirtualMachine",
            "vm-7",
            &[
                ("name", Element::parse("<val>web</val>").unwrap()),
                ("config.hardware.device", devices(live)),
            ],
        )
    }

    fn snapshot(frozen: &str) -> Object {
        object(
            "VirtualMachineSnapshot",
            "snapshot-2",
            &[("config.hardware.device", devices(frozen))],
        )
    }

    #[test]
    fn answers_the_frozen_file_read_only() {
        let live = format!(
            "{CONTROLLER}{}",
            disk_device(
                "6000C29a",
                "[ds 1] web/web-000001.vmdk",
                Some("[ds 1] web/web.vmdk")
            )
        );
        let frozen = format!(
            "{CONTROLLER}{}",
            disk_device("6000C29a", "[ds 1] web/web.vmdk", None)
        );
        let tree = snapshots();
        let vm = vm(&live);
        let owner = FrozenVm {
            vm: &vm,
            snapshots: &tree,
        };
        let disk = frozen_disk(&owner, &snapshot(&frozen), "snapshot-1", "6000c29a").unwrap();
        assert_eq!(disk.id, "6000C29a");
        assert_eq!(disk.capacity_bytes, 8 << 20);
        assert_eq!(disk.controller.as_deref(), Some("scsi0"));
        assert!(matches!(
            &disk.locator,
            homeward_sdk::types::DiskLocator::DatastoreFile((ds, path))
                if ds == "ds 1" && path == "web/web.vmdk"
        ));
        assert!(
            disk.properties
                .contains(&("access".to_string(), "read".to_string()))
        );
        assert!(
            disk.properties
                .contains(&("flat-file".to_string(), "web/web-flat.vmdk".to_string()))
        );
    }

    #[test]
    fn a_frozen_delta_is_unsupported_naming_the_older_snapshots() {
        let frozen = format!(
            "{CONTROLLER}{}",
            disk_device(
                "6000C29a",
                "[ds 1] web/web-000001.vmdk",
                Some("[ds 1] web/web.vmdk")
            )
        );
        let tree = snapshots();
        let vm = vm(&frozen);
        let owner = FrozenVm {
            vm: &vm,
            snapshots: &tree,
        };
        let Err(Error::Unsupported(message)) =
            frozen_disk(&owner, &snapshot(&frozen), "snapshot-2", "6000C29a")
        else {
            panic!("a delta must be unsupported")
        };
        assert!(message.contains("\"cycle\" (snapshot-2)"), "{message}");
        assert!(message.contains("\"nightly\" (snapshot-1)"), "{message}");
        assert!(message.contains("web-000001.vmdk"), "{message}");
        assert!(message.contains("consolidate"), "{message}");
    }

    #[test]
    fn a_linked_clone_delta_says_so() {
        let frozen = format!(
            "{CONTROLLER}{}",
            disk_device("6000C29a", "[ds] web/web.vmdk", Some("[ds] base/base.vmdk"))
        );
        let tree = snapshots();
        let vm = vm(&frozen);
        let owner = FrozenVm {
            vm: &vm,
            snapshots: &tree,
        };
        let Err(Error::Unsupported(message)) =
            frozen_disk(&owner, &snapshot(&frozen), "snapshot-1", "6000C29a")
        else {
            panic!("a delta must be unsupported")
        };
        assert!(message.contains("linked clone"), "{message}");
    }

    #[test]
    fn a_raw_device_mapping_is_unsupported() {
        let frozen = r#"<VirtualDevice X:type="VirtualDisk"><key>2000</key><backing X:type="VirtualDiskRawDiskMappingVer1BackingInfo"><fileName>[ds] web/rdm.vmdk</fileName><uuid>6000C29b</uuid></backing><capacityInKB>8</capacityInKB></VirtualDevice>"#;
        let tree = snapshots();
        let vm = vm(frozen);
        let owner = FrozenVm {
            vm: &vm,
            snapshots: &tree,
        };
        let Err(Error::Unsupported(message)) =
            frozen_disk(&owner, &snapshot(frozen), "snapshot-1", "6000C29b")
        else {
            panic!("an RDM must be unsupported")
        };
        assert!(
            message.contains("VirtualDiskRawDiskMappingVer1BackingInfo"),
            "{message}"
        );
    }

    #[test]
    fn a_disk_added_later_or_unknown_is_not_found() {
        let frozen = format!(
            "{CONTROLLER}{}",
            disk_device("6000C29a", "[ds] web/web.vmdk", None)
        );
        let live = format!(
            "{frozen}{}",
            disk_device("6000C29c", "[ds] web/web_1.vmdk", None)
        );
        let tree = snapshots();
        let vm = vm(&live);
        let owner = FrozenVm {
            vm: &vm,
            snapshots: &tree,
        };
        let Err(Error::NotFound(later)) =
            frozen_disk(&owner, &snapshot(&frozen), "snapshot-1", "6000C29c")
        else {
            panic!("a later disk must be not-found")
        };
        assert!(later.contains("attached after"), "{later}");
        let Err(Error::NotFound(unknown)) =
            frozen_disk(&owner, &snapshot(&frozen), "snapshot-1", "nope")
        else {
            panic!("an unknown disk must be not-found")
        };
        assert!(unknown.contains("web (vm-7) has no disk nope"), "{unknown}");
    }
}
