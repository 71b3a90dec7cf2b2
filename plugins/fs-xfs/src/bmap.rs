//! The block map of a file's data fork: which file blocks live where.
//!
//! Extent records are packed 128-bit big-endian words (`xfs_bmbt_rec`): one
//! "unwritten" flag bit, a 54-bit file offset, a 52-bit file-system block and a
//! 21-bit length. An inode holds them either directly (extents format) or as
//! the root of a B+tree whose blocks ("BMA3") use 64-bit pointers.

use crate::checksum::verify_crc;
use crate::corrupt;
use crate::inode::{ForkFormat, Inode};
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;
use std::collections::BTreeSet;

/// Bytes per extent record.
pub const REC_LEN: usize = 16;
/// The most blocks one extent record can map (21 bits).
pub const MAX_EXTENT_BLOCKS: u64 = (1 << 21) - 1;
/// "BMA3".
const BMA3_MAGIC: u32 = 0x424d_4133;
/// The header of a v5 long-pointer B+tree block.
const BLOCK_HEADER_LEN: usize = 72;
/// Offset of the block's CRC.
const BLOCK_CRC_OFFSET: usize = 64;
/// Offset of the block's owner (the inode number).
const BLOCK_OWNER_OFFSET: usize = 56;
/// Deeper block-map trees than this do not exist.
const MAX_LEVELS: u16 = 9;

/// One mapping of file blocks to disk blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// First file block.
    pub file_block: u64,
    /// First file-system block (AG number in the high bits).
    pub disk_block: u64,
    /// Blocks.
    pub blocks: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

impl Extent {
    fn decode(rec: &[u8]) -> Result<Extent, Error> {
        let r = ByteReader::new(rec).named("xfs extent record");
        let hi = r.be_u64_at(0)?;
        let lo = r.be_u64_at(8)?;
        Ok(Extent {
            unwritten: hi >> 63 != 0,
            file_block: (hi & ((1 << 63) - 1)) >> 9,
            disk_block: ((hi & 0x1ff) << 43) | (lo >> 21),
            blocks: lo & MAX_EXTENT_BLOCKS,
        })
    }

    /// The packed on-disk record.
    pub fn encode(&self) -> [u8; 16] {
        let hi = (u64::from(self.unwritten) << 63)
            | ((self.file_block & ((1 << 54) - 1)) << 9)
            | (self.disk_block >> 43);
        let lo = (self.disk_block << 21) | (self.blocks & MAX_EXTENT_BLOCKS);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&hi.to_be_bytes());
        out[8..].copy_from_slice(&lo.to_be_bytes());
        out
    }

    /// One past the last file block.
    pub fn file_end(&self) -> u64 {
        self.file_block.saturating_add(self.blocks)
    }
}

/// The extents of `inode`'s data fork, in the order stored. Each one is
/// checked to lie inside the file system.
pub fn extents(dev: &dyn Device, sb: &Superblock, inode: &Inode) -> Result<Vec<Extent>, Error> {
    let fork = inode.data_fork();
    let list = match inode.format {
        ForkFormat::Extents => {
            let count = inode.nextents;
            if count > (fork.len() / REC_LEN) as u64 {
                return Err(corrupt(format!(
                    "inode {}: {count} extents do not fit its {}-byte data fork (damaged inode)",
                    inode.ino,
                    fork.len()
                )));
            }
            fork.chunks_exact(REC_LEN)
                .take(count as usize)
                .map(Extent::decode)
                .collect::<Result<Vec<_>, _>>()?
        }
        ForkFormat::Btree => btree_extents(dev, sb, inode)?,
        ForkFormat::Local | ForkFormat::Device => {
            return Err(corrupt(format!(
                "inode {}: data fork is {:?}, not a block map",
                inode.ino, inode.format
            )));
        }
    };
    for e in &list {
        let last = e.disk_block.checked_add(e.blocks.saturating_sub(1));
        // An extent never crosses an AG boundary, so its last block is in
        // the same AG as its first.
        let same_ag = last.is_some_and(|l| l >> sb.ag_block_log == e.disk_block >> sb.ag_block_log);
        let inside = e.blocks > 0
            && same_ag
            && sb.fsb_to_byte(e.disk_block).is_some()
            && last.and_then(|l| sb.fsb_to_byte(l)).is_some()
            && e.file_block.checked_add(e.blocks).is_some();
        if !inside {
            return Err(corrupt(format!(
                "inode {}: extent of {} blocks at file block {} maps to block {}, outside the \
                 file system (damaged block map)",
                inode.ino, e.blocks, e.file_block, e.disk_block
            )));
        }
    }
    Ok(list)
}

/// Walks the block-map B+tree rooted in the inode.
fn btree_extents(dev: &dyn Device, sb: &Superblock, inode: &Inode) -> Result<Vec<Extent>, Error> {
    let ino = inode.ino;
    let fork = inode.data_fork();
    let root = ByteReader::new(fork).named("xfs block-map root");
    let level = root.be_u16_at(0)?;
    let numrecs = usize::from(root.be_u16_at(2)?);
    // The root's capacity decides where its pointers start (`xfs_bmdr_maxrecs`).
    let root_max = fork.len().saturating_sub(4) / 16;
    if level == 0 || level > MAX_LEVELS || numrecs == 0 || numrecs > root_max {
        return Err(corrupt(format!(
            "inode {ino}: block-map B+tree root has level {level} and {numrecs} records \
             (at most {root_max}) (damaged inode)"
        )));
    }
    let mut stack = Vec::new();
    for i in (0..numrecs).rev() {
        stack.push((root.be_u64_at(4 + root_max * 8 + i * 8)?, level - 1));
    }
    let block_size = sb.block_size as usize;
    let node_max = (block_size - BLOCK_HEADER_LEN) / 16;
    let leaf_max = (block_size - BLOCK_HEADER_LEN) / REC_LEN;
    let mut visited = BTreeSet::new();
    let mut out = Vec::new();
    while let Some((fsb, level)) = stack.pop() {
        if !visited.insert(fsb) || visited.len() as u64 > sb.dblocks {
            return Err(corrupt(format!(
                "inode {ino}: block-map B+tree block {fsb} is reached twice (damaged B+tree: a cycle)"
            )));
        }
        let offset = sb.fsb_to_byte(fsb).ok_or_else(|| {
            corrupt(format!(
                "inode {ino}: block-map B+tree points to block {fsb}, outside the file system"
            ))
        })?;
        let block = dev.read_vec(offset, block_size)?;
        let r = ByteReader::new(&block).named("xfs block-map B+tree block");
        let magic = r.be_u32_at(0)?;
        if magic != BMA3_MAGIC {
            return Err(corrupt(format!(
                "inode {ino}: block-map B+tree block {fsb}: magic 0x{magic:08x}, expected \
                 0x{BMA3_MAGIC:08x} (damaged B+tree)"
            )));
        }
        verify_crc(&block, BLOCK_CRC_OFFSET, || {
            format!("inode {ino}: block-map B+tree block {fsb}")
        })?;
        let found_level = r.be_u16_at(4)?;
        let owner = r.be_u64_at(BLOCK_OWNER_OFFSET)?;
        let numrecs = usize::from(r.be_u16_at(6)?);
        if found_level != level || owner != ino {
            return Err(corrupt(format!(
                "inode {ino}: block-map B+tree block {fsb} is at level {found_level} owned by \
                 {owner}, expected level {level} owned by {ino} (damaged B+tree)"
            )));
        }
        if level == 0 {
            if numrecs > leaf_max {
                return Err(corrupt(format!(
                    "inode {ino}: block-map leaf {fsb} claims {numrecs} records, at most {leaf_max} fit"
                )));
            }
            for i in 0..numrecs {
                out.push(Extent::decode(
                    r.slice_at(BLOCK_HEADER_LEN + i * REC_LEN, REC_LEN)?,
                )?);
            }
        } else {
            if numrecs == 0 || numrecs > node_max {
                return Err(corrupt(format!(
                    "inode {ino}: block-map node {fsb} claims {numrecs} records, expected 1..={node_max}"
                )));
            }
            let ptrs = BLOCK_HEADER_LEN + node_max * 8;
            for i in (0..numrecs).rev() {
                stack.push((r.be_u64_at(ptrs + i * 8)?, level - 1));
            }
        }
    }
    Ok(out)
}

/// Reads bytes `[offset, offset + buf.len())` of the file mapped by
/// `extents` into `buf`, which the caller zero-filled: holes and unwritten
/// extents stay zero.
pub fn read_mapped(
    dev: &dyn Device,
    sb: &Superblock,
    extents: &[Extent],
    offset: u64,
    buf: &mut [u8],
) -> Result<(), Error> {
    let block = u64::from(sb.block_size);
    let end = offset.saturating_add(buf.len() as u64);
    for e in extents.iter().filter(|e| !e.unwritten) {
        let (Some(ext_start), Some(ext_end)) = (
            e.file_block.checked_mul(block),
            e.file_end().checked_mul(block),
        ) else {
            continue;
        };
        let from = ext_start.max(offset);
        let to = ext_end.min(end);
        if from >= to {
            continue;
        }
        let disk = sb
            .fsb_to_byte(e.disk_block)
            .and_then(|d| d.checked_add(from - ext_start))
            .ok_or_else(|| corrupt("extent maps outside the file system".to_string()))?;
        // `from - offset` and `to - offset` are within buf: from >= offset, to <= end.
        let dst = buf
            .get_mut((from - offset) as usize..(to - offset) as usize)
            .ok_or_else(|| Error::internal("xfs: mapped range outside the read buffer"))?;
        dev.read_at(disk, dst)?;
    }
    Ok(())
}
