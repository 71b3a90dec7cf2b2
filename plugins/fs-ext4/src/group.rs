//! Block-group descriptors: reading the table (classic or `meta_bg` layout),
//! verifying and recomputing their checksums, and the fixed metadata each
//! group holds (superblock copy, descriptor table copy, reserved GDT blocks)
//! as libext2fs computes it, which `BLOCK_UNINIT` groups rely on.

use crate::checksum::{crc16, crc32c_update};
use crate::superblock::{INCOMPAT_META_BG, Superblock, put_u16};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

pub const BG_INODE_UNINIT: u16 = 0x1;
pub const BG_BLOCK_UNINIT: u16 = 0x2;

const CHECKSUM_OFFSET: usize = 0x1e;

/// The group descriptor table, as raw descriptors with typed accessors.
#[derive(Debug, Clone)]
pub struct GroupTable {
    /// `group_count * desc_size` bytes.
    raw: Vec<u8>,
    desc_size: usize,
    wide: bool,
    /// Where each GDT block lives on disk (primary copy).
    gdt_blocks: Vec<u64>,
}

impl GroupTable {
    /// Reads and checks every descriptor. The file system must fit on the device.
    pub fn load(dev: &dyn Device, sb: &Superblock) -> Result<GroupTable, Error> {
        let fs_bytes = sb.blocks_count.checked_mul(u64::from(sb.block_size));
        if fs_bytes.is_none_or(|b| b > dev.size()) {
            return Err(Error::invalid_input(format!(
                "ext4: superblock: {} blocks of {} bytes do not fit the {}-byte volume (the \
                 image is truncated or the superblock is damaged)",
                sb.blocks_count,
                sb.block_size,
                dev.size()
            )));
        }
        let desc_blocks = sb.desc_blocks();
        let mut gdt_blocks = Vec::with_capacity(desc_blocks as usize);
        for i in 0..desc_blocks {
            gdt_blocks.push(gdt_block_location(sb, i));
        }
        let bs = sb.block_size as usize;
        let mut raw = Vec::with_capacity(desc_blocks as usize * bs);
        for &block in &gdt_blocks {
            if block >= sb.blocks_count {
                return Err(Error::invalid_input(format!(
                    "ext4: group descriptor table block {block} is past the end of the file \
                     system (damaged superblock)"
                )));
            }
            raw.extend(dev.read_vec(block * u64::from(sb.block_size), bs)?);
        }
        raw.truncate(sb.group_count as usize * sb.desc_size as usize);
        let table = GroupTable {
            raw,
            desc_size: sb.desc_size as usize,
            wide: sb.desc_size >= 64,
            gdt_blocks,
        };
        for group in 0..sb.group_count {
            table.check(sb, group)?;
        }
        Ok(table)
    }

    fn check(&self, sb: &Superblock, group: u32) -> Result<(), Error> {
        if sb.has_group_csum() {
            let stored = self.desc(group)?.le_u16_at(CHECKSUM_OFFSET)?;
            let computed = self.checksum(sb, group)?;
            if stored != computed {
                return Err(Error::invalid_input(format!(
                    "ext4: group descriptor {group}: checksum 0x{stored:04x}, computed \
                     0x{computed:04x} (damaged group descriptor table)"
                )));
            }
        }
        let itable_end = self
            .inode_table(group)?
            .checked_add(u64::from(sb.inode_table_blocks()));
        // Each location as (first block, end): the end may equal the block count.
        let locations = [
            (
                "block bitmap",
                self.block_bitmap(group)?,
                self.block_bitmap(group)?.checked_add(1),
            ),
            (
                "inode bitmap",
                self.inode_bitmap(group)?,
                self.inode_bitmap(group)?.checked_add(1),
            ),
            ("inode table", self.inode_table(group)?, itable_end),
        ];
        for (what, block, end) in locations {
            if block < u64::from(sb.first_data_block) || end.is_none_or(|e| e > sb.blocks_count) {
                return Err(Error::invalid_input(format!(
                    "ext4: group descriptor {group}: {what} at {block:?} is outside the {} \
                     blocks of the file system (damaged group descriptor table)",
                    sb.blocks_count
                )));
            }
        }
        Ok(())
    }

    fn desc(&self, group: u32) -> Result<ByteReader<'_>, Error> {
        let start = group as usize * self.desc_size;
        let bytes = self
            .raw
            .get(start..start + self.desc_size)
            .ok_or_else(|| Error::invalid_input(format!("ext4: no group descriptor {group}")))?;
        Ok(ByteReader::new(bytes).named("ext4 group descriptor"))
    }

    fn desc_mut(&mut self, group: u32) -> &mut [u8] {
        let start = group as usize * self.desc_size;
        let end = start + self.desc_size;
        self.raw.get_mut(start..end).unwrap_or_default()
    }

    fn lo_hi32(&self, group: u32, lo: usize, hi: usize) -> Result<u64, Error> {
        let d = self.desc(group)?;
        let high = if self.wide { d.le_u32_at(hi)? } else { 0 };
        Ok(u64::from(d.le_u32_at(lo)?) | (u64::from(high) << 32))
    }

    fn lo_hi16(&self, group: u32, lo: usize, hi: usize) -> Result<u32, Error> {
        let d = self.desc(group)?;
        let high = if self.wide { d.le_u16_at(hi)? } else { 0 };
        Ok(u32::from(d.le_u16_at(lo)?) | (u32::from(high) << 16))
    }

    fn set_lo_hi16(&mut self, group: u32, lo: usize, hi: usize, value: u32) {
        let wide = self.wide;
        let d = self.desc_mut(group);
        put_u16(d, lo, value as u16);
        if wide {
            put_u16(d, hi, (value >> 16) as u16);
        }
    }

    pub fn block_bitmap(&self, group: u32) -> Result<u64, Error> {
        self.lo_hi32(group, 0x0, 0x20)
    }

    pub fn inode_bitmap(&self, group: u32) -> Result<u64, Error> {
        self.lo_hi32(group, 0x4, 0x24)
    }

    pub fn inode_table(&self, group: u32) -> Result<u64, Error> {
        self.lo_hi32(group, 0x8, 0x28)
    }

    pub fn free_blocks(&self, group: u32) -> Result<u32, Error> {
        self.lo_hi16(group, 0xc, 0x2c)
    }

    pub fn free_inodes(&self, group: u32) -> Result<u32, Error> {
        self.lo_hi16(group, 0xe, 0x2e)
    }

    pub fn used_dirs(&self, group: u32) -> Result<u32, Error> {
        self.lo_hi16(group, 0x10, 0x30)
    }

    pub fn itable_unused(&self, group: u32) -> Result<u32, Error> {
        self.lo_hi16(group, 0x1c, 0x32)
    }

    pub fn flags(&self, group: u32) -> Result<u16, Error> {
        Ok(self.desc(group)?.le_u16_at(0x12)?)
    }

    pub fn set_free_blocks(&mut self, group: u32, value: u32) {
        self.set_lo_hi16(group, 0xc, 0x2c, value);
    }

    pub fn set_free_inodes(&mut self, group: u32, value: u32) {
        self.set_lo_hi16(group, 0xe, 0x2e, value);
    }

    pub fn set_used_dirs(&mut self, group: u32, value: u32) {
        self.set_lo_hi16(group, 0x10, 0x30, value);
    }

    pub fn set_itable_unused(&mut self, group: u32, value: u32) {
        self.set_lo_hi16(group, 0x1c, 0x32, value);
    }

    pub fn clear_flags(&mut self, group: u32, flags: u16) -> Result<(), Error> {
        let value = self.flags(group)? & !flags;
        put_u16(self.desc_mut(group), 0x12, value);
        Ok(())
    }

    /// Stores a block bitmap's checksum (`metadata_csum`).
    pub fn set_block_bitmap_csum(&mut self, group: u32, crc: u32) {
        self.set_lo_hi16(group, 0x18, 0x38, crc);
    }

    /// Stores an inode bitmap's checksum (`metadata_csum`).
    pub fn set_inode_bitmap_csum(&mut self, group: u32, crc: u32) {
        self.set_lo_hi16(group, 0x1a, 0x3a, crc);
    }

    /// Whether `group`'s `BLOCK_UNINIT` flag is to be believed (libext2fs
    /// trusts it only when descriptors are checksummed).
    pub fn block_uninit(&self, sb: &Superblock, group: u32) -> Result<bool, Error> {
        Ok(sb.has_group_csum() && self.flags(group)? & BG_BLOCK_UNINIT != 0)
    }

    /// Whether `group`'s inode bitmap is uninitialised (all inodes free).
    pub fn inode_uninit(&self, sb: &Superblock, group: u32) -> Result<bool, Error> {
        Ok(sb.has_group_csum() && self.flags(group)? & BG_INODE_UNINIT != 0)
    }

    /// The checksum `group`'s descriptor should carry.
    pub fn checksum(&self, sb: &Superblock, group: u32) -> Result<u16, Error> {
        let desc = self.desc(group)?;
        let head = desc.slice_at(0, CHECKSUM_OFFSET)?;
        let tail = desc.slice_at(CHECKSUM_OFFSET + 2, self.desc_size - CHECKSUM_OFFSET - 2)?;
        if sb.has_metadata_csum() {
            let crc = crc32c_update(sb.csum_seed, &group.to_le_bytes());
            let crc = crc32c_update(crc, head);
            let crc = crc32c_update(crc, &[0, 0]);
            let crc = crc32c_update(crc, tail);
            Ok(crc as u16)
        } else {
            let crc = crc16(!0, &sb.uuid);
            let crc = crc16(crc, &group.to_le_bytes());
            let crc = crc16(crc, head);
            // The crc16 skips the checksum field and covers the 64-bit half
            // only when the descriptor has one.
            Ok(if self.wide { crc16(crc, tail) } else { crc })
        }
    }

    /// Recomputes `group`'s descriptor checksum, when the fs keeps one.
    pub fn seal(&mut self, sb: &Superblock, group: u32) -> Result<(), Error> {
        if sb.has_group_csum() {
            let crc = self.checksum(sb, group)?;
            put_u16(self.desc_mut(group), CHECKSUM_OFFSET, crc);
        }
        Ok(())
    }

    /// The GDT block holding `group`'s descriptor, with that block's bytes
    /// (for writing it back after a change).
    pub fn gdt_block_of(&self, sb: &Superblock, group: u32) -> Option<(u64, Vec<u8>)> {
        let per_block = sb.descs_per_block() as usize;
        let index = group as usize / per_block;
        let block = *self.gdt_blocks.get(index)?;
        let start = index * per_block * self.desc_size;
        let end = (start + per_block * self.desc_size).min(self.raw.len());
        let mut bytes = self.raw.get(start..end)?.to_vec();
        // The tail of the last GDT block is zero on disk.
        bytes.resize(sb.block_size as usize, 0);
        Some((block, bytes))
    }
}

/// Where GDT block `index` lives (primary copy).
fn gdt_block_location(sb: &Superblock, index: u32) -> u64 {
    let first = u64::from(sb.first_data_block) + 1;
    if !sb.has_incompat(INCOMPAT_META_BG) || index < sb.first_meta_bg {
        return first + u64::from(index);
    }
    let group = index.saturating_mul(sb.descs_per_block());
    sb.group_first_block(group) + u64::from(sb.group_has_super(group))
}

/// The fixed metadata blocks of `group` (superblock copy, old-style GDT plus
/// reserved GDT blocks, or the `meta_bg` descriptor block), as
/// `(first block, count)` runs: libext2fs `ext2fs_reserve_super_and_bgd`.
pub fn super_and_gdt_blocks(sb: &Superblock, group: u32) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut group_block = sb.group_first_block(group);
    if group_block == 0 && sb.block_size == 1024 {
        group_block = 1;
    }
    let meta_bg = sb.has_incompat(INCOMPAT_META_BG);
    let old_desc_blocks = if meta_bg {
        u64::from(sb.first_meta_bg)
    } else {
        u64::from(sb.desc_blocks()) + u64::from(sb.reserved_gdt_blocks)
    };
    let has_super = sb.group_has_super(group);
    if has_super || group == 0 {
        runs.push((group_block, 1));
    }
    let per_block = sb.descs_per_block();
    let meta_bg_index = group / per_block;
    if !meta_bg || meta_bg_index < sb.first_meta_bg {
        if has_super {
            let start = group_block + 1;
            let count = old_desc_blocks.min(sb.blocks_count.saturating_sub(start));
            runs.push((start, count));
        }
    } else {
        let rem = group % per_block;
        if rem == 0 || rem == 1 || rem == per_block - 1 {
            runs.push((group_block + u64::from(has_super), 1));
        }
    }
    runs
}
