//! Disks as page blobs in VHD-fixed format: disk ids, `disk-endpoint`,
//! blob snapshots (`create-snapshot`, `delete-snapshot`, a disk's snapshot
//! chain for `get-vm`) and `changed-ranges`.
//!
//! A disk id is either `container/blob` (a page blob of the configured
//! storage account, what an unmanaged VM disk's `vhd.uri` names) or a
//! managed-disk ARM id (`.../Microsoft.Compute/disks/<name>`), which this
//! plugin maps to the page blob `<disk-container>/<name>.vhd` of the
//! configured account. Real managed disks hand out their bytes through
//! `beginGetAccess` and snapshot through ARM, which this plugin does not do:
//! the mapping is what lets Azurite stand in for them.

use crate::arm::ResourceId;
use crate::blob::PageBlob;
use crate::crypto::{iso8601_millis, sha256};
use crate::settings::{ChangeTracking, Settings, Storage, StorageCredential};
use crate::transport::Transport;
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::{Access, ChangeSet};
use homeward_sdk::types::{
    BlobCredential, BlobEndpoint, ByteRange, Disk, DiskFormat, DiskLocator, Snapshot,
};
use homeward_sdk::{Error, log};

/// The managed disk type.
pub const DISK_TYPE: &str = "Microsoft.Compute/disks";
/// Length of the VHD footer after a disk's bytes.
pub const FOOTER_LEN: u64 = 512;
/// Granularity of `compare` change tracking.
pub const BLOCK_SIZE: u64 = 64 * 1024;
/// Bytes read per ranged GET when comparing.
const READ_CHUNK: u64 = 4 << 20;

/// What a disk id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRef {
    /// A page blob of the configured account.
    Blob {
        /// Container.
        container: String,
        /// Blob name (may hold `/`).
        blob: String,
    },
    /// A managed disk, mapped to `<disk-container>/<name>.vhd`.
    Managed(ResourceId),
}

fn valid_container(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn valid_blob(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 1024
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl DiskRef {
    /// Parses a disk id.
    pub fn parse(id: &str) -> Result<DiskRef, Error> {
        if id.starts_with('/') {
            return crate::arm::parse_kind(id, DISK_TYPE, "managed disk").map(DiskRef::Managed);
        }
        let (container, blob) = id.split_once('/').unwrap_or((id, ""));
        if !valid_container(container) || !valid_blob(blob) {
            return Err(Error::invalid_input(format!(
                "`{}` is not a disk id: use `<container>/<blob>` (a page blob of the configured \
                 storage account; container 3-63 of a-z, 0-9 and `-`, blob of letters, digits, \
                 `-`, `_`, `.` and `/`) or a managed-disk id /subscriptions/…/providers/{DISK_TYPE}/<name>",
                id.escape_debug()
            )));
        }
        Ok(DiskRef::Blob {
            container: container.to_string(),
            blob: blob.to_string(),
        })
    }

    /// Container and blob name in `storage`.
    pub fn blob_path(&self, storage: &Storage) -> (String, String) {
        match self {
            DiskRef::Blob { container, blob } => (container.clone(), blob.clone()),
            DiskRef::Managed(id) => (storage.disk_container.clone(), format!("{}.vhd", id.name)),
        }
    }

    /// The blob's name without directories and `.vhd` (a disk name).
    pub fn blob_stem(&self) -> String {
        match self {
            DiskRef::Blob { blob, .. } => {
                let last = blob.rsplit('/').next().unwrap_or(blob);
                last.strip_suffix(".vhd").unwrap_or(last).to_string()
            }
            DiskRef::Managed(id) => id.name.clone(),
        }
    }

    /// The blob URL in `storage`.
    pub fn url(&self, storage: &Storage) -> String {
        let (container, blob) = self.blob_path(storage);
        format!("{}/{container}/{blob}", storage.endpoint)
    }
}

/// The disk id of an unmanaged disk's `vhd.uri` when it is in the configured
/// account (`container/blob`).
pub fn blob_id_of_uri(settings: &Settings, uri: &str) -> Option<String> {
    let storage = settings.storage.as_ref()?;
    let rest = uri.strip_prefix(&storage.endpoint)?.strip_prefix('/')?;
    let rest = rest.split('?').next().unwrap_or(rest);
    DiskRef::parse(rest).ok().map(|_| rest.to_string())
}

/// The credential the host uses for the blob.
fn credential(storage: &Storage) -> BlobCredential {
    match &storage.credential {
        StorageCredential::SharedKey(key) => {
            BlobCredential::SharedKey((storage.account.clone(), key.clone()))
        }
        StorageCredential::Sas(sas) => BlobCredential::SasToken(sas.clone()),
    }
}

/// The API's record of a disk. Without storage settings the locator has an
/// empty URL (and property `locator` says why); `disk-endpoint` needs them.
pub fn record(
    settings: &Settings,
    id: &str,
    disk_ref: Option<&DiskRef>,
    name: &str,
    capacity: u64,
    unit: Option<u32>,
    with_credential: Option<&Storage>,
) -> Disk {
    let mut properties = vec![("name".to_string(), name.to_string())];
    let url = match (disk_ref, settings.storage.as_ref()) {
        (Some(r), Some(storage)) => {
            let (container, blob) = r.blob_path(storage);
            properties.push(("blob".to_string(), format!("{container}/{blob}")));
            r.url(storage)
        }
        (None, _) => id.to_string(),
        (Some(_), None) => {
            properties.push((
                "locator".to_string(),
                "unresolved: set storage-account (and blob-endpoint) to map disks to page blobs"
                    .to_string(),
            ));
            String::new()
        }
    };
    if matches!(disk_ref, Some(DiskRef::Managed(_))) {
        properties.push(("managed-disk".to_string(), "true".to_string()));
    }
    Disk {
        id: id.to_string(),
        label: name.to_string(),
        capacity_bytes: capacity,
        sector_size: 512,
        controller: None,
        unit,
        format: DiskFormat::VhdFixed,
        locator: DiskLocator::Blob(BlobEndpoint {
            url,
            credential: with_credential
                .map(credential)
                .unwrap_or(BlobCredential::None),
        }),
        properties,
    }
}

/// A disk's page blob, checked to exist and to be a VHD-fixed page blob;
/// the blob and its disk capacity.
fn open<'a>(
    storage: &'a Storage,
    transport: &'a Transport,
    id: &str,
) -> Result<(DiskRef, PageBlob<'a>, crate::blob::Properties), Error> {
    let disk_ref = DiskRef::parse(id)?;
    let (container, blob_name) = disk_ref.blob_path(storage);
    let blob = PageBlob::new(storage, transport, &container, &blob_name);
    let props = blob.properties(None)?.ok_or_else(|| {
        Error::not_found(format!(
            "disk `{}` ({}) does not exist",
            id.escape_debug(),
            blob.label()
        ))
    })?;
    if props.blob_type != "PageBlob" {
        return Err(Error::invalid_input(format!(
            "disk `{}` is a {}, not a page blob: Azure disks are page blobs",
            id.escape_debug(),
            if props.blob_type.is_empty() {
                "blob of unknown type"
            } else {
                &props.blob_type
            }
        )));
    }
    if props.length < FOOTER_LEN || props.length % 512 != 0 {
        return Err(Error::invalid_input(format!(
            "disk `{}` ({}) has {} bytes: a VHD-fixed disk is whole sectors plus a 512-byte footer",
            id.escape_debug(),
            blob.label(),
            props.length
        )));
    }
    Ok((disk_ref, blob, props))
}

/// `disk-endpoint`: the blob URL and credential the host reads (or writes)
/// the disk through. The footer must say `conectix` (a VHD); `read-write`
/// on a leased blob (the VHD of a VM that still holds it) is a `conflict`.
pub fn endpoint(
    settings: &Settings,
    transport: &Transport,
    id: &str,
    access: Access,
) -> Result<Disk, Error> {
    let storage = settings.storage("disk-endpoint")?;
    if let Some((disk_id, stamp)) = id.rsplit_once('@') {
        return snapshot_endpoint(settings, storage, transport, disk_id, stamp, access);
    }
    let (disk_ref, blob, props) = open(storage, transport, id)?;
    let footer = blob.read(None, props.length - FOOTER_LEN, FOOTER_LEN)?;
    if !footer.starts_with(b"conectix") {
        return Err(Error::invalid_input(format!(
            "disk `{}` ({}) does not end with a VHD footer: Azure disks are VHD fixed",
            id.escape_debug(),
            blob.label()
        )));
    }
    let access_name = match access {
        Access::Read => "read",
        Access::ReadWrite => "read-write",
    };
    if access == Access::ReadWrite && props.lease_status == "locked" {
        return Err(Error::conflict(format!(
            "disk `{}` ({}) is leased, as Azure leases the disk of a VM that holds it: power the \
             VM off with deallocate (or delete it) before asking for read-write access",
            id.escape_debug(),
            blob.label()
        )));
    }
    let mut disk = record(
        settings,
        id,
        Some(&disk_ref),
        &disk_ref.blob_stem(),
        props.length - FOOTER_LEN,
        None,
        Some(storage),
    );
    disk.properties
        .push(("access".to_string(), access_name.to_string()));
    Ok(disk)
}

/// `disk-endpoint` of `DISK-ID@SNAPSHOT-ID`: the blob snapshot, read only
/// (its URL carries `snapshot=`; the host's page-blob device opens such a
/// URL read-only).
fn snapshot_endpoint(
    settings: &Settings,
    storage: &Storage,
    transport: &Transport,
    disk_id: &str,
    stamp: &str,
    access: Access,
) -> Result<Disk, Error> {
    if access != Access::Read {
        return Err(Error::invalid_input(format!(
            "snapshot `{}` of disk `{}` is read-only: ask for read access",
            stamp.escape_debug(),
            disk_id.escape_debug()
        )));
    }
    let (disk_ref, blob, _) = open(storage, transport, disk_id)?;
    let capacity = existing_snapshot(&blob, disk_id, stamp)?;
    let id = format!("{disk_id}@{stamp}");
    let name = format!("{}@{stamp}", disk_ref.blob_stem());
    let mut disk = record(
        settings,
        &id,
        Some(&disk_ref),
        &name,
        capacity,
        None,
        Some(storage),
    );
    if let DiskLocator::Blob(endpoint) = &mut disk.locator {
        let separator = if endpoint.url.contains('?') { '&' } else { '?' };
        endpoint.url = format!(
            "{}{separator}snapshot={}",
            endpoint.url,
            crate::blob::query_encode(stamp)
        );
    }
    disk.properties
        .push(("snapshot-of".to_string(), disk_id.to_string()));
    disk.properties
        .push(("access".to_string(), "read".to_string()));
    Ok(disk)
}

/// The API's record of snapshot `stamp` of the disk named `disk_name`
/// (`create-snapshot` and `get-vm` describe a snapshot alike).
fn snapshot_record(disk_name: &str, stamp: &str, parent_id: Option<String>) -> Snapshot {
    Snapshot {
        id: stamp.to_string(),
        name: format!("{disk_name}@{stamp}"),
        description: String::new(),
        created_at: iso8601_millis(stamp).unwrap_or(0),
        parent_id,
        quiesced: false,
    }
}

/// The snapshots of the page blob `disk_ref` maps to, oldest first, each
/// the child of the one before (the chain `create-snapshot` builds). A blob
/// or container that does not exist has none.
pub fn snapshots_of(
    storage: &Storage,
    transport: &Transport,
    disk_ref: &DiskRef,
) -> Result<Vec<Snapshot>, Error> {
    let (container, blob_name) = disk_ref.blob_path(storage);
    let blob = PageBlob::new(storage, transport, &container, &blob_name);
    let name = disk_ref.blob_stem();
    let mut parent: Option<String> = None;
    Ok(blob
        .snapshots()?
        .into_iter()
        .map(|stamp| {
            let record = snapshot_record(&name, &stamp, parent.take());
            parent = Some(stamp);
            record
        })
        .collect())
}

/// `create-snapshot`: a blob snapshot (crash-consistent); its id is the
/// `x-ms-snapshot` timestamp, its parent the blob's newest snapshot before it.
pub fn create_snapshot(
    settings: &Settings,
    transport: &Transport,
    id: &str,
) -> Result<Snapshot, Error> {
    let storage = settings.storage("create-snapshot")?;
    let (disk_ref, blob, _) = open(storage, transport, id)?;
    let parent = blob.snapshots()?.pop();
    let stamp = blob.snapshot()?;
    Ok(snapshot_record(&disk_ref.blob_stem(), &stamp, parent))
}

/// A snapshot of `blob` that must exist; `not-found` naming it otherwise
/// (an id that is no `x-ms-snapshot` timestamp cannot exist either). Its
/// disk capacity.
fn existing_snapshot(blob: &PageBlob<'_>, disk_id: &str, snapshot: &str) -> Result<u64, Error> {
    let missing = || {
        Error::not_found(format!(
            "snapshot `{}` of disk `{}` does not exist (snapshot ids are the x-ms-snapshot \
             timestamps create-snapshot returns)",
            snapshot.escape_debug(),
            disk_id.escape_debug()
        ))
    };
    if iso8601_millis(snapshot).is_none() {
        return Err(missing());
    }
    let props = blob.properties(Some(snapshot))?.ok_or_else(missing)?;
    Ok(props.length.saturating_sub(FOOTER_LEN))
}

/// `delete-snapshot`.
pub fn delete_snapshot(
    settings: &Settings,
    transport: &Transport,
    id: &str,
    snapshot: &str,
) -> Result<(), Error> {
    let storage = settings.storage("delete-snapshot")?;
    let (_, blob, _) = open(storage, transport, id)?;
    existing_snapshot(&blob, id, snapshot)?;
    if !blob.delete_snapshot(snapshot)? {
        return Err(Error::not_found(format!(
            "snapshot `{}` of disk `{}` does not exist",
            snapshot.escape_debug(),
            id.escape_debug()
        )));
    }
    Ok(())
}

/// Sorts, clips to `[0, limit)` and merges touching ranges.
pub fn merge(mut ranges: Vec<(u64, u64)>, limit: u64) -> Vec<(u64, u64)> {
    ranges.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        let end = end.min(limit);
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// `ranges` widened to whole [`BLOCK_SIZE`] blocks, merged, clipped to `limit`.
pub fn to_blocks(ranges: &[(u64, u64)], limit: u64) -> Vec<(u64, u64)> {
    let widened = ranges
        .iter()
        .map(|(s, e)| {
            (
                s / BLOCK_SIZE * BLOCK_SIZE,
                e.div_ceil(BLOCK_SIZE) * BLOCK_SIZE,
            )
        })
        .collect();
    merge(widened, limit)
}

/// The blocks inside `candidates` whose SHA-256 differs between the two
/// snapshots, as merged byte ranges; reads at most [`READ_CHUNK`] per request.
fn compare_blocks(
    blob: &PageBlob<'_>,
    base: &str,
    target: &str,
    candidates: &[(u64, u64)],
) -> Result<Vec<(u64, u64)>, Error> {
    let mut changed = Vec::new();
    for &(start, end) in candidates {
        let mut at = start;
        while at < end {
            let length = (end - at).min(READ_CHUNK);
            let old = blob.read(Some(base), at, length)?;
            let new = blob.read(Some(target), at, length)?;
            let step = BLOCK_SIZE as usize;
            for (i, (a, b)) in old.chunks(step).zip(new.chunks(step)).enumerate() {
                if sha256(a) != sha256(b) {
                    let offset = at + i as u64 * BLOCK_SIZE;
                    changed.push((offset, offset + a.len() as u64));
                }
            }
            at += length;
        }
    }
    Ok(merge(changed, u64::MAX))
}

/// `changed-ranges`, by the configured method (logged, and named in the
/// answer): `service-diff` trusts `Get Page Ranges` with `prevsnapshot`
/// (written and cleared ranges alike); `page-range-compare` reads the
/// 64 KiB blocks either snapshot has pages in and keeps those whose digests
/// differ. Ranges stop at the disk's end (the footer is not the disk's).
pub fn changed_ranges(
    settings: &Settings,
    transport: &Transport,
    id: &str,
    base: &str,
    target: &str,
) -> Result<ChangeSet, Error> {
    let storage = settings.storage("changed-ranges")?;
    let (_, blob, _) = open(storage, transport, id)?;
    existing_snapshot(&blob, id, base)?;
    let capacity = existing_snapshot(&blob, id, target)?;
    let method = settings.change_tracking.method();
    log::info(&format!(
        "changed-ranges of disk {id} from {base} to {target}: method {method} (config \
         change-tracking)"
    ));
    let ranges = if base == target {
        Vec::new()
    } else {
        match settings.change_tracking {
            ChangeTracking::ServiceDiff => {
                merge(blob.page_ranges(Some(target), Some(base))?, capacity)
            }
            ChangeTracking::Compare => {
                let mut both = blob.page_ranges(Some(base), None)?;
                both.extend(blob.page_ranges(Some(target), None)?);
                let candidates = to_blocks(&merge(both, capacity), capacity);
                compare_blocks(&blob, base, target, &candidates)?
            }
        }
    };
    Ok(ChangeSet {
        ranges: ranges
            .into_iter()
            .map(|(offset, end)| ByteRange {
                offset,
                length: end - offset,
            })
            .collect(),
        method: method.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_ids() {
        assert_eq!(
            DiskRef::parse("disks/vm1/os.vhd").unwrap(),
            DiskRef::Blob {
                container: "disks".into(),
                blob: "vm1/os.vhd".into()
            }
        );
        assert!(DiskRef::parse("Disks/os.vhd").is_err());
        assert!(DiskRef::parse("disks/../x").is_err());
        assert!(DiskRef::parse("disks").is_err());
        let managed = DiskRef::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/web-os",
        )
        .unwrap();
        assert_eq!(managed.blob_stem(), "web-os");
        assert!(
            DiskRef::parse(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/x"
            )
            .is_err()
        );
    }

    #[test]
    fn ranges_merge_and_widen() {
        assert_eq!(
            merge(vec![(10, 20), (0, 5), (5, 8), (30, 50)], 40),
            vec![(0, 8), (10, 20), (30, 40)]
        );
        assert_eq!(
            to_blocks(&[(4096, 4608), (65_000, 66_000)], 1 << 20),
            vec![(0, 131_072)]
        );
        assert_eq!(to_blocks(&[(0, 10)], 1000), vec![(0, 1000)]);
    }
}
