//! Creating regular files, directories and inline symlinks: a free inode
//! from an existing chunk ([`crate::ialloc`]), its content (for a file, its
//! blocks from [`crate::write`]; for a directory, an empty short-form
//! directory; for a symlink, the target inline), and a new entry in its
//! parent directory (whose link count a new directory's `..` raises).
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
use crate::inode::{ForkFormat, Inode, S_IFDIR, S_IFLNK};
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

/// `XFS_DIR3_FT_DIR`.
const FTYPE_DIR: u8 = 2;
/// `XFS_DIR3_FT_SYMLINK`.
const FTYPE_SYMLINK: u8 = 7;
/// Linux's `XFS_SYMLINK_MAXLEN`.
const SYMLINK_MAX_LEN: usize = 1024;

/// A new entry, checked to fit its short-form parent, and the inode it gets.
struct NewEntry {
    ialloc: ialloc::InodeAllocation,
    ino: u64,
    layout: ShortForm,
    /// The entry's bytes, appended at `layout.size`.
    bytes: Vec<u8>,
    /// The directory's size with the entry.
    new_size: usize,
}

/// Checks that `name` can be added to short-form directory `parent` with
/// file type `ftype`, and picks the inode it will name. Writes nothing.
fn plan_entry(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &Inode,
    name: &str,
    path: &str,
    ftype: u8,
) -> Result<NewEntry, Error> {
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
    let mut bytes = vec![name.len() as u8];
    bytes.extend_from_slice(&(layout.next_offset as u16).to_be_bytes());
    bytes.extend_from_slice(name.as_bytes());
    bytes.push(ftype);
    if wide {
        bytes.extend_from_slice(&ino.to_be_bytes());
    } else {
        bytes.extend_from_slice(&(ino as u32).to_be_bytes());
    }
    Ok(NewEntry {
        ialloc,
        ino,
        layout,
        bytes,
        new_size,
    })
}

/// After the new inode is on disk: the inode B+trees and counters, then the
/// entry in `parent` (whose link count grows by `parent_links`).
fn link(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &mut Inode,
    entry: NewEntry,
    parent_links: u32,
) -> Result<(), Error> {
    entry.ialloc.commit(dev)?;
    sb.take_free_counts(dev, 0, 1)?;
    parent.write_fork(entry.layout.size, &entry.bytes)?;
    parent.write_fork(0, &[entry.layout.count + 1])?;
    if parent_links > 0 {
        let nlink = parent.nlink()?.checked_add(parent_links).ok_or_else(|| {
            corrupt(format!(
                "directory inode {}: link count overflows",
                parent.ino
            ))
        })?;
        parent.set_nlink(nlink)?;
    }
    let parent_mode = parent.mode;
    parent.rewrite_core(entry.new_size as u64, parent_mode, write::now_ns())?;
    dev.write_at(parent.offset, &parent.raw)
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
    let entry = plan_entry(dev, sb, parent, name, path, FTYPE_REGULAR)?;
    let mut file = Inode::read(dev, sb, entry.ino)?;
    file.init_regular(sb, write::now_ns())?;
    write::rewrite(dev, sb, &mut file, path, content, mode)?;
    link(dev, sb, parent, entry, 0)
}

/// Creates empty directory `name` in directory `parent`: a short-form
/// directory (no entries, `..` naming the parent) with two links, and one
/// more link on the parent for its `..`.
pub fn create_dir(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &mut Inode,
    name: &str,
    path: &str,
    mode: u32,
) -> Result<(), Error> {
    if parent.ino > u64::from(u32::MAX) {
        return Err(needs_allocation(&format!(
            "creating directory {path} under a parent whose inode number needs 8 bytes"
        )));
    }
    parent.nlink()?.checked_add(1).ok_or_else(|| {
        Error::unsupported(format!(
            "xfs: cannot create directory {path}: its parent has too many links"
        ))
    })?;
    let entry = plan_entry(dev, sb, parent, name, path, FTYPE_DIR)?;
    let mut dir = Inode::read(dev, sb, entry.ino)?;
    let now = write::now_ns();
    dir.init_new(sb, now, S_IFDIR, ForkFormat::Local, 2)?;
    // xfs_dir2_sf_hdr: no entries, no 8-byte inode numbers, the parent.
    let mut header = vec![0u8, 0u8];
    header.extend_from_slice(&(parent.ino as u32).to_be_bytes());
    dir.write_fork(0, &header)?;
    dir.rewrite_core(header.len() as u64, (mode & 0o7777) as u16, now)?;
    dev.write_at(dir.offset, &dir.raw)?;
    link(dev, sb, parent, entry, 1)
}

/// Creates symlink `name` to `target` in directory `parent`, with the target
/// inline in the inode (local format); a longer target would need a block.
pub fn create_symlink(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &mut Inode,
    name: &str,
    path: &str,
    target: &str,
) -> Result<(), Error> {
    if target.is_empty() || target.len() > SYMLINK_MAX_LEN || target.contains('\0') {
        return Err(Error::invalid_input(format!(
            "xfs: a symlink target must be 1 to {SYMLINK_MAX_LEN} bytes without NUL; {path} would \
             have {} bytes",
            target.len()
        )));
    }
    let inline_room = usize::from(sb.inode_size).saturating_sub(crate::inode::CORE_LEN);
    if target.len() > inline_room {
        return Err(needs_allocation(&format!(
            "creating symlink {path}: its {}-byte target does not fit inline in the inode (at most \
             {inline_room} bytes) and would need a block",
            target.len()
        )));
    }
    let entry = plan_entry(dev, sb, parent, name, path, FTYPE_SYMLINK)?;
    let mut link_inode = Inode::read(dev, sb, entry.ino)?;
    let now = write::now_ns();
    link_inode.init_new(sb, now, S_IFLNK, ForkFormat::Local, 1)?;
    link_inode.write_fork(0, target.as_bytes())?;
    link_inode.rewrite_core(target.len() as u64, 0o777, now)?;
    dev.write_at(link_inode.offset, &link_inode.raw)?;
    link(dev, sb, parent, entry, 0)
}

/// What appending to a short-form directory needs to know.
pub struct ShortForm {
    /// Bytes in use.
    pub size: usize,
    pub count: u8,
    /// 4 or 8.
    pub ino_len: usize,
    /// The block-form offset the next entry gets.
    next_offset: usize,
}

impl ShortForm {
    pub fn read(dir: &Inode) -> Result<ShortForm, Error> {
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
