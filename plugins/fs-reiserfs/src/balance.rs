//! Rebalancing after a leaf changes: writing the leaf back, splitting it when
//! its items no longer fit, removing it when it empties, and carrying the
//! change up through the internal nodes (child sizes, delimiting keys, node
//! splits, a new root when the root splits, a lower tree when it thins out).
//!
//! The rules `reiserfsck` checks and this keeps: items sorted, bodies packed
//! from the end of the leaf, each internal key equal to the first key of the
//! subtree on its right, each child pointer's size equal to the bytes used in
//! the child, an indirect or directory item either first in its leaf or
//! right after its stat data. Nodes are not kept half full as the kernel's balancing does;
//! that only affects how full blocks are, not correctness.

use crate::key::{ItemType, KEY_SIZE, Key};
use crate::node::{self, BLOCK_HEAD_SIZE, CHILD_SIZE, Child, Internal, Item, Node};
use crate::superblock::MAX_TREE_HEIGHT;
use crate::tree::{Path, Step};
use crate::volume::Volume;
use homeward_sdk::Error;

/// A node that replaces a child in its parent.
struct Part {
    /// The first key of its subtree when it changed (always for new nodes);
    /// `None` keeps the key the parent has.
    first_key: Option<Key>,
    block: u32,
    used: u16,
}

/// Whether `item` may sit right after `prev` in a leaf. `reiserfsck` wants
/// an indirect or directory item right after its object's stat data, or
/// first in its leaf: a file or directory that needs more than one such item
/// continues in the next leaf.
fn may_follow(prev: Option<&Item>, item: &Item) -> bool {
    match item.key.kind {
        ItemType::Indirect | ItemType::DirEntry => {
            prev.is_some_and(|p| p.key.same_object(&item.key) && p.key.kind == ItemType::StatData)
        }
        _ => true,
    }
}

impl Volume {
    /// The largest item body a leaf can hold.
    pub fn max_item_len(&self) -> usize {
        self.sb.block_size as usize - BLOCK_HEAD_SIZE - node::ITEM_HEAD_SIZE
    }

    /// Replaces the items of the leaf `path` leads to with `items` (sorted,
    /// same key range) and rebalances the tree above it.
    pub fn store_leaf(&mut self, path: Path, items: Vec<Item>) -> Result<(), Error> {
        let bs = self.sb.block_size as usize;
        let room = bs - BLOCK_HEAD_SIZE;
        let mut chunks: Vec<Vec<Item>> = Vec::new();
        let mut current: Vec<Item> = Vec::new();
        let mut used = 0;
        for item in items {
            if item.leaf_bytes() > room {
                return Err(Error::internal(format!(
                    "reiserfs: item {} of {} bytes cannot fit a leaf",
                    item.key,
                    item.body.len()
                )));
            }
            if !current.is_empty()
                && (used + item.leaf_bytes() > room || !may_follow(current.last(), &item))
            {
                chunks.push(std::mem::take(&mut current));
                used = 0;
            }
            used += item.leaf_bytes();
            current.push(item);
        }
        if !current.is_empty() {
            chunks.push(current);
        }
        let mut parts = Vec::with_capacity(chunks.len());
        for (i, chunk) in chunks.iter().enumerate() {
            let block = if i == 0 {
                path.leaf_block
            } else {
                self.allocate_block(path.leaf_block)?
            };
            self.dirty.insert(block, node::encode_leaf(chunk, bs));
            parts.push(Part {
                first_key: chunk.first().map(|item| item.key),
                block,
                used: node::leaf_used(chunk) as u16,
            });
        }
        if parts.is_empty() {
            self.free_block(path.leaf_block)?;
        }
        self.replace_in_parents(path.steps, parts)
    }

    fn replace_in_parents(
        &mut self,
        mut steps: Vec<Step>,
        mut parts: Vec<Part>,
    ) -> Result<(), Error> {
        let bs = self.sb.block_size as usize;
        // Keys an internal node can hold: head + n keys + (n + 1) pointers.
        let max_children = (bs - BLOCK_HEAD_SIZE - CHILD_SIZE) / (KEY_SIZE + CHILD_SIZE) + 1;
        let mut level = node::LEAF_LEVEL;
        while let Some(Step { block, node, index }) = steps.pop() {
            level = node.level;
            let mut entries: Vec<(Option<Key>, Child)> = node
                .children
                .iter()
                .enumerate()
                .map(|(j, c)| (j.checked_sub(1).and_then(|k| node.keys.get(k).copied()), *c))
                .collect();
            let old_key = entries.get(index).and_then(|e| e.0);
            let mut subtree_first = None;
            let replacement: Vec<(Option<Key>, Child)> = parts
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    let key = match (k, index) {
                        (0, 0) => None,
                        (0, _) => p.first_key.or(old_key),
                        _ => p.first_key,
                    };
                    (
                        key,
                        Child {
                            block: p.block,
                            used: p.used,
                        },
                    )
                })
                .collect();
            if index == 0 {
                subtree_first = parts.first().and_then(|p| p.first_key);
            }
            if index >= entries.len() {
                return Err(Error::internal(
                    "reiserfs: path index past the node's children",
                ));
            }
            entries.splice(index..=index, replacement);
            if index == 0 && parts.is_empty() {
                // The next child is now first: its key is the subtree's first key.
                subtree_first = entries.first_mut().and_then(|e| e.0.take());
            }
            if entries.is_empty() {
                self.free_block(block)?;
                parts = Vec::new();
                continue;
            }
            let groups = entries.len().div_ceil(max_children);
            let per_group = entries.len().div_ceil(groups);
            parts = Vec::with_capacity(groups);
            for (g, group) in entries.chunks(per_group).enumerate() {
                let nr = if g == 0 {
                    block
                } else {
                    self.allocate_block(block)?
                };
                let mut keys = Vec::with_capacity(group.len().saturating_sub(1));
                for (key, _) in group.iter().skip(1) {
                    keys.push(key.ok_or_else(|| {
                        Error::internal("reiserfs: internal entry without a key")
                    })?);
                }
                let first_key = if g == 0 {
                    subtree_first
                } else {
                    group.first().and_then(|e| e.0)
                };
                let internal = Internal {
                    level: node.level,
                    keys,
                    children: group.iter().map(|e| e.1).collect(),
                };
                self.dirty.insert(nr, node::encode_internal(&internal, bs));
                parts.push(Part {
                    first_key,
                    block: nr,
                    used: node::internal_used(internal.keys.len()) as u16,
                });
            }
        }
        match parts.len() {
            0 => Err(Error::internal("reiserfs: the tree would become empty")),
            1 => {
                self.sb.root_block = parts[0].block;
                self.shrink_root()
            }
            _ => {
                // The root split: a new root one level up holds the pieces.
                let new_level = level + 1;
                if self.sb.tree_height >= MAX_TREE_HEIGHT {
                    return Err(Error::unsupported(format!(
                        "reiserfs: the tree would grow past {MAX_TREE_HEIGHT} levels"
                    )));
                }
                let root = self.allocate_block(parts[0].block)?;
                let mut keys = Vec::with_capacity(parts.len() - 1);
                for p in parts.iter().skip(1) {
                    keys.push(
                        p.first_key
                            .ok_or_else(|| Error::internal("reiserfs: split part without a key"))?,
                    );
                }
                let internal = Internal {
                    level: new_level,
                    keys,
                    children: parts
                        .iter()
                        .map(|p| Child {
                            block: p.block,
                            used: p.used,
                        })
                        .collect(),
                };
                self.dirty
                    .insert(root, node::encode_internal(&internal, bs));
                self.sb.root_block = root;
                self.sb.tree_height = new_level + 1;
                Ok(())
            }
        }
    }

    /// Drops root nodes that have a single child.
    fn shrink_root(&mut self) -> Result<(), Error> {
        while self.sb.tree_height > 2 {
            let root = self.sb.root_block;
            match self.node(root, self.sb.tree_height - 1)? {
                Node::Internal(node) if node.keys.is_empty() => {
                    let child = node.children.first().map(|c| c.block).unwrap_or(0);
                    self.free_block(root)?;
                    self.sb.root_block = child;
                    self.sb.tree_height -= 1;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Inserts `item`, which must not exist yet.
    pub fn insert_item(&mut self, item: Item) -> Result<(), Error> {
        let path = self.search(&item.key)?;
        if path.found(&item.key).is_some() {
            return Err(Error::invalid_input(format!(
                "reiserfs: item {} already exists (damaged tree or object-id map)",
                item.key
            )));
        }
        let mut items = path.items.to_vec();
        items.insert(path.pos, item);
        self.store_leaf(path, items)
    }

    /// Replaces the item keyed `key` with `with` (one or more items that sort
    /// where it did).
    pub fn replace_item(&mut self, key: &Key, with: Vec<Item>) -> Result<(), Error> {
        let path = self.search(key)?;
        if path.found(key).is_none() {
            return Err(Error::invalid_input(format!(
                "reiserfs: item {key} vanished from the tree (damaged tree)"
            )));
        }
        let mut items = path.items.to_vec();
        items.splice(path.pos..=path.pos, with);
        self.store_leaf(path, items)
    }

    /// Deletes the item keyed `key`.
    pub fn delete_item(&mut self, key: &Key) -> Result<(), Error> {
        self.replace_item(key, Vec::new())
    }
}
