//! Reading a disk block by block, in larger sequential units.
//!
//! Both roles walk their disk once, in order. With small blocks (64 KiB, the
//! granularity rsync users compare against) a read per block would cost a
//! system call per block; reading 1 MiB at a time and handing out slices keeps
//! the scan close to the speed of a plain sequential read.

use crate::disk::BlockDevice;
use std::io;

/// Bytes read per system call, at least (rounded to whole blocks).
const READ_UNIT: usize = 1 << 20;

/// Hands out the bytes of consecutive blocks of a device.
pub struct BlockReader<'a> {
    device: &'a dyn BlockDevice,
    block_size: usize,
    capacity: u64,
    buf: Vec<u8>,
    /// Offset of `buf[0]` on the device, and how many bytes of `buf` are valid.
    start: u64,
    len: usize,
}

impl<'a> BlockReader<'a> {
    /// A reader of `device` in blocks of `block_size` bytes.
    pub fn new(device: &'a dyn BlockDevice, block_size: usize) -> Self {
        let unit = READ_UNIT.div_ceil(block_size).max(1) * block_size;
        BlockReader {
            device,
            block_size,
            capacity: device.capacity(),
            buf: vec![0u8; unit],
            start: 0,
            len: 0,
        }
    }

    /// The bytes of block `index` (shorter for the last block of the disk).
    pub fn block(&mut self, index: u64) -> io::Result<&[u8]> {
        let offset = index * self.block_size as u64;
        let len = super::block_len(self.capacity, self.block_size, index);
        let end = offset + len as u64;
        if offset < self.start || end > self.start + self.len as u64 {
            let want = (self.capacity - offset).min(self.buf.len() as u64) as usize;
            self.device.read_at(&mut self.buf[..want], offset)?;
            self.start = offset;
            self.len = want;
        }
        let at = (offset - self.start) as usize;
        Ok(&self.buf[at..at + len])
    }
}
