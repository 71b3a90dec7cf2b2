//! The replication data path: moving a disk's bytes from a process server
//! (cloud side, reads the source) to a master target (on premises, writes the
//! target), fast, verified, resumable and throttled.
//!
//! ```text
//!  process server (source.rs)                      master target (target.rs)
//!  ─────────────────────────                      ─────────────────────────
//!  open source image ─── Open ──────────────────► open/create target, checkpoint
//!  read each block once                           (delta) hash target blocks
//!    fast digest ◄──────── TargetDigests ──────── stream fast digests
//!    skip: durable, unchanged, fresh hole
//!    strong digest, zstd, pace ── Transfer ─────► decode, verify BLAKE3, write,
//!                            ◄── Durable/Rejected  flush + checkpoint, ack
//!  whole-disk digest ─────── Finish ────────────► compare whole-disk digests
//! ```
//!
//! - [`endpoint`]: a disk as the data path reaches it: a host path or a page blob.
//! - [`digest`]: fast (xxh3-128) and strong (BLAKE3) block digests, whole-disk digest.
//! - [`codec`]: raw, zstd or hole on the wire; adaptive compression.
//! - [`checkpoint`]: the master target's durable record of written blocks.
//! - [`throttle`]: bandwidth pacing.
//! - [`progress`]: counters, snapshots, a terminal bar.
//! - [`scan`]: sequential block reading in large units.
//! - [`transport`]: TLS or loopback plaintext, HTTP/2 tuned for bulk.
//! - [`source`], [`target`]: the two roles; [`local`]: both in one process.
//! - [`process_server`]: the process server's gRPC service.
//! - [`extents`] (process server), [`point_target`] (master target):
//!   continuous replication, one cycle's changed extents shipped into a
//!   recovery point of the replica's journal ([`crate::journal`]).

pub mod checkpoint;
pub mod codec;
pub mod digest;
pub mod endpoint;
pub mod error;
pub mod extents;
pub mod local;
pub mod point_target;
pub mod process_server;
pub mod progress;
pub mod proto;
pub mod scan;
pub mod source;
pub mod target;
pub mod throttle;
pub mod transport;

pub use endpoint::DiskEndpoint;
pub use error::SyncError;
pub use proto::Mode;

/// The replication protocol this build speaks. Peers must speak the same.
pub const PROTOCOL_VERSION: u32 = 1;

/// The default port of the replication data path (S6).
pub const DEFAULT_PORT: u16 = 9443;

/// The default block size.
pub const DEFAULT_BLOCK_SIZE: usize = 1 << 20;

/// Smallest block size.
pub const MIN_BLOCK_SIZE: usize = 4 << 10;

/// Largest block size.
pub const MAX_BLOCK_SIZE: usize = 16 << 20;

/// Checks a block size: a power of two from [`MIN_BLOCK_SIZE`] to [`MAX_BLOCK_SIZE`].
pub fn check_block_size(block_size: usize) -> Result<(), String> {
    if (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) && block_size.is_power_of_two() {
        Ok(())
    } else {
        Err(format!(
            "block size {block_size} (--block-size) must be a power of two from {MIN_BLOCK_SIZE} (4K) to {MAX_BLOCK_SIZE} (16M)"
        ))
    }
}

/// Length of block `index` of a disk of `capacity` bytes: `block_size`, or less
/// for the last block.
pub fn block_len(capacity: u64, block_size: usize, index: u64) -> usize {
    let offset = index.saturating_mul(block_size as u64);
    capacity.saturating_sub(offset).min(block_size as u64) as usize
}

/// gRPC metadata key naming the session of a `Transfer` stream.
pub const SESSION_HEADER: &str = "x-homeward-session";
