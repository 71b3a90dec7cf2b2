//! Allocating blocks for a growing file, in the simple case only.
//!
//! Free space is recorded twice per AG: by block number (bnobt) and by size
//! (cntbt). Taking `n` blocks from the start of a free extent changes one
//! record in each tree; the AGF's free count and longest extent and the
//! superblock's free count (`sb_fdblocks`, which a clean mount trusts) follow.
//!
//! We only do it when it needs no B+tree reshaping: both trees must be a
//! single leaf (true of small and young file systems), the record counts
//! never grow (a free extent shrinks or disappears), and the AG keeps a
//! reserve of free blocks for the kernel's own metadata reservations. Before
//! changing anything we check that the two trees list the same extents, so
//! we never build on inconsistent free space. Anything else is `unsupported`.
//!
//! The caller writes the file's data first, then [`Allocation::commit`]s the
//! free-space changes, then writes the inode that points at the new blocks.
//!
//! Freeing ([`free`], for removed files) is the reverse, under the same
//! conditions: the extent joins its free neighbours, or becomes a new record
//! when the leaves have room.

use crate::agbtree::{self, BNOBT, CNTBT, HEADER_LEN, TreeKind};
use crate::agf::Agf;
use crate::checksum::update_crc;
use crate::corrupt;
use crate::rmap;
use crate::superblock::Superblock;
use crate::used::be32;
use homeward_sdk::Error;
use homeward_sdk::fs::Device;

/// Free blocks an AG keeps after we allocate: 1/32 of it, at least 64.
fn reserve(sb: &Superblock) -> u32 {
    (sb.ag_blocks / 32).max(64)
}

/// Blocks taken from one free extent, and the metadata that records it.
pub struct Allocation {
    pub agno: u32,
    pub agbno: u32,
    /// Blocks taken, for the superblock's free count.
    pub blocks: u32,
    /// (byte offset, bytes) to write once the data is in place.
    writes: Vec<(u64, Vec<u8>)>,
}

impl Allocation {
    /// The first allocated block as a file-system block number.
    pub fn fsb(&self, sb: &Superblock) -> u64 {
        (u64::from(self.agno) << sb.ag_block_log) | u64::from(self.agbno)
    }

    /// Adds the reverse-mapping change that records the new blocks' owner.
    pub fn record_mapping(
        &mut self,
        dev: &dyn Device,
        sb: &Superblock,
        change: &rmap::Change,
    ) -> Result<(), Error> {
        let agf = Agf::read(dev, sb, self.agno)?;
        self.writes
            .extend(rmap::plan(dev, sb, self.agno, &agf, change)?);
        Ok(())
    }

    /// Writes the free-space trees, the AGF and the rmapbt; the caller then
    /// updates the superblock's counters
    /// ([`Superblock::take_free_counts`]).
    pub fn commit(self, dev: &dyn Device) -> Result<(), Error> {
        for (offset, bytes) in self.writes {
            dev.write_at(offset, &bytes)?;
        }
        Ok(())
    }
}

/// Plans taking `blocks` contiguous blocks: at block `near` of AG `first_ag`
/// when that is the start of a large enough free extent, else from the start
/// of an AG's largest free extent, `first_ag` first; never in the AGs in
/// `skip`. The largest extent is
/// usually the untouched end of the AG, which keeps small holes for small
/// files and puts a new reverse mapping in the rmapbt's last leaf, the one
/// most likely to have room.
pub fn plan(
    dev: &dyn Device,
    sb: &Superblock,
    first_ag: u32,
    near: Option<u32>,
    blocks: u32,
    skip: &[u32],
) -> Result<Allocation, Error> {
    let mut why_not = format!("no AG has {blocks} contiguous free blocks to spare");
    for i in 0..sb.ag_count {
        let agno = ((u64::from(first_ag) + u64::from(i)) % u64::from(sb.ag_count)) as u32;
        if skip.contains(&agno) {
            continue;
        }
        let agf = Agf::read(dev, sb, agno)?;
        if agf.bno_levels != 1 || agf.cnt_levels != 1 {
            why_not = "the free-space B+trees have more than one level".to_string();
            continue;
        }
        if agf.free_blocks < blocks.saturating_add(reserve(sb)) {
            continue;
        }
        let bno = Leaf::read(dev, sb, agno, agf.bno_root, &BNOBT)?;
        let cnt = Leaf::read(dev, sb, agno, agf.cnt_root, &CNTBT)?;
        check_consistent(agno, &agf, &bno, &cnt)?;
        let near_here = near.filter(|_| agno == first_ag);
        let chosen = near_here
            .and_then(|b| {
                bno.records
                    .iter()
                    .find(|&&(start, len)| start == b && len >= blocks)
            })
            .or_else(|| cnt.records.last().filter(|&&(_, len)| len >= blocks))
            .copied();
        let Some((start, len)) = chosen else { continue };
        let rest = (start + blocks, len - blocks);
        let mut new_bno: Vec<(u32, u32)> = bno
            .records
            .iter()
            .copied()
            .filter(|&r| r != (start, len))
            .collect();
        let mut new_cnt: Vec<(u32, u32)> = cnt
            .records
            .iter()
            .copied()
            .filter(|&r| r != (start, len))
            .collect();
        if rest.1 > 0 {
            new_bno.push(rest);
            new_cnt.push(rest);
        }
        new_bno.sort_unstable();
        new_cnt.sort_unstable_by_key(|&(s, l)| (l, s));
        let longest = new_cnt.last().map_or(0, |&(_, l)| l);
        let writes = vec![
            (bno.offset, bno.with_records(&new_bno)?),
            (cnt.offset, cnt.with_records(&new_cnt)?),
            (
                agf.offset,
                agf.with_free_space(agf.free_blocks - blocks, longest)?,
            ),
        ];
        return Ok(Allocation {
            agno,
            agbno: start,
            blocks,
            writes,
        });
    }
    Err(crate::write::needs_allocation(&format!(
        "allocating {blocks} blocks ({why_not}, or too little free space)"
    )))
}

/// Gives `blocks` blocks at `agbno` of AG `agno` back to the free-space
/// trees (merged with the free extents on either side) and the AGF, writing
/// through `dev` (an [`crate::overlay::Overlay`] when planning). Only when
/// both trees are a single leaf with room for the record; the caller updates
/// the superblock ([`Superblock::give_free_counts`]).
pub fn free(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agbno: u32,
    blocks: u32,
) -> Result<(), Error> {
    let agf = Agf::read(dev, sb, agno)?;
    if agf.bno_levels != 1 || agf.cnt_levels != 1 {
        return Err(crate::write::needs_allocation(&format!(
            "freeing {blocks} blocks in AG {agno}, whose free-space B+trees have more than one level"
        )));
    }
    let bno = Leaf::read(dev, sb, agno, agf.bno_root, &BNOBT)?;
    let cnt = Leaf::read(dev, sb, agno, agf.cnt_root, &CNTBT)?;
    check_consistent(agno, &agf, &bno, &cnt)?;
    let end = u64::from(agbno) + u64::from(blocks);
    if blocks == 0 || end > u64::from(agf.length) {
        return Err(corrupt(format!(
            "AG {agno}: extent {agbno}+{blocks} to free runs past the AG's {} blocks",
            agf.length
        )));
    }
    if bno
        .records
        .iter()
        .any(|&(s, l)| u64::from(s) < end && u64::from(agbno) < u64::from(s) + u64::from(l))
    {
        return Err(corrupt(format!(
            "AG {agno}: blocks {agbno}+{blocks} of a file are already free (damaged free space or \
             block map; run xfs_repair)"
        )));
    }
    let left = bno
        .records
        .iter()
        .copied()
        .find(|&(s, l)| u64::from(s) + u64::from(l) == u64::from(agbno));
    let right = bno
        .records
        .iter()
        .copied()
        .find(|&(s, _)| u64::from(s) == end);
    let start = left.map_or(agbno, |(s, _)| s);
    let len = [left, right]
        .iter()
        .flatten()
        .try_fold(blocks, |acc, &(_, l)| acc.checked_add(l))
        .ok_or_else(|| corrupt(format!("AG {agno}: free extent length overflows")))?;
    let keep = |r: &(u32, u32)| Some(*r) != left && Some(*r) != right;
    let mut new_bno: Vec<(u32, u32)> = bno.records.iter().copied().filter(keep).collect();
    let mut new_cnt: Vec<(u32, u32)> = cnt.records.iter().copied().filter(keep).collect();
    new_bno.push((start, len));
    new_cnt.push((start, len));
    let capacity = (sb.block_size as usize - HEADER_LEN) / 8;
    if new_bno.len() > capacity {
        return Err(crate::write::needs_allocation(&format!(
            "freeing {blocks} blocks in AG {agno}, whose free-space leaf is full (a B+tree split)"
        )));
    }
    new_bno.sort_unstable();
    new_cnt.sort_unstable_by_key(|&(s, l)| (l, s));
    let longest = new_cnt.last().map_or(0, |&(_, l)| l);
    let free_blocks = agf
        .free_blocks
        .checked_add(blocks)
        .ok_or_else(|| corrupt(format!("AG {agno}: free block count overflows")))?;
    dev.write_at(bno.offset, &bno.with_records(&new_bno)?)?;
    dev.write_at(cnt.offset, &cnt.with_records(&new_cnt)?)?;
    dev.write_at(agf.offset, &agf.with_free_space(free_blocks, longest)?)
}

/// Fails unless both single-leaf trees list the same extents, inside the AG,
/// adding up to the AGF's free count.
fn check_consistent(agno: u32, agf: &Agf, bno: &Leaf, cnt: &Leaf) -> Result<(), Error> {
    for &(start, len) in &bno.records {
        if len == 0 || u64::from(start) + u64::from(len) > u64::from(agf.length) {
            return Err(corrupt(format!(
                "AG {agno}: free extent {start}+{len} runs past the AG's {} blocks \
                 (damaged free-space B+tree)",
                agf.length
            )));
        }
    }
    let mut by_block = bno.records.clone();
    let mut by_size = cnt.records.clone();
    by_block.sort_unstable();
    by_size.sort_unstable();
    if by_block != by_size
        || by_block.iter().map(|&(_, len)| u64::from(len)).sum::<u64>()
            != u64::from(agf.free_blocks)
    {
        return Err(corrupt(format!(
            "AG {agno}: the two free-space B+trees and the AGF disagree (damaged free space; run xfs_repair)"
        )));
    }
    Ok(())
}

/// A free-space B+tree that is a single leaf.
struct Leaf {
    offset: u64,
    block: Vec<u8>,
    records: Vec<(u32, u32)>,
}

impl Leaf {
    fn read(
        dev: &dyn Device,
        sb: &Superblock,
        agno: u32,
        root: u32,
        kind: &TreeKind,
    ) -> Result<Leaf, Error> {
        let block = agbtree::read_block(dev, sb, agno, root, 0, kind)?;
        let offset = sb.ag_block_to_byte(agno, root).ok_or_else(|| {
            corrupt(format!(
                "AG {agno}: {} root {root} is outside the AG",
                kind.name
            ))
        })?;
        let records = agbtree::records(dev, sb, agno, root, 1, kind)?
            .iter()
            .map(|rec| (be32(rec, 0), be32(rec, 4)))
            .collect();
        Ok(Leaf {
            offset,
            block,
            records,
        })
    }

    /// The leaf block holding `records` instead, with its CRC.
    fn with_records(&self, records: &[(u32, u32)]) -> Result<Vec<u8>, Error> {
        let mut block = self.block.clone();
        let count = u16::try_from(records.len())
            .map_err(|_| Error::internal("xfs: too many free-space records"))?;
        let body = block
            .get_mut(HEADER_LEN..)
            .ok_or_else(|| Error::internal("xfs: B+tree block shorter than its header"))?;
        body.fill(0);
        for (slot, &(start, len)) in body.chunks_exact_mut(8).zip(records) {
            slot[..4].copy_from_slice(&start.to_be_bytes());
            slot[4..].copy_from_slice(&len.to_be_bytes());
        }
        block
            .get_mut(6..8)
            .ok_or_else(|| Error::internal("xfs: B+tree block shorter than its header"))?
            .copy_from_slice(&count.to_be_bytes());
        update_crc(&mut block, agbtree::CRC_OFFSET)?;
        Ok(block)
    }
}
