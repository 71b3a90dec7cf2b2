//! Directory entries: parsing directory blocks (linear ones and the leaves of
//! hashed `dir_index` directories alike, whose index blocks parse as empty)
//! and inline directories, checking block checksum tails, and editing blocks
//! for the writer (insert, remove, fresh blocks).

use crate::checksum::crc32c_update;
use crate::superblock::{put_u16, put_u32};
use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;
use homeward_sdk::types::FileKind;

/// Size of the checksum tail (`struct ext4_dir_entry_tail`).
pub const TAIL_LEN: usize = 12;
const TAIL_FILE_TYPE: u8 = 0xde;

pub const FT_REG: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_SYMLINK: u8 = 7;

/// One live entry of a directory.
#[derive(Debug, Clone)]
pub struct Entry {
    pub ino: u32,
    pub name: Vec<u8>,
    pub file_type: u8,
}

impl Entry {
    /// The kind the entry's type byte gives (`None` without `filetype`).
    pub fn kind(&self) -> Option<FileKind> {
        match self.file_type {
            0 => None,
            FT_REG => Some(FileKind::Regular),
            FT_DIR => Some(FileKind::Directory),
            FT_SYMLINK => Some(FileKind::Symlink),
            _ => Some(FileKind::Other),
        }
    }

    pub fn is_dot(&self) -> bool {
        self.name == b"." || self.name == b".."
    }
}

/// Bytes an entry with a `name_len`-byte name takes.
pub fn entry_len(name_len: usize) -> usize {
    (8 + name_len).div_ceil(4) * 4
}

/// Where one directory block sits, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub dir_ino: u32,
    pub block: u64,
}

fn damaged(place: Place, what: String) -> Error {
    Error::invalid_input(format!(
        "ext4: directory inode {} block {}: {what} (damaged directory block)",
        place.dir_ino, place.block
    ))
}

/// A `rec_len` as stored: 64 KiB blocks store 65536 as 0 or 65535.
fn decode_rec_len(raw: u16, block_len: usize) -> usize {
    if block_len >= 65536 && (raw == 0 || raw == 65535) {
        65536
    } else {
        usize::from(raw)
    }
}

fn encode_rec_len(len: usize) -> u16 {
    if len >= 65536 { 65535 } else { len as u16 }
}

/// One raw record: offset, inode, rec_len, name length, type.
#[derive(Debug, Clone, Copy)]
struct Record {
    at: usize,
    ino: u32,
    rec_len: usize,
    name_len: usize,
    file_type: u8,
}

/// The records of `bytes[..limit]`, checked to tile it exactly.
fn records(bytes: &[u8], limit: usize, place: Place) -> Result<Vec<Record>, Error> {
    let r = ByteReader::new(bytes).named("ext4 directory entry");
    let mut out = Vec::new();
    let mut at = 0;
    while at < limit {
        let ino = r.le_u32_at(at)?;
        let rec_len = decode_rec_len(r.le_u16_at(at + 4)?, bytes.len());
        let name_len = usize::from(r.u8_at(at + 6)?);
        let file_type = r.u8_at(at + 7)?;
        if rec_len < 8
            || !rec_len.is_multiple_of(4)
            || at + rec_len > limit
            || 8 + name_len > rec_len
        {
            return Err(damaged(
                place,
                format!("entry at offset {at} has rec_len {rec_len} and name length {name_len}"),
            ));
        }
        out.push(Record {
            at,
            ino,
            rec_len,
            name_len,
            file_type,
        });
        at += rec_len;
    }
    Ok(out)
}

/// Whether `block` ends in a checksum tail.
pub fn has_tail(block: &[u8]) -> bool {
    let Some(start) = block.len().checked_sub(TAIL_LEN) else {
        return false;
    };
    let r = ByteReader::new(block);
    r.le_u32_at(start).ok() == Some(0)
        && r.le_u16_at(start + 4).ok() == Some(TAIL_LEN as u16)
        && r.u8_at(start + 6).ok() == Some(0)
        && r.u8_at(start + 7).ok() == Some(TAIL_FILE_TYPE)
}

/// The checksum a tailed block should carry.
fn tail_checksum(block: &[u8], seed: u32) -> u32 {
    let body = block.len().saturating_sub(TAIL_LEN);
    crc32c_update(seed, block.get(..body).unwrap_or_default())
}

/// Checks a tailed block's checksum (`seed`: the directory inode's).
pub fn verify_tail(block: &[u8], seed: u32, place: Place) -> Result<(), Error> {
    if !has_tail(block) {
        return Ok(());
    }
    let stored = ByteReader::new(block).le_u32_at(block.len() - 4)?;
    let computed = tail_checksum(block, seed);
    if stored != computed {
        return Err(damaged(
            place,
            format!("checksum 0x{stored:08x}, computed 0x{computed:08x}"),
        ));
    }
    Ok(())
}

/// Writes the tail (when `csum`) with the block's checksum.
pub fn seal(block: &mut [u8], csum: bool, seed: u32) {
    if !csum {
        return;
    }
    let start = block.len().saturating_sub(TAIL_LEN);
    put_u32(block, start, 0);
    put_u16(block, start + 4, TAIL_LEN as u16);
    if let Some(b) = block.get_mut(start + 6..start + 8) {
        b.copy_from_slice(&[0, TAIL_FILE_TYPE]);
    }
    let crc = tail_checksum(block, seed);
    put_u32(block, start + 8, crc);
}

/// The live entries of one directory block (or inline area), `.` and `..`
/// included. Without `filetype` the type byte is the high byte of the name length.
pub fn parse(bytes: &[u8], filetype: bool, place: Place) -> Result<Vec<Entry>, Error> {
    let mut out = Vec::new();
    for rec in records(bytes, bytes.len(), place)? {
        if rec.ino == 0 {
            continue;
        }
        let (name_len, file_type) = if filetype {
            (rec.name_len, rec.file_type)
        } else {
            (rec.name_len | usize::from(rec.file_type) << 8, 0)
        };
        let name = bytes
            .get(rec.at + 8..rec.at + 8 + name_len)
            .filter(|_| 8 + name_len <= rec.rec_len)
            .ok_or_else(|| damaged(place, format!("name of entry at {} overruns it", rec.at)))?;
        out.push(Entry {
            ino: rec.ino,
            name: name.to_vec(),
            file_type,
        });
    }
    Ok(out)
}

/// Usable bytes of a block: all but the checksum tail.
pub fn limit(block: &[u8], csum: bool) -> usize {
    if csum && has_tail(block) {
        block.len() - TAIL_LEN
    } else {
        block.len()
    }
}

/// Inserts an entry where a record has room; false when none has.
pub fn insert(block: &mut [u8], csum: bool, entry: &Entry, place: Place) -> Result<bool, Error> {
    let need = entry_len(entry.name.len());
    let end = limit(block, csum);
    for rec in records(block, end, place)? {
        let used = if rec.ino == 0 {
            0
        } else {
            entry_len(rec.name_len)
        };
        if rec.rec_len < used + need {
            continue;
        }
        let at = if used == 0 {
            rec.at
        } else {
            put_u16(block, rec.at + 4, encode_rec_len(used));
            rec.at + used
        };
        write_record(block, at, entry, rec.rec_len - used);
        return Ok(true);
    }
    Ok(false)
}

fn write_record(block: &mut [u8], at: usize, entry: &Entry, rec_len: usize) {
    put_u32(block, at, entry.ino);
    put_u16(block, at + 4, encode_rec_len(rec_len));
    let name_len = entry.name.len().min(255);
    if let Some(b) = block.get_mut(at + 6..at + 8) {
        b.copy_from_slice(&[name_len as u8, entry.file_type]);
    }
    if let Some(b) = block.get_mut(at + 8..at + 8 + name_len) {
        b.copy_from_slice(entry.name.get(..name_len).unwrap_or_default());
    }
    // Zero the rest of the record, so no stale name bytes linger.
    if let Some(b) = block.get_mut(at + 8 + name_len..at + rec_len) {
        b.fill(0);
    }
}

/// Removes the entry `name`: the record before it absorbs its space (or, as
/// the first of a block, it becomes an empty record). Returns its inode.
pub fn remove(
    block: &mut [u8],
    csum: bool,
    name: &[u8],
    place: Place,
) -> Result<Option<u32>, Error> {
    let end = limit(block, csum);
    let recs = records(block, end, place)?;
    for (i, rec) in recs.iter().enumerate() {
        if rec.ino == 0
            || rec.name_len != name.len()
            || block.get(rec.at + 8..rec.at + 8 + rec.name_len) != Some(name)
        {
            continue;
        }
        match i.checked_sub(1).and_then(|p| recs.get(p)) {
            Some(prev) => {
                put_u16(
                    block,
                    prev.at + 4,
                    encode_rec_len(prev.rec_len + rec.rec_len),
                );
                if let Some(b) = block.get_mut(rec.at..rec.at + rec.rec_len) {
                    b.fill(0);
                }
            }
            None => put_u32(block, rec.at, 0),
        }
        return Ok(Some(rec.ino));
    }
    Ok(None)
}

/// A fresh directory block holding `entries` (the last one takes the rest),
/// with a checksum tail when `csum`.
pub fn new_block(block_size: usize, entries: &[Entry], csum: bool, seed: u32) -> Vec<u8> {
    let mut block = vec![0u8; block_size];
    let end = if csum {
        block_size - TAIL_LEN
    } else {
        block_size
    };
    let mut at = 0;
    for (i, entry) in entries.iter().enumerate() {
        let len = if i + 1 == entries.len() {
            end - at
        } else {
            entry_len(entry.name.len())
        };
        write_record(&mut block, at, entry, len);
        at += len;
    }
    if entries.is_empty() {
        put_u16(&mut block, 4, encode_rec_len(end));
    }
    seal(&mut block, csum, seed);
    block
}

/// Whether `block` is an index block of a hashed directory seen as a linear
/// one: a single empty record spanning the whole block.
pub fn is_index_block(block: &[u8]) -> bool {
    let r = ByteReader::new(block);
    r.le_u32_at(0).ok() == Some(0)
        && r.le_u16_at(4).ok().map(|l| decode_rec_len(l, block.len())) == Some(block.len())
}
