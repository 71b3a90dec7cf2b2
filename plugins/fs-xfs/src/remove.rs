//! Removing a regular file, an inline symlink or a device/FIFO/socket node
//! from a short-form directory: its entry goes, its inode is freed
//! ([`crate::ialloc::free`]), and a file's data extents go back to the
//! free-space trees ([`crate::alloc::free`]) and leave the reverse-mapping
//! tree ([`crate::rmap`]).
//!
//! The whole change is planned on an [`Overlay`] first, so anything it
//! cannot do (a block-map B+tree, attribute or shared blocks, hard links,
//! B+trees that would need reshaping) is `unsupported` before a byte is
//! written. The writes then go in an order that at worst leaks: the entry
//! first, then the inode and its inode B+tree records, then the blocks.

use crate::alloc;
use crate::bmap;
use crate::corrupt;
use crate::create::ShortForm;
use crate::ialloc;
use crate::inode::{ForkFormat, Inode};
use crate::overlay::Overlay;
use crate::rmap;
use crate::superblock::Superblock;
use crate::write::{self, needs_allocation};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;
use homeward_sdk::types::FileKind;

/// Removes entry `name` (naming `path`) from directory `parent`.
pub fn remove(
    dev: &dyn Device,
    sb: &Superblock,
    parent: &mut Inode,
    name: &str,
    path: &str,
) -> Result<(), Error> {
    if parent.format != ForkFormat::Local {
        return Err(needs_allocation(&format!(
            "removing {path} from a directory in block, leaf or node form (its hash index)"
        )));
    }
    if sb.qflags != 0 {
        return Err(needs_allocation(&format!(
            "removing {path} with quota accounting on"
        )));
    }
    let layout = ShortForm::read(parent)?;
    if layout.ino_len != 4 {
        return Err(needs_allocation(&format!(
            "removing {path} from a directory storing 8-byte inode numbers"
        )));
    }
    let (start, end, ino) = find_entry(parent, &layout, name)?
        .ok_or_else(|| Error::not_found(format!("xfs: {path} does not exist")))?;
    let mut victim = Inode::read(dev, sb, ino)?;
    let extents = removable_blocks(dev, sb, &victim, path)?;

    let plan = Overlay::new(dev);
    let now = write::now_ns();
    // 1. The entry: the rest of the directory moves down over it.
    let data = parent.data_fork().get(..layout.size).unwrap_or_default();
    let mut tail = data.get(end..).unwrap_or_default().to_vec();
    tail.resize(layout.size - start, 0);
    parent.write_fork(start, &tail)?;
    parent.write_fork(0, &[layout.count.saturating_sub(1)])?;
    let parent_mode = parent.mode;
    parent.rewrite_core((layout.size - (end - start)) as u64, parent_mode, now)?;
    plan.write_at(parent.offset, &parent.raw)?;
    // 2. The inode.
    victim.make_free(sb, now)?;
    plan.write_at(victim.offset, &victim.raw)?;
    ialloc::free(&plan, sb, ino)?;
    sb.give_free_counts(&plan, 0, 1)?;
    // 3. Its blocks: reverse mappings first, then free space.
    let ag_mask = (1u64 << sb.ag_block_log) - 1;
    let mut freed = 0u64;
    for e in &extents {
        let agno = (e.disk_block >> sb.ag_block_log) as u32;
        let agbno = (e.disk_block & ag_mask) as u32;
        let blocks = u32::try_from(e.blocks)
            .map_err(|_| corrupt(format!("inode {ino}: extent length overflows")))?;
        if sb.has_rmapbt() {
            let agf = crate::agf::Agf::read(&plan, sb, agno)?;
            let gone = rmap::data_mapping(agbno, blocks, ino, e.file_block);
            for (offset, bytes) in rmap::plan(&plan, sb, agno, &agf, &rmap::Change::Remove(gone))? {
                plan.write_at(offset, &bytes)?;
            }
        }
        alloc::free(&plan, sb, agno, agbno, blocks)?;
        freed += e.blocks;
    }
    if freed > 0 {
        sb.give_free_counts(&plan, freed, 0)?;
    }
    plan.commit()
}

/// The data extents `victim` frees, after checking it is something we can
/// remove: one link, blocks (if any) all in an extent list.
fn removable_blocks(
    dev: &dyn Device,
    sb: &Superblock,
    victim: &Inode,
    path: &str,
) -> Result<Vec<bmap::Extent>, Error> {
    match victim.kind() {
        FileKind::Directory => {
            return Err(Error::invalid_input(format!(
                "xfs: {path} is a directory; remove deletes regular files and symlinks"
            )));
        }
        FileKind::Regular | FileKind::Symlink | FileKind::Other => {}
    }
    if victim.nlink()? != 1 {
        return Err(needs_allocation(&format!(
            "removing {path}, which has {} hard links",
            victim.nlink()?
        )));
    }
    if victim.realtime {
        return Err(Error::unsupported(format!(
            "xfs: {path} lives on the realtime device, which this handler cannot reach"
        )));
    }
    if sb.has_reflink() && victim.is_reflinked() {
        return Err(needs_allocation(&format!(
            "removing {path}, which may share blocks with other files (reflink)"
        )));
    }
    let extents = match victim.format {
        ForkFormat::Extents => bmap::extents(dev, sb, victim)?,
        ForkFormat::Local | ForkFormat::Device => Vec::new(),
        ForkFormat::Btree => {
            return Err(needs_allocation(&format!(
                "removing {path}, whose block map is a B+tree"
            )));
        }
    };
    // Any other block (attribute fork, block map) is beyond us.
    let data_blocks: u64 = extents.iter().map(|e| e.blocks).sum();
    if data_blocks != victim.nblocks()? {
        return Err(needs_allocation(&format!(
            "removing {path}, which owns blocks besides its data (extended attributes)"
        )));
    }
    Ok(extents)
}

/// The entry named `name`: (start, end) of its bytes in the data fork, and
/// its inode number.
fn find_entry(
    dir: &Inode,
    layout: &ShortForm,
    name: &str,
) -> Result<Option<(usize, usize, u64)>, Error> {
    let data = dir.data_fork().get(..layout.size).unwrap_or_default();
    let mut r = ByteReader::new(data).named("xfs short-form directory");
    r.skip(2 + layout.ino_len)?;
    for _ in 0..layout.count {
        let start = r.position();
        let namelen = usize::from(r.u8()?);
        r.skip(2)?;
        let entry_name = r.bytes(namelen)?;
        r.skip(1)?; // file type
        let ino = u64::from(r.be_u32()?);
        if entry_name == name.as_bytes() {
            return Ok(Some((start, r.position(), ino)));
        }
    }
    Ok(None)
}
