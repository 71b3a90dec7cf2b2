//! Indirect block maps (ext2/ext3 style, inodes without `EXTENTS_FL`): 12
//! direct pointers, then single, double and triple indirect blocks. Reading
//! one into a [`BlockMap`], and building one for the writer.

use crate::inode::{I_BLOCK_LEN, Inode};
use crate::map::{BlockMap, EncodedMap};
use crate::superblock::put_u32;
use crate::volume::Volume;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use std::collections::HashSet;

const DIRECT: u64 = 12;

/// The block map of an indirect-mapped inode, up to its size.
pub fn read_map(vol: &Volume, inode: &Inode) -> Result<BlockMap, Error> {
    let bs = u64::from(vol.sb.block_size);
    let mut walk = Walk {
        vol,
        ino: inode.ino,
        per_block: bs / 4,
        blocks: inode.size().div_ceil(bs),
        map: BlockMap::default(),
        data_count: 0,
        visited: HashSet::new(),
    };
    let r = ByteReader::new(inode.i_block()).named("ext4 block map");
    for i in 0..DIRECT.min(walk.blocks) {
        let ptr = r.le_u32_at(i as usize * 4)?;
        if ptr != 0 {
            walk.data(i, ptr)?;
        }
    }
    let p = walk.per_block;
    let mut base = DIRECT;
    for level in 1..=3u32 {
        let ptr = r.le_u32_at((DIRECT as usize + level as usize - 1) * 4)?;
        if ptr != 0 {
            walk.indirect(level, ptr, base)?;
        }
        base = base.saturating_add(p.saturating_pow(level));
    }
    Ok(walk.map)
}

struct Walk<'a> {
    vol: &'a Volume,
    ino: u32,
    per_block: u64,
    /// Logical blocks the file's size covers; pointers past it are ignored.
    blocks: u64,
    map: BlockMap,
    data_count: u64,
    visited: HashSet<u64>,
}

impl Walk<'_> {
    fn damaged(&self, what: String) -> Error {
        Error::invalid_input(format!(
            "ext4: inode {}: {what} (damaged indirect block map)",
            self.ino
        ))
    }

    fn check(&self, ptr: u32) -> Result<u64, Error> {
        let block = u64::from(ptr);
        if block >= self.vol.sb.blocks_count || block < u64::from(self.vol.sb.first_data_block) {
            return Err(self.damaged(format!("pointer to block {block}")));
        }
        Ok(block)
    }

    fn data(&mut self, logical: u64, ptr: u32) -> Result<(), Error> {
        let block = self.check(ptr)?;
        // More data blocks than the volume has means pointers are shared.
        if self.data_count >= self.vol.sb.blocks_count {
            return Err(self.damaged("more data blocks than the volume holds".into()));
        }
        self.data_count += 1;
        self.map.push_block(logical, block);
        Ok(())
    }

    fn indirect(&mut self, level: u32, ptr: u32, base: u64) -> Result<(), Error> {
        if base >= self.blocks {
            return Ok(());
        }
        let block = self.check(ptr)?;
        if !self.visited.insert(block) {
            return Err(self.damaged(format!("indirect block {block} is referenced twice")));
        }
        self.map.meta.push(block);
        let bytes = self.vol.read_block(block)?;
        let r = ByteReader::new(&bytes).named("ext4 indirect block");
        let span = self.per_block.saturating_pow(level - 1);
        for j in 0..self.per_block {
            let child_base = base.saturating_add(j.saturating_mul(span));
            if child_base >= self.blocks {
                break;
            }
            let child = r.le_u32_at(j as usize * 4)?;
            if child == 0 {
                continue;
            }
            if level == 1 {
                self.data(child_base, child)?;
            } else {
                self.indirect(level - 1, child, child_base)?;
            }
        }
        Ok(())
    }
}

/// Indirect blocks a map of `n` data blocks needs.
pub fn meta_blocks_needed(n: u64, block_size: u32) -> Result<u64, Error> {
    let p = u64::from(block_size / 4);
    let mut rest = n.saturating_sub(DIRECT);
    let mut total = 0;
    for level in 1..=3u32 {
        let capacity = p.pow(level);
        let here = rest.min(capacity);
        if here > 0 {
            total += tree_blocks(here, level, p);
        }
        rest -= here;
    }
    if rest > 0 {
        return Err(Error::unsupported(
            "ext4: the file is too large for an indirect block map",
        ));
    }
    Ok(total)
}

/// Blocks of one indirect tree of `level` over `n` data blocks.
fn tree_blocks(n: u64, level: u32, p: u64) -> u64 {
    if level == 1 {
        return 1;
    }
    let span = p.pow(level - 1);
    let mut total = 1;
    let mut rest = n;
    while rest > 0 {
        let here = rest.min(span);
        total += tree_blocks(here, level - 1, p);
        rest -= here;
    }
    total
}

/// A new map over `data` (physical blocks in logical order): the inode's
/// `i_block` and the indirect blocks to write, taken from `meta` (as many as
/// [`meta_blocks_needed`] said).
pub fn encode(block_size: u32, data: &[u64], meta: &[u64]) -> Result<EncodedMap, Error> {
    let p = (block_size / 4) as usize;
    let mut root = [0u8; I_BLOCK_LEN];
    let mut out = Vec::new();
    let mut meta = meta.iter().copied();
    let direct = data.len().min(DIRECT as usize);
    for (i, &block) in data.iter().take(direct).enumerate() {
        put_u32(&mut root, i * 4, block as u32);
    }
    let mut rest = data.get(direct..).unwrap_or_default();
    for level in 1..=3u32 {
        if rest.is_empty() {
            break;
        }
        let here = rest.len().min(p.saturating_pow(level));
        let (chunk, tail) = rest.split_at(here);
        let top = build(chunk, level, p, block_size, &mut meta, &mut out)?;
        put_u32(
            &mut root,
            (DIRECT as usize + level as usize - 1) * 4,
            top as u32,
        );
        rest = tail;
    }
    Ok((root, out))
}

fn build(
    data: &[u64],
    level: u32,
    p: usize,
    block_size: u32,
    meta: &mut impl Iterator<Item = u64>,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> Result<u64, Error> {
    let block = meta
        .next()
        .ok_or_else(|| Error::internal("ext4: indirect block count changed while writing"))?;
    let mut bytes = vec![0u8; block_size as usize];
    let span = p.saturating_pow(level - 1);
    for (i, chunk) in data.chunks(span).enumerate() {
        let pointer = if level == 1 {
            chunk.first().copied().unwrap_or(0)
        } else {
            build(chunk, level - 1, p, block_size, meta, out)?
        };
        put_u32(&mut bytes, i * 4, pointer as u32);
    }
    out.push((block, bytes));
    Ok(block)
}
