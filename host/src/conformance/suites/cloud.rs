//! The cloud suite: the contract of `cloud-adapter` against a lab cloud
//! (`crate::lab::cloud`) or a real endpoint (`--target`).
//!
//! What the host relies on: credentials checked with typed errors and no
//! secret in any error or log; VMs that power off (deallocating), start, are
//! created from existing disks and deleted without their disks; networks
//! that say which part is missing (S11); disk endpoints the host can open;
//! changed ranges between two snapshots that cover every changed byte; and
//! (API 0.1.1) restore points: one snapshot per disk of a VM, usable like any
//! disk snapshot, crash-consistent unless the adapter says it quiesced.
//!
//! A cloud adapter has no discovery, so cases that need a VM or a network
//! seed them in a lab; against a real endpoint those cases skip with the
//! reason, and the others (credentials, dead endpoint, missing objects) run.

use super::adapters::{self, Target, scratch_name};
use crate::conformance::case::ensure;
use crate::conformance::{
    Case, CaseContext, CaseEnd, ErrorKind, Requirement, expect_error, expect_ok,
};
use crate::lab::cloud::{self as lab, LabCloud, LabVm, LabVmSpec};
use crate::plugin::adapter::{Access, CloudVmSpec, DiskFormat, DiskLocator, PowerState};
use crate::plugin::{Failure, PluginError, PluginInstance, PluginSettings};
use std::ops::Range;
use std::path::Path;

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "cloud/unconfigured",
            summary: "without configuration, connect answers a typed error that names what is missing",
            smoke: true,
            requires: &[],
            run: unconfigured,
        },
        Case {
            name: "cloud/connect",
            summary: "connect describes the endpoint, the same way twice",
            smoke: false,
            requires: &[],
            run: connect,
        },
        Case {
            name: "cloud/wrong-credentials",
            summary: "a wrong secret gives permission-denied, and no secret appears in the error or the logs",
            smoke: false,
            requires: &[],
            run: wrong_credentials,
        },
        Case {
            name: "cloud/endpoint-unavailable",
            summary: "a dead endpoint (closed port, or a lab without its cloud) gives unavailable within the deadline",
            smoke: false,
            requires: &[],
            run: endpoint_unavailable,
        },
        Case {
            name: "cloud/missing-objects",
            summary: "VM, disk, snapshot and network calls on missing objects give not-found",
            smoke: false,
            requires: &[],
            run: missing_objects,
        },
        Case {
            name: "cloud/get-vm",
            summary: "get-vm gives the VM's disks (OS disk first), NICs with MAC and private IP, and power state",
            smoke: false,
            requires: &[],
            run: get_vm,
        },
        Case {
            name: "cloud/power",
            summary: "power-off with deallocate stops the VM (S2); start runs it again",
            smoke: false,
            requires: &[],
            run: power,
        },
        Case {
            name: "cloud/create-and-delete-vm",
            summary: "create-vm from disks in a subnet keeps the private IP; delete-vm refuses a running VM and keeps the disks (S3)",
            smoke: false,
            requires: &[],
            run: create_and_delete_vm,
        },
        Case {
            name: "cloud/networks",
            summary: "get-network gives address prefixes, and says whether the network or the subnet is missing (S11)",
            smoke: false,
            requires: &[],
            run: networks,
        },
        Case {
            name: "cloud/disk-endpoint",
            summary: "the disk endpoint opens on the host with the disk's capacity; read-write on a running VM is a conflict",
            smoke: false,
            requires: &[],
            run: disk_endpoint,
        },
        Case {
            name: "cloud/changed-ranges",
            summary: "the ranges between two snapshots cover every changed byte, sorted and disjoint, and say their method",
            smoke: false,
            requires: &[],
            run: changed_ranges,
        },
        Case {
            name: "cloud/restore-points",
            summary: "create-restore-point (API 0.1.1) takes one snapshot per disk, in order, each readable as DISK@SNAPSHOT and deletable; says why a point is not quiesced; refuses a disk not of the VM",
            smoke: false,
            requires: &[],
            run: restore_points,
        },
        Case {
            name: "cloud/reader-role",
            summary: "a read-only principal may read but every change is permission-denied with the missing actions",
            smoke: false,
            requires: &[],
            run: reader_role,
        },
        Case {
            name: "cloud/unreachable-network-endpoint",
            summary: "a URL nobody listens on gives unavailable, not a hang or a trap",
            smoke: false,
            requires: &[Requirement::Network],
            run: unreachable_network_endpoint,
        },
    ]
}

type Setup = adapters::Setup<LabCloud>;

/// A lab cloud signed in as its contributor.
fn make_lab(dir: &Path) -> Result<(LabCloud, PluginSettings), CaseEnd> {
    let cloud = LabCloud::create(dir)
        .map_err(|e| CaseEnd::Fail(format!("cannot make a lab cloud: {e}")))?;
    let secret = cloud
        .secret(lab::CONTRIBUTOR)
        .ok_or_else(|| CaseEnd::Fail("the lab cloud has no contributor principal".to_string()))?;
    let settings = cloud.settings(lab::CONTRIBUTOR, secret);
    Ok((cloud, settings))
}

impl Setup {
    /// A VM seeded in the lab (running, two disks, subnet `app`).
    fn seeded_vm(&self, why: &str) -> Result<LabVm, CaseEnd> {
        let cloud = self.lab(why)?;
        cloud
            .add_vm(&LabVmSpec::new(&scratch_name("vm"), &[4 << 20, 2 << 20]))
            .map_err(|e| CaseEnd::Fail(format!("cannot seed a VM in the lab: {e}")))
    }
}

fn connect(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let info = expect_ok("connect", instance.cloud_connect())?;
    ensure!(
        !info.product.is_empty() && !info.api_version.is_empty() && !info.instance_id.is_empty(),
        "connect must describe the endpoint (product, api-version, instance-id), got {info:?}"
    );
    let again = expect_ok("a second connect", instance.cloud_connect())?;
    ensure!(
        again.instance_id == info.instance_id,
        "a second connect names another endpoint: {again:?} vs {info:?}"
    );
    Ok(())
}

fn missing_objects(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let missing = scratch_name("missing");
    // Ids shaped like the endpoint's own, naming nothing.
    let (vm, disk, network, snapshot) = match &setup.target {
        Target::Lab(cloud) => (
            cloud.vm_id(&missing),
            cloud.disk_id(&missing),
            format!("{}/subnets/{missing}", cloud.vnet_id()),
            format!("{}-snap1", cloud.disk_id(&missing)),
        ),
        Target::Endpoint(_) => {
            let base = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/homeward-conformance/providers";
            (
                format!("{base}/Microsoft.Compute/virtualMachines/{missing}"),
                format!("{base}/Microsoft.Compute/disks/{missing}"),
                format!("{base}/Microsoft.Network/virtualNetworks/{missing}"),
                format!("{base}/Microsoft.Compute/snapshots/{missing}"),
            )
        }
    };
    let kinds = &[ErrorKind::NotFound];
    let mut instance = setup.instance(ctx)?;
    expect_error("get-vm of a missing VM", instance.cloud_get_vm(&vm), kinds)?;
    expect_error(
        "power-off of a missing VM",
        instance.cloud_power_off(&vm, true),
        kinds,
    )?;
    expect_error("start of a missing VM", instance.cloud_start(&vm), kinds)?;
    expect_error(
        "delete-vm of a missing VM",
        instance.cloud_delete_vm(&vm),
        kinds,
    )?;
    expect_error(
        "disk-endpoint of a missing disk",
        instance.cloud_disk_endpoint(&disk, Access::Read),
        kinds,
    )?;
    expect_error(
        "create-snapshot of a missing disk",
        instance.cloud_create_snapshot(&disk),
        kinds,
    )?;
    expect_error(
        "delete-snapshot of a missing disk",
        instance.cloud_delete_snapshot(&disk, &snapshot),
        kinds,
    )?;
    expect_error(
        "get-network of a missing network",
        instance.cloud_get_network(&network),
        kinds,
    )?;
    Ok(())
}

fn get_vm(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a VM to read is needed")?;
    let mut instance = setup.instance(ctx)?;
    let vm = expect_ok("get-vm", instance.cloud_get_vm(&seeded.id))?;
    ensure!(
        vm.id == seeded.id && vm.name == seeded.name,
        "get-vm gives {}/{}, seeded {}/{}",
        vm.id,
        vm.name,
        seeded.id,
        seeded.name
    );
    let disk_ids: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
    let seeded_ids: Vec<&str> = seeded.disks.iter().map(|d| d.id.as_str()).collect();
    ensure!(
        disk_ids == seeded_ids,
        "disks must come OS disk first, in order: got {disk_ids:?}, seeded {seeded_ids:?}"
    );
    for (disk, seeded) in vm.disks.iter().zip(&seeded.disks) {
        ensure!(
            disk.capacity_bytes == seeded.capacity,
            "disk {} has {} bytes, seeded {}",
            disk.id,
            disk.capacity_bytes,
            seeded.capacity
        );
    }
    let nic = vm
        .nics
        .first()
        .ok_or_else(|| CaseEnd::Fail("get-vm lists no NIC".to_string()))?;
    ensure!(
        nic.mac.eq_ignore_ascii_case(&seeded.mac),
        "NIC MAC {} differs from the seeded {}",
        nic.mac,
        seeded.mac
    );
    let ip = seeded.private_ip.to_string();
    let has_ip = match &nic.addressing {
        crate::plugin::wit::v0_1::types::Addressing::Fixed(fixed) => {
            fixed.addresses.iter().any(|(address, _)| *address == ip)
        }
        crate::plugin::wit::v0_1::types::Addressing::Dhcp => false,
    };
    ensure!(
        has_ip,
        "the NIC must report its private IP {ip}: {:?}",
        nic.addressing
    );
    ensure!(
        vm.power == PowerState::PoweredOn,
        "a running VM is reported {:?}",
        vm.power
    );
    Ok(())
}

fn power(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a VM to power is needed")?;
    let mut instance = setup.instance(ctx)?;
    expect_ok(
        "power-off with deallocate",
        instance.cloud_power_off(&seeded.id, true),
    )?;
    let vm = expect_ok("get-vm", instance.cloud_get_vm(&seeded.id))?;
    ensure!(
        vm.power == PowerState::PoweredOff,
        "after power-off the VM is {:?}",
        vm.power
    );
    expect_ok("start", instance.cloud_start(&seeded.id))?;
    let vm = expect_ok("get-vm", instance.cloud_get_vm(&seeded.id))?;
    ensure!(
        vm.power == PowerState::PoweredOn,
        "after start the VM is {:?}",
        vm.power
    );
    Ok(())
}

fn create_and_delete_vm(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let cloud = setup.lab("disks and a subnet to build a VM from are needed")?;
    let os = cloud
        .add_disk(&scratch_name("os"), 4 << 20)
        .map_err(|e| CaseEnd::Fail(format!("cannot seed a disk: {e}")))?;
    let data = cloud
        .add_disk(&scratch_name("data"), 2 << 20)
        .map_err(|e| CaseEnd::Fail(format!("cannot seed a disk: {e}")))?;
    let spec = CloudVmSpec {
        name: scratch_name("vm"),
        size: lab::DEFAULT_SIZE.to_string(),
        disk_ids: vec![os.id.clone(), data.id.clone()],
        subnet_id: cloud.subnet_id(lab::APP_SUBNET),
        private_ip: Some("10.20.1.77".to_string()),
    };
    let mut instance = setup.instance(ctx)?;
    let vm = expect_ok("create-vm", instance.cloud_create_vm(&spec))?;
    let ids: Vec<&str> = vm.disks.iter().map(|d| d.id.as_str()).collect();
    ensure!(
        ids == [os.id.as_str(), data.id.as_str()],
        "the new VM's disks are {ids:?}, asked OS {} then {}",
        os.id,
        data.id
    );
    let kept_ip = vm.nics.iter().any(|nic| match &nic.addressing {
        crate::plugin::wit::v0_1::types::Addressing::Fixed(fixed) => {
            fixed.addresses.iter().any(|(a, _)| a == "10.20.1.77")
        }
        crate::plugin::wit::v0_1::types::Addressing::Dhcp => false,
    });
    ensure!(
        kept_ip,
        "the new VM does not keep the asked private IP 10.20.1.77"
    );
    expect_error(
        "create-vm with a name already taken",
        instance.cloud_create_vm(&spec),
        &[ErrorKind::Conflict],
    )?;
    let mut elsewhere = spec.clone();
    elsewhere.name = scratch_name("vm");
    elsewhere.private_ip = Some("10.99.0.5".to_string());
    elsewhere.disk_ids = vec![
        cloud
            .add_disk(&scratch_name("os"), 1 << 20)
            .map_err(|e| CaseEnd::Fail(format!("cannot seed a disk: {e}")))?
            .id,
    ];
    expect_error(
        "create-vm with a private IP outside the subnet",
        instance.cloud_create_vm(&elsewhere),
        &[ErrorKind::InvalidInput],
    )?;
    expect_error(
        "delete-vm of a running VM",
        instance.cloud_delete_vm(&vm.id),
        &[ErrorKind::Conflict],
    )?;
    expect_ok("power-off", instance.cloud_power_off(&vm.id, true))?;
    expect_ok("delete-vm", instance.cloud_delete_vm(&vm.id))?;
    expect_error(
        "get-vm after delete-vm",
        instance.cloud_get_vm(&vm.id),
        &[ErrorKind::NotFound],
    )?;
    expect_ok(
        "disk-endpoint of a deleted VM's disk (delete-vm keeps disks)",
        instance.cloud_disk_endpoint(&os.id, Access::Read),
    )?;
    Ok(())
}

fn networks(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let cloud = setup.lab("a virtual network is needed")?;
    let (vnet, subnet) = (cloud.vnet_id(), cloud.subnet_id(lab::APP_SUBNET));
    let mut instance = setup.instance(ctx)?;
    let network = expect_ok(
        "get-network of the virtual network",
        instance.cloud_get_network(&vnet),
    )?;
    ensure!(
        !network.address_prefixes.is_empty(),
        "the virtual network has no address prefixes"
    );
    let network = expect_ok(
        "get-network of a subnet",
        instance.cloud_get_network(&subnet),
    )?;
    ensure!(
        !network.address_prefixes.is_empty(),
        "the subnet has no address prefix"
    );
    let missing_subnet = format!("{vnet}/subnets/{}", scratch_name("subnet"));
    let failure = expect_error(
        "get-network of a missing subnet",
        instance.cloud_get_network(&missing_subnet),
        &[ErrorKind::NotFound],
    )?;
    ensure!(
        failure.to_string().to_lowercase().contains("subnet"),
        "a missing subnet must be named as the subnet: {failure}"
    );
    Ok(())
}

/// Opens a disk endpoint on the host, as the data path would: a local path
/// (the lab) or a page blob (Azure). The locator's credential is a secret:
/// nothing here prints the locator itself.
fn open_endpoint(
    disk: &crate::plugin::adapter::Disk,
    writable: bool,
) -> Result<Box<dyn crate::disk::BlockDevice>, CaseEnd> {
    ensure!(
        disk.format == DiskFormat::VhdFixed || disk.format == DiskFormat::Raw,
        "disk {} has format {:?}; a cloud disk is raw or VHD-fixed",
        disk.id,
        disk.format
    );
    match &disk.locator {
        DiskLocator::LocalPath(path) => {
            crate::disk::image::open(std::path::Path::new(path), writable, None).map_err(|e| {
                CaseEnd::Fail(format!("disk {} at {path} does not open: {e}", disk.id))
            })
        }
        DiskLocator::Blob(endpoint) => crate::disk::page_blob::open(endpoint, writable)
            .map(|device| Box::new(device) as Box<dyn crate::disk::BlockDevice>)
            .map_err(|e| {
                CaseEnd::Fail(format!(
                    "disk {} does not open as a page blob: {e}",
                    disk.id
                ))
            }),
        DiskLocator::DatastoreFile((datastore, path)) => Err(CaseEnd::Fail(format!(
            "disk {} is a datastore file ([{datastore}] {path}); a cloud adapter hands out local paths or blobs",
            disk.id
        ))),
    }
}

fn disk_endpoint(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a disk is needed")?;
    let mut instance = setup.instance(ctx)?;
    for seeded_disk in &seeded.disks {
        let disk = expect_ok(
            "disk-endpoint (read)",
            instance.cloud_disk_endpoint(&seeded_disk.id, Access::Read),
        )?;
        let device = open_endpoint(&disk, false)?;
        ensure!(
            device.capacity() == seeded_disk.capacity,
            "disk {} opens with {} bytes, seeded {}",
            disk.id,
            device.capacity(),
            seeded_disk.capacity
        );
    }
    let os = &seeded.disks[0];
    expect_error(
        "disk-endpoint read-write on a running VM's disk",
        instance.cloud_disk_endpoint(&os.id, Access::ReadWrite),
        &[ErrorKind::Conflict],
    )?;
    Ok(())
}

fn changed_ranges(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a disk to change is needed")?;
    let mut instance = setup.instance(ctx)?;
    expect_ok(
        "power-off with deallocate",
        instance.cloud_power_off(&seeded.id, true),
    )?;
    let disk_id = seeded.disks[0].id.clone();
    let base = expect_ok(
        "create-snapshot (base)",
        instance.cloud_create_snapshot(&disk_id),
    )?;
    let disk = expect_ok(
        "disk-endpoint read-write of a deallocated VM's disk",
        instance.cloud_disk_endpoint(&disk_id, Access::ReadWrite),
    )?;
    let device = open_endpoint(&disk, true)?;
    // Two changes: one inside a block, one across a block boundary.
    let writes: [Range<u64>; 2] = [4096..4096 + 512, (1 << 20) - 512..(1 << 20) + 1024];
    for range in &writes {
        let bytes = vec![0xA5u8; (range.end - range.start) as usize];
        device
            .write_at(&bytes, range.start)
            .and_then(|()| device.flush())
            .map_err(|e| CaseEnd::Fail(format!("cannot write the disk: {e}")))?;
    }
    drop(device);
    let target = expect_ok(
        "create-snapshot (target)",
        instance.cloud_create_snapshot(&disk_id),
    )?;
    let changes = expect_ok(
        "changed-ranges",
        instance.cloud_changed_ranges(&disk_id, &base.id, &target.id),
    )?;
    ensure!(
        !changes.method.is_empty(),
        "changed-ranges must say which method found the ranges"
    );
    let mut last_end = 0;
    for range in &changes.ranges {
        ensure!(range.length > 0, "an empty range at {}", range.offset);
        ensure!(
            range.offset >= last_end,
            "ranges must be sorted and disjoint: {:?}",
            changes.ranges
        );
        last_end = range.offset + range.length;
    }
    for written in &writes {
        let covered = changes
            .ranges
            .iter()
            .any(|r| r.offset <= written.start && written.end <= r.offset + r.length)
            || covered_by_union(&changes.ranges, written);
        ensure!(
            covered,
            "the write at {written:?} is not covered by the changed ranges {:?} ({})",
            changes.ranges,
            changes.method
        );
    }
    // Within a block of the writes (64 KiB, or 1 MiB for a coarser method):
    // an adapter that reports the whole disk is useless to the data path.
    let slack = 1 << 20;
    for range in &changes.ranges {
        ensure!(
            writes
                .iter()
                .any(|w| range.offset < w.end + slack
                    && w.start < (range.offset + range.length) + slack),
            "the range {}+{} is far from every change ({})",
            range.offset,
            range.length,
            changes.method
        );
    }
    let same = expect_ok(
        "changed-ranges of a snapshot against itself",
        instance.cloud_changed_ranges(&disk_id, &target.id, &target.id),
    )?;
    ensure!(
        same.ranges.is_empty(),
        "a snapshot differs from itself: {:?}",
        same.ranges
    );
    expect_ok(
        "delete-snapshot",
        instance.cloud_delete_snapshot(&disk_id, &base.id),
    )?;
    expect_error(
        "changed-ranges from a deleted snapshot",
        instance.cloud_changed_ranges(&disk_id, &base.id, &target.id),
        &[ErrorKind::NotFound],
    )?;
    expect_ok(
        "delete-snapshot",
        instance.cloud_delete_snapshot(&disk_id, &target.id),
    )?;
    Ok(())
}

/// The skip reason of `cloud/restore-points` for an adapter without the
/// interface.
pub const NO_RESTORE_POINTS: &str = "the adapter does not export cloud-restore-points (API 0.1.1): it was \
     built for API 0.1.0, and the host snapshots its disks one by one instead";

fn restore_points(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    // Whether the interface is there does not depend on the target: ask
    // first, so a 0.1.0 adapter skips for that reason and no other.
    let mut probe = ctx.instance()?;
    let present = expect_ok(
        "looking up cloud-restore-points",
        probe.cloud_has_restore_points(),
    )?;
    if !present {
        let api = &ctx.manifest().api;
        return Err(CaseEnd::Skip(format!(
            "{NO_RESTORE_POINTS} (its manifest says api = {api})"
        )));
    }
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a VM whose disks to snapshot is needed")?;
    let cloud = setup.lab("a VM whose disks to snapshot is needed")?;
    // A mark per disk, so each snapshot is seen to hold its own disk's bytes.
    let marks: Vec<Vec<u8>> = seeded
        .disks
        .iter()
        .map(|d| format!("homeward-conformance restore point of {}", d.name).into_bytes())
        .collect();
    for (disk, mark) in seeded.disks.iter().zip(&marks) {
        cloud
            .write_disk(&disk.name, MARK_AT, mark)
            .map_err(|e| CaseEnd::Fail(format!("cannot write the lab disk {}: {e}", disk.name)))?;
    }
    let disk_ids: Vec<String> = seeded.disks.iter().map(|d| d.id.clone()).collect();
    let mut instance = setup.instance(ctx)?;
    let before = expect_ok("get-vm", instance.cloud_get_vm(&seeded.id))?
        .snapshots
        .len();

    let point = take_point(&mut instance, &seeded.id, &disk_ids, false)?;
    let checked = (|| -> Result<(), CaseEnd> {
        ensure!(
            !point.quiesced,
            "a restore point taken with quiesce=false says it is quiesced"
        );
        check_point(&point, &disk_ids)?;
        // After the point the disks move on; the snapshots must not.
        for disk in &seeded.disks {
            cloud
                .write_disk(&disk.name, MARK_AT, &[0x5a; 64])
                .map_err(|e| {
                    CaseEnd::Fail(format!("cannot write the lab disk {}: {e}", disk.name))
                })?;
        }
        for ((disk, snapshot), mark) in seeded.disks.iter().zip(&point.snapshots).zip(&marks) {
            let id = format!("{}@{}", disk.id, snapshot.id);
            let endpoint = expect_ok(
                &format!("disk-endpoint (read) of the restore point's snapshot {id}"),
                instance.cloud_disk_endpoint(&id, Access::Read),
            )?;
            let device = open_endpoint(&endpoint, false)?;
            ensure!(
                device.capacity() == disk.capacity,
                "{id} opens with {} bytes, its disk has {} (snapshots out of order?)",
                device.capacity(),
                disk.capacity
            );
            let mut read = vec![0u8; mark.len()];
            device
                .read_at(&mut read, MARK_AT)
                .map_err(|e| CaseEnd::Fail(format!("cannot read {id}: {e}")))?;
            ensure!(
                read == *mark,
                "{id} does not hold its disk's bytes at the time of the point"
            );
        }
        Ok(())
    })();
    let deleted = delete_point(&mut instance, &disk_ids, &point);
    checked?;
    deleted?;
    for (disk, snapshot) in disk_ids.iter().zip(&point.snapshots) {
        expect_error(
            "disk-endpoint of a deleted restore point's snapshot",
            instance.cloud_disk_endpoint(&format!("{disk}@{}", snapshot.id), Access::Read),
            &[ErrorKind::NotFound],
        )?;
    }

    // Asked to quiesce: app-consistent, or crash-consistent saying why.
    let point = take_point(&mut instance, &seeded.id, &disk_ids, true)?;
    let checked = (|| -> Result<(), CaseEnd> {
        check_point(&point, &disk_ids)?;
        ensure!(
            point.quiesced || point.note.as_deref().is_some_and(|n| !n.trim().is_empty()),
            "a restore point asked to quiesce is crash-consistent without a note saying why"
        );
        Ok(())
    })();
    let deleted = delete_point(&mut instance, &disk_ids, &point);
    checked?;
    deleted?;

    // A disk that is not the VM's, or no disk at all, is refused, and the
    // refusal leaves no snapshot behind (a partial point is no point).
    let foreign = cloud
        .add_disk(&scratch_name("foreign"), 1 << 20)
        .map_err(|e| CaseEnd::Fail(format!("cannot seed a disk: {e}")))?;
    let unknown = cloud.disk_id(&scratch_name("missing"));
    for (what, disks) in [
        (
            "create-restore-point with a disk of no VM",
            vec![disk_ids[0].clone(), foreign.id.clone()],
        ),
        (
            "create-restore-point with a disk that does not exist",
            vec![disk_ids[0].clone(), unknown],
        ),
    ] {
        expect_error(
            what,
            instance
                .cloud_create_restore_point(&seeded.id, &disks, false)
                .map(|p| p.map(|p| p.snapshots.len())),
            &[ErrorKind::InvalidInput, ErrorKind::NotFound],
        )?;
    }
    let after = expect_ok("get-vm", instance.cloud_get_vm(&seeded.id))?
        .snapshots
        .len();
    ensure!(
        after == before,
        "the VM had {before} snapshot(s) before the restore points and has {after} after they were \
         deleted and the refused ones: a refused or deleted point left snapshots behind"
    );
    Ok(())
}

/// Where `cloud/restore-points` marks each disk.
const MARK_AT: u64 = 64 * 1024;

/// A restore point of `disk_ids`, or a failed case.
fn take_point(
    instance: &mut PluginInstance,
    vm_id: &str,
    disk_ids: &[String],
    quiesce: bool,
) -> Result<crate::plugin::adapter::RestorePoint, CaseEnd> {
    let what = format!("create-restore-point (quiesce={quiesce})");
    expect_ok(
        &what,
        instance.cloud_create_restore_point(vm_id, disk_ids, quiesce),
    )?
    .ok_or_else(|| {
        CaseEnd::Fail(format!(
            "{what}: the adapter exports cloud-restore-points, yet the host found no function to call"
        ))
    })
}

/// One snapshot per disk asked for, each agreeing with the point on
/// `quiesced`. The order is checked by reading them back as `DISK@SNAPSHOT`.
fn check_point(
    point: &crate::plugin::adapter::RestorePoint,
    disk_ids: &[String],
) -> Result<(), CaseEnd> {
    ensure!(
        point.snapshots.len() == disk_ids.len(),
        "a restore point of {} disk(s) holds {} snapshot(s)",
        disk_ids.len(),
        point.snapshots.len()
    );
    for snapshot in &point.snapshots {
        ensure!(
            !snapshot.id.is_empty(),
            "a snapshot of the restore point has no id"
        );
        ensure!(
            snapshot.quiesced == point.quiesced,
            "snapshot {} says quiesced={}, its restore point quiesced={}",
            snapshot.id,
            snapshot.quiesced,
            point.quiesced
        );
    }
    Ok(())
}

/// Deletes every snapshot of `point` (each under its disk), trying them all
/// before failing.
fn delete_point(
    instance: &mut PluginInstance,
    disk_ids: &[String],
    point: &crate::plugin::adapter::RestorePoint,
) -> Result<(), CaseEnd> {
    let mut first_failure = Ok(());
    for (disk, snapshot) in disk_ids.iter().zip(&point.snapshots) {
        let result = expect_ok(
            &format!("delete-snapshot of the restore point's snapshot of {disk}"),
            instance.cloud_delete_snapshot(disk, &snapshot.id),
        );
        if first_failure.is_ok() {
            first_failure = result;
        }
    }
    first_failure
}

fn covered_by_union(ranges: &[crate::plugin::adapter::ByteRange], want: &Range<u64>) -> bool {
    let mut at = want.start;
    for r in ranges {
        if r.offset <= at && at < r.offset + r.length {
            at = r.offset + r.length;
        }
        if at >= want.end {
            return true;
        }
    }
    at >= want.end
}

fn reader_role(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let seeded = setup.seeded_vm("a read-only principal is needed")?;
    let cloud = setup.lab("a read-only principal is needed")?;
    let secret = cloud
        .secret(lab::READER)
        .ok_or_else(|| CaseEnd::Fail("the lab cloud has no reader principal".to_string()))?;
    let mut settings = cloud.settings(lab::READER, secret);
    settings.expected_id = None;
    let plugin = ctx.load_with(settings)?;
    let mut instance = ctx.instance_of(&plugin)?;
    expect_ok("get-vm as a reader", instance.cloud_get_vm(&seeded.id))?;
    for (what, result) in [
        (
            "power-off as a reader",
            instance.cloud_power_off(&seeded.id, true),
        ),
        (
            "create-snapshot as a reader",
            instance
                .cloud_create_snapshot(&seeded.disks[0].id)
                .map(|_| ()),
        ),
    ] {
        let failure = expect_error(what, result, &[ErrorKind::PermissionDenied])?;
        let Failure::PermissionDenied { missing, .. } = failure else {
            return Err(CaseEnd::Fail(
                "permission-denied without its record".to_string(),
            ));
        };
        ensure!(
            !missing.is_empty(),
            "{what}: permission-denied must list the missing actions"
        );
    }
    Ok(())
}

fn connect_call(instance: &mut PluginInstance) -> Result<(), PluginError> {
    instance.cloud_connect().map(drop)
}

fn unconfigured(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    adapters::unconfigured(ctx, connect_call)
}

fn wrong_credentials(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    adapters::wrong_credentials(
        ctx,
        &setup.settings,
        &[("connect", |i| i.cloud_connect().map(drop))],
    )
}

fn endpoint_unavailable(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let dead = adapters::dead_target_settings(ctx, &setup.target, &setup.settings)?;
    adapters::expect_unavailable(ctx, dead, connect_call)
}

fn unreachable_network_endpoint(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    adapters::unreachable_network_endpoint(ctx, connect_call)
}
