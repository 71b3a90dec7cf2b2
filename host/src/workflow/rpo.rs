//! Recovery point objective per item: how old its latest recovery point is,
//! against the target its group sets, and the alert when it is older.
//!
//! The age runs from when the point was taken at the source (the snapshot),
//! not from when it was committed, so it is the data an operator would lose
//! by failing over now.

use crate::store::{Item, Store, StoreError};
use serde::{Deserialize, Serialize};

/// One item's RPO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rpo {
    /// The item.
    pub item: String,
    /// When its latest point (of its group's direction) was taken, Unix ms.
    pub latest_taken_at: Option<u64>,
    /// Age of that point in seconds at the time asked; `None` without a point.
    pub age_secs: Option<u64>,
    /// The group's target, if it sets one.
    pub target_secs: Option<u64>,
    /// The age is over the target (or there is no point and a target is set).
    pub alert: bool,
    /// The latest point's sequence number in its first disk's journal, when
    /// the master target keeps one.
    pub journal_seq: Option<u64>,
}

impl Rpo {
    /// `"12s / 30s"`-like text for tables.
    pub fn words(&self) -> String {
        let age = self.age_secs.map_or("-".to_string(), |a| format!("{a}s"));
        match self.target_secs {
            Some(t) => format!("{age}/{t}s"),
            None => age,
        }
    }
}

/// The RPO of `item` at `now_ms`.
pub fn rpo(store: &Store, item: &Item, now_ms: u64) -> Result<Rpo, StoreError> {
    let group = store.group(&item.group)?;
    let latest = store
        .points(item.id)?
        .into_iter()
        .filter(|p| p.direction == group.direction)
        .max_by_key(|p| (p.taken_at, p.id));
    let age_secs = latest
        .as_ref()
        .map(|p| now_ms.saturating_sub(p.taken_at) / 1000);
    let target_secs = group.settings.rpo_target_secs;
    let alert = match (target_secs, &latest) {
        (None, _) => false,
        (Some(_), None) => true,
        // Compared in ms: a 1 s target is missed at 1.001 s.
        (Some(t), Some(p)) => now_ms.saturating_sub(p.taken_at) > t.saturating_mul(1000),
    };
    Ok(Rpo {
        item: item.name.clone(),
        latest_taken_at: latest.as_ref().map(|p| p.taken_at),
        age_secs,
        target_secs,
        alert,
        journal_seq: latest
            .as_ref()
            .and_then(|p| p.disks.first())
            .and_then(|d| d.journal_seq),
    })
}
