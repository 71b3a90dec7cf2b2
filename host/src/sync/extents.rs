//! The process server's side of continuous replication: shipping one
//! cycle's changed extents from a snapshot to the master target, which
//! writes them into the replica as one recovery point of its journal
//! (`point_target.rs`).
//!
//! ```text
//!  process server (here)                            master target (point_target.rs)
//!  open the snapshot endpoint ─── PointOpen ──────► open replica + Journal (undo a crash's point), begin
//!  per changed extent, ≤ block_size:                ◄── PointOpened (seq, compression)
//!    read, BLAKE3, zstd, pace ─── ExtentBlock ────► decode, verify BLAKE3, PointWriter::write
//!                             ◄── Accepted / Rejected (resent)
//!  all accepted ──────────────── PointCommit ─────► commit (replica digest), retention
//!                             ◄── PointCommitted (point, pruned, alarms)
//! ```
//!
//! A cycle is not resumed after a failure: the master target undoes the
//! uncommitted point (at once, or on the journal's next open after a crash),
//! and the cycle is run again from its snapshot, which does not change.
//!
//! [`differing_ranges`] is the fallback when change tracking cannot be
//! trusted: it reads **both disks fully** and compares block digests, so it
//! costs a whole-disk read on each side.

use super::digest::{self, Fast};
use super::endpoint::DiskEndpoint;
use super::error::SyncError;
use super::point_target::PointJournalService;
use super::progress::Counters;
use super::proto::point_journal_client::PointJournalClient;
use super::proto::point_journal_server::PointJournalServer;
use super::proto::{
    Compression, Encoding, ExtentBlock, JournalRef, PointCommit, PointMessage, PointOpen, Progress,
    RollbackRequest, point_event, point_message,
};
use super::scan::BlockReader;
use super::throttle::Pacer;
use super::transport::{self, MAX_MESSAGE, Security};
use super::{PROTOCOL_VERSION, check_block_size};
use crate::disk::BlockDevice;
use crate::disk::image;
use crate::journal::{self, JournalOptions, NewPointMeta, PointMeta};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// The snapshot a cycle reads: an image path or a page blob (a cloud
/// adapter's `DISK-ID@SNAPSHOT-ID` endpoint).
pub type DiskSource = DiskEndpoint;

/// Per-extent bytes on the wire besides the payload (framing, digest).
const BLOCK_OVERHEAD: u64 = 64;

/// Extents sent and not yet accepted, at most.
const WINDOW: usize = 32;

/// Sends of one extent before the cycle gives up on a link that corrupts it.
const MAX_SENDS: u32 = 8;

/// One cycle's changed extents and where they go.
#[derive(Debug, Clone)]
pub struct ExtentShipment {
    /// The snapshot endpoint (read only).
    pub source: DiskSource,
    /// Changed byte ranges, sorted and disjoint (from the adapter's changed
    /// ranges or [`differing_ranges`]).
    pub ranges: Vec<Range<u64>>,
    /// The replica disk on the master target (under its roots).
    pub replica: PathBuf,
    /// Its journal directory (created by the first point).
    pub journal_dir: PathBuf,
    /// What the point records.
    pub point: NewPointMeta,
    /// Ranges are split into blocks of at most this many bytes
    /// ([`super::DEFAULT_BLOCK_SIZE`]).
    pub block_size: usize,
}

/// What a shipped cycle did.
#[derive(Debug, Clone)]
pub struct ShipOutcome {
    /// Bytes in the changed ranges.
    pub bytes_changed: u64,
    /// Bytes put on the wire (payloads after compression, per-extent
    /// overhead, resends).
    pub bytes_sent: u64,
    /// Wall-clock seconds from opening the source to the committed point.
    pub seconds: f64,
    /// The committed point.
    pub point: PointMeta,
    /// Points retention and the size cap dropped after the commit.
    pub pruned: Vec<journal::Pruned>,
    /// Points dropped before their retention ended.
    pub alarms: Vec<journal::Alarm>,
    /// Extents sent, resends included.
    pub blocks_sent: u64,
    /// Extents the master target rejected as corrupt (and that were resent).
    pub blocks_rejected: u64,
    /// Retention failed after the commit (the point is committed).
    pub retention_error: Option<String>,
    /// Size of the journal after the commit.
    pub journal_bytes: u64,
}

/// Test hooks that break the data path on purpose. Never set outside tests
/// and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct FaultInjection {
    /// Flip a byte of the first send of this many extents, after their
    /// digest was taken (the master target must reject and never write them).
    pub corrupt_first_sends: usize,
    /// Break the stream, without a commit, once this many extents were
    /// accepted.
    pub break_after_accepted: Option<u64>,
    /// Once this many extents were accepted, send nothing more, signal the
    /// `Notify`, and hold the stream open until the master target ends it
    /// (a test kills the master target mid-point).
    pub stall_after_accepted: Option<(u64, Arc<tokio::sync::Notify>)>,
}

/// How a cycle is shipped.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// Offer zstd.
    pub compress: bool,
    /// Bytes per second on the wire; `None` for no limit.
    pub limit_bytes_per_sec: Option<u64>,
    /// Faults to inject (tests only).
    pub faults: FaultInjection,
}

impl Default for ShipOptions {
    fn default() -> Self {
        ShipOptions {
            compress: true,
            limit_bytes_per_sec: None,
            faults: FaultInjection::default(),
        }
    }
}

/// Ships a cycle with both roles in this process (a master target on an
/// ephemeral loopback port, like [`super::local`]).
pub async fn ship_local(
    s: ExtentShipment,
    retention: JournalOptions,
    progress: watch::Sender<Progress>,
) -> Result<ShipOutcome, SyncError> {
    ship_local_with(s, retention, ShipOptions::default(), progress).await
}

/// [`ship_local`] with options (compression, a rate limit, faults).
pub async fn ship_local_with(
    mut s: ExtentShipment,
    retention: JournalOptions,
    options: ShipOptions,
    progress: watch::Sender<Progress>,
) -> Result<ShipOutcome, SyncError> {
    s.replica = absolute(&s.replica)?;
    s.journal_dir = absolute(&s.journal_dir)?;
    std::fs::create_dir_all(&s.journal_dir).map_err(|e| {
        SyncError::Config(format!(
            "cannot create the journal directory {}: {e}",
            s.journal_dir.display()
        ))
    })?;
    let roots = vec![parent(&s.replica)?, s.journal_dir.clone()];
    let service = PointJournalService::new(roots);
    let mut idle = service.idle_waiter();
    let (addr, stop, server) = serve_loopback(service).await?;
    let pacers: Vec<Arc<Pacer>> = options
        .limit_bytes_per_sec
        .map(|r| Arc::new(Pacer::new(r)))
        .into_iter()
        .collect();
    let result = ship(
        &format!("http://{addr}"),
        &Security::PlaintextLoopback,
        &s,
        &retention,
        &pacers,
        &options,
        progress,
    )
    .await;
    // A broken stream's point is undone by the master target's writer:
    // wait for it, so the journal is closed when this returns.
    idle.idle().await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

type Server = tokio::task::JoinHandle<Result<(), tonic::transport::Error>>;

/// Serves `service` on an ephemeral loopback port until `stop` fires.
async fn serve_loopback(
    service: PointJournalService,
) -> Result<
    (
        std::net::SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        Server,
    ),
    SyncError,
> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| SyncError::Config(format!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SyncError::Config(format!("cannot listen on loopback: {e}")))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = transport::server(addr, &Security::PlaintextLoopback)?
        .add_service(
            PointJournalServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(transport::incoming(listener), async {
            let _ = stopped.await;
        });
    Ok((addr, stop, tokio::spawn(server)))
}

fn absolute(path: &Path) -> Result<PathBuf, SyncError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .map_err(|e| SyncError::Config(format!("cannot resolve {}: {e}", path.display())))
}

fn parent(path: &Path) -> Result<PathBuf, SyncError> {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .ok_or_else(|| SyncError::Config(format!("{} has no directory", path.display())))
}

/// Checks `ranges` (sorted, disjoint, inside `capacity`) and splits them
/// into blocks of at most `block_size` bytes.
fn blocks_of(
    ranges: &[Range<u64>],
    capacity: u64,
    block_size: usize,
) -> Result<Vec<(u64, usize)>, SyncError> {
    let mut blocks = Vec::new();
    let mut end_before = 0;
    for r in ranges {
        if r.start > r.end || r.end > capacity || r.start < end_before {
            return Err(SyncError::Config(format!(
                "changed range {}..{} is {} (ranges must be sorted, disjoint and inside the {capacity}-byte disk)",
                r.start,
                r.end,
                if r.end > capacity {
                    "past the end of the disk"
                } else {
                    "out of order"
                }
            )));
        }
        end_before = r.end;
        let mut at = r.start;
        while at < r.end {
            let len = (r.end - at).min(block_size as u64);
            blocks.push((at, len as usize));
            at += len;
        }
    }
    Ok(blocks)
}

/// Ships `s` to the `PointJournal` service at `endpoint`. No retry: a
/// failed cycle leaves no point and is run again.
pub async fn ship(
    endpoint: &str,
    security: &Security,
    s: &ExtentShipment,
    retention: &JournalOptions,
    pacers: &[Arc<Pacer>],
    options: &ShipOptions,
    progress: watch::Sender<Progress>,
) -> Result<ShipOutcome, SyncError> {
    check_block_size(s.block_size).map_err(SyncError::Config)?;
    let started = Instant::now();
    let source = open_source(&s.source).await?;
    let capacity = source.capacity();
    let blocks = blocks_of(&s.ranges, capacity, s.block_size)?;
    let bytes_changed: u64 = blocks.iter().map(|(_, len)| *len as u64).sum();
    let counters = Arc::new(Counters::new(bytes_changed));
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
    let channel = transport::connect(endpoint, security).await?;
    let result = exchange(
        channel, source, s, retention, blocks, pacers, options, &counters,
    )
    .await;
    reporter.abort();
    let mut outcome = result?;
    outcome.bytes_changed = bytes_changed;
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

async fn open_source(source: &DiskSource) -> Result<Arc<dyn BlockDevice>, SyncError> {
    let endpoint = source.clone();
    let opened = tokio::task::spawn_blocking(move || endpoint.open(false, None))
        .await
        .map_err(|e| SyncError::Internal(format!("opening the source: {e}")))?;
    opened.map(Arc::from).map_err(|reason| SyncError::Source {
        path: source.address(),
        reason,
    })
}

/// An extent read, digested and encoded, ready to send.
struct Prepared {
    offset: u64,
    message: ExtentBlock,
}

fn read_error(source: &dyn BlockDevice, offset: u64, e: &std::io::Error) -> SyncError {
    SyncError::Source {
        path: source.describe(),
        reason: format!("read at offset {offset} failed: {e}"),
    }
}

/// Reads and encodes one extent.
fn prepare(
    source: &dyn BlockDevice,
    offset: u64,
    len: usize,
    encoder: &mut super::codec::Encoder,
) -> Result<Prepared, SyncError> {
    let mut data = vec![0u8; len];
    source
        .read_at(&mut data, offset)
        .map_err(|e| read_error(source, offset, &e))?;
    let strong = digest::strong(&data);
    let (encoding, payload) = if digest::is_zero(&data) {
        (Encoding::Zero, Vec::new())
    } else {
        encoder.encode(data)
    };
    Ok(Prepared {
        offset,
        message: ExtentBlock {
            offset,
            length: len as u32,
            encoding: encoding as i32,
            strong_digest: strong.to_vec(),
            payload,
        },
    })
}

fn unreachable(reason: impl Into<String>) -> SyncError {
    SyncError::Unreachable {
        endpoint: "the master target".to_string(),
        reason: reason.into(),
    }
}

/// One point: open, send every extent until accepted, commit.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    channel: Channel,
    source: Arc<dyn BlockDevice>,
    s: &ExtentShipment,
    retention: &JournalOptions,
    blocks: Vec<(u64, usize)>,
    pacers: &[Arc<Pacer>],
    options: &ShipOptions,
    counters: &Arc<Counters>,
) -> Result<ShipOutcome, SyncError> {
    let mut client = PointJournalClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let (messages, messages_rx) = mpsc::channel::<PointMessage>(4);
    let open = PointOpen {
        protocol_version: PROTOCOL_VERSION,
        journal: Some(JournalRef {
            replica_path: s.replica.display().to_string(),
            journal_dir: s.journal_dir.display().to_string(),
        }),
        capacity: source.capacity(),
        compression: if options.compress {
            vec![Compression::Zstd as i32]
        } else {
            Vec::new()
        },
        retention: Some(retention.into()),
    };
    let send = |message: point_message::Message| {
        let messages = messages.clone();
        async move {
            messages
                .send(PointMessage {
                    message: Some(message),
                })
                .await
                .map_err(|_| unreachable("the point stream closed"))
        }
    };
    send(point_message::Message::Open(open)).await?;
    let mut events = client
        .apply_point(ReceiverStream::new(messages_rx))
        .await?
        .into_inner();
    let opened = match events.message().await? {
        Some(event) => match event.event {
            Some(point_event::Event::Opened(opened)) => opened,
            _ => {
                return Err(SyncError::Internal(
                    "the master target did not answer PointOpen with PointOpened".into(),
                ));
            }
        },
        None => return Err(unreachable("the point stream ended before it opened")),
    };
    let compress = opened.compression == Compression::Zstd as i32;

    // The reader runs ahead of the window on a blocking thread.
    let (prepared_tx, mut prepared_rx) = mpsc::channel::<Result<Prepared, SyncError>>(8);
    let reader = {
        let source = source.clone();
        let counters = counters.clone();
        tokio::task::spawn_blocking(move || {
            let mut encoder = super::codec::Encoder::new(compress);
            for (offset, len) in blocks {
                let prepared = prepare(source.as_ref(), offset, len, &mut encoder);
                Counters::add(&counters.scanned, len as u64);
                let stop = prepared.is_err();
                if prepared_tx.blocking_send(prepared).is_err() || stop {
                    return;
                }
            }
        })
    };
    let _abort_reader = AbortOnDrop(reader);

    let mut in_flight: HashSet<u64> = HashSet::new();
    let mut lengths: HashMap<u64, usize> = HashMap::new();
    let mut sends: HashMap<u64, u32> = HashMap::new();
    let mut to_corrupt = options.faults.corrupt_first_sends;
    let mut accepted: u64 = 0;
    let mut reading = true;
    let mut resend_encoder = super::codec::Encoder::new(compress);
    loop {
        if !reading && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            next = prepared_rx.recv(), if reading && in_flight.len() < WINDOW => match next {
                Some(prepared) => {
                    let mut prepared = prepared?;
                    lengths.insert(prepared.offset, prepared.message.length as usize);
                    if to_corrupt > 0 {
                        to_corrupt -= 1;
                        corrupt(&mut prepared.message);
                    }
                    *sends.entry(prepared.offset).or_default() += 1;
                    in_flight.insert(prepared.offset);
                    send_block(&send, prepared.message, pacers, counters).await?;
                }
                None => reading = false,
            },
            event = events.message() => {
                let Some(event) = event? else {
                    return Err(unreachable("the point stream ended before the commit"));
                };
                match event.event {
                    Some(point_event::Event::Accepted(a)) => {
                        for offset in a.offsets {
                            if in_flight.remove(&offset) {
                                accepted += 1;
                            }
                        }
                        if options.faults.break_after_accepted.is_some_and(|n| accepted >= n) {
                            return Err(unreachable(format!(
                                "fault injection: the stream was broken after {accepted} accepted extents"
                            )));
                        }
                        if let Some((n, stalled)) = &options.faults.stall_after_accepted
                            && accepted >= *n
                        {
                            stalled.notify_one();
                            return Err(stall(&mut events).await);
                        }
                    }
                    Some(point_event::Event::Rejected(r)) => {
                        Counters::add(&counters.blocks_rejected, 1);
                        let count = sends.entry(r.offset).or_default();
                        if *count >= MAX_SENDS {
                            return Err(unreachable(format!(
                                "the extent at offset {} arrived corrupt {count} times ({}): the link is damaging data",
                                r.offset, r.reason
                            )));
                        }
                        *count += 1;
                        tracing::warn!(offset = r.offset, "the master target rejected an extent ({}); sending it again", r.reason);
                        let len = lengths.get(&r.offset).copied().ok_or_else(|| {
                            SyncError::Internal(format!("the master target rejected an extent at {} that was never sent", r.offset))
                        })?;
                        let source = source.clone();
                        let mut encoder = std::mem::replace(&mut resend_encoder, super::codec::Encoder::new(false));
                        let (prepared, encoder) = tokio::task::spawn_blocking(move || {
                            let p = prepare(source.as_ref(), r.offset, len, &mut encoder);
                            (p, encoder)
                        })
                        .await
                        .map_err(|e| SyncError::Internal(format!("re-reading an extent: {e}")))?;
                        resend_encoder = encoder;
                        send_block(&send, prepared?.message, pacers, counters).await?;
                    }
                    Some(point_event::Event::Committed(_)) => {
                        return Err(SyncError::Internal("the master target committed before the commit was sent".into()));
                    }
                    Some(point_event::Event::Opened(_)) | None => {}
                }
            }
        }
    }

    send(point_message::Message::Commit(PointCommit {
        taken_at: s.point.taken_at,
        app_consistent: s.point.app_consistent,
        consistency_id: s.point.consistency_id.clone().unwrap_or_default(),
        label: s.point.label.clone(),
        blocks: accepted,
    }))
    .await?;
    loop {
        let Some(event) = events.message().await? else {
            return Err(unreachable(
                "the point stream ended before the point was committed",
            ));
        };
        if let Some(point_event::Event::Committed(c)) = event.event {
            let point = c
                .point
                .ok_or_else(|| SyncError::Internal("PointCommitted names no point".into()))?;
            let snapshot = counters.snapshot();
            return Ok(ShipOutcome {
                bytes_changed: 0,
                bytes_sent: snapshot.bytes_sent,
                seconds: 0.0,
                point: point.into(),
                pruned: c.pruned.iter().filter_map(|p| p.to_journal()).collect(),
                alarms: c.alarms.into_iter().map(Into::into).collect(),
                blocks_sent: snapshot.blocks_sent,
                blocks_rejected: snapshot.blocks_rejected,
                retention_error: Some(c.retention_error).filter(|e| !e.is_empty()),
                journal_bytes: c.journal_bytes,
            });
        }
    }
}

/// Holds the point stream open, sending nothing, until the master target
/// ends it (fault injection).
async fn stall(events: &mut tonic::Streaming<super::proto::PointEvent>) -> SyncError {
    loop {
        match events.message().await {
            Ok(Some(_)) => {}
            Ok(None) => return unreachable("fault injection: the stalled point stream ended"),
            Err(status) => return status.into(),
        }
    }
}

/// Flips a byte of what travels, after the digest was taken.
fn corrupt(block: &mut ExtentBlock) {
    match block.payload.first_mut() {
        Some(byte) => *byte ^= 0x5a,
        None => {
            if let Some(byte) = block.strong_digest.first_mut() {
                *byte ^= 0x5a;
            }
        }
    }
}

async fn send_block<F, Fut>(
    send: &F,
    block: ExtentBlock,
    pacers: &[Arc<Pacer>],
    counters: &Counters,
) -> Result<(), SyncError>
where
    F: Fn(point_message::Message) -> Fut,
    Fut: std::future::Future<Output = Result<(), SyncError>>,
{
    let wire = block.payload.len() as u64 + BLOCK_OVERHEAD;
    for pacer in pacers {
        let wait = pacer.reserve(wire);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    send(point_message::Message::Block(block)).await?;
    Counters::add(&counters.sent, wire);
    Counters::add(&counters.blocks_sent, 1);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The journal's retained points, read by the master target at `endpoint`.
pub async fn list_points(
    endpoint: &str,
    security: &Security,
    replica: &Path,
    journal_dir: &Path,
) -> Result<Vec<PointMeta>, SyncError> {
    let channel = transport::connect(endpoint, security).await?;
    let reply = PointJournalClient::new(channel)
        .list_points(JournalRef {
            replica_path: replica.display().to_string(),
            journal_dir: journal_dir.display().to_string(),
        })
        .await?
        .into_inner();
    Ok(reply.points.into_iter().map(Into::into).collect())
}

/// Takes the replica back to point `seq` on the master target at
/// `endpoint`; returns the points retained after it.
pub async fn rollback(
    endpoint: &str,
    security: &Security,
    replica: &Path,
    journal_dir: &Path,
    seq: u64,
) -> Result<Vec<PointMeta>, SyncError> {
    let channel = transport::connect(endpoint, security).await?;
    let reply = PointJournalClient::new(channel)
        .rollback(RollbackRequest {
            journal: Some(JournalRef {
                replica_path: replica.display().to_string(),
                journal_dir: journal_dir.display().to_string(),
            }),
            seq,
        })
        .await?
        .into_inner();
    Ok(reply.points.into_iter().map(Into::into).collect())
}

/// The ranges (whole blocks of `block_size`, merged when adjacent) where
/// `source` and the replica differ, found by the fast digest of every block
/// of both. This reads **both disks fully** (in parallel); use it when the
/// adapter's changed ranges cannot be trusted. A replica larger than the
/// source is compared over the source's size.
pub async fn differing_ranges(
    source: &DiskSource,
    replica: &Path,
    block_size: usize,
) -> Result<Vec<Range<u64>>, SyncError> {
    check_block_size(block_size).map_err(SyncError::Config)?;
    let source_dev = open_source(source).await?;
    let replica_path = replica.to_path_buf();
    let replica_dev: Arc<dyn BlockDevice> =
        tokio::task::spawn_blocking(move || image::open(&replica_path, false, None))
            .await
            .map_err(|e| SyncError::Internal(format!("opening the replica: {e}")))?
            .map(Arc::from)
            .map_err(|e| SyncError::Config(format!("replica {}: {e}", replica.display())))?;
    let capacity = source_dev.capacity();
    if replica_dev.capacity() < capacity {
        return Err(SyncError::Config(format!(
            "replica {} holds {} bytes, fewer than the source's {capacity}",
            replica.display(),
            replica_dev.capacity()
        )));
    }
    let leaves = |device: Arc<dyn BlockDevice>| {
        tokio::task::spawn_blocking(move || leaves_of(device.as_ref(), capacity, block_size))
    };
    let (a, b) = tokio::join!(leaves(source_dev), leaves(replica_dev));
    let join = |e: tokio::task::JoinError| SyncError::Internal(format!("digesting a disk: {e}"));
    let a = a.map_err(join)??;
    let b = b.map_err(join)??;
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for (index, (x, y)) in a.iter().zip(&b).enumerate() {
        if x == y {
            continue;
        }
        let start = index as u64 * block_size as u64;
        let end = (start + block_size as u64).min(capacity);
        match ranges.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => ranges.push(start..end),
        }
    }
    Ok(ranges)
}

/// Fast digests of the first `capacity` bytes of `device`, block by block.
fn leaves_of(
    device: &dyn BlockDevice,
    capacity: u64,
    block_size: usize,
) -> Result<Vec<Fast>, SyncError> {
    let blocks = capacity.div_ceil(block_size as u64);
    let mut reader = BlockReader::new(device, block_size);
    let mut leaves = Vec::with_capacity(usize::try_from(blocks).unwrap_or(0));
    for index in 0..blocks {
        let offset = index * block_size as u64;
        let block = reader
            .block(index)
            .map_err(|e| read_error(device, offset, &e))?;
        // The device may be larger than `capacity`: compare only what the
        // source has.
        let len = super::block_len(capacity, block_size, index);
        leaves.push(digest::fast(&block[..len.min(block.len())]));
    }
    Ok(leaves)
}
