//! A bounds-checked reader for on-disk formats.
//!
//! File-system structures come from disks that may be damaged or hostile, so a
//! handler must never index a buffer directly: every read here checks bounds and
//! fails with [`OutOfBounds`] (which converts into `Error::InvalidInput`) instead
//! of panicking. ext4 and ReiserFS are little-endian, XFS is big-endian: both
//! byte orders are here.

use std::fmt;

/// A read past the end of a buffer, with enough context to find the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfBounds {
    /// What was being read (set with [`ByteReader::named`]).
    pub context: &'static str,
    /// Offset of the attempted read.
    pub offset: usize,
    /// Bytes asked for.
    pub wanted: usize,
    /// Bytes the buffer holds.
    pub len: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: read of {} bytes at offset {} runs past the end of a {}-byte structure (damaged or truncated?)",
            self.context, self.wanted, self.offset, self.len
        )
    }
}

impl std::error::Error for OutOfBounds {}

/// A cursor over a byte slice with checked little- and big-endian reads.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
    context: &'static str,
}

macro_rules! read_int {
    ($le:ident, $be:ident, $at_le:ident, $at_be:ident, $ty:ty) => {
        /// Reads a little-endian integer at the cursor and advances it.
        pub fn $le(&mut self) -> Result<$ty, OutOfBounds> {
            let v = self.$at_le(self.pos)?;
            self.pos += std::mem::size_of::<$ty>();
            Ok(v)
        }

        /// Reads a big-endian integer at the cursor and advances it.
        pub fn $be(&mut self) -> Result<$ty, OutOfBounds> {
            let v = self.$at_be(self.pos)?;
            self.pos += std::mem::size_of::<$ty>();
            Ok(v)
        }

        /// Reads a little-endian integer at an absolute offset; the cursor stays.
        pub fn $at_le(&self, offset: usize) -> Result<$ty, OutOfBounds> {
            let raw = self.array::<{ std::mem::size_of::<$ty>() }>(offset)?;
            Ok(<$ty>::from_le_bytes(raw))
        }

        /// Reads a big-endian integer at an absolute offset; the cursor stays.
        pub fn $at_be(&self, offset: usize) -> Result<$ty, OutOfBounds> {
            let raw = self.array::<{ std::mem::size_of::<$ty>() }>(offset)?;
            Ok(<$ty>::from_be_bytes(raw))
        }
    };
}

impl<'a> ByteReader<'a> {
    /// A reader at offset 0 of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        ByteReader {
            buf,
            pos: 0,
            context: "structure",
        }
    }

    /// Names what is being parsed, for error messages (`"ext4 superblock"`).
    pub fn named(mut self, context: &'static str) -> Self {
        self.context = context;
        self
    }

    /// The cursor.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes from the cursor to the end.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Moves the cursor to an absolute offset (which may be the very end).
    pub fn seek(&mut self, offset: usize) -> Result<(), OutOfBounds> {
        if offset > self.buf.len() {
            return Err(self.out_of_bounds(offset, 0));
        }
        self.pos = offset;
        Ok(())
    }

    /// Advances the cursor by `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), OutOfBounds> {
        let to = self
            .pos
            .checked_add(n)
            .ok_or_else(|| self.out_of_bounds(self.pos, n))?;
        self.seek(to).map_err(|_| self.out_of_bounds(self.pos, n))
    }

    /// `n` bytes at the cursor; advances it.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], OutOfBounds> {
        let out = self.slice_at(self.pos, n)?;
        self.pos += n;
        Ok(out)
    }

    /// `n` bytes at an absolute offset; the cursor stays.
    pub fn slice_at(&self, offset: usize, n: usize) -> Result<&'a [u8], OutOfBounds> {
        let end = offset
            .checked_add(n)
            .ok_or_else(|| self.out_of_bounds(offset, n))?;
        self.buf
            .get(offset..end)
            .ok_or_else(|| self.out_of_bounds(offset, n))
    }

    /// One byte at the cursor; advances it.
    pub fn u8(&mut self) -> Result<u8, OutOfBounds> {
        let v = self.u8_at(self.pos)?;
        self.pos += 1;
        Ok(v)
    }

    /// One byte at an absolute offset.
    pub fn u8_at(&self, offset: usize) -> Result<u8, OutOfBounds> {
        self.buf
            .get(offset)
            .copied()
            .ok_or_else(|| self.out_of_bounds(offset, 1))
    }

    read_int!(le_u16, be_u16, le_u16_at, be_u16_at, u16);
    read_int!(le_u32, be_u32, le_u32_at, be_u32_at, u32);
    read_int!(le_u64, be_u64, le_u64_at, be_u64_at, u64);

    fn array<const N: usize>(&self, offset: usize) -> Result<[u8; N], OutOfBounds> {
        let slice = self.slice_at(offset, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn out_of_bounds(&self, offset: usize, wanted: usize) -> OutOfBounds {
        OutOfBounds {
            context: self.context,
            offset,
            wanted,
            len: self.buf.len(),
        }
    }
}
