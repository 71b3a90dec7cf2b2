//! The control API server: the state directory opened with its token files,
//! the `Control` service behind [`Authorized`], and the reflection services,
//! served on a listener until stopped.
//!
//! Reflection needs no token: it describes `control.proto` (which ships with
//! Homeward) and nothing of the server's state, and generic tools such as
//! `grpcurl 127.0.0.1:9440 list` should work before anyone has a token. A
//! token sent along is ignored by it.
//!
//! The API is plaintext HTTP/2, so it listens on loopback only: a bearer
//! token must not cross a network in clear. Reach a server from elsewhere
//! through an SSH tunnel or a TLS-terminating proxy.

use super::auth::{self, AuthError, Authorized, TokenFile};
use super::proto::{self, control_server::ControlServer};
use super::service::ControlService;
use super::state::StateDir;
use crate::store::{Store, StoreError};
use crate::workflow::Orchestrator;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a stop waits for open calls (watch streams above all) to end
/// before it drops them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Not a loopback address.
    #[error(
        "the control API listens on loopback only (it has no TLS, and tokens must not cross a \
         network in clear), not on {0}: use 127.0.0.1:PORT or [::1]:PORT and reach it through an \
         SSH tunnel or a TLS-terminating proxy"
    )]
    NotLoopback(SocketAddr),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    /// The state directory cannot be created.
    #[error("cannot create the state directory {path}: {reason}")]
    StateDir { path: String, reason: String },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Tokens could not be made.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The reflection service could not read the descriptors (a build bug).
    #[error("the reflection service cannot start: {0}")]
    Reflection(String),
    /// Serving failed.
    #[error("the control API failed: {0}")]
    Transport(String),
}

/// Refuses an address other than loopback (see the module docs).
pub fn check_listen(addr: SocketAddr) -> Result<(), ServeError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::NotLoopback(addr))
    }
}

/// Opens (creating on first start) the state directory's store and makes
/// sure each role has its token file.
pub fn open_state(state: &StateDir) -> Result<(Arc<Store>, Vec<TokenFile>), ServeError> {
    // Owner only: it holds the store and the token files.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state.root())
        .map_err(|e| ServeError::StateDir {
            path: state.root().display().to_string(),
            reason: e.to_string(),
        })?;
    let store = Arc::new(Store::open(&state.store_path())?);
    let tokens = auth::ensure_token_files(&store, state)?;
    Ok((store, tokens))
}

/// A running control API server.
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Starts serving the orchestrator's control API on `listen` (port 0: any
/// free port; [`ServerHandle::addr`] says which). Must run inside tokio.
pub async fn spawn(
    orchestrator: Orchestrator,
    listen: SocketAddr,
) -> Result<ServerHandle, ServeError> {
    check_listen(listen)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Listen {
            addr: listen,
            reason: e.to_string(),
        })?;
    let addr = listener.local_addr().map_err(|e| ServeError::Listen {
        addr: listen,
        reason: e.to_string(),
    })?;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    // grpcurl before 1.8.8 and some other tools only speak v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let store = orchestrator.store().clone();
    let control = Authorized::new(ControlServer::new(ControlService::new(orchestrator)), store);
    let (shutdown, stopped) = oneshot::channel::<()>();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(control)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );
    Ok(ServerHandle {
        addr,
        shutdown: Some(shutdown),
        task,
    })
}

impl ServerHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking calls and waits for open ones; drops those still open
    /// after a grace period.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match tokio::time::timeout(STOP_GRACE, &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(ServeError::Transport(e.to_string())),
            Ok(Err(e)) => Err(ServeError::Transport(e.to_string())),
            Err(_) => {
                self.task.abort();
                Ok(())
            }
        }
    }

    /// Waits until the server stops by itself (it fails); `stop` is the
    /// normal way to end it.
    pub async fn finished(&mut self) -> Result<(), ServeError> {
        match (&mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeError::Transport(e.to_string())),
            Err(e) => Err(ServeError::Transport(e.to_string())),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
