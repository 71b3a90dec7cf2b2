//! The superblock (64 KiB into the volume) and the object-id map after it.
//!
//! The superblock says where the tree's root is, how big blocks are, how many
//! are free, where the journal lives and which hash sorts directory entries;
//! the object-id map that follows it in the same block records which object
//! ids are taken. Probing, `used_extents` and opening all start here.

use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::fs::{Device, FsInfo};

/// Byte offset of the superblock (also of the block that holds it).
pub const SUPERBLOCK_OFFSET: u64 = 64 * 1024;

/// Size of the 3.6 superblock structure; the object-id map follows it.
const SB_V2_SIZE: usize = 204;
/// Size of the 3.5 superblock structure.
const SB_V1_SIZE: usize = 76;

/// `s_umount_state` of a cleanly unmounted file system.
const REISERFS_VALID_FS: u16 = 1;
/// `s_flags` bit: stat-data reserved fields are clean, so attributes are usable.
const FLAG_ATTRS_CLEARED: u32 = 1;

/// Deepest tree accepted (the kernel's MAX_HEIGHT is 5; leave some room).
pub const MAX_TREE_HEIGHT: u16 = 8;

/// Which superblock magic the volume carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// "ReIsErFs": ReiserFS 3.5 (3.5 keys and stat data only).
    V35,
    /// "ReIsEr2Fs": ReiserFS 3.6 with the standard journal.
    V36,
    /// "ReIsEr3Fs": 3.6 with a non-standard (relocated or resized) journal.
    V36Relocated,
}

/// The journal's placement, from the superblock.
#[derive(Debug, Clone)]
pub struct JournalParams {
    /// First block of the log.
    pub first_block: u32,
    /// Device of the journal (0: this volume).
    pub device: u32,
    /// Blocks in the log (the header block follows them).
    pub size: u32,
}

/// The parsed superblock.
#[derive(Debug, Clone)]
pub struct Superblock {
    /// Magic-derived format.
    pub format: Format,
    /// `s_block_count`.
    pub block_count: u32,
    /// `s_free_blocks`.
    pub free_blocks: u32,
    /// `s_root_block`.
    pub root_block: u32,
    /// Journal placement.
    pub journal: JournalParams,
    /// `s_blocksize`.
    pub block_size: u32,
    /// `s_oid_maxsize`: capacity of the object-id map, in entries.
    pub oid_max: u16,
    /// `s_umount_state`.
    pub umount_state: u16,
    /// `s_fs_state`.
    pub fs_state: u16,
    /// `s_hash_function_code`.
    pub hash_code: u32,
    /// `s_tree_height`: root level + 1.
    pub tree_height: u16,
    /// `s_inode_generation`.
    pub inode_generation: u32,
    /// `s_flags`.
    pub flags: u32,
    /// `s_uuid`.
    pub uuid: [u8; 16],
    /// `s_label`, NUL-trimmed.
    pub label: String,
    /// The object-id map: ids in `[map[2i], map[2i+1])` are used.
    pub oid_map: Vec<u32>,
    /// The whole superblock block as read, so writes keep unknown fields.
    pub raw: Vec<u8>,
}

fn damaged(what: String) -> Error {
    Error::invalid_input(format!("reiserfs: superblock: {what} (damaged superblock)"))
}

impl Superblock {
    /// Reads the superblock; `None` when the volume holds something else.
    pub fn read(dev: &dyn Device) -> Result<Option<Superblock>, Error> {
        let head_len = SB_V2_SIZE as u64;
        if dev.size() < SUPERBLOCK_OFFSET + head_len {
            return Ok(None);
        }
        let head = dev.read_vec(SUPERBLOCK_OFFSET, SB_V2_SIZE)?;
        let r = ByteReader::new(&head).named("reiserfs superblock");
        let magic = r.slice_at(52, 10)?;
        let format = if magic.starts_with(b"ReIsEr2Fs\0") {
            Format::V36
        } else if magic.starts_with(b"ReIsEr3Fs\0") {
            Format::V36Relocated
        } else if magic.starts_with(b"ReIsErFs\0") {
            Format::V35
        } else {
            return Ok(None);
        };
        let block_size = u32::from(r.le_u16_at(44)?);
        if !(512..=65536).contains(&block_size) || !block_size.is_power_of_two() {
            return Err(damaged(format!(
                "block size {block_size} is not a power of two from 512 to 65536"
            )));
        }
        let block_count = r.le_u32_at(0)?;
        let free_blocks = r.le_u32_at(4)?;
        let root_block = r.le_u32_at(8)?;
        let journal = JournalParams {
            first_block: r.le_u32_at(12)?,
            device: r.le_u32_at(16)?,
            size: r.le_u32_at(20)?,
        };
        let oid_max = r.le_u16_at(46)?;
        let oid_cur = r.le_u16_at(48)?;
        let umount_state = r.le_u16_at(50)?;
        let fs_state = r.le_u16_at(62)?;
        let hash_code = r.le_u32_at(64)?;
        let tree_height = r.le_u16_at(68)?;
        let sb_size = if format == Format::V35 {
            SB_V1_SIZE
        } else {
            SB_V2_SIZE
        };
        let (inode_generation, flags, uuid, label) = if format == Format::V35 {
            (0, 0, [0u8; 16], String::new())
        } else {
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(r.slice_at(84, 16)?);
            let raw_label = r.slice_at(100, 16)?;
            let end = raw_label
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(raw_label.len());
            let label =
                String::from_utf8_lossy(raw_label.get(..end).unwrap_or_default()).into_owned();
            (r.le_u32_at(76)?, r.le_u32_at(80)?, uuid, label)
        };

        if block_count == 0 {
            return Err(damaged("block count is 0".into()));
        }
        homeward_sdk::fs::check_fits(
            dev,
            "reiserfs",
            u64::from(block_count),
            u64::from(block_size),
        )?;
        let volume_bytes = u64::from(block_count) * u64::from(block_size);
        if volume_bytes > dev.size() {
            return Err(Error::invalid_input(format!(
                "reiserfs: superblock: {block_count} blocks of {block_size} bytes need {volume_bytes} bytes \
                 but the volume has {} (truncated image or wrong partition)",
                dev.size()
            )));
        }
        if free_blocks > block_count {
            return Err(damaged(format!(
                "{free_blocks} free blocks of {block_count}"
            )));
        }
        if root_block >= block_count
            || u64::from(root_block) * u64::from(block_size) <= SUPERBLOCK_OFFSET
        {
            return Err(damaged(format!(
                "root block {root_block} is outside the tree area (volume has {block_count} blocks)"
            )));
        }
        if !(2..=MAX_TREE_HEIGHT).contains(&tree_height) {
            return Err(damaged(format!(
                "tree height {tree_height}, expected 2 to {MAX_TREE_HEIGHT}"
            )));
        }
        let map_room = (block_size as usize).saturating_sub(sb_size) / 4;
        if oid_cur > oid_max || usize::from(oid_max) > map_room || oid_cur % 2 != 0 || oid_cur < 2 {
            return Err(damaged(format!(
                "object-id map holds {oid_cur} of {oid_max} entries (room for {map_room}, even count of at least 2 expected)"
            )));
        }
        let raw = dev.read_vec(SUPERBLOCK_OFFSET, block_size as usize)?;
        let mr = ByteReader::new(&raw).named("reiserfs object-id map");
        let mut oid_map = Vec::with_capacity(usize::from(oid_cur));
        for i in 0..usize::from(oid_cur) {
            let v = mr.le_u32_at(sb_size + 4 * i)?;
            if oid_map.last().is_some_and(|&prev| v <= prev) {
                return Err(damaged(format!(
                    "object-id map entry {i} ({v}) does not increase"
                )));
            }
            oid_map.push(v);
        }
        Ok(Some(Superblock {
            format,
            block_count,
            free_blocks,
            root_block,
            journal,
            block_size,
            oid_max,
            umount_state,
            fs_state,
            hash_code,
            tree_height,
            inode_generation,
            flags,
            uuid,
            label,
            oid_map,
            raw,
        }))
    }

    /// Size of the superblock structure (where the object-id map starts).
    fn struct_size(&self) -> usize {
        if self.format == Format::V35 {
            SB_V1_SIZE
        } else {
            SB_V2_SIZE
        }
    }

    /// The name of the directory hash.
    pub fn hash_name(&self) -> &'static str {
        match self.hash_code {
            1 => "tea",
            2 => "rupasov",
            3 => "r5",
            _ => "unset",
        }
    }

    /// The facts a probe reports; `journal_clean` comes from [`crate::journal`].
    pub fn info(&self, journal_clean: bool) -> FsInfo {
        let mut features = vec![self.hash_name().to_string()];
        if self.flags & FLAG_ATTRS_CLEARED != 0 {
            features.push("attrs".into());
        }
        if self.format == Format::V36Relocated {
            features.push("nonstandard_journal".into());
        }
        if self.journal.device != 0 {
            features.push("external_journal".into());
        }
        let mut uuid = String::with_capacity(36);
        for (i, byte) in self.uuid.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                uuid.push('-');
            }
            uuid.push_str(&format!("{byte:02x}"));
        }
        FsInfo {
            fs_type: "reiserfs".into(),
            version: if self.format == Format::V35 {
                "3.5"
            } else {
                "3.6"
            }
            .into(),
            features,
            uuid,
            label: self.label.clone(),
            block_size: self.block_size,
            total_blocks: u64::from(self.block_count),
            free_blocks: u64::from(self.free_blocks),
            clean: journal_clean && self.umount_state == REISERFS_VALID_FS && self.fs_state == 0,
        }
    }

    /// The block number of the superblock.
    pub fn own_block(&self) -> u32 {
        (SUPERBLOCK_OFFSET / u64::from(self.block_size)) as u32
    }

    /// Bitmap blocks on the volume.
    pub fn bitmap_blocks(&self) -> u32 {
        let bits = self.block_size * 8;
        self.block_count.div_ceil(bits)
    }

    /// The block holding bitmap `i`: the first follows the superblock, the
    /// others start each `block_size * 8`-block group.
    pub fn bitmap_location(&self, i: u32) -> u64 {
        if i == 0 {
            u64::from(self.own_block()) + 1
        } else {
            u64::from(i) * u64::from(self.block_size) * 8
        }
    }

    /// Whether block `nr` is one of the bitmaps.
    pub fn is_bitmap(&self, nr: u32) -> bool {
        let bits = self.block_size * 8;
        nr == self.own_block() + 1
            || (nr != 0 && nr.is_multiple_of(bits) && nr / bits < self.bitmap_blocks())
    }

    /// Whether block `nr` may hold file data: inside the volume and not the
    /// superblock, a bitmap or the journal.
    pub fn is_data_block(&self, nr: u32) -> bool {
        let journal_start = u64::from(self.journal.first_block);
        // The log plus its header block, when the journal is on this volume.
        let journal_end = journal_start + u64::from(self.journal.size) + 1;
        let in_journal =
            self.journal.device == 0 && (journal_start..journal_end).contains(&u64::from(nr));
        nr > self.own_block() && nr < self.block_count && !self.is_bitmap(nr) && !in_journal
    }

    /// The superblock block with the fields Homeward changes written back.
    pub fn encode(&self) -> Vec<u8> {
        let mut raw = self.raw.clone();
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = raw.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(4, &self.free_blocks.to_le_bytes());
        put(8, &self.root_block.to_le_bytes());
        put(48, &(self.oid_map.len() as u16).to_le_bytes());
        put(68, &self.tree_height.to_le_bytes());
        let base = self.struct_size();
        for (i, v) in self.oid_map.iter().enumerate() {
            put(base + 4 * i, &v.to_le_bytes());
        }
        raw
    }
}
