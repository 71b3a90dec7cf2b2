//! Directories (version 2 format with v3 headers): every entry of a
//! directory, whatever its form.
//!
//! - short form: entries packed in the inode's data fork;
//! - block form: one directory block ("XDB3") holding the entries and, at its
//!   end, the hash leaf and a tail;
//! - leaf and node forms: data blocks ("XDD3") below the 32 GiB "leaf offset",
//!   then hash and free-space index blocks above it.
//!
//! Listing and lookup only need the entries, so for every block form we read
//! the data blocks and skip the hash indexes: a lookup is a scan, which is
//! plenty for the directories a guest step touches.

use crate::bmap;
use crate::checksum::verify_crc;
use crate::corrupt;
use crate::inode::{ForkFormat, Inode};
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;
use homeward_sdk::types::FileKind;
use std::collections::BTreeSet;

/// "XDB3": a single-block directory.
const BLOCK_MAGIC: u32 = 0x5844_4233;
/// "XDD3": a data block of a leaf or node directory.
const DATA_MAGIC: u32 = 0x5844_4433;
/// The v3 data block header (`xfs_dir3_data_hdr`).
const DATA_HEADER_LEN: usize = 64;
/// Offset of the data block's CRC.
const DATA_CRC_OFFSET: usize = 4;
/// Offset of the data block's owner (the directory's inode number).
const DATA_OWNER_OFFSET: usize = 40;
/// The free-space tag that marks an unused region in a data block.
const FREE_TAG: u16 = 0xffff;
/// Where the hash index starts in a directory's file offsets (32 GiB).
const LEAF_OFFSET_BYTES: u64 = 32 << 30;

/// One directory entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The raw name (not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Inode number.
    pub ino: u64,
    /// The kind the entry records (`None` when it records none).
    pub kind: Option<FileKind>,
}

/// Every entry of directory `dir` except `.` and `..`.
pub fn entries(dev: &dyn Device, sb: &Superblock, dir: &Inode) -> Result<Vec<Entry>, Error> {
    let mut out = match dir.format {
        ForkFormat::Local => short_form(sb, dir)?,
        ForkFormat::Extents | ForkFormat::Btree => block_entries(dev, sb, dir)?,
        ForkFormat::Device => {
            return Err(corrupt(format!(
                "directory inode {}: data fork has device format",
                dir.ino
            )));
        }
    };
    out.retain(|e| e.name != b"." && e.name != b"..");
    Ok(out)
}

/// The kind an entry's file-type byte (`XFS_DIR3_FT_*`) names.
fn kind_of(ftype: u8) -> Option<FileKind> {
    match ftype {
        1 => Some(FileKind::Regular),
        2 => Some(FileKind::Directory),
        3..=6 | 8 => Some(FileKind::Other),
        7 => Some(FileKind::Symlink),
        _ => None,
    }
}

/// A short-form directory (`xfs_dir2_sf_hdr` and its entries).
fn short_form(sb: &Superblock, dir: &Inode) -> Result<Vec<Entry>, Error> {
    let ino = dir.ino;
    let fork = dir.data_fork();
    let used = usize::try_from(dir.size).unwrap_or(usize::MAX);
    let data = fork.get(..used).ok_or_else(|| {
        corrupt(format!(
            "directory inode {ino}: short-form size {} exceeds its {}-byte data fork (damaged inode)",
            dir.size,
            fork.len()
        ))
    })?;
    let mut r = ByteReader::new(data).named("xfs short-form directory");
    let count = r.u8()?;
    let i8count = r.u8()?;
    let ino_len = if i8count > 0 { 8 } else { 4 };
    r.skip(ino_len)?; // parent
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let namelen = usize::from(r.u8()?);
        r.skip(2)?; // the offset this entry would have in block form
        let name = r.bytes(namelen)?.to_vec();
        let kind = if sb.has_ftype() {
            kind_of(r.u8()?)
        } else {
            None
        };
        let child = if ino_len == 8 {
            r.be_u64()?
        } else {
            u64::from(r.be_u32()?)
        };
        if namelen == 0 {
            return Err(corrupt(format!(
                "directory inode {ino}: short-form entry with an empty name"
            )));
        }
        out.push(Entry {
            name,
            ino: child,
            kind,
        });
    }
    Ok(out)
}

/// Entries of a block, leaf or node directory: those of every data block.
fn block_entries(dev: &dyn Device, sb: &Superblock, dir: &Inode) -> Result<Vec<Entry>, Error> {
    let ino = dir.ino;
    let extents = bmap::extents(dev, sb, dir)?;
    let dir_block = u64::from(sb.dir_block_size());
    let fsbs_per_dir_block = 1u64 << sb.dir_block_log;
    let leaf_dir_block = LEAF_OFFSET_BYTES / dir_block;
    // A directory's size covers exactly its data segment.
    let data_dir_blocks = dir.size.div_ceil(dir_block).min(leaf_dir_block);
    if dir.size > dev.size() {
        return Err(corrupt(format!(
            "directory inode {ino}: size {} is larger than the volume (damaged inode)",
            dir.size
        )));
    }
    let mut mapped = BTreeSet::new();
    for e in &extents {
        let first = e.file_block / fsbs_per_dir_block;
        let last = e
            .file_end()
            .div_ceil(fsbs_per_dir_block)
            .min(data_dir_blocks);
        for d in first..last {
            mapped.insert(d);
        }
    }
    let mut out = Vec::new();
    for d in mapped {
        let mut block = vec![0u8; dir_block as usize];
        bmap::read_mapped(dev, sb, &extents, d * dir_block, &mut block)?;
        parse_data_block(&block, ino, d, &mut out)?;
    }
    Ok(out)
}

/// The entries of one directory data block (block or data form).
fn parse_data_block(block: &[u8], ino: u64, d: u64, out: &mut Vec<Entry>) -> Result<(), Error> {
    let r = ByteReader::new(block).named("xfs directory block");
    let magic = r.be_u32_at(0)?;
    if magic != BLOCK_MAGIC && magic != DATA_MAGIC {
        return Err(corrupt(format!(
            "directory inode {ino}: block {d}: magic 0x{magic:08x}, expected 0x{BLOCK_MAGIC:08x} \
             or 0x{DATA_MAGIC:08x} (damaged directory block)"
        )));
    }
    verify_crc(block, DATA_CRC_OFFSET, || {
        format!("directory inode {ino}: block {d}")
    })?;
    let owner = r.be_u64_at(DATA_OWNER_OFFSET)?;
    if owner != ino {
        return Err(corrupt(format!(
            "directory inode {ino}: block {d} belongs to inode {owner} (misplaced directory block)"
        )));
    }
    let end = if magic == BLOCK_MAGIC {
        // The tail (`xfs_dir2_block_tail`): leaf count and stale count, after
        // the leaf entries (8 bytes each) that end the data area.
        let tail = block.len() - 8;
        let leaf_count = r.be_u32_at(tail)? as usize;
        leaf_count
            .checked_mul(8)
            .and_then(|leaves| tail.checked_sub(leaves))
            .filter(|&end| end >= DATA_HEADER_LEN)
            .ok_or_else(|| {
                corrupt(format!(
                    "directory inode {ino}: block directory claims {leaf_count} hash entries, more \
                     than fit (damaged directory block)"
                ))
            })?
    } else {
        block.len()
    };
    let mut pos = DATA_HEADER_LEN;
    // Every step advances at least 8 bytes, so this ends within the block.
    while pos < end {
        let bad = |what: &str| {
            corrupt(format!(
                "directory inode {ino}: block {d} offset {pos}: {what} (damaged directory block)"
            ))
        };
        let len = if r.be_u16_at(pos)? == FREE_TAG {
            usize::from(r.be_u16_at(pos + 2)?)
        } else {
            let child = r.be_u64_at(pos)?;
            let namelen = usize::from(r.u8_at(pos + 8)?);
            if namelen == 0 {
                return Err(bad("entry with an empty name"));
            }
            let name = r.slice_at(pos + 9, namelen)?.to_vec();
            // v5 directories always carry the file-type byte.
            let ftype = r.u8_at(pos + 9 + namelen)?;
            out.push(Entry {
                name,
                ino: child,
                kind: kind_of(ftype),
            });
            // inumber + namelen + name + ftype + tag, rounded up to 8.
            (8 + 1 + namelen + 1 + 2).next_multiple_of(8)
        };
        if len < 8 || len % 8 != 0 || pos + len > end {
            return Err(bad(&format!("region of {len} bytes does not fit")));
        }
        pos += len;
    }
    Ok(())
}
