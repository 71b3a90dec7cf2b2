//! The scheduler's own cost: jobs of empty steps on a store in a temporary
//! directory, so that what is measured is queueing, the state saved around
//! each step (durable SQLite transactions) and the events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::store::Store;

use super::{PreparedJob, Scheduler, SchedulerOptions, StepContext, StepError, Workflow};

/// What [`bench_overhead`] measured.
#[derive(Debug, Clone)]
pub struct OverheadReport {
    /// Jobs run.
    pub jobs: usize,
    /// Steps per job.
    pub steps: usize,
    /// Jobs running at once.
    pub workers: usize,
    /// From the first submit until the last job finished.
    pub elapsed: Duration,
    /// `elapsed` divided by all steps run: the scheduler's cost per step at
    /// that parallelism.
    pub per_step: Duration,
}

/// A workflow whose steps do nothing.
struct EmptySteps {
    steps: usize,
}

impl Workflow for EmptySteps {
    fn kind(&self) -> &'static str {
        "bench-empty"
    }

    fn prepare(&self, _params: &serde_json::Value) -> Result<PreparedJob, StepError> {
        Ok(PreparedJob {
            steps: (0..self.steps).map(|i| format!("step-{i}")).collect(),
            resources: Vec::new(),
            summary: "empty steps".to_string(),
            parent: None,
        })
    }

    fn run_step(&self, _ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        Ok(serde_json::Value::Null)
    }
}

/// Runs `jobs` jobs of `steps` empty steps each with the default options on
/// a fresh store under the system's temporary directory, and reports the
/// time per step.
pub fn bench_overhead(jobs: usize, steps: usize) -> anyhow::Result<OverheadReport> {
    let dir = tempfile::tempdir().context("creating a temporary directory for the store")?;
    let store = Arc::new(Store::open(&dir.path().join("bench.db"))?);
    let options = SchedulerOptions::default();
    let workers = options.workers;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    let elapsed = runtime.block_on(async {
        let scheduler = Scheduler::new(store, vec![Arc::new(EmptySteps { steps })], options);
        scheduler.start()?;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(jobs);
        for _ in 0..jobs {
            ids.push(scheduler.submit("bench-empty", serde_json::Value::Null)?);
        }
        for id in ids {
            scheduler.wait(id).await?;
        }
        let elapsed = started.elapsed();
        scheduler.shutdown().await;
        anyhow::Ok(elapsed)
    })?;
    let total_steps = (jobs * steps).max(1);
    Ok(OverheadReport {
        jobs,
        steps,
        workers,
        elapsed,
        per_step: elapsed / u32::try_from(total_steps).unwrap_or(u32::MAX),
    })
}
