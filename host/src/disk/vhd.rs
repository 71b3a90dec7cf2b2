//! Fixed VHD images: the disk's bytes, then a 512-byte footer.
//!
//! This is the format of Azure page blobs and of `qemu-img -f vpc -o
//! subformat=fixed`. Byte `n` of the disk is byte `n` of the file, so reads
//! and writes are raw `pread`/`pwrite` bounded by the capacity, which keeps
//! every write off the footer. The footer (big-endian, Virtual Hard Disk
//! Image Format Specification) is checked when opening: cookie, disk type,
//! checksum, and that its size agrees with the file's.
//!
//! Footer layout (offsets in bytes):
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | cookie `conectix` |
//! | 8 | 4 | features (2: the reserved bit, always set) |
//! | 12 | 4 | file format version `0x00010000` |
//! | 16 | 8 | data offset (`0xFFFF_FFFF_FFFF_FFFF` for fixed disks) |
//! | 24 | 4 | timestamp, seconds since 2000-01-01 00:00:00 UTC |
//! | 28 | 4 | creator application |
//! | 32 | 4 | creator version |
//! | 36 | 4 | creator host OS |
//! | 40 | 8 | original size |
//! | 48 | 8 | current size |
//! | 56 | 4 | geometry: cylinders (2), heads (1), sectors per track (1) |
//! | 60 | 4 | disk type (2 fixed, 3 dynamic, 4 differencing) |
//! | 64 | 4 | checksum: one's complement of the byte sum, this field zeroed |
//! | 68 | 16 | unique id |
//! | 84 | 1 | saved state |
//! | 85 | 427 | reserved, zero |

use super::BlockDevice;
use super::image::{DiskError, check_capacity};
use super::raw::{RawFile, create_sparse, file_size, sync_parent};
use std::fs::OpenOptions;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Length of the footer.
pub(crate) const FOOTER_LEN: u64 = 512;
/// The footer's first 8 bytes.
pub(crate) const COOKIE: &[u8; 8] = b"conectix";
/// Disk type of a fixed VHD.
pub(crate) const DISK_TYPE_FIXED: u32 = 2;
/// Disk type of a dynamic (sparse) VHD.
pub(crate) const DISK_TYPE_DYNAMIC: u32 = 3;
/// Disk type of a differencing (child) VHD.
pub(crate) const DISK_TYPE_DIFFERENCING: u32 = 4;

const CHECKSUM_AT: usize = 64;
/// Seconds from 1970-01-01 to 2000-01-01, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;

/// A fixed VHD image file.
#[derive(Debug)]
pub struct VhdFixed {
    /// The data area: every byte before the footer. Bounded by its capacity,
    /// so no write ever reaches the footer.
    data: RawFile,
    unique_id: [u8; 16],
}

impl VhdFixed {
    /// Opens the fixed VHD at `path`, for writing too when `writable`, after
    /// checking its footer.
    pub fn open(path: &Path, writable: bool) -> Result<VhdFixed, DiskError> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(|e| DiskError::io(path, e))?;
        let size = file_size(&file).map_err(|e| DiskError::io(path, e))?;
        if size < FOOTER_LEN {
            return Err(DiskError::corrupt(
                path,
                format!(
                    "it is {size} bytes, too short for a VHD footer (512 bytes); the file is \
                     truncated: copy it again from its source"
                ),
            ));
        }
        let data_len = size - FOOTER_LEN;
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, data_len)
            .map_err(|e| DiskError::io(path, e))?;
        let unique_id = check_footer(path, &footer, data_len)?;
        Ok(VhdFixed {
            data: RawFile::region(file, path.to_path_buf(), data_len, writable),
            unique_id,
        })
    }

    /// Creates a new fixed VHD of `capacity` bytes (a positive multiple of
    /// 512) at `path`, which must not exist: a sparse data area and a fresh
    /// footer. Returns it open for writing.
    pub fn create(path: &Path, capacity: u64) -> Result<VhdFixed, DiskError> {
        check_capacity(path, capacity)?;
        let footer = Self::make_footer(capacity);
        let created =
            create_sparse(path, capacity + FOOTER_LEN).map_err(|e| DiskError::create(path, e))?;
        let written = created
            .write_all_at(&footer, capacity)
            .and_then(|()| created.sync_all())
            .and_then(|()| sync_parent(path));
        if let Err(e) = written {
            drop(created);
            let _ = std::fs::remove_file(path);
            return Err(DiskError::create(path, e));
        }
        drop(created);
        Self::open(path, true)
    }

    /// A valid fixed-disk footer for a disk of `capacity` bytes, with the
    /// current time and a fresh unique id: what goes after the data in a new
    /// image or at the end of a page blob.
    pub fn make_footer(capacity: u64) -> [u8; FOOTER_LEN as usize] {
        let mut f = [0u8; FOOTER_LEN as usize];
        f[0..8].copy_from_slice(COOKIE);
        f[8..12].copy_from_slice(&2u32.to_be_bytes());
        f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        f[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
        f[24..28].copy_from_slice(&vhd_timestamp().to_be_bytes());
        // Readers decide by the creator application whether the disk's size
        // is the size field or the (rounded-down) CHS geometry. qemu before
        // 9.2 trusts the size field only for "win ", "qem2", "d2v ", "CTXS"
        // and "tap\0" (or the maximum geometry); later ones distrust only
        // "vpc " and "qemu". Our footers are what Hyper-V writes (size field =
        // data size, geometry by the specification), so we say "win " and
        // every reader sees the exact capacity, not a few sectors less.
        f[28..32].copy_from_slice(b"win ");
        f[32..36].copy_from_slice(&creator_version().to_be_bytes());
        // The specification defines only Windows ("Wi2k") and Macintosh
        // ("Mac "); qemu and Hyper-V write "Wi2k", and so do we.
        f[36..40].copy_from_slice(b"Wi2k");
        f[40..48].copy_from_slice(&capacity.to_be_bytes());
        f[48..56].copy_from_slice(&capacity.to_be_bytes());
        let (c, h, s) = geometry(capacity / 512);
        f[56..58].copy_from_slice(&c.to_be_bytes());
        f[58] = h;
        f[59] = s;
        f[60..64].copy_from_slice(&DISK_TYPE_FIXED.to_be_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&super::fresh_id(&capacity.to_le_bytes())[..16]);
        // Shape it as an RFC 4122 version-4 UUID, which is what readers expect.
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        f[68..84].copy_from_slice(&id);
        let sum = checksum(&f);
        f[CHECKSUM_AT..CHECKSUM_AT + 4].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// The footer's unique id (a UUID), which identifies the disk to Hyper-V
    /// and Azure.
    pub fn unique_id(&self) -> [u8; 16] {
        self.unique_id
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        self.data.path()
    }
}

/// Checks a footer read from the last 512 bytes of `path`, whose data area is
/// `data_len` bytes; returns its unique id.
pub(crate) fn check_footer(
    path: &Path,
    f: &[u8; 512],
    data_len: u64,
) -> Result<[u8; 16], DiskError> {
    if !f.starts_with(COOKIE) {
        return Err(DiskError::corrupt(
            path,
            "its last 512 bytes are not a VHD footer (no `conectix` cookie); if it is a raw \
             image, open it as raw, otherwise it was truncated: copy it again from its source",
        ));
    }
    let found = be32(f, CHECKSUM_AT);
    let expected = checksum(f);
    if found != expected {
        return Err(DiskError::VhdChecksum {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    match disk_type(f) {
        DISK_TYPE_FIXED => {}
        DISK_TYPE_DYNAMIC => return Err(DiskError::unsupported(path, "VHD dynamic", "vpc")),
        DISK_TYPE_DIFFERENCING => {
            return Err(DiskError::unsupported(path, "VHD differencing", "vpc"));
        }
        other => {
            return Err(DiskError::corrupt(
                path,
                format!("its VHD footer has disk type {other}; only fixed (2) is served"),
            ));
        }
    }
    let current = be64(f, 48);
    if current != data_len {
        return Err(DiskError::corrupt(
            path,
            format!(
                "its VHD footer says the disk is {current} bytes, but {data_len} bytes precede \
                 the footer; the file was truncated, extended or given another disk's footer: \
                 copy it again from its source"
            ),
        ));
    }
    if !data_len.is_multiple_of(512) {
        return Err(DiskError::corrupt(
            path,
            format!(
                "its data area is {data_len} bytes, not whole 512-byte sectors; copy it again \
                 from its source"
            ),
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&f[68..84]);
    Ok(id)
}

/// The disk type field of a footer (or of its copy at the start of a dynamic
/// disk); 0 when `f` is too short to have one.
pub(crate) fn disk_type(f: &[u8]) -> u32 {
    if f.len() < 64 { 0 } else { be32(f, 60) }
}

/// One's complement of the sum of the footer's bytes, the checksum field
/// counted as zeros.
fn checksum(f: &[u8; 512]) -> u32 {
    let sum = f
        .iter()
        .enumerate()
        .filter(|(i, _)| !(CHECKSUM_AT..CHECKSUM_AT + 4).contains(i))
        .fold(0u32, |acc, (_, &b)| acc.wrapping_add(u32::from(b)));
    !sum
}

/// Cylinders, heads and sectors per track for `total_sectors`, by the
/// algorithm of the VHD specification (appendix "CHS calculation"). Disks
/// larger than the largest geometry get that geometry; the size fields, not
/// the geometry, say how big the disk is.
fn geometry(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (spt, heads, cth) = if total >= 65535 * 16 * 63 {
        (255u64, 16u64, total / 255)
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    let cylinders = cth / heads;
    // Each value is bounded by the clamp above; the fallbacks never apply.
    (
        u16::try_from(cylinders).unwrap_or(u16::MAX),
        u8::try_from(heads).unwrap_or(16),
        u8::try_from(spt).unwrap_or(255),
    )
}

fn vhd_timestamp() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(VHD_EPOCH);
    u32::try_from(now.saturating_sub(VHD_EPOCH)).unwrap_or(u32::MAX)
}

/// `major.minor` of this crate as the footer's creator version (major in the
/// high 16 bits, as Microsoft's tools do).
fn creator_version() -> u32 {
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0);
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0);
    (major.min(0xffff) << 16) | minor.min(0xffff)
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(x)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

impl BlockDevice for VhdFixed {
    fn capacity(&self) -> u64 {
        self.data.capacity()
    }

    fn writable(&self) -> bool {
        self.data.writable()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.data.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.data.write_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.data.flush()
    }

    fn allocated_ranges(&self) -> io::Result<Option<Vec<Range<u64>>>> {
        self.data.allocated_ranges()
    }

    fn describe(&self) -> String {
        format!("VHD fixed image {}", self.data.path().display())
    }
}
