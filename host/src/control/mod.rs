//! The control API (`homeward.control.v1`, `proto/control.proto`): how
//! operators and scripts drive a Homeward server over gRPC, and the client
//! the `homeward` command line uses for it.
//!
//! ```text
//!  homeward site/group/plan/reprotect/failover/jobs/admin …  (cli/, over client.rs)
//!        │  authorization: Bearer TOKEN
//!        ▼
//!  server.rs: Authorized ── SHA-256(token) ─► Store::token_role ─► role enough for the method?
//!        │ yes                        no token / unknown: UNAUTHENTICATED; too weak: PERMISSION_DENIED
//!        ▼
//!  service.rs: ControlService ─► Orchestrator (validate, submit jobs) / Store / Scheduler (events)
//!                                  on blocking threads; errors through status.rs
//!  reflection (grpc.reflection.v1): no token needed; it describes the API, nothing else
//! ```
//!
//! - [`auth`]: tokens (random, stored as digests), token files, roles per method.
//! - [`state`]: the server's state directory and the lock that says a server runs.
//! - [`server`]: the gRPC server: authorization layer, reflection, serving.
//! - [`service`]: the RPCs.
//! - [`convert`]: store records ↔ protobuf messages.
//! - [`settings`]: a group's settings merged from a request, and validated.
//! - [`status`]: errors → gRPC status codes (never a secret in a message).
//! - [`client`]: connecting with a token; a call's failure → the CLI's exit code.

pub mod auth;
pub mod client;
pub mod convert;
pub mod proto;
pub mod server;
pub mod service;
pub mod settings;
pub mod state;
pub mod status;

/// The control API's default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9440";

/// The control API's default URL for clients.
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:9440";

/// The gRPC service name, as reflection lists it.
pub const SERVICE_NAME: &str = "homeward.control.v1.Control";
