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
//! - [`digest`]: fast (xxh3-128) and strong (BLAKE3) block digests, whole-disk digest.
//! - [`codec`]: raw, zstd or hole on the wire; adaptive compression.
//! - [`checkpoint`]: the master target's durable record of written blocks.
//! - [`throttle`]: bandwidth pacing.
//! - [`progress`]: counters, snapshots, a terminal bar.
//! - [`scan`]: sequential block reading in large units.
//! - [`transport`]: TLS or loopback plaintext, HTTP/2 tuned for bulk.
//! - [`source`], [`target`]: the two roles; [`local`]: both in one process.
//! - [`process_server`]: the process server's gRPC service.

pub mod checkpoint;
pub mod codec;
pub mod digest;
pub mod error;
pub mod local;
pub mod process_server;
pub mod progress;
pub mod proto;
pub mod scan;
pub mod source;
pub mod target;
pub mod throttle;
pub mod transport;

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

/// gRPC metadata key naming the session of a `Transfer` stream.
pub const SESSION_HEADER: &str = "x-homeward-session";
