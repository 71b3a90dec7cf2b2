//! The per-AG B+trees with short (32-bit) block pointers: the free-space trees
//! (bnobt) and the reference-count tree (refcountbt). We only ever need all
//! their records, so this walks a whole tree depth-first and hands back the
//! leaf records.
//!
//! The walk is bounded three ways against damaged trees: a child must be one
//! level below its parent (so depth is at most the root level), a block is
//! visited once, and the number of blocks read is at most the AG's size.

use crate::checksum::verify_crc;
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;
use std::collections::BTreeSet;

/// The header of a v5 short-pointer B+tree block.
pub const HEADER_LEN: usize = 56;
/// Offset of the block's CRC.
pub const CRC_OFFSET: usize = 52;
/// Deeper trees than this do not exist (`XFS_BTREE_MAXLEVELS`).
pub const MAX_LEVELS: u32 = 9;

/// The shape of one kind of AG B+tree.
pub struct TreeKind {
    /// Its block magic, e.g. "AB3B".
    pub magic: u32,
    /// Name for error messages.
    pub name: &'static str,
    /// Bytes per leaf record.
    pub rec_len: usize,
    /// Bytes per key in interior blocks.
    pub key_len: usize,
}

/// The by-block-number free-space tree.
pub const BNOBT: TreeKind = TreeKind {
    magic: 0x4142_3342,
    name: "free-space B+tree (bnobt)",
    rec_len: 8,
    key_len: 8,
};

/// The by-size free-space tree.
pub const CNTBT: TreeKind = TreeKind {
    magic: 0x4142_3343,
    name: "free-space B+tree (cntbt)",
    rec_len: 8,
    key_len: 8,
};

/// The reverse-mapping tree (rmapbt): keys are low/high pairs.
pub const RMAPBT: TreeKind = TreeKind {
    magic: 0x524d_4233,
    name: "reverse-mapping B+tree",
    rec_len: 24,
    key_len: 40,
};

/// The inode B+tree: one record per chunk of 64 inodes.
pub const INOBT: TreeKind = TreeKind {
    magic: 0x4941_4233,
    name: "inode B+tree",
    rec_len: 16,
    key_len: 4,
};

/// The free-inode B+tree: the inode B+tree's records with free inodes.
pub const FINOBT: TreeKind = TreeKind {
    magic: 0x4649_4233,
    name: "free-inode B+tree",
    rec_len: 16,
    key_len: 4,
};

/// The reference-count tree (reflink).
pub const REFCOUNTBT: TreeKind = TreeKind {
    magic: 0x5233_4643,
    name: "reference-count B+tree",
    rec_len: 12,
    key_len: 4,
};

/// Every leaf record of the tree of `kind` rooted at `root` (`levels` deep) in AG `agno`.
pub fn records(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    root: u32,
    levels: u32,
    kind: &TreeKind,
) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    find_in_leaves(dev, sb, agno, root, levels, kind, |leaf| {
        out.extend(leaf.records().map(<[u8]>::to_vec));
        None::<()>
    })?;
    Ok(out)
}

/// One leaf block of an AG B+tree, as [`find_in_leaves`] visits it.
pub struct LeafBlock {
    /// Its AG block number.
    pub agbno: u32,
    /// Its bytes (header and records).
    pub block: Vec<u8>,
    /// Its record count.
    pub numrecs: usize,
    /// Bytes per record.
    pub rec_len: usize,
}

impl LeafBlock {
    /// The records, in order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.block
            .get(HEADER_LEN..HEADER_LEN + self.numrecs * self.rec_len)
            .unwrap_or_default()
            .chunks_exact(self.rec_len)
    }
}

/// Visits the leaves of a tree in key order until `visit` returns `Some`.
pub fn find_in_leaves<T>(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    root: u32,
    levels: u32,
    kind: &TreeKind,
    mut visit: impl FnMut(&LeafBlock) -> Option<T>,
) -> Result<Option<T>, Error> {
    if levels == 0 || levels > MAX_LEVELS {
        return Err(corrupt(format!(
            "AG {agno}: {} has {levels} levels, expected 1..={MAX_LEVELS} (damaged AG header)",
            kind.name
        )));
    }
    let mut visited = BTreeSet::new();
    // (block, expected level)
    let mut stack = vec![(root, levels - 1)];
    while let Some((agbno, level)) = stack.pop() {
        if !visited.insert(agbno) || visited.len() > sb.ag_blocks as usize {
            return Err(corrupt(format!(
                "AG {agno}: {} block {agbno} is reached twice (damaged B+tree: a cycle)",
                kind.name
            )));
        }
        let block = read_block(dev, sb, agno, agbno, level, kind)?;
        let r = ByteReader::new(&block).named("xfs AG B+tree block");
        let numrecs = usize::from(r.be_u16_at(6)?);
        let space = block.len() - HEADER_LEN;
        if level == 0 {
            if numrecs > space / kind.rec_len {
                return Err(too_many(agno, agbno, numrecs, kind));
            }
            let leaf = LeafBlock {
                agbno,
                block,
                numrecs,
                rec_len: kind.rec_len,
            };
            if let Some(found) = visit(&leaf) {
                return Ok(Some(found));
            }
        } else {
            let max = space / (kind.key_len + 4);
            if numrecs > max || numrecs == 0 {
                return Err(too_many(agno, agbno, numrecs, kind));
            }
            let ptrs = HEADER_LEN + max * kind.key_len;
            // Pushed in reverse so leaves come out in key order.
            for i in (0..numrecs).rev() {
                stack.push((r.be_u32_at(ptrs + i * 4)?, level - 1));
            }
        }
    }
    Ok(None)
}

fn too_many(agno: u32, agbno: u32, numrecs: usize, kind: &TreeKind) -> Error {
    corrupt(format!(
        "AG {agno}: {} block {agbno} claims {numrecs} records, more than fit (damaged B+tree)",
        kind.name
    ))
}

/// Reads and checks one tree block.
pub fn read_block(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agbno: u32,
    level: u32,
    kind: &TreeKind,
) -> Result<Vec<u8>, Error> {
    let offset = sb.ag_block_to_byte(agno, agbno).ok_or_else(|| {
        corrupt(format!(
            "AG {agno}: {} points to block {agbno}, outside the AG's {} blocks (damaged B+tree)",
            kind.name, sb.ag_blocks
        ))
    })?;
    let block = dev.read_vec(offset, sb.block_size as usize)?;
    let r = ByteReader::new(&block).named("xfs AG B+tree block");
    let magic = r.be_u32_at(0)?;
    if magic != kind.magic {
        return Err(corrupt(format!(
            "AG {agno}: {} block {agbno}: magic 0x{magic:08x}, expected 0x{:08x} (damaged B+tree)",
            kind.name, kind.magic
        )));
    }
    verify_crc(&block, CRC_OFFSET, || {
        format!("AG {agno}: {} block {agbno}", kind.name)
    })?;
    let found = u32::from(r.be_u16_at(4)?);
    if found != level {
        return Err(corrupt(format!(
            "AG {agno}: {} block {agbno} is at level {found}, expected {level} (damaged B+tree)",
            kind.name
        )));
    }
    Ok(block)
}
