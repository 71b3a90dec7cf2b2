//! The plugin runtime: everything between a `.wasm` file and a bounded call.
//!
//! ```text
//!  bytes ──► manifest ──► api ──► cache/compile ──► link ──► LoadedPlugin ──► PluginInstance
//!            (custom      (0.1.x?)  (by content +    (InstancePre   (shared meta,     (store: WASI ctx,
//!             section)              engine hash)      per kind)      grants, limits)   HTTP gate, caps)
//! ```
//!
//! - [`manifest`]: what a plugin is and asks for, read before any code runs.
//! - [`api`]: which WIT API lines this host serves, and the compatibility rule.
//! - [`capability`]: the granter, the intersection of request and grant.
//! - [`runtime`]: the engine, linker, epoch ticker and [`Runtime::load`].
//! - [`cache`]: precompiled components on disk.
//! - [`loaded`], [`instance`]: a loaded plugin and its instances.
//! - [`adapter`]: calls into hypervisor and cloud adapters.
//! - [`volume`]: a file system opened by a handler plugin (`volume` resource).
//! - [`state`]: the per-instance sandbox (WASI context, HTTP gate).
//! - [`tls`]: HTTPS to an endpoint under the operator's CA or pinned thumbprint.
//! - [`limits`]: memory cap, deadline, fuel, and how a stop is explained.
//! - [`wit`]: the generated bindings of each API line and the host interfaces.

pub mod adapter;
pub mod api;
pub mod cache;
pub mod capability;
pub mod error;
pub mod instance;
pub mod limits;
pub mod loaded;
pub mod manifest;
pub mod runtime;
pub mod state;
pub mod tls;
pub mod volume;
pub mod wit;

pub use error::{Failure, PluginError};
pub use instance::{CallStats, CostMeter, CostTotals, LogRecorder, PluginInstance};
pub use limits::Limits;
pub use loaded::{LoadedPlugin, PluginMeta, PluginSettings};
pub use manifest::{Manifest, PluginKind};
pub use runtime::{Runtime, RuntimeOptions};
pub use volume::PluginVolume;
