//! Object ids: taking a new one for a created file and giving it back when a
//! file is removed, through the superblock's object-id map.
//!
//! The map is a sorted list of boundaries: ids in `[map[0], map[1])`,
//! `[map[2], map[3])`, ... are in use. New ids come from the end of the first
//! used range, as the kernel takes them.

use crate::superblock::Superblock;
use homeward_sdk::Error;

/// Takes a free object id.
pub fn allocate(sb: &mut Superblock) -> Result<u32, Error> {
    let (Some(&next), limit) = (sb.oid_map.get(1), sb.oid_map.get(2).copied()) else {
        return Err(Error::invalid_input(
            "reiserfs: object-id map has fewer than 2 entries (damaged superblock)",
        ));
    };
    if next == u32::MAX {
        return Err(Error::conflict("reiserfs: no object ids left"));
    }
    let id = next;
    if limit == Some(next + 1) {
        // The first free gap closes: merge the two used ranges.
        sb.oid_map.drain(1..3);
    } else if let Some(slot) = sb.oid_map.get_mut(1) {
        *slot = next + 1;
    }
    Ok(id)
}

/// Gives `id` back. When the map is full the id stays marked used, which
/// only wastes it (the kernel does the same).
pub fn release(sb: &mut Superblock, id: u32) {
    let map = &mut sb.oid_map;
    // The used range holding id: the last even index whose start is <= id.
    let Some(i) = (0..map.len() / 2)
        .map(|p| p * 2)
        .rev()
        .find(|&i| map[i] <= id)
    else {
        return;
    };
    let (start, end) = (map[i], map[i + 1]);
    if id >= end {
        return;
    }
    if start == id && end == id + 1 {
        map.drain(i..i + 2);
    } else if start == id {
        map[i] = id + 1;
    } else if end == id + 1 {
        map[i + 1] = id;
    } else if map.len() + 2 <= usize::from(sb.oid_max) {
        map.splice(i + 1..i + 1, [id, id + 1]);
    }
}
