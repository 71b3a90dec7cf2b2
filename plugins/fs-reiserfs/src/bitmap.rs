//! The block bitmaps: which blocks are in use, for `used_extents` and for
//! allocating and freeing blocks when writing.
//!
//! Bitmap 0 is the block after the superblock; bitmap `i > 0` is the first
//! block of the `i`-th group of `block_size * 8` blocks. Bit `j` of bitmap `i`
//! covers block `i * block_size * 8 + j`. Bits past the end of the volume are
//! set by `mkreiserfs` and ignored here.

use crate::superblock::Superblock;
use crate::volume::Volume;
use homeward_sdk::Error;
use homeward_sdk::fs::Device;

/// `(byte offset, length)` runs of used blocks, from the bitmaps.
pub fn used_ranges(dev: &dyn Device, sb: &Superblock) -> Result<Vec<(u64, u64)>, Error> {
    let bs = u64::from(sb.block_size);
    let bits_per_map = u64::from(sb.block_size) * 8;
    let total = u64::from(sb.block_count);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let mut run: Option<(u64, u64)> = None; // (first block, count)
    for i in 0..sb.bitmap_blocks() {
        let location = sb.bitmap_location(i);
        if location >= total {
            return Err(Error::invalid_input(format!(
                "reiserfs: bitmap {i} would be at block {location}, past the volume's {total} blocks (damaged superblock)"
            )));
        }
        let map = dev.read_vec(location * bs, sb.block_size as usize)?;
        let group_start = u64::from(i) * bits_per_map;
        for (byte_index, &byte) in map.iter().enumerate() {
            for bit in 0..8 {
                let block = group_start + byte_index as u64 * 8 + bit;
                if block >= total {
                    break;
                }
                if byte & (1 << bit) != 0 {
                    run = match run {
                        Some((first, count)) if first + count == block => Some((first, count + 1)),
                        Some((first, count)) => {
                            ranges.push((first * bs, count * bs));
                            Some((block, 1))
                        }
                        None => Some((block, 1)),
                    };
                }
            }
        }
    }
    if let Some((first, count)) = run {
        ranges.push((first * bs, count * bs));
    }
    Ok(ranges)
}

impl Volume {
    fn bitmap_of(&self, block: u32) -> (u32, u32, u32) {
        let bits = self.sb.block_size * 8;
        let group = block / bits;
        let bit = block % bits;
        (group, bit / 8, bit % 8)
    }

    fn bitmap_block_nr(&self, group: u32) -> Result<u32, Error> {
        u32::try_from(self.sb.bitmap_location(group))
            .ok()
            .filter(|&nr| nr < self.sb.block_count)
            .ok_or_else(|| {
                Error::invalid_input(format!(
                    "reiserfs: bitmap {group} lies outside the volume (damaged superblock)"
                ))
            })
    }

    /// Whether `block` is marked used.
    pub fn is_used(&self, block: u32) -> Result<bool, Error> {
        let (group, byte, bit) = self.bitmap_of(block);
        let map = self.block(self.bitmap_block_nr(group)?)?;
        Ok(map.get(byte as usize).is_some_and(|b| b & (1 << bit) != 0))
    }

    fn set_bit(&mut self, block: u32, used: bool) -> Result<(), Error> {
        let (group, byte, bit) = self.bitmap_of(block);
        let nr = self.bitmap_block_nr(group)?;
        let mut map = self.block(nr)?.as_ref().clone();
        let Some(b) = map.get_mut(byte as usize) else {
            return Err(Error::internal(format!(
                "reiserfs: bitmap byte {byte} out of range"
            )));
        };
        if used {
            *b |= 1 << bit;
        } else {
            *b &= !(1 << bit);
        }
        self.dirty.insert(nr, map);
        Ok(())
    }

    /// Allocates a free block, the first at or after `hint` (wrapping).
    pub fn allocate_block(&mut self, hint: u32) -> Result<u32, Error> {
        if self.sb.free_blocks == 0 {
            return Err(Error::conflict(format!(
                "reiserfs: no free blocks left on the {}-block volume",
                self.sb.block_count
            )));
        }
        let bits = self.sb.block_size * 8;
        let total = self.sb.block_count;
        let groups = self.sb.bitmap_blocks();
        // Blocks up to the first bitmap are reserved whatever the bitmap says.
        let first_allowed = self.sb.own_block() + 2;
        let hint = if hint >= total || hint < first_allowed {
            first_allowed
        } else {
            hint
        };
        let start_group = hint / bits;
        for n in 0..=groups {
            let group = (start_group + n) % groups;
            let map = self.block(self.bitmap_block_nr(group)?)?;
            let from_bit = if n == 0 { hint % bits } else { 0 };
            let limit = if n == groups { hint % bits } else { bits };
            for bit in from_bit..limit {
                let block = group * bits + bit;
                if block >= total {
                    break;
                }
                let byte = map.get((bit / 8) as usize).copied().unwrap_or(0xff);
                if byte == 0xff {
                    continue;
                }
                if byte & (1 << (bit % 8)) == 0 && block >= first_allowed {
                    self.set_bit(block, true)?;
                    self.sb.free_blocks -= 1;
                    return Ok(block);
                }
            }
        }
        Err(Error::invalid_input(format!(
            "reiserfs: the superblock counts {} free blocks but the bitmaps have none (damaged bitmap)",
            self.sb.free_blocks
        )))
    }

    /// Marks `block` free.
    pub fn free_block(&mut self, block: u32) -> Result<(), Error> {
        if block >= self.sb.block_count || !self.is_used(block)? {
            return Err(Error::invalid_input(format!(
                "reiserfs: block {block} is referenced but not marked used (damaged bitmap or pointer)"
            )));
        }
        self.set_bit(block, false)?;
        self.sb.free_blocks = self
            .sb
            .free_blocks
            .saturating_add(1)
            .min(self.sb.block_count);
        Ok(())
    }
}
