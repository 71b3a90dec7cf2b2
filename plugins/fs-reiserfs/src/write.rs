//! File-level changes: creating files, directories and symlinks, rewriting
//! and removing files, as sequences of item insertions, replacements and
//! deletions, block and object-id allocation, and stat-data updates.
//!
//! Every change runs as one operation: tree blocks, bitmaps and the
//! superblock are changed in memory ([`Volume::dirty`]) and written only when
//! the whole operation succeeded (see [`Volume::operation`] for the order);
//! file data goes straight to newly allocated, so still unreferenced, blocks
//! before any of it. A failed operation is dropped without touching the
//! volume's metadata. The journal is not used and stays as it was.

use crate::dir::{self, DOT_DOT_OFFSET, DOT_OFFSET, Entry};
use crate::key::{ItemType, Key, KeyFormat};
use crate::node::{BLOCK_HEAD_SIZE, ITEM_HEAD_SIZE, Item};
use crate::objectid;
use crate::stat::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, STAT_V2_SIZE, StatData};
use crate::volume::{Object, Volume};
use homeward_sdk::Error;
use homeward_sdk::types::FileKind;

/// Bytes of a block pointer in an indirect item.
const POINTER_SIZE: usize = 4;
/// `ih_free_space` the kernel puts in direct items.
const DIRECT_ITEM_FREE: u16 = 0xffff;

/// What to create.
pub enum NewObject<'a> {
    /// A regular file with this content.
    File(&'a [u8]),
    /// An empty directory.
    Dir,
    /// A symlink to this target.
    Symlink(&'a [u8]),
}

fn now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

/// Checks a new entry's name.
pub fn check_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::invalid_input(format!(
            "reiserfs: {name:?} is not a valid file name"
        )));
    }
    if name.len() > dir::MAX_NAME_LEN {
        return Err(Error::invalid_input(format!(
            "reiserfs: name of {} bytes is longer than {} bytes",
            name.len(),
            dir::MAX_NAME_LEN
        )));
    }
    Ok(())
}

impl Volume {
    /// The largest body stored as one direct item (the kernel's
    /// MAX_DIRECT_ITEM_LEN): larger files get blocks.
    fn max_direct(&self) -> usize {
        self.sb.block_size as usize
            - BLOCK_HEAD_SIZE
            - 2 * ITEM_HEAD_SIZE
            - STAT_V2_SIZE
            - POINTER_SIZE
    }

    /// Runs `op` as one operation: its changes are written only if it
    /// succeeds, in an order that a crash can only turn into leaked blocks:
    /// bitmaps with old and new bits both set, tree blocks, final bitmaps,
    /// superblock.
    pub fn operation<T>(
        &mut self,
        op: impl FnOnce(&mut Volume) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let saved = self.sb.clone();
        self.dirty.clear();
        match op(self) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(e) => {
                self.dirty.clear();
                self.sb = saved;
                Err(e)
            }
        }
    }

    fn commit(&mut self) -> Result<(), Error> {
        let dirty = std::mem::take(&mut self.dirty);
        let (maps, tree): (Vec<_>, Vec<_>) = dirty
            .into_iter()
            .partition(|(nr, _)| self.sb.is_bitmap(*nr));
        // First the bitmaps with both old and new bits set: blocks being
        // allocated are marked before anything points to them, blocks being
        // freed stay marked until nothing does. A crash at any point then
        // leaks blocks at worst, never hands one block to two owners.
        for (nr, new) in &maps {
            let offset = self.block_offset(*nr);
            let old = self.dev.read_vec(offset, new.len())?;
            let both: Vec<u8> = old.iter().zip(new).map(|(a, b)| a | b).collect();
            self.dev.write_at(offset, &both)?;
        }
        for (nr, data) in tree.into_iter().chain(maps) {
            self.dev.write_at(self.block_offset(nr), &data)?;
            self.cache_written(nr, data);
        }
        let sb = self.sb.encode();
        self.dev
            .write_at(crate::superblock::SUPERBLOCK_OFFSET, &sb)?;
        self.sb.raw = sb;
        Ok(())
    }

    /// Fails unless `ptr`, read from `obj`'s indirect item, may be a data
    /// block that is in use, so a damaged pointer can neither overwrite nor
    /// free metadata.
    fn check_data_pointer(&self, obj: &Object, ptr: u32) -> Result<(), Error> {
        if !self.sb.is_data_block(ptr) || !self.is_used(ptr)? {
            return Err(Error::invalid_input(format!(
                "reiserfs: {}: data block pointer {ptr} points at metadata, outside the volume or at a free block \
                 (damaged indirect item)",
                obj.describe()
            )));
        }
        Ok(())
    }

    /// Writes `content` into newly allocated blocks; returns their numbers.
    fn write_new_blocks(&mut self, content: &[u8], hint: u32) -> Result<Vec<u32>, Error> {
        let bs = self.sb.block_size as usize;
        let count = content.len().div_ceil(bs);
        if count as u64 > u64::from(self.sb.free_blocks) {
            return Err(Error::conflict(format!(
                "reiserfs: {} bytes need {count} blocks but only {} are free",
                content.len(),
                self.sb.free_blocks
            )));
        }
        let mut blocks = Vec::with_capacity(count);
        let mut next = hint;
        for _ in 0..count {
            let b = self.allocate_block(next)?;
            blocks.push(b);
            next = b.saturating_add(1);
        }
        self.write_blocks(&blocks, content)?;
        Ok(blocks)
    }

    /// Writes `content` over `blocks` (zero-padding the last), one device
    /// write per run of consecutive blocks.
    fn write_blocks(&self, blocks: &[u32], content: &[u8]) -> Result<(), Error> {
        let bs = self.sb.block_size as usize;
        let mut i = 0;
        while i < blocks.len() {
            let mut run = 1;
            while i + run < blocks.len()
                && u64::from(blocks[i + run]) == u64::from(blocks[i]) + run as u64
            {
                run += 1;
            }
            let start = i * bs;
            let end = ((i + run) * bs).min(content.len());
            let mut buf = content.get(start..end).unwrap_or_default().to_vec();
            buf.resize(run * bs, 0);
            self.dev.write_at(self.block_offset(blocks[i]), &buf)?;
            i += run;
        }
        Ok(())
    }

    /// Body items of a regular file holding `content`, and its `sd_blocks`.
    fn file_body(&mut self, key: Key, content: &[u8]) -> Result<(Vec<Item>, u32), Error> {
        let sectors_per_block = self.sb.block_size / 512;
        if content.is_empty() {
            return Ok((Vec::new(), 0));
        }
        if content.len() <= self.max_direct() {
            let item = Item {
                key: Key::new(key.dir_id, key.objectid, 1, ItemType::Direct),
                format: KeyFormat::V2,
                count: DIRECT_ITEM_FREE,
                body: content.to_vec(),
            };
            // reiserfsck counts a file's tail as one whole block.
            return Ok((vec![item], sectors_per_block));
        }
        let blocks = self.write_new_blocks(content, self.sb.root_block)?;
        let per_item = self.max_item_len() / POINTER_SIZE;
        let bs = u64::from(self.sb.block_size);
        let mut items = Vec::new();
        for (i, chunk) in blocks.chunks(per_item).enumerate() {
            let offset = 1 + (i * per_item) as u64 * bs;
            items.push(Item {
                key: Key::new(key.dir_id, key.objectid, offset, ItemType::Indirect),
                format: KeyFormat::V2,
                count: 0,
                body: chunk.iter().flat_map(|b| b.to_le_bytes()).collect(),
            });
        }
        let sectors = (blocks.len() as u64).saturating_mul(u64::from(sectors_per_block));
        Ok((items, u32::try_from(sectors).unwrap_or(u32::MAX)))
    }

    /// The body items of `obj` (everything after its stat data).
    fn body_items(&self, obj: &Object) -> Result<Vec<Item>, Error> {
        let start = obj.key();
        let mut items = Vec::new();
        self.walk_from(&start, |item| {
            if !item.key.same_object(&start) {
                return Ok(false);
            }
            if item.key.kind != ItemType::StatData {
                items.push(item.clone());
            }
            Ok(true)
        })?;
        Ok(items)
    }

    /// Deletes `obj`'s body items and frees their blocks.
    fn delete_body(&mut self, obj: &Object) -> Result<(), Error> {
        for item in self.body_items(obj)? {
            if item.key.kind == ItemType::Indirect {
                for raw in item.body.chunks_exact(4) {
                    let ptr = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    if ptr != 0 {
                        self.check_data_pointer(obj, ptr)?;
                        self.free_block(ptr)?;
                    }
                }
            }
            self.delete_item(&item.key)?;
        }
        Ok(())
    }

    fn write_stat(&mut self, obj: &Object) -> Result<(), Error> {
        if obj.stat.legacy {
            return Err(Error::unsupported(format!(
                "reiserfs: {} has 3.5-format stat data, which Homeward does not rewrite; \
                 change it from a Linux system that mounts the volume",
                obj.describe()
            )));
        }
        let key = obj.key();
        let item = Item {
            key,
            format: KeyFormat::V2,
            count: 0,
            body: obj.stat.encode(),
        };
        self.replace_item(&key, vec![item])
    }

    /// Adds entry `name` → `target` to `dir`; returns the bytes it adds.
    fn add_entry(&mut self, dir: &Object, name: &[u8], target: &Object) -> Result<u64, Error> {
        let hash = dir::hash_value(name);
        let mut used_generations = [false; dir::MAX_GENERATION as usize + 1];
        let mut holder = None;
        self.dir_items(dir, hash, |_, entries| {
            for e in &entries {
                if e.offset & !dir::MAX_GENERATION == hash
                    && let Some(slot) =
                        used_generations.get_mut((e.offset & dir::MAX_GENERATION) as usize)
                {
                    *slot = true;
                }
            }
            Ok(entries
                .last()
                .is_some_and(|e| e.offset <= hash + dir::MAX_GENERATION))
        })?;
        let generation = used_generations
            .iter()
            .position(|used| !used)
            .ok_or_else(|| {
                Error::conflict(format!(
                    "reiserfs: {}: {} names already share the hash of {:?}",
                    dir.describe(),
                    dir::MAX_GENERATION + 1,
                    String::from_utf8_lossy(name)
                ))
            })?;
        let offset = hash | generation as u32;
        // The item to hold it is the last one keyed at or below its offset.
        self.dir_items(dir, offset, |key, _| {
            if key.offset <= u64::from(offset) {
                holder = Some(*key);
                Ok(true)
            } else {
                Ok(false)
            }
        })?;
        let holder = holder.ok_or_else(|| {
            Error::invalid_input(format!(
                "reiserfs: {}: no directory item holds \".\" (damaged directory)",
                dir.describe()
            ))
        })?;
        let path = self.search(&holder)?;
        let item = path.found(&holder).cloned().ok_or_else(|| {
            Error::invalid_input(format!(
                "reiserfs: {}: directory item {holder} vanished (damaged tree)",
                dir.describe()
            ))
        })?;
        let mut entries = dir::parse_item(&item.body, item.count, &dir.describe())?;
        let entry = Entry::new(offset, target.dir_id, target.objectid, name);
        let added = entry.bytes() as u64;
        let at = entries.partition_point(|e| e.offset < offset);
        entries.insert(at, entry);
        let items = self.dir_item_pieces(holder, entries);
        self.replace_item(&holder, items)?;
        Ok(added)
    }

    /// Directory items for `entries` (the first keyed `first`): one item,
    /// or two halves when it outgrows a leaf (each continuation item then
    /// starts a leaf of its own, as `reiserfsck` wants).
    fn dir_item_pieces(&self, first: Key, entries: Vec<Entry>) -> Vec<Item> {
        let total: usize = entries.iter().map(Entry::bytes).sum();
        let limit = if total <= self.max_item_len() {
            total
        } else {
            total / 2
        };
        let mut pieces: Vec<Vec<Entry>> = vec![Vec::new()];
        let mut size = 0;
        for e in entries {
            if size + e.bytes() > limit && pieces.last().is_some_and(|p| !p.is_empty()) {
                pieces.push(Vec::new());
                size = 0;
            }
            size += e.bytes();
            if let Some(p) = pieces.last_mut() {
                p.push(e);
            }
        }
        pieces
            .into_iter()
            .enumerate()
            .filter(|(_, p)| !p.is_empty())
            .map(|(i, p)| Item {
                key: if i == 0 {
                    first
                } else {
                    Key::new(
                        first.dir_id,
                        first.objectid,
                        u64::from(p[0].offset),
                        ItemType::DirEntry,
                    )
                },
                format: KeyFormat::V1,
                count: p.len() as u16,
                body: dir::encode_item(&p),
            })
            .collect()
    }

    /// Removes entry `name` from `dir`; returns the bytes it took.
    fn remove_entry(&mut self, dir: &Object, name: &[u8]) -> Result<u64, Error> {
        let (holder, entry) = self.find_entry(dir, name)?.ok_or_else(|| {
            Error::not_found(format!(
                "reiserfs: no entry {:?}",
                String::from_utf8_lossy(name)
            ))
        })?;
        let path = self.search(&holder)?;
        let item = path.found(&holder).cloned().ok_or_else(|| {
            Error::invalid_input(format!(
                "reiserfs: {}: directory item {holder} vanished (damaged tree)",
                dir.describe()
            ))
        })?;
        let mut entries = dir::parse_item(&item.body, item.count, &dir.describe())?;
        entries.retain(|e| e.offset != entry.offset);
        let replacement = if entries.is_empty() {
            Vec::new()
        } else {
            vec![Item {
                count: entries.len() as u16,
                body: dir::encode_item(&entries),
                ..item
            }]
        };
        self.replace_item(&holder, replacement)?;
        Ok(entry.bytes() as u64)
    }

    /// Creates `name` in `parent`.
    pub fn create(
        &mut self,
        parent: &Object,
        name: &str,
        what: NewObject,
        mode: u32,
    ) -> Result<(), Error> {
        check_name(name)?;
        if self.find_entry(parent, name.as_bytes())?.is_some() {
            return Err(Error::conflict(format!(
                "reiserfs: {name:?} already exists"
            )));
        }
        let objectid = objectid::allocate(&mut self.sb)?;
        let key = Key::stat_data(parent.objectid, objectid);
        let t = now();
        let perm = (mode & 0o7777) as u16;
        let mut stat = StatData {
            mode: 0,
            nlink: 1,
            size: 0,
            uid: 0,
            gid: 0,
            atime: t,
            mtime: t,
            ctime: t,
            blocks: 0,
            generation: self.sb.inode_generation,
            attrs: 0,
            legacy: false,
        };
        let body = match what {
            NewObject::File(content) => {
                let (items, blocks) = self.file_body(key, content)?;
                stat.mode = S_IFREG | perm;
                stat.size = content.len() as u64;
                stat.blocks = blocks;
                items
            }
            NewObject::Symlink(target) => {
                if target.is_empty() || target.len() > self.max_direct() {
                    return Err(Error::unsupported(format!(
                        "reiserfs: symlink targets of 1 to {} bytes are supported, not {}",
                        self.max_direct(),
                        target.len()
                    )));
                }
                stat.mode = S_IFLNK | 0o777;
                stat.size = target.len() as u64;
                stat.blocks = (target.len() as u32).div_ceil(512);
                // reiserfsck wants symlink bodies in 3.5 keys.
                vec![Item {
                    key: Key::new(key.dir_id, objectid, 1, ItemType::Direct),
                    format: KeyFormat::V1,
                    count: DIRECT_ITEM_FREE,
                    body: target.to_vec(),
                }]
            }
            NewObject::Dir => {
                let entries = vec![
                    Entry::new(DOT_OFFSET, key.dir_id, objectid, b"."),
                    Entry::new(DOT_DOT_OFFSET, parent.dir_id, parent.objectid, b".."),
                ];
                let body = dir::encode_item(&entries);
                stat.mode = S_IFDIR | perm;
                stat.nlink = 2;
                stat.size = body.len() as u64;
                stat.blocks = (body.len() as u32).div_ceil(512);
                vec![Item {
                    key: Key::new(
                        key.dir_id,
                        objectid,
                        u64::from(DOT_OFFSET),
                        ItemType::DirEntry,
                    ),
                    format: KeyFormat::V1,
                    count: entries.len() as u16,
                    body,
                }]
            }
        };
        let is_dir = stat.kind() == FileKind::Directory;
        let obj = Object {
            dir_id: key.dir_id,
            objectid,
            stat,
        };
        self.insert_item(Item {
            key,
            format: KeyFormat::V2,
            count: 0,
            body: obj.stat.encode(),
        })?;
        for item in body {
            self.insert_item(item)?;
        }
        let added = self.add_entry(parent, name.as_bytes(), &obj)?;
        let mut parent = self.reload(parent)?;
        parent.stat.size = parent.stat.size.saturating_add(added);
        parent.stat.blocks = u32::try_from(parent.stat.size.div_ceil(512)).unwrap_or(u32::MAX);
        if is_dir {
            parent.stat.nlink = parent.stat.nlink.saturating_add(1);
        }
        parent.stat.mtime = t;
        parent.stat.ctime = t;
        self.write_stat(&parent)
    }

    fn reload(&self, obj: &Object) -> Result<Object, Error> {
        self.object(obj.dir_id, obj.objectid)?.ok_or_else(|| {
            Error::invalid_input(format!(
                "reiserfs: {} vanished (damaged tree)",
                obj.describe()
            ))
        })
    }

    /// Replaces regular file `obj`'s content, in place when the new content
    /// needs the same blocks (or fits the same tail).
    pub fn rewrite(&mut self, obj: &Object, content: &[u8], mode: u32) -> Result<(), Error> {
        let mut obj = obj.clone();
        let body = self.body_items(&obj)?;
        let bs = self.sb.block_size as usize;
        let direct = content.len() <= self.max_direct();
        let pointers: Vec<u32> = body
            .iter()
            .filter(|i| i.key.kind == ItemType::Indirect)
            .flat_map(|i| {
                i.body
                    .chunks_exact(4)
                    .map(|r| u32::from_le_bytes([r[0], r[1], r[2], r[3]]))
                    .collect::<Vec<_>>()
            })
            .collect();
        let only_indirect =
            !body.is_empty() && body.iter().all(|i| i.key.kind == ItemType::Indirect);
        let in_place_blocks = only_indirect
            && !direct
            && pointers.len() == content.len().div_ceil(bs)
            && !pointers.contains(&0);
        let in_place_tail = body.len() == 1
            && body[0].key.kind == ItemType::Direct
            && direct
            && !content.is_empty();
        if in_place_blocks {
            for &p in &pointers {
                self.check_data_pointer(&obj, p)?;
            }
            self.write_blocks(&pointers, content)?;
        } else if in_place_tail {
            let item = Item {
                body: content.to_vec(),
                ..body[0].clone()
            };
            self.replace_item(&body[0].key, vec![item])?;
        } else {
            self.delete_body(&obj)?;
            let (items, blocks) = self.file_body(obj.key(), content)?;
            for item in items {
                self.insert_item(item)?;
            }
            obj.stat.blocks = blocks;
        }
        let t = now();
        obj.stat.size = content.len() as u64;
        obj.stat.mode = (obj.stat.mode & S_IFMT) | (mode & 0o7777) as u16;
        obj.stat.mtime = t;
        obj.stat.ctime = t;
        self.write_stat(&obj)
    }

    /// Removes entry `name` (a file or symlink) from `parent`, and the object
    /// when it was its last link.
    pub fn remove_file(&mut self, parent: &Object, name: &str, obj: &Object) -> Result<(), Error> {
        let freed = self.remove_entry(parent, name.as_bytes())?;
        let t = now();
        let mut parent = self.reload(parent)?;
        parent.stat.size = parent.stat.size.saturating_sub(freed);
        parent.stat.blocks = u32::try_from(parent.stat.size.div_ceil(512)).unwrap_or(u32::MAX);
        parent.stat.mtime = t;
        parent.stat.ctime = t;
        self.write_stat(&parent)?;
        let mut obj = self.reload(obj)?;
        if obj.stat.nlink > 1 {
            obj.stat.nlink -= 1;
            obj.stat.ctime = t;
            return self.write_stat(&obj);
        }
        self.delete_body(&obj)?;
        self.delete_item(&obj.key())?;
        objectid::release(&mut self.sb, obj.objectid);
        Ok(())
    }
}
