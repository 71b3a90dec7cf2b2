//! Disks as the workflows see them: where an adapter's disk is (a local
//! path, a datastore file under a master target's mount, or a cloud disk's
//! page blob), moving one through the real data path with progress on the
//! job, and a disk's fingerprint for the split-brain guard.
//!
//! A [`DiskEndpoint`] may hold a credential (a page blob's key or SAS), so
//! steps never put one in their output or the store: they record its
//! [`DiskEndpoint::address`] and ask the adapter for the endpoint again
//! when they need the bytes (`common::replica_endpoints`).

use crate::disk::BlockDevice;
use crate::jobs::{StepContext, StepError};
use crate::plugin::adapter::{Disk, DiskLocator};
use crate::store::DatastoreMount;
use crate::sync::Mode;
use crate::sync::source::SyncSpec;
use crate::sync::target::CheckpointPolicy;
use crate::sync::{self, DEFAULT_BLOCK_SIZE, DiskEndpoint};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `disk`'s bytes are. A datastore file is found under the mount of
/// its datastore (the master target's view of the site's datastores); a
/// blob is reached with the credential the adapter gave with it.
pub fn endpoint(disk: &Disk, mounts: &[DatastoreMount]) -> Result<DiskEndpoint, StepError> {
    match &disk.locator {
        DiskLocator::LocalPath(path) => Ok(DiskEndpoint::Path(PathBuf::from(path))),
        DiskLocator::DatastoreFile((datastore, relative)) => {
            let mount = mounts
                .iter()
                .find(|m| m.datastore.eq_ignore_ascii_case(datastore))
                .ok_or_else(|| {
                    StepError::Failed(format!(
                        "disk {} is on datastore `{datastore}`, which no master target of the site \
                         mounts; register the master target with that datastore's mount",
                        disk.id
                    ))
                })?;
            let relative = Path::new(relative);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(StepError::Failed(format!(
                    "disk {} names `{}` on datastore `{datastore}`, a path outside the datastore",
                    disk.id,
                    relative.display()
                )));
            }
            Ok(DiskEndpoint::Path(mount.path.join(relative)))
        }
        DiskLocator::Blob(blob) => Ok(DiskEndpoint::Blob(blob.clone())),
    }
}

/// Where `disk` is on this host, for callers that need a file (a disk the
/// adapter names as a page blob is refused: it has no host path).
pub fn host_path(disk: &Disk, mounts: &[DatastoreMount]) -> Result<PathBuf, StepError> {
    match endpoint(disk, mounts)? {
        DiskEndpoint::Path(path) => Ok(path),
        blob @ DiskEndpoint::Blob(_) => Err(StepError::Failed(format!(
            "disk {} is the page blob {}, which has no path on this host",
            disk.id,
            blob.address()
        ))),
    }
}

/// What one disk sync did (a step's output).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Moved {
    /// Bytes of the disk.
    pub bytes_total: u64,
    /// Bytes sent over the data path (after skipping unchanged blocks and compression).
    pub bytes_sent: u64,
    /// Blocks sent and skipped.
    pub blocks_sent: u64,
    /// Blocks found equal on both sides.
    pub blocks_skipped: u64,
    /// Wall time.
    pub seconds: f64,
    /// Whole-disk BLAKE3 digest both sides agreed on (hex).
    pub digest: String,
    /// `full` or `delta`.
    pub mode: String,
}

/// Syncs `source` to `target` through the data path (both roles in this
/// process, gRPC on loopback), forwarding progress to the job. Either may be
/// a page blob (a cloud disk), which must exist. A rerun after a crash is a
/// delta: the target keeps every block written before.
pub fn sync_disk(
    ctx: &StepContext,
    source: &DiskEndpoint,
    target: &DiskEndpoint,
    mode: Mode,
) -> Result<Moved, StepError> {
    let spec = SyncSpec {
        source: source.clone(),
        source_format: None,
        target: target.clone(),
        target_format: None,
        mode,
        block_size: DEFAULT_BLOCK_SIZE,
        compress: true,
        in_use: None,
    };
    let (progress, mut updates) = tokio::sync::watch::channel(sync::proto::Progress::default());
    let label = format!("{} → {}", source.short_name(), target.short_name());
    let outcome = ctx.runtime().block_on(async {
        let forward = async {
            while updates.changed().await.is_ok() {
                let p: sync::proto::Progress = *updates.borrow_and_update();
                ctx.progress(p.bytes_scanned, p.bytes_total, &label);
            }
        };
        let sync = sync::local::run(spec, None, CheckpointPolicy::default(), progress);
        // The forwarder ends when the sync drops its progress sender.
        let (result, ()) = tokio::join!(sync, forward);
        result
    });
    let outcome = outcome.map_err(|e| {
        let message = format!("syncing {} to {}: {e}", source.address(), target.address());
        if e.is_transient() {
            StepError::Transient(message)
        } else {
            StepError::Failed(message)
        }
    })?;
    Ok(Moved {
        bytes_total: outcome.totals.bytes_total,
        bytes_sent: outcome.totals.bytes_sent,
        blocks_sent: outcome.totals.blocks_sent,
        blocks_skipped: outcome.totals.blocks_skipped,
        seconds: outcome.seconds,
        digest: hex::encode(outcome.root),
        mode: if mode == Mode::Full { "full" } else { "delta" }.to_string(),
    })
}

/// The data path's whole-disk digest of the disk at `disk` (a path or a
/// page blob; BLAKE3 over the fast digests of its 1 MiB blocks, as both
/// roles compute it at the end of a sync), hex: what a recovery point
/// records, and what the split-brain guard compares with the one recorded
/// when a side stopped being primary.
pub fn fingerprint(disk: impl Into<DiskEndpoint>) -> Result<String, StepError> {
    let disk = disk.into();
    let device = disk.open(false, None).map_err(|e| {
        StepError::Failed(format!(
            "cannot open {} to fingerprint it: {e}",
            disk.address()
        ))
    })?;
    fingerprint_device(device.as_ref())
        .map_err(|e| StepError::Failed(format!("reading {}: {e}", disk.address())))
}

fn fingerprint_device(device: &dyn BlockDevice) -> std::io::Result<String> {
    let capacity = device.capacity();
    let blocks = capacity.div_ceil(DEFAULT_BLOCK_SIZE as u64);
    // Blocks the device reports unallocated read as zeros: their digest is
    // known without reading them (a page blob answers this in one call).
    let allocated = device.allocated_ranges()?;
    let zero = sync::digest::ZeroLeaves::new(DEFAULT_BLOCK_SIZE);
    let mut buffer = vec![0u8; DEFAULT_BLOCK_SIZE];
    let mut leaves = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
    for index in 0..blocks {
        let len = sync::block_len(capacity, DEFAULT_BLOCK_SIZE, index);
        let offset = index * DEFAULT_BLOCK_SIZE as u64;
        let end = offset + len as u64;
        let hole = allocated
            .as_deref()
            .is_some_and(|ranges| !ranges.iter().any(|r| r.start < end && offset < r.end));
        if hole {
            leaves.push(zero.get(len));
            continue;
        }
        device.read_at(&mut buffer[..len], offset)?;
        leaves.push(sync::digest::fast(&buffer[..len]));
    }
    Ok(hex::encode(sync::digest::whole_disk(leaves)))
}
