//! Used extents: everything the free-space B+trees do not list as free.
//!
//! The by-block-number tree (bnobt) of each AG is the authority `xfs_db
//! freesp` reads too. Blocks on the AG free list (AGFL) are not in it but are
//! free as well (counted in `sb_fdblocks`, and `freesp` lists them): they
//! hold nothing until the allocator hands one to a B+tree, which then
//! rewrites it whole, so they need not be copied.

use crate::agbtree::{self, BNOBT};
use crate::agf::{self, Agf};
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::fs::{Device, merge_ranges};
use homeward_sdk::types::ByteRange;

/// Used byte ranges of the whole data section, sorted and merged.
pub fn used_extents(dev: &dyn Device, sb: &Superblock) -> Result<Vec<ByteRange>, Error> {
    let block = u64::from(sb.block_size);
    let mut used = Vec::new();
    for agno in 0..sb.ag_count {
        let agf = Agf::read(dev, sb, agno)?;
        let ag_start = u64::from(agno) * u64::from(sb.ag_blocks);
        let mut free = Vec::new();
        for rec in agbtree::records(dev, sb, agno, agf.bno_root, agf.bno_levels, &BNOBT)? {
            let start = be32(&rec, 0);
            let len = be32(&rec, 4);
            let end = u64::from(start) + u64::from(len);
            if len == 0 || end > u64::from(agf.length) {
                return Err(corrupt(format!(
                    "AG {agno}: free extent {start}+{len} runs past the AG's {} blocks \
                     (damaged free-space B+tree)",
                    agf.length
                )));
            }
            free.push((u64::from(start), end));
        }
        for agbno in agf::free_list(dev, sb, agno, &agf)? {
            if agbno >= agf.length {
                return Err(corrupt(format!(
                    "AG {agno}: free-list block {agbno} is outside the AG's {} blocks (damaged AGFL)",
                    agf.length
                )));
            }
            free.push((u64::from(agbno), u64::from(agbno) + 1));
        }
        free.sort_unstable();
        // The complement of the free extents within [0, length).
        let mut cursor = 0u64;
        for (start, end) in free {
            if start > cursor {
                used.push(((ag_start + cursor) * block, (start - cursor) * block));
            }
            cursor = cursor.max(end);
        }
        let length = u64::from(agf.length);
        if length > cursor {
            used.push(((ag_start + cursor) * block, (length - cursor) * block));
        }
    }
    Ok(merge_ranges(used))
}

/// A big-endian u32 from a record `agbtree` returned at its full length.
pub fn be32(rec: &[u8], at: usize) -> u32 {
    rec.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}
