//! Directory items: arrays of entry heads (`reiserfs_de_head`) with the names
//! packed from the end of the item, and the hash that orders them.
//!
//! An entry's "offset" is its 31-bit sort key: bits 7..30 are the name's hash,
//! bits 0..6 a generation number that tells apart names with the same hash.
//! "." and ".." have offsets 1 and 2. A directory's entries may spread over
//! several items, each keyed by the offset of its first entry.

use homeward_sdk::Error;
use homeward_sdk::bytes::ByteReader;

/// Bytes of an entry head.
pub const DEH_SIZE: usize = 16;
/// `deh_state` of a live entry (the "visible" bit).
pub const STATE_VISIBLE: u16 = 1 << 2;
/// Offset of ".".
pub const DOT_OFFSET: u32 = 1;
/// Offset of "..".
pub const DOT_DOT_OFFSET: u32 = 2;
/// Generation numbers per hash value.
pub const MAX_GENERATION: u32 = 127;
/// The longest name Linux accepts.
pub const MAX_NAME_LEN: usize = 255;

/// One directory entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Hash and generation.
    pub offset: u32,
    /// Key of the named object: its directory id.
    pub dir_id: u32,
    /// Key of the named object: its object id.
    pub objectid: u32,
    /// `deh_state`.
    pub state: u16,
    /// The name, without padding.
    pub name: Vec<u8>,
    /// Bytes the name takes in the item (3.6 pads names to 8 bytes).
    pub slot: usize,
}

impl Entry {
    /// A new visible entry, its name padded the 3.6 way.
    pub fn new(offset: u32, dir_id: u32, objectid: u32, name: &[u8]) -> Entry {
        Entry {
            offset,
            dir_id,
            objectid,
            state: STATE_VISIBLE,
            name: name.to_vec(),
            slot: name.len().div_ceil(8) * 8,
        }
    }

    /// Bytes the entry adds to its item (and to the directory's size).
    pub fn bytes(&self) -> usize {
        DEH_SIZE + self.slot
    }

    /// Whether readers should see it.
    pub fn visible(&self) -> bool {
        self.state & STATE_VISIBLE != 0
    }
}

/// Decodes the `count` entries of a directory item body.
pub fn parse_item(body: &[u8], count: u16, what: &str) -> Result<Vec<Entry>, Error> {
    let count = usize::from(count);
    let r = ByteReader::new(body).named("reiserfs directory entry head");
    if count == 0 || count * DEH_SIZE > body.len() {
        return Err(Error::invalid_input(format!(
            "reiserfs: {what}: directory item of {} bytes claims {count} entries (damaged directory item)",
            body.len()
        )));
    }
    let heads_end = count * DEH_SIZE;
    let mut entries: Vec<Entry> = Vec::with_capacity(count);
    let mut end = body.len();
    for i in 0..count {
        let at = i * DEH_SIZE;
        let offset = r.le_u32_at(at)?;
        let location = usize::from(r.le_u16_at(at + 12)?);
        if location < heads_end || location > end {
            return Err(Error::invalid_input(format!(
                "reiserfs: {what}: entry {i} name at {location} is outside {heads_end}..{end} (damaged directory item)"
            )));
        }
        if entries.last().is_some_and(|prev| prev.offset >= offset) {
            return Err(Error::invalid_input(format!(
                "reiserfs: {what}: entry {i} offset {offset:#x} is out of order (damaged directory item)"
            )));
        }
        let raw = r.slice_at(location, end - location)?;
        let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        entries.push(Entry {
            offset,
            dir_id: r.le_u32_at(at + 4)?,
            objectid: r.le_u32_at(at + 8)?,
            state: r.le_u16_at(at + 14)?,
            name: raw.get(..len).unwrap_or_default().to_vec(),
            slot: raw.len(),
        });
        end = location;
    }
    Ok(entries)
}

/// Encodes entries (sorted by offset) as a directory item body.
pub fn encode_item(entries: &[Entry]) -> Vec<u8> {
    let total: usize = entries.iter().map(Entry::bytes).sum();
    let mut out = vec![0u8; total];
    let mut location = total;
    for (i, e) in entries.iter().enumerate() {
        location -= e.slot;
        let at = i * DEH_SIZE;
        out[at..at + 4].copy_from_slice(&e.offset.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&e.dir_id.to_le_bytes());
        out[at + 8..at + 12].copy_from_slice(&e.objectid.to_le_bytes());
        out[at + 12..at + 14].copy_from_slice(&(location as u16).to_le_bytes());
        out[at + 14..at + 16].copy_from_slice(&e.state.to_le_bytes());
        let n = e.name.len().min(e.slot);
        out[location..location + n].copy_from_slice(&e.name[..n]);
    }
    out
}

/// The r5 hash (the default), over the name's bytes taken as signed chars
/// like the kernel's `r5_hash`.
pub fn r5(name: &[u8]) -> u32 {
    let mut a: u32 = 0;
    for &b in name {
        let c = i32::from(b as i8);
        a = a.wrapping_add((c << 4) as u32);
        a = a.wrapping_add((c >> 4) as u32);
        a = a.wrapping_mul(11);
    }
    a
}

/// The hash part (bits 7..30) of a name's entry offset; 0 is moved to 128 so
/// no name sorts before "." and "..".
pub fn hash_value(name: &[u8]) -> u32 {
    match r5(name) & 0x7fff_ff80 {
        0 => 128,
        v => v,
    }
}
