//! The process server's gRPC service: the configuration server (or an
//! operator) asks it to sync one of its source disks to a master target; it
//! streams progress, then the summary.
//!
//! Limits are the process server's: a bandwidth cap shared by all its syncs
//! (on top of each sync's own), and how many disks sync at once.

use super::endpoint::DiskEndpoint;
use super::proto::process_server_server::ProcessServer;
use super::proto::{Mode, SyncEvent, SyncRequest, SyncSummary, sync_event};
use super::source::{self, RetryPolicy, SyncSpec};
use super::throttle::Pacer;
use super::transport::Security;
use super::{DEFAULT_BLOCK_SIZE, SyncError};
use crate::disk::image::ImageFormat;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Configuration of a process server.
#[derive(Debug, Clone)]
pub struct ProcessServerConfig {
    /// Directories source disks may be read from.
    pub source_roots: Vec<PathBuf>,
    /// How this process server reaches master targets.
    pub security: Security,
    /// Bytes per second for all syncs together; `None` for no cap.
    pub limit_bytes_per_sec: Option<u64>,
    /// How many disks may sync at once.
    pub max_parallel: usize,
    /// How long to keep reconnecting to a master target.
    pub retry: RetryPolicy,
}

/// The process-server gRPC service.
#[derive(Debug)]
pub struct ProcessServerService {
    config: ProcessServerConfig,
    pacer: Option<Arc<Pacer>>,
    parallel: Arc<Semaphore>,
}

impl ProcessServerService {
    /// A process server with `config`.
    pub fn new(config: ProcessServerConfig) -> Self {
        ProcessServerService {
            pacer: config.limit_bytes_per_sec.map(|r| Arc::new(Pacer::new(r))),
            parallel: Arc::new(Semaphore::new(config.max_parallel.max(1))),
            config,
        }
    }

    fn spec(&self, req: &SyncRequest) -> Result<SyncSpec, Status> {
        let source = PathBuf::from(&req.source_path);
        if !self
            .config
            .source_roots
            .iter()
            .any(|root| is_inside(&source, root))
        {
            return Err(Status::permission_denied(format!(
                "{} is not under this process server's source roots (--source-root)",
                source.display()
            )));
        }
        let format = |f: &str| -> Result<Option<ImageFormat>, Status> {
            if f.is_empty() {
                Ok(None)
            } else {
                f.parse()
                    .map(Some)
                    .map_err(|e: crate::disk::DiskError| Status::invalid_argument(e.to_string()))
            }
        };
        Ok(SyncSpec {
            source: DiskEndpoint::Path(source),
            source_format: format(&req.source_format)?,
            target: DiskEndpoint::Path(PathBuf::from(&req.target_path)),
            target_format: format(&req.target_format)?,
            mode: Mode::try_from(req.mode).unwrap_or(Mode::Full),
            block_size: if req.block_size == 0 {
                DEFAULT_BLOCK_SIZE
            } else {
                req.block_size as usize
            },
            compress: req.compress,
            in_use: None,
        })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<SyncEvent, Status>> + Send>>;

#[tonic::async_trait]
impl ProcessServer for ProcessServerService {
    type SyncStream = EventStream;

    async fn sync(&self, request: Request<SyncRequest>) -> Result<Response<EventStream>, Status> {
        let req = request.into_inner();
        let spec = self.spec(&req)?;
        let mut pacers: Vec<Arc<Pacer>> = self.pacer.iter().cloned().collect();
        if req.limit_bytes_per_sec > 0 {
            pacers.push(Arc::new(Pacer::new(req.limit_bytes_per_sec)));
        }
        let parallel = self.parallel.clone();
        let security = self.config.security.clone();
        let retry = self.config.retry;
        let endpoint = req.master_target.clone();
        let (events, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let Ok(_permit) = parallel.acquire_owned().await else {
                return;
            };
            let (progress, mut watcher) = watch::channel(super::proto::Progress::default());
            let forward = {
                let events = events.clone();
                tokio::spawn(async move {
                    while watcher.changed().await.is_ok() {
                        let snapshot = *watcher.borrow_and_update();
                        let event = SyncEvent {
                            event: Some(sync_event::Event::Progress(snapshot)),
                        };
                        if events.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                })
            };
            let result = source::run(&endpoint, &security, &spec, &pacers, retry, progress).await;
            forward.abort();
            let message = match result {
                Ok(outcome) => Ok(SyncEvent {
                    event: Some(sync_event::Event::Done(SyncSummary {
                        totals: Some(outcome.totals),
                        root: outcome.root.to_vec(),
                        seconds: outcome.seconds,
                    })),
                }),
                Err(e) => Err(status_of(&e)),
            };
            let _ = events.send(message).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn status_of(e: &SyncError) -> Status {
    match e {
        SyncError::Source { .. } => Status::failed_precondition(e.to_string()),
        SyncError::Config(_) | SyncError::Tls { .. } => Status::invalid_argument(e.to_string()),
        SyncError::Unreachable { .. } => Status::unavailable(e.to_string()),
        SyncError::Refused(_) => Status::failed_precondition(e.to_string()),
        SyncError::Mismatch { .. } | SyncError::Internal(_) => Status::internal(e.to_string()),
    }
}

/// Whether `path` is inside `root` (both resolved).
fn is_inside(path: &Path, root: &Path) -> bool {
    matches!((path.canonicalize(), root.canonicalize()), (Ok(p), Ok(r)) if p.starts_with(&r))
}
