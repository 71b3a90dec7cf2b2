//! Stat data: the item that is a file's inode (mode, links, size, owner,
//! times, block count), in its 3.5 (32-byte) and 3.6 (44-byte) layouts.

use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::types::FileKind;

/// Bytes of 3.6 stat data.
pub const STAT_V2_SIZE: usize = 44;
/// Bytes of 3.5 stat data.
const STAT_V1_SIZE: usize = 32;

/// File-type bits of `mode`.
pub const S_IFMT: u16 = 0o170000;
/// Regular file.
pub const S_IFREG: u16 = 0o100000;
/// Directory.
pub const S_IFDIR: u16 = 0o040000;
/// Symbolic link.
pub const S_IFLNK: u16 = 0o120000;

/// A decoded stat-data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatData {
    /// Type and permission bits.
    pub mode: u16,
    /// Link count.
    pub nlink: u32,
    /// Size in bytes.
    pub size: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Access time (seconds).
    pub atime: u32,
    /// Modification time (seconds).
    pub mtime: u32,
    /// Change time (seconds).
    pub ctime: u32,
    /// 512-byte sectors used (3.6), or the device number field.
    pub blocks: u32,
    /// 3.6: generation (or device number); kept as read.
    pub generation: u32,
    /// 3.6: attribute bits; kept as read.
    pub attrs: u16,
    /// Read from the 3.5 layout (which [`StatData::encode`] does not write).
    pub legacy: bool,
}

impl StatData {
    /// Decodes a stat-data item body of either layout.
    pub fn parse(body: &[u8], what: &str) -> Result<StatData, Error> {
        let r = ByteReader::new(body).named("reiserfs stat data");
        match body.len() {
            STAT_V2_SIZE => Ok(StatData {
                mode: r.le_u16_at(0)?,
                attrs: r.le_u16_at(2)?,
                nlink: r.le_u32_at(4)?,
                size: r.le_u64_at(8)?,
                uid: r.le_u32_at(16)?,
                gid: r.le_u32_at(20)?,
                atime: r.le_u32_at(24)?,
                mtime: r.le_u32_at(28)?,
                ctime: r.le_u32_at(32)?,
                blocks: r.le_u32_at(36)?,
                generation: r.le_u32_at(40)?,
                legacy: false,
            }),
            STAT_V1_SIZE => Ok(StatData {
                mode: r.le_u16_at(0)?,
                nlink: u32::from(r.le_u16_at(2)?),
                uid: u32::from(r.le_u16_at(4)?),
                gid: u32::from(r.le_u16_at(6)?),
                size: u64::from(r.le_u32_at(8)?),
                atime: r.le_u32_at(12)?,
                mtime: r.le_u32_at(16)?,
                ctime: r.le_u32_at(20)?,
                blocks: r.le_u32_at(24)?,
                generation: 0,
                attrs: 0,
                legacy: true,
            }),
            other => Err(Error::invalid_input(format!(
                "reiserfs: {what}: stat data of {other} bytes, expected 32 or 44 (damaged stat data)"
            ))),
        }
    }

    /// Encodes in the 3.6 layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(STAT_V2_SIZE);
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.extend_from_slice(&self.attrs.to_le_bytes());
        out.extend_from_slice(&self.nlink.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.atime.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&self.ctime.to_le_bytes());
        out.extend_from_slice(&self.blocks.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out
    }

    /// The API's kind for `mode`.
    pub fn kind(&self) -> FileKind {
        match self.mode & S_IFMT {
            S_IFREG => FileKind::Regular,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
}
