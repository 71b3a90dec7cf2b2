//! Creating a regular file: a free inode from an existing chunk
//! ([`crate::ialloc`]), its content and blocks ([`crate::write`]), and a new
//! entry in its parent directory.
//!
//! Only short-form parents (entries inline in the directory's inode) take new
//! entries here: adding one is appending a few bytes. Block, leaf and node
//! directories keep hash indexes and free-space tables that would have to be
//! maintained, and a short-form directory that outgrows its inode must be
//! converted to block form: both are `unsupported`.
//!
//! Writes go in an order that leaves at worst leaked space, never a
//! directory entry pointing at a free inode: data and free space first, then
//! the new inode, the inode B+trees and counters, and the entry last.

use crate::corrupt;
use crate::ialloc;
use crate::inode::{ForkFormat, Inode};
use crate::superblock::Superblock;
use crate::write::{self, needs_allocation};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

/// Where the first entry after `.` and `..` goes in a v5 directory block
/// (`XFS_DIR3_DATA_FIRST_OFFSET` with file types): the 64-byte header, then
/// 16 bytes each for `.` and `..`.
const DATA_FIRST_OFFSET: usize = 96;
/// `XFS_DIR3_FT_REG_FILE`.
const FTYPE_REGULAR: u8 = 1;

/// Bytes an entry with a `namelen`-byte name takes in a directory block.
fn block_entry_size(namelen: usize) -> usize {
    (8 + 1 + namelen + 1 + 2).next_multiple_of(8)
}

/// Creates regular file `name` in directory `parent` with `content`.
pub fn create_file(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &mut Inode,
    name: &str,
    path: &str,
    content: &[u8],
    mode: u32,
) -> Result<(), Error> {
    if name.is_empty()
        || name.len() > 255
        || name.contains(['/', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(Error::invalid_input(format!(
            "xfs: {name:?} is not a valid file name"
        )));
    }
    if parent.format != ForkFormat::Local {
        return Err(needs_allocation(&format!(
            "creating {path} in a directory in block, leaf or node form (its hash index)"
        )));
    }
    if sb.qflags != 0 {
        return Err(needs_allocation(&format!(
            "creating {path} with quota accounting on"
        )));
    }
    let layout = ShortForm::read(parent)?;
    let ialloc = ialloc::plan(dev, sb, sb.inode_ag(parent.ino))?;
    let ino = ialloc.ino;
    let wide = layout.ino_len == 8;
    if !wide && ino > u64::from(u32::MAX) {
        return Err(needs_allocation(&format!(
            "creating {path}, whose inode number needs 8 bytes in a directory storing 4"
        )));
    }
    // The entry must fit the inode, and the directory must still fit one
    // block once converted (the kernel's own test for the simple append).
    let ino_len = layout.ino_len;
    let new_size = layout.size + 1 + 2 + name.len() + 1 + ino_len;
    let entries = usize::from(layout.count) + 1;
    let block_end = layout.next_offset + block_entry_size(name.len());
    let block_room = (sb.dir_block_size() as usize).saturating_sub((entries + 2) * 8 + 8);
    if new_size > parent.data_fork().len() || block_end > block_room || entries > 255 {
        return Err(needs_allocation(&format!(
            "creating {path}: its directory no longer fits in its inode and must become a block \
             directory"
        )));
    }

    let mut entry = vec![name.len() as u8];
    entry.extend_from_slice(&(layout.next_offset as u16).to_be_bytes());
    entry.extend_from_slice(name.as_bytes());
    entry.push(FTYPE_REGULAR);
    if wide {
        entry.extend_from_slice(&ino.to_be_bytes());
    } else {
        entry.extend_from_slice(&(ino as u32).to_be_bytes());
    }
    let mut file = Inode::read(dev, sb, ino)?;
    file.init_regular(sb, write::now_ns())?;
    write::rewrite(dev, sb, &mut file, path, content, mode)?;
    ialloc.commit(dev)?;
    sb.take_free_counts(dev, 0, 1)?;

    parent.write_fork(layout.size, &entry)?;
    parent.write_fork(0, &[layout.count + 1])?;
    let parent_mode = parent.mode;
    parent.rewrite_core(new_size as u64, parent_mode, write::now_ns())?;
    dev.write_at(parent.offset, &parent.raw)
}

/// What appending to a short-form directory needs to know.
struct ShortForm {
    /// Bytes in use.
    size: usize,
    count: u8,
    /// 4 or 8.
    ino_len: usize,
    /// The block-form offset the next entry gets.
    next_offset: usize,
}

impl ShortForm {
    fn read(dir: &Inode) -> Result<ShortForm, Error> {
        let size = usize::try_from(dir.size).unwrap_or(usize::MAX);
        let data = dir.data_fork().get(..size).ok_or_else(|| {
            corrupt(format!(
                "directory inode {}: short-form size {} exceeds its data fork",
                dir.ino, dir.size
            ))
        })?;
        let mut r = ByteReader::new(data).named("xfs short-form directory");
        let count = r.u8()?;
        let ino_len = if r.u8()? > 0 { 8 } else { 4 };
        r.skip(ino_len)?;
        let mut next_offset = DATA_FIRST_OFFSET;
        for _ in 0..count {
            let namelen = usize::from(r.u8()?);
            let offset = usize::from(r.be_u16()?);
            r.skip(namelen + 1 + ino_len)?;
            next_offset = next_offset.max(offset + block_entry_size(namelen));
        }
        if r.position() != size {
            return Err(corrupt(format!(
                "directory inode {}: short-form entries end at {} of its {size} bytes (damaged directory)",
                dir.ino,
                r.position()
            )));
        }
        Ok(ShortForm {
            size,
            count,
            ino_len,
            next_offset,
        })
    }
}
