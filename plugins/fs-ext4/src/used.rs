//! The byte ranges an ext4 volume uses, from its block bitmaps: what the data
//! path copies. It must agree block for block with libext2fs (and so with
//! `dumpe2fs`), including groups whose bitmap was never initialised
//! (`BLOCK_UNINIT`), whose in-use blocks are only the group's own metadata.

use crate::bitmap;
use crate::group::{BG_BLOCK_UNINIT, GroupTable, super_and_gdt_blocks};
use crate::superblock::{RO_COMPAT_BIGALLOC, Superblock};
use homeward_sdk::Error;
use homeward_sdk::fs::{Device, merge_ranges};
use homeward_sdk::types::ByteRange;

/// Used byte ranges of the ext4 volume on `dev`, sorted and merged.
pub fn used_extents(dev: &dyn Device) -> Result<Vec<ByteRange>, Error> {
    let sb = Superblock::read(dev)?.ok_or_else(|| {
        Error::invalid_input(
            "ext4: no ext2/3/4 superblock (magic 0xef53 at byte 1080) on this volume",
        )
    })?;
    if sb.has_ro_compat(RO_COMPAT_BIGALLOC) {
        return Err(Error::unsupported(
            "ext4: used extents of a bigalloc file system (cluster bitmaps) are not supported; \
             copy the volume whole",
        ));
    }
    let groups = GroupTable::load(dev, &sb)?;
    let blocks = used_blocks(dev, &sb, &groups)?;
    let bs = u64::from(sb.block_size);
    Ok(merge_ranges(
        blocks
            .into_iter()
            .map(|(start, count)| (start * bs, count * bs))
            .collect(),
    ))
}

/// Used blocks as `(first, count)` runs, unsorted.
fn used_blocks(
    dev: &dyn Device,
    sb: &Superblock,
    groups: &GroupTable,
) -> Result<Vec<(u64, u64)>, Error> {
    let mut used = Vec::new();
    // Blocks before the first group (the boot block with 1 KiB blocks) are
    // outside every bitmap and always in use.
    used.push((0, u64::from(sb.first_data_block)));
    let bs = sb.block_size as usize;
    for group in 0..sb.group_count {
        let first = sb.group_first_block(group);
        let count = sb.group_block_count(group) as u32;
        if !groups.block_uninit(sb, group)? {
            let location = groups.block_bitmap(group)?;
            let bitmap = dev.read_vec(location * u64::from(sb.block_size), bs)?;
            for (start, len) in bitmap::runs(&bitmap, count, true) {
                used.push((first + u64::from(start), u64::from(len)));
            }
        }
        if groups.flags(group)? & BG_BLOCK_UNINIT != 0 {
            used.extend(group_metadata(sb, groups, group)?);
        }
    }
    Ok(used)
}

/// The metadata of `group` wherever it lives: superblock and GDT copies,
/// bitmaps and inode table (libext2fs `mark_uninit_bg_group_blocks`).
pub fn group_metadata(
    sb: &Superblock,
    groups: &GroupTable,
    group: u32,
) -> Result<Vec<(u64, u64)>, Error> {
    let mut runs = super_and_gdt_blocks(sb, group);
    runs.push((
        groups.inode_table(group)?,
        u64::from(sb.inode_table_blocks()),
    ));
    runs.push((groups.block_bitmap(group)?, 1));
    runs.push((groups.inode_bitmap(group)?, 1));
    Ok(runs)
}
