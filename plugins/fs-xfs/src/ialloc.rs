//! Allocating an inode for a new file, from a chunk that already exists.
//!
//! Each AG records its inode chunks (64 inodes each) in the inode B+tree
//! (inobt), one record per chunk with a bitmap of free inodes; the free-inode
//! B+tree (finobt) repeats the records that have free inodes; the AGI counts
//! them and the superblock's `sb_ifree` sums them. `mkfs.xfs` and the kernel
//! initialise whole chunks, so a free slot already holds a valid (free)
//! inode. We take the first free slot and update those four places.
//!
//! Only in-place changes are done: the inobt record changes in its leaf (its
//! key does not change); the finobt record changes, or is removed when its
//! last free inode goes, as long as that leaves the leaf non-empty and no
//! interior key changes. Allocating a new chunk (block allocation plus new
//! records) is `unsupported`.
//!
//! Freeing an inode ([`free`]) is the reverse: the inobt record gets its bit
//! back, the finobt record changes or (when the chunk was full) is inserted
//! where it needs no split and no key change. A chunk left wholly free stays
//! allocated, as with the kernel's `ikeep`.

use crate::agbtree::{self, FINOBT, HEADER_LEN, INOBT, LeafBlock};
use crate::checksum::{update_crc, verify_crc};
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

/// "XAGI".
const AGI_MAGIC: u32 = 0x5841_4749;
/// Offset of `agi_crc`.
const AGI_CRC_OFFSET: usize = 312;
/// Offset of `agi_freecount`.
const AGI_FREECOUNT: usize = 28;
/// Bytes per inobt/finobt record.
const REC_LEN: usize = 16;

/// An inode taken from a chunk, and the metadata that records it.
pub struct InodeAllocation {
    /// The new inode's number.
    pub ino: u64,
    /// (byte offset, bytes) to write.
    writes: Vec<(u64, Vec<u8>)>,
}

impl InodeAllocation {
    /// Writes the inobt, finobt and AGI changes; the caller then updates the
    /// superblock's free inode count ([`Superblock::take_free_counts`]).
    pub fn commit(self, dev: &dyn Device) -> Result<(), Error> {
        for (offset, bytes) in self.writes {
            dev.write_at(offset, &bytes)?;
        }
        Ok(())
    }
}

/// One chunk record, in either layout.
#[derive(Debug, Clone, Copy)]
struct ChunkRecord {
    start_ino: u32,
    /// Bit `i` set: inode `i` of the chunk is not allocated on disk (sparse
    /// chunks); one bit of `ir_holemask` covers 4 inodes.
    holes: u64,
    free_count: u32,
    free: u64,
}

impl ChunkRecord {
    fn decode(rec: &[u8], sparse: bool) -> Result<ChunkRecord, Error> {
        let r = ByteReader::new(rec).named("xfs inode B+tree record");
        let (holes, free_count) = if sparse {
            let mask = r.be_u16_at(4)?;
            let holes = (0..16)
                .filter(|bit| mask & (1 << bit) != 0)
                .fold(0u64, |acc, bit| acc | (0xf << (bit * 4)));
            (holes, u32::from(r.u8_at(7)?))
        } else {
            (0, r.be_u32_at(4)?)
        };
        Ok(ChunkRecord {
            start_ino: r.be_u32_at(0)?,
            holes,
            free_count,
            free: r.be_u64_at(8)?,
        })
    }

    /// The first free inode that exists on disk.
    fn first_free(&self) -> Option<u32> {
        if self.free_count == 0 {
            return None;
        }
        (0..64).find(|&i| (self.free & !self.holes) & (1u64 << i) != 0)
    }

    /// The record bytes after giving back slot `slot`.
    fn give(&self, rec: &[u8], slot: u32, sparse: bool) -> Result<Vec<u8>, Error> {
        let count = self
            .free_count
            .checked_add(1)
            .ok_or_else(|| Error::internal("xfs: free inode count overflows"))?;
        Self::rewrite(rec, self.free | (1u64 << slot), count, sparse)
    }

    /// The record bytes after taking slot `slot`.
    fn take(&self, rec: &[u8], slot: u32, sparse: bool) -> Result<Vec<u8>, Error> {
        let count = self
            .free_count
            .checked_sub(1)
            .ok_or_else(|| Error::internal("xfs: free inode count underflows"))?;
        Self::rewrite(rec, self.free & !(1u64 << slot), count, sparse)
    }

    /// `rec` with its free mask and free count replaced (the count is one
    /// byte in the sparse-inode record format, four otherwise).
    fn rewrite(rec: &[u8], free: u64, count: u32, sparse: bool) -> Result<Vec<u8>, Error> {
        let mut out = rec.to_vec();
        let mut field = |at: usize, bytes: &[u8]| -> Result<(), Error> {
            out.get_mut(at..at + bytes.len())
                .ok_or_else(|| Error::internal("xfs: inode record field outside the record"))?
                .copy_from_slice(bytes);
            Ok(())
        };
        if sparse {
            let count = u8::try_from(count)
                .map_err(|_| Error::internal("xfs: free inode count overflows"))?;
            field(7, &[count])?;
        } else {
            field(4, &count.to_be_bytes())?;
        }
        field(8, &free.to_be_bytes())?;
        Ok(out)
    }
}

/// Plans taking one free inode, from AG `first_ag` first.
pub fn plan(dev: &dyn Device, sb: &Superblock, first_ag: u32) -> Result<InodeAllocation, Error> {
    let sparse = sb.has_sparse_inodes();
    for i in 0..sb.ag_count {
        let agno = ((u64::from(first_ag) + u64::from(i)) % u64::from(sb.ag_count)) as u32;
        let (agi_offset, agi) = read_agi(dev, sb, agno)?;
        let r = ByteReader::new(&agi).named("xfs AGI");
        let free_count = r.be_u32_at(AGI_FREECOUNT)?;
        if free_count == 0 {
            continue;
        }
        let (root, levels) = (r.be_u32_at(20)?, r.be_u32_at(24)?);
        let found = agbtree::find_in_leaves(dev, sb, agno, root, levels, &INOBT, |leaf| {
            leaf.records()
                .enumerate()
                .find_map(|(index, rec)| {
                    let chunk = ChunkRecord::decode(rec, sparse).ok()?;
                    Some((index, chunk, chunk.first_free()?))
                })
                .map(|(index, chunk, slot)| (leaf_location(leaf), index, chunk, slot))
        })?;
        let Some(((leaf_agbno, leaf_block), index, chunk, slot)) = found else {
            return Err(corrupt(format!(
                "AG {agno}: the AGI counts {free_count} free inodes but the inode B+tree has none \
                 (damaged inode metadata; run xfs_repair)"
            )));
        };
        let agino = chunk.start_ino.checked_add(slot).ok_or_else(|| {
            corrupt(format!(
                "AG {agno}: inode chunk at {} overflows",
                chunk.start_ino
            ))
        })?;
        let agino_bits = u32::from(sb.ag_block_log) + u32::from(sb.inop_block_log);
        let ino = (u64::from(agno) << agino_bits) | u64::from(agino);
        let mut writes = Vec::new();
        let leaf = replace_record(&leaf_block, index, |rec| chunk.take(rec, slot, sparse))?;
        writes.push((block_offset(sb, agno, leaf_agbno)?, leaf));
        if sb.has_finobt() {
            writes.push(finobt_change(dev, sb, agno, &r, &chunk, slot, sparse)?);
        }
        let mut agi = agi.clone();
        agi.get_mut(AGI_FREECOUNT..AGI_FREECOUNT + 4)
            .ok_or_else(|| Error::internal("xfs: AGI field outside the sector"))?
            .copy_from_slice(&(free_count - 1).to_be_bytes());
        update_crc(&mut agi, AGI_CRC_OFFSET)?;
        writes.push((agi_offset, agi));
        return Ok(InodeAllocation { ino, writes });
    }
    Err(crate::write::needs_allocation(
        "creating a file when no existing inode chunk has a free inode (a new chunk)",
    ))
}

/// Marks inode `ino` free again: its inobt record, the finobt (the record
/// changes, or is inserted when the chunk had no free inode) and the AGI.
/// Writes through `dev` (an [`crate::overlay::Overlay`] when planning); the
/// caller updates `sb_ifree`.
pub fn free(dev: &dyn Device, sb: &Superblock, ino: u64) -> Result<(), Error> {
    let sparse = sb.has_sparse_inodes();
    let agino_bits = u32::from(sb.ag_block_log) + u32::from(sb.inop_block_log);
    if agino_bits >= 32 {
        return Err(corrupt(format!(
            "superblock: {agino_bits} bits of AG inode number (damaged superblock)"
        )));
    }
    let agno = u32::try_from(ino >> agino_bits)
        .ok()
        .filter(|&a| a < sb.ag_count)
        .ok_or_else(|| corrupt(format!("inode {ino} is outside the file system")))?;
    let agino = (ino & ((1u64 << agino_bits) - 1)) as u32;
    let (agi_offset, agi) = read_agi(dev, sb, agno)?;
    let r = ByteReader::new(&agi).named("xfs AGI");
    let free_count = r.be_u32_at(AGI_FREECOUNT)?;
    let (root, levels) = (r.be_u32_at(20)?, r.be_u32_at(24)?);
    let found = agbtree::find_in_leaves(dev, sb, agno, root, levels, &INOBT, |leaf| {
        leaf.records()
            .enumerate()
            .find_map(|(index, rec)| {
                let chunk = ChunkRecord::decode(rec, sparse).ok()?;
                (chunk.start_ino <= agino && u64::from(agino) < u64::from(chunk.start_ino) + 64)
                    .then_some((index, chunk, rec.to_vec()))
            })
            .map(|(index, chunk, rec)| (leaf_location(leaf), index, chunk, rec))
    })?;
    let Some(((leaf_agbno, leaf_block), index, chunk, rec)) = found else {
        return Err(corrupt(format!(
            "inode {ino} is in no chunk of the inode B+tree (damaged inode metadata)"
        )));
    };
    let slot = agino - chunk.start_ino;
    let bit = 1u64 << slot;
    if chunk.free & bit != 0 || chunk.holes & bit != 0 || chunk.free_count >= 64 {
        return Err(corrupt(format!(
            "inode {ino} is in use but the inode B+tree says it is free or absent (damaged inode \
             metadata; run xfs_repair)"
        )));
    }
    let new_rec = chunk.give(&rec, slot, sparse)?;
    let leaf = replace_record(&leaf_block, index, |_| Ok(new_rec.clone()))?;
    dev.write_at(block_offset(sb, agno, leaf_agbno)?, &leaf)?;
    if sb.has_finobt() {
        let (offset, block) = finobt_give(dev, sb, agno, &r, &chunk, &new_rec, sparse)?;
        dev.write_at(offset, &block)?;
    }
    let mut agi = agi.clone();
    let count = free_count
        .checked_add(1)
        .ok_or_else(|| corrupt(format!("AG {agno}: the AGI free inode count overflows")))?;
    agi.get_mut(AGI_FREECOUNT..AGI_FREECOUNT + 4)
        .ok_or_else(|| Error::internal("xfs: AGI field outside the sector"))?
        .copy_from_slice(&count.to_be_bytes());
    update_crc(&mut agi, AGI_CRC_OFFSET)?;
    dev.write_at(agi_offset, &agi)
}

/// The finobt leaf after chunk `chunk` gains a free inode: its record
/// becomes `new_rec`, or `new_rec` is inserted when the chunk had none free
/// (as long as the leaf has room and no interior key changes).
fn finobt_give(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agi: &ByteReader<'_>,
    chunk: &ChunkRecord,
    new_rec: &[u8],
    sparse: bool,
) -> Result<(u64, Vec<u8>), Error> {
    let (root, levels) = (agi.be_u32_at(328)?, agi.be_u32_at(332)?);
    if chunk.free_count > 0 {
        let found = agbtree::find_in_leaves(dev, sb, agno, root, levels, &FINOBT, |leaf| {
            leaf.records()
                .position(|rec| {
                    ChunkRecord::decode(rec, sparse).is_ok_and(|c| c.start_ino == chunk.start_ino)
                })
                .map(|index| (leaf_location(leaf), index))
        })?;
        let Some(((agbno, block), index)) = found else {
            return Err(corrupt(format!(
                "AG {agno}: inode chunk {} has free inodes but no free-inode B+tree record \
                 (damaged inode metadata; run xfs_repair)",
                chunk.start_ino
            )));
        };
        let leaf = replace_record(&block, index, |_| Ok(new_rec.to_vec()))?;
        return Ok((block_offset(sb, agno, agbno)?, leaf));
    }
    // Insert: into the last leaf whose first record sorts before the chunk.
    let mut leaves: Vec<(u32, Vec<u8>, usize, Vec<u32>)> = Vec::new();
    agbtree::find_in_leaves(dev, sb, agno, root, levels, &FINOBT, |leaf| {
        let starts = leaf
            .records()
            .filter_map(|rec| ChunkRecord::decode(rec, sparse).ok())
            .map(|c| c.start_ino)
            .collect();
        leaves.push((leaf.agbno, leaf.block.clone(), leaf.numrecs, starts));
        None::<()>
    })?;
    let pos = leaves
        .iter()
        .rposition(|(_, _, _, starts)| starts.first().is_some_and(|&s| s < chunk.start_ino))
        .unwrap_or(0);
    let Some((agbno, block, numrecs, starts)) = leaves.get(pos) else {
        return Err(corrupt(format!(
            "AG {agno}: the free-inode B+tree has no leaf"
        )));
    };
    if starts.contains(&chunk.start_ino) {
        return Err(corrupt(format!(
            "AG {agno}: inode chunk {} has no free inode but a free-inode B+tree record \
             (damaged inode metadata; run xfs_repair)",
            chunk.start_ino
        )));
    }
    let index = starts
        .iter()
        .position(|&s| s > chunk.start_ino)
        .unwrap_or(*numrecs);
    let capacity = (block.len() - HEADER_LEN) / REC_LEN;
    if *numrecs >= capacity || (index == 0 && levels > 1) {
        return Err(crate::write::needs_allocation(
            "freeing an inode whose free-inode B+tree record would split a leaf or change a key",
        ));
    }
    Ok((
        block_offset(sb, agno, *agbno)?,
        insert_record(block, index, *numrecs, new_rec)?,
    ))
}

/// The leaf with `rec` inserted at `index` (of `numrecs`), and its CRC.
fn insert_record(block: &[u8], index: usize, numrecs: usize, rec: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = block.to_vec();
    let start = HEADER_LEN + index * REC_LEN;
    let end = HEADER_LEN + (numrecs + 1) * REC_LEN;
    let records = out
        .get_mut(start..end)
        .ok_or_else(|| Error::internal("xfs: inode record outside its leaf"))?;
    records.copy_within(..records.len() - REC_LEN, REC_LEN);
    records
        .get_mut(..REC_LEN)
        .ok_or_else(|| Error::internal("xfs: inode record outside its leaf"))?
        .copy_from_slice(rec.get(..REC_LEN).unwrap_or(&[0; REC_LEN]));
    let count =
        u16::try_from(numrecs + 1).map_err(|_| Error::internal("xfs: record count overflows"))?;
    out.get_mut(6..8)
        .ok_or_else(|| Error::internal("xfs: B+tree header outside its block"))?
        .copy_from_slice(&count.to_be_bytes());
    update_crc(&mut out, agbtree::CRC_OFFSET)?;
    Ok(out)
}

/// The finobt leaf after the chunk's record changes or goes away.
fn finobt_change(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agi: &ByteReader<'_>,
    chunk: &ChunkRecord,
    slot: u32,
    sparse: bool,
) -> Result<(u64, Vec<u8>), Error> {
    let (root, levels) = (agi.be_u32_at(328)?, agi.be_u32_at(332)?);
    let found = agbtree::find_in_leaves(dev, sb, agno, root, levels, &FINOBT, |leaf| {
        leaf.records()
            .position(|rec| {
                ChunkRecord::decode(rec, sparse).is_ok_and(|c| c.start_ino == chunk.start_ino)
            })
            .map(|index| (leaf_location(leaf), index, leaf.numrecs))
    })?;
    let Some(((agbno, block), index, numrecs)) = found else {
        return Err(corrupt(format!(
            "AG {agno}: inode chunk {} has free inodes but no free-inode B+tree record \
             (damaged inode metadata; run xfs_repair)",
            chunk.start_ino
        )));
    };
    let leaf = if chunk.free_count > 1 {
        replace_record(&block, index, |rec| chunk.take(rec, slot, sparse))?
    } else if numrecs > 1 && (levels == 1 || index > 0) {
        remove_record(&block, index, numrecs)?
    } else {
        return Err(crate::write::needs_allocation(
            "taking the last free inode of a free-inode B+tree leaf (its keys would change)",
        ));
    };
    Ok((block_offset(sb, agno, agbno)?, leaf))
}

fn leaf_location(leaf: &LeafBlock) -> (u32, Vec<u8>) {
    (leaf.agbno, leaf.block.clone())
}

fn block_offset(sb: &Superblock, agno: u32, agbno: u32) -> Result<u64, Error> {
    sb.ag_block_to_byte(agno, agbno).ok_or_else(|| {
        corrupt(format!(
            "AG {agno}: inode B+tree block {agbno} is outside the AG"
        ))
    })
}

/// The leaf with record `index` replaced by `change(record)`, and its CRC.
fn replace_record(
    block: &[u8],
    index: usize,
    change: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    let mut out = block.to_vec();
    let at = HEADER_LEN + index * REC_LEN;
    let slot = out
        .get_mut(at..at + REC_LEN)
        .ok_or_else(|| Error::internal("xfs: inode record outside its leaf"))?;
    let new = change(slot)?;
    slot.copy_from_slice(&new);
    update_crc(&mut out, agbtree::CRC_OFFSET)?;
    Ok(out)
}

/// The leaf without record `index` (of `numrecs`), and its CRC.
fn remove_record(block: &[u8], index: usize, numrecs: usize) -> Result<Vec<u8>, Error> {
    let mut out = block.to_vec();
    let start = HEADER_LEN + index * REC_LEN;
    let end = HEADER_LEN + numrecs * REC_LEN;
    let records = out
        .get_mut(start..end)
        .ok_or_else(|| Error::internal("xfs: inode record outside its leaf"))?;
    records.copy_within(REC_LEN.., 0);
    let last = records.len().saturating_sub(REC_LEN);
    if let Some(tail) = records.get_mut(last..) {
        tail.fill(0);
    }
    let count =
        u16::try_from(numrecs - 1).map_err(|_| Error::internal("xfs: record count overflows"))?;
    out.get_mut(6..8)
        .ok_or_else(|| Error::internal("xfs: B+tree header outside its block"))?
        .copy_from_slice(&count.to_be_bytes());
    update_crc(&mut out, agbtree::CRC_OFFSET)?;
    Ok(out)
}

/// Reads and checks the AGI of AG `agno`: (byte offset, sector).
fn read_agi(dev: &dyn Device, sb: &Superblock, agno: u32) -> Result<(u64, Vec<u8>), Error> {
    let ag_start = sb
        .ag_block_to_byte(agno, 0)
        .ok_or_else(|| corrupt(format!("AG {agno} is outside the file system")))?;
    let offset = ag_start.saturating_add(2 * u64::from(sb.sect_size));
    let sector = dev.read_vec(offset, usize::from(sb.sect_size))?;
    let magic = ByteReader::new(&sector).named("xfs AGI").be_u32_at(0)?;
    if magic != AGI_MAGIC {
        return Err(corrupt(format!(
            "AG {agno}: AGI magic 0x{magic:08x}, expected 0x{AGI_MAGIC:08x} (damaged AG header)"
        )));
    }
    verify_crc(&sector, AGI_CRC_OFFSET, || format!("AG {agno}: AGI"))?;
    Ok((offset, sector))
}
