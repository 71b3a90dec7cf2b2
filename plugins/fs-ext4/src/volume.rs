//! An opened ext4 volume and its read side: blocks, inodes, block maps, file
//! contents, directory listings and symlink targets, and the path lookup the
//! SDK's resolver walks (so symlinks stay inside the guest root).

use crate::checksum::inode_seed;
use crate::dir::{self, Entry, Place};
use crate::group::GroupTable;
use crate::inode::{FL_EXTENTS, FL_INLINE_DATA, I_BLOCK_LEN, Inode};
use crate::map::BlockMap;
use crate::superblock::{INCOMPAT_FILETYPE, Superblock};
use crate::{bmap, extent, xattr};
use homeward_sdk::Error;
use homeward_sdk::fs::{Device, Namespace};
use homeward_sdk::types::FileKind;

/// Longest symlink target read (Linux's `PATH_MAX`).
const MAX_LINK: u64 = 4096;

/// An opened ext4 file system.
pub struct Volume {
    pub dev: Box<dyn Device>,
    pub sb: Superblock,
    pub groups: GroupTable,
}

impl Volume {
    /// Reads and checks the superblock and group descriptors.
    pub fn open(dev: Box<dyn Device>) -> Result<Volume, Error> {
        let sb = Superblock::read(&*dev)?.ok_or_else(|| {
            Error::invalid_input(
                "ext4: no ext2/3/4 superblock (magic 0xef53 at byte 1080) on this volume",
            )
        })?;
        sb.check_readable()?;
        let groups = GroupTable::load(&*dev, &sb)?;
        Ok(Volume { dev, sb, groups })
    }

    /// Re-reads the superblock and descriptors, dropping changes a failed
    /// write left in memory.
    pub fn reload(&mut self) -> Result<(), Error> {
        let sb = Superblock::read(&*self.dev)?
            .ok_or_else(|| Error::invalid_input("ext4: the superblock vanished while writing"))?;
        self.groups = GroupTable::load(&*self.dev, &sb)?;
        self.sb = sb;
        Ok(())
    }

    /// Byte offset of `block`, checked against the file system's size.
    pub fn block_offset(&self, block: u64) -> Result<u64, Error> {
        if block >= self.sb.blocks_count {
            return Err(Error::invalid_input(format!(
                "ext4: block {block} is past the end of the file system ({} blocks)",
                self.sb.blocks_count
            )));
        }
        Ok(block * u64::from(self.sb.block_size))
    }

    pub fn read_block(&self, block: u64) -> Result<Vec<u8>, Error> {
        self.dev
            .read_vec(self.block_offset(block)?, self.sb.block_size as usize)
    }

    pub fn write_block(&self, block: u64, bytes: &[u8]) -> Result<(), Error> {
        self.dev.write_at(self.block_offset(block)?, bytes)
    }

    /// Byte offset of inode `ino` in its group's inode table.
    fn inode_offset(&self, ino: u32) -> Result<u64, Error> {
        if ino == 0 || ino > self.sb.inodes_count {
            return Err(Error::invalid_input(format!(
                "ext4: inode number {ino} is out of range (1..={}): a damaged directory entry",
                self.sb.inodes_count
            )));
        }
        let group = (ino - 1) / self.sb.inodes_per_group;
        let index = (ino - 1) % self.sb.inodes_per_group;
        let table = self.block_offset(self.groups.inode_table(group)?)?;
        Ok(table + u64::from(index) * u64::from(self.sb.inode_size))
    }

    /// Reads inode `ino` and checks its checksum and extra size.
    pub fn read_inode(&self, ino: u32) -> Result<Inode, Error> {
        let raw = self
            .dev
            .read_vec(self.inode_offset(ino)?, self.sb.inode_size as usize)?;
        let inode = Inode { ino, raw };
        if 128 + inode.extra_isize() > inode.raw.len() {
            return Err(Error::invalid_input(format!(
                "ext4: inode {ino}: extra size {} does not fit a {}-byte inode (damaged inode)",
                inode.extra_isize(),
                inode.raw.len()
            )));
        }
        inode.verify(&self.sb)?;
        Ok(inode)
    }

    /// Writes `inode` back, with a fresh checksum.
    pub fn write_inode(&self, inode: &mut Inode) -> Result<(), Error> {
        inode.seal(&self.sb);
        self.dev.write_at(self.inode_offset(inode.ino)?, &inode.raw)
    }

    /// The block map of `inode` (empty for inline data and fast symlinks).
    pub fn block_map(&self, inode: &Inode) -> Result<BlockMap, Error> {
        if inode.flags() & FL_INLINE_DATA != 0 || is_fast_symlink(inode) {
            Ok(BlockMap::default())
        } else if inode.flags() & FL_EXTENTS != 0 {
            extent::read_map(self, inode)
        } else {
            bmap::read_map(self, inode)
        }
    }

    /// Up to `len` bytes of `inode`'s content from `offset`.
    pub fn read_content(&self, inode: &Inode, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let size = inode.size();
        if offset >= size {
            return Ok(Vec::new());
        }
        let len = len.min(size - offset);
        if inode.flags() & FL_INLINE_DATA != 0 {
            let mut data = inode.i_block().to_vec();
            data.extend(xattr::inline_data_tail(inode)?);
            let from = offset.min(data.len() as u64) as usize;
            let to = offset.saturating_add(len).min(data.len() as u64) as usize;
            let mut out = data.get(from..to).unwrap_or_default().to_vec();
            // Bytes past the stored data (a damaged size) read as zeros.
            out.resize(len as usize, 0);
            return Ok(out);
        }
        let len = usize::try_from(len)
            .map_err(|_| Error::invalid_input("ext4: read length does not fit in memory"))?;
        self.block_map(inode)?.read(self, offset, len)
    }

    /// The entries of directory `inode`, `.` and `..` included.
    pub fn dir_entries(&self, inode: &Inode) -> Result<Vec<Entry>, Error> {
        let filetype = self.sb.has_incompat(INCOMPAT_FILETYPE);
        let mut place = Place {
            dir_ino: inode.ino,
            block: 0,
        };
        if inode.flags() & FL_INLINE_DATA != 0 {
            // i_block: the parent's inode number, then entries; system.data
            // continues them.
            let mut entries = Vec::new();
            if let Some(area) = inode.i_block().get(4..) {
                entries.extend(dir::parse(area, filetype, place)?);
            }
            let tail = xattr::inline_data_tail(inode)?;
            if !tail.is_empty() {
                entries.extend(dir::parse(&tail, filetype, place)?);
            }
            return Ok(entries);
        }
        let map = self.block_map(inode)?;
        let seed = inode_seed(self.sb.csum_seed, inode.ino, inode.generation());
        let mut entries = Vec::new();
        // Only the blocks the size covers count: that bounds the reads even
        // when damaged extents overlap.
        let blocks = inode.size().div_ceil(u64::from(self.sb.block_size));
        for run in map.runs.iter().filter(|r| !r.uninit) {
            let len = run.len.min(blocks.saturating_sub(run.logical));
            for block in run.physical..run.physical + len {
                let bytes = self.read_block(block)?;
                place.block = block;
                if self.sb.has_metadata_csum() {
                    dir::verify_tail(&bytes, seed, place)?;
                }
                entries.extend(dir::parse(&bytes, filetype, place)?);
            }
        }
        Ok(entries)
    }

    /// The kind of the file an entry names, from the entry or its inode.
    pub fn entry_kind(&self, entry: &Entry) -> Result<FileKind, Error> {
        match entry.kind() {
            Some(kind) => Ok(kind),
            None => Ok(self.read_inode(entry.ino)?.kind()),
        }
    }

    /// The target of symlink `inode`.
    pub fn link_target(&self, inode: &Inode) -> Result<String, Error> {
        let size = inode.size();
        if size > MAX_LINK {
            return Err(Error::invalid_input(format!(
                "ext4: inode {}: symlink target of {size} bytes (damaged symlink)",
                inode.ino
            )));
        }
        let bytes = if is_fast_symlink(inode) {
            inode
                .i_block()
                .get(..size as usize)
                .unwrap_or_default()
                .to_vec()
        } else {
            self.read_content(inode, 0, size)?
        };
        String::from_utf8(bytes).map_err(|_| {
            Error::invalid_input(format!(
                "ext4: inode {}: symlink target is not UTF-8",
                inode.ino
            ))
        })
    }
}

/// Whether the symlink's target lives in `i_block` (libext2fs rule).
pub fn is_fast_symlink(inode: &Inode) -> bool {
    inode.kind() == FileKind::Symlink
        && inode.flags() & FL_INLINE_DATA == 0
        && inode.size() > 0
        && inode.size() < I_BLOCK_LEN as u64
        && inode.flags() & FL_EXTENTS == 0
}

impl Namespace for Volume {
    type Node = u32;

    fn root(&self) -> Result<u32, Error> {
        Ok(crate::inode::ROOT_INO)
    }

    fn kind(&self, node: &u32) -> Result<FileKind, Error> {
        Ok(self.read_inode(*node)?.kind())
    }

    fn lookup(&self, dir: &u32, name: &str) -> Result<Option<u32>, Error> {
        let inode = self.read_inode(*dir)?;
        Ok(self
            .dir_entries(&inode)?
            .into_iter()
            .find(|e| e.name == name.as_bytes())
            .map(|e| e.ino))
    }

    fn link_target(&self, node: &u32) -> Result<String, Error> {
        Volume::link_target(self, &self.read_inode(*node)?)
    }
}
