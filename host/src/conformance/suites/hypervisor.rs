//! The hypervisor suite: the contract of `hypervisor-adapter` against a lab
//! site (`crate::lab::hypervisor`) or a real vSphere endpoint (`--target`).
//!
//! What the host relies on: a session that logs in and out cleanly, an
//! inventory whose references hold together, typed errors a job can act on
//! (`not-found` for a missing VM, `permission-denied` listing the missing
//! privileges, `conflict` for a wrong power state, `unavailable` for a dead
//! endpoint), readiness findings that block reprotect of a VM with snapshots
//! and failback on a free licence, VMs created at an alternate location with
//! their disks on the chosen datastore, snapshots whose disks it can read as
//! they were frozen (`hypervisor-snapshots`, API 0.1.2), and no secret in
//! any error or log.
//!
//! Cases that change the endpoint create their own VMs (named
//! `homeward-conformance-…`) and delete them at the end, also when they fail.

use super::adapters::{self, Target, scratch_name};
use crate::conformance::case::ensure;
use crate::conformance::{
    Case, CaseContext, CaseEnd, ErrorKind, Requirement, expect_error, expect_ok,
};
use crate::lab::hypervisor::{self as lab, LabSite};
use crate::plugin::adapter::{
    DiskFormat, DiskLocator, HypervisorVmSpec, Inventory, ReadinessRequest, Severity, Vm,
};
use crate::plugin::{Failure, PluginError, PluginInstance, PluginSettings};
use std::collections::BTreeSet;
use std::path::Path;

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "hypervisor/unconfigured",
            summary: "without configuration, connect answers a typed error that names what is missing",
            smoke: true,
            requires: &[],
            run: unconfigured,
        },
        Case {
            name: "hypervisor/session",
            summary: "connect describes the endpoint, reuses its session, and disconnect is safe twice",
            smoke: false,
            requires: &[],
            run: session,
        },
        Case {
            name: "hypervisor/wrong-credentials",
            summary: "a wrong secret gives permission-denied, and no secret appears in the error or the logs",
            smoke: false,
            requires: &[],
            run: wrong_credentials,
        },
        Case {
            name: "hypervisor/endpoint-unavailable",
            summary: "a dead endpoint (closed port, or a lab without its site) gives unavailable within the deadline",
            smoke: false,
            requires: &[],
            run: endpoint_unavailable,
        },
        Case {
            name: "hypervisor/inventory-is-consistent",
            summary: "discover's ids are unique and every reference (host, datastore, network, snapshot parent) resolves",
            smoke: false,
            requires: &[],
            run: inventory_is_consistent,
        },
        Case {
            name: "hypervisor/get-vm",
            summary: "get-vm agrees with discover, and a missing VM is not-found",
            smoke: false,
            requires: &[],
            run: get_vm,
        },
        Case {
            name: "hypervisor/missing-objects",
            summary: "power, delete, snapshot and readiness on a missing VM or snapshot give not-found",
            smoke: false,
            requires: &[],
            run: missing_objects,
        },
        Case {
            name: "hypervisor/alternate-location",
            summary: "create-vm on a chosen host, datastore and network; its disks live on that datastore; a taken name is a conflict",
            smoke: false,
            requires: &[],
            run: alternate_location,
        },
        Case {
            name: "hypervisor/disks",
            summary: "add-disk attaches a thin disk of the asked size; detach-disk removes it from the VM",
            smoke: false,
            requires: &[],
            run: disks,
        },
        Case {
            name: "hypervisor/power",
            summary: "power on and off take effect; deleting a running VM is a conflict",
            smoke: false,
            requires: &[],
            run: power,
        },
        Case {
            name: "hypervisor/snapshots-block-reprotect",
            summary: "a VM with a snapshot is refused for reprotect, naming the snapshot, until it is deleted",
            smoke: false,
            requires: &[],
            run: snapshots_block_reprotect,
        },
        Case {
            name: "hypervisor/read-only-account",
            summary: "a read-only account is refused with exactly the privileges it lacks, and readiness lists them",
            smoke: false,
            requires: &[],
            run: read_only_account,
        },
        Case {
            name: "hypervisor/free-licence",
            summary: "a free licence is reported as free and refuses failback before any data moves",
            smoke: false,
            requires: &[],
            run: free_licence,
        },
        Case {
            name: "hypervisor/disk-endpoints",
            summary: "each disk's locator reaches its bytes: the host opens it with the disk's capacity",
            smoke: false,
            requires: &[],
            run: disk_endpoints,
        },
        Case {
            name: "hypervisor/snapshot-disk",
            summary: "snapshot-disk (API 0.1.2) answers each disk of a snapshot with its id and capacity, holding the bytes of snapshot time while the disk moves on; unknown VM, snapshot or disk is not-found",
            smoke: false,
            requires: &[],
            run: snapshot_disk,
        },
        Case {
            name: "hypervisor/unreachable-network-endpoint",
            summary: "a URL nobody listens on gives unavailable, not a hang or a trap",
            smoke: false,
            requires: &[Requirement::Network],
            run: unreachable_network_endpoint,
        },
    ]
}

type Setup = adapters::Setup<LabSite>;

/// A lab site logged in as its administrator.
fn make_lab(dir: &Path) -> Result<(LabSite, PluginSettings), CaseEnd> {
    let site =
        LabSite::create(dir).map_err(|e| CaseEnd::Fail(format!("cannot make a lab site: {e}")))?;
    let settings = site.settings(lab::ADMIN_USER, lab::ADMIN_PASSWORD);
    Ok((site, settings))
}

/// A VM the case created, deleted when the case ends (whatever happened).
struct ScratchVm<'a> {
    instance: &'a mut PluginInstance,
    vm: Vm,
}

impl Drop for ScratchVm<'_> {
    fn drop(&mut self) {
        let _ = self
            .instance
            .hypervisor_set_power(&self.vm.id, crate::plugin::adapter::PowerState::PoweredOff);
        let _ = self.instance.hypervisor_delete_vm(&self.vm.id);
    }
}

/// A host, one of its datastores and one of its networks, for a new VM.
fn placement(inventory: &Inventory) -> Result<HypervisorVmSpec, CaseEnd> {
    let host = inventory
        .hosts
        .iter()
        .find(|h| h.connected && !h.datastore_ids.is_empty() && !h.network_ids.is_empty())
        .ok_or_else(|| {
            CaseEnd::Skip(
                "the endpoint has no connected host with a datastore and a network to create a VM on"
                    .to_string(),
            )
        })?;
    // Prefer a datastore that is not the first, so "the chosen datastore" is
    // a real choice (the alternate location of S4).
    let datastore = host.datastore_ids.last().cloned().unwrap_or_default();
    Ok(HypervisorVmSpec {
        name: scratch_name("vm"),
        host_id: host.id.clone(),
        datastore_id: datastore,
        guest_id: "otherLinux64Guest".to_string(),
        cpus: 1,
        memory_mib: 256,
        disk_sizes: vec![8 << 20, 4 << 20],
        network_ids: vec![host.network_ids[0].clone()],
    })
}

fn create_scratch_vm<'a>(
    instance: &'a mut PluginInstance,
) -> Result<(ScratchVm<'a>, HypervisorVmSpec, Inventory), CaseEnd> {
    let inventory = expect_ok("discover", instance.hypervisor_discover())?;
    let spec = placement(&inventory)?;
    let vm = expect_ok(
        &format!(
            "create-vm {} on {}/{}",
            spec.name, spec.host_id, spec.datastore_id
        ),
        instance.hypervisor_create_vm(&spec),
    )?;
    Ok((ScratchVm { instance, vm }, spec, inventory))
}

fn session(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let info = expect_ok("connect", instance.hypervisor_connect())?;
    ensure!(
        !info.product.is_empty() && !info.api_version.is_empty() && !info.instance_id.is_empty(),
        "connect must describe the endpoint (product, api-version, instance-id), got {info:?}"
    );
    let again = expect_ok("a second connect", instance.hypervisor_connect())?;
    ensure!(
        again.instance_id == info.instance_id,
        "a second connect names another endpoint: {again:?} vs {info:?}"
    );
    expect_ok("discover after connect", instance.hypervisor_discover())?;
    expect_ok("disconnect", instance.hypervisor_disconnect())?;
    expect_ok("a second disconnect", instance.hypervisor_disconnect())?;
    // A fresh instance has no session: the first call logs in by itself.
    let mut fresh = setup.instance(ctx)?;
    expect_ok(
        "discover on a fresh instance, without connect",
        fresh.hypervisor_discover(),
    )?;
    Ok(())
}

fn inventory_is_consistent(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let inventory = expect_ok("discover", instance.hypervisor_discover())?;
    ensure!(
        !inventory.datacenters.is_empty() && !inventory.hosts.is_empty(),
        "discover found no datacenter or no host"
    );
    let unique = |what: &str, ids: Vec<&str>| -> Result<BTreeSet<String>, CaseEnd> {
        let set: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        ensure!(set.len() == ids.len(), "{what} ids are not unique: {ids:?}");
        ensure!(
            set.iter().all(|id| !id.is_empty()),
            "a {what} has an empty id"
        );
        Ok(set)
    };
    let hosts = unique(
        "host",
        inventory.hosts.iter().map(|h| h.id.as_str()).collect(),
    )?;
    let datastores = unique(
        "datastore",
        inventory.datastores.iter().map(|d| d.id.as_str()).collect(),
    )?;
    let networks = unique(
        "network",
        inventory.networks.iter().map(|n| n.id.as_str()).collect(),
    )?;
    unique("VM", inventory.vms.iter().map(|v| v.id.as_str()).collect())?;
    for host in &inventory.hosts {
        for ds in &host.datastore_ids {
            ensure!(
                datastores.contains(ds),
                "host {} mounts datastore {ds}, which discover did not list",
                host.id
            );
        }
        for net in &host.network_ids {
            ensure!(
                networks.contains(net),
                "host {} has network {net}, which discover did not list",
                host.id
            );
        }
    }
    for ds in &inventory.datastores {
        ensure!(
            ds.free_bytes <= ds.capacity_bytes,
            "datastore {} has more free bytes ({}) than capacity ({})",
            ds.name,
            ds.free_bytes,
            ds.capacity_bytes
        );
        for host in &ds.host_ids {
            ensure!(
                hosts.contains(host),
                "datastore {} names host {host}, which discover did not list",
                ds.name
            );
        }
    }
    for vm in &inventory.vms {
        if let Some(host) = &vm.host_id {
            ensure!(
                hosts.contains(host),
                "VM {} runs on host {host}, which discover did not list",
                vm.name
            );
        }
        let snapshots: BTreeSet<&str> = vm.snapshots.iter().map(|s| s.id.as_str()).collect();
        for snapshot in &vm.snapshots {
            if let Some(parent) = &snapshot.parent_id {
                ensure!(
                    snapshots.contains(parent.as_str()),
                    "snapshot {} of VM {} has parent {parent}, which the VM does not list",
                    snapshot.name,
                    vm.name
                );
            }
        }
        for disk in &vm.disks {
            ensure!(
                disk.capacity_bytes > 0 && disk.sector_size >= 512,
                "VM {} disk {} has capacity {} and sector size {}",
                vm.name,
                disk.label,
                disk.capacity_bytes,
                disk.sector_size
            );
        }
    }
    Ok(())
}

fn get_vm(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let inventory = expect_ok("discover", instance.hypervisor_discover())?;
    for listed in inventory.vms.iter().take(3) {
        let fresh = expect_ok(
            &format!("get-vm {}", listed.id),
            instance.hypervisor_get_vm(&listed.id),
        )?;
        ensure!(
            fresh.id == listed.id && fresh.name == listed.name && fresh.uuid == listed.uuid,
            "get-vm {} gives {}/{}, discover listed {}/{}",
            listed.id,
            fresh.name,
            fresh.uuid,
            listed.name,
            listed.uuid
        );
        ensure!(
            fresh.disks.len() == listed.disks.len(),
            "get-vm {} has {} disks, discover listed {}",
            listed.id,
            fresh.disks.len(),
            listed.disks.len()
        );
    }
    let missing = scratch_name("missing");
    expect_error(
        "get-vm of a VM that does not exist",
        instance.hypervisor_get_vm(&missing),
        &[ErrorKind::NotFound],
    )?;
    Ok(())
}

fn missing_objects(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    use crate::plugin::adapter::PowerState;
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let missing = scratch_name("missing");
    expect_error(
        "set-power of a missing VM",
        instance.hypervisor_set_power(&missing, PowerState::PoweredOn),
        &[ErrorKind::NotFound],
    )?;
    expect_error(
        "delete-vm of a missing VM",
        instance.hypervisor_delete_vm(&missing),
        &[ErrorKind::NotFound],
    )?;
    expect_error(
        "create-snapshot of a missing VM",
        instance.hypervisor_create_snapshot(&missing, "x", false),
        &[ErrorKind::NotFound],
    )?;
    expect_error(
        "readiness for a missing VM",
        instance.hypervisor_readiness(&ReadinessRequest {
            operation: "reprotect".to_string(),
            vm_id: Some(missing.clone()),
            master_target_vm_id: None,
            master_target_host_id: None,
            datastore_id: None,
        }),
        &[ErrorKind::NotFound],
    )?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    let vm_id = scratch.vm.id.clone();
    expect_error(
        "delete-snapshot of a snapshot that does not exist",
        scratch
            .instance
            .hypervisor_delete_snapshot(&vm_id, &missing),
        &[ErrorKind::NotFound],
    )?;
    expect_error(
        "detach-disk of a disk the VM does not have",
        scratch.instance.hypervisor_detach_disk(&vm_id, &missing),
        &[ErrorKind::NotFound],
    )?;
    Ok(())
}

fn alternate_location(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let (scratch, spec, inventory) = create_scratch_vm(&mut instance)?;
    let vm = scratch.vm.clone();
    let datastore = inventory
        .datastores
        .iter()
        .find(|d| d.id == spec.datastore_id)
        .ok_or_else(|| CaseEnd::Fail(format!("datastore {} vanished", spec.datastore_id)))?;
    ensure!(
        vm.name == spec.name,
        "the new VM is named {}, asked {}",
        vm.name,
        spec.name
    );
    ensure!(
        vm.host_id.as_deref() == Some(spec.host_id.as_str()),
        "the new VM runs on {:?}, asked {}",
        vm.host_id,
        spec.host_id
    );
    let sizes: Vec<u64> = vm.disks.iter().map(|d| d.capacity_bytes).collect();
    ensure!(
        sizes == spec.disk_sizes,
        "the new VM's disks are {sizes:?} bytes, asked {:?}",
        spec.disk_sizes
    );
    ensure!(
        vm.nics.len() == spec.network_ids.len(),
        "the new VM has {} NICs, asked {}",
        vm.nics.len(),
        spec.network_ids.len()
    );
    for disk in &vm.disks {
        match &disk.locator {
            DiskLocator::DatastoreFile((name, path)) => {
                ensure!(
                    name == &datastore.name,
                    "disk {} is on datastore {name}, asked {}",
                    disk.label,
                    datastore.name
                );
                if let Target::Lab(site) = &setup.target {
                    let file = site.datastore_path(name).join(path);
                    ensure!(
                        file.is_file(),
                        "disk {} is said to be at [{name}] {path}, but {} does not exist",
                        disk.label,
                        file.display()
                    );
                }
            }
            other => {
                return Err(CaseEnd::Fail(format!(
                    "disk {} of a VM on a datastore has a {} locator, expected datastore-file",
                    disk.label,
                    locator_kind(other)
                )));
            }
        }
    }
    let fresh = expect_ok(
        "get-vm of the new VM",
        scratch.instance.hypervisor_get_vm(&vm.id),
    )?;
    ensure!(
        fresh.disks.len() == vm.disks.len(),
        "get-vm shows {} disks, create-vm returned {}",
        fresh.disks.len(),
        vm.disks.len()
    );
    expect_error(
        "create-vm with a name already taken",
        scratch.instance.hypervisor_create_vm(&spec),
        &[ErrorKind::Conflict],
    )?;
    let id = vm.id.clone();
    drop(scratch);
    expect_error(
        "get-vm after delete-vm",
        instance.hypervisor_get_vm(&id),
        &[ErrorKind::NotFound],
    )?;
    Ok(())
}

fn disks(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    let vm_id = scratch.vm.id.clone();
    let before = scratch.vm.disks.len();
    let capacity = 2 << 20;
    let disk = expect_ok(
        "add-disk of 2 MiB",
        scratch.instance.hypervisor_add_disk(&vm_id, capacity),
    )?;
    ensure!(
        disk.capacity_bytes == capacity,
        "add-disk returned a disk of {} bytes, asked {capacity}",
        disk.capacity_bytes
    );
    let vm = expect_ok(
        "get-vm after add-disk",
        scratch.instance.hypervisor_get_vm(&vm_id),
    )?;
    ensure!(
        vm.disks.len() == before + 1 && vm.disks.iter().any(|d| d.id == disk.id),
        "after add-disk the VM has {} disks (was {before}) and {} the new one",
        vm.disks.len(),
        if vm.disks.iter().any(|d| d.id == disk.id) {
            "lists"
        } else {
            "does not list"
        }
    );
    expect_ok(
        "detach-disk",
        scratch.instance.hypervisor_detach_disk(&vm_id, &disk.id),
    )?;
    let vm = expect_ok(
        "get-vm after detach-disk",
        scratch.instance.hypervisor_get_vm(&vm_id),
    )?;
    ensure!(
        vm.disks.len() == before && vm.disks.iter().all(|d| d.id != disk.id),
        "after detach-disk the VM still lists the disk, or lost another"
    );
    Ok(())
}

fn power(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    use crate::plugin::adapter::PowerState;
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    let vm_id = scratch.vm.id.clone();
    expect_ok(
        "set-power on",
        scratch
            .instance
            .hypervisor_set_power(&vm_id, PowerState::PoweredOn),
    )?;
    let vm = expect_ok("get-vm", scratch.instance.hypervisor_get_vm(&vm_id))?;
    ensure!(
        vm.power == PowerState::PoweredOn,
        "after power on the VM is {:?}",
        vm.power
    );
    expect_error(
        "delete-vm of a running VM",
        scratch.instance.hypervisor_delete_vm(&vm_id),
        &[ErrorKind::Conflict],
    )?;
    // Powering on a running VM: vSphere refuses (InvalidPowerState); an
    // adapter may also treat it as done. Either way it must not fail otherwise.
    match scratch
        .instance
        .hypervisor_set_power(&vm_id, PowerState::PoweredOn)
    {
        Ok(()) => {}
        Err(e) => {
            expect_error::<()>("set-power on twice", Err(e), &[ErrorKind::Conflict])?;
        }
    }
    expect_ok(
        "set-power off",
        scratch
            .instance
            .hypervisor_set_power(&vm_id, PowerState::PoweredOff),
    )?;
    let vm = expect_ok("get-vm", scratch.instance.hypervisor_get_vm(&vm_id))?;
    ensure!(
        vm.power == PowerState::PoweredOff,
        "after power off the VM is {:?}",
        vm.power
    );
    Ok(())
}

fn blocking<'f>(
    findings: &'f [crate::plugin::adapter::Finding],
    check: &str,
) -> Option<&'f crate::plugin::adapter::Finding> {
    findings
        .iter()
        .find(|f| f.check == check && f.severity == Severity::Blocking)
}

fn snapshots_block_reprotect(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let mut instance = setup.instance(ctx)?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    let vm_id = scratch.vm.id.clone();
    let request = ReadinessRequest {
        operation: "reprotect".to_string(),
        vm_id: Some(vm_id.clone()),
        master_target_vm_id: None,
        master_target_host_id: None,
        datastore_id: None,
    };
    let findings = expect_ok(
        "readiness of a VM without snapshots",
        scratch.instance.hypervisor_readiness(&request),
    )?;
    ensure!(
        blocking(&findings, "snapshots").is_none(),
        "a VM without snapshots got a blocking `snapshots` finding: {findings:?}"
    );
    let name = scratch_name("snap");
    let snapshot = expect_ok(
        "create-snapshot",
        scratch
            .instance
            .hypervisor_create_snapshot(&vm_id, &name, false),
    )?;
    ensure!(
        snapshot.name == name && !snapshot.quiesced,
        "create-snapshot returned {snapshot:?}"
    );
    let vm = expect_ok("get-vm", scratch.instance.hypervisor_get_vm(&vm_id))?;
    ensure!(
        vm.snapshots.iter().any(|s| s.id == snapshot.id),
        "get-vm does not list the new snapshot"
    );
    let findings = expect_ok(
        "readiness of a VM with a snapshot",
        scratch.instance.hypervisor_readiness(&request),
    )?;
    let finding = blocking(&findings, "snapshots").ok_or_else(|| {
        CaseEnd::Fail(format!(
            "a VM with a snapshot must get a blocking `snapshots` finding for reprotect (S13), got {findings:?}"
        ))
    })?;
    ensure!(
        finding.details.iter().any(|d| d.contains(&name)),
        "the `snapshots` finding must list the snapshot {name}, details: {:?}",
        finding.details
    );
    ensure!(
        !finding.remedy.is_empty(),
        "the `snapshots` finding says no remedy"
    );
    expect_ok(
        "delete-snapshot",
        scratch
            .instance
            .hypervisor_delete_snapshot(&vm_id, &snapshot.id),
    )?;
    let findings = expect_ok(
        "readiness after the snapshot was deleted",
        scratch.instance.hypervisor_readiness(&request),
    )?;
    ensure!(
        blocking(&findings, "snapshots").is_none(),
        "the `snapshots` finding stays after the snapshot was deleted: {findings:?}"
    );
    Ok(())
}

fn read_only_account(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let site = setup.lab("a read-only account is needed")?;
    let plugin = ctx.load_with(site.settings(lab::READONLY_USER, lab::READONLY_PASSWORD))?;
    let mut instance = ctx.instance_of(&plugin)?;
    let inventory = expect_ok(
        "discover as a read-only account (reading is allowed)",
        instance.hypervisor_discover(),
    )?;
    let spec = placement(&inventory)?;
    let failure = expect_error(
        "create-vm as a read-only account",
        instance.hypervisor_create_vm(&spec),
        &[ErrorKind::PermissionDenied],
    )?;
    let Failure::PermissionDenied { missing, .. } = failure else {
        return Err(CaseEnd::Fail(
            "permission-denied without its record".to_string(),
        ));
    };
    ensure!(
        !missing.is_empty(),
        "permission-denied must list the missing privileges"
    );
    let expected: BTreeSet<String> = lab::privileges::HOMEWARD_REQUIRED
        .iter()
        .filter(|p| !lab::READONLY_PRIVILEGES.contains(p))
        .map(|p| p.to_string())
        .collect();
    let findings = expect_ok(
        "readiness as a read-only account",
        instance.hypervisor_readiness(&ReadinessRequest {
            operation: "reprotect".to_string(),
            vm_id: None,
            master_target_vm_id: None,
            master_target_host_id: None,
            datastore_id: None,
        }),
    )?;
    let finding = blocking(&findings, "privileges").ok_or_else(|| {
        CaseEnd::Fail(format!(
            "a read-only account must get a blocking `privileges` finding (S12), got {findings:?}"
        ))
    })?;
    let listed: BTreeSet<String> = finding.details.iter().cloned().collect();
    ensure!(
        listed == expected,
        "the `privileges` finding must list exactly the missing privileges\nlisted:   {listed:?}\nexpected: {expected:?}"
    );
    Ok(())
}

fn free_licence(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let site = setup.lab("a free licence is needed")?;
    let mut instance = setup.instance(ctx)?;
    let licence = expect_ok("get-licence", instance.hypervisor_get_licence())?;
    ensure!(
        !licence.free && !licence.edition.is_empty(),
        "the lab starts with a paid licence, got {licence:?}"
    );
    let request = ReadinessRequest {
        operation: "failback".to_string(),
        vm_id: None,
        master_target_vm_id: None,
        master_target_host_id: None,
        datastore_id: None,
    };
    let findings = expect_ok(
        "readiness with a paid licence",
        instance.hypervisor_readiness(&request),
    )?;
    ensure!(
        blocking(&findings, "licence").is_none(),
        "a paid licence got a blocking `licence` finding: {findings:?}"
    );
    site.set_free_licence()
        .map_err(|e| CaseEnd::Fail(format!("cannot switch the lab to a free licence: {e}")))?;
    let mut instance = setup.instance(ctx)?;
    let licence = expect_ok("get-licence", instance.hypervisor_get_licence())?;
    ensure!(licence.free, "a free licence is reported as {licence:?}");
    let findings = expect_ok(
        "readiness with a free licence",
        instance.hypervisor_readiness(&request),
    )?;
    ensure!(
        blocking(&findings, "licence").is_some(),
        "a free licence must refuse failback with a blocking `licence` finding (S14), got {findings:?}"
    );
    Ok(())
}

fn disk_endpoints(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    let site = setup.lab("the datastore mounts are needed to reach disk files")?;
    let mut instance = setup.instance(ctx)?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    for disk in &scratch.vm.disks {
        let DiskLocator::DatastoreFile((name, path)) = &disk.locator else {
            return Err(CaseEnd::Fail(format!(
                "disk {} has a {} locator, expected datastore-file",
                disk.label,
                locator_kind(&disk.locator)
            )));
        };
        ensure!(
            disk.format == DiskFormat::VmdkFlat,
            "disk {} on a datastore has format {:?}, expected vmdk-flat",
            disk.label,
            disk.format
        );
        let file = site.datastore_path(name).join(path);
        let device = crate::disk::image::open(&file, false, None).map_err(|e| {
            CaseEnd::Fail(format!(
                "disk {} at [{name}] {path} does not open: {e}",
                disk.label
            ))
        })?;
        ensure!(
            device.capacity() == disk.capacity_bytes,
            "disk {} opens with {} bytes, the adapter says {}",
            disk.label,
            device.capacity(),
            disk.capacity_bytes
        );
    }
    Ok(())
}

/// The skip reason of `hypervisor/snapshot-disk` for an adapter without the
/// interface.
pub const NO_SNAPSHOT_DISKS: &str = "the adapter does not export hypervisor-snapshots (API 0.1.2): it was \
     built before API 0.1.2, and the host protects its VMs to the cloud with reprotect syncs only";

/// Where `hypervisor/snapshot-disk` marks each disk (lab only).
const MARK_AT: u64 = 64 * 1024;

fn snapshot_disk(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    // Whether the interface is there does not depend on the target: ask
    // first, so an older adapter skips for that reason and no other.
    let mut probe = ctx.instance()?;
    let present = expect_ok(
        "looking up hypervisor-snapshots",
        probe.hypervisor_has_snapshot_disks(),
    )?;
    if !present {
        let api = &ctx.manifest().api;
        return Err(CaseEnd::Skip(format!(
            "{NO_SNAPSHOT_DISKS} (its manifest says api = {api})"
        )));
    }
    let setup = Setup::new(ctx, make_lab)?;
    // Only in a lab can the case reach the disks' bytes to write and read them.
    let site = match &setup.target {
        Target::Lab(site) => Some(site),
        Target::Endpoint(_) => None,
    };
    let mut instance = setup.instance(ctx)?;
    let (scratch, _, _) = create_scratch_vm(&mut instance)?;
    let vm = scratch.vm.clone();
    let marks: Vec<Vec<u8>> = vm
        .disks
        .iter()
        .map(|d| format!("homeward-conformance frozen {}", d.id).into_bytes())
        .collect();
    if let Some(site) = site {
        for (disk, mark) in vm.disks.iter().zip(&marks) {
            write_located(site, disk, mark)?;
        }
    }
    let name = scratch_name("frozen");
    let snapshot = expect_ok(
        "create-snapshot",
        scratch
            .instance
            .hypervisor_create_snapshot(&vm.id, &name, false),
    )?;
    let checked = (|| -> Result<(), CaseEnd> {
        // After the snapshot the disks move on; what it froze must not.
        if let Some(site) = site {
            for disk in &vm.disks {
                write_located(site, disk, &[0x5a; 64])?;
            }
        }
        for (disk, mark) in vm.disks.iter().zip(&marks) {
            let what = format!("snapshot-disk of disk {} at the new snapshot", disk.id);
            let frozen = expect_ok(&what, scratch.instance.hypervisor_snapshot_disk(
                &vm.id,
                &snapshot.id,
                &disk.id,
            ))?
            .ok_or_else(|| {
                CaseEnd::Fail(format!(
                    "{what}: the adapter exports hypervisor-snapshots, yet the host found no function to call"
                ))
            })?;
            ensure!(
                frozen.id == disk.id,
                "{what} answers disk id {}, asked {}",
                frozen.id,
                disk.id
            );
            ensure!(
                frozen.capacity_bytes == disk.capacity_bytes,
                "{what} answers {} bytes, the disk has {}",
                frozen.capacity_bytes,
                disk.capacity_bytes
            );
            if let Some(site) = site {
                let device = open_located(site, &frozen, false)?;
                ensure!(
                    device.capacity() == disk.capacity_bytes,
                    "{what}: its locator opens with {} bytes, the disk has {}",
                    device.capacity(),
                    disk.capacity_bytes
                );
                let mut read = vec![0u8; mark.len()];
                device
                    .read_at(&mut read, MARK_AT)
                    .map_err(|e| CaseEnd::Fail(format!("{what}: cannot read it: {e}")))?;
                ensure!(
                    read == *mark,
                    "{what}: its locator does not hold the disk's bytes at the time of the snapshot"
                );
            }
        }
        let disk = vm.disks.first().ok_or_else(|| {
            CaseEnd::Fail("the new VM has no disk, though create-vm asked for two".to_string())
        })?;
        let missing = scratch_name("missing");
        for (what, vm_id, snapshot_id, disk_id) in [
            (
                "a VM that does not exist",
                missing.as_str(),
                snapshot.id.as_str(),
                disk.id.as_str(),
            ),
            (
                "a snapshot that does not exist",
                vm.id.as_str(),
                missing.as_str(),
                disk.id.as_str(),
            ),
            (
                "a disk the VM does not have",
                vm.id.as_str(),
                snapshot.id.as_str(),
                missing.as_str(),
            ),
        ] {
            expect_error(
                &format!("snapshot-disk of {what}"),
                scratch
                    .instance
                    .hypervisor_snapshot_disk(vm_id, snapshot_id, disk_id),
                &[ErrorKind::NotFound],
            )?;
        }
        Ok(())
    })();
    let deleted = expect_ok(
        "delete-snapshot",
        scratch
            .instance
            .hypervisor_delete_snapshot(&vm.id, &snapshot.id),
    );
    checked?;
    deleted?;
    if let Some(disk) = vm.disks.first() {
        expect_error(
            "snapshot-disk of a deleted snapshot",
            scratch
                .instance
                .hypervisor_snapshot_disk(&vm.id, &snapshot.id, &disk.id),
            &[ErrorKind::NotFound],
        )?;
    }
    Ok(())
}

/// The block device a lab disk's `datastore-file` locator names.
fn open_located(
    site: &LabSite,
    disk: &crate::plugin::adapter::Disk,
    writable: bool,
) -> Result<Box<dyn crate::disk::BlockDevice>, CaseEnd> {
    let DiskLocator::DatastoreFile((name, path)) = &disk.locator else {
        return Err(CaseEnd::Fail(format!(
            "disk {} has a {} locator, expected datastore-file",
            disk.id,
            locator_kind(&disk.locator)
        )));
    };
    crate::disk::image::open(&site.datastore_path(name).join(path), writable, None).map_err(|e| {
        CaseEnd::Fail(format!(
            "disk {} at [{name}] {path} does not open: {e}",
            disk.id
        ))
    })
}

/// Writes `bytes` at [`MARK_AT`] of a lab disk, durably.
fn write_located(
    site: &LabSite,
    disk: &crate::plugin::adapter::Disk,
    bytes: &[u8],
) -> Result<(), CaseEnd> {
    let device = open_located(site, disk, true)?;
    device
        .write_at(bytes, MARK_AT)
        .and_then(|()| device.flush())
        .map_err(|e| CaseEnd::Fail(format!("cannot write the lab disk {}: {e}", disk.id)))
}

fn connect_call(instance: &mut PluginInstance) -> Result<(), PluginError> {
    instance.hypervisor_connect().map(drop)
}

fn unconfigured(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    adapters::unconfigured(ctx, connect_call)
}

fn wrong_credentials(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let setup = Setup::new(ctx, make_lab)?;
    adapters::wrong_credentials(
        ctx,
        &setup.settings,
        &[
            ("connect", |i| i.hypervisor_connect().map(drop)),
            ("discover", |i| i.hypervisor_discover().map(drop)),
        ],
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

/// A locator's kind, for messages: a blob locator carries a credential, so
/// the locator itself is never printed.
fn locator_kind(locator: &DiskLocator) -> &'static str {
    match locator {
        DiskLocator::DatastoreFile(_) => "datastore-file",
        DiskLocator::Blob(_) => "blob",
        DiskLocator::LocalPath(_) => "local-path",
    }
}
