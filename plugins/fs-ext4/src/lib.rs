//! Homeward's ext4 file-system handler (also reads ext2 and ext3).
//!
//! It recognises the file system, lists the blocks in use from the block
//! bitmaps, reads files, directories and symlinks (extent trees, indirect
//! maps, inline data, hashed directories), and writes files, directories and
//! symlinks, keeping bitmaps, descriptors, counts and checksums consistent so
//! `e2fsck -fn` finds nothing to fix. Everything read from the disk is treated
//! as hostile: damage is an `invalid-input` error naming the structure.
//!
//! The parser is plain Rust over [`homeward_sdk::fs::Device`]; the wasm
//! export glue is the SDK's `filesystem_plugin!` at the bottom.

mod alloc;
mod bitmap;
mod bmap;
mod checksum;
mod dir;
mod extent;
mod group;
mod inode;
mod map;
mod superblock;
mod used;
mod volume;
mod write;
mod xattr;

use homeward_sdk::Error;
use homeward_sdk::fs::{Device, FileSystem, FsInfo, resolve};
use homeward_sdk::types::{ByteRange, DirEntry, FileKind, FileStat};
use superblock::Superblock;
use volume::Volume;

/// The ext4 file system on one volume.
pub struct Handler {
    vol: Volume,
    /// Allocation state; `Some` when opened writable.
    writer: Option<write::Writer>,
}

impl Handler {
    fn not_writable(&self, what: &str, path: &str) -> Error {
        Error::permission_denied(
            format!("ext4: cannot {what} {path}: the volume was opened read-only"),
            &[],
        )
    }
}

impl FileSystem for Handler {
    fn probe(dev: &dyn Device) -> Result<Option<FsInfo>, Error> {
        Ok(Superblock::read(dev)?.map(|sb| sb.info()))
    }

    fn used_extents(dev: &dyn Device) -> Result<Vec<ByteRange>, Error> {
        used::used_extents(dev)
    }

    fn open(dev: Box<dyn Device>, writable: bool) -> Result<Self, Error> {
        if writable && !dev.writable() {
            return Err(Error::permission_denied(
                "ext4: asked to open the volume for writing, but the device is read-only",
                &[],
            ));
        }
        let vol = Volume::open(dev)?;
        let writer = if writable {
            vol.sb.check_writable()?;
            Some(write::Writer::default())
        } else {
            None
        };
        Ok(Handler { vol, writer })
    }

    fn info(&self) -> FsInfo {
        self.vol.sb.info()
    }

    fn stat(&self, path: &str) -> Result<FileStat, Error> {
        let inode = self.vol.read_inode(resolve(&self.vol, path, false)?)?;
        let kind = inode.kind();
        Ok(FileStat {
            kind,
            size: inode.size(),
            mode: u32::from(inode.mode() & 0o7777),
            uid: inode.uid(),
            gid: inode.gid(),
            modified_at: inode.mtime_millis(),
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let inode = self.vol.read_inode(resolve(&self.vol, path, true)?)?;
        if inode.kind() != FileKind::Directory {
            return Err(Error::invalid_input(format!(
                "ext4: {path} is not a directory"
            )));
        }
        let mut out = Vec::new();
        for entry in self.vol.dir_entries(&inode)? {
            if entry.is_dot() {
                continue;
            }
            out.push(DirEntry {
                name: String::from_utf8_lossy(&entry.name).into_owned(),
                kind: self.vol.entry_kind(&entry)?,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_file(&self, path: &str, offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        let inode = self.vol.read_inode(resolve(&self.vol, path, true)?)?;
        match inode.kind() {
            FileKind::Regular => self.vol.read_content(&inode, offset, u64::from(length)),
            FileKind::Directory => Err(Error::invalid_input(format!(
                "ext4: {path} is a directory; use read-dir"
            ))),
            _ => Err(Error::invalid_input(format!(
                "ext4: {path} is not a regular file"
            ))),
        }
    }

    fn read_link(&self, path: &str) -> Result<String, Error> {
        let inode = self.vol.read_inode(resolve(&self.vol, path, false)?)?;
        if inode.kind() != FileKind::Symlink {
            return Err(Error::invalid_input(format!(
                "ext4: {path} is not a symlink"
            )));
        }
        self.vol.link_target(&inode)
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<(), Error> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.not_writable("write", path));
        };
        writer.write_file(&mut self.vol, path, content, mode)
    }

    fn create_dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.not_writable("create directory", path));
        };
        writer.create_dir(&mut self.vol, path, mode)
    }

    fn create_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.not_writable("create symlink", path));
        };
        writer.create_symlink(&mut self.vol, path, target)
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.not_writable("remove", path));
        };
        writer.remove(&mut self.vol, path)
    }

    fn sync(&mut self) -> Result<(), Error> {
        // Every write call leaves the metadata on the device consistent;
        // sync only makes it durable.
        self.vol.dev.flush()
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/fs_ext4.rs`, and the corruption
/// tests): everything a host may ask of this handler, on `data` taken as a
/// volume, must answer without a panic or a hang.
pub fn fuzz_one(data: &[u8]) {
    homeward_sdk::fs::fuzz_file_system::<Handler>(data);
}

#[cfg(feature = "plugin")]
homeward_sdk::filesystem_plugin! {
    id: "fs-ext4",
    file_system: Handler,
    disk_write: true,
}
