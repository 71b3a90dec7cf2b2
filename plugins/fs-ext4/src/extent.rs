//! Extent trees (`EXTENTS_FL` inodes): walking one of any depth into a
//! [`BlockMap`], checking node checksums, and encoding a new tree (depth 0 in
//! the inode, or depth 1 with leaf blocks) for the writer.

use crate::checksum::{crc32c_update, inode_seed};
use crate::inode::{I_BLOCK_LEN, Inode};
use crate::map::{BlockMap, EncodedMap, Run};
use crate::superblock::{put_u16, put_u32};
use crate::volume::Volume;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use std::collections::HashSet;

const MAGIC: u16 = 0xf30a;
/// The kernel's limit on tree depth.
const MAX_DEPTH: u16 = 5;
/// Longest initialised extent.
pub const MAX_LEN: u64 = 32768;
const HEADER: usize = 12;
const ENTRY: usize = 12;
/// Extents (or index entries) the root in `i_block` holds.
const ROOT_ENTRIES: usize = (I_BLOCK_LEN - HEADER) / ENTRY;

/// The block map of an extent-mapped inode.
pub fn read_map(vol: &Volume, inode: &Inode) -> Result<BlockMap, Error> {
    let mut walk = Walk {
        vol,
        inode,
        map: BlockMap::default(),
        visited: HashSet::new(),
    };
    walk.node(inode.i_block(), None)?;
    Ok(walk.map)
}

struct Walk<'a> {
    vol: &'a Volume,
    inode: &'a Inode,
    map: BlockMap,
    /// Tree blocks seen: a block referenced twice is a damaged (cyclic or
    /// shared) tree, and the set bounds the walk by the volume's size.
    visited: HashSet<u64>,
}

impl Walk<'_> {
    fn damaged(&self, what: String) -> Error {
        Error::invalid_input(format!(
            "ext4: inode {}: {what} (damaged extent tree)",
            self.inode.ino
        ))
    }

    fn node(&mut self, bytes: &[u8], expected_depth: Option<u16>) -> Result<(), Error> {
        let r = ByteReader::new(bytes).named("ext4 extent node");
        let magic = r.le_u16_at(0)?;
        if magic != MAGIC {
            return Err(self.damaged(format!(
                "extent header magic 0x{magic:04x}, expected 0x{MAGIC:04x}"
            )));
        }
        let entries = usize::from(r.le_u16_at(2)?);
        let max = usize::from(r.le_u16_at(4)?);
        let depth = r.le_u16_at(6)?;
        if depth > MAX_DEPTH || expected_depth.is_some_and(|d| d != depth) {
            return Err(self.damaged(format!(
                "node depth {depth}, expected {}",
                expected_depth.map_or("at most 5".to_string(), |d| d.to_string())
            )));
        }
        if entries > max || HEADER + max * ENTRY > bytes.len() {
            return Err(self.damaged(format!(
                "node claims {entries} of {max} entries in {} bytes",
                bytes.len()
            )));
        }
        let blocks_count = self.vol.sb.blocks_count;
        for i in 0..entries {
            let at = HEADER + i * ENTRY;
            let logical = u64::from(r.le_u32_at(at)?);
            if depth == 0 {
                let raw_len = u64::from(r.le_u16_at(at + 4)?);
                let start =
                    (u64::from(r.le_u16_at(at + 6)?) << 32) | u64::from(r.le_u32_at(at + 8)?);
                let (len, initialised) = if raw_len > MAX_LEN {
                    (raw_len - MAX_LEN, false)
                } else {
                    (raw_len, true)
                };
                if len == 0 || start.checked_add(len).is_none_or(|end| end > blocks_count) {
                    return Err(self.damaged(format!(
                        "extent of {len} blocks at block {start} (the volume has {blocks_count})"
                    )));
                }
                if let Some(last) = self.map.runs.last()
                    && last.logical + last.len > logical
                {
                    return Err(self.damaged(format!(
                        "extent for logical block {logical} overlaps the one before"
                    )));
                }
                self.map.runs.push(Run {
                    logical,
                    len,
                    physical: start,
                    uninit: !initialised,
                });
            } else {
                let child =
                    (u64::from(r.le_u16_at(at + 8)?) << 32) | u64::from(r.le_u32_at(at + 4)?);
                if child >= blocks_count || child < u64::from(self.vol.sb.first_data_block) {
                    return Err(self.damaged(format!("index points at block {child}")));
                }
                if !self.visited.insert(child) {
                    return Err(self.damaged(format!("block {child} is referenced twice")));
                }
                self.map.meta.push(child);
                let block = self.vol.read_block(child)?;
                self.verify_tail(&block, child)?;
                self.node(&block, Some(depth - 1))?;
            }
        }
        Ok(())
    }

    fn verify_tail(&self, block: &[u8], number: u64) -> Result<(), Error> {
        let sb = &self.vol.sb;
        if !sb.has_metadata_csum() {
            return Ok(());
        }
        let r = ByteReader::new(block).named("ext4 extent block");
        let max = usize::from(r.le_u16_at(4)?);
        let tail = HEADER + max * ENTRY;
        let stored = r.le_u32_at(tail)?;
        let seed = inode_seed(sb.csum_seed, self.inode.ino, self.inode.generation());
        let computed = crc32c_update(seed, r.slice_at(0, tail)?);
        if stored != computed {
            return Err(Error::invalid_input(format!(
                "ext4: inode {}: extent block {number}: checksum 0x{stored:08x}, computed \
                 0x{computed:08x} (damaged extent block)",
                self.inode.ino
            )));
        }
        Ok(())
    }
}

/// One extent of a new tree.
#[derive(Debug, Clone, Copy)]
struct Extent {
    logical: u32,
    physical: u64,
    len: u16,
}

/// Splits physical runs (logically contiguous from block 0) into extents.
fn extents_of(runs: &[(u64, u64)]) -> Result<Vec<Extent>, Error> {
    let mut out = Vec::new();
    let mut logical = 0u64;
    for &(physical, len) in runs {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MAX_LEN);
            out.push(Extent {
                logical: u32::try_from(logical).map_err(|_| {
                    Error::unsupported("ext4: files over 2^32 blocks cannot be written")
                })?,
                physical: physical + done,
                len: n as u16,
            });
            logical += n;
            done += n;
        }
    }
    Ok(out)
}

/// Leaf blocks a new tree over `runs` needs (0: the extents fit the inode).
pub fn leaf_blocks_needed(runs: &[(u64, u64)], block_size: u32) -> Result<usize, Error> {
    let count = extents_of(runs)?.len();
    if count <= ROOT_ENTRIES {
        return Ok(0);
    }
    let leaves = count.div_ceil(leaf_capacity(block_size));
    if leaves > ROOT_ENTRIES {
        return Err(Error::unsupported(format!(
            "ext4: the free space is too fragmented to write this file ({count} extents); free \
             some space or write a smaller file"
        )));
    }
    Ok(leaves)
}

fn leaf_capacity(block_size: u32) -> usize {
    (block_size as usize - HEADER) / ENTRY
}

fn header(buf: &mut [u8], entries: usize, max: usize, depth: u16) {
    put_u16(buf, 0, MAGIC);
    put_u16(buf, 2, entries as u16);
    put_u16(buf, 4, max as u16);
    put_u16(buf, 6, depth);
}

fn put_extent(buf: &mut [u8], at: usize, e: &Extent) {
    put_u32(buf, at, e.logical);
    put_u16(buf, at + 4, e.len);
    put_u16(buf, at + 6, (e.physical >> 32) as u16);
    put_u32(buf, at + 8, e.physical as u32);
}

/// A new tree over `runs`: the inode's `i_block` and the leaf blocks to
/// write (`leaves` are the blocks [`leaf_blocks_needed`] asked for).
pub fn encode(
    vol: &Volume,
    inode: &Inode,
    runs: &[(u64, u64)],
    leaves: &[u64],
) -> Result<EncodedMap, Error> {
    let extents = extents_of(runs)?;
    let mut root = [0u8; I_BLOCK_LEN];
    if leaves.is_empty() {
        header(&mut root, extents.len(), ROOT_ENTRIES, 0);
        for (i, e) in extents.iter().enumerate() {
            put_extent(&mut root, HEADER + i * ENTRY, e);
        }
        return Ok((root, Vec::new()));
    }
    let bs = vol.sb.block_size;
    let capacity = leaf_capacity(bs);
    let chunks: Vec<&[Extent]> = extents.chunks(capacity).collect();
    if chunks.len() != leaves.len() {
        return Err(Error::internal(
            "ext4: extent leaf count changed while writing",
        ));
    }
    header(&mut root, leaves.len(), ROOT_ENTRIES, 1);
    let seed = inode_seed(vol.sb.csum_seed, inode.ino, inode.generation());
    let mut blocks = Vec::new();
    for (i, (chunk, &leaf)) in chunks.iter().zip(leaves).enumerate() {
        let at = HEADER + i * ENTRY;
        put_u32(&mut root, at, chunk.first().map_or(0, |e| e.logical));
        put_u32(&mut root, at + 4, leaf as u32);
        put_u16(&mut root, at + 8, (leaf >> 32) as u16);
        let mut block = vec![0u8; bs as usize];
        header(&mut block, chunk.len(), capacity, 0);
        for (j, e) in chunk.iter().enumerate() {
            put_extent(&mut block, HEADER + j * ENTRY, e);
        }
        if vol.sb.has_metadata_csum() {
            let tail = HEADER + capacity * ENTRY;
            let crc = crc32c_update(seed, block.get(..tail).unwrap_or_default());
            put_u32(&mut block, tail, crc);
        }
        blocks.push((leaf, block));
    }
    Ok((root, blocks))
}
