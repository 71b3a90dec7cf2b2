//! v3 on-disk inodes (`xfs_dinode`): the 176-byte core, its CRC, and the data
//! fork that follows it (inline data, an extent list or a B+tree root).

use crate::checksum::{update_crc, verify_crc};
use crate::corrupt;
use crate::superblock::Superblock;
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::Device;
use homeward_sdk::types::{FileKind, FileStat};

/// "IN".
const MAGIC: u16 = 0x494e;
/// The v3 inode core.
pub const CORE_LEN: usize = 176;
/// Offset of `di_crc`.
const CRC_OFFSET: usize = 100;
/// `XFS_DIFLAG2_REFLINK`: the file may share extents.
const FLAG2_REFLINK: u64 = 1 << 1;
/// `XFS_DIFLAG2_BIGTIME`: timestamps are 64-bit nanosecond counters.
const FLAG2_BIGTIME: u64 = 1 << 3;
/// `XFS_DIFLAG2_NREXT64`: 64-bit extent counters.
const FLAG2_NREXT64: u64 = 1 << 4;
/// Bigtime counts from the oldest legacy timestamp, 2^31 s before the epoch.
const BIGTIME_EPOCH_OFFSET_NS: i128 = (1i128 << 31) * 1_000_000_000;

const S_IFMT: u16 = 0o170000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFLNK: u16 = 0o120000;

/// How a fork stores its content (`di_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkFormat {
    /// Device number (special files): no data.
    Device,
    /// Inline in the inode (short-form directories, short symlinks).
    Local,
    /// A list of extent records in the inode.
    Extents,
    /// A B+tree of extent records rooted in the inode.
    Btree,
}

/// One inode as read from disk.
#[derive(Debug, Clone)]
pub struct Inode {
    /// Its number.
    pub ino: u64,
    /// Byte offset on the device.
    pub offset: u64,
    /// The whole on-disk inode (core + forks), for rewriting.
    pub raw: Vec<u8>,
    pub mode: u16,
    pub format: ForkFormat,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nextents: u64,
    pub flags2: u64,
    /// `XFS_DIFLAG_REALTIME`: the data is on the realtime device.
    pub realtime: bool,
    /// The data fork's bytes.
    fork_start: usize,
    fork_len: usize,
}

impl Inode {
    /// Reads and checks inode `ino`.
    pub fn read(dev: &dyn Device, sb: &Superblock, ino: u64) -> Result<Inode, Error> {
        let offset = sb.inode_to_byte(ino).ok_or_else(|| {
            corrupt(format!(
                "inode number {ino} is outside the file system (damaged directory entry?)"
            ))
        })?;
        let raw = dev.read_vec(offset, usize::from(sb.inode_size))?;
        let r = ByteReader::new(&raw).named("xfs inode core");
        let magic = r.be_u16_at(0)?;
        if magic != MAGIC {
            return Err(corrupt(format!(
                "inode {ino}: magic 0x{magic:04x}, expected 0x{MAGIC:04x} (damaged inode, or a \
                 directory entry pointing at a free one)"
            )));
        }
        let version = r.u8_at(4)?;
        if version != 3 {
            return Err(corrupt(format!(
                "inode {ino}: version {version}, expected 3 on a v5 file system"
            )));
        }
        verify_crc(&raw, CRC_OFFSET, || format!("inode {ino}"))?;
        let on_disk_ino = r.be_u64_at(152)?;
        if on_disk_ino != ino {
            return Err(corrupt(format!(
                "inode {ino}: the inode records number {on_disk_ino} (misplaced or damaged inode)"
            )));
        }
        let format = match r.u8_at(5)? {
            0 => ForkFormat::Device,
            1 => ForkFormat::Local,
            2 => ForkFormat::Extents,
            3 => ForkFormat::Btree,
            other => {
                return Err(corrupt(format!(
                    "inode {ino}: data fork format {other} is unknown (damaged inode)"
                )));
            }
        };
        let nextents = if sb.has_nrext64() {
            r.be_u64_at(24)?
        } else {
            u64::from(r.be_u32_at(76)?)
        };
        let forkoff = usize::from(r.u8_at(82)?) * 8;
        let literal = raw.len() - CORE_LEN;
        let fork_len = if forkoff == 0 { literal } else { forkoff };
        if fork_len > literal {
            return Err(corrupt(format!(
                "inode {ino}: attribute fork offset {forkoff} is past the inode's {literal} literal bytes"
            )));
        }
        let size = r.be_u64_at(56)?;
        if size > i64::MAX as u64 {
            return Err(corrupt(format!(
                "inode {ino}: size {size} is negative as a file offset"
            )));
        }
        Ok(Inode {
            ino,
            offset,
            mode: r.be_u16_at(2)?,
            format,
            uid: r.be_u32_at(8)?,
            gid: r.be_u32_at(12)?,
            size,
            nextents,
            flags2: r.be_u64_at(120)?,
            realtime: r.be_u16_at(90)? & 1 != 0,
            fork_start: CORE_LEN,
            fork_len,
            raw,
        })
    }

    /// The data fork's bytes.
    pub fn data_fork(&self) -> &[u8] {
        self.raw
            .get(self.fork_start..self.fork_start + self.fork_len)
            .unwrap_or_default()
    }

    /// Regular file, directory, symlink or other.
    pub fn kind(&self) -> FileKind {
        match self.mode & S_IFMT {
            S_IFREG => FileKind::Regular,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }

    /// The inode may share extents with others.
    pub fn is_reflinked(&self) -> bool {
        self.flags2 & FLAG2_REFLINK != 0
    }

    fn bigtime(&self) -> bool {
        self.flags2 & FLAG2_BIGTIME != 0
    }

    /// Modification time in milliseconds since the Unix epoch (times before
    /// it, which the API cannot express, read as the epoch).
    pub fn mtime_millis(&self) -> u64 {
        let r = ByteReader::new(&self.raw);
        let ns: i128 = if self.bigtime() {
            i128::from(r.be_u64_at(40).unwrap_or(0)) - BIGTIME_EPOCH_OFFSET_NS
        } else {
            let secs = r.be_u32_at(40).unwrap_or(0) as i32;
            let nanos = r.be_u32_at(44).unwrap_or(0);
            i128::from(secs) * 1_000_000_000 + i128::from(nanos)
        };
        ns.div_euclid(1_000_000).max(0) as u64
    }

    /// `lstat`-style metadata.
    pub fn stat(&self) -> FileStat {
        FileStat {
            kind: self.kind(),
            size: self.size,
            mode: u32::from(self.mode & 0o7777),
            uid: self.uid,
            gid: self.gid,
            modified_at: self.mtime_millis(),
        }
    }

    /// `now_ns` (Unix nanoseconds) in this inode's timestamp format.
    fn timestamp(&self, now_ns: i128) -> [u8; 8] {
        if self.bigtime() {
            let ticks = (now_ns + BIGTIME_EPOCH_OFFSET_NS).max(0) as u64;
            ticks.to_be_bytes()
        } else {
            let secs = (now_ns.div_euclid(1_000_000_000))
                .clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
            let nanos = now_ns.rem_euclid(1_000_000_000) as u32;
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&secs.to_be_bytes());
            b[4..].copy_from_slice(&nanos.to_be_bytes());
            b
        }
    }

    /// Turns this free inode into an empty regular file owned by root, as
    /// `xfs_init_new_inode` does: one link, no blocks, an empty extent list,
    /// no attribute fork, all four times `now_ns`. Its generation, unlinked
    /// pointer, number and UUID stay. The caller sets the size, permission
    /// bits and CRC with [`Inode::rewrite_core`].
    pub fn init_regular(&mut self, sb: &Superblock, now_ns: i128) -> Result<(), Error> {
        self.init_new(sb, now_ns, S_IFREG, ForkFormat::Extents, 1)
    }

    /// [`Inode::init_regular`] for any file type `ifmt` (`S_IF*`), data
    /// fork `format` (extents, or local for inline directories and symlinks,
    /// whose bytes the caller puts in with [`Inode::write_fork`]) and link
    /// count.
    pub fn init_new(
        &mut self,
        sb: &Superblock,
        now_ns: i128,
        ifmt: u16,
        format: ForkFormat,
        nlink: u32,
    ) -> Result<(), Error> {
        if self.mode != 0 {
            return Err(corrupt(format!(
                "inode {}: the inode B+tree says it is free but its mode is 0o{:o} (damaged inode metadata)",
                self.ino, self.mode
            )));
        }
        let stamp = self.reset_core(sb, now_ns)?;
        // The fixed bytes: mode, version 3, the data fork's format; one
        // link; attribute fork in extents format (what an absent one reads as).
        let format_code = match format {
            ForkFormat::Local => 1,
            _ => 2,
        };
        put(&mut self.raw, 2, &(ifmt & S_IFMT).to_be_bytes())?;
        put(&mut self.raw, 4, &[3, format_code])?; // di_version, di_format
        put(&mut self.raw, 6, &[0, 0])?; // di_onlink
        put(&mut self.raw, 16, &nlink.to_be_bytes())?; // di_nlink
        for at in [32, 40, 48, 144] {
            put(&mut self.raw, at, &stamp)?; // atime, mtime, ctime, crtime
        }
        put(&mut self.raw, 83, &[2])?; // di_aformat
        put(&mut self.raw, 104, &0u64.to_be_bytes())?; // di_changecount (rewrite adds 1)
        put(&mut self.raw, 112, &0u64.to_be_bytes())?; // di_lsn
        put(&mut self.raw, 120, &self.flags2.to_be_bytes())?;
        self.raw
            .get_mut(128..144)
            .ok_or_else(|| Error::internal("xfs: inode core shorter than expected"))?
            .fill(0); // di_cowextsize, di_pad2
        self.raw
            .get_mut(CORE_LEN..)
            .ok_or_else(|| Error::internal("xfs: inode shorter than its core"))?
            .fill(0);
        self.mode = ifmt & S_IFMT;
        self.format = if format_code == 1 {
            ForkFormat::Local
        } else {
            ForkFormat::Extents
        };
        self.uid = 0;
        self.gid = 0;
        self.size = 0;
        self.nextents = 0;
        self.realtime = false;
        self.fork_start = CORE_LEN;
        self.fork_len = self.raw.len() - CORE_LEN;
        Ok(())
    }

    /// The link count (`di_nlink`).
    pub fn nlink(&self) -> Result<u32, Error> {
        Ok(ByteReader::new(&self.raw).be_u32_at(16)?)
    }

    /// Sets the link count; the CRC follows in [`Inode::rewrite_core`].
    pub fn set_nlink(&mut self, nlink: u32) -> Result<(), Error> {
        put(&mut self.raw, 16, &nlink.to_be_bytes())
    }

    /// Whether the inode has an attribute fork (`di_forkoff` set).
    pub fn has_attr_fork(&self) -> bool {
        self.raw.get(82).is_some_and(|&f| f != 0)
    }

    /// The attribute fork's format byte (`di_aformat`).
    pub fn attr_format(&self) -> u8 {
        self.raw.get(83).copied().unwrap_or(0)
    }

    /// Starts a new life of this inode slot: the feature flags the file
    /// system wants (bigtime, nrext64) and every field from di_uid to
    /// di_flags zeroed (ids, link counts, times, size, block counts, fork
    /// layout). Returns the on-disk form of `now_ns` for the caller's times.
    fn reset_core(&mut self, sb: &Superblock, now_ns: i128) -> Result<[u8; 8], Error> {
        let mut flags2 = 0u64;
        if sb.has_bigtime() {
            flags2 |= FLAG2_BIGTIME;
        }
        if sb.has_nrext64() {
            flags2 |= FLAG2_NREXT64;
        }
        self.flags2 = flags2;
        let stamp = self.timestamp(now_ns);
        self.raw
            .get_mut(8..92)
            .ok_or_else(|| Error::internal("xfs: inode core shorter than expected"))?
            .fill(0);
        Ok(stamp)
    }

    /// Turns this inode back into a free one, as `xfs_ifree` leaves it: mode
    /// 0, no links, size or blocks, an empty extent list and no attribute
    /// fork, the next generation number; with its CRC. The caller has
    /// already let go of its blocks.
    pub fn make_free(&mut self, sb: &Superblock, now_ns: i128) -> Result<(), Error> {
        let generation = ByteReader::new(&self.raw).be_u32_at(92)?.wrapping_add(1);
        let change_count = ByteReader::new(&self.raw).be_u64_at(104)?.wrapping_add(1);
        let stamp = self.reset_core(sb, now_ns)?;
        put(&mut self.raw, 2, &0u16.to_be_bytes())?;
        put(&mut self.raw, 4, &[3, 2])?; // di_version, di_format
        put(&mut self.raw, 6, &[0, 0])?; // di_onlink
        for at in [32, 40, 48] {
            put(&mut self.raw, at, &stamp)?;
        }
        put(&mut self.raw, 83, &[2])?; // di_aformat
        put(&mut self.raw, 92, &generation.to_be_bytes())?;
        put(&mut self.raw, 104, &change_count.to_be_bytes())?;
        put(&mut self.raw, 120, &self.flags2.to_be_bytes())?;
        self.raw
            .get_mut(128..144)
            .ok_or_else(|| Error::internal("xfs: inode core shorter than expected"))?
            .fill(0);
        self.raw
            .get_mut(CORE_LEN..)
            .ok_or_else(|| Error::internal("xfs: inode shorter than its core"))?
            .fill(0);
        update_crc(&mut self.raw, CRC_OFFSET)?;
        self.mode = 0;
        self.format = ForkFormat::Extents;
        self.size = 0;
        self.nextents = 0;
        self.realtime = false;
        self.fork_start = CORE_LEN;
        self.fork_len = self.raw.len() - CORE_LEN;
        Ok(())
    }

    /// Overwrites data-fork bytes at `at` (short-form directory edits).
    pub fn write_fork(&mut self, at: usize, bytes: &[u8]) -> Result<(), Error> {
        if at.saturating_add(bytes.len()) > self.fork_len {
            return Err(Error::internal("xfs: write past the end of the data fork"));
        }
        put(&mut self.raw, self.fork_start + at, bytes)
    }

    /// Blocks the inode owns (`di_nblocks`: data and block-map blocks).
    pub fn nblocks(&self) -> Result<u64, Error> {
        Ok(ByteReader::new(&self.raw).be_u64_at(64)?)
    }

    /// Stores extent record `index` of an extents-format data fork, and the
    /// new block and extent counts. The CRC follows in [`Inode::rewrite_core`].
    pub fn set_extent(
        &mut self,
        index: usize,
        record: &[u8; 16],
        nblocks: u64,
        nextents: u64,
        nrext64: bool,
    ) -> Result<(), Error> {
        let at = index
            .checked_mul(record.len())
            .filter(|&at| at + record.len() <= self.fork_len)
            .ok_or_else(|| Error::internal("xfs: extent record outside the data fork"))?;
        put(&mut self.raw, self.fork_start + at, record)?;
        put(&mut self.raw, 64, &nblocks.to_be_bytes())?;
        if nrext64 {
            put(&mut self.raw, 24, &nextents.to_be_bytes())?;
        } else {
            let count = u32::try_from(nextents)
                .map_err(|_| Error::internal("xfs: extent count overflows"))?;
            put(&mut self.raw, 76, &count.to_be_bytes())?;
        }
        self.nextents = nextents;
        Ok(())
    }

    /// Records new content: size, permission bits, modification and change
    /// time (`now_ns`, Unix nanoseconds), the change counter, and the CRC.
    pub fn rewrite_core(&mut self, size: u64, mode: u16, now_ns: i128) -> Result<(), Error> {
        let stamp = self.timestamp(now_ns);
        let change_count = ByteReader::new(&self.raw).be_u64_at(104)?.wrapping_add(1);
        let new_mode = (self.mode & S_IFMT) | (mode & 0o7777);
        put(&mut self.raw, 2, &new_mode.to_be_bytes())?;
        put(&mut self.raw, 40, &stamp)?; // di_mtime
        put(&mut self.raw, 48, &stamp)?; // di_ctime
        put(&mut self.raw, 56, &size.to_be_bytes())?;
        put(&mut self.raw, 104, &change_count.to_be_bytes())?;
        update_crc(&mut self.raw, CRC_OFFSET)?;
        self.mode = new_mode;
        self.size = size;
        Ok(())
    }
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), Error> {
    buf.get_mut(at..at + bytes.len())
        .ok_or_else(|| Error::internal("xfs: inode field outside the inode"))?
        .copy_from_slice(bytes);
    Ok(())
}
