//! The process server's side of a sync: read the source once, decide block by
//! block what to send, send it verified and paced, and finish only when the
//! master target holds every block durably and both whole-disk digests agree.
//!
//! One attempt is one gRPC session. A transient failure (the master target was
//! killed, the link dropped) starts a new attempt, which reopens the session
//! and skips every block the master target reports durable: **a durable block
//! is never sent again**.

use super::checkpoint::bit;
use super::codec::Encoder;
use super::digest::{self, Fast, ZeroLeaves};
use super::endpoint::DiskEndpoint;
use super::error::SyncError;
use super::progress::Counters;
use super::proto::master_target_client::MasterTargetClient;
use super::proto::{
    BlobTarget, BlockMessage, Compression, Encoding, FinishRequest, Mode, OpenRequest, Progress,
    SessionRef, transfer_event,
};
use super::scan::BlockReader;
use super::throttle::Pacer;
use super::transport::{self, MAX_MESSAGE, Security};
use super::{PROTOCOL_VERSION, SESSION_HEADER, block_len, check_block_size};
use crate::disk::image::ImageFormat;
use crate::disk::{BlockDevice, FreeAsZeros};
use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// Per-block bytes on the wire besides the payload (message framing, digest).
const BLOCK_OVERHEAD: u64 = 64;

/// What to sync where.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    /// The source disk: an image on this host, or a page blob.
    pub source: DiskEndpoint,
    /// Its format, if the operator named one (checked against the content).
    pub source_format: Option<ImageFormat>,
    /// The target disk: a path on the master target's host (created by a
    /// full sync if missing), or a page blob, which must exist.
    pub target: DiskEndpoint,
    /// Its format (for a new target; checked against an existing one).
    pub target_format: Option<ImageFormat>,
    /// Full or delta.
    pub mode: Mode,
    /// Block size in bytes.
    pub block_size: usize,
    /// Offer compression.
    pub compress: bool,
    /// The source bytes that hold data, when the file-system handlers know
    /// ([`crate::filesystem::used_map`]); every other byte is treated as
    /// zeros, so free space is skipped. `None` copies every allocated byte.
    pub in_use: Option<Arc<Vec<std::ops::Range<u64>>>>,
}

/// How long to keep reconnecting after a transient failure.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up when the master target has been unreachable this long.
    pub reconnect_for: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            reconnect_for: Duration::from_secs(60),
        }
    }
}

/// The result of a sync.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    /// Final counters.
    pub totals: Progress,
    /// The whole-disk digest both sides agreed on.
    pub root: [u8; 32],
    /// Wall-clock seconds, all attempts included.
    pub seconds: f64,
    /// Attempts made (1 without failures).
    pub attempts: u32,
}

/// Syncs `spec.source` to the master target at `endpoint`; progress snapshots
/// go to `progress` about four times a second.
pub async fn run(
    endpoint: &str,
    security: &Security,
    spec: &SyncSpec,
    pacers: &[Arc<Pacer>],
    retry: RetryPolicy,
    progress: watch::Sender<Progress>,
) -> Result<SyncOutcome, SyncError> {
    let bs = spec.block_size;
    check_block_size(bs).map_err(SyncError::Config)?;
    // Opening a page blob makes HTTP calls: off the async threads.
    let opened = {
        let (endpoint, format) = (spec.source.clone(), spec.source_format);
        tokio::task::spawn_blocking(move || endpoint.open(false, format))
            .await
            .map_err(|e| SyncError::Internal(format!("opening the source: {e}")))?
    };
    let mut source: Arc<dyn BlockDevice> =
        Arc::from(opened.map_err(|reason| SyncError::Source {
            path: spec.source.address(),
            reason,
        })?);
    if let Some(in_use) = &spec.in_use {
        source = Arc::new(FreeAsZeros::new(source, in_use.to_vec()));
    }
    // Stable across attempts, so a resume never mixes two sources; a blob
    // is named by its URL without the query (never its credential).
    let source_id = match &spec.source {
        DiskEndpoint::Path(path) => format!(
            "{}:{}",
            path.canonicalize()
                .unwrap_or_else(|_| path.clone())
                .display(),
            source.capacity()
        ),
        DiskEndpoint::Blob(_) => format!("{}:{}", spec.source.address(), source.capacity()),
    };
    let counters = Arc::new(Counters::new(source.capacity()));
    let reporter = {
        let counters = counters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                if progress.send(counters.snapshot()).is_err() {
                    return;
                }
            }
        })
    };
    let deadline_after = retry.reconnect_for;
    let mut unreachable_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        counters.scanned.store(0, Ordering::Relaxed);
        let sent_before = counters.sent.load(Ordering::Relaxed);
        let attempt = async {
            let channel = transport::connect(endpoint, security).await?;
            attempt(channel, &source, spec, &source_id, pacers, &counters).await
        };
        match attempt.await {
            Ok(root) => break Ok(root),
            Err(e) if e.is_transient() => {
                // An attempt that moved data ends an outage: the next one gets
                // the whole reconnect window again.
                if counters.sent.load(Ordering::Relaxed) > sent_before {
                    unreachable_since = None;
                    backoff = Duration::from_millis(100);
                }
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= deadline_after {
                    break Err(e);
                }
                tracing::warn!("{e}; reconnecting in {backoff:?} to resume");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => break Err(e),
        }
    };
    reporter.abort();
    let root = result?;
    Ok(SyncOutcome {
        totals: counters.snapshot(),
        root,
        seconds: counters.elapsed_secs(),
        attempts,
    })
}

/// One session: open, (delta) compare, transfer, finish.
async fn attempt(
    channel: Channel,
    source: &Arc<dyn BlockDevice>,
    spec: &SyncSpec,
    source_id: &str,
    pacers: &[Arc<Pacer>],
    counters: &Arc<Counters>,
) -> Result<[u8; 32], SyncError> {
    let mut client = MasterTargetClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let capacity = source.capacity();
    let reply = client
        .open(OpenRequest {
            protocol_version: PROTOCOL_VERSION,
            target_path: match &spec.target {
                DiskEndpoint::Path(path) => path.display().to_string(),
                DiskEndpoint::Blob(_) => String::new(),
            },
            target_blob: match &spec.target {
                DiskEndpoint::Path(_) => None,
                DiskEndpoint::Blob(blob) => Some(BlobTarget::from(blob)),
            },
            target_format: spec
                .target_format
                .map(|f| f.cli_name().to_string())
                .unwrap_or_default(),
            capacity,
            block_size: spec.block_size as u32,
            mode: spec.mode as i32,
            source_id: source_id.to_string(),
            compression: if spec.compress {
                vec![Compression::Zstd as i32]
            } else {
                Vec::new()
            },
        })
        .await?
        .into_inner();
    if reply.protocol_version != PROTOCOL_VERSION {
        return Err(SyncError::Refused(format!(
            "the master target speaks replication protocol {}, this process server speaks {PROTOCOL_VERSION}: upgrade the older side",
            reply.protocol_version
        )));
    }
    if reply.durable_blocks > 0 {
        tracing::info!(
            durable = reply.durable_blocks,
            "resuming: the master target already holds these blocks"
        );
    }

    let target_digests = if spec.mode == Mode::Delta {
        let mut stream = client
            .target_digests(SessionRef {
                session_id: reply.session_id.clone(),
            })
            .await?
            .into_inner();
        let (tx, rx) = mpsc::channel::<Result<Vec<Fast>, SyncError>>(16);
        tokio::spawn(async move {
            loop {
                let item = match stream.message().await {
                    Ok(Some(chunk)) => Ok(chunk
                        .digests
                        .chunks_exact(digest::FAST_LEN)
                        .filter_map(|d| Fast::try_from(d).ok())
                        .collect()),
                    Ok(None) => return,
                    Err(status) => Err(status.into()),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        Some(TargetDigests {
            rx,
            ready: VecDeque::new(),
        })
    } else {
        None
    };

    let (messages, messages_rx) = mpsc::channel::<BlockMessage>(4);
    let (resend, resend_rx) = std::sync::mpsc::channel::<u64>();
    let (pass_done, mut pass_done_rx) = oneshot::channel::<()>();
    let in_flight = Arc::new(InFlight::new(window_blocks(reply.checkpoint_blocks)));

    let mut request = tonic::Request::new(ReceiverStream::new(messages_rx));
    let session_value = reply.session_id.parse().map_err(|_| {
        SyncError::Internal(format!(
            "session id `{}` is not valid metadata",
            reply.session_id
        ))
    })?;
    request.metadata_mut().insert(SESSION_HEADER, session_value);
    tracing::debug!("opening the transfer stream");
    let mut events = client.transfer(request).await?.into_inner();
    tracing::debug!("transfer stream open");

    let scan = Scan {
        source: source.clone(),
        block_size: spec.block_size,
        mode: spec.mode,
        created: reply.created,
        durable: reply.durable_bitmap,
        compress: reply.compression == Compression::Zstd as i32,
        session_id: reply.session_id.clone(),
        pacers: pacers.to_vec(),
        counters: counters.clone(),
        in_flight: in_flight.clone(),
    };
    let scanner = tokio::task::spawn_blocking(move || {
        scan.run(target_digests, &messages, resend_rx, pass_done)
    });

    let mut resend = Some(resend);
    let mut scanning = true;
    // Whatever ends this loop early, the scanner must not wait for acks forever.
    let _close = CloseOnDrop(in_flight.clone());
    loop {
        if !scanning && in_flight.is_empty() {
            // Everything sent is durable: let the scanner close the stream.
            resend.take();
        }
        tokio::select! {
            event = events.message() => match event {
                Ok(Some(event)) => match event.event {
                    Some(transfer_event::Event::Durable(d)) => in_flight.durable(&d.blocks),
                    Some(transfer_event::Event::Rejected(r)) => {
                        tracing::warn!(block = r.index, "the master target rejected a block ({}); sending it again", r.reason);
                        Counters::add(&counters.blocks_rejected, 1);
                        if let Some(tx) = &resend {
                            let _ = tx.send(r.index);
                        }
                    }
                    None => {}
                },
                Ok(None) => break,
                Err(status) => {
                    drop(resend.take());
                    return Err(status.into());
                }
            },
            _ = &mut pass_done_rx, if scanning => scanning = false,
        }
    }
    let leaves = scanner
        .await
        .map_err(|e| SyncError::Internal(format!("the scanner thread failed: {e}")))??;
    let left = in_flight.len();
    if left > 0 {
        return Err(SyncError::Unreachable {
            endpoint: "the master target".to_string(),
            reason: format!("the transfer ended with {left} blocks not yet durable"),
        });
    }
    let root = digest::whole_disk(leaves);
    let finish = client
        .finish(FinishRequest {
            session_id: reply.session_id,
            source_root: root.to_vec(),
        })
        .await?
        .into_inner();
    if !finish.matches {
        return Err(SyncError::Mismatch {
            source_root: hex::encode(root),
            target: hex::encode(&finish.target_root),
        });
    }
    Ok(root)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The target's digests as they stream in, consumed in block order.
struct TargetDigests {
    rx: mpsc::Receiver<Result<Vec<Fast>, SyncError>>,
    ready: VecDeque<Fast>,
}

impl TargetDigests {
    fn next(&mut self) -> Result<Fast, SyncError> {
        loop {
            if let Some(d) = self.ready.pop_front() {
                return Ok(d);
            }
            match self.rx.blocking_recv() {
                Some(chunk) => self.ready.extend(chunk?),
                None => {
                    return Err(SyncError::Unreachable {
                        endpoint: "the master target".to_string(),
                        reason: "the target's digest stream ended early".to_string(),
                    });
                }
            }
        }
    }
}

/// The reading side of one attempt, on a blocking thread.
struct Scan {
    source: Arc<dyn BlockDevice>,
    block_size: usize,
    mode: Mode,
    created: bool,
    durable: Vec<u8>,
    compress: bool,
    session_id: String,
    pacers: Vec<Arc<Pacer>>,
    counters: Arc<Counters>,
    in_flight: Arc<InFlight>,
}

impl Scan {
    /// Reads every block once, sends what must be sent, then serves resends
    /// until the driver says everything is durable. Returns the source's leaves.
    fn run(
        self,
        mut target: Option<TargetDigests>,
        messages: &mpsc::Sender<BlockMessage>,
        resends: std::sync::mpsc::Receiver<u64>,
        pass_done: oneshot::Sender<()>,
    ) -> Result<Vec<Fast>, SyncError> {
        let capacity = self.source.capacity();
        let blocks = capacity.div_ceil(self.block_size as u64);
        let allocated = self
            .source
            .allocated_ranges()
            .map_err(|e| self.read_error(0, &e))?;
        let zero = ZeroLeaves::new(self.block_size);
        let mut encoder = Encoder::new(self.compress);
        let mut leaves = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
        let mut reader = BlockReader::new(&*self.source, self.block_size);
        for index in 0..blocks {
            let offset = index * self.block_size as u64;
            let len = block_len(capacity, self.block_size, index);
            let hole = allocated
                .as_deref()
                .is_some_and(|r| !overlaps(r, offset..offset + len as u64));
            let block: &[u8] = if hole {
                &[]
            } else {
                reader
                    .block(index)
                    .map_err(|e| self.read_error(offset, &e))?
            };
            let (leaf, is_zero) = if hole {
                (zero.get(len), true)
            } else {
                (digest::fast(block), digest::is_zero(block))
            };
            Counters::add(&self.counters.scanned, len as u64);
            leaves.push(leaf);
            let target_leaf = match target.as_mut() {
                Some(t) => Some(t.next()?),
                None => None,
            };
            let skip = bit(&self.durable, index)
                || target_leaf == Some(leaf)
                || (self.mode == Mode::Full && self.created && is_zero);
            if skip {
                Counters::add(&self.counters.blocks_skipped, 1);
                continue;
            }
            let data = if is_zero { None } else { Some(block.to_vec()) };
            self.send(index, len, data, &mut encoder, messages)?;
        }
        let _ = pass_done.send(());
        // Until the driver drops its end: blocks the master target rejected.
        while let Ok(index) = resends.recv() {
            let offset = index * self.block_size as u64;
            let len = block_len(capacity, self.block_size, index);
            let mut data = vec![0u8; len];
            self.source
                .read_at(&mut data, offset)
                .map_err(|e| self.read_error(offset, &e))?;
            let data = if digest::is_zero(&data) {
                None
            } else {
                Some(data)
            };
            self.send(index, len, data, &mut encoder, messages)?;
        }
        Ok(leaves)
    }

    /// Sends one block (`None`: all zeros), paced, and marks it outstanding.
    fn send(
        &self,
        index: u64,
        len: usize,
        data: Option<Vec<u8>>,
        encoder: &mut Encoder,
        messages: &mpsc::Sender<BlockMessage>,
    ) -> Result<(), SyncError> {
        let (strong, encoding, payload) = match data {
            None => (digest::strong(&vec![0u8; len]), Encoding::Zero, Vec::new()),
            Some(data) => {
                let strong = digest::strong(&data);
                let (encoding, payload) = encoder.encode(data);
                (strong, encoding, payload)
            }
        };
        let wire = payload.len() as u64 + BLOCK_OVERHEAD;
        self.in_flight.admit(index)?;
        for pacer in &self.pacers {
            pacer.wait(wire);
        }
        let message = BlockMessage {
            session_id: self.session_id.clone(),
            index,
            length: len as u32,
            encoding: encoding as i32,
            strong_digest: strong.to_vec(),
            payload: payload.into(),
        };
        messages
            .blocking_send(message)
            .map_err(|_| SyncError::Unreachable {
                endpoint: "the master target".to_string(),
                reason: "the transfer stream closed".to_string(),
            })?;
        Counters::add(&self.counters.sent, wire);
        Counters::add(&self.counters.blocks_sent, 1);
        Ok(())
    }

    fn read_error(&self, offset: u64, e: &std::io::Error) -> SyncError {
        SyncError::Source {
            path: self.source.describe(),
            reason: format!("read at offset {offset} failed: {e}"),
        }
    }
}

/// How many blocks may be in flight (sent, not yet durable): enough to keep the
/// pipe full while the master target commits, small enough that a crash costs
/// little to resend.
fn window_blocks(checkpoint_blocks: u32) -> usize {
    (2 * checkpoint_blocks as usize).max(MIN_WINDOW_BLOCKS)
}

/// The smallest in-flight window.
const MIN_WINDOW_BLOCKS: usize = 4;

/// Blocks sent and not yet reported durable, bounded by a window.
struct InFlight {
    set: Mutex<HashSet<u64>>,
    freed: Condvar,
    closed: AtomicBool,
    limit: usize,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        InFlight {
            set: Mutex::new(HashSet::new()),
            freed: Condvar::new(),
            closed: AtomicBool::new(false),
            limit,
        }
    }

    /// Waits for room in the window, then counts `block` as in flight. A block
    /// already in flight (a resend) needs no room.
    fn admit(&self, block: u64) -> Result<(), SyncError> {
        let mut set = lock(&self.set);
        while set.len() >= self.limit && !set.contains(&block) {
            if self.closed.load(Ordering::SeqCst) {
                return Err(SyncError::Unreachable {
                    endpoint: "the master target".to_string(),
                    reason: "the transfer stopped".to_string(),
                });
            }
            set = match self.freed.wait_timeout(set, Duration::from_millis(100)) {
                Ok((set, _)) => set,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        set.insert(block);
        Ok(())
    }

    fn durable(&self, blocks: &[u64]) {
        let mut set = lock(&self.set);
        for block in blocks {
            set.remove(block);
        }
        self.freed.notify_all();
    }

    fn len(&self) -> usize {
        lock(&self.set).len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.freed.notify_all();
    }
}

/// Closes the window when the driver leaves, so a waiting scanner gives up.
struct CloseOnDrop(Arc<InFlight>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Whether any of the sorted `ranges` overlaps `want`.
fn overlaps(ranges: &[Range<u64>], want: Range<u64>) -> bool {
    let i = ranges.partition_point(|r| r.end <= want.start);
    ranges.get(i).is_some_and(|r| r.start < want.end)
}
