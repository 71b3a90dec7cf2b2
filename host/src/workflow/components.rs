//! Process servers and master targets stay visible (S19): components in
//! this process ("local") beat every interval; a component whose last beat
//! is older than [`STALE_AFTER`] intervals is marked `unreachable`, and one
//! that beats again is `registered` again.

use crate::store::{ComponentState, Store, now_ms};
use std::sync::Arc;
use std::time::Duration;

/// How many missed intervals make a component unreachable.
pub const STALE_AFTER: u32 = 3;
/// The interval `homeward serve` uses.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One round: local components beat, stale ones become unreachable,
/// unreachable ones that beat again become registered. Returns the names
/// whose state changed.
pub fn check(store: &Store, interval: Duration) -> Result<Vec<String>, crate::store::StoreError> {
    let now = now_ms();
    let stale_ms = u64::try_from(interval.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::from(STALE_AFTER));
    let mut changed = Vec::new();
    for c in store.components(None)? {
        // A registration still being checked, or one that failed, is not
        // the monitor's to change.
        if matches!(
            c.state,
            ComponentState::Registering | ComponentState::Failed
        ) {
            continue;
        }
        let last = if c.address == "local" {
            store.heartbeat(&c.name, now)?;
            now
        } else {
            c.last_heartbeat.unwrap_or(c.registered_at)
        };
        let stale = now.saturating_sub(last) > stale_ms;
        let next = match (c.state, stale) {
            (ComponentState::Registered, true) => Some((
                ComponentState::Unreachable,
                format!("no heartbeat for {} s", now.saturating_sub(last) / 1000),
            )),
            (ComponentState::Unreachable, false) => {
                Some((ComponentState::Registered, "heartbeat again".to_string()))
            }
            _ => None,
        };
        if let Some((state, detail)) = next {
            tracing::info!("component {} is now {}: {detail}", c.name, state.as_str());
            store.set_component_state(&c.name, state, &detail)?;
            changed.push(c.name);
        }
    }
    Ok(changed)
}

/// Runs [`check`] every `interval` until the task is aborted.
pub fn monitor(store: Arc<Store>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            let store = store.clone();
            match tokio::task::spawn_blocking(move || check(&store, interval)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("component heartbeat check: {e}"),
                Err(e) => tracing::warn!("component heartbeat check stopped: {e}"),
            }
        }
    })
}
