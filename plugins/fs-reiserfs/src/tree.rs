//! Walking the S+tree: descending from the root to the leaf that holds (or
//! would hold) a key, and stepping from leaf to leaf in key order.
//!
//! Descents are bounded by the tree height (each level must be exactly one
//! below its parent's), and forward walks check that keys strictly increase
//! from leaf to leaf, so a damaged tree whose pointers loop or share
//! subtrees fails with an error instead of walking forever.

use crate::key::Key;
use crate::node::{self, Internal, Item, LEAF_LEVEL, Node};
use crate::volume::Volume;
use homeward_sdk::Error;
use std::rc::Rc;

/// One internal node on a path, and which child the path took.
#[derive(Debug, Clone)]
pub struct Step {
    /// The node's block.
    pub block: u32,
    /// The node.
    pub node: Rc<Internal>,
    /// Index of the child taken.
    pub index: usize,
}

/// The way from the root to one leaf, and a position in it.
#[derive(Debug, Clone)]
pub struct Path {
    /// Internal nodes, root first.
    pub steps: Vec<Step>,
    /// The leaf's block.
    pub leaf_block: u32,
    /// The leaf's items.
    pub items: Rc<Vec<Item>>,
    /// Position in `items`: the first item whose key is not below the key
    /// searched for (`items.len()` when all are below).
    pub pos: usize,
}

impl Path {
    /// The item at the position, if it has exactly `key`.
    pub fn found(&self, key: &Key) -> Option<&Item> {
        self.items.get(self.pos).filter(|item| item.key == *key)
    }
}

impl Volume {
    /// Reads tree node `block`, which its parent places at `level`.
    pub fn node(&self, block: u32, level: u16) -> Result<Node, Error> {
        if let Some(node) = self.cached_node(block)
            && node.level() == level
        {
            return Ok(node);
        }
        let data = self.block(block)?;
        let node = node::parse(block, &data, level)?;
        self.cache_node(block, node.clone());
        Ok(node)
    }

    fn check_child(&self, parent: u32, block: u32) -> Result<(), Error> {
        if block <= self.sb.own_block() || block >= self.sb.block_count {
            return Err(Error::invalid_input(format!(
                "reiserfs: tree block {parent}: child pointer to block {block} is outside the \
                 volume's {} blocks (damaged internal node)",
                self.sb.block_count
            )));
        }
        Ok(())
    }

    /// Descends from `block` at `level` to a leaf, going left of `key`
    /// (`None`: leftmost), pushing the internal nodes onto `steps`.
    fn descend(
        &self,
        mut block: u32,
        mut level: u16,
        key: Option<&Key>,
        steps: &mut Vec<Step>,
    ) -> Result<Path, Error> {
        loop {
            match self.node(block, level)? {
                Node::Leaf(items) => {
                    let pos = key.map_or(0, |k| items.partition_point(|item| item.key < *k));
                    return Ok(Path {
                        steps: std::mem::take(steps),
                        leaf_block: block,
                        items,
                        pos,
                    });
                }
                Node::Internal(node) => {
                    let index = key.map_or(0, |k| node.keys.partition_point(|dk| dk <= k));
                    let child = node.children.get(index).map(|c| c.block).ok_or_else(|| {
                        Error::invalid_input(format!("reiserfs: tree block {block}: missing child {index} (damaged internal node)"))
                    })?;
                    self.check_child(block, child)?;
                    steps.push(Step { block, node, index });
                    block = child;
                    // Parsing checks the child's level is exactly this one,
                    // so the loop ends after at most `tree_height` nodes.
                    level = level.checked_sub(1).filter(|&l| l >= LEAF_LEVEL).ok_or_else(|| {
                        Error::invalid_input(format!("reiserfs: tree block {block}: internal node below level 2 (damaged tree)"))
                    })?;
                }
            }
        }
    }

    /// The path to the leaf where `key` is or would be inserted.
    pub fn search(&self, key: &Key) -> Result<Path, Error> {
        let root_level = self.sb.tree_height - 1;
        self.descend(self.sb.root_block, root_level, Some(key), &mut Vec::new())
    }

    /// Moves `path` to the start of the next leaf; false at the last leaf.
    pub fn next_leaf(&self, path: &mut Path) -> Result<bool, Error> {
        let last_key = path.items.last().map(|item| item.key);
        let mut steps = std::mem::take(&mut path.steps);
        while let Some(mut step) = steps.pop() {
            if step.index < step.node.keys.len() {
                step.index += 1;
                let child = step
                    .node
                    .children
                    .get(step.index)
                    .map(|c| c.block)
                    .unwrap_or(0);
                self.check_child(step.block, child)?;
                let level = step.node.level - 1;
                steps.push(step);
                let next = self.descend(child, level, None, &mut steps)?;
                if let (Some(prev), Some(first)) = (last_key, next.items.first())
                    && first.key <= prev
                {
                    return Err(Error::invalid_input(format!(
                        "reiserfs: tree block {}: first key {} does not follow {} of the previous leaf \
                         (damaged tree: looping or misordered pointers)",
                        next.leaf_block, first.key, prev
                    )));
                }
                *path = next;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Calls `visit` on each item from `start` on while it returns true,
    /// crossing leaves as needed.
    pub fn walk_from(
        &self,
        start: &Key,
        mut visit: impl FnMut(&Item) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        let mut path = self.search(start)?;
        // A tree has at most one leaf per block: a bound on any walk.
        for _ in 0..=self.sb.block_count {
            while let Some(item) = path.items.get(path.pos) {
                if !visit(item)? {
                    return Ok(());
                }
                path.pos += 1;
            }
            if !self.next_leaf(&mut path)? {
                return Ok(());
            }
        }
        Err(Error::invalid_input(
            "reiserfs: tree walk visited more leaves than the volume has blocks (damaged tree)",
        ))
    }
}
