//! A raw disk image: byte `n` of the file is byte `n` of the disk.

use super::{BlockDevice, check_range};
use std::fs::{File, OpenOptions};
use std::io;
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

    fn open_with(path: &Path, writable: bool) -> io::Result<RawFile> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let capacity = file.metadata()?.len();
        Ok(RawFile {
            file,
            path: path.to_path_buf(),
            capacity,
            writable,
        })
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
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is open read-only", self.path.display()),
            ));
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

    fn describe(&self) -> String {
        format!("raw image {}", self.path.display())
    }
}
