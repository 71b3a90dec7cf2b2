//! Writing: rewriting an existing regular file, in place or grown at its end.
//!
//! A rewrite that fits the blocks the file already has (same size, shorter,
//! or longer into the slack of its last block) writes the data blocks, then
//! the inode (size, permission bits, mtime/ctime, change counter, CRC):
//! exactly the fields the kernel changes for such a write, so the log stays
//! clean and `xfs_repair -n` has nothing to say. Blocks past a shrunk end
//! stay allocated, which XFS allows (it is what speculative preallocation
//! looks like); the tail of the new last block is zeroed so old bytes never
//! reappear if the file grows again.
//!
//! A file in extents format that needs more blocks gets them from
//! [`crate::alloc`] at its end (extending its last extent when the free space
//! right after it is taken, else adding one extent record), recorded in the
//! reverse-mapping tree too when there is one ([`crate::rmap`]), when the
//! simple case holds: no quota accounting (whose usage we would have to
//! update), room for one more record in the inode. New files, directories
//! and symlinks are [`crate::create`]'s, removal [`crate::remove`]'s.
//!
//! Reflink: an extent shared with another file must not be written in place
//! (the other file would change too). A file whose inode carries the reflink
//! flag has its blocks checked against the AG reference-count trees, and a
//! rewrite touching a block with a count of 2 or more is refused. Files
//! without the flag (all files `mkfs.xfs -p` makes) never share blocks.

use crate::agbtree::{self, REFCOUNTBT};
use crate::agf::Agf;
use crate::alloc;
use crate::bmap::{self, Extent, MAX_EXTENT_BLOCKS, REC_LEN};
use crate::corrupt;
use crate::inode::{ForkFormat, Inode};
use crate::rmap;
use crate::superblock::Superblock;
use crate::used::be32;
use homeward_sdk::Error;
use homeward_sdk::fs::Device;

/// The high bit of a refcount record's start marks copy-on-write staging
/// extents, which belong to one file only.
const REFCOUNT_COW_FLAG: u32 = 1 << 31;

/// What to tell the operator when a change needs allocation.
pub fn needs_allocation(what: &str) -> Error {
    Error::unsupported(format!(
        "xfs: {what} is beyond what this handler writes (it rewrites and grows existing files, \
         and creates and removes files, directories and symlinks in small directories, when no \
         B+tree or directory needs restructuring); make this change from a rescue shell after \
         the guest boots, or let the guest step report it as a manual step"
    ))
}

/// Replaces the content of regular file `inode` with `content`, in place.
pub fn rewrite(
    dev: &dyn Device,
    sb: &Superblock,
    inode: &mut Inode,
    path: &str,
    content: &[u8],
    mode: u32,
) -> Result<(), Error> {
    if inode.realtime {
        return Err(Error::unsupported(format!(
            "xfs: {path} lives on the realtime device, which this handler cannot reach"
        )));
    }
    if !matches!(inode.format, ForkFormat::Extents | ForkFormat::Btree) {
        return Err(Error::unsupported(format!(
            "xfs: {path} has a {:?} data fork, which this handler cannot write",
            inode.format
        )));
    }
    let block = u64::from(sb.block_size);
    let mut extents = bmap::extents(dev, sb, inode)?;
    let needed = (content.len() as u64).div_ceil(block);
    let allocated = written_prefix(&extents);
    if sb.has_reflink() && inode.is_reflinked() {
        refuse_shared(dev, sb, &extents, needed.min(allocated), path)?;
    }
    let growth = if needed > allocated {
        Some(plan_growth(
            dev,
            sb,
            inode,
            &mut extents,
            allocated,
            needed,
            path,
        )?)
    } else {
        None
    };
    for e in &extents {
        let start = e.file_block.min(needed);
        let end = e.file_end().min(needed);
        if start >= end {
            continue;
        }
        // Whole blocks: the content, then zeros to the end of the last one.
        let mut data = vec![0u8; ((end - start) * block) as usize];
        let from = (start * block) as usize;
        let to = ((end * block) as usize).min(content.len());
        if let (Some(src), Some(dst)) = (content.get(from..to), data.get_mut(..to - from)) {
            dst.copy_from_slice(src);
        }
        let disk = sb
            .fsb_to_byte(e.disk_block + (start - e.file_block))
            .ok_or_else(|| Error::internal("xfs: checked extent maps outside the file system"))?;
        dev.write_at(disk, &data)?;
    }
    if let Some(allocation) = growth {
        let blocks = u64::from(allocation.blocks);
        allocation.commit(dev)?;
        sb.take_free_counts(dev, blocks, 0)?;
    }
    inode.rewrite_core(content.len() as u64, (mode & 0o7777) as u16, now_ns())?;
    dev.write_at(inode.offset, &inode.raw)
}

/// Allocates blocks `allocated..needed` for `inode`, records them in its
/// extent list (in memory: the caller writes the inode last) and in
/// `extents`, and returns the free-space changes to commit after the data.
fn plan_growth(
    dev: &dyn Device,
    sb: &Superblock,
    inode: &mut Inode,
    extents: &mut Vec<Extent>,
    allocated: u64,
    needed: u64,
    path: &str,
) -> Result<alloc::Allocation, Error> {
    let growing = || format!("growing {path} past its {allocated} allocated blocks");
    if sb.qflags != 0 {
        return Err(needs_allocation(&format!(
            "{} with quota accounting on",
            growing()
        )));
    }
    if inode.format != ForkFormat::Extents {
        return Err(needs_allocation(&format!(
            "{} (its block map is a B+tree)",
            growing()
        )));
    }
    if extents.iter().any(|e| e.file_end() > allocated) {
        return Err(needs_allocation(&format!(
            "{} (it has blocks mapped past a hole)",
            growing()
        )));
    }
    let more = needed - allocated;
    let blocks = u32::try_from(more)
        .ok()
        .filter(|&b| u64::from(b) <= MAX_EXTENT_BLOCKS)
        .ok_or_else(|| needs_allocation(&format!("{} by {more} blocks at once", growing())))?;
    // The record mapping the file's last block, if any (it has the highest offset).
    let last = extents
        .iter()
        .enumerate()
        .filter(|(_, e)| e.file_end() == allocated && allocated > 0)
        .map(|(i, e)| (i, *e))
        .next();
    // Right after the last extent if possible, else in the inode's AG.
    let ag_mask = (1u64 << sb.ag_block_log) - 1;
    let (first_ag, near) = match last {
        Some((_, e)) => {
            let end = e.disk_block + e.blocks;
            (
                (end >> sb.ag_block_log) as u32,
                Some((end & ag_mask) as u32),
            )
        }
        None => (sb.inode_ag(inode.ino), None),
    };
    let nblocks = inode.nblocks()?.checked_add(more).ok_or_else(|| {
        corrupt(format!(
            "inode {}: block count overflows (damaged inode)",
            inode.ino
        ))
    })?;
    // AGs whose rmapbt leaf had no room for the new record: try the others.
    let mut skip = Vec::new();
    loop {
        let mut allocation = alloc::plan(dev, sb, first_ag % sb.ag_count, near, blocks, &skip)?;
        let start = allocation.fsb(sb);
        // Extend the last extent when the new blocks follow it on disk.
        let extend = last.filter(|(_, e)| {
            e.disk_block + e.blocks == start
                && start >> sb.ag_block_log == e.disk_block >> sb.ag_block_log
                && e.blocks + more <= MAX_EXTENT_BLOCKS
        });
        if sb.has_rmapbt() {
            let change = match extend {
                Some((_, e)) => rmap::Change::Extend {
                    old: rmap::data_mapping(
                        (e.disk_block & ag_mask) as u32,
                        e.blocks as u32,
                        inode.ino,
                        e.file_block,
                    ),
                    more: blocks,
                },
                None => rmap::Change::Insert(rmap::data_mapping(
                    allocation.agbno,
                    blocks,
                    inode.ino,
                    allocated,
                )),
            };
            match allocation.record_mapping(dev, sb, &change) {
                Err(Error::Unsupported(_)) if skip.len() + 1 < sb.ag_count as usize => {
                    skip.push(allocation.agno);
                    continue;
                }
                other => other?,
            }
        }
        // The extents format lists records in the order `extents` holds
        // them, so an extent's index is its slot in the inode.
        let (index, record, nextents) = match extend {
            Some((i, e)) => {
                let grown = Extent {
                    blocks: e.blocks + more,
                    ..e
                };
                extents[i] = grown;
                (i, grown, inode.nextents)
            }
            None => {
                let added = Extent {
                    file_block: allocated,
                    disk_block: start,
                    blocks: more,
                    unwritten: false,
                };
                let slot = usize::try_from(inode.nextents).unwrap_or(usize::MAX);
                if slot.saturating_add(1).saturating_mul(REC_LEN) > inode.data_fork().len() {
                    return Err(needs_allocation(&format!(
                        "{} (its inode has no room for another extent record)",
                        growing()
                    )));
                }
                extents.push(added);
                (slot, added, inode.nextents + 1)
            }
        };
        inode.set_extent(index, &record.encode(), nblocks, nextents, sb.has_nrext64())?;
        return Ok(allocation);
    }
}

/// How many blocks from file block 0 are mapped by written extents, without a gap.
fn written_prefix(extents: &[Extent]) -> u64 {
    let mut sorted: Vec<&Extent> = extents.iter().collect();
    sorted.sort_by_key(|e| e.file_block);
    let mut covered = 0u64;
    for e in sorted {
        if e.file_block > covered || e.unwritten {
            break;
        }
        covered = covered.max(e.file_end());
    }
    covered
}

/// Fails when any of the first `needed` file blocks is shared with another file.
fn refuse_shared(
    dev: &dyn Device,
    sb: &Superblock,
    extents: &[Extent],
    needed: u64,
    path: &str,
) -> Result<(), Error> {
    let ag_mask = (1u64 << sb.ag_block_log) - 1;
    for e in extents.iter().filter(|e| e.file_block < needed) {
        let blocks = e.file_end().min(needed) - e.file_block;
        let agno = (e.disk_block >> sb.ag_block_log) as u32;
        let agbno = e.disk_block & ag_mask;
        let agf = Agf::read(dev, sb, agno)?;
        for rec in agbtree::records(
            dev,
            sb,
            agno,
            agf.refcount_root,
            agf.refcount_levels,
            &REFCOUNTBT,
        )? {
            let start = be32(&rec, 0);
            let (len, count) = (be32(&rec, 4), be32(&rec, 8));
            if start & REFCOUNT_COW_FLAG != 0 || count < 2 {
                continue;
            }
            let (start, end) = (u64::from(start), u64::from(start) + u64::from(len));
            if start < agbno + blocks && agbno < end {
                return Err(Error::unsupported(format!(
                    "xfs: {path} shares blocks with another file (reflink); rewriting them in place \
                     would change the other file too, and copy-on-write needs allocation: make \
                     this change from a rescue shell after the guest boots"
                )));
            }
        }
    }
    Ok(())
}

/// The current time in Unix nanoseconds (WASI's clock inside the plugin).
pub fn now_ns() -> i128 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}
