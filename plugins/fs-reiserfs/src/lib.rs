//! Homeward's ReiserFS handler: probes, reports used blocks, reads and writes
//! ReiserFS 3.6 volumes (and reads 3.5 ones) through [`Device`].
//!
//! The layout of the crate follows the on-disk format: [`superblock`] and
//! [`journal`] for what a probe reports, [`bitmap`] for used blocks and
//! allocation, [`key`], [`node`] and [`tree`] for the S+tree, [`stat`] and
//! [`dir`] for the items that make files and directories, [`volume`] for
//! reading files, and [`balance`], [`objectid`] and [`write`] for changing
//! them.

mod balance;
mod bitmap;
mod dir;
mod journal;
mod key;
mod node;
mod objectid;
mod stat;
mod superblock;
mod tree;
mod volume;
mod write;

use homeward_sdk::Error;
use homeward_sdk::fs::{Device, FileSystem, FsInfo, merge_ranges, resolve, resolve_parent};
use homeward_sdk::types::{ByteRange, DirEntry, FileKind, FileStat};
use superblock::{Format, Superblock};
use volume::{Object, Volume};
use write::NewObject;

/// The ReiserFS file system on one volume.
pub struct Handler {
    vol: Volume,
    writable: bool,
}

fn read_superblock(dev: &dyn Device) -> Result<Superblock, Error> {
    Superblock::read(dev)?.ok_or_else(|| {
        Error::invalid_input("reiserfs: no ReiserFS superblock at 64 KiB (not a ReiserFS volume)")
    })
}

/// Whether the journal is clean; a journal too damaged to read counts as
/// needing recovery rather than failing the probe.
fn journal_clean(dev: &dyn Device, sb: &Superblock) -> bool {
    journal::needs_replay(dev, sb)
        .map(|replay| !replay)
        .unwrap_or(false)
}

impl Handler {
    fn check_writable(&self, path: &str) -> Result<(), Error> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::permission_denied(
                format!("reiserfs: cannot change {path}: the volume was opened read-only"),
                &[],
            ))
        }
    }

    fn resolve_kind(&self, path: &str, follow: bool, want: FileKind) -> Result<Object, Error> {
        let obj = resolve(&self.vol, path, follow)?;
        let kind = obj.stat.kind();
        if kind != want {
            return Err(Error::invalid_input(format!(
                "reiserfs: {path} is a {kind:?}, not a {want:?}"
            )));
        }
        Ok(obj)
    }
}

impl FileSystem for Handler {
    fn probe(dev: &dyn Device) -> Result<Option<FsInfo>, Error> {
        let Some(sb) = Superblock::read(dev)? else {
            return Ok(None);
        };
        Ok(Some(sb.info(journal_clean(dev, &sb))))
    }

    fn used_extents(dev: &dyn Device) -> Result<Vec<ByteRange>, Error> {
        let sb = read_superblock(dev)?;
        Ok(merge_ranges(bitmap::used_ranges(dev, &sb)?))
    }

    fn open(dev: Box<dyn Device>, writable: bool) -> Result<Self, Error> {
        let sb = read_superblock(dev.as_ref())?;
        let clean = journal_clean(dev.as_ref(), &sb);
        if writable {
            if !dev.writable() {
                return Err(Error::permission_denied(
                    "reiserfs: asked to open the volume for writing, but the device is read-only",
                    &[],
                ));
            }
            if sb.format == Format::V35 {
                return Err(Error::unsupported(
                    "reiserfs: writing ReiserFS 3.5 volumes is not supported; open it read-only, \
                     or convert it to 3.6 (mount with -o conv) first",
                ));
            }
            if sb.journal.device != 0 {
                return Err(Error::unsupported(
                    "reiserfs: the journal is on another device, which Homeward cannot check; open read-only",
                ));
            }
            if sb.hash_name() != "r5" {
                return Err(Error::unsupported(format!(
                    "reiserfs: writing directories hashed with {} is not supported (only r5, mkreiserfs's default); open read-only",
                    sb.hash_name()
                )));
            }
            if !clean || sb.umount_state != 1 || sb.fs_state != 0 {
                return Err(Error::unsupported(
                    "reiserfs: the volume was not cleanly unmounted (journal replay or fsck pending); \
                     run `reiserfsck --fix-fixable` (which replays the journal) before writing, or open read-only",
                ));
            }
        }
        let vol = Volume::new(dev, sb, clean);
        vol.root()?;
        Ok(Handler { vol, writable })
    }

    fn info(&self) -> FsInfo {
        self.vol.sb.info(self.vol.journal_clean)
    }

    fn stat(&self, path: &str) -> Result<FileStat, Error> {
        let obj = resolve(&self.vol, path, false)?;
        let s = &obj.stat;
        Ok(FileStat {
            kind: s.kind(),
            size: s.size,
            mode: u32::from(s.mode & 0o7777),
            uid: s.uid,
            gid: s.gid,
            modified_at: u64::from(s.mtime) * 1000,
        })
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let dir = self.resolve_kind(path, true, FileKind::Directory)?;
        let mut out = Vec::new();
        for e in self.vol.entries(&dir)? {
            if e.name == b"." || e.name == b".." {
                continue;
            }
            let kind = self.vol.entry_object(&e)?.stat.kind();
            out.push(DirEntry {
                name: String::from_utf8_lossy(&e.name).into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_file(&self, path: &str, offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        let obj = self.resolve_kind(path, true, FileKind::Regular)?;
        self.vol.read_body(&obj, offset, u64::from(length))
    }

    fn read_link(&self, path: &str) -> Result<String, Error> {
        let obj = self.resolve_kind(path, false, FileKind::Symlink)?;
        self.vol.link_target(&obj)
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<(), Error> {
        self.check_writable(path)?;
        let (parent, name) = resolve_parent(&self.vol, path)?;
        let existing = self.vol.lookup_entry(&parent, name)?;
        self.vol.operation(|vol| match existing {
            Some(obj) if obj.stat.kind() == FileKind::Directory => {
                Err(Error::conflict(format!("reiserfs: {path} is a directory")))
            }
            Some(obj) if obj.stat.kind() == FileKind::Regular => vol.rewrite(&obj, content, mode),
            Some(obj) => {
                vol.remove_file(&parent, name, &obj)?;
                let parent = vol.object(parent.dir_id, parent.objectid)?.ok_or_else(|| {
                    Error::invalid_input(format!(
                        "reiserfs: the parent of {path} vanished (damaged tree)"
                    ))
                })?;
                vol.create(&parent, name, NewObject::File(content), mode)
            }
            None => vol.create(&parent, name, NewObject::File(content), mode),
        })
    }

    fn create_dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        self.check_writable(path)?;
        let (parent, name) = resolve_parent(&self.vol, path)?;
        self.vol
            .operation(|vol| vol.create(&parent, name, NewObject::Dir, mode))
    }

    fn create_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        self.check_writable(path)?;
        let (parent, name) = resolve_parent(&self.vol, path)?;
        self.vol.operation(|vol| {
            vol.create(&parent, name, NewObject::Symlink(target.as_bytes()), 0o777)
        })
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.check_writable(path)?;
        let (parent, name) = resolve_parent(&self.vol, path)?;
        let obj = self
            .vol
            .lookup_entry(&parent, name)?
            .ok_or_else(|| Error::not_found(format!("reiserfs: {path}: no such file")))?;
        if obj.stat.kind() == FileKind::Directory {
            return Err(Error::invalid_input(format!(
                "reiserfs: {path} is a directory; remove takes files and symlinks"
            )));
        }
        self.vol
            .operation(|vol| vol.remove_file(&parent, name, &obj))
    }

    fn sync(&mut self) -> Result<(), Error> {
        // Every operation has already written its changes; make them durable.
        if self.writable {
            self.vol.dev.flush()
        } else {
            Ok(())
        }
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/fs_reiserfs.rs`, and the corruption
/// tests): everything a host may ask of this handler, on `data` taken as a
/// volume, must answer without a panic or a hang.
pub fn fuzz_one(data: &[u8]) {
    homeward_sdk::fs::fuzz_file_system::<Handler>(data);
}

homeward_sdk::filesystem_plugin! {
    id: "fs-reiserfs",
    file_system: Handler,
    disk_write: true,
}
