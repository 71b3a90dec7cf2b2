//! Running guest post-steps on a failed-back guest: plan, show, apply, and
//! plan again.
//!
//! A step plugin only plans; this module carries the plan out. For each step,
//! in order: ask for the plan on the guest tree, record each file before the
//! change, apply the change to the volume that holds it, and, when every step
//! is done, ask every step again: a second plan must be empty. A change a
//! volume cannot take (its handler answers `unsupported`, e.g. an XFS
//! directory that needs allocation) is not an error of the run: it becomes a
//! *manual step* with the exact file and lines, which the operator carries out
//! from a rescue shell, as the source runbooks describe.

use crate::filesystem::{AssembledGuest, manual_step};
use crate::guest_fs::{GuestFsError, GuestTree, PlannedChange};
use crate::plugin::instance::{StepContext, StepPlan};
use crate::plugin::{LoadedPlugin, PluginError};
use std::sync::Arc;

/// Why a run could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum StepsError {
    /// A step plugin failed or was stopped.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A change failed for another reason than "unsupported".
    #[error("applying {step}'s change to {path}: {source}")]
    Apply {
        /// The step.
        step: String,
        /// The guest path.
        path: String,
        /// Why.
        #[source]
        source: GuestFsError,
    },
}

/// What happened to one planned change.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Only planned (no apply asked).
    Planned,
    /// Written to the guest.
    Applied,
    /// The volume could not take it: the operator must do this by hand.
    Manual(String),
}

/// One change of a step's plan, with the file as it was before.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    /// The change.
    pub change: PlannedChange,
    /// Why, from the step.
    pub reason: String,
    /// The file before (absent, or not a readable file: `None`).
    pub before: Option<Vec<u8>>,
    /// What happened.
    pub outcome: Outcome,
}

/// One step's part of a run.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The step's plugin id.
    pub step: String,
    /// The plan's summary.
    pub summary: String,
    /// Facts the step found.
    pub notes: Vec<String>,
    /// Its changes, in order.
    pub changes: Vec<ChangeRecord>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Per step, in order.
    pub steps: Vec<StepReport>,
    /// After applying: per step, the number of changes a second plan still
    /// wants (all zero for an idempotent run with no manual steps).
    pub replanned: Vec<(String, usize)>,
}

impl RunReport {
    /// The manual steps, with the step that wanted each.
    pub fn manual_steps(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .flat_map(|s| {
                s.changes.iter().filter_map(move |c| match &c.outcome {
                    Outcome::Manual(text) => Some((s.step.as_str(), text.as_str())),
                    _ => None,
                })
            })
            .collect()
    }
}

/// Plans every step on `guest`; with `apply`, carries the plans out and
/// plans again.
pub fn run(
    steps: &[LoadedPlugin],
    guest: &Arc<AssembledGuest>,
    context: &StepContext,
    apply: bool,
) -> Result<RunReport, StepsError> {
    let tree: Arc<dyn GuestTree> = guest.clone();
    let mut reports = Vec::new();
    for step in steps {
        let id = step.manifest().id.clone();
        let plan = step.instantiate()?.plan_guest_step(tree.clone(), context)?;
        let mut changes = Vec::new();
        // A plan's changes depend on the ones before them (a directory, then
        // a file in it): after the first one that must be done by hand, the
        // rest of the plan is handed over too, in order.
        let mut by_hand = false;
        for entry in &plan.changes {
            let change = PlannedChange::from(entry);
            let before = tree.read_file(&change.path).ok();
            let outcome = if !apply {
                Outcome::Planned
            } else if by_hand {
                Outcome::Manual(manual_step(&change, before.as_deref()))
            } else {
                match guest.apply(&change) {
                    Ok(()) => Outcome::Applied,
                    Err(GuestFsError::Unsupported { reason, .. }) => {
                        by_hand = true;
                        Outcome::Manual(format!(
                            "{}\n  (Homeward could not: {reason}; the rest of this step's plan follows by hand)",
                            manual_step(&change, before.as_deref())
                        ))
                    }
                    Err(source) => {
                        return Err(StepsError::Apply {
                            step: id,
                            path: change.path.clone(),
                            source,
                        });
                    }
                }
            };
            changes.push(ChangeRecord {
                change,
                reason: entry.reason.clone(),
                before,
                outcome,
            });
        }
        reports.push(report(id, plan, changes));
    }
    let mut replanned = Vec::new();
    if apply {
        for step in steps {
            let again = step.instantiate()?.plan_guest_step(tree.clone(), context)?;
            replanned.push((step.manifest().id.clone(), again.changes.len()));
        }
    }
    Ok(RunReport {
        steps: reports,
        replanned,
    })
}

fn report(step: String, plan: StepPlan, changes: Vec<ChangeRecord>) -> StepReport {
    StepReport {
        step,
        summary: plan.summary,
        notes: plan.notes,
        changes,
    }
}
