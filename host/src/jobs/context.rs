//! What a running step sees: its job's params and the outputs of the steps
//! before it, which attempt this is, whether the job was cancelled, where its
//! log lines and progress go, and the tokio runtime for async work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::EventKind;

use super::StepError;
use super::control::JobControl;
use super::events::EventSink;

/// Progress events of one step closer together than this are dropped (the
/// last one of a step, done == total, always goes out).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The world of one step run; handed to [`Workflow::run_step`](super::Workflow::run_step).
pub struct StepContext {
    pub(crate) job_id: i64,
    pub(crate) params: Arc<serde_json::Value>,
    pub(crate) step_index: u32,
    pub(crate) step_name: String,
    pub(crate) attempt: u32,
    pub(crate) outputs: Arc<HashMap<String, serde_json::Value>>,
    pub(crate) control: Arc<JobControl>,
    pub(crate) events: EventSink,
    /// The job's latest persisted event, for the `seq` of progress events.
    pub(crate) last_seq: Arc<AtomicU64>,
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) last_progress: Mutex<Option<Instant>>,
}

impl StepContext {
    /// The job's id in the store.
    pub fn job_id(&self) -> i64 {
        self.job_id
    }

    /// The params the job was submitted with.
    pub fn params(&self) -> &serde_json::Value {
        &self.params
    }

    /// This step's position in the job (0 for the first).
    pub fn step_index(&self) -> u32 {
        self.step_index
    }

    /// This step's name, as [`PreparedJob::steps`](super::PreparedJob::steps) gave it.
    pub fn step_name(&self) -> &str {
        &self.step_name
    }

    /// 1 on the first run of this step; each retry, and each run again after
    /// a crash, counts one more (the count is persisted).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The output of an earlier step of this job that is done.
    pub fn output_of(&self, step_name: &str) -> Option<&serde_json::Value> {
        self.outputs.get(step_name)
    }

    /// Reports how far the step is (broadcast only, not persisted; calls
    /// closer than 100 ms apart are dropped, except the final one).
    pub fn progress(&self, done_bytes: u64, total_bytes: u64, message: &str) {
        let now = Instant::now();
        {
            let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
            let finished = done_bytes >= total_bytes;
            if let Some(previous) = *last
                && now.duration_since(previous) < PROGRESS_INTERVAL
                && !finished
            {
                return;
            }
            *last = Some(now);
        }
        self.events.progress(
            self.job_id,
            self.last_seq.load(Ordering::Acquire),
            self.step_index,
            done_bytes,
            total_bytes,
            message,
        );
    }

    /// Records a line in the job's history (persisted and broadcast).
    pub fn log(&self, message: &str) {
        match self
            .events
            .record(self.job_id, EventKind::Log, Some(self.step_index), message)
        {
            Ok(event) => {
                self.last_seq.fetch_max(event.seq, Ordering::AcqRel);
            }
            // A log line is not worth failing the step for; the operator
            // still sees it in the server's log.
            Err(e) => tracing::warn!(
                job = self.job_id,
                step = %self.step_name,
                "could not record a job log line ({e}): {message}"
            ),
        }
    }

    /// Whether the job was cancelled; a long step checks it between units of work.
    pub fn cancelled(&self) -> bool {
        self.control.cancelled()
    }

    /// `Err(StepError::Cancelled)` once the job was cancelled, for `?`.
    pub fn check_cancelled(&self) -> Result<(), StepError> {
        if self.cancelled() {
            Err(StepError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The scheduler's tokio runtime: a step runs on a blocking thread, so it
    /// may `block_on` async work (the data path) through this.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }
}
