//! The master target's durable checkpoint: which blocks of a target are on
//! stable storage, and their fast digests.
//!
//! It is an append-only log next to the target (`<target>.hwckpt`): a header
//! that identifies the sync (source, size, block size, mode, format), then one
//! record per durable block. A record is appended only after the target has
//! been flushed, and the log is `fdatasync`ed before the blocks are reported
//! durable, so **a checkpoint never claims a block that is not durable**. Every
//! record carries its own checksum: a record torn by a crash is ignored (its
//! block is simply sent again).

use super::digest::{FAST_LEN, Fast};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"HWCKPT01";
const RECORD_LEN: usize = 8 + FAST_LEN + 8;

/// What a checkpoint belongs to. A log with another identity is discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The source disk's identity.
    pub source_id: String,
    /// Source capacity.
    pub capacity: u64,
    /// Block size.
    pub block_size: u32,
    /// "full" or "delta".
    pub mode: String,
}

impl Identity {
    fn encode(&self) -> Vec<u8> {
        format!(
            "source={}\ncapacity={}\nblock-size={}\nmode={}\n",
            self.source_id, self.capacity, self.block_size, self.mode
        )
        .into_bytes()
    }
}

/// An open checkpoint log.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    file: File,
    durable: Vec<Option<Fast>>,
    durable_count: u64,
}

/// Where the checkpoint of `target` lives.
pub fn path_for(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".hwckpt");
    target.with_file_name(name)
}

impl Checkpoint {
    /// Opens the checkpoint of `target` for `identity`, keeping what an earlier
    /// attempt of the same sync recorded, or starting empty (always, with
    /// `fresh`: a target just created holds nothing an old log could describe).
    pub fn open(
        target: &Path,
        identity: &Identity,
        blocks: u64,
        fresh: bool,
    ) -> io::Result<Checkpoint> {
        let path = path_for(target);
        let blocks = usize::try_from(blocks).map_err(|_| io::Error::other("too many blocks"))?;
        let mut durable = vec![None; blocks];
        let mut durable_count = 0;
        let header = header_bytes(identity);
        let existing = match File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                Some(bytes)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let resumable = !fresh && existing.as_deref().is_some_and(|b| b.starts_with(&header));
        let file = if resumable {
            let bytes = existing.unwrap_or_default();
            let mut valid_end = header.len();
            for record in bytes[header.len()..].chunks_exact(RECORD_LEN) {
                let Some((block, leaf)) = decode_record(record) else {
                    break;
                };
                if let Some(slot) = usize::try_from(block).ok().and_then(|b| durable.get_mut(b)) {
                    if slot.is_none() {
                        durable_count += 1;
                    }
                    *slot = Some(leaf);
                }
                valid_end += RECORD_LEN;
            }
            let file = OpenOptions::new().write(true).open(&path)?;
            // Drop a torn tail so new records follow the last whole one.
            file.set_len(valid_end as u64)?;
            file.sync_data()?;
            file
        } else {
            let tmp = path.with_extension("hwckpt.tmp");
            let mut file = File::create(&tmp)?;
            file.write_all(&header)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&path)?;
            OpenOptions::new().write(true).open(&path)?
        };
        Ok(Checkpoint {
            path,
            file,
            durable,
            durable_count,
        })
    }

    /// Records blocks as durable. Call only after the target has been flushed.
    pub fn record(&mut self, entries: &[(u64, Fast)]) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * RECORD_LEN);
        for (block, leaf) in entries {
            buf.extend_from_slice(&encode_record(*block, leaf));
        }
        // Appending at the end: the file is opened for writing at the end of
        // the valid records (set_len above, or a fresh header).
        use std::io::Seek;
        self.file.seek(io::SeekFrom::End(0))?;
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        for (block, leaf) in entries {
            if let Some(slot) = usize::try_from(*block)
                .ok()
                .and_then(|b| self.durable.get_mut(b))
            {
                if slot.is_none() {
                    self.durable_count += 1;
                }
                *slot = Some(*leaf);
            }
        }
        Ok(())
    }

    /// The fast digest of a durable block.
    pub fn leaf(&self, block: u64) -> Option<Fast> {
        usize::try_from(block)
            .ok()
            .and_then(|b| self.durable.get(b).copied().flatten())
    }

    /// How many blocks are durable.
    pub fn durable_count(&self) -> u64 {
        self.durable_count
    }

    /// One bit per block, least significant bit first.
    pub fn bitmap(&self) -> Vec<u8> {
        let mut bits = vec![0u8; self.durable.len().div_ceil(8)];
        for (i, slot) in self.durable.iter().enumerate() {
            if slot.is_some() {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        bits
    }

    /// Removes the log once the sync is complete.
    pub fn remove(self) -> io::Result<()> {
        std::fs::remove_file(&self.path)?;
        sync_dir(&self.path)
    }
}

/// Whether bit `block` is set in a bitmap from [`Checkpoint::bitmap`].
pub fn bit(bitmap: &[u8], block: u64) -> bool {
    usize::try_from(block / 8)
        .ok()
        .and_then(|i| bitmap.get(i))
        .is_some_and(|byte| byte & (1 << (block % 8)) != 0)
}

fn header_bytes(identity: &Identity) -> Vec<u8> {
    let body = identity.encode();
    let mut out = Vec::with_capacity(8 + 4 + body.len() + 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&body).to_le_bytes());
    out
}

fn encode_record(block: u64, leaf: &Fast) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..8].copy_from_slice(&block.to_le_bytes());
    r[8..8 + FAST_LEN].copy_from_slice(leaf);
    let sum = xxhash_rust::xxh3::xxh3_64(&r[..8 + FAST_LEN]);
    r[8 + FAST_LEN..].copy_from_slice(&sum.to_le_bytes());
    r
}

fn decode_record(r: &[u8]) -> Option<(u64, Fast)> {
    let sum = u64::from_le_bytes(r.get(8 + FAST_LEN..RECORD_LEN)?.try_into().ok()?);
    if xxhash_rust::xxh3::xxh3_64(r.get(..8 + FAST_LEN)?) != sum {
        return None;
    }
    let block = u64::from_le_bytes(r.get(..8)?.try_into().ok()?);
    let leaf: Fast = r.get(8..8 + FAST_LEN)?.try_into().ok()?;
    Some((block, leaf))
}

/// Makes a rename or removal in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}
