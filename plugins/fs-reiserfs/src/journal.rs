//! Whether the journal holds transactions that still need replaying.
//!
//! Homeward never writes the journal: it only reports, through `clean`, that a
//! volume was not unmounted cleanly. The journal header (the block after the
//! log) records the last transaction flushed to its home blocks and where
//! replay would start. If a valid transaction sits there (a descriptor block
//! with the "ReIsErLB" magic, of the same mount, newer than the last flushed
//! one, and a commit block that matches it), the kernel or `reiserfsck` would
//! replay it, so the volume is not clean. This is the same test
//! `reiserfsck`'s replay uses to pick its first transaction.

use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

const DESC_MAGIC: &[u8] = b"ReIsErLB";

/// True when the journal needs replay; errors only on an unreadable journal.
pub fn needs_replay(dev: &dyn Device, sb: &Superblock) -> Result<bool, Error> {
    let j = &sb.journal;
    if j.device != 0 || j.size == 0 {
        // An external journal cannot be seen from this volume; the superblock
        // state is all there is to go by.
        return Ok(false);
    }
    let bs = u64::from(sb.block_size);
    let read_block = |nr: u64| -> Result<Vec<u8>, Error> {
        if nr >= u64::from(sb.block_count) {
            return Err(Error::invalid_input(format!(
                "reiserfs: journal block {nr} is outside the {}-block volume (damaged journal parameters)",
                sb.block_count
            )));
        }
        dev.read_vec(nr * bs, sb.block_size as usize)
    };
    let header = read_block(u64::from(j.first_block) + u64::from(j.size))?;
    let h = ByteReader::new(&header).named("reiserfs journal header");
    let last_flushed = h.le_u32_at(0)?;
    let replay_start = h.le_u32_at(4)?;
    let mount_id = h.le_u32_at(8)?;
    if replay_start >= j.size {
        return Ok(false);
    }
    let desc_nr = u64::from(j.first_block) + u64::from(replay_start);
    let desc = read_block(desc_nr)?;
    let d = ByteReader::new(&desc).named("reiserfs journal descriptor");
    let magic = d.slice_at(desc.len().saturating_sub(12), DESC_MAGIC.len())?;
    if magic != DESC_MAGIC {
        return Ok(false);
    }
    let trans_id = d.le_u32_at(0)?;
    let trans_len = d.le_u32_at(4)?;
    let desc_mount = d.le_u32_at(8)?;
    if desc_mount != mount_id || trans_id <= last_flushed || trans_len == 0 || trans_len >= j.size {
        return Ok(false);
    }
    let commit_nr = u64::from(j.first_block)
        + (u64::from(replay_start) + u64::from(trans_len) + 1) % u64::from(j.size);
    let commit = read_block(commit_nr)?;
    let c = ByteReader::new(&commit).named("reiserfs journal commit");
    Ok(c.le_u32_at(0)? == trans_id && c.le_u32_at(4)? == trans_len)
}
