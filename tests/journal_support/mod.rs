//! What the journal tests share: deterministic change sets (so a point's
//! expected content can be regenerated in another process), replica images,
//! reading a whole device, and checking a point byte for byte.
//!
//! Included with `mod journal_support;` by `tests/journal_*.rs`.

#![allow(dead_code)]

use homeward::disk::{BlockDevice, ImageFormat};
use homeward::journal::{Journal, NewPointMeta, PointMeta};
use std::path::Path;
use std::sync::Arc;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 60 * MINUTE_MS;

/// splitmix64: small, fast, and the same in every process.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// How a cycle changes the disk.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub seed: u64,
    pub capacity: u64,
    /// Extents per cycle.
    pub extents: usize,
    /// Longest extent.
    pub max_len: u64,
    /// Offsets and lengths are multiples of this (1 for any byte).
    pub align: u64,
    /// Share of extents (out of 100) that land in the first `hot` bytes,
    /// so points overwrite each other's bytes.
    pub hot_percent: u64,
    pub hot: u64,
}

impl Workload {
    /// The extents cycle `seq` writes: a function of the seed and `seq`
    /// only. Extents of one cycle may overlap.
    pub fn changes(&self, seq: u64) -> Vec<(u64, Vec<u8>)> {
        let mut rng = Rng::new(self.seed.wrapping_mul(1_000_003).wrapping_add(seq));
        (0..self.extents)
            .map(|_| {
                let units = (self.max_len / self.align).max(1);
                let len = (rng.below(units) + 1) * self.align;
                let area = if rng.below(100) < self.hot_percent {
                    self.hot
                } else {
                    self.capacity
                };
                let len = len.min(area);
                let slots = (area - len) / self.align + 1;
                let offset = rng.below(slots) * self.align;
                let mut data = vec![0u8; len as usize];
                if rng.below(4) == 0 {
                    // Some zero runs and repeats, as real disks have.
                    data.fill(rng.below(3) as u8);
                } else {
                    rng.fill(&mut data);
                }
                (offset, data)
            })
            .collect()
    }
}

/// Applies extents to an in-memory image, in order.
pub fn apply(image: &mut [u8], changes: &[(u64, Vec<u8>)]) {
    for (offset, data) in changes {
        let at = *offset as usize;
        image[at..at + data.len()].copy_from_slice(data);
    }
}

/// A new, sparse raw image of `capacity` bytes at `path`.
pub fn create_image(path: &Path, capacity: u64) -> Arc<dyn BlockDevice> {
    Arc::from(homeward::disk::create(path, ImageFormat::Raw, capacity).unwrap())
}

/// The raw image at `path`, writable.
pub fn open_image(path: &Path) -> Arc<dyn BlockDevice> {
    Arc::from(homeward::disk::open(path, true, Some(ImageFormat::Raw)).unwrap())
}

/// Every byte of `device`.
pub fn read_all(device: &dyn BlockDevice) -> Vec<u8> {
    let mut out = vec![0u8; device.capacity() as usize];
    for (i, chunk) in out.chunks_mut(MIB as usize).enumerate() {
        device.read_at(chunk, i as u64 * MIB).unwrap();
    }
    out
}

/// The data path's whole-disk digest of `bytes`, computed here from its
/// definition: BLAKE3 over the xxh3-128 of every 1 MiB block, hex.
pub fn digest(bytes: &[u8]) -> String {
    let leaves = bytes.chunks(MIB as usize).map(homeward::sync::digest::fast);
    hex::encode(homeward::sync::digest::whole_disk(leaves))
}

/// Writes `changes` as the next point, taken at `taken_at`.
pub fn write_point(
    journal: &mut Journal,
    changes: &[(u64, Vec<u8>)],
    taken_at: u64,
) -> homeward::journal::Committed {
    let mut writer = journal.begin().unwrap();
    for (offset, data) in changes {
        writer.write(*offset, data).unwrap();
    }
    let committed = writer
        .commit(NewPointMeta {
            taken_at,
            label: format!("cycle at {taken_at}"),
            ..NewPointMeta::default()
        })
        .unwrap();
    assert!(
        committed.retention_error.is_none(),
        "{:?}",
        committed.retention_error
    );
    committed
}

/// The point `seq`'s view equals `expected` byte for byte, and its recorded
/// digest is the digest of `expected`.
pub fn assert_point(journal: &Journal, seq: u64, expected: &[u8]) {
    let view = journal.view(seq).unwrap();
    let got = read_all(&view);
    if let Some(at) = got.iter().zip(expected).position(|(a, b)| a != b) {
        panic!(
            "point {seq} differs from the source copy saved at it, first at byte {at} (retained: {:?})",
            seqs(journal.points())
        );
    }
    let meta = journal.points().iter().find(|p| p.seq == seq).unwrap();
    assert_eq!(meta.digest, digest(&got), "digest recorded for point {seq}");
}

pub fn seqs(points: &[PointMeta]) -> Vec<u64> {
    points.iter().map(|p| p.seq).collect()
}
