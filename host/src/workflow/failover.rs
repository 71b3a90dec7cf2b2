//! Failover of a recovery plan (S2), one job per plan with one child job per
//! item, and the test failover (a drill into an isolated network).
//!
//! Plan job steps: `confirm` (the direction, every item ready),
//! `choose-points` (latest, latest app- or crash-consistent, or a given
//! point; one consistency id for a group that asks for it), then the plan's
//! entries in order: `group:NAME` (one `failover-item` job per VM, run
//! together), `manual:N` (logged for the operator), `script:N` (run; must
//! exit 0).
//!
//! Item job steps: `shutdown-source`, `final-sync` (planned only: the source
//! is off, so this last point loses nothing), `materialize` (the replica
//! holds the chosen point, taken back to it through the master target's
//! journal when it is an older one, then checked by fingerprint), `guest-steps` (to
//! on-premises: NetworkManager restore and static IP reset, S16–S17),
//! `power-on`, `record` (the item swaps sides; split-brain generations).

use super::FailoverParams;
use super::common::{
    self, output, params, plugin_error, replica_endpoints, reverse, source_endpoint, store_error,
    target_kind, to_output,
};
use super::disks::{self, Moved};
use super::reprotect::job_tag;
use super::{PointChoice, Shared, TestFailoverParams, direction_words, nic_config, split_brain};
use crate::disk::BlockDevice;
use crate::filesystem::AssembledGuest;
use crate::jobs::{PreparedJob, StepContext, StepError, Workflow};
use crate::plugin::adapter::{Access, CloudVmSpec, HypervisorVmSpec, PowerState};
use crate::plugin::instance::StepContext as GuestContext;
use crate::plugin::{Failure, PluginError};
use crate::store::{
    Direction, Item, ItemState, JobFilter, JobState, NewPoint, PlanEntry, PointDisk, PointKind,
    RecoveryPoint, Side, SiteKind, Store, VmRef,
};
use crate::sync::{DiskEndpoint, Mode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The plan job's kind.
pub const KIND: &str = "failover";
/// One item's failover.
pub const ITEM_KIND: &str = "failover-item";
/// The drill.
pub const TEST_KIND: &str = "test-failover";

pub(crate) struct Failover(pub Arc<Shared>);
pub(crate) struct FailoverItem(pub Arc<Shared>);
pub(crate) struct TestFailover(pub Arc<Shared>);

/// The plan's groups of `direction`, in plan order, with their items.
fn plan_groups(
    store: &Store,
    plan: &str,
    direction: Direction,
) -> Result<Vec<(String, Vec<Item>)>, StepError> {
    let plan = store.plan(plan).map_err(store_error)?;
    let mut out = Vec::new();
    for entry in &plan.entries {
        if let PlanEntry::Group { name } = entry {
            let group = store.group(name).map_err(store_error)?;
            if group.direction == direction {
                out.push((name.clone(), store.items(Some(name)).map_err(store_error)?));
            }
        }
    }
    Ok(out)
}

/// Picks each item's point (S2). A group with consistency on gets the
/// newest consistency id every one of its VMs has.
fn choose_points(
    store: &Store,
    groups: &[(String, Vec<Item>)],
    direction: Direction,
    choice: PointChoice,
) -> Result<BTreeMap<String, i64>, StepError> {
    let mut chosen = BTreeMap::new();
    for (group_name, items) in groups {
        let group = store.group(group_name).map_err(store_error)?;
        let mut per_item: Vec<(&Item, Vec<RecoveryPoint>)> = Vec::new();
        for item in items {
            let points: Vec<RecoveryPoint> = store
                .points(item.id)
                .map_err(store_error)?
                .into_iter()
                .filter(|p| p.direction == direction)
                .filter(|p| match choice {
                    PointChoice::LatestApp => p.kind == PointKind::AppConsistent,
                    PointChoice::LatestCrash => p.kind == PointKind::CrashConsistent,
                    PointChoice::Latest | PointChoice::Id(_) => true,
                })
                .collect();
            per_item.push((item, points));
        }
        if let PointChoice::Id(id) = choice {
            for (item, points) in &per_item {
                if points.iter().any(|p| p.id == id) {
                    chosen.insert(item.name.clone(), id);
                }
            }
            if chosen.is_empty() {
                return Err(StepError::Failed(format!(
                    "recovery point {id} belongs to no VM of group `{group_name}` {}",
                    direction_words(direction)
                )));
            }
            continue;
        }
        if group.settings.consistency {
            // Newest first: the first id every item has wins.
            let first = per_item.first().map(|(_, p)| p.clone()).unwrap_or_default();
            let common = first.iter().find_map(|candidate| {
                let tag = candidate.consistency_id.as_ref()?;
                let all = per_item
                    .iter()
                    .all(|(_, pts)| pts.iter().any(|p| p.consistency_id.as_ref() == Some(tag)));
                all.then(|| tag.clone())
            });
            let Some(tag) = common else {
                return Err(StepError::Failed(format!(
                    "group `{group_name}` asks for multi-VM consistency, but its VMs share no \
                     consistency id {}; replicate them together first",
                    direction_words(direction)
                )));
            };
            for (item, points) in &per_item {
                if let Some(p) = points
                    .iter()
                    .find(|p| p.consistency_id.as_ref() == Some(&tag))
                {
                    chosen.insert(item.name.clone(), p.id);
                }
            }
        } else {
            for (item, points) in &per_item {
                let point = points.first().ok_or_else(|| {
                    StepError::Failed(format!(
                        "item `{}` has no {choice} recovery point {}",
                        item.name,
                        direction_words(direction)
                    ))
                })?;
                chosen.insert(item.name.clone(), point.id);
            }
        }
    }
    Ok(chosen)
}

/// Every item must run on the other side and have a replica here.
fn check_ready(
    groups: &[(String, Vec<Item>)],
    store: &Store,
    direction: Direction,
) -> Result<Vec<String>, StepError> {
    let mut names = Vec::new();
    for (_, items) in groups {
        for item in items {
            let source_kind = store.site(&item.source.site).map_err(store_error)?.kind;
            if source_kind == target_kind(direction) || item.replica.is_none() {
                return Err(StepError::Failed(format!(
                    "{} and cannot fail over {}: reprotect it {} first",
                    super::item_state_words(item),
                    direction_words(direction),
                    direction_words(direction)
                )));
            }
            names.push(item.name.clone());
        }
    }
    if names.is_empty() {
        return Err(StepError::Failed(format!(
            "the plan holds no VM that fails over {}",
            direction_words(direction)
        )));
    }
    Ok(names)
}

/// Submits one child job per item of a group (once: a rerun finds them) and
/// waits for all of them.
fn run_children(
    shared: &Shared,
    ctx: &StepContext,
    kind: &str,
    children: Vec<(String, serde_json::Value)>,
) -> Result<serde_json::Value, StepError> {
    let scheduler = shared.scheduler()?;
    let existing = shared
        .store
        .jobs(&JobFilter {
            state: None,
            kind: Some(kind.to_string()),
            limit: None,
        })
        .map_err(store_error)?;
    let mut ids = Vec::new();
    for (item, params) in children {
        let found = existing.iter().find(|j| {
            j.parent == Some(ctx.job_id())
                && j.params.get("item").and_then(|v| v.as_str()) == Some(item.as_str())
        });
        let id = match found {
            Some(job) => job.id,
            None => scheduler
                .submit(kind, params)
                .map_err(|e| StepError::Failed(format!("submitting the job of {item}: {e}")))?,
        };
        ids.push((item, id));
    }
    let mut failed = Vec::new();
    let mut results = Vec::new();
    for (item, id) in &ids {
        let job = ctx
            .runtime()
            .block_on(scheduler.wait(*id))
            .map_err(|e| StepError::Failed(format!("waiting for job {id} ({item}): {e}")))?;
        if job.state != JobState::Succeeded {
            failed.push(format!(
                "{item} (job {id}, {}): {}",
                job.state.as_str(),
                job.error.clone().unwrap_or_default()
            ));
        }
        results.push(serde_json::json!({ "item": item, "job": id, "state": job.state.as_str() }));
    }
    if ctx.cancelled() {
        return Err(StepError::Cancelled);
    }
    if !failed.is_empty() {
        return Err(StepError::Failed(format!(
            "{} VM(s) failed: {}",
            failed.len(),
            failed.join("; ")
        )));
    }
    Ok(serde_json::Value::Array(results))
}

/// Runs a plan's script entry; it must exit 0.
fn run_script(
    ctx: &StepContext,
    command: &str,
    plan: &str,
    direction: Direction,
) -> Result<serde_json::Value, StepError> {
    ctx.log(&format!("running script: {command}"));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("HOMEWARD_PLAN", plan)
        .env("HOMEWARD_DIRECTION", direction.as_str())
        .output()
        .map_err(|e| StepError::Failed(format!("cannot run script `{command}`: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !out.status.success() {
        return Err(StepError::Failed(format!(
            "script `{command}` failed ({}): {}",
            out.status,
            tail(&stderr)
        )));
    }
    Ok(serde_json::json!({ "command": command, "stdout": tail(&stdout) }))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// The plan job's per-entry step names.
fn entry_steps(store: &Store, plan: &str, direction: Direction) -> Result<Vec<String>, StepError> {
    let plan = store.plan(plan).map_err(store_error)?;
    let mut steps = Vec::new();
    for (i, entry) in plan.entries.iter().enumerate() {
        match entry {
            PlanEntry::Group { name } => {
                let group = store.group(name).map_err(store_error)?;
                if group.direction == direction {
                    steps.push(format!("group:{name}"));
                }
            }
            PlanEntry::Manual { .. } => steps.push(format!("manual:{i}")),
            PlanEntry::Script { .. } => steps.push(format!("script:{i}")),
        }
    }
    Ok(steps)
}

/// Runs a `manual:N` or `script:N` step.
fn run_entry(
    store: &Store,
    ctx: &StepContext,
    plan: &str,
    direction: Direction,
    index: &str,
) -> Result<serde_json::Value, StepError> {
    let plan_record = store.plan(plan).map_err(store_error)?;
    let entry = index
        .parse::<usize>()
        .ok()
        .and_then(|i| plan_record.entries.get(i))
        .ok_or_else(|| StepError::Failed(format!("plan `{plan}` has no entry {index}")))?;
    match entry {
        PlanEntry::Manual { text } => {
            ctx.log(&format!("manual step for the operator: {text}"));
            Ok(serde_json::json!({ "manual": text }))
        }
        PlanEntry::Script { command } => run_script(ctx, command, plan, direction),
        PlanEntry::Group { name } => {
            Err(StepError::Failed(format!("entry {index} is group {name}")))
        }
    }
}

impl Workflow for Failover {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: FailoverParams = params(value)?;
        if !p.confirm {
            return Err(StepError::Failed(format!(
                "failover of plan `{}` {} needs the operator's confirmation of the direction",
                p.plan,
                direction_words(p.direction)
            )));
        }
        let mut steps = vec!["confirm".to_string(), "choose-points".to_string()];
        steps.extend(entry_steps(&self.0.store, &p.plan, p.direction)?);
        Ok(PreparedJob {
            steps,
            resources: Vec::new(),
            summary: format!(
                "{} failover of {} {}",
                if p.planned { "planned" } else { "unplanned" },
                p.plan,
                direction_words(p.direction)
            ),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: FailoverParams = params(ctx.params())?;
        let store = &self.0.store;
        let step = ctx.step_name().to_string();
        if step == "confirm" {
            let groups = plan_groups(store, &p.plan, p.direction)?;
            let names = check_ready(&groups, store, p.direction)?;
            ctx.log(&format!(
                "failing over {} VM(s) {}",
                names.len(),
                direction_words(p.direction)
            ));
            return to_output(&names);
        }
        if step == "choose-points" {
            if p.planned {
                // Every source is shut down before its final sync, so the
                // final points hold no write after that: they are the
                // points, consistent across the group (one tag per plan job).
                ctx.log("planned failover: each VM's final sync makes its point");
                return to_output(&BTreeMap::<String, i64>::new());
            }
            let groups = plan_groups(store, &p.plan, p.direction)?;
            let chosen = choose_points(store, &groups, p.direction, p.point)?;
            return to_output(&chosen);
        }
        if let Some(group) = step.strip_prefix("group:") {
            let chosen: BTreeMap<String, i64> = output(ctx, "choose-points")?;
            let items = store.items(Some(group)).map_err(store_error)?;
            let children = items
                .iter()
                .map(|item| {
                    let params = serde_json::json!({
                        "item": item.name,
                        "direction": p.direction,
                        "point": chosen.get(&item.name),
                        "planned": p.planned,
                        "parent": ctx.job_id(),
                        "network": p.network,
                    });
                    (item.name.clone(), params)
                })
                .collect();
            return run_children(&self.0, ctx, ITEM_KIND, children);
        }
        if let Some(index) = step
            .strip_prefix("manual:")
            .or_else(|| step.strip_prefix("script:"))
        {
            return run_entry(store, ctx, &p.plan, p.direction, index);
        }
        Err(StepError::Failed(format!("failover has no step `{step}`")))
    }
}

/// One item's failover, a child of the plan's job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemParams {
    item: String,
    direction: Direction,
    /// The chosen point (planned failovers make their own).
    point: Option<i64>,
    planned: bool,
    parent: Option<i64>,
    /// The cloud subnet a new cloud VM's NIC goes in.
    network: Option<String>,
}

impl Workflow for FailoverItem {
    fn kind(&self) -> &'static str {
        ITEM_KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: ItemParams = params(value)?;
        let mut steps = vec!["shutdown-source".to_string()];
        if p.planned {
            steps.push("final-sync".to_string());
        }
        steps.push("materialize".to_string());
        if p.direction == Direction::ToOnPremises {
            steps.push("guest-steps".to_string());
        }
        steps.push("power-on".to_string());
        steps.push("record".to_string());
        // The group's process server reads the source for the final sync;
        // on premises its master target writes and fixes the disks.
        let item = self.0.store.item(&p.item).map_err(store_error)?;
        let settings = self
            .0
            .store
            .group(&item.group)
            .map(|g| g.settings)
            .unwrap_or_default();
        let mut resources: Vec<String> = settings
            .process_server
            .iter()
            .map(|ps| format!("ps:{ps}"))
            .collect();
        if p.direction == Direction::ToOnPremises {
            resources.extend(settings.master_target.iter().map(|mt| format!("mt:{mt}")));
        }
        Ok(PreparedJob {
            steps,
            resources,
            summary: format!("failover {} {}", p.item, direction_words(p.direction)),
            parent: p.parent,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: ItemParams = params(ctx.params())?;
        let item = self.0.store.item(&p.item).map_err(store_error)?;
        match ctx.step_name() {
            "shutdown-source" => self.shutdown_source(ctx, &p, &item),
            "final-sync" => self.final_sync(ctx, &p, &item),
            "materialize" => self.materialize(ctx, &p, &item),
            "guest-steps" => guest_steps(
                &self.0,
                ctx,
                &item,
                &replica_endpoints(&self.0, &item, Access::ReadWrite)?,
                replica_macs(&self.0, &item)?,
            ),
            "power-on" => self.power_on(ctx, &p, &item),
            "record" => self.record(ctx, &p, item),
            other => Err(StepError::Failed(format!(
                "failover-item has no step `{other}`"
            ))),
        }
    }
}

/// The replica VM's NIC MACs (on premises), for the guest steps' MAC map.
fn replica_macs(shared: &Shared, item: &Item) -> Result<Vec<String>, StepError> {
    let Some(replica) = &item.replica else {
        return Ok(Vec::new());
    };
    let site = shared.store.site(&replica.site).map_err(store_error)?;
    if site.kind != SiteKind::OnPremises || replica.vm_id.is_empty() {
        return Ok(Vec::new());
    }
    let mut hypervisor = shared
        .env
        .adapter(&site)
        .map_err(common::orchestrator_error)?;
    let vm = hypervisor
        .hypervisor_get_vm(&replica.vm_id)
        .map_err(plugin_error)?;
    Ok(vm.nics.into_iter().map(|n| n.mac).collect())
}

/// Runs the guest post-steps on the disks `paths` (S16, S17): the
/// NICs recorded at protection, and the old MACs mapped to the new VM's.
fn guest_steps(
    shared: &Shared,
    ctx: &StepContext,
    item: &Item,
    paths: &[DiskEndpoint],
    macs: Vec<String>,
) -> Result<serde_json::Value, StepError> {
    let mut devices: Vec<(String, Arc<dyn BlockDevice>)> = Vec::new();
    for path in paths {
        let device = path.open(true, None).map_err(|e| {
            StepError::Failed(format!(
                "opening {} for the guest steps: {e}",
                path.address()
            ))
        })?;
        devices.push((path.address(), Arc::from(device)));
    }
    let guest = AssembledGuest::assemble(shared.env.fs_handlers(), &devices, true)
        .map_err(|e| StepError::Failed(format!("assembling the guest of `{}`: {e}", item.name)))?;
    let guest = Arc::new(guest);
    let mac_map = item
        .nics
        .iter()
        .zip(&macs)
        .filter(|(nic, new)| !nic.mac.eq_ignore_ascii_case(new))
        .map(|(nic, new)| (nic.mac.clone(), new.clone()))
        .collect();
    let context = GuestContext {
        vm_name: item.name.clone(),
        recorded_nics: item.nics.iter().map(nic_config).collect(),
        mac_map,
    };
    let report = crate::guest_steps::run(shared.env.guest_steps(), &guest, &context, true);
    let closed = Arc::into_inner(guest).map(|g| g.close()).unwrap_or(Ok(()));
    let report =
        report.map_err(|e| StepError::Failed(format!("guest steps on `{}`: {e}", item.name)))?;
    closed.map_err(|e| StepError::Failed(format!("closing the guest of `{}`: {e}", item.name)))?;
    let mut steps = Vec::new();
    for step in &report.steps {
        ctx.log(&format!(
            "{}: {} ({} change(s))",
            step.step,
            step.summary,
            step.changes.len()
        ));
        for change in &step.changes {
            ctx.log(&format!(
                "  {} {}: {}",
                step.step, change.change.path, change.reason
            ));
        }
        steps.push(serde_json::json!({
            "step": step.step, "summary": step.summary, "changes": step.changes.len(),
        }));
    }
    let manual: Vec<String> = report
        .manual_steps()
        .iter()
        .map(|(s, t)| format!("{s}: {t}"))
        .collect();
    for m in &manual {
        ctx.log(&format!("manual step: {m}"));
    }
    Ok(serde_json::json!({ "steps": steps, "manual": manual, "replanned": report.replanned }))
}

impl FailoverItem {
    fn shutdown_source(
        &self,
        ctx: &StepContext,
        p: &ItemParams,
        item: &Item,
    ) -> Result<serde_json::Value, StepError> {
        let site = self.0.store.site(&item.source.site).map_err(store_error)?;
        let result = self
            .0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)
            .and_then(|mut adapter| {
                match site.kind {
                    SiteKind::Cloud => adapter.cloud_power_off(&item.source.vm_id, true),
                    SiteKind::OnPremises => {
                        adapter.hypervisor_set_power(&item.source.vm_id, PowerState::PoweredOff)
                    }
                }
                .or_else(already_done)
                .map_err(plugin_error)
            });
        match result {
            Ok(()) => {
                ctx.log(&format!("{} is shut down on {}", item.name, site.name));
                Ok(serde_json::json!({ "shut_down": true }))
            }
            // Unplanned: the source may be gone with its site.
            Err(e) if !p.planned => {
                ctx.log(&format!(
                    "the source could not be shut down ({e}); going on (unplanned failover)"
                ));
                Ok(serde_json::json!({ "shut_down": false, "reason": e.to_string() }))
            }
            Err(e) => Err(e),
        }
    }

    fn final_sync(
        &self,
        ctx: &StepContext,
        p: &ItemParams,
        item: &Item,
    ) -> Result<serde_json::Value, StepError> {
        let targets = replica_endpoints(&self.0, item, Access::ReadWrite)?;
        let mut point_disks = Vec::new();
        let mut moved_all = Vec::new();
        for (disk, target) in item.disks.iter().zip(&targets) {
            let source = source_endpoint(&self.0, item, &disk.source_disk_id)?;
            ctx.check_cancelled()?;
            let moved = disks::sync_disk(ctx, &source, target, Mode::Delta)?;
            ctx.log(&format!(
                "final sync of disk {}: {} of {} bytes sent in {:.2} s",
                disk.index, moved.bytes_sent, moved.bytes_total, moved.seconds
            ));
            point_disks.push(PointDisk {
                index: disk.index,
                snapshot_id: String::new(),
                digest: Some(moved.digest.clone()),
                journal_seq: None,
                change_method: None,
            });
            moved_all.push(moved);
        }
        let tag = p
            .parent
            .map_or_else(|| job_tag(ctx), |parent| format!("job-{parent}"));
        let store = &self.0.store;
        let existing = store
            .points(item.id)
            .map_err(store_error)?
            .into_iter()
            .find(|pt| {
                pt.consistency_id.as_deref() == Some(tag.as_str()) && pt.direction == p.direction
            });
        let point = match existing {
            Some(point) => point,
            None => store
                .add_point(&NewPoint {
                    item_id: item.id,
                    taken_at: crate::store::now_ms(),
                    // The source is off: nothing was in flight.
                    kind: PointKind::AppConsistent,
                    direction: p.direction,
                    consistency_id: Some(tag),
                    disks: point_disks,
                })
                .map_err(store_error)?,
        };
        Ok(serde_json::json!({ "point": point.id, "moved": moved_all }))
    }

    fn materialize(
        &self,
        ctx: &StepContext,
        p: &ItemParams,
        item: &Item,
    ) -> Result<serde_json::Value, StepError> {
        let store = &self.0.store;
        let chosen = match ctx.output_of("final-sync") {
            Some(out) => out.get("point").and_then(|v| v.as_i64()),
            None => p.point,
        }
        .ok_or_else(|| {
            StepError::Failed(format!("no recovery point was chosen for `{}`", item.name))
        })?;
        let point = store.point(chosen).map_err(store_error)?;
        let newest = store
            .points(item.id)
            .map_err(store_error)?
            .into_iter()
            .find(|pt| pt.direction == p.direction);
        if newest.as_ref().map(|n| n.id) != Some(point.id) {
            // An older point: the master target's journal takes the replica
            // back to it (its undo sets), when the point is in the journal.
            let rolled = self.roll_back(ctx, item, &point)?;
            ctx.log(&format!(
                "the replica of {} was taken back to recovery point {} ({rolled} disk(s) rolled back)",
                item.name, point.id
            ));
        }
        let paths = replica_endpoints(&self.0, item, Access::Read)?;
        for (disk, path) in point.disks.iter().zip(&paths) {
            let Some(expected) = &disk.digest else {
                continue;
            };
            ctx.check_cancelled()?;
            let now = disks::fingerprint(path)?;
            if &now != expected {
                return Err(StepError::Failed(format!(
                    "the replica of disk {} of `{}` ({}) does not hold recovery point {} (digest {} ≠ {}); \
                     reprotect again before failing over",
                    disk.index,
                    item.name,
                    path.address(),
                    point.id,
                    &now[..16],
                    &expected[..expected.len().min(16)]
                )));
            }
        }
        ctx.log(&format!(
            "the replica of {} holds recovery point {} (verified)",
            item.name, point.id
        ));
        Ok(serde_json::json!({ "point": point.id, "verified": point.disks.len() }))
    }

    /// Takes each replica disk back to `point` through its journal; the
    /// store's points newer than it (now gone from the journal) are deleted.
    /// Refused for a point the journal does not hold (a replica with no
    /// journal holds only its newest point).
    fn roll_back(
        &self,
        ctx: &StepContext,
        item: &Item,
        point: &RecoveryPoint,
    ) -> Result<usize, StepError> {
        if point.direction == Direction::ToCloud && super::replicate_to_cloud::has_snapshots(point)
        {
            return self.restore_from_snapshots(ctx, item, point);
        }
        let paths = replica_endpoints(&self.0, item, Access::Read)?;
        let group = self.0.store.group(&item.group).map_err(store_error)?;
        let options = super::replicate::journal_options(&group.settings);
        let mut rolled = 0;
        let mut seqs = Vec::new();
        for (disk, endpoint) in point.disks.iter().zip(&paths) {
            let (Some(seq), Some(digest), Some(path)) =
                (disk.journal_seq, &disk.digest, endpoint.local_path())
            else {
                return Err(StepError::Failed(format!(
                    "recovery point {} of `{}` is not the newest one, which the replica holds, and the \
                     master target's journal does not hold disk {} of it: choose `latest`",
                    point.id, item.name, disk.index
                )));
            };
            ctx.check_cancelled()?;
            let mut journal = super::replicate::open_journal(path, options.clone())?;
            if super::replicate::journal_point(&journal, seq, digest).is_none() {
                return Err(StepError::Failed(format!(
                    "recovery point {} of `{}`: the journal of disk {} ({}) no longer holds it \
                     (seq {seq}); choose a retained point",
                    point.id,
                    item.name,
                    disk.index,
                    path.display()
                )));
            }
            if journal.latest().map(|m| m.seq) != Some(seq) {
                journal.rollback_to(seq).map_err(|e| {
                    StepError::Failed(format!(
                        "taking disk {} of `{}` back to recovery point {}: {e}",
                        disk.index, item.name, point.id
                    ))
                })?;
                rolled += 1;
            }
            seqs.push((disk.index, seq));
        }
        let store = &self.0.store;
        for newer in store.points(item.id).map_err(store_error)? {
            let gone = newer.id != point.id
                && newer.direction == point.direction
                && newer.disks.iter().any(|d| {
                    d.journal_seq
                        .zip(seqs.iter().find(|(i, _)| *i == d.index).map(|(_, s)| *s))
                        .is_some_and(|(theirs, chosen)| theirs > chosen)
                });
            if gone {
                store.delete_point(newer.id).map_err(store_error)?;
            }
        }
        Ok(rolled)
    }

    /// Copies the blob snapshots of a point to the cloud back over the
    /// replica disks (a delta through the data path: only the blocks that
    /// differ move). Newer points keep their snapshots and stay retained.
    fn restore_from_snapshots(
        &self,
        ctx: &StepContext,
        item: &Item,
        point: &RecoveryPoint,
    ) -> Result<usize, StepError> {
        let targets = replica_endpoints(&self.0, item, Access::ReadWrite)?;
        let (_, _, mut cloud) = self.replica_adapter(item)?;
        for (disk, target) in point.disks.iter().zip(&targets) {
            let id = super::replicate_to_cloud::replica_disk_id(item, disk.index)?;
            let frozen = cloud
                .cloud_disk_endpoint(&format!("{id}@{}", disk.snapshot_id), Access::Read)
                .map_err(plugin_error)?;
            let source = disks::endpoint(&frozen, &[])?;
            ctx.check_cancelled()?;
            let moved = disks::sync_disk(ctx, &source, target, crate::sync::Mode::Delta)?;
            ctx.log(&format!(
                "disk {} of {}: recovery point {} copied back from snapshot {} ({} bytes sent)",
                disk.index, item.name, point.id, disk.snapshot_id, moved.bytes_sent
            ));
        }
        Ok(point.disks.len())
    }

    /// The item's replica, the site it is on, and that site's adapter.
    fn replica_adapter<'a>(
        &self,
        item: &'a Item,
    ) -> Result<
        (
            &'a crate::store::VmRef,
            crate::store::Site,
            crate::plugin::PluginInstance,
        ),
        StepError,
    > {
        let replica = item
            .replica
            .as_ref()
            .ok_or_else(|| StepError::Failed(format!("item `{}` has no replica", item.name)))?;
        let site = self.0.store.site(&replica.site).map_err(store_error)?;
        let adapter = self
            .0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)?;
        Ok((replica, site, adapter))
    }

    fn power_on(
        &self,
        ctx: &StepContext,
        p: &ItemParams,
        item: &Item,
    ) -> Result<serde_json::Value, StepError> {
        let (replica, site, mut adapter) = self.replica_adapter(item)?;
        let vm_id = match site.kind {
            SiteKind::OnPremises => {
                adapter
                    .hypervisor_set_power(&replica.vm_id, PowerState::PoweredOn)
                    .or_else(already_done)
                    .map_err(plugin_error)?;
                replica.vm_id.clone()
            }
            SiteKind::Cloud if !replica.vm_id.is_empty() => {
                adapter
                    .cloud_start(&replica.vm_id)
                    .or_else(already_done)
                    .map_err(plugin_error)?;
                replica.vm_id.clone()
            }
            SiteKind::Cloud => {
                let subnet = p.network.clone().ok_or_else(|| {
                    StepError::Failed(format!(
                        "`{}` has no cloud VM yet: name the subnet its NIC goes in (--network)",
                        item.name
                    ))
                })?;
                // The cloud subnet is not the site's: the cloud gives the NIC
                // an address there (the guest uses DHCP in the cloud), and
                // the recorded static address comes back with the failback.
                let private_ip = None;
                let disk_ids = item
                    .disks
                    .iter()
                    .map(|d| d.replica_disk_id.clone().unwrap_or_default())
                    .collect();
                let vm = adapter
                    .cloud_create_vm(&CloudVmSpec {
                        name: item.name.clone(),
                        size: "Standard_D2s_v5".to_string(),
                        disk_ids,
                        subnet_id: subnet,
                        private_ip,
                    })
                    .map_err(plugin_error)?;
                vm.id
            }
        };
        ctx.log(&format!("{} is running on {}", item.name, site.name));
        Ok(serde_json::json!({ "vm_id": vm_id, "site": site.name }))
    }

    fn record(
        &self,
        ctx: &StepContext,
        p: &ItemParams,
        mut item: Item,
    ) -> Result<serde_json::Value, StepError> {
        let store = &self.0.store;
        if item.state == ItemState::FailedOver
            && store.site(&item.source.site).map_err(store_error)?.kind == target_kind(p.direction)
        {
            // Recorded by an earlier run of this step.
            return Ok(serde_json::json!({ "recorded": true }));
        }
        let power: serde_json::Value = ctx.output_of("power-on").cloned().unwrap_or_default();
        let vm_id = power
            .get("vm_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let old_side = side_of(p.direction, true);
        let new_side = side_of(p.direction, false);
        // What the old primary holds as it stops being primary (split-brain guard).
        let mut old_paths = Vec::new();
        for disk in &item.disks {
            let path = source_endpoint(&self.0, &item, &disk.source_disk_id).ok();
            if let Some(path) = &path {
                let fp = disks::fingerprint(path)?;
                split_brain::record_stopped(store, &item, disk.index, old_side, fp)?;
            }
            split_brain::record_primary(store, &item, disk.index, new_side)?;
            old_paths.push(path);
        }
        let replica = item.replica.take().unwrap_or(VmRef {
            site: String::new(),
            vm_id: String::new(),
            name: item.name.clone(),
        });
        let old_source = std::mem::replace(
            &mut item.source,
            VmRef {
                site: replica.site,
                vm_id,
                name: replica.name,
            },
        );
        item.replica = Some(old_source);
        for (disk, old_path) in item.disks.iter_mut().zip(old_paths) {
            let new_source = disk.replica_disk_id.take().unwrap_or_default();
            disk.replica_disk_id = Some(std::mem::replace(&mut disk.source_disk_id, new_source));
            disk.replica_path = old_path.map(|p| p.address());
        }
        item.state = ItemState::FailedOver;
        item.state_detail = format!(
            "failed over {}; commit to reprotect {}",
            direction_words(p.direction),
            direction_words(reverse(p.direction))
        );
        store.update_item(&item).map_err(store_error)?;
        Ok(serde_json::json!({ "recorded": true, "source": item.source.site }))
    }
}

/// The side a direction leaves (`leaving`) or goes to.
fn side_of(direction: Direction, leaving: bool) -> Side {
    match (direction, leaving) {
        (Direction::ToOnPremises, true) | (Direction::ToCloud, false) => Side::Cloud,
        (Direction::ToOnPremises, false) | (Direction::ToCloud, true) => Side::OnPremises,
    }
}

/// A power change the VM is already in is done, not failed.
fn already_done(e: PluginError) -> Result<(), PluginError> {
    match &e {
        PluginError::Failed {
            failure: Failure::Conflict(_),
            ..
        } => Ok(()),
        _ => Err(e),
    }
}

/// A drill's parameters for one item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DrillVm {
    item: String,
    vm_id: String,
    disks: Vec<PathBuf>,
}

impl Workflow for TestFailover {
    fn kind(&self) -> &'static str {
        TEST_KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: TestFailoverParams = params(value)?;
        if p.direction != Direction::ToOnPremises {
            return Err(StepError::Failed(
                "a test failover to the cloud needs new cloud disks, which cloud adapters of API 0.1 \
                 cannot make; drill to on-premises"
                    .to_string(),
            ));
        }
        let groups = plan_groups(&self.0.store, &p.plan, p.direction)?;
        let mut steps = vec!["choose-points".to_string()];
        for (_, items) in &groups {
            steps.extend(items.iter().map(|i| format!("drill:{}", i.name)));
        }
        if p.cleanup {
            steps.push("cleanup".to_string());
        }
        Ok(PreparedJob {
            steps,
            resources: Vec::new(),
            summary: format!(
                "test failover of {} {}",
                p.plan,
                direction_words(p.direction)
            ),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: TestFailoverParams = params(ctx.params())?;
        let store = &self.0.store;
        let step = ctx.step_name().to_string();
        if step == "choose-points" {
            let groups = plan_groups(store, &p.plan, p.direction)?;
            check_ready(&groups, store, p.direction)?;
            return to_output(&choose_points(store, &groups, p.direction, p.point)?);
        }
        if let Some(name) = step.strip_prefix("drill:") {
            return to_output(&self.drill(ctx, &p, name)?);
        }
        if step == "cleanup" {
            let mut removed = Vec::new();
            let groups = plan_groups(store, &p.plan, p.direction)?;
            for item in groups.iter().flat_map(|(_, items)| items) {
                let s = format!("drill:{}", item.name);
                let Some(out) = ctx.output_of(&s) else {
                    continue;
                };
                let drill: DrillVm = serde_json::from_value(out.clone())
                    .map_err(|e| StepError::Failed(format!("the output of {s}: {e}")))?;
                let item = store.item(&drill.item).map_err(store_error)?;
                let site = store
                    .site(&item.replica.clone().unwrap_or(item.source.clone()).site)
                    .map_err(store_error)?;
                let mut hypervisor = self
                    .0
                    .env
                    .adapter(&site)
                    .map_err(common::orchestrator_error)?;
                hypervisor
                    .hypervisor_set_power(&drill.vm_id, PowerState::PoweredOff)
                    .or_else(already_done)
                    .map_err(plugin_error)?;
                match hypervisor.hypervisor_delete_vm(&drill.vm_id) {
                    Ok(()) => {}
                    Err(PluginError::Failed {
                        failure: Failure::NotFound(_),
                        ..
                    }) => {}
                    Err(e) => return Err(plugin_error(e)),
                }
                for path in &drill.disks {
                    let _ = std::fs::remove_file(path);
                }
                ctx.log(&format!("removed drill VM {}", drill.vm_id));
                removed.push(drill.vm_id);
            }
            return to_output(&removed);
        }
        Err(StepError::Failed(format!(
            "test-failover has no step `{step}`"
        )))
    }
}

impl TestFailover {
    /// Brings a copy of the replica up as `<name>-test` on the isolated
    /// network: the replica itself is never touched.
    fn drill(
        &self,
        ctx: &StepContext,
        p: &TestFailoverParams,
        name: &str,
    ) -> Result<DrillVm, StepError> {
        let store = &self.0.store;
        let item = store.item(name).map_err(store_error)?;
        let chosen: BTreeMap<String, i64> = output(ctx, "choose-points")?;
        let replica = item
            .replica
            .clone()
            .ok_or_else(|| StepError::Failed(format!("item `{name}` has no replica")))?;
        let site = store.site(&replica.site).map_err(store_error)?;
        let mut hypervisor = self
            .0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)?;
        let (mt, _) = common::component(
            store,
            crate::store::ComponentRole::MasterTarget,
            None,
            SiteKind::OnPremises,
        )?;
        let drill_name = format!("{name}-test");
        let network = p
            .network
            .clone()
            .unwrap_or_else(|| "Replication".to_string());
        let inventory = hypervisor.hypervisor_discover().map_err(plugin_error)?;
        let vm = match inventory
            .vms
            .iter()
            .find(|vm| vm.name == drill_name)
            .cloned()
        {
            Some(vm) => vm,
            None => {
                let datastore = mt
                    .datastore_mounts
                    .first()
                    .map(|m| m.datastore.clone())
                    .ok_or_else(|| {
                        StepError::Failed(format!("master target {} mounts no datastore", mt.name))
                    })?;
                let datastore = common::datastore_id(&inventory, &datastore)?;
                hypervisor
                    .hypervisor_create_vm(&HypervisorVmSpec {
                        name: drill_name.clone(),
                        host_id: mt.host_id.clone().unwrap_or_default(),
                        datastore_id: datastore,
                        guest_id: "otherLinux64Guest".to_string(),
                        cpus: 2,
                        memory_mib: 2048,
                        disk_sizes: item.disks.iter().map(|d| d.capacity).collect(),
                        network_ids: vec![common::network_id(&inventory, &network)?],
                    })
                    .map_err(plugin_error)?
            }
        };
        let mounts = common::site_mounts(store, &site.name)?;
        let targets = vm
            .disks
            .iter()
            .map(|d| disks::host_path(d, &mounts))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = replica_endpoints(&self.0, &item, Access::Read)?;
        let target_disks: Vec<DiskEndpoint> = targets.iter().map(DiskEndpoint::from).collect();
        let mut moved: Vec<Moved> = Vec::new();
        for (source, target) in sources.iter().zip(&target_disks) {
            moved.push(disks::sync_disk(ctx, source, target, Mode::Delta)?);
        }
        guest_steps(
            &self.0,
            ctx,
            &item,
            &target_disks,
            vm.nics.iter().map(|n| n.mac.clone()).collect(),
        )?;
        hypervisor
            .hypervisor_set_power(&vm.id, PowerState::PoweredOn)
            .or_else(already_done)
            .map_err(plugin_error)?;
        ctx.log(&format!(
            "drill VM {} ({}) runs point {} on network {network}",
            drill_name,
            vm.id,
            chosen
                .get(name)
                .map_or_else(|| "?".to_string(), |id| id.to_string())
        ));
        Ok(DrillVm {
            item: name.to_string(),
            vm_id: vm.id,
            disks: targets,
        })
    }
}
