//! A file's logical-to-physical block map, whichever way the inode stores it
//! (extent tree or indirect blocks), and reading a byte range through it.

use crate::inode::I_BLOCK_LEN;
use crate::volume::Volume;
use homeward_sdk::Error;

/// A newly encoded block map: the inode's `i_block`, and the map's own
/// blocks (extent leaves, indirect blocks) as `(block, bytes)` to write.
pub type EncodedMap = ([u8; I_BLOCK_LEN], Vec<(u64, Vec<u8>)>);

/// Logical blocks `logical..logical + len` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub logical: u64,
    pub len: u64,
    /// First physical block.
    pub physical: u64,
    /// An uninitialised extent: allocated, but reads as zeros.
    pub uninit: bool,
}

/// The data runs of a file (sorted by logical block, holes left out) and the
/// blocks of the map itself (extent-tree nodes, indirect blocks).
#[derive(Debug, Clone, Default)]
pub struct BlockMap {
    pub runs: Vec<Run>,
    pub meta: Vec<u64>,
}

impl BlockMap {
    /// Appends one mapped block, extending the last run when contiguous.
    pub fn push_block(&mut self, logical: u64, physical: u64) {
        if let Some(last) = self.runs.last_mut()
            && !last.uninit
            && last.logical + last.len == logical
            && last.physical + last.len == physical
        {
            last.len += 1;
            return;
        }
        self.runs.push(Run {
            logical,
            len: 1,
            physical,
            uninit: false,
        });
    }

    /// Every block the file holds, data and map, as `(first, count)` runs.
    pub fn all_blocks(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self.runs.iter().map(|r| (r.physical, r.len)).collect();
        out.extend(self.meta.iter().map(|&b| (b, 1)));
        out
    }

    /// The physical blocks of logical blocks `0..n`, when the map has no
    /// holes and no uninitialised extents there (directories).
    pub fn contiguous_physical(&self) -> Option<Vec<u64>> {
        let mut out = Vec::new();
        for run in &self.runs {
            if run.uninit || run.logical != out.len() as u64 {
                return None;
            }
            out.extend(run.physical..run.physical + run.len);
        }
        Some(out)
    }

    /// Reads bytes `offset..offset + len` of a file through the map; holes and
    /// uninitialised extents read as zeros.
    pub fn read(&self, vol: &Volume, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; len];
        let bs = u64::from(vol.sb.block_size);
        let end = offset.saturating_add(len as u64);
        for run in self.runs.iter().filter(|r| !r.uninit) {
            let physical = run.physical;
            let run_start = run.logical.saturating_mul(bs);
            let run_end = run_start.saturating_add(run.len.saturating_mul(bs));
            let from = run_start.max(offset);
            let to = run_end.min(end);
            if from >= to {
                continue;
            }
            let disk = physical
                .checked_mul(bs)
                .and_then(|p| p.checked_add(from - run_start))
                .ok_or_else(|| Error::invalid_input("ext4: a block map points past 2^64 bytes"))?;
            let dst = out
                .get_mut((from - offset) as usize..(to - offset) as usize)
                .ok_or_else(|| Error::internal("ext4: read range arithmetic"))?;
            vol.dev.read_at(disk, dst)?;
        }
        Ok(out)
    }
}
