//! Homeward's XFS handler: reads XFS v5 (CRC-enabled) file systems as
//! `mkfs.xfs` 5.x/6.x makes them, lists the blocks in use, rewrites and grows
//! existing files, creates regular files, directories and inline symlinks in
//! small (short-form) directories, and removes files and symlinks from them.
//! Changes that would restructure a B+tree or a directory are `unsupported`.
//!
//! XFS is big-endian throughout. The modules follow the on-disk structures:
//! [`superblock`] (geometry, features, counters), [`log`] (is it clean?),
//! [`agf`] and [`agbtree`] (per-AG free-space, inode, reverse-mapping and
//! reference-count trees), [`used`] (used extents), [`inode`], [`bmap`] (file
//! block maps), [`dir`], [`symlink`]; for writing, [`write`] (rewriting and
//! growing files), [`alloc`] and [`rmap`] (taking free blocks),
//! [`ialloc`] (taking and freeing inodes), [`create`] (new files,
//! directories and symlinks), [`remove`] and [`overlay`] (planning a change
//! in memory before writing it). Every metadata block read is checked
//! against its magic and CRC.

mod agbtree;
mod agf;
mod alloc;
mod bmap;
mod checksum;
mod create;
mod dir;
mod ialloc;
mod inode;
mod log;
mod overlay;
mod remove;
mod rmap;
mod superblock;
mod symlink;
mod used;
mod write;

use homeward_sdk::Error;
use homeward_sdk::fs::{Device, FileSystem, FsInfo, Namespace, resolve, resolve_parent};
use homeward_sdk::types::{ByteRange, DirEntry, FileKind, FileStat};
use inode::Inode;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use superblock::Superblock;

/// A damaged structure: `invalid-input` naming the file system.
pub(crate) fn corrupt(message: String) -> Error {
    Error::invalid_input(format!("xfs: {message}"))
}

/// The xfs file system on one volume.
pub struct Handler {
    dev: Box<dyn Device>,
    sb: Superblock,
    info: FsInfo,
    writable: bool,
    /// Parsed directories by inode number: path walks look up the same
    /// directories again and again. A change to a directory drops its entry.
    /// (Ordered maps and sets here and in the walkers: a hashed one would
    /// need the host's randomness just to seed itself.)
    dirs: RefCell<BTreeMap<u64, Rc<Vec<dir::Entry>>>>,
}

/// Directories kept in [`Handler::dirs`] before it starts over.
const DIR_CACHE_LIMIT: usize = 256;

/// The superblock of a volume that must be XFS v5.
fn v5_superblock(dev: &dyn Device) -> Result<Superblock, Error> {
    let sb = Superblock::read(dev)?.ok_or_else(|| {
        Error::invalid_input("xfs: the volume does not hold an XFS file system (no XFSB magic)")
    })?;
    if sb.version_number() != 5 {
        return Err(Error::unsupported(format!(
            "xfs: version {} file systems (without metadata CRCs) are not supported; only v5 is",
            sb.version_number()
        )));
    }
    Ok(sb)
}

impl Handler {
    fn inode(&self, ino: u64) -> Result<Inode, Error> {
        Inode::read(&*self.dev, &self.sb, ino)
    }

    /// The entries of directory `dir`, parsed once.
    fn entries(&self, dir: &Inode) -> Result<Rc<Vec<dir::Entry>>, Error> {
        if let Some(entries) = self.dirs.borrow().get(&dir.ino) {
            return Ok(Rc::clone(entries));
        }
        let entries = Rc::new(dir::entries(&*self.dev, &self.sb, dir)?);
        let mut cache = self.dirs.borrow_mut();
        if cache.len() >= DIR_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(dir.ino, Rc::clone(&entries));
        Ok(entries)
    }

    /// Re-reads the superblock after a write that may have changed its
    /// free counts, so `info` reports them.
    fn reload_superblock(&mut self) -> Result<(), Error> {
        if let Some(sb) = Superblock::read(&*self.dev)? {
            self.info = sb.info(self.info.clean);
            self.sb = sb;
        }
        Ok(())
    }

    fn check_writable(&self, path: &str) -> Result<(), Error> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::permission_denied(
                format!("xfs: cannot change {path}: the volume was opened read-only"),
                &[],
            ))
        }
    }

    /// The parent directory of `path` and the new entry's name, after
    /// checking the volume is writable and nothing is at `path` yet. The
    /// parent's cached entries are dropped: it is about to change.
    fn new_entry_parent<'p>(&self, path: &'p str) -> Result<(Inode, &'p str), Error> {
        self.check_writable(path)?;
        let (parent, name) = resolve_parent(self, path)?;
        if parent.kind() != FileKind::Directory {
            return Err(Error::invalid_input(format!(
                "xfs: the parent of {path} is not a directory"
            )));
        }
        if self.lookup(&parent, name)?.is_some() {
            return Err(Error::conflict(format!("xfs: {path} already exists")));
        }
        self.dirs.borrow_mut().remove(&parent.ino);
        Ok((parent, name))
    }
}

impl Namespace for Handler {
    type Node = Inode;

    fn root(&self) -> Result<Inode, Error> {
        self.inode(self.sb.root_ino)
    }

    fn kind(&self, node: &Inode) -> Result<FileKind, Error> {
        Ok(node.kind())
    }

    fn lookup(&self, dir: &Inode, name: &str) -> Result<Option<Inode>, Error> {
        let entries = self.entries(dir)?;
        match entries.iter().find(|e| e.name == name.as_bytes()) {
            Some(entry) => Ok(Some(self.inode(entry.ino)?)),
            None => Ok(None),
        }
    }

    fn link_target(&self, node: &Inode) -> Result<String, Error> {
        symlink::target(&*self.dev, &self.sb, node)
    }
}

impl FileSystem for Handler {
    fn probe(dev: &dyn Device) -> Result<Option<FsInfo>, Error> {
        let Some(sb) = Superblock::read(dev)? else {
            return Ok(None);
        };
        // Older versions have no log we check; they are reported, not parsed.
        let clean = sb.version_number() == 5 && log::is_clean(dev, &sb)?;
        Ok(Some(sb.info(clean)))
    }

    fn used_extents(dev: &dyn Device) -> Result<Vec<ByteRange>, Error> {
        let sb = v5_superblock(dev)?;
        used::used_extents(dev, &sb)
    }

    fn open(dev: Box<dyn Device>, writable: bool) -> Result<Self, Error> {
        let sb = v5_superblock(&*dev)?;
        let unknown = sb.unknown_incompat();
        if unknown != 0 {
            return Err(Error::unsupported(format!(
                "xfs: incompatible features 0x{unknown:x} are unknown to this handler"
            )));
        }
        if sb.rblocks > 0 && writable {
            return Err(Error::unsupported(
                "xfs: file systems with a realtime section cannot be opened for writing",
            ));
        }
        if sb.needs_repair() {
            return Err(Error::unsupported(
                "xfs: the file system is marked as needing repair; run xfs_repair on it first",
            ));
        }
        let clean = log::is_clean(&*dev, &sb)?;
        if writable {
            if !dev.writable() {
                return Err(Error::permission_denied(
                    "xfs: asked to open the volume for writing, but the device is read-only",
                    &[],
                ));
            }
            if !clean {
                return Err(Error::conflict(
                    "xfs: the log needs recovery (the file system was not cleanly unmounted); \
                     mount it once, or run xfs_repair, before writing to it offline",
                ));
            }
        }
        let info = sb.info(clean);
        Ok(Handler {
            dev,
            sb,
            info,
            writable,
            dirs: RefCell::default(),
        })
    }

    fn info(&self) -> FsInfo {
        self.info.clone()
    }

    fn stat(&self, path: &str) -> Result<FileStat, Error> {
        Ok(resolve(self, path, false)?.stat())
    }

    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error> {
        let dir = resolve(self, path, true)?;
        if dir.kind() != FileKind::Directory {
            return Err(Error::invalid_input(format!(
                "xfs: {path} is not a directory"
            )));
        }
        let mut out = Vec::new();
        for entry in self.entries(&dir)?.iter() {
            let kind = match entry.kind {
                Some(kind) => kind,
                None => self.inode(entry.ino)?.kind(),
            };
            out.push(DirEntry {
                name: String::from_utf8_lossy(&entry.name).into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read_file(&self, path: &str, offset: u64, length: u32) -> Result<Vec<u8>, Error> {
        let file = resolve(self, path, true)?;
        if file.kind() != FileKind::Regular {
            return Err(Error::invalid_input(format!(
                "xfs: {path} is not a regular file"
            )));
        }
        if file.realtime {
            return Err(Error::unsupported(format!(
                "xfs: {path} lives on the realtime device, which this handler cannot reach"
            )));
        }
        if offset >= file.size || length == 0 {
            return Ok(Vec::new());
        }
        let len = (file.size - offset).min(u64::from(length)) as usize;
        let extents = bmap::extents(&*self.dev, &self.sb, &file)?;
        let mut buf = vec![0u8; len];
        bmap::read_mapped(&*self.dev, &self.sb, &extents, offset, &mut buf)?;
        Ok(buf)
    }

    fn read_link(&self, path: &str) -> Result<String, Error> {
        let link = resolve(self, path, false)?;
        if link.kind() != FileKind::Symlink {
            return Err(Error::invalid_input(format!(
                "xfs: {path} is not a symlink"
            )));
        }
        symlink::target(&*self.dev, &self.sb, &link)
    }

    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<(), Error> {
        self.check_writable(path)?;
        let (mut parent, name) = resolve_parent(self, path)?;
        if self.lookup(&parent, name)?.is_none() {
            self.dirs.borrow_mut().remove(&parent.ino);
            create::create_file(&*self.dev, &self.sb, &mut parent, name, path, content, mode)?;
            return self.reload_superblock();
        }
        let mut file = match resolve(self, path, true) {
            Ok(file) => file,
            // A symlink pointing nowhere: writing through it creates its target.
            Err(Error::NotFound(_)) => {
                return Err(write::needs_allocation(&format!(
                    "creating the target of symlink {path}"
                )));
            }
            Err(e) => return Err(e),
        };
        match file.kind() {
            FileKind::Regular => {
                write::rewrite(&*self.dev, &self.sb, &mut file, path, content, mode)?;
                self.reload_superblock()
            }
            FileKind::Directory => Err(Error::conflict(format!("xfs: {path} is a directory"))),
            _ => Err(Error::unsupported(format!(
                "xfs: {path} is a device, FIFO or socket; only regular files can be written"
            ))),
        }
    }

    fn create_dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        let (mut parent, name) = self.new_entry_parent(path)?;
        create::create_dir(&*self.dev, &self.sb, &mut parent, name, path, mode)?;
        self.reload_superblock()
    }

    fn create_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        let (mut parent, name) = self.new_entry_parent(path)?;
        create::create_symlink(&*self.dev, &self.sb, &mut parent, name, path, target)?;
        self.reload_superblock()
    }

    fn remove(&mut self, path: &str) -> Result<(), Error> {
        self.check_writable(path)?;
        let (mut parent, name) = resolve_parent(self, path)?;
        match self.lookup(&parent, name)? {
            None => return Err(Error::not_found(format!("xfs: {path} does not exist"))),
            Some(node) if node.kind() == FileKind::Directory => {
                return Err(Error::invalid_input(format!(
                    "xfs: {path} is a directory; remove deletes regular files and symlinks"
                )));
            }
            Some(_) => {}
        }
        self.dirs.borrow_mut().remove(&parent.ino);
        remove::remove(&*self.dev, &self.sb, &mut parent, name, path)?;
        self.reload_superblock()
    }

    fn sync(&mut self) -> Result<(), Error> {
        // Every write already went to the device in order (data, then inode).
        if self.writable {
            self.dev.flush()
        } else {
            Ok(())
        }
    }
}

/// The fuzz target's body (`fuzz/fuzz_targets/fs_xfs.rs`, and the corruption
/// tests): everything a host may ask of this handler, on `data` taken as a
/// volume, must answer without a panic or a hang.
pub fn fuzz_one(data: &[u8]) {
    homeward_sdk::fs::fuzz_file_system::<Handler>(data);
    fuzz_namespace_changes(data);
}

/// Entries of a directory the namespace fuzzing tries to remove.
const FUZZ_MAX_REMOVALS: usize = 8;

/// Creating directories and symlinks and removing entries, on `data` taken
/// as a writable volume: each must answer without a panic or a hang.
fn fuzz_namespace_changes(data: &[u8]) {
    use homeward_sdk::fs::MemDevice;
    let Ok(mut fs) = Handler::open(Box::new(MemDevice::writable(data.to_vec())), true) else {
        return;
    };
    let _ = fs.create_dir("/fuzz-dir", 0o755);
    let _ = fs.write_file("/fuzz-dir/file", b"fuzz", 0o644);
    let _ = fs.create_dir("/fuzz-dir/sub", 0o755);
    let _ = fs.create_symlink("/fuzz-link", "fuzz-dir/file");
    for dir in ["/", "/etc", "/var/lib"] {
        let Ok(entries) = fs.read_dir(dir) else {
            continue;
        };
        for entry in entries.into_iter().take(FUZZ_MAX_REMOVALS) {
            let _ = fs.remove(&format!("{}/{}", dir.trim_end_matches('/'), entry.name));
        }
    }
    let _ = fs.create_dir("/etc/fuzz-again", 0o755);
    let _ = fs.sync();
}

homeward_sdk::filesystem_plugin! {
    id: "fs-xfs",
    file_system: Handler,
    disk_write: true,
}
