//! An open ReiserFS volume: the device, its superblock, a cache of tree
//! blocks, and the read side built on the tree walk — stat data, directory
//! listings, file bodies and symlink targets — plus path resolution through
//! [`Namespace`].

use crate::dir::{self, Entry};
use crate::key::{ItemType, Key};
use crate::node::Node;
use crate::stat::StatData;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::fs::{Device, Namespace};
use homeward_sdk::types::FileKind;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Tree blocks kept in memory before the cache is dropped and refilled.
const CACHE_BLOCKS: usize = 2048;
/// Object id of the root directory, and its directory id.
pub const ROOT_DIR_ID: u32 = 1;
/// Object id of the root directory.
pub const ROOT_OBJECTID: u32 = 2;
/// Longest symlink target read (Linux's PATH_MAX).
const MAX_LINK_LEN: u64 = 4096;

/// A file: its key and stat data.
#[derive(Debug, Clone)]
pub struct Object {
    /// Directory id of its key.
    pub dir_id: u32,
    /// Object id of its key.
    pub objectid: u32,
    /// Its stat data.
    pub stat: StatData,
}

impl Object {
    /// Its stat-data key.
    pub fn key(&self) -> Key {
        Key::stat_data(self.dir_id, self.objectid)
    }

    /// A name for messages.
    pub fn describe(&self) -> String {
        format!("object [{} {}]", self.dir_id, self.objectid)
    }
}

/// The open volume.
pub struct Volume {
    /// The device.
    pub dev: Box<dyn Device>,
    /// The superblock as last read or updated.
    pub sb: Superblock,
    /// Whether the journal needs no replay (from opening).
    pub journal_clean: bool,
    /// Blocks read (bitmaps and tree blocks).
    cache: RefCell<HashMap<u32, Rc<Vec<u8>>>>,
    /// Tree nodes parsed, so walks do not parse the same block again.
    nodes: RefCell<HashMap<u32, Node>>,
    /// Metadata blocks changed by the current operation, not yet written.
    pub dirty: BTreeMap<u32, Vec<u8>>,
}

impl Volume {
    /// Wraps a device whose superblock has been read.
    pub fn new(dev: Box<dyn Device>, sb: Superblock, journal_clean: bool) -> Volume {
        Volume {
            dev,
            sb,
            journal_clean,
            cache: RefCell::new(HashMap::new()),
            nodes: RefCell::new(HashMap::new()),
            dirty: BTreeMap::new(),
        }
    }

    /// Byte offset of block `nr`.
    pub fn block_offset(&self, nr: u32) -> u64 {
        u64::from(nr) * u64::from(self.sb.block_size)
    }

    /// Block `nr` as the file system now has it (pending changes included).
    pub fn block(&self, nr: u32) -> Result<Rc<Vec<u8>>, Error> {
        if let Some(data) = self.dirty.get(&nr) {
            return Ok(Rc::new(data.clone()));
        }
        if let Some(data) = self.cache.borrow().get(&nr) {
            return Ok(data.clone());
        }
        if nr >= self.sb.block_count {
            return Err(Error::invalid_input(format!(
                "reiserfs: block {nr} is past the volume's {} blocks (damaged pointer)",
                self.sb.block_count
            )));
        }
        let data = Rc::new(
            self.dev
                .read_vec(self.block_offset(nr), self.sb.block_size as usize)?,
        );
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_BLOCKS {
            cache.clear();
        }
        cache.insert(nr, data.clone());
        Ok(data)
    }

    /// The parsed node of `block`, unless the current operation changed it.
    pub fn cached_node(&self, block: u32) -> Option<Node> {
        if self.dirty.contains_key(&block) {
            return None;
        }
        self.nodes.borrow().get(&block).cloned()
    }

    /// Keeps a parsed node, unless it is a pending change.
    pub fn cache_node(&self, block: u32, node: Node) {
        if self.dirty.contains_key(&block) {
            return;
        }
        let mut nodes = self.nodes.borrow_mut();
        if nodes.len() >= CACHE_BLOCKS {
            nodes.clear();
        }
        nodes.insert(block, node);
    }

    /// Records a written block in the cache (after it reached the device).
    pub fn cache_written(&self, nr: u32, data: Vec<u8>) {
        self.nodes.borrow_mut().remove(&nr);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_BLOCKS {
            cache.clear();
        }
        cache.insert(nr, Rc::new(data));
    }

    /// The object `(dir_id, objectid)`, if its stat data exists.
    pub fn object(&self, dir_id: u32, objectid: u32) -> Result<Option<Object>, Error> {
        let key = Key::stat_data(dir_id, objectid);
        let path = self.search(&key)?;
        let Some(item) = path.found(&key) else {
            return Ok(None);
        };
        let stat = StatData::parse(&item.body, &format!("object [{dir_id} {objectid}]"))?;
        Ok(Some(Object {
            dir_id,
            objectid,
            stat,
        }))
    }

    /// The root directory.
    pub fn root(&self) -> Result<Object, Error> {
        self.object(ROOT_DIR_ID, ROOT_OBJECTID)?.ok_or_else(|| {
            Error::invalid_input(
                "reiserfs: the root directory's stat data [1 2] is missing (damaged tree)",
            )
        })
    }

    /// Calls `visit` with each directory item's key and entries of `dir`
    /// whose items may hold offsets from `from` on, until it returns false.
    pub fn dir_items(
        &self,
        dir: &Object,
        from: u32,
        mut visit: impl FnMut(&Key, Vec<Entry>) -> Result<bool, Error>,
    ) -> Result<(), Error> {
        // Start at the item holding `from`: the last one keyed at or below it.
        let start = Key::new(
            dir.dir_id,
            dir.objectid,
            u64::from(from),
            ItemType::DirEntry,
        );
        let path = self.search(&start)?;
        let first = match path.found(&start) {
            Some(_) => start,
            None => match path.pos.checked_sub(1).and_then(|i| path.items.get(i)) {
                Some(prev)
                    if prev.key.same_object(&start) && prev.key.kind == ItemType::DirEntry =>
                {
                    prev.key
                }
                _ => Key::new(dir.dir_id, dir.objectid, 0, ItemType::DirEntry),
            },
        };
        let what = dir.describe();
        self.walk_from(&first, |item| {
            if !item.key.same_object(&first) {
                return Ok(false);
            }
            if item.key.kind != ItemType::DirEntry {
                return Ok(true);
            }
            let entries = dir::parse_item(&item.body, item.count, &what)?;
            visit(&item.key, entries)
        })
    }

    /// The visible entries of `dir` (with "." and "..").
    pub fn entries(&self, dir: &Object) -> Result<Vec<Entry>, Error> {
        let mut all = Vec::new();
        self.dir_items(dir, 0, |_, entries| {
            all.extend(entries.into_iter().filter(Entry::visible));
            Ok(true)
        })?;
        Ok(all)
    }

    /// The entry `name` of `dir` and the key of the directory item holding
    /// it. With the r5 hash the search starts at the name's hash and stops
    /// past it; other hashes scan the whole directory.
    pub fn find_entry(&self, dir: &Object, name: &[u8]) -> Result<Option<(Key, Entry)>, Error> {
        let (from, until) = if self.sb.hash_name() == "r5" {
            let h = dir::hash_value(name);
            (h, h.saturating_add(dir::MAX_GENERATION))
        } else {
            (0, u32::MAX)
        };
        let mut found = None;
        self.dir_items(dir, from, |key, entries| {
            for e in entries {
                if e.offset > until {
                    return Ok(false);
                }
                if e.visible() && e.name == name {
                    found = Some((*key, e));
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        Ok(found)
    }

    /// The object named `name` in `dir`, if any (not following symlinks).
    pub fn lookup_entry(&self, dir: &Object, name: &str) -> Result<Option<Object>, Error> {
        match self.find_entry(dir, name.as_bytes())? {
            Some((_, e)) => self.entry_object(&e).map(Some),
            None => Ok(None),
        }
    }

    /// The object an entry names.
    pub fn entry_object(&self, e: &Entry) -> Result<Object, Error> {
        self.object(e.dir_id, e.objectid)?.ok_or_else(|| {
            Error::invalid_input(format!(
                "reiserfs: directory entry {:?} points to object [{} {}], which has no stat data (damaged directory)",
                String::from_utf8_lossy(&e.name),
                e.dir_id,
                e.objectid
            ))
        })
    }

    /// Up to `len` bytes of `obj`'s body from `offset` (holes read as zeros).
    pub fn read_body(&self, obj: &Object, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let end = obj.stat.size.min(offset.saturating_add(len));
        if offset >= end {
            return Ok(Vec::new());
        }
        // The size in stat data is checked against the volume's size before
        // it sizes a buffer.
        let device_size = self.dev.size();
        let want = end - offset;
        if want > device_size.saturating_mul(1024) {
            return Err(Error::invalid_input(format!(
                "reiserfs: {}: size {} is implausible for a {device_size}-byte volume (damaged stat data)",
                obj.describe(),
                obj.stat.size
            )));
        }
        let mut out = vec![0u8; want as usize];
        let bs = u64::from(self.sb.block_size);
        // Item offsets are 1-based byte positions: start at the item that
        // holds byte `offset`, the last one keyed at or below it.
        let probe = Key::new(
            obj.dir_id,
            obj.objectid,
            offset.saturating_add(1),
            ItemType::Any,
        );
        let path = self.search(&probe)?;
        let start = match path.pos.checked_sub(1).and_then(|i| path.items.get(i)) {
            Some(prev) if prev.key.same_object(&probe) => prev.key,
            _ => obj.key(),
        };
        let mut blocks_to_read = Vec::new();
        self.walk_from(&start, |item| {
            if !item.key.same_object(&probe) {
                return Ok(false);
            }
            let Some(item_start) = item.key.offset.checked_sub(1) else {
                return Ok(true); // stat data
            };
            if item_start >= end {
                return Ok(false);
            }
            match item.key.kind {
                ItemType::Direct => {
                    copy_overlap(&mut out, offset, item_start, &item.body);
                }
                ItemType::Indirect => {
                    for (i, raw) in item.body.chunks_exact(4).enumerate() {
                        let ptr = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                        let block_start = item_start.saturating_add((i as u64).saturating_mul(bs));
                        if ptr == 0
                            || block_start >= end
                            || block_start.saturating_add(bs) <= offset
                        {
                            continue;
                        }
                        blocks_to_read.push((block_start, ptr));
                    }
                }
                _ => {}
            }
            Ok(true)
        })?;
        for (block_start, ptr) in blocks_to_read {
            if ptr >= self.sb.block_count {
                return Err(Error::invalid_input(format!(
                    "reiserfs: {}: data block pointer {ptr} is past the volume's {} blocks (damaged indirect item)",
                    obj.describe(),
                    self.sb.block_count
                )));
            }
            let data = self.dev.read_vec(self.block_offset(ptr), bs as usize)?;
            copy_overlap(&mut out, offset, block_start, &data);
        }
        Ok(out)
    }

    /// The target of symlink `obj`.
    pub fn link_target(&self, obj: &Object) -> Result<String, Error> {
        if obj.stat.size > MAX_LINK_LEN {
            return Err(Error::invalid_input(format!(
                "reiserfs: {}: symlink of {} bytes, longer than {MAX_LINK_LEN} (damaged stat data)",
                obj.describe(),
                obj.stat.size
            )));
        }
        let raw = self.read_body(obj, 0, obj.stat.size)?;
        String::from_utf8(raw).map_err(|_| {
            Error::invalid_input(format!(
                "reiserfs: {}: symlink target is not UTF-8",
                obj.describe()
            ))
        })
    }
}

/// Copies the part of `src` (which starts at file position `src_start`) that
/// overlaps `out` (which starts at file position `out_start`).
fn copy_overlap(out: &mut [u8], out_start: u64, src_start: u64, src: &[u8]) {
    let out_end = out_start.saturating_add(out.len() as u64);
    let src_end = src_start.saturating_add(src.len() as u64);
    let from = out_start.max(src_start);
    let to = out_end.min(src_end);
    if from >= to {
        return;
    }
    let n = (to - from) as usize;
    let (o, s) = ((from - out_start) as usize, (from - src_start) as usize);
    if let (Some(dst), Some(src)) = (out.get_mut(o..o + n), src.get(s..s + n)) {
        dst.copy_from_slice(src);
    }
}

impl Namespace for Volume {
    type Node = Object;

    fn root(&self) -> Result<Object, Error> {
        Volume::root(self)
    }

    fn kind(&self, node: &Object) -> Result<FileKind, Error> {
        Ok(node.stat.kind())
    }

    fn lookup(&self, dir: &Object, name: &str) -> Result<Option<Object>, Error> {
        self.lookup_entry(dir, name)
    }

    fn link_target(&self, node: &Object) -> Result<String, Error> {
        Volume::link_target(self, node)
    }
}
