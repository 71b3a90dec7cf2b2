//! Building blocks of a file-system handler plugin (ext4, XFS, ReiserFS...).
//!
//! A handler parses a file system it reaches only through a [`Device`]: inside
//! the plugin that is the host's `disk` resource; in native tests and fuzz
//! targets it is a [`MemDevice`] or a [`FileDevice`]. Writing the parser against
//! the trait keeps it testable at native speed and fuzzable without wasm.
//!
//! - [`FileSystem`] is what a handler implements; [`filesystem_plugin!`](crate::filesystem_plugin)
//!   exports it as the `filesystem-handler` world, so a handler writes no
//!   binding glue at all.
//! - [`resolve`] and [`resolve_parent`] walk a path through a [`Namespace`]
//!   (the handler's directory lookup), following symlinks *inside the guest
//!   root only*: `..` at the root stays at the root, and an absolute target
//!   restarts at the guest root, never at the host's.
//! - [`crc32c`] is the checksum ext4 (`metadata_csum`) and XFS v5 use.
//! - [`merge_ranges`] sorts and merges used extents the way the API returns them.
//!
//! Every error is the API's [`Error`]: a damaged structure is
//! `invalid-input` naming the structure, a feature the handler does not know is
//! `unsupported`, a missing path is `not-found`.

use crate::Error;
use crate::types::{ByteRange, DirEntry, FileKind, FileStat};
use std::cell::RefCell;

pub use crate::filesystem_handler::exports::homeward::plugin::filesystem::{FsInfo, ProbeResult};

/// Bytes a handler can read, and maybe write, at offsets.
///
/// Implementations check bounds: reading or writing past [`Device::size`] is an
/// `invalid-input` error, never a panic.
pub trait Device {
    /// Size in bytes (of the partition or volume, not of the whole disk).
    fn size(&self) -> u64;

    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;

    /// Whether [`Device::write_at`] may succeed.
    fn writable(&self) -> bool;

    /// Writes `data` at `offset`.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), Error>;

    /// Makes completed writes durable.
    fn flush(&self) -> Result<(), Error>;

    /// `len` bytes at `offset`, as a new buffer.
    fn read_vec(&self, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
        let mut buf = vec![0u8; len];
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
}

/// Fails unless `len` bytes at `offset` fit in `size`.
pub fn check_bounds(size: u64, offset: u64, len: usize, what: &str) -> Result<(), Error> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::invalid_input(format!(
            "{what} of {len} bytes at offset {offset} runs past the end of the {size}-byte volume \
             (a damaged structure points outside it, or the image is truncated)"
        ))),
    }
}

/// Fails when a superblock says its file system spans more bytes than the
/// volume holds: the image was cut short (a copy interrupted, a partition
/// table that lies), and every structure past the end would read as an error
/// later, or worse, be taken for free space.
pub fn check_fits(dev: &dyn Device, fs: &str, blocks: u64, block_size: u64) -> Result<(), Error> {
    let size = dev.size();
    match blocks.checked_mul(block_size) {
        Some(bytes) if bytes <= size => Ok(()),
        Some(bytes) => Err(Error::invalid_input(format!(
            "{fs}: the file system spans {bytes} bytes ({blocks} blocks of {block_size}) but the volume holds only {size}: \
             the image is truncated; copy it again, or check the partition's size"
        ))),
        None => Err(Error::invalid_input(format!(
            "{fs}: the superblock claims {blocks} blocks of {block_size} bytes, more than any volume holds (a damaged superblock)"
        ))),
    }
}

/// The largest transfer the host accepts in one `disk` call (16 MiB).
const MAX_DISK_CALL: usize = 16 << 20;

impl Device for crate::disk::Disk {
    fn size(&self) -> u64 {
        self.info().capacity_bytes
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let mut done = 0;
        while done < buf.len() {
            let n = (buf.len() - done).min(MAX_DISK_CALL);
            let bytes = self.read(offset + done as u64, n as u32)?;
            if bytes.len() != n {
                return Err(Error::internal(format!(
                    "the host returned {} bytes for a {n}-byte disk read",
                    bytes.len()
                )));
            }
            buf[done..done + n].copy_from_slice(&bytes);
            done += n;
        }
        Ok(())
    }

    fn writable(&self) -> bool {
        self.info().writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        for (i, chunk) in data.chunks(MAX_DISK_CALL).enumerate() {
            self.write(offset + (i * MAX_DISK_CALL) as u64, chunk)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        crate::disk::Disk::flush(self)
    }
}

/// A volume held in memory: for tests and fuzz targets.
#[derive(Debug, Default)]
pub struct MemDevice {
    bytes: RefCell<Vec<u8>>,
    writable: bool,
}

impl MemDevice {
    /// A read-only volume.
    pub fn read_only(bytes: Vec<u8>) -> Self {
        MemDevice {
            bytes: RefCell::new(bytes),
            writable: false,
        }
    }

    /// A writable volume.
    pub fn writable(bytes: Vec<u8>) -> Self {
        MemDevice {
            bytes: RefCell::new(bytes),
            writable: true,
        }
    }

    /// The current bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes.into_inner()
    }
}

impl Device for MemDevice {
    fn size(&self) -> u64 {
        self.bytes.borrow().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let bytes = self.bytes.borrow();
        check_bounds(bytes.len() as u64, offset, buf.len(), "read")?;
        let start = offset as usize;
        buf.copy_from_slice(&bytes[start..start + buf.len()]);
        Ok(())
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        if !self.writable {
            return Err(Error::permission_denied("the volume is read-only", &[]));
        }
        let mut bytes = self.bytes.borrow_mut();
        check_bounds(bytes.len() as u64, offset, data.len(), "write")?;
        let start = offset as usize;
        bytes[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// A volume in a native file (an image made by `mkfs`): for native tests.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileDevice {
    file: std::fs::File,
    size: u64,
    writable: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileDevice {
    /// Opens `path`, for writing when `writable`.
    pub fn open(path: &std::path::Path, writable: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(FileDevice {
            file,
            size,
            writable,
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Device for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        check_bounds(self.size, offset, buf.len(), "read")?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::internal(format!("reading the image at {offset}: {e}")))
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        if !self.writable {
            return Err(Error::permission_denied("the image is open read-only", &[]));
        }
        check_bounds(self.size, offset, data.len(), "write")?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::internal(format!("writing the image at {offset}: {e}")))
    }

    fn flush(&self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::internal(format!("flushing the image: {e}")))
    }
}

/// What a file-system handler implements. [`filesystem_plugin!`](crate::filesystem_plugin) turns it into
/// the `filesystem-handler` world's exports.
///
/// The read methods take `&self`: keep caches in a `RefCell`. The write methods
/// default to `unsupported`; a handler that writes overrides them and should
/// say in each `unsupported` message what the operator can do instead.
pub trait FileSystem: Sized + 'static {
    /// `Some` when `dev` holds this file system; `None` for any other content.
    /// A damaged superblock of this type is an `invalid-input` error.
    fn probe(dev: &dyn Device) -> Result<Option<FsInfo>, Error>;

    /// Byte ranges in use, metadata included, sorted and merged ([`merge_ranges`]).
    fn used_extents(dev: &dyn Device) -> Result<Vec<ByteRange>, Error>;

    /// Opens the file system; `writable` asks for write support.
    fn open(dev: Box<dyn Device>, writable: bool) -> Result<Self, Error>;

    /// The facts a probe gives.
    fn info(&self) -> FsInfo;

    /// Metadata of `path`, not following a final symlink.
    fn stat(&self, path: &str) -> Result<FileStat, Error>;

    /// Entries of a directory, without `.` and `..`, sorted by name.
    fn read_dir(&self, path: &str) -> Result<Vec<DirEntry>, Error>;

    /// Up to `length` bytes of a regular file from `offset`.
    fn read_file(&self, path: &str, offset: u64, length: u32) -> Result<Vec<u8>, Error>;

    /// The target of a symlink, as stored.
    fn read_link(&self, path: &str) -> Result<String, Error>;

    /// Creates or replaces a regular file.
    fn write_file(&mut self, path: &str, content: &[u8], mode: u32) -> Result<(), Error> {
        let _ = (content, mode);
        Err(Error::unsupported(format!(
            "this handler cannot write files (asked to write {path})"
        )))
    }

    /// Creates a directory whose parent exists.
    fn create_dir(&mut self, path: &str, mode: u32) -> Result<(), Error> {
        let _ = mode;
        Err(Error::unsupported(format!(
            "this handler cannot create directories (asked to create {path})"
        )))
    }

    /// Creates a symlink.
    fn create_symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        let _ = target;
        Err(Error::unsupported(format!(
            "this handler cannot create symlinks (asked to create {path})"
        )))
    }

    /// Removes a regular file or symlink.
    fn remove(&mut self, path: &str) -> Result<(), Error> {
        Err(Error::unsupported(format!(
            "this handler cannot remove files (asked to remove {path})"
        )))
    }

    /// Writes every change to the device, consistent.
    fn sync(&mut self) -> Result<(), Error> {
        Ok(())
    }
}

/// Exports a [`FileSystem`] as a `filesystem-handler` plugin and writes its
/// manifest, like [`plugin!`](crate::plugin) does for other kinds.
///
/// ```ignore
/// homeward_sdk::filesystem_plugin! {
///     id: "fs-ext4",
///     file_system: Ext4,     // your type implementing homeward_sdk::fs::FileSystem
///     disk_write: true,      // optional: asks for the `disk-write` capability
/// }
/// ```
#[macro_export]
macro_rules! filesystem_plugin {
    (
        id: $id:literal,
        file_system: $fs:ty
        $(, $key:ident : $value:tt)* $(,)?
    ) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::filesystem_handler::exports::homeward::plugin::filesystem as __api;

            /// The exported component: forwards to the handler's FileSystem impl.
            pub struct __HomewardFsComponent;

            /// An open volume: the handler's state behind a RefCell, since
            /// resource methods get `&self`.
            pub struct __HomewardFsVolume(::std::cell::RefCell<$fs>);

            impl __api::Guest for __HomewardFsComponent {
                type Volume = __HomewardFsVolume;

                fn probe(device: &$crate::disk::Disk) -> Result<__api::ProbeResult, $crate::Error> {
                    Ok(match <$fs as $crate::fs::FileSystem>::probe(device)? {
                        Some(info) => __api::ProbeResult::Mine(info),
                        None => __api::ProbeResult::NotMine,
                    })
                }

                fn used_extents(
                    device: &$crate::disk::Disk,
                ) -> Result<Vec<$crate::types::ByteRange>, $crate::Error> {
                    <$fs as $crate::fs::FileSystem>::used_extents(device)
                }
            }

            impl __api::GuestVolume for __HomewardFsVolume {
                fn open(device: $crate::disk::Disk, writable: bool) -> Result<__api::Volume, $crate::Error> {
                    let fs = <$fs as $crate::fs::FileSystem>::open(Box::new(device), writable)?;
                    Ok(__api::Volume::new(__HomewardFsVolume(::std::cell::RefCell::new(fs))))
                }

                fn info(&self) -> __api::FsInfo {
                    $crate::fs::FileSystem::info(&*self.0.borrow())
                }

                fn stat(&self, path: String) -> Result<$crate::types::FileStat, $crate::Error> {
                    $crate::fs::FileSystem::stat(&*self.0.borrow(), &path)
                }

                fn read_dir(&self, path: String) -> Result<Vec<$crate::types::DirEntry>, $crate::Error> {
                    $crate::fs::FileSystem::read_dir(&*self.0.borrow(), &path)
                }

                fn read_file(&self, path: String, offset: u64, length: u32) -> Result<Vec<u8>, $crate::Error> {
                    $crate::fs::FileSystem::read_file(&*self.0.borrow(), &path, offset, length)
                }

                fn read_link(&self, path: String) -> Result<String, $crate::Error> {
                    $crate::fs::FileSystem::read_link(&*self.0.borrow(), &path)
                }

                fn write_file(&self, path: String, content: Vec<u8>, mode: u32) -> Result<(), $crate::Error> {
                    $crate::fs::FileSystem::write_file(&mut *self.0.borrow_mut(), &path, &content, mode)
                }

                fn create_dir(&self, path: String, mode: u32) -> Result<(), $crate::Error> {
                    $crate::fs::FileSystem::create_dir(&mut *self.0.borrow_mut(), &path, mode)
                }

                fn create_symlink(&self, path: String, target: String) -> Result<(), $crate::Error> {
                    $crate::fs::FileSystem::create_symlink(&mut *self.0.borrow_mut(), &path, &target)
                }

                fn remove(&self, path: String) -> Result<(), $crate::Error> {
                    $crate::fs::FileSystem::remove(&mut *self.0.borrow_mut(), &path)
                }

                fn sync(&self) -> Result<(), $crate::Error> {
                    $crate::fs::FileSystem::sync(&mut *self.0.borrow_mut())
                }
            }

            $crate::plugin! {
                id: $id,
                kind: filesystem_handler,
                component: __HomewardFsComponent
                $(, $key : $value)*
            }
        };
    };
}

/// Sorts `(offset, length)` pairs, drops empty ones and merges overlapping or
/// touching ones: the shape `used-extents` returns.
pub fn merge_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<ByteRange> {
    ranges.retain(|&(_, len)| len > 0);
    ranges.sort_unstable();
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for (offset, length) in ranges {
        let end = offset.saturating_add(length);
        match merged.last_mut() {
            Some(last) if offset <= last.offset + last.length => {
                let last_end = last.offset + last.length;
                if end > last_end {
                    last.length = end - last.offset;
                }
            }
            _ => merged.push(ByteRange { offset, length }),
        }
    }
    merged
}

/// CRC-32C (Castagnoli) of `data`, continuing from `crc` *without* the final
/// inversion, as Linux's `crc32c(seed, data, len)` does: ext4 starts from
/// `!0` (`crc32c(!0, ...)`) and stores the result as is; XFS starts from `!0`
/// and stores `!result`. For the standard CRC-32C use [`crc32c`].
pub fn crc32c_update(mut crc: u32, data: &[u8]) -> u32 {
    let table = crc32c_table();
    // Slicing-by-8: eight table lookups per 8 bytes; plenty for metadata blocks.
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let lo = crc ^ u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let hi = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        crc = table[7][(lo & 0xff) as usize]
            ^ table[6][((lo >> 8) & 0xff) as usize]
            ^ table[5][((lo >> 16) & 0xff) as usize]
            ^ table[4][(lo >> 24) as usize]
            ^ table[3][(hi & 0xff) as usize]
            ^ table[2][((hi >> 8) & 0xff) as usize]
            ^ table[1][((hi >> 16) & 0xff) as usize]
            ^ table[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = table[0][((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The standard CRC-32C of `data` (`crc32c("123456789") == 0xe3069283`).
pub fn crc32c(data: &[u8]) -> u32 {
    !crc32c_update(!0, data)
}

fn crc32c_table() -> &'static [[u32; 256]; 8] {
    static TABLE: std::sync::OnceLock<Box<[[u32; 256]; 8]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const POLY: u32 = 0x82f6_3b78;
        let mut t = Box::new([[0u32; 256]; 8]);
        for i in 0..256 {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
            t[0][i] = c;
        }
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = t[0][(prev & 0xff) as usize] ^ (prev >> 8);
            }
        }
        t
    })
}

/// How a handler's directories are looked up, for [`resolve`].
pub trait Namespace {
    /// A reference to a file (an inode number, a key).
    type Node: Clone;

    /// The root directory.
    fn root(&self) -> Result<Self::Node, Error>;

    /// The kind of `node`.
    fn kind(&self, node: &Self::Node) -> Result<FileKind, Error>;

    /// The entry `name` of directory `dir`, if any.
    fn lookup(&self, dir: &Self::Node, name: &str) -> Result<Option<Self::Node>, Error>;

    /// The target of symlink `node`, as stored.
    fn link_target(&self, node: &Self::Node) -> Result<String, Error>;
}

/// Symlinks followed in one resolution before it is called a loop (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// The components of an absolute guest path; `.` and empty components are
/// dropped, `..` is kept for [`resolve`] to apply.
pub fn split_path(path: &str) -> Result<Vec<&str>, Error> {
    if !path.starts_with('/') {
        return Err(Error::invalid_input(format!(
            "path {path:?} is not absolute: guest paths start with `/`"
        )));
    }
    if path.contains('\0') {
        return Err(Error::invalid_input(format!(
            "path {path:?} contains a NUL byte"
        )));
    }
    Ok(path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect())
}

/// The node `path` names. Symlinks in the middle are followed, the last one
/// only when `follow_last`; every symlink resolves inside the guest root.
pub fn resolve<N: Namespace>(ns: &N, path: &str, follow_last: bool) -> Result<N::Node, Error> {
    let components = split_path(path)?;
    let mut walker = Walker {
        ns,
        stack: vec![ns.root()?],
        links: 0,
        path,
    };
    walker.walk(&components, follow_last)?;
    walker.current()
}

/// The parent directory of `path` (resolved, symlinks followed) and the last
/// component's name, for creating or removing an entry.
pub fn resolve_parent<'p, N: Namespace>(
    ns: &N,
    path: &'p str,
) -> Result<(N::Node, &'p str), Error> {
    let components = split_path(path)?;
    let Some((&name, parents)) = components.split_last() else {
        return Err(Error::invalid_input(format!(
            "path {path:?} names the root directory, which has no parent"
        )));
    };
    if name == ".." {
        return Err(Error::invalid_input(format!(
            "path {path:?} ends in `..`: name the entry itself"
        )));
    }
    let mut walker = Walker {
        ns,
        stack: vec![ns.root()?],
        links: 0,
        path,
    };
    walker.walk(parents, true)?;
    let dir = walker.current()?;
    if ns.kind(&dir)? != FileKind::Directory {
        return Err(Error::invalid_input(format!(
            "the parent of {path:?} is not a directory"
        )));
    }
    Ok((dir, name))
}

struct Walker<'a, N: Namespace> {
    ns: &'a N,
    /// The directories from the root to the current node: `..` pops, and the
    /// root is never popped, which keeps `..` inside the guest.
    stack: Vec<N::Node>,
    links: usize,
    path: &'a str,
}

impl<N: Namespace> Walker<'_, N> {
    fn current(&self) -> Result<N::Node, Error> {
        self.stack
            .last()
            .cloned()
            .ok_or_else(|| Error::internal("path walk lost its root"))
    }

    fn walk(&mut self, components: &[&str], follow_last: bool) -> Result<(), Error> {
        for (i, &name) in components.iter().enumerate() {
            let last = i + 1 == components.len();
            if name == ".." {
                if self.stack.len() > 1 {
                    self.stack.pop();
                }
                continue;
            }
            let dir = self.current()?;
            if self.ns.kind(&dir)? != FileKind::Directory {
                return Err(Error::not_found(format!(
                    "{}: a component before {name:?} is not a directory",
                    self.path
                )));
            }
            let Some(node) = self.ns.lookup(&dir, name)? else {
                return Err(Error::not_found(format!(
                    "{}: no entry {name:?}",
                    self.path
                )));
            };
            if self.ns.kind(&node)? == FileKind::Symlink && (!last || follow_last) {
                self.links += 1;
                if self.links > MAX_SYMLINKS {
                    return Err(Error::invalid_input(format!(
                        "{}: more than {MAX_SYMLINKS} symlinks (a loop?)",
                        self.path
                    )));
                }
                let target = self.ns.link_target(&node)?;
                if target.starts_with('/') {
                    self.stack.truncate(1);
                }
                let parts: Vec<&str> = target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .collect();
                self.walk(&parts, true)?;
            } else {
                self.stack.push(node);
            }
        }
        Ok(())
    }
}

/// Directory entries a fuzz run visits at most, so a damaged tree cannot make
/// one input run long.
const FUZZ_MAX_ENTRIES: usize = 2000;
/// Bytes a fuzz run reads per file at most.
const FUZZ_MAX_READ: u32 = 64 << 10;
/// Bytes a fuzz run writes: a few blocks, so that small files must grow and
/// the allocator runs.
const FUZZ_WRITE_LEN: usize = 10_000;

/// The body of a file-system handler's fuzz target: takes `data` as a volume
/// and runs everything a host may ask of `F`: probe, used extents, open
/// read-only, a walk of the whole tree (stat, read, read-link; bounded), then,
/// on a writable copy, growing the first regular file, creating a new one and
/// syncing. Every error is ignored; the handler must only never panic or hang.
pub fn fuzz_file_system<F: FileSystem>(data: &[u8]) {
    let dev = MemDevice::read_only(data.to_vec());
    let _ = F::probe(&dev);
    let _ = F::used_extents(&dev);
    let mut first_file = None;
    if let Ok(fs) = F::open(Box::new(dev), false) {
        let _ = fs.info();
        let mut queue = vec!["/".to_string()];
        let mut seen = 0;
        'walk: while let Some(dir) = queue.pop() {
            let Ok(entries) = fs.read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                seen += 1;
                if seen > FUZZ_MAX_ENTRIES {
                    break 'walk;
                }
                let path = format!("{}/{}", dir.trim_end_matches('/'), entry.name);
                let _ = fs.stat(&path);
                match entry.kind {
                    FileKind::Directory => queue.push(path),
                    FileKind::Symlink => {
                        let _ = fs.read_link(&path);
                    }
                    FileKind::Regular => {
                        let _ = fs.read_file(&path, 0, FUZZ_MAX_READ);
                        first_file.get_or_insert(path);
                    }
                    FileKind::Other => {}
                }
            }
        }
    }
    if let Ok(mut fs) = F::open(Box::new(MemDevice::writable(data.to_vec())), true) {
        if let Some(path) = first_file {
            let _ = fs.write_file(&path, &[0x5a; FUZZ_WRITE_LEN], 0o644);
        }
        let _ = fs.write_file("/fuzz-new-file", &[0xa5; FUZZ_WRITE_LEN], 0o644);
        let _ = fs.sync();
    }
}
