//! A raw disk image: byte `n` of the file is byte `n` of the disk.
//!
//! Also home of the helpers every file-backed format shares: finding the data
//! ranges of a sparse file with `SEEK_DATA`/`SEEK_HOLE`, creating a file that
//! must not exist yet, and making a creation durable.

use super::{BlockDevice, check_range};
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A raw image file (or a block device node).
#[derive(Debug)]
pub struct RawFile {
    file: File,
    path: PathBuf,
    capacity: u64,
    writable: bool,
}

impl RawFile {
    /// Opens `path` read-only.
    pub fn open(path: &Path) -> io::Result<RawFile> {
        Self::open_with(path, false)
    }

    /// Opens `path` for reading and writing.
    pub fn open_writable(path: &Path) -> io::Result<RawFile> {
        Self::open_with(path, true)
    }

    /// Opens `path`, for writing too when `writable`.
    pub fn open_with(path: &Path, writable: bool) -> io::Result<RawFile> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let capacity = file_size(&file)?;
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            capacity,
            writable,
        })
    }

    /// Creates a new sparse raw image of `capacity` bytes at `path`, open for
    /// writing. Fails with [`io::ErrorKind::AlreadyExists`] if `path` exists:
    /// an image is never created over another one.
    pub fn create(path: &Path, capacity: u64) -> io::Result<RawFile> {
        let file = create_sparse(path, capacity)?;
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            capacity,
            writable: true,
        })
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RawFile {
    /// The first `capacity` bytes of an open file as a raw disk: the data area
    /// of formats that are raw bytes plus metadata after them (VHD fixed).
    pub(crate) fn region(file: File, path: PathBuf, capacity: u64, writable: bool) -> RawFile {
        RawFile {
            file,
            path,
            capacity,
            writable,
        }
    }
}

impl BlockDevice for RawFile {
    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_range(self.capacity, offset, buf.len(), "read")?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(read_only(&self.path));
        }
        check_range(self.capacity, offset, buf.len(), "write")?;
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        if self.writable {
            self.file.sync_data()?;
        }
        Ok(())
    }

    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        data_ranges(&self.file, 0, self.capacity)
    }

    fn describe(&self) -> String {
        format!("raw image {}", self.path.display())
    }
}

/// The error for a write to a device opened read-only.
pub(crate) fn read_only(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} is open read-only", path.display()),
    )
}

/// Size of a file or block device. `metadata().len()` is 0 for a block
/// device node; seeking to the end works for both.
pub(crate) fn file_size(file: &File) -> io::Result<u64> {
    let mut f = file;
    f.seek(SeekFrom::End(0))
}

/// Creates `path` (which must not exist) as a sparse file of `len` bytes and
/// makes the creation durable. Removes the file again if anything fails, so
/// a failed create leaves nothing behind.
pub(crate) fn create_sparse(path: &Path, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let result = file.set_len(len).and_then(|()| file.sync_all());
    if let Err(e) = result {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// Makes a new directory entry in `path`'s directory durable (fsync of the
/// directory), so a created image survives a crash right after creation.
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// The ranges of `file` within `[start, end)` that hold data, found with
/// `lseek(SEEK_DATA/SEEK_HOLE)`, sorted, merged and clipped to the window.
///
/// `None` when the file system cannot tell (`EINVAL`, `EOPNOTSUPP`, `ESPIPE`):
/// then every byte may hold data. `ENXIO` from `SEEK_DATA` means "no data from
/// here to the end of the file", which is an answer, not a failure: a fully
/// sparse file has no ranges at all.
///
/// `lseek` moves the descriptor's file position, which nothing else uses:
/// reads and writes go through `pread`/`pwrite`, so this is safe alongside
/// concurrent I/O on the same `File`.
pub(crate) fn data_ranges(
    file: &File,
    start: u64,
    end: u64,
) -> io::Result<Option<Vec<Range<u64>>>> {
    let fd = file.as_raw_fd();
    let mut ranges: Vec<Range<u64>> = Vec::new();
    let mut pos = start;
    while pos < end {
        let data = match seek(fd, pos, libc::SEEK_DATA) {
            Ok(d) => d.max(pos),
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(e) if unsupported(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        if data >= end {
            break;
        }
        let hole = match seek(fd, data, libc::SEEK_HOLE) {
            // A hole at or before `data` would be nonsense; treat the rest
            // as data rather than loop forever.
            Ok(h) if h > data => h.min(end),
            Ok(_) => end,
            // The file shrank between the two calls: no more data.
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => break,
            Err(e) if unsupported(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        push_merged(&mut ranges, data..hole);
        pos = hole;
    }
    Ok(Some(ranges))
}

/// Appends `r` to sorted, disjoint `ranges`, merging it with the last one
/// when they touch.
pub(crate) fn push_merged(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    if r.is_empty() {
        return;
    }
    match ranges.last_mut() {
        Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
        _ => ranges.push(r),
    }
}

fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ESPIPE)
    )
}

fn seek(fd: libc::c_int, offset: u64, whence: libc::c_int) -> io::Result<u64> {
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond off_t"))?;
    // SAFETY: lseek only reads its integer arguments; an invalid descriptor
    // is reported as EBADF, not undefined behaviour.
    let r = unsafe { libc::lseek(fd, offset, whence) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // r >= 0 here, so the conversion cannot fail.
    Ok(u64::try_from(r).unwrap_or(0))
}
