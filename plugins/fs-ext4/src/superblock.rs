//! The ext4 superblock: parsing and validating it (a damaged superblock is an
//! error, another file system is "not mine"), naming its feature flags the way
//! e2fsprogs does, and writing back the free counts a write changes.
//!
//! The superblock is the root of every other structure, so each field later
//! code relies on (block size, group geometry, inode size) is checked here once.

use crate::checksum::crc32c_update;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::{Device, FsInfo};

/// Byte offset of the primary superblock.
pub const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock.
pub const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xef53;
const CHECKSUM_OFFSET: usize = 0x3fc;

pub const COMPAT_HAS_JOURNAL: u32 = 0x4;
pub const COMPAT_SPARSE_SUPER2: u32 = 0x200;

pub const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub const RO_COMPAT_LARGE_FILE: u32 = 0x2;
pub const RO_COMPAT_GDT_CSUM: u32 = 0x10;
pub const RO_COMPAT_DIR_NLINK: u32 = 0x20;
pub const RO_COMPAT_BIGALLOC: u32 = 0x200;
pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

pub const INCOMPAT_FILETYPE: u32 = 0x2;
pub const INCOMPAT_RECOVER: u32 = 0x4;
pub const INCOMPAT_META_BG: u32 = 0x10;
pub const INCOMPAT_EXTENTS: u32 = 0x40;
pub const INCOMPAT_64BIT: u32 = 0x80;
pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;

const COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "dir_prealloc"),
    (0x2, "imagic_inodes"),
    (0x4, "has_journal"),
    (0x8, "ext_attr"),
    (0x10, "resize_inode"),
    (0x20, "dir_index"),
    (0x40, "lazy_bg"),
    (0x80, "snapshot_bitmap"),
    (0x100, "sparse_super2"),
    (0x200, "fast_commit"),
    (0x400, "stable_inodes"),
    (0x800, "orphan_file"),
];

const RO_COMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "sparse_super"),
    (0x2, "large_file"),
    (0x4, "btree_dir"),
    (0x8, "huge_file"),
    (0x10, "uninit_bg"),
    (0x20, "dir_nlink"),
    (0x40, "extra_isize"),
    (0x80, "snapshot"),
    (0x100, "quota"),
    (0x200, "bigalloc"),
    (0x400, "metadata_csum"),
    (0x800, "replica"),
    (0x1000, "read-only"),
    (0x2000, "project"),
    (0x4000, "shared_blocks"),
    (0x8000, "verity"),
    (0x10000, "orphan_present"),
];

const INCOMPAT_NAMES: &[(u32, &str)] = &[
    (0x1, "compression"),
    (0x2, "filetype"),
    (0x4, "needs_recovery"),
    (0x8, "journal_dev"),
    (0x10, "meta_bg"),
    (0x40, "extent"),
    (0x80, "64bit"),
    (0x100, "mmp"),
    (0x200, "flex_bg"),
    (0x400, "ea_inode"),
    (0x1000, "dirdata"),
    (0x2000, "metadata_csum_seed"),
    (0x4000, "large_dir"),
    (0x8000, "inline_data"),
    (0x10000, "encrypt"),
    (0x20000, "casefold"),
];

/// Incompatible features this handler reads correctly. Anything else in
/// `s_feature_incompat` changes the on-disk format in a way it does not know.
const INCOMPAT_READABLE: u32 =
    0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x20000;

/// Features whose on-disk changes this handler's writer keeps consistent.
const COMPAT_WRITABLE: u32 = 0x1 | 0x4 | 0x8 | 0x10 | 0x20 | 0x400;
const RO_COMPAT_WRITABLE: u32 = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | 0x400 | 0x2000;
const INCOMPAT_WRITABLE: u32 = 0x2 | 0x10 | 0x40 | 0x80 | 0x200 | 0x2000 | 0x4000;

const STATE_VALID: u16 = 0x1;
const STATE_ERROR: u16 = 0x2;

/// The parsed superblock, with the raw bytes kept for writing it back.
#[derive(Debug, Clone)]
pub struct Superblock {
    raw: Vec<u8>,
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub free_blocks: u64,
    pub free_inodes: u32,
    pub first_data_block: u32,
    pub block_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub state: u16,
    pub rev_level: u32,
    pub minor_rev_level: u16,
    pub first_ino: u32,
    pub inode_size: u32,
    pub compat: u32,
    pub incompat: u32,
    pub ro_compat: u32,
    pub uuid: [u8; 16],
    pub label: String,
    pub reserved_gdt_blocks: u32,
    pub desc_size: u32,
    pub first_meta_bg: u32,
    pub backup_bgs: [u32; 2],
    pub group_count: u32,
    /// Seed of every `metadata_csum` checksum.
    pub csum_seed: u32,
}

fn damaged(what: String) -> Error {
    Error::invalid_input(format!("ext4: superblock: {what} (damaged superblock)"))
}

impl Superblock {
    /// Reads the primary superblock: `None` when the magic is not ext2/3/4's.
    pub fn read(dev: &dyn Device) -> Result<Option<Superblock>, Error> {
        let end = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64;
        if dev.size() < end {
            return Ok(None);
        }
        let raw = dev.read_vec(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE)?;
        let r = ByteReader::new(&raw).named("ext4 superblock");
        if r.le_u16_at(0x38)? != MAGIC {
            return Ok(None);
        }
        let sb = Superblock::parse(raw)?;
        homeward_sdk::fs::check_fits(dev, "ext4", sb.blocks_count, u64::from(sb.block_size))?;
        Ok(Some(sb))
    }

    fn parse(raw: Vec<u8>) -> Result<Superblock, Error> {
        let r = ByteReader::new(&raw).named("ext4 superblock");
        let incompat = r.le_u32_at(0x60)?;
        let ro_compat = r.le_u32_at(0x64)?;
        let is_64bit = incompat & INCOMPAT_64BIT != 0;
        let hi = |off: usize| -> Result<u64, Error> {
            Ok(if is_64bit {
                u64::from(r.le_u32_at(off)?) << 32
            } else {
                0
            })
        };
        let blocks_count = u64::from(r.le_u32_at(0x4)?) | hi(0x150)?;
        let free_blocks = u64::from(r.le_u32_at(0xc)?) | hi(0x158)?;
        let log_block_size = r.le_u32_at(0x18)?;
        if log_block_size > 6 {
            return Err(damaged(format!(
                "s_log_block_size {log_block_size} means blocks over 64 KiB"
            )));
        }
        let block_size = 1024u32 << log_block_size;
        let rev_level = r.le_u32_at(0x4c)?;
        let (first_ino, inode_size) = if rev_level == 0 {
            (11, 128)
        } else {
            (r.le_u32_at(0x54)?, u32::from(r.le_u16_at(0x58)?))
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size > block_size {
            return Err(damaged(format!("inode size {inode_size}")));
        }
        let blocks_per_group = r.le_u32_at(0x20)?;
        let inodes_per_group = r.le_u32_at(0x28)?;
        let bits_per_block = block_size.saturating_mul(8);
        if blocks_per_group == 0 || blocks_per_group > bits_per_block {
            return Err(damaged(format!(
                "{blocks_per_group} blocks per group (a bitmap block holds {bits_per_block})"
            )));
        }
        if inodes_per_group == 0 || inodes_per_group > bits_per_block {
            return Err(damaged(format!("{inodes_per_group} inodes per group")));
        }
        let first_data_block = r.le_u32_at(0x14)?;
        if blocks_count == 0 || u64::from(first_data_block) >= blocks_count {
            return Err(damaged(format!(
                "first data block {first_data_block} of {blocks_count} blocks"
            )));
        }
        let group_count =
            (blocks_count - u64::from(first_data_block)).div_ceil(u64::from(blocks_per_group));
        let group_count = u32::try_from(group_count)
            .map_err(|_| damaged(format!("{group_count} block groups")))?;
        let inodes_count = r.le_u32_at(0x0)?;
        if u64::from(inodes_count) > u64::from(group_count) * u64::from(inodes_per_group) {
            return Err(damaged(format!(
                "{inodes_count} inodes but {group_count} groups of {inodes_per_group}"
            )));
        }
        let desc_size = if is_64bit {
            u32::from(r.le_u16_at(0xfe)?)
        } else {
            32
        };
        if desc_size < 32
            || !desc_size.is_power_of_two()
            || desc_size > 1024.min(block_size)
            || (is_64bit && desc_size < 64)
        {
            return Err(damaged(format!("group descriptor size {desc_size}")));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(r.slice_at(0x68, 16)?);
        let label_bytes = r.slice_at(0x78, 16)?;
        let label_len = label_bytes.iter().position(|&b| b == 0).unwrap_or(16);
        let label =
            String::from_utf8_lossy(label_bytes.get(..label_len).unwrap_or_default()).into_owned();
        let metadata_csum = ro_compat & RO_COMPAT_METADATA_CSUM != 0;
        if metadata_csum {
            let kind = r.u8_at(0x175)?;
            if kind != 1 {
                return Err(damaged(format!(
                    "checksum type {kind}, expected 1 (crc32c)"
                )));
            }
            let stored = r.le_u32_at(CHECKSUM_OFFSET)?;
            let computed = crc32c_update(!0, r.slice_at(0, CHECKSUM_OFFSET)?);
            if stored != computed {
                return Err(damaged(format!(
                    "checksum 0x{stored:08x}, computed 0x{computed:08x}"
                )));
            }
        }
        let csum_seed = if incompat & INCOMPAT_CSUM_SEED != 0 {
            r.le_u32_at(0x270)?
        } else {
            crc32c_update(!0, &uuid)
        };
        Ok(Superblock {
            inodes_count,
            blocks_count,
            free_blocks,
            free_inodes: r.le_u32_at(0x10)?,
            first_data_block,
            block_size,
            blocks_per_group,
            inodes_per_group,
            state: r.le_u16_at(0x3a)?,
            rev_level,
            minor_rev_level: r.le_u16_at(0x3e)?,
            first_ino,
            inode_size,
            compat: r.le_u32_at(0x5c)?,
            incompat,
            ro_compat,
            uuid,
            label,
            reserved_gdt_blocks: u32::from(r.le_u16_at(0xce)?),
            desc_size,
            first_meta_bg: r.le_u32_at(0x104)?,
            backup_bgs: [r.le_u32_at(0x24c)?, r.le_u32_at(0x250)?],
            group_count,
            csum_seed,
            raw,
        })
    }

    pub fn has_metadata_csum(&self) -> bool {
        self.ro_compat & RO_COMPAT_METADATA_CSUM != 0
    }

    /// Group descriptors carry a checksum (crc16 or crc32c): what makes the
    /// `*_UNINIT` flags trustworthy.
    pub fn has_group_csum(&self) -> bool {
        self.ro_compat & (RO_COMPAT_METADATA_CSUM | RO_COMPAT_GDT_CSUM) != 0
    }

    pub fn has_incompat(&self, flag: u32) -> bool {
        self.incompat & flag != 0
    }

    pub fn has_ro_compat(&self, flag: u32) -> bool {
        self.ro_compat & flag != 0
    }

    /// Descriptors per GDT block.
    pub fn descs_per_block(&self) -> u32 {
        self.block_size / self.desc_size
    }

    /// Blocks the group descriptor table takes.
    pub fn desc_blocks(&self) -> u32 {
        self.group_count.div_ceil(self.descs_per_block())
    }

    /// Inode-table blocks of one group.
    pub fn inode_table_blocks(&self) -> u32 {
        (self.inodes_per_group * self.inode_size).div_ceil(self.block_size)
    }

    /// First block of group `group`.
    pub fn group_first_block(&self, group: u32) -> u64 {
        u64::from(self.first_data_block) + u64::from(group) * u64::from(self.blocks_per_group)
    }

    /// Blocks in group `group` (the last one may be partial).
    pub fn group_block_count(&self, group: u32) -> u64 {
        let first = self.group_first_block(group);
        (self.blocks_count.saturating_sub(first)).min(u64::from(self.blocks_per_group))
    }

    /// Whether `group` holds a superblock copy (libext2fs `ext2fs_bg_has_super`).
    pub fn group_has_super(&self, group: u32) -> bool {
        if group == 0 {
            return true;
        }
        if self.compat & COMPAT_SPARSE_SUPER2 != 0 {
            return group == self.backup_bgs[0] || group == self.backup_bgs[1];
        }
        if group <= 1 || self.ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if group & 1 == 0 {
            return false;
        }
        is_power_of(group, 3) || is_power_of(group, 5) || is_power_of(group, 7)
    }

    /// "ext2", "ext3" or "ext4", decided from the features as blkid does.
    pub fn fs_type(&self) -> &'static str {
        const EXT3_INCOMPAT: u32 = INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG;
        const EXT3_RO_COMPAT: u32 = RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE | 0x4;
        if self.incompat & !EXT3_INCOMPAT != 0 || self.ro_compat & !EXT3_RO_COMPAT != 0 {
            "ext4"
        } else if self.compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        }
    }

    /// Feature names in dumpe2fs order (compat, incompat, ro_compat).
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        push_names(&mut names, self.compat, COMPAT_NAMES, "compat");
        push_names(&mut names, self.incompat, INCOMPAT_NAMES, "incompat");
        push_names(&mut names, self.ro_compat, RO_COMPAT_NAMES, "ro_compat");
        names
    }

    /// Whether the file system was cleanly unmounted and needs no recovery.
    pub fn clean(&self) -> bool {
        self.state & STATE_VALID != 0
            && self.state & STATE_ERROR == 0
            && self.incompat & INCOMPAT_RECOVER == 0
    }

    pub fn info(&self) -> FsInfo {
        FsInfo {
            fs_type: self.fs_type().to_string(),
            version: format!("{}.{}", self.rev_level, self.minor_rev_level),
            features: self.feature_names(),
            uuid: format_uuid(&self.uuid),
            label: self.label.clone(),
            block_size: self.block_size,
            total_blocks: self.blocks_count,
            free_blocks: self.free_blocks,
            clean: self.clean(),
        }
    }

    /// Fails with `unsupported` when an incompatible feature changes the
    /// format in a way this handler cannot read.
    pub fn check_readable(&self) -> Result<(), Error> {
        let unknown = self.incompat & !INCOMPAT_READABLE;
        if unknown != 0 {
            let mut names = Vec::new();
            push_names(&mut names, unknown, INCOMPAT_NAMES, "incompat");
            return Err(Error::unsupported(format!(
                "ext4: the file system uses incompatible feature(s) {} that this handler cannot \
                 read; copy the volume whole (no file-level access) or use a Linux host",
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// Fails with `unsupported` when writing could leave the file system
    /// inconsistent: a journal to replay, an unclean state, or a feature whose
    /// on-disk changes the writer does not make.
    pub fn check_writable(&self) -> Result<(), Error> {
        if self.incompat & INCOMPAT_RECOVER != 0 {
            return Err(Error::unsupported(
                "ext4: the journal needs recovery; writing now would be undone or corrupted by \
                 the replay. Run `e2fsck -fy` on the volume (or mount it once on Linux) first",
            ));
        }
        if !self.clean() {
            return Err(Error::unsupported(
                "ext4: the file system is not marked clean (errors or an unclean unmount); run \
                 `e2fsck -fy` on the volume before writing to it",
            ));
        }
        let mut names = Vec::new();
        push_names(
            &mut names,
            self.compat & !COMPAT_WRITABLE,
            COMPAT_NAMES,
            "compat",
        );
        push_names(
            &mut names,
            self.incompat & !INCOMPAT_WRITABLE,
            INCOMPAT_NAMES,
            "incompat",
        );
        push_names(
            &mut names,
            self.ro_compat & !RO_COMPAT_WRITABLE,
            RO_COMPAT_NAMES,
            "ro_compat",
        );
        if !names.is_empty() {
            return Err(Error::unsupported(format!(
                "ext4: this handler cannot write a file system with feature(s) {}; open it \
                 read-only, or make the change from a Linux host",
                names.join(", ")
            )));
        }
        Ok(())
    }

    /// Records new free counts (the raw bytes follow; see [`Self::to_bytes`]).
    pub fn set_free_counts(&mut self, free_blocks: u64, free_inodes: u32) {
        self.free_blocks = free_blocks;
        self.free_inodes = free_inodes;
    }

    /// The superblock as stored, with the current free counts and checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        put_u32(&mut raw, 0xc, self.free_blocks as u32);
        if self.has_incompat(INCOMPAT_64BIT) {
            put_u32(&mut raw, 0x158, (self.free_blocks >> 32) as u32);
        }
        put_u32(&mut raw, 0x10, self.free_inodes);
        if self.has_metadata_csum() {
            let crc = crc32c_update(!0, raw.get(..CHECKSUM_OFFSET).unwrap_or_default());
            put_u32(&mut raw, CHECKSUM_OFFSET, crc);
        }
        raw
    }
}

/// Writes a little-endian u32 into `buf` at `offset`, if it fits (callers
/// write into buffers they sized, so a miss is a bug, not disk damage).
pub fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
    if let Some(slot) = buf.get_mut(offset..offset + 4) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

/// Writes a little-endian u16 into `buf` at `offset`, if it fits.
pub fn put_u16(buf: &mut [u8], offset: usize, value: u16) {
    if let Some(slot) = buf.get_mut(offset..offset + 2) {
        slot.copy_from_slice(&value.to_le_bytes());
    }
}

fn is_power_of(mut n: u32, base: u32) -> bool {
    while n > 1 {
        if !n.is_multiple_of(base) {
            return false;
        }
        n /= base;
    }
    n == 1
}

fn push_names(out: &mut Vec<String>, flags: u32, table: &[(u32, &str)], prefix: &str) {
    for bit in 0..32 {
        let flag = 1u32 << bit;
        if flags & flag == 0 {
            continue;
        }
        match table.iter().find(|(f, _)| *f == flag) {
            Some((_, name)) => out.push((*name).to_string()),
            None => out.push(format!("{prefix}_0x{flag:x}")),
        }
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lower case.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in uuid.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl Superblock {
    /// The group holding `block`.
    pub fn group_of_block(&self, block: u64) -> Result<u32, Error> {
        if block < u64::from(self.first_data_block) || block >= self.blocks_count {
            return Err(Error::invalid_input(format!(
                "ext4: block {block} is outside the file system (a damaged block map)"
            )));
        }
        Ok(((block - u64::from(self.first_data_block)) / u64::from(self.blocks_per_group)) as u32)
    }
}
