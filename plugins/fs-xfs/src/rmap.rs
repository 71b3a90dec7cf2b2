//! Recording new file blocks in the reverse-mapping B+tree (rmapbt), which
//! says, for every used block of an AG, which inode and file offset own it.
//!
//! Growing a file either lengthens the record of its last extent (the new
//! blocks follow it on disk) or adds one record. Like the free-space change
//! in [`crate::alloc`], this is done only when it needs no reshaping: the
//! record fits in its leaf. Freeing a file's extent removes its record, as
//! long as the leaf keeps at least one. The rmapbt is an "overlapping" tree, whose interior
//! blocks hold a low and a high key per child, so after changing a leaf we
//! recompute both keys along the path up to the root.

use crate::agbtree::{self, HEADER_LEN, MAX_LEVELS, RMAPBT};
use crate::agf::Agf;
use crate::checksum::update_crc;
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;

/// Bytes per record: start, length, owner, offset with flags.
const REC_LEN: usize = 24;
/// Bytes per key: start, owner, offset with flags.
const KEY_LEN: usize = 20;
/// The offset bits of `rm_offset`; the rest are flags.
const OFFSET_MASK: u64 = (1 << 54) - 1;
/// `XFS_RMAP_OFF_UNWRITTEN`: not part of keys.
const UNWRITTEN: u64 = 1 << 61;
/// `XFS_RMAP_OFF_BMBT_BLOCK`: a block-map block, whose offset means nothing.
const BMBT_BLOCK: u64 = 1 << 62;
/// Owners with the high bit set are not inodes (free-space trees, log...).
const NON_INODE_OWNER: u64 = 1 << 63;

/// One reverse mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub start: u32,
    pub blocks: u32,
    pub owner: u64,
    /// File offset and flags, as stored.
    pub offset: u64,
}

/// A key: what records are sorted by.
type Key = (u32, u64, u64);

impl Mapping {
    fn decode(r: &ByteReader<'_>, at: usize) -> Result<Mapping, Error> {
        Ok(Mapping {
            start: r.be_u32_at(at)?,
            blocks: r.be_u32_at(at + 4)?,
            owner: r.be_u64_at(at + 8)?,
            offset: r.be_u64_at(at + 16)?,
        })
    }

    fn encode(&self) -> [u8; REC_LEN] {
        let mut out = [0u8; REC_LEN];
        out[..4].copy_from_slice(&self.start.to_be_bytes());
        out[4..8].copy_from_slice(&self.blocks.to_be_bytes());
        out[8..16].copy_from_slice(&self.owner.to_be_bytes());
        out[16..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    fn low_key(&self) -> Key {
        (self.start, self.owner, self.offset & !UNWRITTEN)
    }

    /// The key of the last block (`xfs_rmapbt_init_high_key_from_rec`).
    fn high_key(&self) -> Key {
        let adjust = self.blocks.saturating_sub(1);
        let (start, owner, offset) = self.low_key();
        let offset = if owner & NON_INODE_OWNER != 0 || offset & BMBT_BLOCK != 0 {
            offset
        } else {
            ((offset & OFFSET_MASK) + u64::from(adjust)) | (offset & !OFFSET_MASK)
        };
        (start.saturating_add(adjust), owner, offset)
    }
}

fn encode_key(key: Key) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    out[..4].copy_from_slice(&key.0.to_be_bytes());
    out[4..12].copy_from_slice(&key.1.to_be_bytes());
    out[12..].copy_from_slice(&key.2.to_be_bytes());
    out
}

fn decode_key(r: &ByteReader<'_>, at: usize) -> Result<Key, Error> {
    Ok((
        r.be_u32_at(at)?,
        r.be_u64_at(at + 4)?,
        r.be_u64_at(at + 12)?,
    ))
}

/// What to do to the tree.
pub enum Change {
    /// `old` (the file's last extent) grows to `old.blocks + more` blocks.
    Extend { old: Mapping, more: u32 },
    /// A new record.
    Insert(Mapping),
    /// The record of a data extent goes (its blocks are freed): it must match
    /// `Mapping` exactly, but for the unwritten flag.
    Remove(Mapping),
}

/// A block on the path from the root to the changed leaf.
struct PathBlock {
    agbno: u32,
    block: Vec<u8>,
    /// Which child the path follows (interior blocks).
    child: usize,
}

/// The rmapbt blocks to write for `change` in AG `agno`: (byte offset, bytes).
pub fn plan(
    dev: &dyn Device,
    sb: &Superblock,
    agno: u32,
    agf: &Agf,
    change: &Change,
) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let levels = agf.rmap_levels;
    if levels == 0 || levels > MAX_LEVELS {
        return Err(corrupt(format!(
            "AG {agno}: reverse-mapping B+tree has {levels} levels (damaged AGF)"
        )));
    }
    let search = match change {
        Change::Extend { old, .. } => old.low_key(),
        Change::Insert(new) | Change::Remove(new) => new.low_key(),
    };
    let block_size = sb.block_size as usize;
    let node_max = (block_size - HEADER_LEN) / (2 * KEY_LEN + 4);
    let leaf_max = (block_size - HEADER_LEN) / REC_LEN;
    // Walk down: at each node, the last child whose low key is <= the search key.
    let mut path = Vec::new();
    let mut agbno = agf.rmap_root;
    for level in (0..levels).rev() {
        let block = agbtree::read_block(dev, sb, agno, agbno, level, &RMAPBT)?;
        let r = ByteReader::new(&block).named("xfs rmapbt block");
        let numrecs = usize::from(r.be_u16_at(6)?);
        if level == 0 {
            if numrecs > leaf_max {
                return Err(corrupt(format!(
                    "AG {agno}: rmapbt leaf {agbno} claims {numrecs} records"
                )));
            }
            path.push(PathBlock {
                agbno,
                block,
                child: 0,
            });
            break;
        }
        if numrecs == 0 || numrecs > node_max {
            return Err(corrupt(format!(
                "AG {agno}: rmapbt node {agbno} claims {numrecs} records"
            )));
        }
        let mut child = 0;
        for i in 0..numrecs {
            if decode_key(&r, HEADER_LEN + i * 2 * KEY_LEN)? <= search {
                child = i;
            }
        }
        let next = r.be_u32_at(HEADER_LEN + node_max * 2 * KEY_LEN + child * 4)?;
        path.push(PathBlock {
            agbno,
            block,
            child,
        });
        agbno = next;
    }
    let depth = path.len();
    let Some(leaf) = path.last_mut() else {
        return Err(Error::internal("xfs: rmapbt walk found no leaf"));
    };
    let r = ByteReader::new(&leaf.block).named("xfs rmapbt leaf");
    let numrecs = usize::from(r.be_u16_at(6)?);
    let mut records = (0..numrecs)
        .map(|i| Mapping::decode(&r, HEADER_LEN + i * REC_LEN))
        .collect::<Result<Vec<_>, _>>()?;
    match change {
        Change::Extend { old, more } => {
            let found = records.iter_mut().find(|m| **m == *old).ok_or_else(|| {
                Error::unsupported(format!(
                    "xfs: the reverse mapping of the file's last extent (AG {agno} block {}) is not \
                     where expected; grow the file from a rescue shell after boot",
                    old.start
                ))
            })?;
            found.blocks = found.blocks.saturating_add(*more);
        }
        Change::Insert(new) => {
            if records.len() >= leaf_max {
                return Err(crate::write::needs_allocation(
                    "adding a reverse mapping to a full rmapbt leaf (a B+tree split)",
                ));
            }
            let at = records
                .iter()
                .position(|m| m.low_key() > new.low_key())
                .unwrap_or(records.len());
            records.insert(at, *new);
        }
        Change::Remove(gone) => {
            let at = records
                .iter()
                .position(|m| {
                    m.start == gone.start
                        && m.blocks == gone.blocks
                        && m.owner == gone.owner
                        && m.offset & !UNWRITTEN == gone.offset
                })
                .ok_or_else(|| {
                    Error::unsupported(format!(
                        "xfs: the reverse mapping of a freed extent (AG {agno} block {}, {} \
                         blocks) is not one record where expected; remove the file from a rescue \
                         shell after boot",
                        gone.start, gone.blocks
                    ))
                })?;
            if records.len() == 1 && depth > 1 {
                return Err(crate::write::needs_allocation(
                    "removing the last reverse mapping of an rmapbt leaf (a B+tree merge)",
                ));
            }
            records.remove(at);
        }
    }
    // Rewrite the leaf, then every node above it with the child's new keys.
    let mut keys = leaf_keys(&records);
    write_leaf(&mut leaf.block, &records)?;
    for depth in (0..path.len().saturating_sub(1)).rev() {
        let Some(node) = path.get_mut(depth) else {
            break;
        };
        let (low, high) = keys;
        let at = HEADER_LEN + node.child * 2 * KEY_LEN;
        put(&mut node.block, at, &encode_key(low))?;
        put(&mut node.block, at + KEY_LEN, &encode_key(high))?;
        keys = node_keys(&node.block)?;
        update_crc(&mut node.block, agbtree::CRC_OFFSET)?;
    }
    path.into_iter()
        .map(|p| {
            let offset = sb.ag_block_to_byte(agno, p.agbno).ok_or_else(|| {
                corrupt(format!(
                    "AG {agno}: rmapbt block {} is outside the AG",
                    p.agbno
                ))
            })?;
            Ok((offset, p.block))
        })
        .collect()
}

/// The low and high keys of a leaf's records.
fn leaf_keys(records: &[Mapping]) -> (Key, Key) {
    let low = records.first().map_or((0, 0, 0), Mapping::low_key);
    let high = records
        .iter()
        .map(Mapping::high_key)
        .max()
        .unwrap_or((0, 0, 0));
    (low, high)
}

/// The low and high keys of an interior block: its first low key and the
/// largest high key.
fn node_keys(block: &[u8]) -> Result<(Key, Key), Error> {
    let r = ByteReader::new(block).named("xfs rmapbt node");
    let numrecs = usize::from(r.be_u16_at(6)?);
    let low = decode_key(&r, HEADER_LEN)?;
    let mut high = decode_key(&r, HEADER_LEN + KEY_LEN)?;
    for i in 1..numrecs {
        high = high.max(decode_key(&r, HEADER_LEN + i * 2 * KEY_LEN + KEY_LEN)?);
    }
    Ok((low, high))
}

fn write_leaf(block: &mut [u8], records: &[Mapping]) -> Result<(), Error> {
    let count =
        u16::try_from(records.len()).map_err(|_| Error::internal("xfs: too many rmap records"))?;
    put(block, 6, &count.to_be_bytes())?;
    let body = block
        .get_mut(HEADER_LEN..)
        .ok_or_else(|| Error::internal("xfs: rmapbt block shorter than its header"))?;
    body.fill(0);
    for (slot, m) in body.chunks_exact_mut(REC_LEN).zip(records) {
        slot.copy_from_slice(&m.encode());
    }
    update_crc(block, agbtree::CRC_OFFSET)
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), Error> {
    buf.get_mut(at..at + bytes.len())
        .ok_or_else(|| Error::internal("xfs: rmapbt field outside its block"))?
        .copy_from_slice(bytes);
    Ok(())
}

/// The record of data-fork blocks `blocks` at `start`, file offset `offset`, of inode `owner`.
pub fn data_mapping(start: u32, blocks: u32, owner: u64, offset: u64) -> Mapping {
    Mapping {
        start,
        blocks,
        owner,
        offset: offset & OFFSET_MASK,
    }
}
