//! `homeward sync`: both roles in one process, talking gRPC over loopback, so
//! operators, tests and the workflows run the real data path with one call.

use super::endpoint::DiskEndpoint;
use super::error::SyncError;
use super::proto::Progress;
use super::proto::master_target_server::MasterTargetServer;
use super::source::{self, RetryPolicy, SyncOutcome, SyncSpec};
use super::target::{CheckpointPolicy, MasterTargetService, TargetConfig};
use super::throttle::Pacer;
use super::transport::{self, MAX_MESSAGE, Security};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// Runs a master target on an ephemeral loopback port for the target's
/// directory (none for a page-blob target, which the spec names itself),
/// and syncs `spec` to it.
pub async fn run(
    mut spec: SyncSpec,
    limit_bytes_per_sec: Option<u64>,
    checkpoint: CheckpointPolicy,
    progress: watch::Sender<Progress>,
) -> Result<SyncOutcome, SyncError> {
    let mut roots = Vec::new();
    if let DiskEndpoint::Path(path) = &spec.target {
        let target = absolute(path)?;
        let root = target.parent().map(Path::to_path_buf).ok_or_else(|| {
            SyncError::Config(format!("target {} has no directory", target.display()))
        })?;
        roots.push(root);
        spec.target = DiskEndpoint::Path(target);
    }
    let service = MasterTargetService::new(TargetConfig { roots, checkpoint });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| SyncError::Config(format!("cannot listen on loopback: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SyncError::Config(format!("cannot listen on loopback: {e}")))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = transport::server(addr, &Security::PlaintextLoopback)?
        .add_service(
            MasterTargetServer::new(service)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(transport::incoming(listener), async {
            let _ = stopped.await;
        });
    let server = tokio::spawn(server);
    let pacers: Vec<Arc<Pacer>> = limit_bytes_per_sec
        .map(|r| Arc::new(Pacer::new(r)))
        .into_iter()
        .collect();
    let retry = RetryPolicy::default();
    let result = source::run(
        &format!("http://{addr}"),
        &Security::PlaintextLoopback,
        &spec,
        &pacers,
        retry,
        progress,
    )
    .await;
    let _ = stop.send(());
    let _ = server.await;
    result
}

fn absolute(path: &Path) -> Result<PathBuf, SyncError> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .map_err(|e| SyncError::Config(format!("cannot resolve {}: {e}", path.display())))
}
