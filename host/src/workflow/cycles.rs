//! The replication-cycle driver: every group's `cycle_interval_secs`, a
//! `replicate` job per protected item (or one for the whole group when it
//! asks for multi-VM consistency), unless that item's or group's previous
//! cycle is still queued or running; every `app_consistent_every`-th cycle
//! asks for an app-consistent point (whether it gets one is the adapter's
//! answer, logged by the cycle). Failback groups replicate from the cloud;
//! groups to the cloud (after a commit) from on premises.
//!
//! The driver is a thread of its own: it only reads the store and submits
//! jobs, so the scheduler's persisted jobs carry every cycle's state and a
//! restarted host just starts the driver again.

use super::Shared;
use super::replicate::{KIND, ReplicateParams};
use crate::jobs::SchedulerError;
use crate::store::{Direction, ItemState, JobFilter, JobState, SiteKind, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A running driver; dropping it does not stop it, [`Cycles::stop`] does.
pub struct Cycles {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Cycles {
    /// Stops the driver and waits for it (jobs it submitted go on).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// What the driver remembers per item or group.
#[derive(Debug, Default)]
struct Track {
    last_submit_ms: Option<u64>,
    cycles: u64,
}

/// Starts the driver, looking every `tick` for cycles that are due.
pub(crate) fn start(shared: Arc<Shared>, tick: Duration) -> Cycles {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("homeward-cycles".to_string())
        .spawn(move || {
            let mut tracks: HashMap<String, Track> = HashMap::new();
            while !flag.load(Ordering::SeqCst) {
                if let Err(e) = tick_once(&shared, &mut tracks) {
                    tracing::warn!("replication cycles: {e}");
                }
                std::thread::park_timeout(tick);
            }
        });
    match thread {
        Ok(thread) => Cycles {
            stop,
            thread: Some(thread),
        },
        Err(e) => {
            tracing::error!("cannot start the replication-cycle driver: {e}");
            Cycles { stop, thread: None }
        }
    }
}

/// One cycle job to submit.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Due {
    pub key: String,
    pub params: ReplicateParams,
}

/// The cycles due at `now_ms`; updates `tracks` for those it returns.
fn due(
    store: &Store,
    tracks: &mut HashMap<String, Track>,
    now_ms: u64,
) -> Result<Vec<Due>, StoreError> {
    let active = active_keys(store)?;
    let mut out = Vec::new();
    for group in store.groups()? {
        let Some(interval) = group.settings.cycle_interval_secs else {
            continue;
        };
        // The side items run on: the cloud for a failback group, on
        // premises after the commit (S3).
        let source_side = match group.direction {
            Direction::ToOnPremises => SiteKind::Cloud,
            Direction::ToCloud => SiteKind::OnPremises,
        };
        let mut items = Vec::new();
        for item in store.items(Some(&group.name))? {
            if item.state != ItemState::Protected
                || item.disks.iter().any(|d| d.replica_path.is_none())
            {
                continue;
            }
            if store.site(&item.source.site)?.kind == source_side {
                items.push(item.name);
            }
        }
        let keys: Vec<(String, ReplicateParams)> = if group.settings.consistency {
            if items.is_empty() {
                Vec::new()
            } else {
                vec![(
                    format!("group:{}", group.name),
                    ReplicateParams {
                        item: None,
                        group: Some(group.name.clone()),
                        app_consistent: false,
                    },
                )]
            }
        } else {
            items
                .into_iter()
                .map(|i| {
                    (
                        format!("item:{i}"),
                        ReplicateParams {
                            item: Some(i),
                            group: None,
                            app_consistent: false,
                        },
                    )
                })
                .collect()
        };
        for (key, mut params) in keys {
            if active.contains(&key) {
                continue;
            }
            let track = tracks.entry(key.clone()).or_default();
            let is_due = track
                .last_submit_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= interval.saturating_mul(1000));
            if !is_due {
                continue;
            }
            track.cycles += 1;
            track.last_submit_ms = Some(now_ms);
            params.app_consistent = group
                .settings
                .app_consistent_every
                .filter(|n| *n > 0)
                .is_some_and(|n| track.cycles.is_multiple_of(u64::from(n)));
            out.push(Due { key, params });
        }
    }
    Ok(out)
}

/// `item:NAME` / `group:NAME` of every replicate job queued or running.
fn active_keys(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    for state in [JobState::Queued, JobState::Running] {
        let jobs = store.jobs(&JobFilter {
            state: Some(state),
            kind: Some(KIND.to_string()),
            limit: None,
        })?;
        for job in jobs {
            if let Some(item) = job.params.get("item").and_then(|v| v.as_str()) {
                keys.push(format!("item:{item}"));
            }
            if let Some(group) = job.params.get("group").and_then(|v| v.as_str()) {
                keys.push(format!("group:{group}"));
            }
        }
    }
    Ok(keys)
}

fn tick_once(shared: &Shared, tracks: &mut HashMap<String, Track>) -> Result<(), String> {
    let due = due(&shared.store, tracks, crate::store::now_ms()).map_err(|e| e.to_string())?;
    if due.is_empty() {
        return Ok(());
    }
    let scheduler = shared.scheduler().map_err(|e| e.to_string())?;
    for d in due {
        let params = serde_json::to_value(&d.params).map_err(|e| e.to_string())?;
        match scheduler.submit(KIND, params) {
            Ok(id) => tracing::debug!("replication cycle of {} submitted as job {id}", d.key),
            Err(SchedulerError::Refused(reason)) => {
                tracing::warn!("the replication cycle of {} was refused: {reason}", d.key)
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
