//! The master target: receives a disk over gRPC and writes it.
//!
//! Invariants kept here:
//! - **No unverified byte is ever written**: each block's BLAKE3 digest is
//!   checked against its decoded bytes before `write_at`; a mismatch is
//!   rejected (the process server sends the block again).
//! - **A checkpoint never claims a block that is not durable**: blocks are
//!   recorded in the checkpoint log only after the device was flushed, and
//!   reported durable only after the log was synced.
//! - The master target writes only under its configured target roots or to
//!   the page blob a sync names (a cloud disk: it must exist, is never
//!   created, and roots do not apply to it), and refuses a target smaller
//!   than the source or of another format before writing anything.
//! - A page-blob target keeps no checkpoint log (there is no local file to
//!   keep it beside, and its credential must not key one): every block
//!   written is reported durable once `Put Page` returned, and a sync
//!   interrupted there resumes as a delta that reads the blob's digests back.

use super::checkpoint::{self, Checkpoint, Identity};
use super::codec;
use super::digest::{self, Fast, ZeroLeaves};
use super::endpoint::DiskEndpoint;
use super::proto::master_target_server::MasterTarget;
use super::proto::{
    BlobTarget, BlockMessage, Compression, DigestChunk, Durable, Encoding, FinishReply,
    FinishRequest, Mode, OpenReply, OpenRequest, Rejected, SessionRef, TransferEvent,
    transfer_event,
};
use super::scan::BlockReader;
use super::{PROTOCOL_VERSION, SESSION_HEADER, block_len, check_block_size};
use crate::disk::BlockDevice;
use crate::disk::image::{self, ImageFormat};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// How often the master target makes written blocks durable.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// After this many blocks (when set)...
    pub blocks: Option<usize>,
    /// ...else after this many bytes...
    pub bytes: u64,
    /// ...or this much time since the last checkpoint, whichever comes first.
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            blocks: None,
            bytes: 64 << 20,
            interval: Duration::from_secs(1),
        }
    }
}

impl CheckpointPolicy {
    /// Blocks between checkpoints for a given block size. By bytes by default,
    /// so small blocks do not mean an `fsync` every few megabytes.
    pub fn blocks_for(&self, block_size: usize) -> usize {
        self.blocks
            .unwrap_or_else(|| {
                usize::try_from(self.bytes / block_size.max(1) as u64).unwrap_or(usize::MAX)
            })
            .max(1)
    }
}

/// Configuration of a master target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Directories target disks may be written in.
    pub roots: Vec<PathBuf>,
    /// When written blocks become durable.
    pub checkpoint: CheckpointPolicy,
}

/// The master-target gRPC service.
#[derive(Debug)]
pub struct MasterTargetService {
    config: TargetConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next_session: AtomicU64,
}

struct Session {
    /// The target's path, or its blob URL without query: one session per target.
    target: String,
    device: Arc<dyn BlockDevice>,
    block_size: usize,
    capacity: u64,
    blocks: u64,
    created: bool,
    state: Mutex<SessionState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("target", &self.device.describe())
            .finish()
    }
}

struct SessionState {
    checkpoint: Option<Checkpoint>,
    leaves: Vec<Option<Fast>>,
}

impl Session {
    fn block_len(&self, index: u64) -> usize {
        block_len(self.capacity, self.block_size, index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

impl MasterTargetService {
    /// A master target writing under `config.roots`.
    pub fn new(config: TargetConfig) -> Self {
        MasterTargetService {
            config,
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
        }
    }

    fn session(&self, id: &str) -> Result<Arc<Session>, Status> {
        let sessions = match self.sessions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        sessions.get(id).cloned().ok_or_else(|| {
            Status::not_found(format!("no sync session `{id}` on this master target (it may have restarted): open a new one"))
        })
    }

    /// Checks that `target` lies under one of the configured roots, and returns
    /// it resolved ([`resolve_under_roots`]).
    fn check_root(&self, target: &Path) -> Result<PathBuf, Status> {
        resolve_under_roots(&self.config.roots, target)
    }

    fn open_session(&self, req: &OpenRequest) -> Result<(Arc<Session>, OpenReply), Status> {
        let block_size = check_request(req)?;
        let target = PathBuf::from(&req.target_path);
        if !target.is_absolute() {
            return Err(Status::invalid_argument(format!(
                "target path {} must be absolute",
                target.display()
            )));
        }
        let target = self.check_root(&target)?;
        let declared = match req.target_format.as_str() {
            "" => None,
            f => Some(
                f.parse::<ImageFormat>()
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        };
        let mode = Mode::try_from(req.mode).unwrap_or(Mode::Unspecified);
        let (device, created): (Arc<dyn BlockDevice>, bool) = if target.exists() {
            let device = image::open(&target, true, declared)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
            if device.capacity() < req.capacity {
                return Err(Status::failed_precondition(format!(
                    "target {} holds {} bytes, smaller than the source's {}: grow it or choose another target",
                    target.display(),
                    device.capacity(),
                    req.capacity
                )));
            }
            (Arc::from(device), false)
        } else if mode == Mode::Delta {
            return Err(Status::not_found(format!(
                "delta sync needs an existing target, and {} does not exist: run a full sync",
                target.display()
            )));
        } else {
            let format = declared.unwrap_or(ImageFormat::Raw);
            let device = image::create(&target, format, req.capacity)
                .map_err(|e| Status::internal(e.to_string()))?;
            (Arc::from(device), true)
        };
        let blocks = req.capacity.div_ceil(block_size as u64);
        let identity = Identity {
            source_id: req.source_id.clone(),
            capacity: req.capacity,
            block_size: req.block_size,
            mode: format!("{mode:?}"),
        };
        let ckpt = Checkpoint::open(&target, &identity, blocks, created).map_err(|e| {
            Status::internal(format!(
                "checkpoint {}: {e}",
                checkpoint::path_for(&target).display()
            ))
        })?;
        let compression = if req.compression.contains(&(Compression::Zstd as i32)) {
            Compression::Zstd
        } else {
            Compression::None
        };
        // A created target reads as zeros until written; otherwise only what the
        // checkpoint vouches for is known before the scan or the writes.
        let zero = ZeroLeaves::new(block_size);
        let leaves = (0..blocks)
            .map(|b| {
                if created {
                    Some(zero.get(block_len(req.capacity, block_size, b)))
                } else {
                    ckpt.leaf(b)
                }
            })
            .collect();
        let reply = OpenReply {
            protocol_version: PROTOCOL_VERSION,
            session_id: format!("s{}", self.next_session.fetch_add(1, Ordering::Relaxed)),
            compression: compression as i32,
            durable_bitmap: ckpt.bitmap(),
            durable_blocks: ckpt.durable_count(),
            created,
            checkpoint_blocks: u32::try_from(self.config.checkpoint.blocks_for(block_size))
                .unwrap_or(u32::MAX),
        };
        let session = Arc::new(Session {
            target: target.display().to_string(),
            device,
            block_size,
            capacity: req.capacity,
            blocks,
            created,
            state: Mutex::new(SessionState {
                checkpoint: Some(ckpt),
                leaves,
            }),
        });
        tracing::info!(
            target = %target.display(),
            blocks,
            durable = reply.durable_blocks,
            created,
            "sync session {} opened",
            reply.session_id
        );
        Ok((session, reply))
    }
}

/// Checks that `target` lies under one of `roots`, and returns it resolved.
/// An existing target is resolved whole, so a symlink planted inside a root
/// cannot lead a write outside it; a missing one by its directory.
pub(crate) fn resolve_under_roots(roots: &[PathBuf], target: &Path) -> Result<PathBuf, Status> {
    let resolved = if target.symlink_metadata().is_ok() {
        target.canonicalize().map_err(|e| {
            Status::not_found(format!("target {} is not usable: {e}", target.display()))
        })?
    } else {
        let parent = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let parent = parent.canonicalize().map_err(|e| {
            Status::not_found(format!(
                "target directory {} is not usable: {e}",
                parent.display()
            ))
        })?;
        parent.join(target.file_name().unwrap_or_default())
    };
    let allowed = roots
        .iter()
        .filter_map(|r| r.canonicalize().ok())
        .any(|root| resolved.starts_with(root));
    if allowed {
        Ok(resolved)
    } else {
        Err(Status::permission_denied(format!(
            "{} is outside this master target's target roots; add its directory to --target-root",
            target.display()
        )))
    }
}

/// The checks every Open passes before any target is touched: protocol
/// version, block size, a non-empty source. Returns the block size.
fn check_request(req: &OpenRequest) -> Result<usize, Status> {
    if req.protocol_version != PROTOCOL_VERSION {
        return Err(Status::failed_precondition(format!(
            "the process server speaks replication protocol {}, this master target speaks {PROTOCOL_VERSION}: upgrade the older side",
            req.protocol_version
        )));
    }
    let block_size = req.block_size as usize;
    check_block_size(block_size).map_err(Status::invalid_argument)?;
    if req.capacity == 0 {
        return Err(Status::invalid_argument(
            "the source disk is empty (0 bytes)",
        ));
    }
    Ok(block_size)
}

impl MasterTargetService {
    /// A session writing the page blob `blob`: it must exist and be large
    /// enough; no checkpoint is kept (see the module's invariants).
    async fn open_blob_session(
        &self,
        req: &OpenRequest,
        blob: &BlobTarget,
    ) -> Result<(Arc<Session>, OpenReply), Status> {
        let block_size = check_request(req)?;
        if !matches!(req.target_format.as_str(), "" | "vhd") {
            return Err(Status::invalid_argument(format!(
                "a page blob holds a fixed VHD, not `{}`",
                req.target_format
            )));
        }
        let endpoint = DiskEndpoint::Blob(blob.clone().into());
        let target = endpoint.address();
        // Opening reads the blob's properties over HTTP: a blocking call,
        // made off the async threads.
        let opened = tokio::task::spawn_blocking(move || endpoint.open(true, None))
            .await
            .map_err(|e| Status::internal(format!("opening the target: {e}")))?;
        let device: Arc<dyn BlockDevice> = Arc::from(opened.map_err(|reason| {
            Status::failed_precondition(format!(
                "target {target} cannot be opened for writing: {reason} (a page-blob target is \
                 never created: it must be the existing cloud disk made for the replica)"
            ))
        })?);
        if device.capacity() < req.capacity {
            return Err(Status::failed_precondition(format!(
                "target {target} holds {} bytes, smaller than the source's {}: grow the cloud disk \
                 or choose another",
                device.capacity(),
                req.capacity
            )));
        }
        let blocks = req.capacity.div_ceil(block_size as u64);
        let compression = if req.compression.contains(&(Compression::Zstd as i32)) {
            Compression::Zstd
        } else {
            Compression::None
        };
        let reply = OpenReply {
            protocol_version: PROTOCOL_VERSION,
            session_id: format!("s{}", self.next_session.fetch_add(1, Ordering::Relaxed)),
            compression: compression as i32,
            durable_bitmap: vec![0u8; usize::try_from(blocks.div_ceil(8)).unwrap_or(0)],
            durable_blocks: 0,
            created: false,
            checkpoint_blocks: u32::try_from(self.config.checkpoint.blocks_for(block_size))
                .unwrap_or(u32::MAX),
        };
        let session = Arc::new(Session {
            target: target.clone(),
            device,
            block_size,
            capacity: req.capacity,
            blocks,
            created: false,
            state: Mutex::new(SessionState {
                checkpoint: None,
                leaves: vec![None; usize::try_from(blocks).unwrap_or(0)],
            }),
        });
        tracing::info!(target = %target, blocks, "sync session {} opened (page blob, no checkpoint)", reply.session_id);
        Ok((session, reply))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<TransferEvent, Status>> + Send>>;
type DigestStream = Pin<Box<dyn Stream<Item = Result<DigestChunk, Status>> + Send>>;

/// How long the writer waits for more blocks before making pending ones durable.
const IDLE_COMMIT: Duration = Duration::from_millis(20);

/// Digests per `DigestChunk`.
const DIGESTS_PER_CHUNK: u64 = 256;

#[tonic::async_trait]
impl MasterTarget for MasterTargetService {
    async fn open(&self, request: Request<OpenRequest>) -> Result<Response<OpenReply>, Status> {
        let req = request.get_ref();
        let (session, reply) = match &req.target_blob {
            Some(blob) => self.open_blob_session(req, blob).await?,
            None => self.open_session(req)?,
        };
        let mut sessions = match self.sessions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // A new session on the same target means the old one's process server
        // is gone (it would not open twice): retire it, so one log has one writer.
        sessions.retain(|id, old| {
            let stale = old.target == session.target;
            if stale {
                tracing::info!(
                    "sync session {id} on {} replaced by {}",
                    old.target,
                    reply.session_id
                );
            }
            !stale
        });
        sessions.insert(reply.session_id.clone(), session);
        Ok(Response::new(reply))
    }

    type TargetDigestsStream = DigestStream;

    async fn target_digests(
        &self,
        request: Request<SessionRef>,
    ) -> Result<Response<DigestStream>, Status> {
        let session = self.session(&request.get_ref().session_id)?;
        let (tx, rx) = mpsc::channel(16);
        tokio::task::spawn_blocking(move || scan_target(&session, &tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type TransferStream = EventStream;

    async fn transfer(
        &self,
        request: Request<Streaming<BlockMessage>>,
    ) -> Result<Response<EventStream>, Status> {
        // The session travels in metadata, so the reply can start before any
        // block: a delta sync may have nothing to send.
        let id = request
            .metadata()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Status::invalid_argument(format!("missing `{SESSION_HEADER}` metadata"))
            })?;
        let session = self.session(&id)?;
        let mut inbound = request.into_inner();
        let (events, rx) = mpsc::channel(64);
        // Async side sends with `.await`; the writer thread receives blocking.
        let (blocks, blocks_rx) = mpsc::channel::<BlockMessage>(8);
        let policy = self.config.checkpoint;
        let writer_events = events.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(status) = write_blocks(session, blocks_rx, &writer_events, policy) {
                let _ = writer_events.blocking_send(Err(status));
            }
        });
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(block)) => {
                        if blocks.send(block).await.is_err() {
                            return; // the writer stopped and reported why
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        tracing::warn!("transfer stream broke: {status}");
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn finish(
        &self,
        request: Request<FinishRequest>,
    ) -> Result<Response<FinishReply>, Status> {
        let req = request.into_inner();
        let session = self.session(&req.session_id)?;
        let device = session.device.clone();
        tokio::task::spawn_blocking(move || device.flush())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(format!("flushing the target: {e}")))?;
        let (root, checkpoint) = {
            let mut state = session.lock();
            let missing: Vec<usize> = state
                .leaves
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_none())
                .map(|(i, _)| i)
                .take(8)
                .collect();
            if !missing.is_empty() {
                return Err(Status::failed_precondition(format!(
                    "blocks never received, starting with {missing:?}: the sync is incomplete"
                )));
            }
            let root = digest::whole_disk(state.leaves.iter().flatten().copied());
            (root, state.checkpoint.take())
        };
        let matches = root.as_slice() == req.source_root.as_slice();
        if matches {
            if let Some(ckpt) = checkpoint {
                ckpt.remove()
                    .map_err(|e| Status::internal(format!("removing the checkpoint: {e}")))?;
            }
            let mut sessions = match self.sessions.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            sessions.remove(&req.session_id);
        } else {
            tracing::error!("whole-disk digests differ: the target does not match the source");
        }
        Ok(Response::new(FinishReply {
            target_root: root.to_vec(),
            matches,
        }))
    }
}

/// Hashes every block of the target with the fast digest, streaming them.
fn scan_target(session: &Session, tx: &mpsc::Sender<Result<DigestChunk, Status>>) {
    let zero = ZeroLeaves::new(session.block_size);
    let allocated = session.device.allocated_ranges().ok().flatten();
    let mut reader = BlockReader::new(&*session.device, session.block_size);
    let mut chunk = DigestChunk {
        first_block: 0,
        digests: Vec::new(),
    };
    for index in 0..session.blocks {
        let len = session.block_len(index);
        let offset = index * session.block_size as u64;
        let hole = allocated.as_ref().is_some_and(|ranges| {
            !ranges
                .iter()
                .any(|r| r.start < offset + len as u64 && offset < r.end)
        });
        let leaf = if hole {
            zero.get(len)
        } else {
            match reader.block(index) {
                Ok(block) => digest::fast(block),
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(format!(
                        "reading the target at {offset}: {e}"
                    ))));
                    return;
                }
            }
        };
        session.lock().leaves[index as usize] = Some(leaf);
        chunk.digests.extend_from_slice(&leaf);
        if index + 1 - chunk.first_block == DIGESTS_PER_CHUNK || index + 1 == session.blocks {
            let next = DigestChunk {
                first_block: index + 1,
                digests: Vec::new(),
            };
            if tx
                .blocking_send(Ok(std::mem::replace(&mut chunk, next)))
                .is_err()
            {
                return;
            }
        }
    }
}

/// Verifies, writes and checkpoints blocks until the stream ends.
fn write_blocks(
    session: Arc<Session>,
    mut blocks: mpsc::Receiver<BlockMessage>,
    events: &mpsc::Sender<Result<TransferEvent, Status>>,
    policy: CheckpointPolicy,
) -> Result<(), Status> {
    let every = policy.blocks_for(session.block_size);
    let mut committer = Committer::start(session.clone(), events.clone());
    let runtime = tokio::runtime::Handle::current();
    let mut pending: Vec<(u64, Fast)> = Vec::new();
    let mut last_commit = Instant::now();
    loop {
        // With blocks pending, wait only briefly: the sender may be waiting for
        // exactly these acks (the last blocks of a sync) before it goes on.
        let next = if pending.is_empty() {
            blocks.blocking_recv()
        } else {
            let wait = policy
                .interval
                .saturating_sub(last_commit.elapsed())
                .min(IDLE_COMMIT);
            match runtime.block_on(tokio::time::timeout(wait, blocks.recv())) {
                Ok(next) => next,
                Err(_idle) => {
                    committer.submit(&mut pending)?;
                    last_commit = Instant::now();
                    continue;
                }
            }
        };
        let Some(message) = next else {
            break;
        };
        if message.index >= session.blocks {
            return Err(Status::invalid_argument(format!(
                "block {} is past the end of a {}-block disk",
                message.index, session.blocks
            )));
        }
        let len = session.block_len(message.index);
        if message.length as usize != len {
            return Err(Status::invalid_argument(format!(
                "block {} announced {} bytes, expected {len}",
                message.index, message.length
            )));
        }
        let encoding = Encoding::try_from(message.encoding).unwrap_or(Encoding::Raw);
        let verified = codec::decode(encoding, message.payload, len).and_then(|data| {
            if digest::strong(&data).as_slice() == message.strong_digest.as_slice() {
                Ok(data)
            } else {
                Err("its BLAKE3 digest does not match its bytes".to_string())
            }
        });
        let data = match verified {
            Ok(data) => data,
            Err(reason) => {
                tracing::warn!(block = message.index, "rejected a corrupt block: {reason}");
                let event = transfer_event::Event::Rejected(Rejected {
                    index: message.index,
                    reason,
                });
                if events
                    .blocking_send(Ok(TransferEvent { event: Some(event) }))
                    .is_err()
                {
                    return Ok(());
                }
                continue;
            }
        };
        // A fresh target reads as zeros: a hole needs no write.
        if !(encoding == Encoding::Zero && session.created) {
            let offset = message.index * session.block_size as u64;
            session.device.write_at(&data, offset).map_err(|e| {
                Status::internal(format!(
                    "writing block {} of the target: {e}",
                    message.index
                ))
            })?;
        }
        pending.push((message.index, digest::fast(&data)));
        if pending.len() >= every || last_commit.elapsed() >= policy.interval {
            committer.submit(&mut pending)?;
            last_commit = Instant::now();
        }
    }
    committer.submit(&mut pending)?;
    committer.finish()
}

/// Makes batches of written blocks durable on a thread of its own, so the
/// writer goes on writing the next batch while the disk flushes this one.
struct Committer {
    batches: Option<std::sync::mpsc::SyncSender<Vec<(u64, Fast)>>>,
    thread: Option<std::thread::JoinHandle<Result<(), Status>>>,
}

impl Committer {
    fn start(session: Arc<Session>, events: mpsc::Sender<Result<TransferEvent, Status>>) -> Self {
        // One batch may wait while another flushes; a third makes the writer wait.
        let (batches, rx) = std::sync::mpsc::sync_channel::<Vec<(u64, Fast)>>(1);
        let thread = std::thread::Builder::new()
            .name("homeward-commit".to_string())
            .spawn(move || {
                for batch in rx {
                    make_durable(&session, &batch, &events)?;
                }
                Ok(())
            });
        match thread {
            Ok(thread) => Committer {
                batches: Some(batches),
                thread: Some(thread),
            },
            Err(e) => {
                tracing::error!("cannot start the commit thread: {e}");
                Committer {
                    batches: None,
                    thread: None,
                }
            }
        }
    }

    /// Hands `pending` over to be made durable.
    fn submit(&mut self, pending: &mut Vec<(u64, Fast)>) -> Result<(), Status> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(pending);
        match &self.batches {
            Some(tx) if tx.send(batch).is_ok() => Ok(()),
            // The committer stopped: its error says why.
            _ => self.join(),
        }
    }

    /// Waits until every submitted batch is durable.
    fn finish(mut self) -> Result<(), Status> {
        self.batches.take();
        self.join()
    }

    fn join(&mut self) -> Result<(), Status> {
        self.batches.take();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| Status::internal("the commit thread panicked"))?,
            None => Err(Status::internal("the commit thread is not running")),
        }
    }
}

/// Flushes the device, records `batch` in the checkpoint, reports it durable.
fn make_durable(
    session: &Session,
    batch: &[(u64, Fast)],
    events: &mpsc::Sender<Result<TransferEvent, Status>>,
) -> Result<(), Status> {
    session
        .device
        .flush()
        .map_err(|e| Status::internal(format!("flushing the target: {e}")))?;
    {
        let mut state = session.lock();
        if let Some(ckpt) = state.checkpoint.as_mut() {
            ckpt.record(batch)
                .map_err(|e| Status::internal(format!("writing the checkpoint: {e}")))?;
        }
        for (index, leaf) in batch {
            state.leaves[*index as usize] = Some(*leaf);
        }
    }
    let blocks = batch.iter().map(|(i, _)| *i).collect();
    let event = transfer_event::Event::Durable(Durable { blocks });
    let _ = events.blocking_send(Ok(TransferEvent { event: Some(event) }));
    Ok(())
}
