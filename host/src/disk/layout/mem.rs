//! [`MemDisk`]: a disk held in memory, for the fuzz target and for tests that
//! build or damage layouts byte by byte.

use super::super::{BlockDevice, check_range};
use std::io;
use std::sync::RwLock;

/// A disk whose bytes are a `Vec<u8>`.
pub struct MemDisk {
    bytes: RwLock<Vec<u8>>,
    writable: bool,
}

impl MemDisk {
    /// A disk holding `bytes`, writable when `writable`.
    pub fn new(bytes: Vec<u8>, writable: bool) -> MemDisk {
        MemDisk {
            bytes: RwLock::new(bytes),
            writable,
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("in-memory disk: a writer panicked")
}

impl BlockDevice for MemDisk {
    fn capacity(&self) -> u64 {
        self.bytes.read().map(|b| b.len() as u64).unwrap_or(0)
    }

    fn writable(&self) -> bool {
        self.writable
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let bytes = self.bytes.read().map_err(|_| poisoned())?;
        check_range(bytes.len() as u64, offset, buf.len(), "read")?;
        let start = usize::try_from(offset).map_err(|_| poisoned())?;
        match bytes.get(start..start + buf.len()) {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::other("in-memory disk: range check failed")),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "in-memory disk is read-only",
            ));
        }
        let mut bytes = self.bytes.write().map_err(|_| poisoned())?;
        check_range(bytes.len() as u64, offset, buf.len(), "write")?;
        let start = usize::try_from(offset).map_err(|_| poisoned())?;
        match bytes.get_mut(start..start + buf.len()) {
            Some(dst) => {
                dst.copy_from_slice(buf);
                Ok(())
            }
            None => Err(io::Error::other("in-memory disk: range check failed")),
        }
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("in-memory disk of {} bytes", self.capacity())
    }
}
