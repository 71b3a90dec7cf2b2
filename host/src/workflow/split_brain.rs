//! The split-brain guard: failback never overwrites an on-premises disk that
//! changed after the failover to the cloud, unless the operator says so.
//!
//! As DRBD does, each disk has a generation per side: a side that becomes
//! primary gets a new generation id; a side that stops being primary keeps
//! its generation and records the fingerprint (whole-disk BLAKE3) of what it
//! held at that moment. Before a delta failback into the original disks, the
//! guard fingerprints them again: a different fingerprint means someone wrote
//! to the old primary after it was given up (the two sides diverged), and a
//! delta would silently discard those writes.

use super::common::store_error;
use super::disks::fingerprint;
use crate::jobs::StepError;
use crate::store::{DiskGeneration, Item, Side, Store};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the guard found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Disks compared.
    pub checked: usize,
    /// Disks that changed since the side stopped being primary.
    pub changed: Vec<u32>,
    /// The operator allowed overwriting them.
    pub overwritten: bool,
    /// What to tell the operator.
    pub notes: Vec<String>,
}

/// Checks the on-premises disks (`paths`, in disk order) of `item` against
/// the fingerprints recorded when on premises stopped being primary.
pub fn check(
    store: &Store,
    item: &Item,
    paths: &[(String, PathBuf)],
    allow_overwrite: bool,
) -> Result<Verdict, StepError> {
    let generations = store.generations(item.id).map_err(store_error)?;
    let mut changed = Vec::new();
    let mut notes = Vec::new();
    for (index, (_, path)) in paths.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let recorded = generations
            .iter()
            .find(|g| g.disk_index == index && g.side == Side::OnPremises)
            .and_then(|g| g.fingerprint.clone().map(|f| (g.generation.clone(), f)));
        let now = fingerprint(path)?;
        match recorded {
            Some((generation, before)) if before == now => notes.push(format!(
                "disk {index}: unchanged since on premises stopped being primary (generation {generation})"
            )),
            Some((generation, _)) => {
                changed.push(index);
                notes.push(format!(
                    "disk {index} ({}) changed after the failover to the cloud (generation {generation})",
                    path.display()
                ));
            }
            None => {
                changed.push(index);
                notes.push(format!(
                    "disk {index} ({}): no fingerprint was recorded when on premises stopped being primary, \
                     so its history is unknown",
                    path.display()
                ));
            }
        }
    }
    if !changed.is_empty() && !allow_overwrite {
        return Err(StepError::Failed(format!(
            "split brain: failback of `{}` would overwrite on-premises disk(s) {:?} that changed after the \
             failover to the cloud ({}). Keep them: fail back to an alternate location (delete or rename \
             the original VM first). Discard those changes: reprotect again with allow_overwrite \
             (`--allow-overwrite`).",
            item.name,
            changed,
            notes.join("; ")
        )));
    }
    if !changed.is_empty() {
        notes.push(format!(
            "the operator allowed overwriting disk(s) {changed:?}: their on-premises changes are discarded"
        ));
    }
    Ok(Verdict {
        checked: paths.len(),
        overwritten: !changed.is_empty(),
        changed,
        notes,
    })
}

/// `side` stops being primary for disk `index`: keep its generation, record
/// what it holds.
pub fn record_stopped(
    store: &Store,
    item: &Item,
    index: u32,
    side: Side,
    fingerprint: String,
) -> Result<(), StepError> {
    let generation = store
        .generations(item.id)
        .map_err(store_error)?
        .into_iter()
        .find(|g| g.disk_index == index && g.side == side)
        .map(|g| g.generation)
        .unwrap_or_else(new_generation);
    store
        .set_generation(&DiskGeneration {
            item_id: item.id,
            disk_index: index,
            side,
            generation,
            fingerprint: Some(fingerprint),
            recorded_at: crate::store::now_ms(),
        })
        .map_err(store_error)
}

/// `side` becomes primary for disk `index`: a new generation.
pub fn record_primary(store: &Store, item: &Item, index: u32, side: Side) -> Result<(), StepError> {
    store
        .set_generation(&DiskGeneration {
            item_id: item.id,
            disk_index: index,
            side,
            generation: new_generation(),
            fingerprint: None,
            recorded_at: crate::store::now_ms(),
        })
        .map_err(store_error)
}

fn new_generation() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    // The system's randomness failing is not worth stopping a failover for:
    // a time-based id is still unique enough for one disk's history.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = crate::store::now_ms().to_be_bytes();
    }
    hex::encode(bytes)
}
