//! # Homeward host
//!
//! The native half of Homeward: it owns the plugin runtime (sandboxed WASM
//! component plugins behind the WIT API in `wit/`), the operator's plugin-set
//! configuration, the block devices the data path moves, and the guest file
//! trees guest steps read. `ARCHITECTURE.md` at the repository root has the
//! bird's-eye view and the invariants.
//!
//! - [`plugin`]: load, check, sandbox and call plugins.
//! - [`config`]: the plugin-set file (`homeward.toml`) and its diagnostics.
//! - [`disk`]: block devices, and the partitions and logical volumes on them.
//! - [`filesystem`]: file systems on volumes, through the handler plugins,
//!   and a guest's tree assembled from its disks.
//! - [`guest_steps`]: running guest post-steps: plan, apply, plan again.
//! - [`guest_fs`]: guest root file trees, confined to their root.
//! - [`embedded`]: the plugins built into the `homeward` binary.
//! - [`sync`]: the replication data path (process server, master target).
//! - [`bench`](mod@bench): the plugin-runtime benchmark behind `homeward bench plugins`.
//! - [`bench_plan`]: the 1000-VM recovery-plan benchmark (`homeward bench plan`).
//! - [`bench_replication`]: replication cycles and the sustained change rate (`homeward bench replication`).
//! - [`scaffold`]: new plugin crates from templates (`homeward plugin new`).
//! - [`store`]: the state store (the configuration server): SQLite, migrations, backup.
//! - [`jobs`]: the durable job scheduler (steps persisted, resumed after a crash).
//! - [`journal`]: the master target's undo journal of recovery points (replica + per-point undo sets).
//! - [`workflow`]: the failback workflows and the `Orchestrator` that runs them.
//! - [`control`]: the control API (gRPC `homeward.control.v1`): server, tokens, client.
//! - [`lab`]: the lab site and cloud (directories the lab adapters serve) and the demo guest.
//! - [`demo`]: the whole failback cycle on the lab adapters (`homeward demo`).
//! - [`conformance`]: the plugin conformance suites (`homeward plugin test`).
//! - [`cli`]: the `homeward` command.

pub mod bench;
pub mod bench_page_blob;
pub mod bench_plan;
pub mod bench_replication;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod control;
pub mod demo;
pub mod disk;
pub mod embedded;
pub mod filesystem;
pub mod guest_fs;
pub mod guest_steps;
pub mod jobs;
pub mod journal;
pub mod lab;
pub mod plugin;
pub mod scaffold;
pub mod store;
pub mod sync;
pub mod workflow;
