//! Formatted tree blocks: leaves (item headers + item bodies) and internal
//! nodes (keys + child pointers), parsed into owned values and encoded back.
//!
//! Every field read from disk is checked here once (levels, counts, item
//! locations, key order), so the tree walk and the writer work on values
//! that are known to be self-consistent.

use crate::key::{KEY_SIZE, Key, KeyFormat};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use std::rc::Rc;

/// Bytes of the block head at the start of every tree block.
pub const BLOCK_HEAD_SIZE: usize = 24;
/// Bytes of a leaf's item header.
pub const ITEM_HEAD_SIZE: usize = 24;
/// Bytes of an internal node's child pointer (`disk_child`).
pub const CHILD_SIZE: usize = 8;
/// The level of leaves (0 is a free block).
pub const LEAF_LEVEL: u16 = 1;

/// One leaf item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's key.
    pub key: Key,
    /// The layout its key is stored in (`ih_version`).
    pub format: KeyFormat,
    /// Entry count for directory items, "free space" for others.
    pub count: u16,
    /// The item body.
    pub body: Vec<u8>,
}

impl Item {
    /// Bytes the item takes in a leaf, header included.
    pub fn leaf_bytes(&self) -> usize {
        ITEM_HEAD_SIZE + self.body.len()
    }
}

/// A child pointer of an internal node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The child's block.
    pub block: u32,
    /// Bytes used in the child (block size minus head and free space).
    pub used: u16,
}

/// An internal node: `children.len() == keys.len() + 1`; `keys[i]` is the
/// first key of the subtree under `children[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Internal {
    /// Level (2 for the parents of leaves).
    pub level: u16,
    /// Delimiting keys.
    pub keys: Vec<Key>,
    /// Child pointers.
    pub children: Vec<Child>,
}

/// A parsed tree block, shared (parsed nodes are cached).
#[derive(Debug, Clone)]
pub enum Node {
    /// Level 1.
    Leaf(Rc<Vec<Item>>),
    /// Level 2 and up.
    Internal(Rc<Internal>),
}

impl Node {
    /// The node's level.
    pub fn level(&self) -> u16 {
        match self {
            Node::Leaf(_) => LEAF_LEVEL,
            Node::Internal(node) => node.level,
        }
    }
}

fn damaged(block: u32, what: String) -> Error {
    Error::invalid_input(format!(
        "reiserfs: tree block {block}: {what} (damaged tree node)"
    ))
}

/// Parses tree block `nr`, which its parent says is at `level`.
pub fn parse(nr: u32, data: &[u8], level: u16) -> Result<Node, Error> {
    let r = ByteReader::new(data).named("reiserfs tree block");
    let found_level = r.le_u16_at(0)?;
    if found_level != level {
        return Err(damaged(
            nr,
            format!("level {found_level}, expected {level}"),
        ));
    }
    let count = usize::from(r.le_u16_at(2)?);
    if level == LEAF_LEVEL {
        parse_leaf(nr, &r, data.len(), count).map(|items| Node::Leaf(Rc::new(items)))
    } else {
        parse_internal(nr, &r, data.len(), count, level).map(|node| Node::Internal(Rc::new(node)))
    }
}

fn parse_leaf(nr: u32, r: &ByteReader, size: usize, count: usize) -> Result<Vec<Item>, Error> {
    let table_end = BLOCK_HEAD_SIZE + count * ITEM_HEAD_SIZE;
    if table_end > size {
        return Err(damaged(
            nr,
            format!("{count} item headers do not fit in the leaf"),
        ));
    }
    let mut items: Vec<Item> = Vec::with_capacity(count);
    for i in 0..count {
        let at = BLOCK_HEAD_SIZE + i * ITEM_HEAD_SIZE;
        let ih_count = r.le_u16_at(at + 16)?;
        let len = usize::from(r.le_u16_at(at + 18)?);
        let location = usize::from(r.le_u16_at(at + 20)?);
        let version = r.le_u16_at(at + 22)?;
        let format = match version & 0x0fff {
            0 => KeyFormat::V1,
            1 => KeyFormat::V2,
            other => {
                return Err(damaged(
                    nr,
                    format!("item {i} has key format {other}, expected 0 or 1"),
                ));
            }
        };
        if location < table_end || location + len > size {
            return Err(damaged(
                nr,
                format!(
                    "item {i} body at {location}+{len} is outside the item area {table_end}..{size}"
                ),
            ));
        }
        let key = Key::parse(r.slice_at(at, KEY_SIZE)?, format)?;
        if let Some(prev) = items.last()
            && prev.key >= key
        {
            return Err(damaged(
                nr,
                format!("item {i} key {key} does not follow {}", prev.key),
            ));
        }
        items.push(Item {
            key,
            format,
            count: ih_count,
            body: r.slice_at(location, len)?.to_vec(),
        });
    }
    Ok(items)
}

fn parse_internal(
    nr: u32,
    r: &ByteReader,
    size: usize,
    count: usize,
    level: u16,
) -> Result<Internal, Error> {
    if BLOCK_HEAD_SIZE + count * KEY_SIZE + (count + 1) * CHILD_SIZE > size {
        return Err(damaged(
            nr,
            format!("{count} keys do not fit in the internal node"),
        ));
    }
    let mut keys: Vec<Key> = Vec::with_capacity(count);
    for i in 0..count {
        let key = Key::parse_guess(r.slice_at(BLOCK_HEAD_SIZE + i * KEY_SIZE, KEY_SIZE)?)?;
        if let Some(prev) = keys.last()
            && *prev >= key
        {
            return Err(damaged(nr, format!("key {i} {key} does not follow {prev}")));
        }
        keys.push(key);
    }
    let base = BLOCK_HEAD_SIZE + count * KEY_SIZE;
    let mut children = Vec::with_capacity(count + 1);
    for i in 0..=count {
        children.push(Child {
            block: r.le_u32_at(base + i * CHILD_SIZE)?,
            used: r.le_u16_at(base + i * CHILD_SIZE + 4)?,
        });
    }
    Ok(Internal {
        level,
        keys,
        children,
    })
}

/// Bytes `items` take in a leaf after the block head.
pub fn leaf_used(items: &[Item]) -> usize {
    items.iter().map(Item::leaf_bytes).sum()
}

/// Bytes an internal node with `keys` keys takes after the block head.
pub fn internal_used(keys: usize) -> usize {
    keys * KEY_SIZE + (keys + 1) * CHILD_SIZE
}

fn block_head(out: &mut [u8], level: u16, count: usize, free: usize) {
    out[0..2].copy_from_slice(&level.to_le_bytes());
    out[2..4].copy_from_slice(&(count as u16).to_le_bytes());
    out[4..6].copy_from_slice(&(free as u16).to_le_bytes());
}

/// Encodes a leaf; the caller has checked that the items fit.
pub fn encode_leaf(items: &[Item], block_size: usize) -> Vec<u8> {
    let mut out = vec![0u8; block_size];
    let free = block_size - BLOCK_HEAD_SIZE - leaf_used(items);
    block_head(&mut out, LEAF_LEVEL, items.len(), free);
    // Bodies are packed from the end of the block, first item last.
    let mut location = block_size;
    for (i, item) in items.iter().enumerate() {
        location -= item.body.len();
        let at = BLOCK_HEAD_SIZE + i * ITEM_HEAD_SIZE;
        out[at..at + KEY_SIZE].copy_from_slice(&item.key.encode(item.format));
        out[at + 16..at + 18].copy_from_slice(&item.count.to_le_bytes());
        out[at + 18..at + 20].copy_from_slice(&(item.body.len() as u16).to_le_bytes());
        out[at + 20..at + 22].copy_from_slice(&(location as u16).to_le_bytes());
        out[at + 22..at + 24].copy_from_slice(&item.format.code().to_le_bytes());
        out[location..location + item.body.len()].copy_from_slice(&item.body);
    }
    out
}

/// Encodes an internal node; the caller has checked that it fits.
pub fn encode_internal(node: &Internal, block_size: usize) -> Vec<u8> {
    let mut out = vec![0u8; block_size];
    let count = node.keys.len();
    block_head(
        &mut out,
        node.level,
        count,
        block_size - BLOCK_HEAD_SIZE - internal_used(count),
    );
    for (i, key) in node.keys.iter().enumerate() {
        let at = BLOCK_HEAD_SIZE + i * KEY_SIZE;
        out[at..at + KEY_SIZE].copy_from_slice(&key.encode(key.natural_format()));
    }
    let base = BLOCK_HEAD_SIZE + count * KEY_SIZE;
    for (i, child) in node.children.iter().enumerate() {
        let at = base + i * CHILD_SIZE;
        out[at..at + 4].copy_from_slice(&child.block.to_le_bytes());
        out[at + 4..at + 6].copy_from_slice(&child.used.to_le_bytes());
    }
    out
}
