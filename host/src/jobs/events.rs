//! Job events: what happened to a job, step by step. Every event but
//! progress is persisted first (`Store::append_event`, which numbers them per
//! job) and then broadcast to live watchers; progress is only broadcast,
//! being frequent and worthless once the step is done.
//!
//! A watcher that joins late replays the persisted events after the last
//! `seq` it saw, then follows the broadcast. A progress event carries the
//! `seq` of its job's latest persisted event, so it never makes a watcher
//! skip one.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::store::{EventKind, JobEvent, NewJobEvent, Store, StoreError, now_ms};

/// Events buffered for slow live watchers; one that falls further behind
/// sees `Lagged` and replays from the store.
pub const BROADCAST_CAPACITY: usize = 4096;

/// Where a job's events go: the store and the broadcast channel.
#[derive(Clone)]
pub struct EventSink {
    store: Arc<Store>,
    sender: broadcast::Sender<JobEvent>,
}

impl EventSink {
    /// A sink persisting to `store` with a fresh broadcast channel.
    pub fn new(store: Arc<Store>) -> EventSink {
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        EventSink { store, sender }
    }

    /// A new live watcher: it sees the events sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.sender.subscribe()
    }

    /// Persists an event and broadcasts it; returns it with its `seq`.
    pub fn record(
        &self,
        job_id: i64,
        kind: EventKind,
        step: Option<u32>,
        message: impl Into<String>,
    ) -> Result<JobEvent, StoreError> {
        let event = self
            .store
            .append_event(&new_event(job_id, kind, step, message))?;
        self.publish(&event);
        Ok(event)
    }

    /// Broadcasts an event the caller has persisted (with the change it
    /// reports, in one transaction).
    pub fn publish(&self, event: &JobEvent) {
        // Nobody listening is fine: the event is in the store.
        let _ = self.sender.send(event.clone());
    }

    /// Broadcasts a progress event (not persisted); `seq` is the job's latest
    /// persisted event.
    pub fn progress(
        &self,
        job_id: i64,
        seq: u64,
        step: u32,
        done_bytes: u64,
        total_bytes: u64,
        message: &str,
    ) {
        let _ = self.sender.send(JobEvent {
            job_id,
            seq,
            at: now_ms(),
            kind: EventKind::Progress,
            step: Some(step),
            message: message.to_string(),
            done_bytes,
            total_bytes,
        });
    }
}

/// An event to persist (no byte counts: those are for progress).
pub fn new_event(
    job_id: i64,
    kind: EventKind,
    step: Option<u32>,
    message: impl Into<String>,
) -> NewJobEvent {
    NewJobEvent {
        job_id,
        kind,
        step,
        message: message.into(),
        done_bytes: 0,
        total_bytes: 0,
    }
}
