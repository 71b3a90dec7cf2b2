//! The replica's whole-disk digest, kept up to date block by block.
//!
//! A point records the data path's whole-disk digest (BLAKE3 over the
//! xxh3-128 of every 1 MiB block, `sync::digest`). Hashing a 2 GiB disk at
//! every commit would dominate a cycle, so the journal keeps the per-block
//! digests (the *leaves*) of the latest point and rehashes only the blocks a
//! point wrote. The leaves are cached in a file next to the log; the cache is
//! only trusted when it names the latest point and passes its checksum, and is
//! rebuilt with one pass over the replica otherwise.

use super::frame::{checksum, u64_at};
use crate::disk::BlockDevice;
use crate::sync::digest::{self, FAST_LEN, Fast, ZeroLeaves};
use crate::sync::{DEFAULT_BLOCK_SIZE, block_len};
use std::io;
use std::path::Path;

const MAGIC: &[u8; 8] = b"HWLEAF01";

/// The block size of the whole-disk digest.
pub(crate) const BLOCK: usize = DEFAULT_BLOCK_SIZE;

/// Per-block digests of the replica.
#[derive(Debug, Clone)]
pub(crate) struct Leaves {
    capacity: u64,
    leaves: Vec<Fast>,
}

impl Leaves {
    /// Hashes every block of `device`; blocks the device reports
    /// unallocated are known to be zeros and are not read.
    pub(crate) fn compute(device: &dyn BlockDevice) -> io::Result<Leaves> {
        let capacity = device.capacity();
        let blocks = capacity.div_ceil(BLOCK as u64);
        let allocated = device.allocated_ranges()?;
        let zero = ZeroLeaves::new(BLOCK);
        let mut buffer = vec![0u8; BLOCK];
        let mut leaves = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
        for index in 0..blocks {
            let len = block_len(capacity, BLOCK, index);
            let offset = index * BLOCK as u64;
            let end = offset + len as u64;
            let hole = allocated
                .as_deref()
                .is_some_and(|ranges| !ranges.iter().any(|r| r.start < end && offset < r.end));
            if hole {
                leaves.push(zero.get(len));
            } else {
                device.read_at(&mut buffer[..len], offset)?;
                leaves.push(digest::fast(&buffer[..len]));
            }
        }
        Ok(Leaves { capacity, leaves })
    }

    /// The new digests of `blocks` as `device` holds them now, without
    /// changing `self` (a point applies them only once it is committed).
    pub(crate) fn rehash(
        &self,
        device: &dyn BlockDevice,
        blocks: impl IntoIterator<Item = u64>,
    ) -> io::Result<Vec<(u64, Fast)>> {
        let mut buffer = vec![0u8; BLOCK];
        let mut out = Vec::new();
        for index in blocks {
            let len = block_len(self.capacity, BLOCK, index);
            if len == 0 {
                continue;
            }
            device.read_at(&mut buffer[..len], index * BLOCK as u64)?;
            out.push((index, digest::fast(&buffer[..len])));
        }
        Ok(out)
    }

    /// The whole-disk digest, hex, with `changes` applied (without keeping them).
    pub(crate) fn digest_with(&self, changes: &[(u64, Fast)]) -> String {
        let mut changes = changes.iter().peekable();
        let leaves = self.leaves.iter().enumerate().map(|(i, leaf)| {
            let mut leaf = *leaf;
            while let Some((block, new)) = changes.next_if(|(block, _)| *block <= i as u64) {
                if *block == i as u64 {
                    leaf = *new;
                }
            }
            leaf
        });
        hex::encode(digest::whole_disk(leaves))
    }

    /// Keeps `changes`.
    pub(crate) fn apply(&mut self, changes: &[(u64, Fast)]) {
        for (block, leaf) in changes {
            if let Some(slot) = usize::try_from(*block)
                .ok()
                .and_then(|b| self.leaves.get_mut(b))
            {
                *slot = *leaf;
            }
        }
    }

    /// The whole-disk digest, hex.
    pub(crate) fn digest(&self) -> String {
        self.digest_with(&[])
    }

    /// Loads the cache at `path` if it describes point `seq` of a disk of
    /// `capacity` bytes and is whole.
    pub(crate) fn load(path: &Path, seq: u64, capacity: u64) -> Option<Leaves> {
        let bytes = std::fs::read(path).ok()?;
        let body_end = bytes.len().checked_sub(8)?;
        if bytes.get(..8)? != MAGIC
            || checksum(&[&bytes[..body_end]]) != u64_at(&bytes, body_end)?
            || u64_at(&bytes, 8)? != seq
            || u64_at(&bytes, 16)? != capacity
        {
            return None;
        }
        let blocks = usize::try_from(capacity.div_ceil(BLOCK as u64)).ok()?;
        let body = bytes.get(24..body_end)?;
        if body.len() != blocks.checked_mul(FAST_LEN)? {
            return None;
        }
        let leaves = body
            .chunks_exact(FAST_LEN)
            .map(|c| c.try_into().ok())
            .collect::<Option<Vec<Fast>>>()?;
        Some(Leaves { capacity, leaves })
    }

    /// Writes the cache for point `seq`. Not synced: a cache lost or torn
    /// in a crash fails its checks and is rebuilt.
    pub(crate) fn store(&self, path: &Path, seq: u64) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(32 + self.leaves.len() * FAST_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(&self.capacity.to_le_bytes());
        for leaf in &self.leaves {
            bytes.extend_from_slice(leaf);
        }
        let sum = checksum(&[&bytes]);
        bytes.extend_from_slice(&sum.to_le_bytes());
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)
    }
}

/// The digest blocks a byte range touches.
pub(crate) fn blocks_of(offset: u64, len: u64) -> std::ops::Range<u64> {
    if len == 0 {
        return 0..0;
    }
    offset / BLOCK as u64..(offset + len - 1) / BLOCK as u64 + 1
}
