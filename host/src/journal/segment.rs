//! Undo segments: the files that hold before-images.
//!
//! A segment is written by one point (a *live* segment: the before-images of
//! the extents that point overwrote) or by compaction (a *compacted* segment:
//! the live part of a merged undo set). Layout, integers little-endian:
//!
//! ```text
//! header   "HWUNDO01" | kind u32 | 0 u32 | seq u64 | capacity u64 | xxh3-64 of the 32 bytes before
//! record   "HWUR" | len u32 | disk offset u64 | len bytes of before-image | xxh3-64 of all before   (repeated)
//! index    "HWUINDEX" | count u64 | count × (disk offset u64, len u32, record position u64) | xxh3-64
//! trailer  index position u64 | "HWUSEAL1" | xxh3-64 of the 16 bytes before              (last 24 bytes)
//! ```
//!
//! The index and trailer (the *seal*) are written when the point commits, so
//! opening a committed segment reads only its tail; the records are verified
//! when they are read. An unsealed segment is the point a crash interrupted:
//! its records are found by scanning, and a torn last record is ignored (its
//! replica write never happened: records are synced before the replica is
//! written). Records of one segment never overlap on the disk.

use super::error::JournalError;
use super::frame::{self, checksum, u32_at, u64_at};
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HWUNDO01";
/// Length of the header.
pub(crate) const HEADER_LEN: u64 = 40;
const RECORD_MAGIC: &[u8; 4] = b"HWUR";
const RECORD_HEAD: usize = 16;
const RECORD_TAIL: usize = 8;
/// Largest before-image in one record; longer extents take several records,
/// so a reader never verifies more than this to serve a small read.
pub(crate) const MAX_RECORD: usize = 1 << 20;
const INDEX_MAGIC: &[u8; 8] = b"HWUINDEX";
const ENTRY_LEN: usize = 20;
const SEAL_MAGIC: &[u8; 8] = b"HWUSEAL1";
const TRAILER_LEN: u64 = 24;

/// Who wrote a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A point being written: if it never committed, recovery applies it.
    Live,
    /// Compaction: only ever used once the log names it.
    Compacted,
}

/// A segment's header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    /// The point whose writing (or compaction) made the segment.
    pub(crate) seq: u64,
    pub(crate) capacity: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut h = [0u8; HEADER_LEN as usize];
        h[..8].copy_from_slice(MAGIC);
        let kind: u32 = match self.kind {
            Kind::Live => 1,
            Kind::Compacted => 2,
        };
        h[8..12].copy_from_slice(&kind.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.capacity.to_le_bytes());
        let sum = checksum(&[&h[..32]]);
        h[32..].copy_from_slice(&sum.to_le_bytes());
        h
    }

    fn decode(h: &[u8]) -> Option<Header> {
        if h.get(..8)? != MAGIC || checksum(&[h.get(..32)?]) != u64_at(h, 32)? {
            return None;
        }
        let kind = match u32_at(h, 8)? {
            1 => Kind::Live,
            2 => Kind::Compacted,
            _ => return None,
        };
        Some(Header {
            kind,
            seq: u64_at(h, 16)?,
            capacity: u64_at(h, 24)?,
        })
    }
}

/// One before-image: `len` bytes of the disk at `offset`, stored in the
/// record at file position `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) pos: u64,
}

impl Entry {
    /// The disk bytes the entry holds.
    pub(crate) fn range(&self) -> Range<u64> {
        self.offset..self.offset + u64::from(self.len)
    }

    fn record_len(&self) -> u64 {
        (RECORD_HEAD + RECORD_TAIL) as u64 + u64::from(self.len)
    }
}

/// The file name of segment `id`.
pub(crate) fn file_name(id: u64) -> String {
    format!("seg-{id:016}.undo")
}

/// The id in a segment file name, if `name` is one.
pub(crate) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".undo")?;
    if digits.len() < 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A sealed segment, read-only.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) header: Header,
    pub(crate) index: Vec<Entry>,
    /// Size of the file.
    pub(crate) len: u64,
}

impl Segment {
    /// Opens the sealed segment `id` in `dir`, checking its header and index.
    pub(crate) fn open(dir: &Path, id: u64) -> Result<Segment, JournalError> {
        let path = dir.join(file_name(id));
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::damaged(
                    &path,
                    "the points log names this undo segment but the file is missing",
                ));
            }
            Err(e) => return Err(JournalError::io(&path, "open the undo segment", e)),
        };
        let len = file
            .metadata()
            .map_err(|e| JournalError::io(&path, "read the size of the undo segment", e))?
            .len();
        let header = read_header(&file, &path, len)?.ok_or_else(|| {
            JournalError::damaged(&path, "the segment header is missing or fails its checksum")
        })?;
        let index = read_seal(&file, &path, len, &header)?.ok_or_else(|| {
            JournalError::damaged(
                &path,
                "the segment has no valid index at its end (it was committed sealed)",
            )
        })?;
        Ok(Segment {
            id,
            path,
            file,
            header,
            index,
            len,
        })
    }

    /// The before-image of `entry`, its checksum verified.
    pub(crate) fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        read_record(&self.file, &self.path, entry)
    }

    /// Bytes of before-images the segment holds (overlaps with other
    /// segments of the same undo set included).
    pub(crate) fn data_bytes(&self) -> u64 {
        self.index.iter().map(|e| u64::from(e.len)).sum()
    }
}

fn read_record(file: &File, path: &Path, entry: &Entry) -> Result<Vec<u8>, JournalError> {
    let len = entry.len as usize;
    let mut record = vec![0u8; RECORD_HEAD + len + RECORD_TAIL];
    file.read_exact_at(&mut record, entry.pos)
        .map_err(|e| JournalError::io(path, "read an undo record", e))?;
    let good = decode_record(&record)
        .is_some_and(|(offset, data_len)| offset == entry.offset && data_len == entry.len);
    if !good {
        return Err(JournalError::damaged(
            path,
            format!(
                "the undo record at byte {} (disk bytes {}..{}) fails its checksum",
                entry.pos,
                entry.offset,
                entry.offset + u64::from(entry.len)
            ),
        ));
    }
    record.truncate(RECORD_HEAD + len);
    record.drain(..RECORD_HEAD);
    Ok(record)
}

/// `(disk offset, len)` of a whole, valid record.
fn decode_record(record: &[u8]) -> Option<(u64, u32)> {
    if record.get(..4)? != RECORD_MAGIC {
        return None;
    }
    let len = u32_at(record, 4)?;
    let offset = u64_at(record, 8)?;
    let body_end = RECORD_HEAD.checked_add(len as usize)?;
    let sum = u64_at(record, body_end)?;
    (record.len() == body_end + RECORD_TAIL && checksum(&[&record[..body_end]]) == sum)
        .then_some((offset, len))
}

/// The header of the segment at `path`, or `None` when it is torn.
pub(crate) fn header_of(path: &Path) -> Result<Option<Header>, JournalError> {
    let file = File::open(path).map_err(|e| JournalError::io(path, "open the undo segment", e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io(path, "read the size of the undo segment", e))?
        .len();
    read_header(&file, path, len)
}

/// The header, or `None` when it is torn (shorter than a header, or failing
/// its checksum).
pub(crate) fn read_header(
    file: &File,
    path: &Path,
    len: u64,
) -> Result<Option<Header>, JournalError> {
    if len < HEADER_LEN {
        return Ok(None);
    }
    let mut h = [0u8; HEADER_LEN as usize];
    file.read_exact_at(&mut h, 0)
        .map_err(|e| JournalError::io(path, "read the segment header", e))?;
    Ok(Header::decode(&h))
}

/// The index of a sealed segment, checked; `None` when there is no valid
/// seal at the end; an error when the seal is there but names records that
/// cannot be.
fn read_seal(
    file: &File,
    path: &Path,
    len: u64,
    header: &Header,
) -> Result<Option<Vec<Entry>>, JournalError> {
    if len < HEADER_LEN + TRAILER_LEN {
        return Ok(None);
    }
    let mut t = [0u8; TRAILER_LEN as usize];
    file.read_exact_at(&mut t, len - TRAILER_LEN)
        .map_err(|e| JournalError::io(path, "read the segment trailer", e))?;
    let valid_trailer = &t[8..16] == SEAL_MAGIC && u64_at(&t, 16) == Some(checksum(&[&t[..16]]));
    let index_pos = u64_at(&t, 0).unwrap_or(0);
    if !valid_trailer || index_pos < HEADER_LEN || index_pos > len - TRAILER_LEN {
        return Ok(None);
    }
    let index_len = usize::try_from(len - TRAILER_LEN - index_pos)
        .map_err(|_| JournalError::damaged(path, "the segment index is impossibly large"))?;
    let mut index = vec![0u8; index_len];
    file.read_exact_at(&mut index, index_pos)
        .map_err(|e| JournalError::io(path, "read the segment index", e))?;
    let entries = decode_index(&index)
        .ok_or_else(|| JournalError::damaged(path, "the segment index fails its checksum"))?;
    check_entries(&entries, index_pos, header.capacity)
        .map_err(|what| JournalError::damaged(path, what))?;
    Ok(Some(entries))
}

fn decode_index(index: &[u8]) -> Option<Vec<Entry>> {
    if index.get(..8)? != INDEX_MAGIC {
        return None;
    }
    let count = usize::try_from(u64_at(index, 8)?).ok()?;
    let body_end = count.checked_mul(ENTRY_LEN)?.checked_add(16)?;
    if index.len() != body_end.checked_add(8)?
        || checksum(&[&index[..body_end]]) != u64_at(index, body_end)?
    {
        return None;
    }
    (0..count)
        .map(|i| {
            let at = 16 + i * ENTRY_LEN;
            Some(Entry {
                offset: u64_at(index, at)?,
                len: u32_at(index, at + 8)?,
                pos: u64_at(index, at + 12)?,
            })
        })
        .collect()
}

/// Index entries must name records inside the data area, in file order,
/// each inside the disk, and no two overlapping on the disk.
fn check_entries(entries: &[Entry], data_end: u64, capacity: u64) -> Result<(), String> {
    let mut next_pos = HEADER_LEN;
    for e in entries {
        if e.len == 0 || e.len as usize > MAX_RECORD {
            return Err(format!("the index names a record of {} bytes", e.len));
        }
        if e.pos < next_pos
            || e.pos
                .checked_add(e.record_len())
                .is_none_or(|end| end > data_end)
        {
            return Err(format!(
                "the index names a record at byte {} that cannot be there",
                e.pos
            ));
        }
        if e.offset
            .checked_add(u64::from(e.len))
            .is_none_or(|end| end > capacity)
        {
            return Err(format!(
                "the index names disk bytes from {} past the end of the {capacity}-byte disk",
                e.offset
            ));
        }
        next_pos = e.pos + e.record_len();
    }
    let mut ranges: Vec<Range<u64>> = entries.iter().map(Entry::range).collect();
    ranges.sort_by_key(|r| r.start);
    if ranges.windows(2).any(|w| w[0].end > w[1].start) {
        return Err("two records of the segment hold the same disk bytes".to_string());
    }
    Ok(())
}

/// An unsealed (or sealed) segment as a crash left it: its valid records.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) header: Header,
    pub(crate) index: Vec<Entry>,
    /// Bytes after the last whole record (a torn append).
    pub(crate) torn_bytes: u64,
}

impl Scanned {
    /// The before-image of `entry`, verified.
    pub(crate) fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        read_record(&self.file, &self.path, entry)
    }
}

/// Reads a segment no log record names. `None` when even its header is
/// torn: then nothing was written to the replica for it (the header is
/// synced, with the directory entry, before the first replica write).
pub(crate) fn scan(path: &Path) -> Result<Option<Scanned>, JournalError> {
    let file = File::open(path).map_err(|e| JournalError::io(path, "open the undo segment", e))?;
    let len = file
        .metadata()
        .map_err(|e| JournalError::io(path, "read the size of the undo segment", e))?
        .len();
    let Some(header) = read_header(&file, path, len)? else {
        return Ok(None);
    };
    // A segment sealed just before the crash (its commit record never
    // made it) has an index: use it.
    if let Some(index) = read_seal(&file, path, len, &header)? {
        // Recovery applies these records; verify them all first, so a
        // damaged one refuses the open before the replica is touched.
        for entry in &index {
            read_record(&file, path, entry)?;
        }
        return Ok(Some(Scanned {
            path: path.to_path_buf(),
            file,
            header,
            index,
            torn_bytes: 0,
        }));
    }
    let mut index = Vec::new();
    let mut pos = HEADER_LEN;
    let mut head = [0u8; RECORD_HEAD];
    while pos < len {
        let entry = record_at(&file, path, pos, len, header.capacity, &mut head)?;
        match entry {
            Some(entry) => {
                pos += entry.record_len();
                index.push(entry);
            }
            None => {
                let later = frame::next_record(&file, pos, len, RECORD_MAGIC, |p| {
                    record_at(
                        &file,
                        path,
                        p,
                        len,
                        header.capacity,
                        &mut [0u8; RECORD_HEAD],
                    )
                    .ok()
                    .flatten()
                    .is_some()
                })
                .map_err(|e| JournalError::io(path, "scan the undo segment", e))?;
                if let Some(later) = later {
                    return Err(JournalError::damaged(
                        path,
                        format!(
                            "the undo record at byte {pos} is damaged but a whole record follows at byte {later}; the point it belongs to cannot be undone exactly"
                        ),
                    ));
                }
                break;
            }
        }
    }
    let valid_end = index.last().map_or(HEADER_LEN, |e| e.pos + e.record_len());
    check_entries(&index, valid_end, header.capacity)
        .map_err(|what| JournalError::damaged(path, what))?;
    Ok(Some(Scanned {
        path: path.to_path_buf(),
        file,
        header,
        index,
        torn_bytes: len - valid_end,
    }))
}

/// The whole, valid record at `pos`, or `None`.
fn record_at(
    file: &File,
    path: &Path,
    pos: u64,
    file_len: u64,
    capacity: u64,
    head: &mut [u8; RECORD_HEAD],
) -> Result<Option<Entry>, JournalError> {
    if file_len.saturating_sub(pos) < (RECORD_HEAD + RECORD_TAIL) as u64 {
        return Ok(None);
    }
    file.read_exact_at(head, pos)
        .map_err(|e| JournalError::io(path, "scan the undo segment", e))?;
    if &head[..4] != RECORD_MAGIC {
        return Ok(None);
    }
    let (Some(len), Some(offset)) = (u32_at(head, 4), u64_at(head, 8)) else {
        return Ok(None);
    };
    let entry = Entry { offset, len, pos };
    let fits = len > 0
        && len as usize <= MAX_RECORD
        && offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= capacity)
        && pos
            .checked_add(entry.record_len())
            .is_some_and(|end| end <= file_len);
    if !fits {
        return Ok(None);
    }
    let mut record = vec![0u8; entry.record_len() as usize];
    file.read_exact_at(&mut record, pos)
        .map_err(|e| JournalError::io(path, "scan the undo segment", e))?;
    Ok(decode_record(&record).map(|_| entry))
}

/// A segment being written.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    pub(crate) id: u64,
    pub(crate) path: PathBuf,
    file: File,
    header: Header,
    /// End of what is on the file (synced or not is `synced_to`'s business).
    written: u64,
    /// Records appended but not yet written to the file.
    buf: Vec<u8>,
    index: Vec<Entry>,
    /// How many entries of `index` are durable.
    durable: usize,
    /// Whether a sync has covered the header.
    header_durable: bool,
}

impl SegmentWriter {
    /// Creates segment `id` in `dir` and makes its directory entry durable,
    /// so recovery finds it once the replica is written. The header itself
    /// reaches the disk with the first [`sync`](Self::sync), which comes
    /// before any replica write; a header lost to a crash before then means
    /// the point never touched the replica.
    pub(crate) fn create(
        dir: &Path,
        id: u64,
        header: Header,
    ) -> Result<SegmentWriter, JournalError> {
        let path = dir.join(file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| JournalError::io(&path, "create the undo segment", e))?;
        file.write_all_at(&header.encode(), 0)
            .map_err(|e| JournalError::io(&path, "write the segment header", e))?;
        frame::sync_dir(dir).map_err(|e| JournalError::io(dir, "sync the journal directory", e))?;
        Ok(SegmentWriter {
            id,
            path,
            file,
            header,
            written: HEADER_LEN,
            buf: Vec::new(),
            index: Vec::new(),
            durable: 0,
            header_durable: false,
        })
    }

    /// Appends the before-image `data` of disk bytes from `offset`, in
    /// records of at most [`MAX_RECORD`] bytes. Buffered until [`sync`](Self::sync).
    pub(crate) fn append(&mut self, offset: u64, data: &[u8]) {
        let mut offset = offset;
        for chunk in data.chunks(MAX_RECORD) {
            let pos = self.written + self.buf.len() as u64;
            let start = self.buf.len();
            self.buf.extend_from_slice(RECORD_MAGIC);
            self.buf
                .extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&offset.to_le_bytes());
            self.buf.extend_from_slice(chunk);
            let sum = checksum(&[&self.buf[start..]]);
            self.buf.extend_from_slice(&sum.to_le_bytes());
            self.index.push(Entry {
                offset,
                len: chunk.len() as u32,
                pos,
            });
            offset += chunk.len() as u64;
        }
    }

    /// Writes what was appended and makes it durable (`fdatasync`).
    pub(crate) fn sync(&mut self) -> Result<(), JournalError> {
        if self.durable == self.index.len() && self.buf.is_empty() && self.header_durable {
            return Ok(());
        }
        self.file
            .write_all_at(&self.buf, self.written)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| JournalError::io(&self.path, "append undo records", e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        self.durable = self.index.len();
        self.header_durable = true;
        Ok(())
    }

    /// The entries whose records are durable.
    pub(crate) fn durable_entries(&self) -> &[Entry] {
        &self.index[..self.durable]
    }

    /// The before-image of a durable entry, verified.
    pub(crate) fn read(&self, entry: &Entry) -> Result<Vec<u8>, JournalError> {
        read_record(&self.file, &self.path, entry)
    }

    /// Syncs the records, appends the index and trailer, syncs again, and
    /// hands the segment over for reading.
    pub(crate) fn seal(mut self) -> Result<Segment, JournalError> {
        self.sync()?;
        let index_pos = self.written;
        let mut seal =
            Vec::with_capacity(16 + self.index.len() * ENTRY_LEN + 8 + TRAILER_LEN as usize);
        seal.extend_from_slice(INDEX_MAGIC);
        seal.extend_from_slice(&(self.index.len() as u64).to_le_bytes());
        for e in &self.index {
            seal.extend_from_slice(&e.offset.to_le_bytes());
            seal.extend_from_slice(&e.len.to_le_bytes());
            seal.extend_from_slice(&e.pos.to_le_bytes());
        }
        let sum = checksum(&[&seal]);
        seal.extend_from_slice(&sum.to_le_bytes());
        let trailer_at = seal.len();
        seal.extend_from_slice(&index_pos.to_le_bytes());
        seal.extend_from_slice(SEAL_MAGIC);
        let sum = checksum(&[&seal[trailer_at..]]);
        seal.extend_from_slice(&sum.to_le_bytes());
        self.file
            .write_all_at(&seal, index_pos)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| JournalError::io(&self.path, "write the segment index", e))?;
        Ok(Segment {
            id: self.id,
            len: index_pos + seal.len() as u64,
            path: self.path,
            file: self.file,
            header: self.header,
            index: self.index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            kind: Kind::Live,
            seq: 7,
            capacity: 8 << 20,
        }
    }

    #[test]
    fn a_sealed_segment_reads_back_and_an_unsealed_one_scans() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1, header()).unwrap();
        let big = vec![7u8; MAX_RECORD + 10];
        w.append(0, &big);
        w.append(4 << 20, b"hello");
        w.sync().unwrap();
        let scanned = scan(&w.path).unwrap().unwrap();
        assert_eq!(scanned.index.len(), 3);
        assert_eq!(scanned.torn_bytes, 0);
        let sealed = w.seal().unwrap();
        let opened = Segment::open(dir.path(), 1).unwrap();
        assert_eq!(opened.index, sealed.index);
        assert_eq!(opened.read(&opened.index[2]).unwrap(), b"hello");
        assert_eq!(opened.data_bytes(), big.len() as u64 + 5);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_a_damaged_middle_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 2, header()).unwrap();
        w.append(0, &[1u8; 4096]);
        w.append(8192, &[2u8; 4096]);
        w.sync().unwrap();
        let path = w.path.clone();
        drop(w);
        let full = std::fs::read(&path).unwrap();
        // Torn: the second record cut short.
        std::fs::write(&path, &full[..full.len() - 100]).unwrap();
        let s = scan(&path).unwrap().unwrap();
        assert_eq!(s.index.len(), 1);
        assert!(s.torn_bytes > 0);
        // Damaged: a byte of the first record flipped, the second intact.
        let mut bad = full.clone();
        bad[HEADER_LEN as usize + 100] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let err = scan(&path).unwrap_err().to_string();
        assert!(err.contains("is damaged"), "{err}");
    }
}
