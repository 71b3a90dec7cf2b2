//! The scheduler: takes jobs in, keeps them queued until a worker and every
//! resource key they hold have room, runs each on a blocking thread (see
//! `runner.rs`), and answers cancel, wait and shutdown.
//!
//! All decisions about which job runs are made under one lock over the
//! queue, the running jobs and the held keys; nothing polls. A job is
//! dispatched when it is submitted, when another one ends, or when a queued
//! one is cancelled. Waiting jobs are served in order per key: a job that
//! cannot start yet keeps one slot of each of its keys for itself, so the
//! jobs behind it only get what is left, and a job holding several keys is
//! never starved by a stream of smaller ones.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{broadcast, oneshot, watch};

use crate::store::{EventKind, JobEvent, JobRecord, JobState, NewJob, Store, StoreError};

use super::control::JobControl;
use super::events::{EventSink, new_event};
use super::limits::{ResourceLimits, normalize};
use super::retry::RetryPolicy;
use super::runner;
use super::{PreparedJob, Workflow};

/// How many jobs run at once, per resource key, and how steps are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerOptions {
    /// Jobs running at once overall (default 8; 0 is taken as 1).
    pub workers: usize,
    /// Limit per resource-key prefix, applied to each key of that prefix:
    /// `("mt", 4)` lets at most 4 running jobs hold `mt:NAME`, for each NAME.
    /// Keys with a prefix not listed are not limited.
    pub limits: Vec<(String, usize)>,
    /// Retries of transient step errors.
    pub retry: RetryPolicy,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            workers: 8,
            limits: vec![
                ("ps".to_string(), 4),
                ("mt".to_string(), 4),
                ("host".to_string(), 8),
            ],
            retry: RetryPolicy::default(),
        }
    }
}

/// Why the scheduler did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// No workflow runs this kind of job; names the kind and the known ones.
    #[error("unknown job kind {0}")]
    UnknownKind(String),
    /// The workflow refused the job when preparing it (its reason), or the
    /// scheduler cannot take jobs in its present state.
    #[error("job refused: {0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No job has this id.
    #[error("job {0} not found; `homeward jobs` lists the jobs")]
    NotFound(i64),
    /// The job has already finished (it cannot be cancelled any more).
    #[error("job {0} has already finished; only queued or running jobs can be cancelled")]
    Finished(i64),
}

/// The job scheduler; cheap to clone (all clones are the same scheduler).
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

/// Shared by the scheduler's clones and the threads running its jobs.
pub(crate) struct Inner {
    pub(crate) store: Arc<Store>,
    pub(crate) workflows: BTreeMap<String, Arc<dyn Workflow>>,
    pub(crate) options: SchedulerOptions,
    pub(crate) events: EventSink,
    state: Mutex<State>,
    /// How many jobs are running; `shutdown` waits for 0.
    running_count: watch::Sender<usize>,
}

/// What the scheduler is doing with jobs; guarded by `Inner::state`.
struct State {
    phase: Phase,
    queue: VecDeque<QueuedJob>,
    running: HashMap<i64, RunningJob>,
    limits: ResourceLimits,
    /// `wait` callers per job: told when it ends (`Some(reason)` when it ended
    /// without finishing because its state could not be saved).
    waiters: HashMap<i64, Vec<oneshot::Sender<Option<String>>>>,
}

enum Phase {
    /// Built; jobs submitted now are stored Queued and start with `start`.
    Created,
    /// Running jobs on this runtime.
    Started(tokio::runtime::Handle),
    /// `shutdown` was called: no new step starts.
    Stopped,
}

struct QueuedJob {
    id: i64,
    keys: Vec<String>,
}

struct RunningJob {
    keys: Vec<String>,
    control: Arc<JobControl>,
}

/// How the thread running a job left it.
pub(crate) enum Ended {
    /// Succeeded, failed or cancelled, and recorded so in the store.
    Finished,
    /// The scheduler shut down; the job stays Running in the store.
    Stopped,
    /// Its state could not be saved (the store's error); it stays as the
    /// store last saw it and resumes at the next start.
    Broken(String),
}

impl Scheduler {
    /// A scheduler over `store` running the given workflows (by their kind).
    /// Nothing runs until [`start`](Self::start).
    pub fn new(
        store: Arc<Store>,
        workflows: Vec<Arc<dyn Workflow>>,
        options: SchedulerOptions,
    ) -> Scheduler {
        let mut by_kind = BTreeMap::new();
        for workflow in workflows {
            let kind = workflow.kind().to_string();
            if by_kind.contains_key(&kind) {
                tracing::warn!("two workflows for job kind `{kind}`; the first one runs them");
                continue;
            }
            by_kind.insert(kind, workflow);
        }
        let limits = ResourceLimits::new(&options.limits);
        let (running_count, _) = watch::channel(0);
        Scheduler {
            inner: Arc::new(Inner {
                events: EventSink::new(store.clone()),
                store,
                workflows: by_kind,
                options,
                state: Mutex::new(State {
                    phase: Phase::Created,
                    queue: VecDeque::new(),
                    running: HashMap::new(),
                    limits,
                    waiters: HashMap::new(),
                }),
                running_count,
            }),
        }
    }

    /// Resumes unfinished jobs (Running: at the first step not Done; Queued:
    /// from the start), then runs new ones. Must be called inside a tokio
    /// runtime, which then runs the jobs; a second call does nothing.
    pub fn start(&self) -> Result<(), SchedulerError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            SchedulerError::Refused(
                "the scheduler must be started inside a tokio runtime".to_string(),
            )
        })?;
        let mut state = self.inner.lock();
        if matches!(state.phase, Phase::Started(_)) {
            return Ok(());
        }
        // Loaded under the lock so that a job submitted meanwhile is queued
        // exactly once (`submit` checks the queue under the same lock).
        let unfinished = self.inner.store.unfinished_jobs()?;
        // Jobs that were running go first: they held their keys before the
        // restart, and finishing them frees those keys soonest.
        let (was_running, queued): (Vec<JobRecord>, Vec<JobRecord>) = unfinished
            .into_iter()
            .partition(|job| job.state == JobState::Running);
        for job in was_running.into_iter().chain(queued) {
            state.enqueue(job.id, &job.resources);
        }
        state.phase = Phase::Started(handle);
        self.inner.dispatch(&mut state);
        Ok(())
    }

    /// Submits a job of `kind`: the workflow prepares it, it is stored Queued
    /// and runs as soon as a worker and its resource keys allow. Returns its id.
    pub fn submit(&self, kind: &str, params: serde_json::Value) -> Result<i64, SchedulerError> {
        let Some(workflow) = self.inner.workflows.get(kind) else {
            return Err(SchedulerError::UnknownKind(format!(
                "`{kind}` (known kinds: {})",
                self.inner.known_kinds()
            )));
        };
        let prepared = workflow
            .prepare(&params)
            .map_err(|e| SchedulerError::Refused(e.to_string()))?;
        check_prepared(kind, &prepared)?;
        let PreparedJob {
            steps,
            resources,
            summary,
            parent,
        } = prepared;
        let job = self.inner.store.insert_job(&NewJob {
            kind: kind.to_string(),
            params,
            steps,
            resources,
            parent,
            summary,
        })?;
        let mut state = self.inner.lock();
        if matches!(state.phase, Phase::Started(_)) {
            state.enqueue(job.id, &job.resources);
            self.inner.dispatch(&mut state);
        }
        Ok(job.id)
    }

    /// Cancels a job: a queued one ends Cancelled at once; a running one's
    /// step sees [`cancelled`](super::StepContext::cancelled) and the job ends
    /// Cancelled after that step. The request is persisted, so a job resumed
    /// after a restart ends Cancelled too.
    pub fn cancel(&self, id: i64) -> Result<(), SchedulerError> {
        let job = self.inner.store.request_cancel(id).map_err(|e| match e {
            StoreError::NotFound { .. } => SchedulerError::NotFound(id),
            StoreError::Conflict(_) => SchedulerError::Finished(id),
            other => SchedulerError::Store(other),
        })?;
        let mut state = self.inner.lock();
        if let Some(position) = state.queue.iter().position(|q| q.id == id) {
            state.queue.remove(position);
            // It may have kept jobs behind it waiting for its keys.
            self.inner.dispatch(&mut state);
            let waiters = state.waiters.remove(&id).unwrap_or_default();
            drop(state);
            return self.inner.cancel_unstarted(id, waiters);
        }
        if let Some(running) = state.running.get(&id) {
            running.control.request_cancel();
            return Ok(());
        }
        if job.state == JobState::Queued {
            // Not taken in by this scheduler (not started yet): cancelled in
            // the store, still under the lock so `start` cannot load it now.
            let waiters = state.waiters.remove(&id).unwrap_or_default();
            return self.inner.cancel_unstarted(id, waiters);
        }
        // Running in the store but not here (before `start` or after
        // `shutdown`): the persisted request ends it when it resumes.
        Ok(())
    }

    /// A receiver of every job's events from now on (persisted ones also
    /// replay from [`Store::events`]).
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// Waits until job `id` has finished (succeeded, failed or cancelled) and
    /// returns its record; at once for a job already finished. A job this
    /// scheduler does not run (not started, shut down) is waited for until it
    /// does. `Store` error when the job's state could not be saved.
    pub async fn wait(&self, id: i64) -> Result<JobRecord, SchedulerError> {
        loop {
            let (sender, receiver) = oneshot::channel();
            self.inner
                .lock()
                .waiters
                .entry(id)
                .or_default()
                .push(sender);
            // Read after registering: a job ending in between has already
            // saved its final state, or will find this waiter.
            let job = self.inner.job(id)?;
            if job.state.is_finished() {
                drop(receiver);
                self.inner.forget_closed_waiters(id);
                return Ok(job);
            }
            if let Ok(Some(reason)) = receiver.await {
                return Err(SchedulerError::Store(StoreError::Database {
                    doing: format!("saving the state of job {id}"),
                    message: reason,
                }));
            }
        }
    }

    /// Stops taking steps: running steps finish (and are saved), then their
    /// jobs stop where they are, staying Running in the store so that the next
    /// [`start`](Self::start) resumes them; queued jobs stay Queued. Returns
    /// when no step of this scheduler runs any more.
    pub async fn shutdown(&self) {
        {
            let mut state = self.inner.lock();
            state.phase = Phase::Stopped;
            state.queue.clear();
            for running in state.running.values() {
                running.control.request_stop();
            }
        }
        let mut count = self.inner.running_count.subscribe();
        // The sender lives in `inner`, which `self` holds: this cannot fail.
        let _ = count.wait_for(|running| *running == 0).await;
    }

    /// The store the jobs live in.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The job kinds this scheduler runs, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        self.inner.workflows.keys().map(String::as_str).collect()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed
        // in a way worse than stopping every job; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn known_kinds(&self) -> String {
        if self.workflows.is_empty() {
            return "none".to_string();
        }
        self.workflows
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn job(&self, id: i64) -> Result<JobRecord, SchedulerError> {
        self.store.job(id).map_err(|e| match e {
            StoreError::NotFound { .. } => SchedulerError::NotFound(id),
            other => SchedulerError::Store(other),
        })
    }

    /// Starts every queued job that may start now (see the module docs for
    /// the order).
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        if let Phase::Started(handle) = &state.phase {
            let handle = handle.clone();
            self.start_ready(state, &handle);
        }
        // Also after shutdown, which waits for this to reach 0.
        self.running_count.send_replace(state.running.len());
    }

    fn start_ready(self: &Arc<Self>, state: &mut State, handle: &tokio::runtime::Handle) {
        let workers = self.options.workers.max(1);
        // Slots of limited keys kept for the waiting jobs ahead in the queue.
        let mut reserved: HashMap<String, usize> = HashMap::new();
        let mut index = 0;
        while index < state.queue.len() && state.running.len() < workers {
            let keys = &state.queue[index].keys;
            if !state.limits.fits_beside(keys, &reserved) {
                for key in keys {
                    if state.limits.limit_of(key).is_some() {
                        *reserved.entry(key.clone()).or_insert(0) += 1;
                    }
                }
                index += 1;
                continue;
            }
            let Some(job) = state.queue.remove(index) else {
                break;
            };
            state.limits.acquire(&job.keys);
            let control = Arc::new(JobControl::default());
            state.running.insert(
                job.id,
                RunningJob {
                    keys: job.keys,
                    control: control.clone(),
                },
            );
            let inner = self.clone();
            let runtime = handle.clone();
            handle.spawn_blocking(move || runner::run_job(inner, job.id, control, runtime));
        }
    }

    /// Called by the thread that ran job `id` when it leaves it.
    pub(crate) fn job_ended(self: &Arc<Self>, id: i64, ended: Ended) {
        let waiters = {
            let mut state = self.lock();
            if let Some(running) = state.running.remove(&id) {
                state.limits.release(&running.keys);
            }
            let message = match ended {
                Ended::Finished => Some(None),
                Ended::Broken(reason) => Some(Some(reason)),
                Ended::Stopped => None,
            };
            let waiters = match message {
                Some(message) => state
                    .waiters
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| (w, message.clone()))
                    .collect(),
                None => Vec::new(),
            };
            self.dispatch(&mut state);
            waiters
        };
        for (waiter, message) in waiters {
            let _ = waiter.send(message);
        }
    }

    /// Ends a job that never started as Cancelled and tells its waiters
    /// (taken from the state by the caller; this does not lock it).
    fn cancel_unstarted(
        &self,
        id: i64,
        waiters: Vec<oneshot::Sender<Option<String>>>,
    ) -> Result<(), SchedulerError> {
        let result = self.store.set_job_state_with_event(
            id,
            JobState::Cancelled,
            None,
            &new_event(
                id,
                EventKind::JobFinished,
                None,
                "cancelled before it started",
            ),
        );
        if let Ok(event) = &result {
            self.events.publish(event);
        }
        // Told either way: a waiter reads the job's state from the store.
        for waiter in waiters {
            let _ = waiter.send(None);
        }
        result.map(|_| ()).map_err(SchedulerError::from)
    }

    fn forget_closed_waiters(&self, id: i64) {
        let mut state = self.lock();
        if let Some(waiters) = state.waiters.get_mut(&id) {
            waiters.retain(|w| !w.is_closed());
            if waiters.is_empty() {
                state.waiters.remove(&id);
            }
        }
    }
}

impl State {
    /// Queues job `id` unless it is queued or running already.
    fn enqueue(&mut self, id: i64, resources: &[String]) {
        if self.running.contains_key(&id) || self.queue.iter().any(|q| q.id == id) {
            return;
        }
        self.queue.push_back(QueuedJob {
            id,
            keys: normalize(resources),
        });
    }
}

/// A workflow's plan for a job must be runnable: unique step names.
fn check_prepared(kind: &str, prepared: &PreparedJob) -> Result<(), SchedulerError> {
    let mut seen = HashSet::new();
    for name in &prepared.steps {
        if !seen.insert(name.as_str()) {
            return Err(SchedulerError::Refused(format!(
                "the `{kind}` workflow named two steps `{name}`; step names must be unique (a bug in the workflow)"
            )));
        }
    }
    Ok(())
}
