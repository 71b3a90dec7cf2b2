//! The hypervisor calls: log in (or reuse the session), check privileges and
//! the licence, then read or change the lab through `store`.

use crate::convert;
use crate::format::{Account, Power, SnapshotConfig};
use crate::privileges::{self as p, missing};
use crate::readiness;
use crate::store::{Lab, NewVm};
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::{
    Inventory, ReadinessRequest, VmSpec,
};
use homeward_sdk::types::{Disk, EndpointInfo, Finding, Licence, PowerState, Snapshot, Vm};
use homeward_sdk::{Error, config, log};
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the lab is inside the sandbox unless config `root` says otherwise.
pub const DEFAULT_ROOT: &str = "/lab";

/// The user logged in by this instance, if any (a vSphere session).
static SESSION: Mutex<Option<String>> = Mutex::new(None);

fn session() -> std::sync::MutexGuard<'static, Option<String>> {
    SESSION
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn root() -> PathBuf {
    PathBuf::from(config::get("root").unwrap_or_else(|| DEFAULT_ROOT.to_string()))
}

/// Opens the lab and returns it with the logged-in account, logging in
/// first when this instance has no session.
fn login() -> Result<(Lab, Account), Error> {
    let lab = Lab::open(&root())?;
    let user = config::require("user")?;
    let reuse = session().as_deref() == Some(user.as_str());
    let account = lab.site.accounts.iter().find(|a| a.user == user).cloned();
    if reuse {
        if let Some(account) = account {
            return Ok((lab, account));
        }
        // The account was removed while logged in: the session is gone.
        *session() = None;
    }
    let password = config::require_secret("password")?;
    match account {
        Some(account) if account.password == password => {
            log::info(&format!(
                "logged in to the lab at {} as {user}",
                lab.layout().root().display()
            ));
            *session() = Some(user);
            Ok((lab, account))
        }
        _ => Err(Error::permission_denied(
            format!("wrong user or password for lab user {user}"),
            &[],
        )),
    }
}

/// Refuses unless `account` holds every privilege in `needed`; the error
/// lists exactly the missing ones.
fn require(account: &Account, needed: &[&str], what: &str) -> Result<(), Error> {
    let lacking = missing(needed, &account.privileges);
    if lacking.is_empty() {
        return Ok(());
    }
    Err(Error::permission_denied(
        format!(
            "lab user {} may not {what}: it lacks {}",
            account.user,
            lacking.join(", ")
        ),
        &lacking,
    ))
}

/// A free licence makes the API read-only (vSphere's `RestrictedVersion`).
fn require_paid_licence(lab: &Lab, what: &str) -> Result<(), Error> {
    let l = &lab.site.licence;
    if l.free {
        return Err(Error::unsupported(format!(
            "cannot {what}: the site runs a free licence ({}, edition {}) whose API is read-only; \
             assign a paid vSphere licence to the hosts",
            l.product, l.edition
        )));
    }
    Ok(())
}

/// Logs in and checks the privileges and licence a change needs.
fn for_change(needed: &[&str], what: &str) -> Result<(Lab, Account), Error> {
    let (lab, account) = login()?;
    require(&account, needed, what)?;
    require_paid_licence(&lab, what)?;
    Ok((lab, account))
}

/// Logs in and checks `System.Read`.
fn for_read(what: &str) -> Result<(Lab, Account), Error> {
    let (lab, account) = login()?;
    require(&account, &[p::SYSTEM_READ], what)?;
    Ok((lab, account))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn connect() -> Result<EndpointInfo, Error> {
    let (lab, _) = login()?;
    Ok(convert::endpoint(&lab))
}

pub fn disconnect() -> Result<(), Error> {
    *session() = None;
    Ok(())
}

pub fn discover() -> Result<Inventory, Error> {
    let (lab, _) = for_read("read the inventory")?;
    let datastores = lab
        .site
        .datastores
        .iter()
        .map(|d| convert::datastore(&lab, d))
        .collect::<Result<_, _>>()?;
    Ok(Inventory {
        datacenters: lab.site.datacenters.clone(),
        hosts: lab.site.hosts.iter().map(convert::host).collect(),
        datastores,
        networks: lab.site.networks.iter().map(convert::network).collect(),
        vms: lab.vms()?.iter().map(convert::vm).collect(),
    })
}

pub fn get_vm(vm_id: &str) -> Result<Vm, Error> {
    let (lab, _) = for_read("read VMs")?;
    Ok(convert::vm(&lab.vm(vm_id)?))
}

pub fn get_licence() -> Result<Licence, Error> {
    let (lab, _) = for_read("read the licence")?;
    Ok(convert::licence(&lab))
}

pub fn readiness(request: &ReadinessRequest) -> Result<Vec<Finding>, Error> {
    let (lab, account) = for_read("run readiness checks")?;
    readiness::findings(&lab, &account, request, now_ms())
}

pub fn set_power(vm_id: &str, state: PowerState) -> Result<(), Error> {
    let (target, privilege, word) = match state {
        PowerState::PoweredOn => (Power::PoweredOn, p::POWER_ON, "power on"),
        PowerState::PoweredOff => (Power::PoweredOff, p::POWER_OFF, "power off"),
        PowerState::Suspended | PowerState::Unknown => {
            return Err(Error::invalid_input(
                "set-power takes powered-on or powered-off".to_string(),
            ));
        }
    };
    let (lab, _) = for_change(&[privilege], &format!("{word} VMs"))?;
    let mut vm = lab.vm(vm_id)?;
    if vm.config.power == target {
        return Err(Error::conflict(format!(
            "VM {} ({vm_id}) is already {}",
            vm.config.name,
            if target == Power::PoweredOn {
                "powered on"
            } else {
                "powered off"
            }
        )));
    }
    vm.config.power = target;
    lab.save_vm(&vm)?;
    log::info(&format!("VM {} ({vm_id}): {word}", vm.config.name));
    Ok(())
}

pub fn shutdown_guest(vm_id: &str) -> Result<(), Error> {
    let (lab, _) = for_change(&[p::POWER_OFF], "shut down guests")?;
    let mut vm = lab.vm(vm_id)?;
    if vm.config.power != Power::PoweredOn {
        return Err(Error::conflict(format!(
            "VM {} ({vm_id}) is not powered on, so its guest cannot shut down",
            vm.config.name
        )));
    }
    if !vm.config.tools_running() {
        return Err(Error::conflict(format!(
            "guest tools are not running in VM {} ({vm_id}), so it cannot be asked to shut down: \
             power it off instead (set-power powered-off)",
            vm.config.name
        )));
    }
    vm.config.power = Power::PoweredOff;
    lab.save_vm(&vm)?;
    log::info(&format!("VM {} ({vm_id}): guest shut down", vm.config.name));
    Ok(())
}

pub fn create_vm(spec: VmSpec) -> Result<Vm, Error> {
    let mut needed = vec![p::VM_CREATE, p::ASSIGN_TO_POOL];
    if !spec.disk_sizes.is_empty() {
        needed.extend([p::ADD_NEW_DISK, p::ALLOCATE_SPACE]);
    }
    if !spec.network_ids.is_empty() {
        needed.push(p::NETWORK_ASSIGN);
    }
    let vm = crate::store::locked(&root(), || {
        let (mut lab, _) = for_change(&needed, "create VMs")?;
        lab.create_vm(NewVm {
            name: spec.name,
            host_id: spec.host_id,
            datastore_id: spec.datastore_id,
            guest_os: spec.guest_id,
            cpus: spec.cpus,
            memory_mib: spec.memory_mib,
            disk_sizes: spec.disk_sizes,
            network_ids: spec.network_ids,
            power: Power::PoweredOff,
            tools_installed: false,
            extra_config: Default::default(),
        })
    })?;
    log::info(&format!(
        "created VM {} ({}) on [{}] with {} disk(s)",
        vm.config.name,
        vm.config.id,
        vm.datastore,
        vm.config.disks.len()
    ));
    Ok(convert::vm(&vm))
}

pub fn delete_vm(vm_id: &str) -> Result<(), Error> {
    let (lab, _) = for_change(&[p::VM_DELETE], "delete VMs")?;
    let vm = lab.vm(vm_id)?;
    if vm.config.power != Power::PoweredOff {
        return Err(Error::conflict(format!(
            "VM {} ({vm_id}) is not powered off: power it off before deleting it",
            vm.config.name
        )));
    }
    lab.delete_vm_files(&vm)?;
    log::info(&format!("deleted VM {} ({vm_id})", vm.config.name));
    Ok(())
}

pub fn add_disk(vm_id: &str, capacity_bytes: u64) -> Result<Disk, Error> {
    // The disk's UUID comes from site.json's counters: under the lab's lock.
    let (vm, disk) = crate::store::locked(&root(), || {
        let (mut lab, _) = for_change(&[p::ADD_NEW_DISK, p::ALLOCATE_SPACE], "add disks")?;
        let mut vm = lab.vm(vm_id)?;
        let disk = lab.add_disk(&mut vm, capacity_bytes)?;
        Ok((vm, disk))
    })?;
    log::info(&format!(
        "VM {} ({vm_id}): added {} ({capacity_bytes} bytes)",
        vm.config.name, disk.label
    ));
    Ok(convert::disk(&vm, &disk))
}

pub fn detach_disk(vm_id: &str, disk_id: &str) -> Result<(), Error> {
    let (lab, _) = for_change(&[p::REMOVE_DISK], "remove disks")?;
    let mut vm = lab.vm(vm_id)?;
    let before = vm.config.disks.len();
    vm.config.disks.retain(|d| d.uuid != disk_id);
    if vm.config.disks.len() == before {
        return Err(Error::not_found(format!(
            "disk {disk_id} is not attached to VM {} ({vm_id})",
            vm.config.name
        )));
    }
    lab.save_vm(&vm)?;
    log::info(&format!(
        "VM {} ({vm_id}): detached disk {disk_id}, its files stay on the datastore",
        vm.config.name
    ));
    Ok(())
}

pub fn create_snapshot(vm_id: &str, name: &str, quiesce: bool) -> Result<Snapshot, Error> {
    let (lab, _) = for_change(&[p::CREATE_SNAPSHOT], "take snapshots")?;
    let mut vm = lab.vm(vm_id)?;
    if name.trim().is_empty() {
        return Err(Error::invalid_input("a snapshot needs a name".to_string()));
    }
    if quiesce && !vm.config.tools_running() {
        return Err(Error::conflict(format!(
            "cannot quiesce VM {} ({vm_id}): guest tools are not running; \
             take the snapshot without quiescing, or start the VM with its tools",
            vm.config.name
        )));
    }
    // The counter lives in site.json, which other calls rewrite too.
    let id = crate::store::locked(&root(), || {
        let mut fresh = Lab::open(&root())?;
        let id = fresh.site.counters.next_snapshot();
        fresh.save_site()?;
        Ok(id)
    })?;
    lab.freeze_disks(&vm, &id)?;
    let snapshot = SnapshotConfig {
        id: id.clone(),
        name: name.to_string(),
        description: String::new(),
        created_at: now_ms(),
        parent: vm.config.current_snapshot.clone(),
        quiesced: quiesce,
    };
    vm.config.snapshots.push(snapshot.clone());
    vm.config.current_snapshot = Some(id.clone());
    if let Err(e) = lab.save_vm(&vm) {
        let _ = lab.drop_frozen_disks(&vm, &id);
        return Err(e);
    }
    log::info(&format!(
        "VM {} ({vm_id}): snapshot {id} ({name}) taken",
        vm.config.name
    ));
    Ok(Snapshot {
        id,
        name: snapshot.name,
        description: snapshot.description,
        created_at: snapshot.created_at,
        parent_id: snapshot.parent,
        quiesced: snapshot.quiesced,
    })
}

/// `snapshot-disk` (API 0.1.2): the frozen copy `create-snapshot` made of
/// the disk, read only.
pub fn snapshot_disk(vm_id: &str, snapshot_id: &str, disk_id: &str) -> Result<Disk, Error> {
    let (lab, _) = for_read("read VM snapshots")?;
    let vm = lab.vm(vm_id)?;
    if !vm.config.snapshots.iter().any(|s| s.id == snapshot_id) {
        return Err(Error::not_found(format!(
            "VM {} ({vm_id}) has no snapshot {snapshot_id}",
            vm.config.name
        )));
    }
    let disk = vm
        .config
        .disks
        .iter()
        .find(|d| d.uuid.eq_ignore_ascii_case(disk_id))
        .ok_or_else(|| {
            Error::not_found(format!(
                "VM {} ({vm_id}) has no disk {disk_id}",
                vm.config.name
            ))
        })?;
    let frozen = format!(
        "{}/{}/{}",
        crate::format::SNAPSHOTS_DIR,
        snapshot_id,
        disk.file
    );
    if !vm.dir.join(&frozen).is_file() {
        // A disk added after the snapshot was taken has no frozen copy.
        return Err(Error::not_found(format!(
            "snapshot {snapshot_id} of VM {} holds no copy of disk {disk_id} (added after the \
             snapshot was taken)",
            vm.config.name
        )));
    }
    Ok(convert::frozen_disk(&vm, disk, &frozen))
}

pub fn delete_snapshot(vm_id: &str, snapshot_id: &str) -> Result<(), Error> {
    let (lab, _) = for_change(&[p::REMOVE_SNAPSHOT], "delete snapshots")?;
    let mut vm = lab.vm(vm_id)?;
    let Some(at) = vm.config.snapshots.iter().position(|s| s.id == snapshot_id) else {
        return Err(Error::not_found(format!(
            "VM {} ({vm_id}) has no snapshot {snapshot_id}",
            vm.config.name
        )));
    };
    let gone = vm.config.snapshots.remove(at);
    // Children move up to the deleted snapshot's parent, as in vSphere.
    for s in &mut vm.config.snapshots {
        if s.parent.as_deref() == Some(snapshot_id) {
            s.parent = gone.parent.clone();
        }
    }
    if vm.config.current_snapshot.as_deref() == Some(snapshot_id) {
        vm.config.current_snapshot = gone.parent.clone();
    }
    // Record first: a crash after this leaves only stray copies, never a
    // snapshot whose frozen disks are gone.
    lab.save_vm(&vm)?;
    lab.drop_frozen_disks(&vm, snapshot_id)?;
    log::info(&format!(
        "VM {} ({vm_id}): snapshot {snapshot_id} ({}) deleted",
        vm.config.name, gone.name
    ));
    Ok(())
}
