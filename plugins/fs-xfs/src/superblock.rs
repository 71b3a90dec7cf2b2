//! The primary superblock: recognising XFS, checking its CRC, naming its
//! features, and the geometry every other module needs to turn inode and block
//! numbers into byte offsets.
//!
//! Only the primary copy (sector 0 of AG 0) is read: the secondary copies are
//! what `xfs_repair` uses to rebuild a damaged primary, not what the kernel
//! mounts.

use crate::checksum::{update_crc, verify_crc};
use crate::corrupt;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::{Device, FsInfo};

/// "XFSB".
const MAGIC: u32 = 0x5846_5342;
/// Offset of `sb_crc`.
const CRC_OFFSET: usize = 224;

// sb_versionnum bits.
const VERSION_ATTR: u16 = 0x0010;
const VERSION_NLINK: u16 = 0x0020;
const VERSION_QUOTA: u16 = 0x0040;
const VERSION_ALIGN: u16 = 0x0080;
const VERSION_DALIGN: u16 = 0x0100;
const VERSION_LOGV2: u16 = 0x0400;
const VERSION_SECTOR: u16 = 0x0800;
const VERSION_EXTFLG: u16 = 0x1000;
const VERSION_DIRV2: u16 = 0x2000;
const VERSION_MOREBITS: u16 = 0x8000;

// sb_features2 bits.
const F2_LAZYSBCOUNT: u32 = 0x0002;
const F2_ATTR2: u32 = 0x0008;
const F2_PARENT: u32 = 0x0010;
const F2_PROJID32: u32 = 0x0080;
const F2_CRC: u32 = 0x0100;
const F2_FTYPE: u32 = 0x0200;

// sb_features_ro_compat bits.
const RO_FINOBT: u32 = 0x1;
const RO_RMAPBT: u32 = 0x2;
const RO_REFLINK: u32 = 0x4;
const RO_INOBTCNT: u32 = 0x8;

// sb_features_incompat bits.
const IN_FTYPE: u32 = 0x01;
const IN_SPINODES: u32 = 0x02;
const IN_META_UUID: u32 = 0x04;
const IN_BIGTIME: u32 = 0x08;
const IN_NEEDSREPAIR: u32 = 0x10;
const IN_NREXT64: u32 = 0x20;
/// Every incompat feature this handler knows how to read.
const IN_KNOWN: u32 =
    IN_FTYPE | IN_SPINODES | IN_META_UUID | IN_BIGTIME | IN_NEEDSREPAIR | IN_NREXT64;

// sb_features_log_incompat bits.
const LOG_XATTRS: u32 = 0x1;

/// The superblock fields the handler uses.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub block_size: u32,
    pub block_log: u8,
    pub dblocks: u64,
    pub rblocks: u64,
    pub uuid: [u8; 16],
    pub log_start: u64,
    pub log_blocks: u32,
    pub root_ino: u64,
    pub ag_blocks: u32,
    pub ag_count: u32,
    pub version: u16,
    pub sect_size: u16,
    pub inode_size: u16,
    pub label: String,
    pub inop_block_log: u8,
    pub ag_block_log: u8,
    pub inprogress: u8,
    pub fdblocks: u64,
    pub qflags: u16,
    pub dir_block_log: u8,
    pub features2: u32,
    pub ro_compat: u32,
    pub incompat: u32,
    pub log_incompat: u32,
}

impl Superblock {
    /// Reads the primary superblock: `None` when the magic is not XFS's.
    pub fn read(dev: &dyn Device) -> Result<Option<Superblock>, Error> {
        if dev.size() < 512 {
            return Ok(None);
        }
        let head = dev.read_vec(0, 512)?;
        let r = ByteReader::new(&head).named("xfs superblock");
        if r.be_u32_at(0)? != MAGIC {
            return Ok(None);
        }
        let sect_size = r.be_u16_at(102)?;
        if !(512..=32768).contains(&sect_size) || !sect_size.is_power_of_two() {
            return Err(corrupt(format!(
                "superblock: sector size {sect_size} is not a power of two in 512..32768 (damaged superblock)"
            )));
        }
        let sector = dev.read_vec(0, usize::from(sect_size))?;
        let r = ByteReader::new(&sector).named("xfs superblock");
        let version = r.be_u16_at(100)?;
        let features2 = r.be_u32_at(200)?;
        let sb = Superblock {
            block_size: r.be_u32_at(4)?,
            dblocks: r.be_u64_at(8)?,
            rblocks: r.be_u64_at(16)?,
            uuid: uuid_at(&r, 32)?,
            log_start: r.be_u64_at(48)?,
            root_ino: r.be_u64_at(56)?,
            ag_blocks: r.be_u32_at(84)?,
            ag_count: r.be_u32_at(88)?,
            log_blocks: r.be_u32_at(96)?,
            version,
            sect_size,
            inode_size: r.be_u16_at(104)?,
            label: label_of(r.slice_at(108, 12)?),
            block_log: r.u8_at(120)?,
            inop_block_log: r.u8_at(123)?,
            ag_block_log: r.u8_at(124)?,
            inprogress: r.u8_at(126)?,
            fdblocks: r.be_u64_at(144)?,
            qflags: r.be_u16_at(176)?,
            dir_block_log: r.u8_at(192)?,
            features2: if version & VERSION_MOREBITS != 0 {
                features2
            } else {
                0
            },
            ro_compat: r.be_u32_at(212)?,
            incompat: r.be_u32_at(216)?,
            log_incompat: r.be_u32_at(220)?,
        };
        if sb.version_number() == 5 {
            // v5 superblocks carry a CRC over the whole sector; older ones do not.
            verify_crc(&sector, CRC_OFFSET, || "superblock".to_string())?;
        } else {
            // The v5-only fields are not defined on older superblocks.
            return Ok(Some(Superblock {
                ro_compat: 0,
                incompat: 0,
                log_incompat: 0,
                ..sb
            }));
        }
        sb.check_geometry()?;
        homeward_sdk::fs::check_fits(dev, "xfs", sb.dblocks, u64::from(sb.block_size))?;
        Ok(Some(sb))
    }

    /// Rejects geometry that would make offset arithmetic meaningless.
    fn check_geometry(&self) -> Result<(), Error> {
        let bad = |what: String| Err(corrupt(format!("superblock: {what} (damaged superblock)")));
        if !(512..=65536).contains(&self.block_size)
            || !self.block_size.is_power_of_two()
            || 1u32.checked_shl(u32::from(self.block_log)) != Some(self.block_size)
        {
            return bad(format!(
                "block size {} with log {} is not a power of two in 512..65536",
                self.block_size, self.block_log
            ));
        }
        if !(256..=2048).contains(&self.inode_size)
            || !self.inode_size.is_power_of_two()
            || u32::from(self.inode_size) > self.block_size
            || 1u32.checked_shl(u32::from(self.inop_block_log))
                != Some(self.block_size / u32::from(self.inode_size))
        {
            return bad(format!(
                "inode size {} with {} inodes per block log does not fit the {}-byte block",
                self.inode_size, self.inop_block_log, self.block_size
            ));
        }
        if self.ag_blocks == 0
            || self.ag_count == 0
            || self.ag_block_log > 31
            || u64::from(self.ag_blocks) > 1u64 << self.ag_block_log
            || u64::from(self.ag_blocks) <= (1u64 << self.ag_block_log) / 2
        {
            return bad(format!(
                "{} AGs of {} blocks with AG block log {}",
                self.ag_count, self.ag_blocks, self.ag_block_log
            ));
        }
        let ag_span = u64::from(self.ag_count) * u64::from(self.ag_blocks);
        if self.dblocks == 0
            || self.dblocks > ag_span
            || ag_span - self.dblocks >= u64::from(self.ag_blocks)
        {
            return bad(format!(
                "{} data blocks do not match {} AGs of {} blocks",
                self.dblocks, self.ag_count, self.ag_blocks
            ));
        }
        if self
            .dblocks
            .checked_mul(u64::from(self.block_size))
            .is_none()
        {
            return bad(format!(
                "{} blocks of {} bytes overflow a 64-bit size",
                self.dblocks, self.block_size
            ));
        }
        if u32::from(self.dir_block_log) + u32::from(self.block_log) > 16 {
            return bad(format!(
                "directory block log {} is larger than 64 KiB",
                self.dir_block_log
            ));
        }
        Ok(())
    }

    /// Takes `blocks` free blocks and `inodes` free inodes off the primary
    /// superblock's counters (`sb_fdblocks`, `sb_ifree`) as they are on disk
    /// now, and writes it back with its CRC. A clean mount trusts these.
    pub fn take_free_counts(
        &self,
        dev: &dyn Device,
        blocks: u64,
        inodes: u64,
    ) -> Result<(), Error> {
        self.change_free_counts(dev, blocks, inodes, false)
    }

    /// Gives freed blocks and inodes back to the superblock's counters.
    pub fn give_free_counts(
        &self,
        dev: &dyn Device,
        blocks: u64,
        inodes: u64,
    ) -> Result<(), Error> {
        self.change_free_counts(dev, blocks, inodes, true)
    }

    fn change_free_counts(
        &self,
        dev: &dyn Device,
        blocks: u64,
        inodes: u64,
        give: bool,
    ) -> Result<(), Error> {
        let mut sector = dev.read_vec(0, usize::from(self.sect_size))?;
        for (at, delta, what) in [(144, blocks, "free block"), (136, inodes, "free inode")] {
            let field = sector
                .get_mut(at..at + 8)
                .ok_or_else(|| Error::internal("xfs: superblock field outside the sector"))?;
            let mut value = [0u8; 8];
            value.copy_from_slice(field);
            let old = u64::from_be_bytes(value);
            let new = if give {
                old.checked_add(delta)
            } else {
                old.checked_sub(delta)
            };
            let new = new.ok_or_else(|| {
                corrupt(format!(
                    "superblock: {what} count is out of step with what the AG headers record"
                ))
            })?;
            field.copy_from_slice(&new.to_be_bytes());
        }
        update_crc(&mut sector, CRC_OFFSET)?;
        dev.write_at(0, &sector)
    }

    /// The free inode B+tree is on.
    pub fn has_finobt(&self) -> bool {
        self.ro_compat & RO_FINOBT != 0
    }

    /// Inode chunks may be partly allocated (inobt records carry a hole mask).
    pub fn has_sparse_inodes(&self) -> bool {
        self.incompat & IN_SPINODES != 0
    }

    /// New inodes get 64-bit nanosecond timestamps.
    pub fn has_bigtime(&self) -> bool {
        self.incompat & IN_BIGTIME != 0
    }

    /// The reverse-mapping B+tree is on.
    pub fn has_rmapbt(&self) -> bool {
        self.ro_compat & RO_RMAPBT != 0
    }

    /// The on-disk format version (4 or 5).
    pub fn version_number(&self) -> u16 {
        self.version & 0xf
    }

    /// Directory entries carry the file type (v5 always does).
    pub fn has_ftype(&self) -> bool {
        self.incompat & IN_FTYPE != 0 || self.features2 & F2_FTYPE != 0
    }

    /// The reflink feature is on (extents may be shared between files).
    pub fn has_reflink(&self) -> bool {
        self.ro_compat & RO_REFLINK != 0
    }

    /// The inode extent counters are the 64-bit layout.
    pub fn has_nrext64(&self) -> bool {
        self.incompat & IN_NREXT64 != 0
    }

    /// Incompatible features this handler does not know, if any.
    pub fn unknown_incompat(&self) -> u32 {
        self.incompat & !IN_KNOWN
    }

    /// The repair-needed flag `xfs_repair` sets while it works.
    pub fn needs_repair(&self) -> bool {
        self.incompat & IN_NEEDSREPAIR != 0
    }

    /// The directory block size in bytes.
    pub fn dir_block_size(&self) -> u32 {
        self.block_size << self.dir_block_log
    }

    /// Byte offset of file-system block `fsb` (AG number in the high bits).
    pub fn fsb_to_byte(&self, fsb: u64) -> Option<u64> {
        let agno = fsb.checked_shr(u32::from(self.ag_block_log))?;
        let agbno = fsb & ((1u64 << self.ag_block_log) - 1);
        self.ag_block_to_byte(u32::try_from(agno).ok()?, u32::try_from(agbno).ok()?)
    }

    /// Byte offset of block `agbno` of AG `agno`.
    pub fn ag_block_to_byte(&self, agno: u32, agbno: u32) -> Option<u64> {
        if agno >= self.ag_count || agbno >= self.ag_blocks {
            return None;
        }
        let linear = u64::from(agno)
            .checked_mul(u64::from(self.ag_blocks))?
            .checked_add(u64::from(agbno))?;
        linear.checked_mul(u64::from(self.block_size))
    }

    /// The AG inode `ino` lives in.
    pub fn inode_ag(&self, ino: u64) -> u32 {
        let agino_bits = u32::from(self.ag_block_log) + u32::from(self.inop_block_log);
        ino.checked_shr(agino_bits)
            .map_or(0, |ag| ag.min(u64::from(u32::MAX)) as u32)
    }

    /// Byte offset of inode `ino`.
    pub fn inode_to_byte(&self, ino: u64) -> Option<u64> {
        let agino_bits = u32::from(self.ag_block_log) + u32::from(self.inop_block_log);
        let agno = ino.checked_shr(agino_bits)?;
        let agino = ino & ((1u64 << agino_bits) - 1);
        let agbno = agino >> self.inop_block_log;
        let index = agino & ((1u64 << self.inop_block_log) - 1);
        let block = self.ag_block_to_byte(u32::try_from(agno).ok()?, u32::try_from(agbno).ok()?)?;
        block.checked_add(index.checked_mul(u64::from(self.inode_size))?)
    }

    /// Feature names as `xfs_info` and `mkfs.xfs -m` spell them.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut add = |on: bool, name: &str| {
            if on {
                names.push(name.to_string());
            }
        };
        let v = self.version;
        add(v & VERSION_ATTR != 0, "attr");
        add(v & VERSION_NLINK != 0, "nlink");
        add(v & VERSION_QUOTA != 0, "quota");
        add(v & VERSION_ALIGN != 0, "align");
        add(v & VERSION_DALIGN != 0, "dalign");
        add(v & VERSION_LOGV2 != 0, "logv2");
        add(v & VERSION_SECTOR != 0, "sector");
        add(v & VERSION_EXTFLG != 0, "extflg");
        add(v & VERSION_DIRV2 != 0, "dirv2");
        let f2 = self.features2;
        add(f2 & F2_LAZYSBCOUNT != 0, "lazy_count");
        add(f2 & F2_ATTR2 != 0, "attr2");
        add(f2 & F2_PARENT != 0, "parent");
        add(f2 & F2_PROJID32 != 0, "projid32bit");
        add(f2 & F2_CRC != 0, "crc");
        add(self.has_ftype(), "ftype");
        let ro = self.ro_compat;
        add(ro & RO_FINOBT != 0, "finobt");
        add(ro & RO_RMAPBT != 0, "rmapbt");
        add(ro & RO_REFLINK != 0, "reflink");
        add(ro & RO_INOBTCNT != 0, "inobtcount");
        let inc = self.incompat;
        add(inc & IN_SPINODES != 0, "sparse_inodes");
        add(inc & IN_META_UUID != 0, "meta_uuid");
        add(inc & IN_BIGTIME != 0, "bigtime");
        add(inc & IN_NEEDSREPAIR != 0, "needsrepair");
        add(inc & IN_NREXT64 != 0, "nrext64");
        add(self.log_incompat & LOG_XATTRS != 0, "log_xattrs");
        names
    }

    /// The facts a probe reports; `clean` comes from the log.
    pub fn info(&self, clean: bool) -> FsInfo {
        FsInfo {
            fs_type: "xfs".to_string(),
            version: self.version_number().to_string(),
            features: self.feature_names(),
            uuid: format_uuid(&self.uuid),
            label: self.label.clone(),
            block_size: self.block_size,
            total_blocks: self.dblocks,
            free_blocks: self.fdblocks,
            clean,
        }
    }
}

fn uuid_at(r: &ByteReader<'_>, offset: usize) -> Result<[u8; 16], Error> {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(r.slice_at(offset, 16)?);
    Ok(uuid)
}

/// `sb_fname`: up to 12 bytes, NUL-padded.
fn label_of(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(raw.get(..end).unwrap_or_default()).into_owned()
}

/// Lower-case hex with dashes, as `xfs_db` prints it.
pub fn format_uuid(uuid: &[u8; 16]) -> String {
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
