//! The write operations: creating and replacing files, creating directories
//! and symlinks, removing files. Each one allocates what it needs, writes data
//! first, then inodes, then the directory entry, then bitmaps, descriptors
//! and the superblock ([`Allocator::commit`]), so the volume is consistent
//! after every call. Writes bypass the journal, which is why writable opens
//! require a clean file system with nothing to replay.

use crate::alloc::Allocator;
use crate::checksum::inode_seed;
use crate::dir::{self, Entry, FT_DIR, FT_REG, FT_SYMLINK, Place};
use crate::inode::{
    FL_EXTENTS, FL_INDEX, FL_INLINE_DATA, I_BLOCK_LEN, Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG,
    Timestamp,
};
use crate::superblock::{INCOMPAT_EXTENTS, RO_COMPAT_DIR_NLINK};
use crate::volume::{Volume, is_fast_symlink};
use crate::{bmap, extent, xattr};
use homeward_sdk::Error;
use homeward_sdk::fs::{Namespace, resolve, resolve_parent};
use homeward_sdk::types::FileKind;

/// Links a directory may count before `dir_nlink` says "many" (1).
const MAX_DIR_LINKS: u16 = 65000;

/// Write state of a volume opened writable.
#[derive(Debug, Default)]
pub struct Writer {
    alloc: Allocator,
}

fn check_name(name: &str, path: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 || name == "." || name == ".." {
        return Err(Error::invalid_input(format!(
            "ext4: {path}: a file name must be 1 to 255 bytes and not `.` or `..`"
        )));
    }
    Ok(())
}

fn group_of_inode(vol: &Volume, ino: u32) -> u32 {
    ino.saturating_sub(1) / vol.sb.inodes_per_group
}

impl Writer {
    /// Runs one operation; on failure, drops the in-memory changes so the
    /// next call starts again from what is on the disk.
    fn run<T>(
        &mut self,
        vol: &mut Volume,
        op: impl FnOnce(&mut Self, &mut Volume) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match op(self, vol).and_then(|value| {
            self.alloc.commit(vol)?;
            Ok(value)
        }) {
            Ok(value) => Ok(value),
            Err(e) => {
                self.alloc = Allocator::default();
                vol.reload()?;
                Err(e)
            }
        }
    }

    pub fn write_file(
        &mut self,
        vol: &mut Volume,
        path: &str,
        content: &[u8],
        mode: u32,
    ) -> Result<(), Error> {
        self.run(vol, |w, vol| {
            let (dir, name) = resolve_parent(vol, path)?;
            check_name(name, path)?;
            let Some(ino) = vol.lookup(&dir, name)? else {
                let mode = S_IFREG | (mode & 0o7777) as u16;
                return w.create(vol, dir, name, mode, FT_REG, content);
            };
            let mut inode = vol.read_inode(ino)?;
            if inode.kind() == FileKind::Symlink {
                // Like open(O_TRUNC): write through the link to its target.
                inode = vol.read_inode(resolve(vol, path, true)?)?;
            }
            match inode.kind() {
                FileKind::Regular => w.replace(vol, inode, content, mode),
                FileKind::Directory => Err(Error::invalid_input(format!(
                    "ext4: {path} is a directory; write-file writes regular files"
                ))),
                _ => Err(Error::invalid_input(format!(
                    "ext4: {path} is a device, FIFO or socket; write-file writes regular files"
                ))),
            }
        })
    }

    pub fn create_dir(&mut self, vol: &mut Volume, path: &str, mode: u32) -> Result<(), Error> {
        self.run(vol, |w, vol| {
            let (parent, name) = resolve_parent(vol, path)?;
            check_name(name, path)?;
            if vol.lookup(&parent, name)?.is_some() {
                return Err(Error::conflict(format!("ext4: {path} already exists")));
            }
            let ino = w.alloc.alloc_inode(vol, group_of_inode(vol, parent), true)?;
            let mut inode = Inode::new(&vol.sb, ino, S_IFDIR | (mode & 0o7777) as u16, 2, Timestamp::now());
            let csum = vol.sb.has_metadata_csum();
            let seed = inode_seed(vol.sb.csum_seed, ino, inode.generation());
            let dots = [
                Entry { ino, name: b".".to_vec(), file_type: FT_DIR },
                Entry { ino: parent, name: b"..".to_vec(), file_type: FT_DIR },
            ];
            let block = dir::new_block(vol.sb.block_size as usize, &dots, csum, seed);
            w.store(vol, &mut inode, &block)?;
            vol.write_inode(&mut inode)?;
            w.add_entry(vol, parent, name, ino, FT_DIR)?;
            let mut parent_inode = vol.read_inode(parent)?;
            let links = parent_inode.links();
            let dir_nlink = vol.sb.has_ro_compat(RO_COMPAT_DIR_NLINK);
            parent_inode.set_links(if dir_nlink && (links == 1 || links >= MAX_DIR_LINKS - 1) {
                1
            } else {
                links.checked_add(1).ok_or_else(|| {
                    Error::unsupported(format!(
                        "ext4: the parent of {path} has the most subdirectories ext4 allows without dir_nlink"
                    ))
                })?
            });
            vol.write_inode(&mut parent_inode)
        })
    }

    pub fn create_symlink(
        &mut self,
        vol: &mut Volume,
        path: &str,
        target: &str,
    ) -> Result<(), Error> {
        self.run(vol, |w, vol| {
            let (parent, name) = resolve_parent(vol, path)?;
            check_name(name, path)?;
            if target.is_empty()
                || target.len() >= vol.sb.block_size as usize
                || target.contains('\0')
            {
                return Err(Error::invalid_input(format!(
                    "ext4: symlink target of {} bytes: it must be 1 to {} bytes without NUL",
                    target.len(),
                    vol.sb.block_size - 1
                )));
            }
            if vol.lookup(&parent, name)?.is_some() {
                return Err(Error::conflict(format!("ext4: {path} already exists")));
            }
            w.create(
                vol,
                parent,
                name,
                S_IFLNK | 0o777,
                FT_SYMLINK,
                target.as_bytes(),
            )
        })
    }

    pub fn remove(&mut self, vol: &mut Volume, path: &str) -> Result<(), Error> {
        self.run(vol, |w, vol| {
            let (parent, name) = resolve_parent(vol, path)?;
            let Some(ino) = vol.lookup(&parent, name)? else {
                return Err(Error::not_found(format!("ext4: {path}: no such file")));
            };
            let mut inode = vol.read_inode(ino)?;
            if inode.kind() == FileKind::Directory {
                return Err(Error::invalid_input(format!(
                    "ext4: {path} is a directory; remove deletes regular files and symlinks"
                )));
            }
            w.remove_entry(vol, parent, name)?;
            let links = inode.links().saturating_sub(1);
            inode.set_links(links);
            let now = Timestamp::now();
            inode.touch(now, false);
            if links == 0 {
                w.release_blocks(vol, &inode)?;
                let acl = inode.file_acl();
                if acl != 0 && xattr::release_block(vol, acl)? {
                    w.alloc.free_blocks(vol, &[(acl, 1)])?;
                }
                inode.set_dtime(now.seconds as u32);
                w.alloc.free_inode(vol, ino, false)?;
            }
            vol.write_inode(&mut inode)
        })
    }

    /// A new file or symlink `name` in `parent` holding `content`.
    fn create(
        &mut self,
        vol: &mut Volume,
        parent: u32,
        name: &str,
        mode: u16,
        file_type: u8,
        content: &[u8],
    ) -> Result<(), Error> {
        let ino = self
            .alloc
            .alloc_inode(vol, group_of_inode(vol, parent), false)?;
        let mut inode = Inode::new(&vol.sb, ino, mode, 1, Timestamp::now());
        if mode & S_IFMT == S_IFLNK && content.len() < I_BLOCK_LEN {
            // A fast symlink: the target lives in i_block, no blocks, no extents.
            let mut i_block = [0u8; I_BLOCK_LEN];
            i_block
                .get_mut(..content.len())
                .unwrap_or_default()
                .copy_from_slice(content);
            inode.set_i_block(&i_block);
            inode.set_size(content.len() as u64);
        } else {
            self.store(vol, &mut inode, content)?;
        }
        vol.write_inode(&mut inode)?;
        self.add_entry(vol, parent, name, ino, file_type)
    }

    /// Replaces a regular file's content and permission bits.
    fn replace(
        &mut self,
        vol: &mut Volume,
        mut inode: Inode,
        content: &[u8],
        mode: u32,
    ) -> Result<(), Error> {
        if inode.flags() & FL_INLINE_DATA != 0 {
            return Err(Error::unsupported(
                "ext4: replacing a file stored inline (inline_data) is not supported",
            ));
        }
        self.release_blocks(vol, &inode)?;
        inode.set_mode((inode.mode() & S_IFMT) | (mode & 0o7777) as u16);
        self.store(vol, &mut inode, content)?;
        inode.touch(Timestamp::now(), false);
        vol.write_inode(&mut inode)
    }

    /// Frees the data and map blocks of `inode` (not fast symlinks, whose
    /// i_block holds the target).
    fn release_blocks(&mut self, vol: &mut Volume, inode: &Inode) -> Result<(), Error> {
        if is_fast_symlink(inode) || inode.flags() & FL_INLINE_DATA != 0 {
            return Ok(());
        }
        let map = vol.block_map(inode)?;
        self.alloc.free_blocks(vol, &map.all_blocks())
    }

    /// Allocates blocks for `content`, writes it, and points `inode` at it
    /// (a new extent tree or indirect map; size, block count and flags).
    fn store(&mut self, vol: &mut Volume, inode: &mut Inode, content: &[u8]) -> Result<(), Error> {
        let bs = vol.sb.block_size as usize;
        let blocks = content.len().div_ceil(bs) as u64;
        let goal = group_of_inode(vol, inode.ino);
        let runs = self.alloc.alloc_blocks(vol, goal, blocks)?;
        let data: Vec<u64> = runs.iter().flat_map(|&(s, n)| s..s + n).collect();
        self.set_map(vol, inode, &runs, goal)?;
        for (chunk, &block) in content.chunks(bs).zip(&data) {
            if chunk.len() == bs {
                vol.write_block(block, chunk)?;
            } else {
                let mut last = vec![0u8; bs];
                last.get_mut(..chunk.len())
                    .unwrap_or_default()
                    .copy_from_slice(chunk);
                vol.write_block(block, &last)?;
            }
        }
        inode.set_size(content.len() as u64);
        Ok(())
    }

    /// Builds and writes a block map over `runs` (logically contiguous from
    /// block 0) for `inode`, allocating its map blocks; sets `i_block`, the
    /// block count and the map flags.
    fn set_map(
        &mut self,
        vol: &mut Volume,
        inode: &mut Inode,
        runs: &[(u64, u64)],
        goal: u32,
    ) -> Result<(), Error> {
        let data_blocks: u64 = runs.iter().map(|&(_, n)| n).sum();
        let (i_block, meta) = if vol.sb.has_incompat(INCOMPAT_EXTENTS) {
            let leaves = extent::leaf_blocks_needed(runs, vol.sb.block_size)?;
            let leaf_runs = self.alloc.alloc_blocks(vol, goal, leaves as u64)?;
            let leaf_blocks: Vec<u64> = leaf_runs.iter().flat_map(|&(s, n)| s..s + n).collect();
            inode.set_flags(inode.flags() | FL_EXTENTS);
            extent::encode(vol, inode, runs, &leaf_blocks)?
        } else {
            let data: Vec<u64> = runs.iter().flat_map(|&(s, n)| s..s + n).collect();
            let needed = bmap::meta_blocks_needed(data_blocks, vol.sb.block_size)?;
            let meta_runs = self.alloc.alloc_blocks(vol, goal, needed)?;
            let meta_blocks: Vec<u64> = meta_runs.iter().flat_map(|&(s, n)| s..s + n).collect();
            inode.set_flags(inode.flags() & !FL_EXTENTS);
            bmap::encode(vol.sb.block_size, &data, &meta_blocks)?
        };
        for (block, bytes) in &meta {
            vol.write_block(*block, bytes)?;
        }
        inode.set_i_block(&i_block);
        let acl_blocks = u64::from(inode.file_acl() != 0);
        let sectors_per_block = u64::from(vol.sb.block_size / 512);
        inode.set_sectors((data_blocks + meta.len() as u64 + acl_blocks) * sectors_per_block);
        Ok(())
    }

    /// Adds entry `name` → `ino` to directory `dir_ino`: into a block with
    /// room, or a new block at the end.
    fn add_entry(
        &mut self,
        vol: &mut Volume,
        dir_ino: u32,
        name: &str,
        ino: u32,
        file_type: u8,
    ) -> Result<(), Error> {
        let mut dir_inode = vol.read_inode(dir_ino)?;
        if dir_inode.flags() & FL_INLINE_DATA != 0 {
            return Err(Error::unsupported(format!(
                "ext4: directory inode {dir_ino} stores its entries inline (inline_data); adding \
                 to it is not supported"
            )));
        }
        if dir_inode.flags() & FL_INDEX != 0 {
            self.drop_index(vol, &mut dir_inode)?;
        }
        let csum = vol.sb.has_metadata_csum();
        let seed = inode_seed(vol.sb.csum_seed, dir_ino, dir_inode.generation());
        let map = vol.block_map(&dir_inode)?;
        let blocks = dir_blocks(&map, &dir_inode, vol)?;
        let entry = Entry {
            ino,
            name: name.as_bytes().to_vec(),
            file_type: if vol.sb.has_incompat(crate::superblock::INCOMPAT_FILETYPE) {
                file_type
            } else {
                0
            },
        };
        let now = Timestamp::now();
        for &block in &blocks {
            let mut bytes = vol.read_block(block)?;
            let place = Place { dir_ino, block };
            if dir::insert(&mut bytes, csum, &entry, place)? {
                if csum && dir::has_tail(&bytes) {
                    dir::seal(&mut bytes, true, seed);
                }
                vol.write_block(block, &bytes)?;
                dir_inode.touch(now, false);
                return vol.write_inode(&mut dir_inode);
            }
        }
        // No room: a new block at the end, and a new map over all of them.
        let goal = blocks
            .last()
            .and_then(|&b| vol.sb.group_of_block(b).ok())
            .unwrap_or_else(|| group_of_inode(vol, dir_ino));
        let new = self.alloc.alloc_blocks(vol, goal, 1)?;
        let new_block = new
            .first()
            .map(|&(b, _)| b)
            .ok_or_else(|| Error::internal("ext4: empty allocation"))?;
        let block = dir::new_block(vol.sb.block_size as usize, &[entry], csum, seed);
        vol.write_block(new_block, &block)?;
        let meta: Vec<(u64, u64)> = map.meta.iter().map(|&b| (b, 1)).collect();
        self.alloc.free_blocks(vol, &meta)?;
        let mut all = blocks;
        all.push(new_block);
        let runs = contiguous_runs(&all);
        self.set_map(vol, &mut dir_inode, &runs, goal)?;
        dir_inode.set_size(all.len() as u64 * u64::from(vol.sb.block_size));
        dir_inode.touch(now, false);
        vol.write_inode(&mut dir_inode)
    }

    /// Removes entry `name` from directory `dir_ino`.
    fn remove_entry(&mut self, vol: &mut Volume, dir_ino: u32, name: &str) -> Result<(), Error> {
        let mut dir_inode = vol.read_inode(dir_ino)?;
        if dir_inode.flags() & FL_INLINE_DATA != 0 {
            return Err(Error::unsupported(format!(
                "ext4: directory inode {dir_ino} stores its entries inline (inline_data); removing \
                 from it is not supported"
            )));
        }
        let csum = vol.sb.has_metadata_csum();
        let seed = inode_seed(vol.sb.csum_seed, dir_ino, dir_inode.generation());
        let map = vol.block_map(&dir_inode)?;
        for block in dir_blocks(&map, &dir_inode, vol)? {
            let mut bytes = vol.read_block(block)?;
            let place = Place { dir_ino, block };
            if dir::remove(&mut bytes, csum, name.as_bytes(), place)?.is_some() {
                if csum && dir::has_tail(&bytes) {
                    dir::seal(&mut bytes, true, seed);
                }
                vol.write_block(block, &bytes)?;
                dir_inode.touch(Timestamp::now(), false);
                return vol.write_inode(&mut dir_inode);
            }
        }
        Err(Error::not_found(format!(
            "ext4: directory inode {dir_ino} has no entry {name:?}"
        )))
    }

    /// Turns a hashed (`dir_index`) directory back into a linear one: the
    /// root and interior index blocks become ordinary (empty) directory
    /// blocks and the index flag goes. Every entry stays where it is, so the
    /// directory reads the same; the kernel and e2fsck accept linear
    /// directories of any size (`e2fsck -fD` rebuilds the index if wanted).
    fn drop_index(&mut self, vol: &mut Volume, dir_inode: &mut Inode) -> Result<(), Error> {
        let dir_ino = dir_inode.ino;
        let csum = vol.sb.has_metadata_csum();
        let seed = inode_seed(vol.sb.csum_seed, dir_ino, dir_inode.generation());
        let bs = vol.sb.block_size as usize;
        let map = vol.block_map(dir_inode)?;
        let blocks = dir_blocks(&map, dir_inode, vol)?;
        for (i, &block) in blocks.iter().enumerate() {
            let bytes = vol.read_block(block)?;
            let fresh = if i == 0 {
                // The index root: `.` then `..`, whose record holds the index.
                let parent = dir::parse(&bytes, true, Place { dir_ino, block })?
                    .into_iter()
                    .find(|e| e.name == b"..")
                    .map(|e| e.ino)
                    .ok_or_else(|| {
                        Error::invalid_input(format!(
                            "ext4: directory inode {dir_ino}: index root has no `..` entry \
                             (damaged directory block)"
                        ))
                    })?;
                let dots = [
                    Entry {
                        ino: dir_ino,
                        name: b".".to_vec(),
                        file_type: FT_DIR,
                    },
                    Entry {
                        ino: parent,
                        name: b"..".to_vec(),
                        file_type: FT_DIR,
                    },
                ];
                dir::new_block(bs, &dots, csum, seed)
            } else if dir::is_index_block(&bytes) {
                dir::new_block(bs, &[], csum, seed)
            } else {
                continue;
            };
            vol.write_block(block, &fresh)?;
        }
        dir_inode.set_flags(dir_inode.flags() & !FL_INDEX);
        vol.write_inode(dir_inode)
    }
}

/// The blocks of a directory in order; directories have no holes.
fn dir_blocks(
    map: &crate::map::BlockMap,
    dir_inode: &Inode,
    vol: &Volume,
) -> Result<Vec<u64>, Error> {
    let mut blocks = map.contiguous_physical().ok_or_else(|| {
        Error::unsupported(format!(
            "ext4: directory inode {} has holes or unwritten blocks; changing it is not supported \
             (run `e2fsck -fD` on the volume)",
            dir_inode.ino
        ))
    })?;
    let size_blocks = dir_inode.size().div_ceil(u64::from(vol.sb.block_size));
    blocks.truncate(size_blocks.min(blocks.len() as u64) as usize);
    Ok(blocks)
}

/// `(first, count)` runs of consecutive blocks.
fn contiguous_runs(blocks: &[u64]) -> Vec<(u64, u64)> {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &block in blocks {
        match runs.last_mut() {
            Some((start, len)) if *start + *len == block => *len += 1,
            _ => runs.push((block, 1)),
        }
    }
    runs
}
