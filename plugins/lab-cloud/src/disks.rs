//! Managed disks and their snapshots: `disk-endpoint`, `create-snapshot`,
//! `delete-snapshot`, `changed-ranges`, and the disk record the API returns.
//!
//! A snapshot is a frozen, sparse copy of the disk's VHD; `changed-ranges`
//! compares two copies block by block ([`BLOCK_SIZE`]).

use crate::auth::{Caller, actions};
use crate::format::{
    self, BLOCK_SIZE, CHANGE_METHOD, DISK_TYPE, DiskFile, LabPower, SNAPSHOT_TYPE, SnapshotFile,
    VmFile,
};
use crate::store::{Lab, disk_rel, now_millis};
use homeward_sdk::Error;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::{Access, ChangeSet};
use homeward_sdk::types::{ByteRange, Disk, DiskFormat, DiskLocator, Snapshot};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Length of the VHD footer after a disk's bytes.
const FOOTER_LEN: u64 = 512;
/// Bytes read at a time when copying or comparing.
const CHUNK: usize = 1 << 20;

/// The disk `id` names; `not-found` when there is none.
pub fn load(lab: &Lab, id: &str) -> Result<DiskFile, Error> {
    let name = lab.name_in(id, DISK_TYPE, "disk")?;
    lab.disk(&name)?.ok_or_else(|| {
        Error::not_found(format!(
            "disk `{name}` ({id}) does not exist in resource group {}",
            lab.cloud.resource_group
        ))
    })
}

/// The VM among `vms` that has disk `disk_id` attached.
pub fn attached_to<'a>(vms: &'a [VmFile], disk_id: &str) -> Option<&'a VmFile> {
    vms.iter()
        .find(|vm| vm.disks.iter().any(|d| d.eq_ignore_ascii_case(disk_id)))
}

/// The API's record of `disk`; `position` is its place in its VM (0: the OS
/// disk, then data disks by LUN).
pub fn to_api(lab: &Lab, disk: &DiskFile, position: Option<usize>) -> Result<Disk, Error> {
    let rel = disk_rel(&format::disk_vhd(&disk.name));
    let path = lab.host_path(&rel).ok_or_else(|| {
        Error::invalid_input(
            "missing configuration key `host-root`: set it to the lab directory's path on the \
             host, so disk locators point where the host can open them",
        )
    })?;
    let mut properties = vec![("name".to_string(), disk.name.clone())];
    let (controller, unit) = match position {
        Some(0) => {
            properties.push(("role".to_string(), "os".to_string()));
            (Some("osDisk".to_string()), None)
        }
        Some(n) => {
            let lun = u32::try_from(n - 1).unwrap_or(u32::MAX);
            properties.push(("role".to_string(), "data".to_string()));
            (Some("dataDisks".to_string()), Some(lun))
        }
        None => (None, None),
    };
    Ok(Disk {
        id: disk.id.clone(),
        label: disk.name.clone(),
        capacity_bytes: disk.capacity_bytes,
        sector_size: disk.sector_size,
        controller,
        unit,
        format: DiskFormat::VhdFixed,
        locator: DiskLocator::LocalPath(path.display().to_string()),
        properties,
    })
}

/// `disk-endpoint`. Both accesses need `beginGetAccess` (a `Reader` has
/// neither). Read-write access is a `conflict` while a VM holds the disk
/// allocated (running or stopped, not deallocated).
pub fn endpoint(lab: &Lab, caller: &Caller, id: &str, access: Access) -> Result<Disk, Error> {
    if let Some((disk_id, snapshot_id)) = id.rsplit_once('@') {
        return snapshot_endpoint(lab, caller, disk_id, snapshot_id, access);
    }
    let access_name = match access {
        Access::Read => "read",
        Access::ReadWrite => "read-write",
    };
    caller.may(
        &lab.cloud,
        &format!("get {access_name} access to disk {id}"),
        &[actions::DISK_GET_ACCESS],
    )?;
    let disk = load(lab, id)?;
    let vms = lab.vms()?;
    let owner = attached_to(&vms, &disk.id);
    if let (Access::ReadWrite, Some(vm)) = (access, owner)
        && vm.power != LabPower::Deallocated
    {
        let state = match vm.power {
            LabPower::Running => "running",
            _ => "stopped but still allocated",
        };
        return Err(Error::conflict(format!(
            "disk `{}` is attached to virtual machine `{}`, which is {state}: power it off with \
             deallocate before asking for read-write access",
            disk.name, vm.name
        )));
    }
    let position = owner.and_then(|vm| {
        vm.disks
            .iter()
            .position(|d| d.eq_ignore_ascii_case(&disk.id))
    });
    let mut api = to_api(lab, &disk, position)?;
    api.properties
        .push(("access".to_string(), access_name.to_string()));
    if let Some(vm) = owner {
        api.properties
            .push(("attached-to".to_string(), vm.id.clone()));
    }
    Ok(api)
}

/// `disk-endpoint` of `DISK-ID@SNAPSHOT-ID`: the snapshot's frozen copy,
/// read only (a replication cycle reads a point's bytes from it while the
/// disk itself goes on changing).
fn snapshot_endpoint(
    lab: &Lab,
    caller: &Caller,
    disk_id: &str,
    snapshot_id: &str,
    access: Access,
) -> Result<Disk, Error> {
    if access != Access::Read {
        return Err(Error::invalid_input(format!(
            "snapshot {snapshot_id} of disk {disk_id} is read-only: ask for read access"
        )));
    }
    caller.may(
        &lab.cloud,
        &format!("get read access to snapshot {snapshot_id}"),
        &[actions::SNAPSHOT_GET_ACCESS],
    )?;
    let disk = load(lab, disk_id)?;
    let snapshot = load_snapshot(lab, &disk, snapshot_id, "snapshot")?;
    let rel = disk_rel(&format::snapshot_vhd(&disk.name, &snapshot.name));
    let path = lab.host_path(&rel).ok_or_else(|| {
        Error::invalid_input(
            "missing configuration key `host-root`: set it to the lab directory's path on the \
             host, so disk locators point where the host can open them",
        )
    })?;
    Ok(Disk {
        id: format!("{}@{}", disk.id, snapshot.id),
        label: snapshot.name.clone(),
        capacity_bytes: disk.capacity_bytes,
        sector_size: disk.sector_size,
        controller: None,
        unit: None,
        format: DiskFormat::VhdFixed,
        locator: DiskLocator::LocalPath(path.display().to_string()),
        properties: vec![
            ("snapshot-of".to_string(), disk.id.clone()),
            ("access".to_string(), "read".to_string()),
        ],
    })
}

/// The API's record of `snapshot` of `disk`.
pub fn snapshot_to_api(disk: &DiskFile, snapshot: &SnapshotFile) -> Snapshot {
    Snapshot {
        id: snapshot.id.clone(),
        name: snapshot.name.clone(),
        description: format!("snapshot of disk {}", disk.name),
        created_at: snapshot.created_at,
        parent_id: snapshot.parent_id.clone(),
        quiesced: snapshot.quiesced,
    }
}

/// `create-snapshot`: a crash-consistent frozen copy of the disk, whose
/// parent is the disk's newest snapshot.
pub fn create_snapshot(lab: &Lab, caller: &Caller, id: &str) -> Result<Snapshot, Error> {
    take_snapshot(lab, caller, id, false)
}

/// A frozen copy of the disk; `quiesced` records that the restore point it
/// belongs to was app-consistent.
pub fn take_snapshot(
    lab: &Lab,
    caller: &Caller,
    id: &str,
    quiesced: bool,
) -> Result<Snapshot, Error> {
    caller.may(
        &lab.cloud,
        &format!("snapshot disk {id}"),
        &[actions::SNAPSHOT_WRITE],
    )?;
    let disk = load(lab, id)?;
    let parent = lab.snapshots_of(&disk.name)?.pop().map(|s| s.id);
    // Numbers are shared with other calls: taken under the lab's lock.
    let number = lab.locked(|| {
        let mut counters = lab.counters()?;
        let number = counters.take_snapshot();
        lab.save_counters(&counters)?;
        Ok(number)
    })?;
    let name = format::snapshot_name(&disk.name, number);
    let from = disk_rel(&format::disk_vhd(&disk.name));
    let to = disk_rel(&format::snapshot_vhd(&disk.name, &name));
    let tmp = format!("{to}.tmp");
    let copied =
        sparse_copy(lab, &from, &tmp).and_then(|()| std::fs::rename(lab.path(&tmp), lab.path(&to)));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(lab.path(&tmp));
        return Err(lab.io_error(&from, "snapshot", &e));
    }
    let snapshot = SnapshotFile {
        id: lab.cloud.snapshot_id(&name),
        name,
        number,
        disk_id: disk.id.clone(),
        created_at: now_millis(),
        parent_id: parent,
        quiesced,
    };
    if let Err(e) = lab.save_snapshot(&disk.name, &snapshot) {
        let _ = lab.remove(&to);
        return Err(e);
    }
    Ok(snapshot_to_api(&disk, &snapshot))
}

/// Copies `from` to `to` (both inside the lab), leaving holes where the
/// source reads as zeros, so a snapshot of a mostly empty disk stays small.
fn sparse_copy(lab: &Lab, from: &str, to: &str) -> io::Result<()> {
    let mut src = File::open(lab.path(from))?;
    let len = src.metadata()?.len();
    let mut dst = File::create(lab.path(to))?;
    dst.set_len(len)?;
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < len {
        let n = usize::try_from((len - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        src.read_exact(&mut buf[..n])?;
        for (i, block) in buf[..n].chunks(BLOCK_SIZE as usize).enumerate() {
            if block.iter().any(|&b| b != 0) {
                dst.seek(SeekFrom::Start(offset + (i as u64) * BLOCK_SIZE))?;
                dst.write_all(block)?;
            }
        }
        offset += n as u64;
    }
    dst.sync_all()
}

/// The snapshot `snapshot_id` of `disk`; `not-found` when the disk has no
/// such snapshot (missing, or a snapshot of another disk). `role` names it in
/// messages (`snapshot`, `base snapshot`).
fn load_snapshot(
    lab: &Lab,
    disk: &DiskFile,
    snapshot_id: &str,
    role: &str,
) -> Result<SnapshotFile, Error> {
    let name = lab.name_in(snapshot_id, SNAPSHOT_TYPE, "snapshot")?;
    match lab.snapshot(&disk.name, &name)? {
        Some(s) if s.disk_id.eq_ignore_ascii_case(&disk.id) => Ok(s),
        _ => Err(Error::not_found(format!(
            "{role} `{name}` ({snapshot_id}) is not a snapshot of disk `{}`",
            disk.name
        ))),
    }
}

/// `delete-snapshot`.
pub fn delete_snapshot(
    lab: &Lab,
    caller: &Caller,
    disk_id: &str,
    snapshot_id: &str,
) -> Result<(), Error> {
    caller.may(
        &lab.cloud,
        &format!("delete snapshot {snapshot_id}"),
        &[actions::SNAPSHOT_DELETE],
    )?;
    let disk = load(lab, disk_id)?;
    let snapshot = load_snapshot(lab, &disk, snapshot_id, "snapshot")?;
    // The record goes first: a failure in between leaves stray bytes, never
    // a snapshot whose bytes are gone.
    lab.remove(&disk_rel(&format::snapshot_json(
        &disk.name,
        &snapshot.name,
    )))?;
    lab.remove(&disk_rel(&format::snapshot_vhd(&disk.name, &snapshot.name)))
}

/// `changed-ranges`: the [`BLOCK_SIZE`] blocks that differ between two
/// snapshots of a disk, merged into sorted, disjoint byte ranges (the last
/// block is cut at the disk's end).
pub fn changed_ranges(
    lab: &Lab,
    caller: &Caller,
    disk_id: &str,
    base_id: &str,
    target_id: &str,
) -> Result<ChangeSet, Error> {
    caller.may(
        &lab.cloud,
        &format!("read the changes between snapshots of disk {disk_id}"),
        &[actions::SNAPSHOT_GET_ACCESS],
    )?;
    let disk = load(lab, disk_id)?;
    let base = load_snapshot(lab, &disk, base_id, "base snapshot")?;
    let target = load_snapshot(lab, &disk, target_id, "target snapshot")?;
    let base_rel = disk_rel(&format::snapshot_vhd(&disk.name, &base.name));
    let target_rel = disk_rel(&format::snapshot_vhd(&disk.name, &target.name));
    let ranges = compare(lab, &base_rel, &target_rel)?;
    Ok(ChangeSet {
        ranges,
        method: CHANGE_METHOD.to_string(),
    })
}

/// Compares the data areas of two VHDs in the lab.
fn compare(lab: &Lab, a_rel: &str, b_rel: &str) -> Result<Vec<ByteRange>, Error> {
    let open = |rel: &str| -> Result<(File, u64), Error> {
        let file = File::open(lab.path(rel)).map_err(|e| lab.io_error(rel, "open", &e))?;
        let len = file
            .metadata()
            .map_err(|e| lab.io_error(rel, "read", &e))?
            .len();
        let data = len.checked_sub(FOOTER_LEN).ok_or_else(|| {
            Error::internal(format!(
                "{rel} is shorter than a VHD footer; the lab is damaged"
            ))
        })?;
        Ok((file, data))
    };
    let (mut a, a_len) = open(a_rel)?;
    let (mut b, b_len) = open(b_rel)?;
    let common = a_len.min(b_len);
    let mut ranges = Ranges::default();
    let mut buf_a = vec![0u8; CHUNK];
    let mut buf_b = vec![0u8; CHUNK];
    let mut offset = 0u64;
    while offset < common {
        let n = usize::try_from((common - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        a.read_exact(&mut buf_a[..n])
            .map_err(|e| lab.io_error(a_rel, "read", &e))?;
        b.read_exact(&mut buf_b[..n])
            .map_err(|e| lab.io_error(b_rel, "read", &e))?;
        let block = BLOCK_SIZE as usize;
        for (i, (x, y)) in buf_a[..n]
            .chunks(block)
            .zip(buf_b[..n].chunks(block))
            .enumerate()
        {
            if x != y {
                ranges.add(offset + (i as u64) * BLOCK_SIZE, x.len() as u64);
            }
        }
        offset += n as u64;
    }
    // A disk that grew between the snapshots changed everywhere it grew.
    if a_len != b_len {
        ranges.add(common, a_len.max(b_len) - common);
    }
    Ok(ranges.0)
}

/// Sorted, disjoint ranges, merging a range that starts where the last ends.
#[derive(Default)]
struct Ranges(Vec<ByteRange>);

impl Ranges {
    fn add(&mut self, offset: u64, length: u64) {
        if let Some(last) = self.0.last_mut()
            && last.offset + last.length == offset
        {
            last.length += length;
            return;
        }
        self.0.push(ByteRange { offset, length });
    }
}
