//! The guest-step suite: the contract of `post-step.plan` on fixture guests.
//!
//! A step reads a guest and returns a plan; the host applies it. So the host
//! relies on plans that are deterministic, name absolute paths, fit the guest
//! they were made for (nothing created twice, nothing replaced that is not
//! there), carry sane permissions and a reason for the operator, and leave
//! nothing to do when planned again after being applied. On an empty or
//! damaged guest, a step answers with a typed error or a plan that fits:
//! never a trap.

use super::guest_fixtures::{DAMAGED, EMPTY, FixtureGuest, WELL_FORMED};
use crate::conformance::case::ensure;
use crate::conformance::{Case, CaseContext, CaseEnd, expect_no_trap};
use crate::guest_fs::{DirTree, FileKind, GuestFsError, GuestTree, PlannedChange};
use crate::plugin::PluginError;
use crate::plugin::instance::{ChangeKind, StepContext, StepPlan};
use crate::plugin::wit::v0_1::types::{Addressing, NicConfig, StaticAddressing};
use std::sync::Arc;

/// The cases of this suite.
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "guest-step/plans-fixture-guests",
            summary: "plans each well-formed fixture guest, or refuses it with a typed error",
            smoke: true,
            requires: &[],
            run: plans_fixture_guests,
        },
        Case {
            name: "guest-step/plan-is-deterministic",
            summary: "the same guest and context give the same plan in two instances",
            smoke: false,
            requires: &[],
            run: plan_is_deterministic,
        },
        Case {
            name: "guest-step/paths-are-absolute",
            summary: "every change names an absolute, normalised path below the root",
            smoke: false,
            requires: &[],
            run: paths_are_absolute,
        },
        Case {
            name: "guest-step/changes-fit-the-guest",
            summary: "each change applies in order: created paths are new, replaced and removed ones exist",
            smoke: false,
            requires: &[],
            run: changes_fit_the_guest,
        },
        Case {
            name: "guest-step/rerun-is-empty",
            summary: "planning again after the plan was applied changes nothing",
            smoke: false,
            requires: &[],
            run: rerun_is_empty,
        },
        Case {
            name: "guest-step/modes-and-reasons",
            summary: "permissions fit in 0o7777, nothing is world-writable, every change has a reason",
            smoke: false,
            requires: &[],
            run: modes_and_reasons,
        },
        Case {
            name: "guest-step/empty-guest",
            summary: "an empty root gets a typed error (e.g. not-found) or a plan that fits, never a trap",
            smoke: true,
            requires: &[],
            run: empty_guest,
        },
        Case {
            name: "guest-step/damaged-guest",
            summary: "binary files, a file for a directory, symlink loops: a typed error or a plan that fits",
            smoke: false,
            requires: &[],
            run: damaged_guest,
        },
        Case {
            name: "guest-step/no-recorded-nics",
            summary: "a context without recorded NICs gets a typed error or a plan that fits",
            smoke: false,
            requires: &[],
            run: no_recorded_nics,
        },
    ]
}

/// The context a failed-back VM comes with: one NIC recorded with static
/// addressing at protection, and a new MAC because failback made a new VM.
pub fn recorded_context() -> StepContext {
    StepContext {
        vm_name: "conformance-vm".to_string(),
        recorded_nics: vec![NicConfig {
            mac: "00:50:56:aa:bb:01".to_string(),
            network: Some("VM Network".to_string()),
            device_name: Some("eth0".to_string()),
            addressing: Addressing::Fixed(StaticAddressing {
                addresses: vec![("192.168.10.5".to_string(), 24)],
                gateways: vec!["192.168.10.1".to_string()],
                dns_servers: vec!["192.168.10.53".to_string()],
                dns_search: vec!["lab.example".to_string()],
            }),
        }],
        mac_map: vec![(
            "00:50:56:aa:bb:01".to_string(),
            "00:0d:3a:11:22:33".to_string(),
        )],
    }
}

/// A fixture guest written into a fresh directory under the case's scratch dir.
fn guest_root(ctx: &mut CaseContext<'_>, guest: &FixtureGuest) -> Result<Arc<DirTree>, CaseEnd> {
    let dir = ctx.work_dir()?.join(format!("{}-{}", guest.name, unique()));
    std::fs::create_dir_all(&dir)
        .and_then(|()| guest.write(&dir))
        .map_err(|e| CaseEnd::Fail(format!("cannot write fixture guest {}: {e}", guest.name)))?;
    let tree = DirTree::new(&dir)
        .map_err(|e| CaseEnd::Fail(format!("cannot open fixture guest {}: {e}", guest.name)))?;
    Ok(Arc::new(tree))
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Plans `guest` in a fresh instance: the plan, `None` for a typed error, or
/// a failed case for a trap.
fn plan(
    ctx: &mut CaseContext<'_>,
    tree: Arc<DirTree>,
    guest: &str,
    context: &StepContext,
) -> Result<Option<StepPlan>, CaseEnd> {
    let mut instance = ctx.instance()?;
    expect_no_trap(
        &format!("plan on fixture guest `{guest}`"),
        instance.plan_guest_step(tree, context),
    )
}

/// A fixture guest the step planned: the guest, its root, the plan.
type Planned = (&'static FixtureGuest, Arc<DirTree>, StepPlan);

/// Plans every well-formed guest; the ones that got a plan, with their roots.
fn planned_guests(ctx: &mut CaseContext<'_>) -> Result<Vec<Planned>, CaseEnd> {
    let mut planned = Vec::new();
    for guest in WELL_FORMED {
        let tree = guest_root(ctx, guest)?;
        if let Some(plan) = plan(ctx, tree.clone(), guest.name, &recorded_context())? {
            planned.push((guest, tree, plan));
        }
    }
    if planned.is_empty() {
        return Err(CaseEnd::Skip(
            "the step refused every fixture guest with a typed error, so there is no plan to check"
                .to_string(),
        ));
    }
    Ok(planned)
}

fn plans_fixture_guests(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for guest in WELL_FORMED {
        let tree = guest_root(ctx, guest)?;
        let mut instance = ctx.instance()?;
        match instance.plan_guest_step(tree, &recorded_context()) {
            Ok(plan) => ensure!(
                !plan.summary.trim().is_empty(),
                "the plan for `{}` has an empty summary: say what the step will do or why it has nothing to do",
                guest.name
            ),
            Err(PluginError::Failed { failure, .. }) => ensure!(
                !failure.to_string().trim().is_empty(),
                "the error for `{}` has no message",
                guest.name
            ),
            Err(other) => {
                return Err(CaseEnd::Fail(format!(
                    "plan on fixture guest `{}`: the call was stopped instead of answering: {other}",
                    guest.name
                )));
            }
        }
    }
    Ok(())
}

fn plan_is_deterministic(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (guest, tree, first) in planned_guests(ctx)? {
        let second = plan(ctx, tree, guest.name, &recorded_context())?;
        let second = second.ok_or_else(|| {
            CaseEnd::Fail(format!(
                "`{}`: the first plan succeeded, the second failed",
                guest.name
            ))
        })?;
        ensure!(
            format!("{first:?}") == format!("{second:?}"),
            "`{}`: two plans of the same guest differ:\nfirst:  {first:?}\nsecond: {second:?}",
            guest.name
        );
    }
    Ok(())
}

fn paths_are_absolute(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (guest, _, plan) in planned_guests(ctx)? {
        for change in &plan.changes {
            check_path(guest.name, &change.path)?;
        }
    }
    Ok(())
}

fn check_path(guest: &str, path: &str) -> Result<(), CaseEnd> {
    ensure!(
        path.starts_with('/'),
        "`{guest}`: change path `{path}` is not absolute"
    );
    ensure!(path != "/", "`{guest}`: a change names the root itself");
    ensure!(
        !path.ends_with('/'),
        "`{guest}`: change path `{path}` ends with `/`"
    );
    ensure!(
        path[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".."),
        "`{guest}`: change path `{path}` is not normalised (empty, `.` or `..` components)"
    );
    ensure!(
        !path.contains('\0'),
        "`{guest}`: change path `{path:?}` contains NUL"
    );
    Ok(())
}

fn changes_fit_the_guest(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (guest, tree, plan) in planned_guests(ctx)? {
        apply_checked(guest.name, &tree, &plan)?;
    }
    Ok(())
}

/// Applies `plan` change by change, checking first that each one fits what
/// the guest holds at that moment.
fn apply_checked(guest: &str, tree: &DirTree, plan: &StepPlan) -> Result<(), CaseEnd> {
    for (index, change) in plan.changes.iter().enumerate() {
        check_path(guest, &change.path)?;
        let existing = match tree.stat(&change.path) {
            Ok(stat) => Some(stat.kind),
            Err(GuestFsError::NotFound { .. }) => None,
            Err(e) => {
                return Err(CaseEnd::Fail(format!(
                    "`{guest}`: change {index} ({:?} {}): its path cannot be looked up: {e}",
                    change.kind, change.path
                )));
            }
        };
        let fits = match change.kind {
            ChangeKind::CreateFile | ChangeKind::CreateDir | ChangeKind::CreateSymlink => {
                existing.is_none()
            }
            ChangeKind::ReplaceFile => existing == Some(FileKind::Regular),
            ChangeKind::Remove => {
                matches!(existing, Some(FileKind::Regular | FileKind::Symlink))
            }
        };
        ensure!(
            fits,
            "`{guest}`: change {index} is {:?} of `{}`, but the guest holds {} there at that point of the plan",
            change.kind,
            change.path,
            match existing {
                None => "nothing".to_string(),
                Some(kind) => format!("a {kind:?}"),
            }
        );
        tree.apply(&PlannedChange::from(change)).map_err(|e| {
            CaseEnd::Fail(format!(
                "`{guest}`: change {index} ({:?} {}) does not apply: {e}",
                change.kind, change.path
            ))
        })?;
    }
    Ok(())
}

fn rerun_is_empty(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (guest, tree, first) in planned_guests(ctx)? {
        apply_checked(guest.name, &tree, &first)?;
        let again = plan(ctx, tree, guest.name, &recorded_context())?.ok_or_else(|| {
            CaseEnd::Fail(format!(
                "`{}`: planning again after applying the plan failed",
                guest.name
            ))
        })?;
        ensure!(
            again.changes.is_empty(),
            "`{}`: planning again after applying the plan still changes {}: a re-run must find nothing to do",
            guest.name,
            again
                .changes
                .iter()
                .map(|c| format!("{:?} {}", c.kind, c.path))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn modes_and_reasons(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    for (guest, _, plan) in planned_guests(ctx)? {
        for change in &plan.changes {
            let path = &change.path;
            ensure!(
                !change.reason.trim().is_empty(),
                "`{}`: the change of `{path}` has no reason for the operator",
                guest.name
            );
            if matches!(change.kind, ChangeKind::Remove | ChangeKind::CreateSymlink) {
                continue;
            }
            ensure!(
                change.mode <= 0o7777,
                "`{}`: `{path}` has mode {:#o}, beyond permission bits (0o7777)",
                guest.name,
                change.mode
            );
            ensure!(
                change.mode & 0o002 == 0,
                "`{}`: `{path}` would be world-writable (mode {:#o})",
                guest.name,
                change.mode
            );
            if change.kind == ChangeKind::CreateDir {
                ensure!(
                    change.mode & 0o100 != 0,
                    "`{}`: directory `{path}` would not be searchable by its owner (mode {:#o})",
                    guest.name,
                    change.mode
                );
                ensure!(
                    change.content.is_empty(),
                    "`{}`: create-dir of `{path}` carries content",
                    guest.name
                );
            }
        }
    }
    Ok(())
}

/// Plans one odd guest: a typed error passes, a plan must fit.
fn odd_guest(
    ctx: &mut CaseContext<'_>,
    guest: &FixtureGuest,
    context: &StepContext,
) -> Result<(), CaseEnd> {
    let tree = guest_root(ctx, guest)?;
    if let Some(plan) = plan(ctx, tree.clone(), guest.name, context)? {
        apply_checked(guest.name, &tree, &plan)?;
    }
    Ok(())
}

fn empty_guest(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    odd_guest(ctx, &EMPTY, &recorded_context())
}

fn damaged_guest(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    odd_guest(ctx, &DAMAGED, &recorded_context())
}

fn no_recorded_nics(ctx: &mut CaseContext<'_>) -> Result<(), CaseEnd> {
    let context = StepContext {
        recorded_nics: Vec::new(),
        mac_map: Vec::new(),
        ..recorded_context()
    };
    for guest in WELL_FORMED {
        odd_guest(ctx, guest, &context)?;
    }
    Ok(())
}
