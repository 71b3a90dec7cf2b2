//! The durable job scheduler: the orchestrator's long operations (reprotect,
//! failover, commit, test failover) run as jobs of idempotent steps whose
//! state lives in the [`Store`](crate::store::Store), so a server killed with
//! `kill -9` picks every job up again at the step it was in.
//!
//! ```text
//!  submit ─► Workflow::prepare ─► insert_job (Queued) ─► queue ─► worker + every key's limit free?
//!                                                                    │ yes
//!  per step: save_step Running (attempts+1) ─► run_step (blocking thread) ─► save_step Done + output
//!                    ▲                                     │ Transient
//!                    └──────── backoff + jitter ◄──────────┘ (until max_attempts, then the job fails)
//!  start() after a crash: Running jobs go on at their first step not Done, Queued ones start
//! ```
//!
//! - [`Workflow`]: what a job kind is: its steps (decided at submit) and how one runs.
//! - [`StepContext`]: what a running step sees (params, earlier outputs,
//!   attempt, cancel flag, events, the tokio runtime).
//! - [`Scheduler`] (`scheduler.rs`): queue, workers, cancel, wait, shutdown;
//!   one job's steps are driven by `runner.rs`.
//! - [`limits`]: concurrency limits per resource key (`mt:NAME`, `ps:NAME`...).
//! - [`retry`]: exponential backoff with jitter for transient errors.
//! - [`events`]: job events, persisted and broadcast (progress only broadcast).
//! - [`bench_overhead`]: the scheduler's own cost per step, measured.
//!
//! Rules every workflow can rely on: a step is persisted Running (attempts
//! counted) before it runs and Done with its output after, and only then does
//! the next step start; so a step runs again only if it never reported done,
//! and it must be idempotent for that case.

mod bench;
mod context;
mod control;
pub mod events;
pub mod limits;
pub mod retry;
mod runner;
mod scheduler;

pub use bench::{OverheadReport, bench_overhead};
pub use context::StepContext;
pub use retry::RetryPolicy;
pub use scheduler::{Scheduler, SchedulerError, SchedulerOptions};

/// One job kind: decides a job's steps when it is submitted and runs them one
/// by one.
pub trait Workflow: Send + Sync + 'static {
    /// The job kind it runs ("reprotect", "failover", "commit", "test-failover"...).
    fn kind(&self) -> &'static str;

    /// Decides the job when it is submitted: its steps (unique names, in order),
    /// concurrency resource keys, and a one-line summary. Errors refuse the job.
    fn prepare(&self, params: &serde_json::Value) -> Result<PreparedJob, StepError>;

    /// Runs one step; called on a blocking thread (plugin calls are synchronous).
    /// Must be idempotent: after a crash it runs again from its start.
    /// Returns the step's output (persisted; later steps read it).
    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError>;
}

/// What [`Workflow::prepare`] decides about a job.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreparedJob {
    /// Step names, unique, in the order they run.
    pub steps: Vec<String>,
    /// Concurrency keys the job holds while it runs ("ps:NAME", "mt:NAME", "host:ID").
    pub resources: Vec<String>,
    /// One line for tables ("reprotect web01 → on-premises").
    pub summary: String,
    /// The job this one is part of (a plan's failover runs one job per item).
    pub parent: Option<i64>,
}

/// Why a step did not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth trying again (unreachable endpoint, throttled...): retried with
    /// backoff until the policy's attempts are used up.
    #[error("{0}")]
    Transient(String),
    /// The job fails with this message (names the thing and the fix).
    #[error("{0}")]
    Failed(String),
    /// The step stopped because the job was cancelled; the job ends Cancelled.
    #[error("cancelled")]
    Cancelled,
}
