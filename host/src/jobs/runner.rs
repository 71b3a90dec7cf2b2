//! Runs one job's steps on a blocking thread, saving its state around each
//! step: Running with one more attempt before, Done with the output after
//! (the store makes both durable before returning). A job that was running
//! when the server died goes on at its first step not Done.
//!
//! Steps the job never reached stay Pending when it fails or is cancelled.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::{
    EventKind, JobEvent, JobRecord, JobState, StepRecord, StepState, StoreError, now_ms,
};

use super::StepError;
use super::context::StepContext;
use super::control::JobControl;
use super::events::new_event;
use super::scheduler::{Ended, Inner};

/// Runs job `id` (its keys are held) and tells the scheduler how it ended.
pub(crate) fn run_job(
    inner: Arc<Inner>,
    id: i64,
    control: Arc<JobControl>,
    runtime: tokio::runtime::Handle,
) {
    let runner = Runner {
        inner: inner.clone(),
        id,
        control,
        runtime,
        last_seq: Arc::new(AtomicU64::new(0)),
    };
    // A bug here must not leave the job's keys held for ever.
    let ended = match catch_unwind(AssertUnwindSafe(|| runner.drive())) {
        Ok(Ok(ended)) => ended,
        Ok(Err(e)) => {
            tracing::error!(job = id, "job stopped: its state could not be saved: {e}");
            Ended::Broken(e.to_string())
        }
        Err(panic) => {
            let reason = panic_text(panic.as_ref());
            tracing::error!(job = id, "job stopped: the scheduler panicked: {reason}");
            Ended::Broken(format!("the scheduler panicked running it: {reason}"))
        }
    };
    inner.job_ended(id, ended);
}

struct Runner {
    inner: Arc<Inner>,
    id: i64,
    control: Arc<JobControl>,
    runtime: tokio::runtime::Handle,
    last_seq: Arc<AtomicU64>,
}

/// What one attempt of a step left to do next.
enum AttemptOutcome {
    /// Done: go on with the next step.
    Done,
    /// Try the same step again after this delay.
    Retry(Duration),
    /// The job is over (or stopped).
    Ended(Ended),
}

impl Runner {
    fn drive(&self) -> Result<Ended, StoreError> {
        let store = &self.inner.store;
        let mut job = store.job(self.id)?;
        if job.state.is_finished() {
            // Cancelled while it was being dispatched.
            return Ok(Ended::Finished);
        }
        let Some(workflow) = self.inner.workflows.get(&job.kind).cloned() else {
            let error = format!(
                "no workflow runs jobs of kind `{}` in this server (known kinds: {}); \
                 run it with a Homeward that has that workflow",
                job.kind,
                self.inner.known_kinds()
            );
            return self.finish(JobState::Failed, Some(error));
        };
        if job.cancel_requested {
            self.control.request_cancel();
        }
        if self.control.cancelled() {
            return self.finish(JobState::Cancelled, None);
        }
        let first = job
            .steps
            .iter()
            .position(|s| !settled(s.state))
            .unwrap_or(job.steps.len());
        if let Some(step) = job.steps.get(first)
            && step.state == StepState::Failed
        {
            // Killed after the step was saved failed and before the job was:
            // the failure stands (running the step again could hide it).
            let error = format!(
                "step `{}` failed: {}",
                step.name,
                step.error.as_deref().unwrap_or("no reason recorded")
            );
            return self.finish(JobState::Failed, Some(error));
        }
        if job.state == JobState::Queued {
            let event = store.set_job_state_with_event(
                self.id,
                JobState::Running,
                None,
                &new_event(self.id, EventKind::JobStarted, None, job.summary.clone()),
            )?;
            self.published(event);
        } else if let Some(step) = job.steps.get(first) {
            self.record(
                EventKind::Log,
                Some(step.index),
                format!(
                    "resumed after a restart at step {} of {} ({})",
                    first + 1,
                    job.steps.len(),
                    step.name
                ),
            )?;
        }

        let params = Arc::new(std::mem::take(&mut job.params));
        let mut outputs: Arc<HashMap<String, serde_json::Value>> = Arc::new(
            job.steps
                .iter()
                .filter(|s| s.state == StepState::Done)
                .map(|s| (s.name.clone(), s.output.clone()))
                .collect(),
        );
        for position in first..job.steps.len() {
            if settled(job.steps[position].state) {
                continue;
            }
            loop {
                if self.control.stopping() {
                    return Ok(Ended::Stopped);
                }
                if self.control.cancelled() {
                    return self.finish(JobState::Cancelled, None);
                }
                let outcome =
                    self.attempt(&mut job, position, workflow.as_ref(), &params, &mut outputs)?;
                match outcome {
                    AttemptOutcome::Done => break,
                    AttemptOutcome::Retry(delay) => {
                        // Cancel or shutdown cut the wait short; the checks
                        // at the top of the loop then end the job.
                        self.control.sleep(delay);
                    }
                    AttemptOutcome::Ended(ended) => return Ok(ended),
                }
            }
        }
        self.finish(JobState::Succeeded, None)
    }

    /// Runs step `position` once, saving its state before and after.
    fn attempt(
        &self,
        job: &mut JobRecord,
        position: usize,
        workflow: &dyn super::Workflow,
        params: &Arc<serde_json::Value>,
        outputs: &mut Arc<HashMap<String, serde_json::Value>>,
    ) -> Result<AttemptOutcome, StoreError> {
        let store = &self.inner.store;
        let policy = &self.inner.options.retry;
        let step = &mut job.steps[position];
        step.attempts = step.attempts.saturating_add(1);
        step.state = StepState::Running;
        step.started_at.get_or_insert_with(now_ms);
        step.finished_at = None;
        let started = if step.attempts > 1 {
            format!("{} (attempt {})", step.name, step.attempts)
        } else {
            step.name.clone()
        };
        self.save_step(step, EventKind::StepStarted, started)?;

        let ctx = StepContext {
            job_id: self.id,
            params: params.clone(),
            step_index: step.index,
            step_name: step.name.clone(),
            attempt: step.attempts,
            outputs: outputs.clone(),
            control: self.control.clone(),
            events: self.inner.events.clone(),
            last_seq: self.last_seq.clone(),
            runtime: self.runtime.clone(),
            last_progress: Mutex::new(None),
        };
        let result = catch_unwind(AssertUnwindSafe(|| workflow.run_step(&ctx)));
        drop(ctx);
        let result = result.unwrap_or_else(|panic| {
            Err(StepError::Failed(format!(
                "it panicked ({}); this is a bug in the `{}` workflow",
                panic_text(panic.as_ref()),
                job.kind
            )))
        });
        let step = &mut job.steps[position];

        match result {
            Ok(output) => {
                step.state = StepState::Done;
                step.output = output;
                step.error = None;
                step.finished_at = Some(now_ms());
                self.save_step(step, EventKind::StepDone, step.name.clone())?;
                // The context is dropped, so this does not copy the map.
                Arc::make_mut(outputs).insert(step.name.clone(), step.output.clone());
                Ok(AttemptOutcome::Done)
            }
            Err(StepError::Transient(reason)) => {
                let attempts = step.attempts;
                let name = step.name.clone();
                step.error = Some(reason.clone());
                if self.control.stopping() && !self.control.cancelled() {
                    // Tried again when the job resumes.
                    step.state = StepState::Pending;
                    store.save_step(self.id, step)?;
                    return Ok(AttemptOutcome::Ended(Ended::Stopped));
                }
                if policy.retries_after(attempts) && !self.control.cancelled() {
                    let delay = policy.delay(attempts);
                    step.state = StepState::Pending;
                    let message = format!(
                        "{name}: attempt {attempts} of {} failed: {reason}; trying again in {} ms",
                        policy.attempts(),
                        delay.as_millis()
                    );
                    self.save_step(step, EventKind::StepRetry, message)?;
                    return Ok(AttemptOutcome::Retry(delay));
                }
                step.state = StepState::Failed;
                step.finished_at = Some(now_ms());
                if self.control.cancelled() {
                    let message =
                        format!("{name}: {reason} (not tried again: the job was cancelled)");
                    self.save_step(step, EventKind::StepFailed, message)?;
                    return self
                        .finish(JobState::Cancelled, None)
                        .map(AttemptOutcome::Ended);
                }
                let plural = if attempts == 1 { "" } else { "s" };
                let error =
                    format!("step `{name}` failed after {attempts} attempt{plural}: {reason}");
                self.save_step(step, EventKind::StepFailed, error.clone())?;
                self.finish(JobState::Failed, Some(error))
                    .map(AttemptOutcome::Ended)
            }
            Err(StepError::Failed(reason)) => {
                step.state = StepState::Failed;
                step.error = Some(reason.clone());
                step.finished_at = Some(now_ms());
                let error = format!("step `{}` failed: {reason}", step.name);
                self.save_step(step, EventKind::StepFailed, error.clone())?;
                self.finish(JobState::Failed, Some(error))
                    .map(AttemptOutcome::Ended)
            }
            Err(StepError::Cancelled) => {
                step.state = StepState::Failed;
                step.error = Some("cancelled".to_string());
                step.finished_at = Some(now_ms());
                let message = format!("{}: cancelled", step.name);
                self.save_step(step, EventKind::StepFailed, message)?;
                self.finish(JobState::Cancelled, None)
                    .map(AttemptOutcome::Ended)
            }
        }
    }

    /// Saves the job's final state with the event saying so.
    fn finish(&self, state: JobState, error: Option<String>) -> Result<Ended, StoreError> {
        let message = match (&state, &error) {
            (JobState::Succeeded, _) => "succeeded".to_string(),
            (JobState::Cancelled, _) => "cancelled".to_string(),
            (_, Some(error)) => format!("failed: {error}"),
            (_, None) => "failed".to_string(),
        };
        let event = self.inner.store.set_job_state_with_event(
            self.id,
            state,
            error.as_deref(),
            &new_event(self.id, EventKind::JobFinished, None, message),
        )?;
        self.published(event);
        Ok(Ended::Finished)
    }

    /// Saves a step with the event about the change, in one transaction (one
    /// disk sync: the scheduler's main cost per step).
    fn save_step(
        &self,
        step: &StepRecord,
        kind: EventKind,
        message: String,
    ) -> Result<(), StoreError> {
        let event = self.inner.store.save_step_with_event(
            self.id,
            step,
            &new_event(self.id, kind, Some(step.index), message),
        )?;
        self.published(event);
        Ok(())
    }

    fn published(&self, event: JobEvent) {
        self.last_seq.fetch_max(event.seq, Ordering::AcqRel);
        self.inner.events.publish(&event);
    }

    fn record(
        &self,
        kind: EventKind,
        step: Option<u32>,
        message: String,
    ) -> Result<(), StoreError> {
        let event = self.inner.events.record(self.id, kind, step, message)?;
        self.published(event);
        Ok(())
    }
}

/// Whether a step needs no (further) run: Done, or Skipped by whoever
/// decided so.
fn settled(state: StepState) -> bool {
    matches!(state, StepState::Done | StepState::Skipped)
}

/// The message of a panic payload, for the job's error.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "no message".to_string()
    }
}
