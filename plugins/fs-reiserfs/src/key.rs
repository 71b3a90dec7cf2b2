//! Item keys: the sort order of everything in the S+tree.
//!
//! A key is (directory id, object id, offset, type). ReiserFS stores it in two
//! layouts: 3.5 ("v1": 32-bit offset plus a 32-bit "uniqueness" naming the
//! type) and 3.6 ("v2": 60-bit offset and 4-bit type in one 64-bit word).
//! Both compare the same way once decoded, so the tree code works on the
//! decoded [`Key`] and only the leaf (which knows each item's format) and the
//! internal nodes (which guess it like the kernel does) care about layouts.

use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;

/// Bytes of an on-disk key.
pub const KEY_SIZE: usize = 16;

/// What an item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemType {
    /// The object's stat data (its inode).
    StatData = 0,
    /// Block pointers of a file body.
    Indirect = 1,
    /// File bytes stored in the leaf (a tail or a small file).
    Direct = 2,
    /// Directory entries.
    DirEntry = 3,
    /// Matches any type: only in search keys.
    Any = 15,
}

/// The two on-disk key layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// ReiserFS 3.5: offset + uniqueness.
    V1,
    /// ReiserFS 3.6: 60-bit offset, 4-bit type.
    V2,
}

impl KeyFormat {
    /// The item header's `ih_version` value (its low 12 bits).
    pub fn code(self) -> u16 {
        match self {
            KeyFormat::V1 => 0,
            KeyFormat::V2 => 1,
        }
    }
}

const UNIQ_STAT_DATA: u32 = 0;
const UNIQ_INDIRECT: u32 = 0xffff_fffe;
const UNIQ_DIRECT: u32 = 0xffff_ffff;
const UNIQ_DIRENTRY: u32 = 500;
const UNIQ_ANY: u32 = 555;
const OFFSET_MASK: u64 = (1 << 60) - 1;

/// A decoded key. The derived order (dir id, object id, offset, type) is the
/// tree's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// The parent directory's object id (the "packing locality").
    pub dir_id: u32,
    /// The object's id.
    pub objectid: u32,
    /// Byte offset plus one for file bodies, hash for directory entries, 0 for stat data.
    pub offset: u64,
    /// Item type.
    pub kind: ItemType,
}

impl Key {
    /// A key of object `(dir_id, objectid)`.
    pub fn new(dir_id: u32, objectid: u32, offset: u64, kind: ItemType) -> Self {
        Key {
            dir_id,
            objectid,
            offset,
            kind,
        }
    }

    /// The stat-data key of an object: the first key of all its items.
    pub fn stat_data(dir_id: u32, objectid: u32) -> Self {
        Key::new(dir_id, objectid, 0, ItemType::StatData)
    }

    /// Whether `other` belongs to the same object.
    pub fn same_object(&self, other: &Key) -> bool {
        self.dir_id == other.dir_id && self.objectid == other.objectid
    }

    /// Decodes a key whose layout is known (an item header says it).
    pub fn parse(raw: &[u8], format: KeyFormat) -> Result<Key, Error> {
        let r = ByteReader::new(raw).named("reiserfs key");
        let dir_id = r.le_u32_at(0)?;
        let objectid = r.le_u32_at(4)?;
        match format {
            KeyFormat::V1 => {
                let offset = u64::from(r.le_u32_at(8)?);
                let uniqueness = r.le_u32_at(12)?;
                let kind = match uniqueness {
                    UNIQ_STAT_DATA => ItemType::StatData,
                    UNIQ_INDIRECT => ItemType::Indirect,
                    UNIQ_DIRECT => ItemType::Direct,
                    UNIQ_DIRENTRY => ItemType::DirEntry,
                    UNIQ_ANY => ItemType::Any,
                    other => {
                        return Err(Error::invalid_input(format!(
                            "reiserfs: key [{dir_id} {objectid}] has unknown 3.5 uniqueness {other:#x} (damaged key)"
                        )));
                    }
                };
                Ok(Key::new(dir_id, objectid, offset, kind))
            }
            KeyFormat::V2 => {
                let word = r.le_u64_at(8)?;
                let kind = match word >> 60 {
                    0 => ItemType::StatData,
                    1 => ItemType::Indirect,
                    2 => ItemType::Direct,
                    3 => ItemType::DirEntry,
                    15 => ItemType::Any,
                    other => {
                        return Err(Error::invalid_input(format!(
                            "reiserfs: key [{dir_id} {objectid}] has unknown 3.6 type {other} (damaged key)"
                        )));
                    }
                };
                Ok(Key::new(dir_id, objectid, word & OFFSET_MASK, kind))
            }
        }
    }

    /// Decodes a key of unknown layout (internal nodes), guessing it the way
    /// the kernel does: a 3.6 type of indirect, direct or directory means 3.6.
    pub fn parse_guess(raw: &[u8]) -> Result<Key, Error> {
        let word = ByteReader::new(raw).named("reiserfs key").le_u64_at(8)?;
        let format = match word >> 60 {
            1..=3 => KeyFormat::V2,
            _ => KeyFormat::V1,
        };
        Key::parse(raw, format)
    }

    /// The 16 on-disk bytes in `format`.
    pub fn encode(&self, format: KeyFormat) -> [u8; KEY_SIZE] {
        let mut out = [0u8; KEY_SIZE];
        out[0..4].copy_from_slice(&self.dir_id.to_le_bytes());
        out[4..8].copy_from_slice(&self.objectid.to_le_bytes());
        match format {
            KeyFormat::V1 => {
                let uniqueness = match self.kind {
                    ItemType::StatData => UNIQ_STAT_DATA,
                    ItemType::Indirect => UNIQ_INDIRECT,
                    ItemType::Direct => UNIQ_DIRECT,
                    ItemType::DirEntry => UNIQ_DIRENTRY,
                    ItemType::Any => UNIQ_ANY,
                };
                // Offsets of 3.5 keys are 32-bit: callers only use V1 for
                // directory items (hash offsets) and symlink bodies (offset 1).
                out[8..12].copy_from_slice(&(self.offset as u32).to_le_bytes());
                out[12..16].copy_from_slice(&uniqueness.to_le_bytes());
            }
            KeyFormat::V2 => {
                let word = (self.offset & OFFSET_MASK) | ((self.kind as u64) << 60);
                out[8..16].copy_from_slice(&word.to_le_bytes());
            }
        }
        out
    }

    /// The layout to store this key in an internal node.
    pub fn natural_format(&self) -> KeyFormat {
        // Both layouts decode to the same key; pick one that holds the
        // offset (3.5 offsets are 32-bit) and that `parse_guess` recognises.
        match self.kind {
            ItemType::StatData | ItemType::DirEntry | ItemType::Any => KeyFormat::V1,
            ItemType::Indirect | ItemType::Direct => KeyFormat::V2,
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{} {} {} {:?}]",
            self.dir_id, self.objectid, self.offset, self.kind
        )
    }
}
