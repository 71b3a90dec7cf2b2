//! The master target's side of continuous replication: the `PointJournal`
//! service, which writes one recovery point's changed extents into a replica
//! through its undo journal ([`crate::journal`]) and reads the journal back.
//!
//! Invariants kept here:
//! - **No unverified byte is ever written**: each extent's BLAKE3 digest is
//!   checked against its decoded bytes before [`PointWriter::write`]; a
//!   mismatch is answered `Rejected` (the process server sends it again) and
//!   nothing of it reaches the replica or the journal.
//! - **A point exists only once committed**: the journal is opened (which
//!   undoes what a crash left uncommitted), one point begun, and it is
//!   committed only on `PointCommit` after the number of extents written
//!   matches what the process server says it sent. A stream that ends or
//!   breaks first drops the [`PointWriter`], which undoes the point (or, if
//!   the process dies, the next open does).
//! - Replica and journal directory lie under the master target's roots.
//! - The journal is open only while a request uses it, so the journal's own
//!   lock refuses a second writer and an in-process caller (a failover on
//!   the same host) can open it between cycles.

use super::PROTOCOL_VERSION;
use super::codec;
use super::digest;
use super::proto::point_journal_server::PointJournal;
use super::proto::{
    Accepted, Compression, Encoding, JournalPoint, JournalRef, ListPointsReply, PointCommitted,
    PointEvent, PointMessage, PointOpen, PointOpened, RejectedExtent, RollbackReply,
    RollbackRequest, point_event, point_message,
};
use super::target::resolve_under_roots;
use crate::disk::BlockDevice;
use crate::disk::image;
use crate::journal::{self, Journal, JournalError, JournalOptions, NewPointMeta};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// The `PointJournal` service of a master target.
#[derive(Debug)]
pub struct PointJournalService {
    roots: Vec<PathBuf>,
    /// Requests holding a journal open; see [`idle`](Self::idle).
    busy: Arc<watch::Sender<usize>>,
}

/// Counts a request as busy until dropped.
struct BusyGuard(Arc<watch::Sender<usize>>);

impl BusyGuard {
    fn new(busy: &Arc<watch::Sender<usize>>) -> Self {
        busy.send_modify(|n| *n += 1);
        BusyGuard(busy.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl PointJournalService {
    /// A service writing replicas and journals under `roots`.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        PointJournalService {
            roots,
            busy: Arc::new(watch::channel(0).0),
        }
    }

    /// A handle that waits until no request holds a journal open (the
    /// writer of a broken stream may still be undoing its point when the
    /// client already saw the break).
    pub fn idle_waiter(&self) -> IdleWaiter {
        IdleWaiter(self.busy.subscribe())
    }

    fn resolve(&self, journal: &JournalRef) -> Result<(PathBuf, PathBuf), Status> {
        let replica = absolute("replica", &journal.replica_path)?;
        let dir = absolute("journal directory", &journal.journal_dir)?;
        let replica = resolve_under_roots(&self.roots, &replica)?;
        let dir = resolve_under_roots(&self.roots, &dir)?;
        Ok((replica, dir))
    }
}

/// Waits for a [`PointJournalService`] to hold no journal open.
#[derive(Debug, Clone)]
pub struct IdleWaiter(watch::Receiver<usize>);

impl IdleWaiter {
    /// Returns once no request holds a journal open.
    pub async fn idle(&mut self) {
        let _ = self.0.wait_for(|n| *n == 0).await;
    }
}

fn absolute(what: &str, path: &str) -> Result<PathBuf, Status> {
    let path = PathBuf::from(path);
    if path.as_os_str().is_empty() || !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "the {what} path `{}` must be absolute",
            path.display()
        )));
    }
    Ok(path)
}

/// A journal error as a gRPC status: the message names files, never data.
fn journal_status(e: JournalError) -> Status {
    match &e {
        JournalError::InUse { .. } => Status::failed_precondition(e.to_string()),
        JournalError::NoSuchPoint { .. } => Status::not_found(e.to_string()),
        JournalError::OutOfRange { .. } | JournalError::InvalidMeta(_) => {
            Status::invalid_argument(e.to_string())
        }
        JournalError::Io { .. } | JournalError::Replica { .. } => Status::internal(e.to_string()),
        _ => Status::failed_precondition(e.to_string()),
    }
}

/// Opens the replica for writing and its journal.
fn open_journal(
    replica: &Path,
    dir: &Path,
    options: JournalOptions,
) -> Result<(Journal, journal::Recovered), Status> {
    let device: Arc<dyn BlockDevice> =
        Arc::from(image::open(replica, true, None).map_err(|e| {
            Status::failed_precondition(format!(
                "replica {} cannot be opened for writing: {e}",
                replica.display()
            ))
        })?);
    Journal::open(dir, device, options).map_err(journal_status)
}

fn points(journal: &Journal) -> Vec<JournalPoint> {
    journal.points().iter().map(JournalPoint::from).collect()
}

type PointEventStream = Pin<Box<dyn Stream<Item = Result<PointEvent, Status>> + Send>>;

/// Messages buffered between the stream and the writer thread.
const INBOUND: usize = 8;

#[tonic::async_trait]
impl PointJournal for PointJournalService {
    type ApplyPointStream = PointEventStream;

    async fn apply_point(
        &self,
        request: Request<Streaming<PointMessage>>,
    ) -> Result<Response<PointEventStream>, Status> {
        let mut inbound = request.into_inner();
        let open = match inbound.message().await? {
            Some(PointMessage {
                message: Some(point_message::Message::Open(open)),
            }) => open,
            _ => {
                return Err(Status::invalid_argument(
                    "a point stream must start with PointOpen",
                ));
            }
        };
        if open.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "the process server speaks replication protocol {}, this master target speaks {PROTOCOL_VERSION}: upgrade the older side",
                open.protocol_version
            )));
        }
        let journal_ref = open
            .journal
            .clone()
            .ok_or_else(|| Status::invalid_argument("PointOpen names no journal"))?;
        let (replica, dir) = self.resolve(&journal_ref)?;
        let (events, rx) = mpsc::channel(64);
        let (messages, messages_rx) = mpsc::channel::<PointMessage>(INBOUND);
        let guard = BusyGuard::new(&self.busy);
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            if let Err(status) = write_point(&open, &replica, &dir, messages_rx, &events) {
                tracing::warn!(replica = %replica.display(), "point not written: {}", status.message());
                let _ = events.blocking_send(Err(status));
            }
        });
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(message)) => {
                        if messages.send(message).await.is_err() {
                            return; // the writer stopped and reported why
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        tracing::warn!("point stream broke: {status}");
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_points(
        &self,
        request: Request<JournalRef>,
    ) -> Result<Response<ListPointsReply>, Status> {
        let (replica, dir) = self.resolve(request.get_ref())?;
        let guard = BusyGuard::new(&self.busy);
        let reply = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let (journal, _) = open_journal(&replica, &dir, JournalOptions::default())?;
            Ok::<_, Status>(ListPointsReply {
                points: points(&journal),
                journal_bytes: journal.bytes(),
            })
        })
        .await
        .map_err(|e| Status::internal(format!("listing points: {e}")))??;
        Ok(Response::new(reply))
    }

    async fn rollback(
        &self,
        request: Request<RollbackRequest>,
    ) -> Result<Response<RollbackReply>, Status> {
        let req = request.into_inner();
        let journal_ref = req
            .journal
            .ok_or_else(|| Status::invalid_argument("RollbackRequest names no journal"))?;
        let (replica, dir) = self.resolve(&journal_ref)?;
        let guard = BusyGuard::new(&self.busy);
        let reply = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let (mut journal, _) = open_journal(&replica, &dir, JournalOptions::default())?;
            journal.rollback_to(req.seq).map_err(journal_status)?;
            Ok::<_, Status>(RollbackReply {
                points: points(&journal),
            })
        })
        .await
        .map_err(|e| Status::internal(format!("rolling back: {e}")))??;
        Ok(Response::new(reply))
    }
}

fn send(events: &mpsc::Sender<Result<PointEvent, Status>>, event: point_event::Event) -> bool {
    events
        .blocking_send(Ok(PointEvent { event: Some(event) }))
        .is_ok()
}

/// Opens the journal, writes verified extents into one point until the
/// commit, commits. Returns early (the point undone) when the stream ends.
fn write_point(
    open: &PointOpen,
    replica: &Path,
    dir: &Path,
    mut messages: mpsc::Receiver<PointMessage>,
    events: &mpsc::Sender<Result<PointEvent, Status>>,
) -> Result<(), Status> {
    let options = open
        .retention
        .as_ref()
        .map(JournalOptions::from)
        .unwrap_or_default();
    let (mut journal, recovered) = open_journal(replica, dir, options)?;
    let capacity = journal.replica().capacity();
    if capacity < open.capacity {
        return Err(Status::failed_precondition(format!(
            "replica {} holds {capacity} bytes, smaller than the source's {}",
            replica.display(),
            open.capacity
        )));
    }
    if let Some(undone) = &recovered.undone_point {
        tracing::warn!(
            journal = %dir.display(),
            "point {} was left uncommitted (a crash or a broken stream) and has been undone",
            undone.seq
        );
    }
    let compression = if open.compression.contains(&(Compression::Zstd as i32)) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let mut writer = journal.begin().map_err(journal_status)?;
    let opened = PointOpened {
        compression: compression as i32,
        seq: writer.seq(),
        created: recovered.created,
        undone_seq: recovered.undone_point.as_ref().map_or(0, |u| u.seq),
        replica_capacity: capacity,
    };
    if !send(events, point_event::Event::Opened(opened)) {
        return Ok(());
    }
    let mut written: u64 = 0;
    while let Some(message) = messages.blocking_recv() {
        match message.message {
            Some(point_message::Message::Block(block)) => {
                let len = block.length as usize;
                if block
                    .offset
                    .checked_add(len as u64)
                    .is_none_or(|end| end > open.capacity)
                    || len == 0
                    || len > super::MAX_BLOCK_SIZE
                {
                    return Err(Status::invalid_argument(format!(
                        "an extent of {len} bytes at offset {} does not fit a {}-byte disk in one block",
                        block.offset, open.capacity
                    )));
                }
                let encoding = Encoding::try_from(block.encoding).unwrap_or(Encoding::Raw);
                let verified =
                    codec::decode(encoding, block.payload.into(), len).and_then(|data| {
                        if digest::strong(&data).as_slice() == block.strong_digest.as_slice() {
                            Ok(data)
                        } else {
                            Err("its BLAKE3 digest does not match its bytes".to_string())
                        }
                    });
                match verified {
                    Ok(data) => {
                        writer.write(block.offset, &data).map_err(journal_status)?;
                        written += 1;
                        let accepted = Accepted {
                            offsets: vec![block.offset],
                        };
                        if !send(events, point_event::Event::Accepted(accepted)) {
                            return Ok(());
                        }
                    }
                    Err(reason) => {
                        tracing::warn!(
                            offset = block.offset,
                            "rejected a corrupt extent: {reason}"
                        );
                        let rejected = RejectedExtent {
                            offset: block.offset,
                            reason,
                        };
                        if !send(events, point_event::Event::Rejected(rejected)) {
                            return Ok(());
                        }
                    }
                }
            }
            Some(point_message::Message::Commit(commit)) => {
                if commit.blocks != written {
                    return Err(Status::failed_precondition(format!(
                        "the process server sent {} extents but {written} were written: the point is not committed",
                        commit.blocks
                    )));
                }
                let meta = NewPointMeta {
                    taken_at: commit.taken_at,
                    app_consistent: commit.app_consistent,
                    consistency_id: Some(commit.consistency_id).filter(|id| !id.is_empty()),
                    label: commit.label,
                };
                let committed = writer.commit(meta).map_err(journal_status)?;
                tracing::info!(
                    journal = %dir.display(),
                    seq = committed.meta.seq,
                    extents = written,
                    "recovery point committed"
                );
                let reply = PointCommitted {
                    point: Some(JournalPoint::from(&committed.meta)),
                    pruned: committed.pruned.iter().map(Into::into).collect(),
                    alarms: committed.alarms.iter().map(Into::into).collect(),
                    retention_error: committed
                        .retention_error
                        .map(|e| e.to_string())
                        .unwrap_or_default(),
                    journal_bytes: journal.bytes(),
                };
                send(events, point_event::Event::Committed(reply));
                return Ok(());
            }
            Some(point_message::Message::Open(_)) | None => {
                return Err(Status::invalid_argument(
                    "a point stream opens once, then sends extents and one commit",
                ));
            }
        }
    }
    tracing::warn!(
        journal = %dir.display(),
        "the point stream ended before its commit: the point is undone"
    );
    Ok(())
}
