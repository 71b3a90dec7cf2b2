//! ext4 inodes: locating one in its group's inode table, the fields the
//! handler reads (type, mode, owner, size, times, flags, block map), the
//! `metadata_csum` inode checksum, and building new inodes for the writer.

use crate::checksum::crc32c_update;
use crate::superblock::{Superblock, put_u16, put_u32};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::types::FileKind;

pub const ROOT_INO: u32 = 2;

pub const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;

pub const FL_INDEX: u32 = 0x1000;
pub const FL_HUGE_FILE: u32 = 0x40000;
pub const FL_EXTENTS: u32 = 0x80000;
pub const FL_INLINE_DATA: u32 = 0x1000_0000;

/// Bytes of `i_block`: the block map, extent root, inline data or fast
/// symlink target.
pub const I_BLOCK_LEN: usize = 60;
const I_BLOCK: usize = 0x28;
const CSUM_LO: usize = 0x7c;
const CSUM_HI: usize = 0x82;
/// Size of a new inode's extra fields (up to and including `i_projid`).
pub const NEW_EXTRA_ISIZE: u16 = 32;

/// One inode's raw bytes (`s_inode_size` of them) and its number.
#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u32,
    pub raw: Vec<u8>,
}

impl Inode {
    fn r(&self) -> ByteReader<'_> {
        ByteReader::new(&self.raw).named("ext4 inode")
    }

    fn u16_at(&self, offset: usize) -> u16 {
        self.r().le_u16_at(offset).unwrap_or(0)
    }

    fn u32_at(&self, offset: usize) -> u32 {
        self.r().le_u32_at(offset).unwrap_or(0)
    }

    pub fn mode(&self) -> u16 {
        self.u16_at(0x0)
    }

    pub fn kind(&self) -> FileKind {
        match self.mode() & S_IFMT {
            S_IFREG => FileKind::Regular,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }

    pub fn uid(&self) -> u32 {
        u32::from(self.u16_at(0x2)) | (u32::from(self.u16_at(0x78)) << 16)
    }

    pub fn gid(&self) -> u32 {
        u32::from(self.u16_at(0x18)) | (u32::from(self.u16_at(0x7a)) << 16)
    }

    pub fn size(&self) -> u64 {
        u64::from(self.u32_at(0x4)) | (u64::from(self.u32_at(0x6c)) << 32)
    }

    pub fn links(&self) -> u16 {
        self.u16_at(0x1a)
    }

    pub fn flags(&self) -> u32 {
        self.u32_at(0x20)
    }

    pub fn generation(&self) -> u32 {
        self.u32_at(0x64)
    }

    /// The extended-attribute block, if any.
    pub fn file_acl(&self) -> u64 {
        u64::from(self.u32_at(0x68)) | (u64::from(self.u16_at(0x76)) << 32)
    }

    pub fn extra_isize(&self) -> usize {
        if self.raw.len() > 128 {
            usize::from(self.u16_at(0x80))
        } else {
            0
        }
    }

    pub fn i_block(&self) -> &[u8] {
        self.raw
            .get(I_BLOCK..I_BLOCK + I_BLOCK_LEN)
            .unwrap_or_default()
    }

    /// Last modification in Unix milliseconds (0 before 1970).
    pub fn mtime_millis(&self) -> u64 {
        let seconds = i64::from(self.u32_at(0x10) as i32);
        // The extra field, when present, holds 2 epoch bits and nanoseconds.
        let (epoch, nanos) = if self.extra_isize() >= 0x8c - 0x80 {
            let extra = self.u32_at(0x88);
            (i64::from(extra & 3), i64::from(extra >> 2))
        } else {
            (0, 0)
        };
        let seconds = seconds + (epoch << 32);
        let millis = seconds
            .saturating_mul(1000)
            .saturating_add(nanos / 1_000_000);
        u64::try_from(millis).unwrap_or(0)
    }

    pub fn set_mode(&mut self, mode: u16) {
        put_u16(&mut self.raw, 0x0, mode);
    }

    pub fn set_size(&mut self, size: u64) {
        put_u32(&mut self.raw, 0x4, size as u32);
        put_u32(&mut self.raw, 0x6c, (size >> 32) as u32);
    }

    pub fn set_links(&mut self, links: u16) {
        put_u16(&mut self.raw, 0x1a, links);
    }

    pub fn set_flags(&mut self, flags: u32) {
        put_u32(&mut self.raw, 0x20, flags);
    }

    pub fn set_i_block(&mut self, bytes: &[u8; I_BLOCK_LEN]) {
        if let Some(slot) = self.raw.get_mut(I_BLOCK..I_BLOCK + I_BLOCK_LEN) {
            slot.copy_from_slice(bytes);
        }
    }

    /// `i_blocks` in 512-byte sectors (the unit without `HUGE_FILE_FL`).
    pub fn set_sectors(&mut self, sectors: u64) {
        put_u32(&mut self.raw, 0x1c, sectors as u32);
        put_u16(&mut self.raw, 0x74, (sectors >> 32) as u16);
        self.set_flags(self.flags() & !FL_HUGE_FILE);
    }

    pub fn set_dtime(&mut self, seconds: u32) {
        put_u32(&mut self.raw, 0x14, seconds);
    }

    /// Sets change and modification times (and access and creation when `all`).
    pub fn touch(&mut self, now: Timestamp, all: bool) {
        let mut fields = vec![(0x0c, 0x84), (0x10, 0x88)];
        if all {
            fields.extend([(0x08, 0x8c), (0x90, 0x94)]);
        }
        let extra_end = 0x80 + self.extra_isize();
        for (base, extra) in fields {
            put_u32(&mut self.raw, base, now.seconds as u32);
            if extra + 4 <= extra_end {
                let epoch = ((now.seconds >> 32) & 3) as u32;
                put_u32(&mut self.raw, extra, (now.nanos << 2) | epoch);
            }
        }
    }

    /// A fresh inode: type and mode, one link per `links`, owned by root.
    pub fn new(sb: &Superblock, ino: u32, mode: u16, links: u16, now: Timestamp) -> Inode {
        let mut inode = Inode {
            ino,
            raw: vec![0; sb.inode_size as usize],
        };
        inode.set_mode(mode);
        inode.set_links(links);
        if sb.inode_size >= 128 + u32::from(NEW_EXTRA_ISIZE) {
            put_u16(&mut inode.raw, 0x80, NEW_EXTRA_ISIZE);
        }
        // i_generation tells NFS handles of reused inode numbers apart; any
        // value that changes between uses will do.
        let generation = (now.nanos ^ ino.rotate_left(16)) ^ (now.seconds as u32);
        put_u32(&mut inode.raw, 0x64, generation);
        inode.touch(now, true);
        inode
    }

    /// The checksum this inode should carry (`metadata_csum`).
    fn checksum(&self, sb: &Superblock) -> u32 {
        let mut copy = self.raw.clone();
        put_u16(&mut copy, CSUM_LO, 0);
        if self.has_csum_hi() {
            put_u16(&mut copy, CSUM_HI, 0);
        }
        let crc = crc32c_update(sb.csum_seed, &self.ino.to_le_bytes());
        let crc = crc32c_update(crc, &self.generation().to_le_bytes());
        crc32c_update(crc, &copy)
    }

    fn has_csum_hi(&self) -> bool {
        self.extra_isize() >= CSUM_HI + 2 - 0x80
    }

    /// Checks the inode checksum; an all-zero inode passes (as in libext2fs).
    pub fn verify(&self, sb: &Superblock) -> Result<(), Error> {
        if !sb.has_metadata_csum() || self.raw.iter().all(|&b| b == 0) {
            return Ok(());
        }
        let computed = self.checksum(sb);
        let mut stored = u32::from(self.u16_at(CSUM_LO));
        let computed = if self.has_csum_hi() {
            stored |= u32::from(self.u16_at(CSUM_HI)) << 16;
            computed
        } else {
            computed & 0xffff
        };
        if stored != computed {
            return Err(Error::invalid_input(format!(
                "ext4: inode {}: checksum 0x{stored:08x}, computed 0x{computed:08x} (damaged inode)",
                self.ino
            )));
        }
        Ok(())
    }

    /// Stores the checksum after a change (`metadata_csum`).
    pub fn seal(&mut self, sb: &Superblock) {
        if !sb.has_metadata_csum() {
            return;
        }
        let crc = self.checksum(sb);
        put_u16(&mut self.raw, CSUM_LO, crc as u16);
        if self.has_csum_hi() {
            put_u16(&mut self.raw, CSUM_HI, (crc >> 16) as u16);
        }
    }
}

/// A point in time as ext4 stores it.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: i64::try_from(since.as_secs()).unwrap_or(0),
            nanos: since.subsec_nanos(),
        }
    }
}
