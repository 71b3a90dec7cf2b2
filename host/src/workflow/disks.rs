//! Disks as the workflows see them: where an adapter's disk is on the host
//! (a local path, or a datastore file under a master target's mount), moving
//! one through the real data path with progress on the job, and a disk's
//! fingerprint for the split-brain guard.

use crate::disk::BlockDevice;
use crate::jobs::{StepContext, StepError};
use crate::plugin::adapter::{Disk, DiskLocator};
use crate::store::DatastoreMount;
use crate::sync::Mode;
use crate::sync::source::SyncSpec;
use crate::sync::target::CheckpointPolicy;
use crate::sync::{self, DEFAULT_BLOCK_SIZE};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `disk` is on this host. A datastore file is found under the mount
/// of its datastore (the master target's view of the site's datastores).
pub fn host_path(disk: &Disk, mounts: &[DatastoreMount]) -> Result<PathBuf, StepError> {
    match &disk.locator {
        DiskLocator::LocalPath(path) => Ok(PathBuf::from(path)),
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
            Ok(mount.path.join(relative))
        }
        DiskLocator::Blob(_) => Err(StepError::Failed(format!(
            "disk {} is a page blob: this version's workflows move disks between host paths \
             (lab and datastore files); page-blob sources and targets are read by the data path \
             only through `homeward sync` so far",
            disk.id
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
/// process, gRPC on loopback), forwarding progress to the job. A rerun after
/// a crash is a delta: the target keeps every block written before.
pub fn sync_disk(
    ctx: &StepContext,
    source: &Path,
    target: &Path,
    mode: Mode,
) -> Result<Moved, StepError> {
    let spec = SyncSpec {
        source: source.to_path_buf(),
        source_format: None,
        target_path: target.display().to_string(),
        target_format: None,
        mode,
        block_size: DEFAULT_BLOCK_SIZE,
        compress: true,
        in_use: None,
    };
    let (progress, mut updates) = tokio::sync::watch::channel(sync::proto::Progress::default());
    let label = format!(
        "{} → {}",
        file_name(source),
        file_name(target)
    );
    let outcome = ctx.runtime().block_on(async {
        let forward = async {
            while updates.changed().await.is_ok() {
                let p: sync::proto::Progress = updates.borrow_and_update().clone();
                ctx.progress(p.bytes_scanned, p.bytes_total, &label);
            }
        };
        let sync = sync::local::run(spec, None, CheckpointPolicy::default(), progress);
        // The forwarder ends when the sync drops its progress sender.
        let (result, ()) = tokio::join!(sync, forward);
        result
    });
    let outcome = outcome.map_err(|e| {
        let message = format!("syncing {} to {}: {e}", source.display(), target.display());
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The data path's whole-disk digest of the image at `path` (BLAKE3 over
/// the fast digests of its 1 MiB blocks, as both roles compute it at the end
/// of a sync), hex: what a recovery point records, and what the split-brain
/// guard compares with the one recorded when a side stopped being primary.
pub fn fingerprint(path: &Path) -> Result<String, StepError> {
    let device = crate::disk::image::open(path, false, None).map_err(|e| {
        StepError::Failed(format!("cannot open {} to fingerprint it: {e}", path.display()))
    })?;
    fingerprint_device(device.as_ref())
        .map_err(|e| StepError::Failed(format!("reading {}: {e}", path.display())))
}

fn fingerprint_device(device: &dyn BlockDevice) -> std::io::Result<String> {
    let capacity = device.capacity();
    let blocks = capacity.div_ceil(DEFAULT_BLOCK_SIZE as u64);
    let mut buffer = vec![0u8; DEFAULT_BLOCK_SIZE];
    let mut leaves = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
    for index in 0..blocks {
        let len = sync::block_len(capacity, DEFAULT_BLOCK_SIZE, index);
        device.read_at(&mut buffer[..len], index * DEFAULT_BLOCK_SIZE as u64)?;
        leaves.push(sync::digest::fast(&buffer[..len]));
    }
    Ok(hex::encode(sync::digest::whole_disk(leaves)))
}
