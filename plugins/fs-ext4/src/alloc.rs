//! Inode and block allocation for the writer: the bitmaps of the groups it
//! touches (materialising never-initialised ones the way the kernel does),
//! free counts in the descriptors and the superblock, the `*_UNINIT` flags and
//! `itable_unused`, and writing all of it back with fresh checksums.
//!
//! Changes accumulate in memory and reach the disk in [`Allocator::commit`],
//! called at the end of every write operation, so the volume is consistent
//! between calls.

use crate::bitmap;
use crate::checksum::crc32c_update;
use crate::group::{BG_BLOCK_UNINIT, BG_INODE_UNINIT};
use crate::superblock::SUPERBLOCK_OFFSET;
use crate::used::group_metadata;
use crate::volume::Volume;
use homeward_sdk::Error;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// Bitmaps loaded for writing, and what changed since the last commit.
#[derive(Debug, Default)]
pub struct Allocator {
    block_bitmaps: BTreeMap<u32, Vec<u8>>,
    inode_bitmaps: BTreeMap<u32, Vec<u8>>,
    dirty_block_bitmaps: BTreeSet<u32>,
    dirty_inode_bitmaps: BTreeSet<u32>,
    dirty_groups: BTreeSet<u32>,
    dirty_super: bool,
}

fn no_space(what: &str, wanted: u64, free: u64) -> Error {
    Error::conflict(format!(
        "ext4: no space left: {wanted} {what} needed, {free} free; free some space on the volume"
    ))
}

/// Groups in search order: `goal` first, then the ones after it, wrapping.
fn search_order(goal: u32, count: u32) -> impl Iterator<Item = u32> {
    let goal = if goal < count { goal } else { 0 };
    (goal..count).chain(0..goal)
}

impl Allocator {
    /// Group `group`'s block bitmap, loaded (or built, for `BLOCK_UNINIT`).
    fn block_bitmap(&mut self, vol: &Volume, group: u32) -> Result<&mut Vec<u8>, Error> {
        if let Entry::Vacant(slot) = self.block_bitmaps.entry(group) {
            let sb = &vol.sb;
            let bitmap = if vol.groups.block_uninit(sb, group)? {
                // As the kernel's ext4_init_block_bitmap: the blocks of any
                // group's metadata that lie in this group are in use.
                let mut bitmap = vec![0u8; sb.block_size as usize];
                let first = sb.group_first_block(group);
                let end = first + sb.group_block_count(group);
                for other in 0..sb.group_count {
                    for (start, count) in group_metadata(sb, &vol.groups, other)? {
                        for block in start.max(first)..(start.saturating_add(count)).min(end) {
                            bitmap::set(&mut bitmap, (block - first) as u32, true);
                        }
                    }
                }
                bitmap
            } else {
                vol.read_block(vol.groups.block_bitmap(group)?)?
            };
            slot.insert(bitmap);
        }
        let count = vol.sb.group_block_count(group) as u32;
        let bitmap = self
            .block_bitmaps
            .get_mut(&group)
            .ok_or_else(|| Error::internal("ext4: block bitmap cache"))?;
        // Bits past the group's end stay set, so they are never handed out.
        for bit in count..(bitmap.len() as u32 * 8) {
            bitmap::set(bitmap, bit, true);
        }
        Ok(bitmap)
    }

    fn inode_bitmap(&mut self, vol: &Volume, group: u32) -> Result<&mut Vec<u8>, Error> {
        if let Entry::Vacant(slot) = self.inode_bitmaps.entry(group) {
            let sb = &vol.sb;
            let mut bitmap = if vol.groups.inode_uninit(sb, group)? {
                vec![0u8; sb.block_size as usize]
            } else {
                vol.read_block(vol.groups.inode_bitmap(group)?)?
            };
            for bit in sb.inodes_per_group..(bitmap.len() as u32 * 8) {
                bitmap::set(&mut bitmap, bit, true);
            }
            slot.insert(bitmap);
        }
        self.inode_bitmaps
            .get_mut(&group)
            .ok_or_else(|| Error::internal("ext4: inode bitmap cache"))
    }

    /// Allocates `count` blocks, preferring one contiguous run starting in
    /// group `goal`; returns `(first, count)` runs in allocation order.
    pub fn alloc_blocks(
        &mut self,
        vol: &mut Volume,
        goal: u32,
        count: u64,
    ) -> Result<Vec<(u64, u64)>, Error> {
        if count == 0 {
            return Ok(Vec::new());
        }
        if count > vol.sb.free_blocks {
            return Err(no_space("blocks", count, vol.sb.free_blocks));
        }
        let groups = vol.sb.group_count;
        let mut chosen = Vec::new();
        // First choice: one run that holds everything.
        for group in search_order(goal, groups) {
            if u64::from(vol.groups.free_blocks(group)?) < count {
                continue;
            }
            let n = vol.sb.group_block_count(group) as u32;
            let first = vol.sb.group_first_block(group);
            let bitmap = self.block_bitmap(vol, group)?;
            if let Some(&(start, _)) = bitmap::runs(bitmap, n, false)
                .iter()
                .find(|(_, len)| u64::from(*len) >= count)
            {
                chosen.push((first + u64::from(start), count));
                break;
            }
        }
        // Otherwise: free runs in search order until the count is met.
        if chosen.is_empty() {
            let mut left = count;
            for group in search_order(goal, groups) {
                if left == 0 {
                    break;
                }
                if vol.groups.free_blocks(group)? == 0 {
                    continue;
                }
                let n = vol.sb.group_block_count(group) as u32;
                let first = vol.sb.group_first_block(group);
                let bitmap = self.block_bitmap(vol, group)?;
                for (start, len) in bitmap::runs(bitmap, n, false) {
                    let take = u64::from(len).min(left);
                    chosen.push((first + u64::from(start), take));
                    left -= take;
                    if left == 0 {
                        break;
                    }
                }
            }
            if left > 0 {
                return Err(no_space("blocks", count, count - left));
            }
        }
        for &(start, len) in &chosen {
            self.mark_blocks(vol, start, len, true)?;
        }
        Ok(chosen)
    }

    /// Frees the blocks of `runs` (each inside one group, as maps keep them).
    pub fn free_blocks(&mut self, vol: &mut Volume, runs: &[(u64, u64)]) -> Result<(), Error> {
        for &(start, len) in runs {
            let mut block = start;
            let end = start.saturating_add(len);
            while block < end {
                let group = vol.sb.group_of_block(block)?;
                let group_end = vol.sb.group_first_block(group) + vol.sb.group_block_count(group);
                let n = end.min(group_end) - block;
                self.mark_blocks(vol, block, n, false)?;
                block += n;
            }
        }
        Ok(())
    }

    /// Sets (allocates) or clears (frees) `len` blocks from `start`, all in
    /// one group, and updates the counts for the bits that changed.
    fn mark_blocks(
        &mut self,
        vol: &mut Volume,
        start: u64,
        len: u64,
        used: bool,
    ) -> Result<(), Error> {
        let group = vol.sb.group_of_block(start)?;
        let first = vol.sb.group_first_block(group);
        let bitmap = self.block_bitmap(vol, group)?;
        let mut changed = 0u32;
        for block in start..start + len {
            let bit = (block - first) as u32;
            if bitmap::test(bitmap, bit) != used {
                bitmap::set(bitmap, bit, used);
                changed += 1;
            }
        }
        let free = vol.groups.free_blocks(group)?;
        let sb_free = vol.sb.free_blocks;
        let (free, sb_free) = if used {
            (
                free.saturating_sub(changed),
                sb_free.saturating_sub(u64::from(changed)),
            )
        } else {
            (
                free.saturating_add(changed),
                sb_free.saturating_add(u64::from(changed)),
            )
        };
        vol.groups.set_free_blocks(group, free);
        vol.sb.set_free_counts(sb_free, vol.sb.free_inodes);
        vol.groups.clear_flags(group, BG_BLOCK_UNINIT)?;
        self.dirty_block_bitmaps.insert(group);
        self.dirty_groups.insert(group);
        self.dirty_super = true;
        Ok(())
    }

    /// Allocates an inode, preferring group `goal`.
    pub fn alloc_inode(&mut self, vol: &mut Volume, goal: u32, is_dir: bool) -> Result<u32, Error> {
        if vol.sb.free_inodes == 0 {
            return Err(no_space("inodes", 1, 0));
        }
        let ipg = vol.sb.inodes_per_group;
        for group in search_order(goal, vol.sb.group_count) {
            if vol.groups.free_inodes(group)? == 0 {
                continue;
            }
            let first_ino = vol.sb.first_ino;
            let inodes_count = vol.sb.inodes_count;
            let bitmap = self.inode_bitmap(vol, group)?;
            let found = (0..ipg).find(|&i| {
                let ino = group * ipg + i + 1;
                ino >= first_ino && ino <= inodes_count && !bitmap::test(bitmap, i)
            });
            let Some(index) = found else {
                continue;
            };
            bitmap::set(bitmap, index, true);
            let groups = &mut vol.groups;
            groups.set_free_inodes(group, groups.free_inodes(group)?.saturating_sub(1));
            if is_dir {
                groups.set_used_dirs(group, groups.used_dirs(group)?.saturating_add(1));
            }
            if vol.sb.has_group_csum() {
                // Inodes past ipg - itable_unused are never looked at: the
                // new one must not be among them.
                let unused = groups.itable_unused(group)?;
                if index >= ipg.saturating_sub(unused) {
                    groups.set_itable_unused(group, ipg - index - 1);
                }
            }
            groups.clear_flags(group, BG_INODE_UNINIT)?;
            vol.sb
                .set_free_counts(vol.sb.free_blocks, vol.sb.free_inodes.saturating_sub(1));
            self.dirty_inode_bitmaps.insert(group);
            self.dirty_groups.insert(group);
            self.dirty_super = true;
            return Ok(group * ipg + index + 1);
        }
        Err(no_space("inodes", 1, 0))
    }

    /// Frees inode `ino`.
    pub fn free_inode(&mut self, vol: &mut Volume, ino: u32, is_dir: bool) -> Result<(), Error> {
        let ipg = vol.sb.inodes_per_group;
        let Some(zero_based) = ino.checked_sub(1) else {
            return Ok(());
        };
        let (group, index) = (zero_based / ipg, zero_based % ipg);
        let bitmap = self.inode_bitmap(vol, group)?;
        if !bitmap::test(bitmap, index) {
            return Ok(());
        }
        bitmap::set(bitmap, index, false);
        let groups = &mut vol.groups;
        groups.set_free_inodes(group, groups.free_inodes(group)?.saturating_add(1));
        if is_dir {
            groups.set_used_dirs(group, groups.used_dirs(group)?.saturating_sub(1));
        }
        vol.sb
            .set_free_counts(vol.sb.free_blocks, vol.sb.free_inodes.saturating_add(1));
        self.dirty_inode_bitmaps.insert(group);
        self.dirty_groups.insert(group);
        self.dirty_super = true;
        Ok(())
    }

    /// Writes every changed bitmap, descriptor and the superblock, with
    /// fresh checksums.
    pub fn commit(&mut self, vol: &mut Volume) -> Result<(), Error> {
        let csum = vol.sb.has_metadata_csum();
        for group in std::mem::take(&mut self.dirty_block_bitmaps) {
            let bitmap = self.block_bitmap(vol, group)?.clone();
            if csum {
                let len = (vol.sb.blocks_per_group / 8) as usize;
                let crc = crc32c_update(vol.sb.csum_seed, bitmap.get(..len).unwrap_or_default());
                vol.groups.set_block_bitmap_csum(group, crc);
            }
            vol.write_block(vol.groups.block_bitmap(group)?, &bitmap)?;
        }
        for group in std::mem::take(&mut self.dirty_inode_bitmaps) {
            let bitmap = self.inode_bitmap(vol, group)?.clone();
            if csum {
                let len = (vol.sb.inodes_per_group / 8) as usize;
                let crc = crc32c_update(vol.sb.csum_seed, bitmap.get(..len).unwrap_or_default());
                vol.groups.set_inode_bitmap_csum(group, crc);
            }
            vol.write_block(vol.groups.inode_bitmap(group)?, &bitmap)?;
        }
        let mut gdt_blocks = BTreeSet::new();
        for group in std::mem::take(&mut self.dirty_groups) {
            vol.groups.seal(&vol.sb, group)?;
            gdt_blocks.insert(group / vol.sb.descs_per_block());
        }
        for index in gdt_blocks {
            let group = index * vol.sb.descs_per_block();
            if let Some((block, bytes)) = vol.groups.gdt_block_of(&vol.sb, group) {
                vol.write_block(block, &bytes)?;
            }
        }
        if std::mem::take(&mut self.dirty_super) {
            vol.dev.write_at(SUPERBLOCK_OFFSET, &vol.sb.to_bytes())?;
        }
        Ok(())
    }
}
