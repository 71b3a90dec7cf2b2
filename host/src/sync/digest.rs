//! Block digests.
//!
//! - The **fast digest** (xxh3-128, ~28 GB/s here) compares blocks: delta sync
//!   hashes both disks with it, and it is the leaf of the whole-disk digest.
//! - The **strong digest** (BLAKE3, ~7.7 GB/s single-threaded here) travels with
//!   every block sent; the master target verifies it before writing, so no
//!   unverified byte reaches a disk.
//! - The **whole-disk digest** is BLAKE3 over the fast digests of every block, in
//!   order. Each side computes it from its own bytes; they must agree.

/// Length of a fast digest.
pub const FAST_LEN: usize = 16;

/// A fast digest.
pub type Fast = [u8; FAST_LEN];

/// The fast digest of a block.
pub fn fast(block: &[u8]) -> Fast {
    xxhash_rust::xxh3::xxh3_128(block).to_le_bytes()
}

/// The strong digest of a block.
pub fn strong(block: &[u8]) -> [u8; 32] {
    blake3::hash(block).into()
}

/// Whether every byte of `block` is zero.
pub fn is_zero(block: &[u8]) -> bool {
    // Word-at-a-time: the prefix and suffix are the unaligned bytes.
    // SAFETY: u128 has no invalid bit patterns.
    let (head, words, tail) = unsafe { block.align_to::<u128>() };
    head.iter().all(|&b| b == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&b| b == 0)
}

/// The whole-disk digest over per-block fast digests, in block order.
pub fn whole_disk(leaves: impl IntoIterator<Item = Fast>) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for leaf in leaves {
        hasher.update(&leaf);
    }
    hasher.finalize().into()
}

/// Fast digests of all-zero blocks, by length, so holes are never hashed.
#[derive(Debug, Clone)]
pub struct ZeroLeaves {
    full: (usize, Fast),
}

impl ZeroLeaves {
    /// Precomputes the digest of a zero block of `block_size` bytes.
    pub fn new(block_size: usize) -> Self {
        ZeroLeaves {
            full: (block_size, fast(&vec![0u8; block_size])),
        }
    }

    /// The fast digest of `len` zero bytes.
    pub fn get(&self, len: usize) -> Fast {
        if len == self.full.0 {
            self.full.1
        } else {
            fast(&vec![0u8; len])
        }
    }
}
