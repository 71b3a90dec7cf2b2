//! Replicate: one cycle of continuous replication, of one item or of a
//! whole group with multi-VM consistency on (issue 8).
//!
//! The source runs in the cloud; the replica is on premises, where the
//! master target writes each cycle's changes through the disk's undo journal
//! (`<replica>.journal`, [`crate::journal`]), so every retained point can
//! be brought up later.
//!
//! Steps (each idempotent):
//!
//! - `snapshot`: a restore point of every VM of the job (one instant for all
//!   of a VM's disks; `cloud-restore-points`, API 0.1.1), one consistency id
//!   for all of them. This is the barrier: nothing ships before every
//!   snapshot is taken. A cycle asked for an app-consistent point asks the
//!   adapter to quiesce; a VM whose point could not be quiesced (stopped,
//!   no agent, an adapter that cannot) gets a crash-consistent point and the
//!   adapter's reason in the job log. Adapters built for API 0.1.0 have no
//!   restore points: their disks are snapshotted one by one, crash-consistent.
//! - `changes-N` (per disk): the adapter's changed ranges between the
//!   previous cycle's snapshot and the new one, when that snapshot is the
//!   base of the journal's latest point; else a *digest resync*
//!   ([`differing_ranges`]: both sides read and compared), with the reason
//!   (no previous snapshot, a gap in the chain, the base snapshot gone)
//!   recorded on the item.
//! - `ship-N` (per disk): the changed extents, read from the frozen
//!   snapshot, through the data path into the replica's journal as a point.
//! - `record`: the store's points (same consistency id, journal seq,
//!   digest), the store points the journal pruned deleted, alarms raised on
//!   the item and in the job log, the previous snapshots deleted (the new
//!   ones are the next cycle's base).
//!
//! Snapshots never leak: `snapshot` logs each one it takes before going on,
//! deletes what it took when it fails, and a rerun after a crash deletes
//! those the interrupted attempt logged ([`taken_line`], [`parse_taken`])
//! before taking new ones.

use super::common::{self, output, params, plugin_error, store_error, to_output};
use super::{Shared, direction_words};
use crate::jobs::{PreparedJob, StepContext, StepError, Workflow};
use crate::journal::{self, Journal, JournalOptions, NewPointMeta, Retention};
use crate::plugin::adapter::Access;
use crate::plugin::{Failure, PluginError};
use crate::store::{
    Direction, GroupSettings, Item, ItemState, NewPoint, PointDisk, PointKind, Store,
};
use crate::sync::extents::{ExtentShipment, differing_ranges, ship_local};
use crate::sync::{DEFAULT_BLOCK_SIZE, DiskEndpoint};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The job kind.
pub const KIND: &str = "replicate";

/// The change method recorded when both sides were compared.
pub const DIGEST_RESYNC: &str = "digest-resync";

/// One replication cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicateParams {
    /// One item.
    #[serde(default)]
    pub item: Option<String>,
    /// A whole group (its protected items, one consistency id).
    #[serde(default)]
    pub group: Option<String>,
    /// Ask for an app-consistent point (recorded as such for each VM whose
    /// adapter could quiesce it).
    #[serde(default)]
    pub app_consistent: bool,
}

pub(crate) struct Replicate(pub Arc<Shared>);

/// What `snapshot` took.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Snapped {
    consistency_id: String,
    taken_at: u64,
    disks: Vec<SnapDisk>,
}

/// One disk of the cycle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapDisk {
    item: String,
    index: u32,
    disk_id: String,
    snapshot_id: String,
    /// The replica disk on the master target (host path).
    replica: String,
    /// Taken by a quiesced (app-consistent) restore point.
    #[serde(default)]
    quiesced: bool,
}

/// One VM's snapshots for a cycle, in the order of its disks.
struct VmPoint {
    snapshot_ids: Vec<String>,
    quiesced: bool,
    /// Why an asked-for app-consistent point is crash-consistent.
    note: Option<String>,
}

/// What `changes-N` found.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Changes {
    /// Changed byte ranges `[start, end)`, sorted, disjoint.
    ranges: Vec<(u64, u64)>,
    /// The adapter's method, or [`DIGEST_RESYNC`].
    method: String,
    /// Why change tracking was not used.
    resync: Option<String>,
    /// The previous cycle's snapshot, deleted by `record`.
    previous_snapshot: Option<String>,
    bytes: u64,
}

/// What `ship-N` committed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Shipped {
    seq: u64,
    digest: String,
    bytes_changed: u64,
    bytes_sent: u64,
    seconds: f64,
    /// Journal seqs retention dropped.
    pruned: Vec<u64>,
    /// Alarms, as operators read them.
    alarms: Vec<String>,
}

/// The journal directory of a replica disk.
pub fn journal_dir(replica: &Path) -> PathBuf {
    let mut name = replica.as_os_str().to_os_string();
    name.push(".journal");
    PathBuf::from(name)
}

/// A group's journal settings as the journal's options. The oldest point
/// kept is the journal's own `max_age_secs`, else the group's retention
/// (S1: chosen at reprotect), else the default (24 h).
pub fn journal_options(group: &GroupSettings) -> JournalOptions {
    let defaults = Retention::default();
    let s = &group.journal;
    let retention = group
        .retention_hours
        .map(|h| Duration::from_secs(u64::from(h) * 3600));
    JournalOptions {
        max_bytes: s.max_bytes.unwrap_or(u64::MAX),
        retention: Retention {
            keep_all_for: s
                .keep_all_secs
                .map_or(defaults.keep_all_for, Duration::from_secs),
            then_one_per: s
                .one_per_secs
                .map_or(defaults.then_one_per, Duration::from_secs),
            max_age: s
                .max_age_secs
                .map(Duration::from_secs)
                .or(retention)
                .unwrap_or(defaults.max_age),
            max_points: s.max_points.or(defaults.max_points),
        },
    }
}

/// Opens the journal of `replica` (creating it if there is none).
pub fn open_journal(replica: &Path, options: JournalOptions) -> Result<Journal, StepError> {
    let endpoint = DiskEndpoint::Path(replica.to_path_buf());
    let device = endpoint.open(true, None).map_err(|e| {
        StepError::Failed(format!("opening the replica {}: {e}", replica.display()))
    })?;
    let (journal, recovered) = Journal::open(&journal_dir(replica), Arc::from(device), options)
        .map_err(|e| {
            StepError::Failed(format!("opening the journal of {}: {e}", replica.display()))
        })?;
    tracing::debug!("journal of {}: {recovered:?}", replica.display());
    Ok(journal)
}

/// The items a job replicates (one, or every protected item of the group)
/// and the direction they replicate in (one per job: one group).
pub(super) fn members(
    store: &Store,
    p: &ReplicateParams,
) -> Result<(Vec<Item>, Direction), StepError> {
    let items = match (&p.item, &p.group) {
        (Some(item), None) => vec![store.item(item).map_err(store_error)?],
        (None, Some(group)) => store
            .items(Some(group))
            .map_err(store_error)?
            .into_iter()
            .filter(|i| i.state == ItemState::Protected)
            .collect(),
        _ => {
            return Err(StepError::Failed(
                "a replication cycle names one item or one group".to_string(),
            ));
        }
    };
    if items.is_empty() {
        return Err(StepError::Failed(format!(
            "group `{}` has no protected item to replicate",
            p.group.as_deref().unwrap_or_default()
        )));
    }
    let direction = store.group(&items[0].group).map_err(store_error)?.direction;
    for item in &items {
        if item.state != ItemState::Protected {
            return Err(StepError::Failed(format!(
                "{}: only a protected item replicates",
                super::item_state_words(item)
            )));
        }
        let group = store.group(&item.group).map_err(store_error)?;
        if group.direction != direction {
            return Err(StepError::Failed(format!(
                "items `{}` and `{}` replicate in different directions: one cycle replicates one way",
                items[0].name, item.name
            )));
        }
        let source_kind = store.site(&item.source.site).map_err(store_error)?.kind;
        if source_kind != common::target_kind(common::reverse(direction)) {
            return Err(StepError::Failed(format!(
                "item `{}` replicates {} but runs on site {}, which is not on the source side",
                item.name,
                direction_words(direction),
                item.source.site
            )));
        }
        if item
            .disks
            .iter()
            .any(|d| d.replica_path.is_none() || d.replica_disk_id.is_none())
            || item.replica.is_none()
        {
            return Err(StepError::Failed(format!(
                "item `{}` has no replica disks yet: reprotect it first",
                item.name
            )));
        }
    }
    Ok((items, direction))
}

impl Workflow for Replicate {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: ReplicateParams = params(value)?;
        let store = &self.0.store;
        let (items, direction) = members(store, &p)?;
        let disks: usize = items.iter().map(|i| i.disks.len()).sum();
        let mut steps = vec!["snapshot".to_string()];
        for n in 0..disks {
            if direction == Direction::ToCloud {
                steps.push(format!("sync-{n}"));
            } else {
                steps.push(format!("changes-{n}"));
                steps.push(format!("ship-{n}"));
            }
        }
        steps.push("record".to_string());
        let group = store.group(&items[0].group).map_err(store_error)?;
        let mut resources = Vec::new();
        resources.extend(
            group
                .settings
                .master_target
                .iter()
                .map(|mt| format!("mt:{mt}")),
        );
        resources.extend(
            group
                .settings
                .process_server
                .iter()
                .map(|ps| format!("ps:{ps}")),
        );
        let what = match (&p.item, &p.group) {
            (Some(item), _) => item.clone(),
            (_, group) => format!("group {}", group.as_deref().unwrap_or_default()),
        };
        Ok(PreparedJob {
            steps,
            resources,
            summary: format!("replication cycle of {what}"),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: ReplicateParams = params(ctx.params())?;
        if ctx.step_name().starts_with("sync-") || self.to_cloud_job(ctx, &p)? {
            return self.run_to_cloud_step(ctx, &p);
        }
        match ctx.step_name() {
            "snapshot" => to_output(&self.snapshot(ctx, &p)?),
            "record" => self.record(ctx),
            name => {
                let slot = |prefix: &str| {
                    name.strip_prefix(prefix)
                        .and_then(|n| n.parse::<usize>().ok())
                };
                if let Some(n) = slot("changes-") {
                    to_output(&self.changes(ctx, n)?)
                } else if let Some(n) = slot("ship-") {
                    to_output(&self.ship(ctx, n)?)
                } else {
                    Err(StepError::Failed(format!("replicate has no step `{name}`")))
                }
            }
        }
    }
}

impl Replicate {
    fn cloud(&self, item: &Item) -> Result<crate::plugin::PluginInstance, StepError> {
        self.adapter_of(&item.source.site)
    }

    /// The adapter of site `site`.
    pub(super) fn adapter_of(
        &self,
        site: &str,
    ) -> Result<crate::plugin::PluginInstance, StepError> {
        let site = self.0.store.site(site).map_err(store_error)?;
        self.0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)
    }

    /// Whether this job replicates to the cloud: its `snapshot` output says
    /// so once taken; before, the group does.
    fn to_cloud_job(&self, ctx: &StepContext, p: &ReplicateParams) -> Result<bool, StepError> {
        if let Some(out) = ctx.output_of("snapshot") {
            return Ok(out.get("vms").is_some());
        }
        Ok(members(&self.0.store, p)?.1 == Direction::ToCloud)
    }

    fn snapshot(&self, ctx: &StepContext, p: &ReplicateParams) -> Result<Snapped, StepError> {
        let (items, _) = members(&self.0.store, p)?;
        if ctx.attempt() > 1 {
            self.drop_abandoned_snapshots(ctx, |item| item.source.site.clone());
        }
        let taken_at = crate::store::now_ms();
        let mut disks: Vec<SnapDisk> = Vec::new();
        let mut result = Ok(());
        for item in &items {
            if let Err(e) = ctx.check_cancelled() {
                result = Err(e);
                break;
            }
            let point = match self
                .cloud(item)
                .and_then(|mut cloud| take_vm_point(&mut cloud, item, p.app_consistent, ctx))
            {
                Ok(point) => point,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Some(note) = &point.note {
                ctx.log(&format!("{}: crash-consistent point: {note}", item.name));
            }
            for (disk, snapshot_id) in item.disks.iter().zip(point.snapshot_ids) {
                disks.push(SnapDisk {
                    item: item.name.clone(),
                    index: disk.index,
                    disk_id: disk.source_disk_id.clone(),
                    snapshot_id,
                    replica: disk.replica_path.clone().unwrap_or_default(),
                    quiesced: point.quiesced,
                });
            }
        }
        if let Err(e) = result {
            // All or nothing: snapshots of a cycle that will not ship are
            // nobody's base.
            for disk in &disks {
                if let Some(item) = items.iter().find(|i| i.name == disk.item) {
                    self.delete_snapshot_quietly(
                        ctx,
                        &item.source.site,
                        &disk.disk_id,
                        &disk.snapshot_id,
                    );
                }
            }
            return Err(e);
        }
        let quiesced = disks.iter().filter(|d| d.quiesced).count();
        ctx.log(&format!(
            "{} snapshot(s) of {} VM(s) taken (consistency id {}), {quiesced} app-consistent",
            disks.len(),
            items.len(),
            cycle_tag(ctx)
        ));
        Ok(Snapped {
            consistency_id: cycle_tag(ctx),
            taken_at,
            disks,
        })
    }

    /// Deletes the snapshots an earlier attempt of this step logged: it was
    /// interrupted (the host killed) before its output was saved, so nothing
    /// else knows them, unless a recorded point refers to one (the attempt
    /// got that far), which is kept. `site_of` says on which site an item's
    /// logged snapshots are.
    pub(super) fn drop_abandoned_snapshots(
        &self,
        ctx: &StepContext,
        site_of: impl Fn(&Item) -> String,
    ) {
        let events = match self.0.store.events(ctx.job_id(), 0) {
            Ok(events) => events,
            Err(e) => {
                ctx.log(&format!(
                    "cannot read the earlier attempts' log to delete their snapshots ({e}); \
                     look for snapshots of this cycle's disks and delete them by hand"
                ));
                return;
            }
        };
        for event in events.iter().filter(|e| e.step == Some(ctx.step_index())) {
            let Some((item, disk_id, snapshot_id)) = parse_taken(&event.message) else {
                continue;
            };
            let item = self.0.store.item(item).and_then(|item| {
                let points = self.0.store.points(item.id)?;
                Ok((item, points))
            });
            match item {
                Ok((_, points))
                    if points
                        .iter()
                        .any(|p| p.disks.iter().any(|d| d.snapshot_id == snapshot_id)) => {}
                Ok((item, _)) => {
                    self.delete_snapshot_quietly(ctx, &site_of(&item), disk_id, snapshot_id)
                }
                Err(e) => ctx.log(&format!(
                    "cannot delete snapshot {snapshot_id} of disk {disk_id} ({e}); delete it by hand"
                )),
            }
        }
    }

    /// Deletes a snapshot of a disk of cloud site `site`; one already gone
    /// is fine, any other failure is logged for the operator.
    pub(super) fn delete_snapshot_quietly(
        &self,
        ctx: &StepContext,
        site: &str,
        disk_id: &str,
        snapshot: &str,
    ) {
        let deleted = match self.adapter_of(site) {
            Ok(mut cloud) => match cloud.cloud_delete_snapshot(disk_id, snapshot) {
                Ok(())
                | Err(PluginError::Failed {
                    failure: Failure::NotFound(_),
                    ..
                }) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        ctx.log(&format!(
            "cannot delete snapshot {snapshot} of disk {disk_id} ({deleted}); delete it by hand"
        ));
    }

    fn slot(&self, ctx: &StepContext, n: usize) -> Result<(Snapped, SnapDisk, Item), StepError> {
        let snapped: Snapped = output(ctx, "snapshot")?;
        let disk = snapped
            .disks
            .get(n)
            .cloned()
            .ok_or_else(|| StepError::Failed(format!("the cycle has no disk {n}")))?;
        let item = self.0.store.item(&disk.item).map_err(store_error)?;
        Ok((snapped, disk, item))
    }

    fn options(&self, item: &Item) -> Result<JournalOptions, StepError> {
        let group = self.0.store.group(&item.group).map_err(store_error)?;
        Ok(journal_options(&group.settings))
    }

    /// The snapshot's frozen content as the data path reads it.
    fn snapshot_endpoint(&self, item: &Item, disk: &SnapDisk) -> Result<DiskEndpoint, StepError> {
        let mut cloud = self.cloud(item)?;
        let endpoint = cloud
            .cloud_disk_endpoint(
                &format!("{}@{}", disk.disk_id, disk.snapshot_id),
                Access::Read,
            )
            .map_err(plugin_error)?;
        super::disks::endpoint(&endpoint, &[])
    }

    fn changes(&self, ctx: &StepContext, n: usize) -> Result<Changes, StepError> {
        let (_, disk, item) = self.slot(ctx, n)?;
        let store = &self.0.store;
        let replica = PathBuf::from(&disk.replica);
        let latest = open_journal(&replica, self.options(&item)?)?
            .latest()
            .cloned();
        let direction = store.group(&item.group).map_err(store_error)?.direction;
        let previous = store
            .points(item.id)
            .map_err(store_error)?
            .into_iter()
            .find(|pt| pt.direction == direction);
        let previous_disk = previous
            .as_ref()
            .and_then(|pt| pt.disks.iter().find(|d| d.index == disk.index).cloned());
        let previous_snapshot = previous_disk
            .as_ref()
            .map(|d| d.snapshot_id.clone())
            .filter(|s| !s.is_empty() && *s != disk.snapshot_id);

        // Change tracking is trusted only when the previous snapshot is the
        // one the journal's latest point was made from.
        let untrusted = match (&latest, &previous_disk, &previous_snapshot) {
            (None, _, _) => Some("the replica's journal has no point yet".to_string()),
            (_, _, None) => {
                Some("no previous snapshot (the first cycle after the initial sync)".to_string())
            }
            (Some(latest), Some(prev), Some(_)) => {
                if prev.journal_seq != Some(latest.seq)
                    || prev.digest.as_deref() != Some(latest.digest.as_str())
                {
                    Some(format!(
                        "a gap in the chain: the journal's latest point is seq {}, the last recorded \
                         point is {} (a cycle or restart did not finish cleanly)",
                        latest.seq,
                        prev.journal_seq
                            .map_or("not in the journal".to_string(), |s| format!("seq {s}"))
                    ))
                } else {
                    None
                }
            }
            (Some(_), None, Some(_)) => Some("no previous point of this disk".to_string()),
        };
        let tracked = match (untrusted, &previous_snapshot) {
            (None, Some(base)) => {
                let mut cloud = self.cloud(&item)?;
                match cloud.cloud_changed_ranges(&disk.disk_id, base, &disk.snapshot_id) {
                    Ok(set) => Ok(set),
                    Err(PluginError::Failed {
                        failure: Failure::NotFound(what),
                        ..
                    }) => Err(format!("change tracking lost: {what}")),
                    Err(
                        e @ PluginError::Failed {
                            failure: Failure::Unavailable { .. },
                            ..
                        },
                    ) => return Err(plugin_error(e)),
                    Err(e) => Err(format!("the adapter's changed ranges failed: {e}")),
                }
            }
            (reason, _) => Err(reason.unwrap_or_default()),
        };
        let (ranges, method, resync) = match tracked {
            Ok(set) => {
                let ranges: Vec<(u64, u64)> = set
                    .ranges
                    .iter()
                    .filter(|r| r.length > 0)
                    .map(|r| (r.offset, r.offset.saturating_add(r.length)))
                    .collect();
                check_ranges(&ranges).map_err(|e| {
                    StepError::Failed(format!(
                        "the adapter's changed ranges of disk {}: {e}",
                        disk.disk_id
                    ))
                })?;
                (ranges, set.method, None)
            }
            Err(reason) => {
                let source = self.snapshot_endpoint(&item, &disk)?;
                ctx.log(&format!(
                    "{} disk {}: digest resync: {reason}",
                    item.name, disk.index
                ));
                let ranges = ctx
                    .runtime()
                    .block_on(differing_ranges(&source, &replica, DEFAULT_BLOCK_SIZE))
                    .map_err(|e| {
                        sync_error(&format!("comparing {} with its replica", disk.disk_id), e)
                    })?;
                let ranges = ranges.into_iter().map(|r| (r.start, r.end)).collect();
                (ranges, DIGEST_RESYNC.to_string(), Some(reason))
            }
        };
        let bytes = ranges.iter().map(|(a, b)| b - a).sum();
        ctx.log(&format!(
            "{} disk {}: {bytes} changed byte(s) in {} range(s) ({method})",
            item.name,
            disk.index,
            ranges.len()
        ));
        Ok(Changes {
            ranges,
            method,
            resync,
            previous_snapshot,
            bytes,
        })
    }

    fn ship(&self, ctx: &StepContext, n: usize) -> Result<Shipped, StepError> {
        let (snapped, disk, item) = self.slot(ctx, n)?;
        let changes: Changes = output(ctx, &format!("changes-{n}"))?;
        let replica = PathBuf::from(&disk.replica);
        let options = self.options(&item)?;
        let label = format!("cycle job {} snapshot {}", ctx.job_id(), disk.snapshot_id);
        // A rerun after the point was committed finds it.
        if let Some(latest) = open_journal(&replica, options.clone())?.latest().cloned()
            && latest.consistency_id.as_deref() == Some(snapped.consistency_id.as_str())
            && latest.label == label
        {
            return Ok(Shipped {
                seq: latest.seq,
                digest: latest.digest,
                bytes_changed: 0,
                bytes_sent: 0,
                seconds: 0.0,
                pruned: Vec::new(),
                alarms: Vec::new(),
            });
        }
        let source = self.snapshot_endpoint(&item, &disk)?;
        let shipment = ExtentShipment {
            source,
            ranges: changes
                .ranges
                .iter()
                .map(|(a, b)| *a..*b)
                .collect::<Vec<Range<u64>>>(),
            replica: replica.clone(),
            journal_dir: journal_dir(&replica),
            point: NewPointMeta {
                taken_at: snapped.taken_at,
                app_consistent: disk.quiesced,
                consistency_id: Some(snapped.consistency_id.clone()),
                label,
            },
            block_size: DEFAULT_BLOCK_SIZE,
        };
        let (progress, mut updates) =
            tokio::sync::watch::channel(crate::sync::proto::Progress::default());
        let what = format!("{} disk {}", item.name, disk.index);
        ctx.check_cancelled()?;
        let outcome = ctx.runtime().block_on(async {
            let forward = async {
                while updates.changed().await.is_ok() {
                    let p: crate::sync::proto::Progress = *updates.borrow_and_update();
                    ctx.progress(p.bytes_scanned, p.bytes_total, &what);
                }
            };
            let (result, ()) = tokio::join!(ship_local(shipment, options, progress), forward);
            result
        });
        let outcome = outcome.map_err(|e| sync_error(&format!("shipping {what}"), e))?;
        // The data path reports every 250 ms: a watcher also sees the end.
        ctx.progress(outcome.bytes_changed, outcome.bytes_changed, &what);
        let alarms: Vec<String> = outcome.alarms.iter().map(ToString::to_string).collect();
        for alarm in &alarms {
            ctx.log(&format!("ALARM {what}: {alarm}"));
        }
        ctx.log(&format!(
            "{what}: point seq {} committed, {} of {} changed bytes sent in {:.2} s",
            outcome.point.seq, outcome.bytes_sent, outcome.bytes_changed, outcome.seconds
        ));
        Ok(Shipped {
            seq: outcome.point.seq,
            digest: outcome.point.digest.clone(),
            bytes_changed: outcome.bytes_changed,
            bytes_sent: outcome.bytes_sent,
            seconds: outcome.seconds,
            pruned: outcome.pruned.iter().map(|p| p.seq).collect(),
            alarms,
        })
    }

    fn record(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let snapped: Snapped = output(ctx, "snapshot")?;
        let store = &self.0.store;
        let mut names: Vec<String> = snapped.disks.iter().map(|d| d.item.clone()).collect();
        names.dedup();
        let mut recorded = Vec::new();
        let mut deleted = Vec::new();
        let mut bytes_sent = 0;
        for name in &names {
            let mut item = store.item(name).map_err(store_error)?;
            let direction = store.group(&item.group).map_err(store_error)?.direction;
            let mut point_disks = Vec::new();
            let mut pruned: Vec<(u32, u64)> = Vec::new();
            let mut alarms = Vec::new();
            let mut resyncs = Vec::new();
            let mut methods = Vec::new();
            let mut previous = Vec::new();
            let mut app_consistent = true;
            for (n, disk) in snapped
                .disks
                .iter()
                .enumerate()
                .filter(|(_, d)| &d.item == name)
            {
                let changes: Changes = output(ctx, &format!("changes-{n}"))?;
                let shipped: Shipped = output(ctx, &format!("ship-{n}"))?;
                bytes_sent += shipped.bytes_sent;
                app_consistent &= disk.quiesced;
                point_disks.push(PointDisk {
                    index: disk.index,
                    snapshot_id: disk.snapshot_id.clone(),
                    digest: Some(shipped.digest.clone()),
                    journal_seq: Some(shipped.seq),
                    change_method: Some(changes.method.clone()),
                });
                pruned.extend(shipped.pruned.iter().map(|s| (disk.index, *s)));
                alarms.extend(
                    shipped
                        .alarms
                        .iter()
                        .map(|a| format!("disk {}: {a}", disk.index)),
                );
                if let Some(why) = &changes.resync {
                    resyncs.push(format!("disk {}: {why}", disk.index));
                }
                methods.push(changes.method.clone());
                if let Some(prev) = &changes.previous_snapshot {
                    previous.push((disk.disk_id.clone(), prev.clone()));
                }
            }
            // The point of this cycle, once: a rerun finds it.
            let point = match cycle_point(store, &item, &snapped.consistency_id)? {
                Some(point) => point,
                None => store
                    .add_point(&NewPoint {
                        item_id: item.id,
                        taken_at: snapped.taken_at,
                        kind: if app_consistent {
                            PointKind::AppConsistent
                        } else {
                            PointKind::CrashConsistent
                        },
                        direction,
                        consistency_id: Some(snapped.consistency_id.clone()),
                        disks: point_disks,
                    })
                    .map_err(store_error)?,
            };
            // The store follows the journal: a point any of whose disks the
            // journal dropped cannot be brought up any more.
            for old in store.points(item.id).map_err(store_error)? {
                if old.id == point.id {
                    continue;
                }
                let gone = old.disks.iter().any(|d| {
                    d.journal_seq
                        .is_some_and(|seq| pruned.contains(&(d.index, seq)))
                });
                if gone {
                    store.delete_point(old.id).map_err(store_error)?;
                    deleted.push(old.id);
                }
            }
            for alarm in &alarms {
                ctx.log(&format!("ALARM {}: {alarm}", item.name));
            }
            // The previous snapshots are no longer anyone's base.
            for (disk_id, snapshot) in &previous {
                self.delete_snapshot_quietly(ctx, &item.source.site, disk_id, snapshot);
            }
            methods.dedup();
            let mut detail = format!(
                "replicating {}, point {} ({})",
                direction_words(direction),
                point.id,
                methods.join(", ")
            );
            if !resyncs.is_empty() {
                detail.push_str(&format!("; digest resync: {}", resyncs.join("; ")));
            }
            if !alarms.is_empty() {
                detail.push_str(&format!("; ALARM: {}", alarms.join("; ")));
            }
            item.state_detail = detail;
            store.update_item(&item).map_err(store_error)?;
            recorded.push(serde_json::json!({ "item": item.name, "point": point.id }));
        }
        Ok(serde_json::json!({
            "consistency_id": snapped.consistency_id,
            "points": recorded,
            "deleted": deleted,
            "bytes_sent": bytes_sent,
        }))
    }
}

/// The consistency id of a cycle's points (one for every VM of the job).
pub(super) fn cycle_tag(ctx: &StepContext) -> String {
    format!("cycle-{}", ctx.job_id())
}

/// The point an earlier attempt of the `record` step of cycle `tag`
/// recorded for `item`, if any.
pub(super) fn cycle_point(
    store: &Store,
    item: &Item,
    tag: &str,
) -> Result<Option<crate::store::RecoveryPoint>, StepError> {
    Ok(store
        .points(item.id)
        .map_err(store_error)?
        .into_iter()
        .find(|pt| pt.consistency_id.as_deref() == Some(tag)))
}

/// One VM's snapshots: a restore point when the adapter has them (one
/// instant for all the VM's disks, quiesced when asked and possible), else
/// (an adapter built for API 0.1.0) one crash-consistent snapshot per disk.
/// Each snapshot is logged ([`taken_line`]) as soon as it exists.
fn take_vm_point(
    cloud: &mut crate::plugin::PluginInstance,
    item: &Item,
    quiesce: bool,
    ctx: &StepContext,
) -> Result<VmPoint, StepError> {
    let disk_ids: Vec<String> = item
        .disks
        .iter()
        .map(|d| d.source_disk_id.clone())
        .collect();
    let restore_point = cloud
        .cloud_create_restore_point(&item.source.vm_id, &disk_ids, quiesce)
        .map_err(plugin_error)?;
    let Some(point) = restore_point else {
        let mut snapshot_ids = Vec::new();
        for disk_id in &disk_ids {
            match cloud.cloud_create_snapshot(disk_id) {
                Ok(snapshot) => {
                    ctx.log(&taken_line(&item.name, disk_id, &snapshot.id));
                    snapshot_ids.push(snapshot.id);
                }
                Err(e) => {
                    delete_taken(cloud, ctx, disk_ids.iter().zip(&snapshot_ids));
                    return Err(plugin_error(e));
                }
            }
        }
        return Ok(VmPoint {
            snapshot_ids,
            quiesced: false,
            note: quiesce.then(|| {
                format!(
                    "adapter `{}` is built for plugin API 0.1.0, which has no restore points, \
                     so it cannot quiesce the guest; upgrade the adapter",
                    cloud.plugin_id()
                )
            }),
        });
    };
    for (disk_id, snapshot) in disk_ids.iter().zip(&point.snapshots) {
        ctx.log(&taken_line(&item.name, disk_id, &snapshot.id));
    }
    if point.snapshots.len() != disk_ids.len() {
        let taken: Vec<String> = point.snapshots.iter().map(|s| s.id.clone()).collect();
        delete_taken(cloud, ctx, disk_ids.iter().zip(&taken));
        return Err(StepError::Failed(format!(
            "adapter `{}` answered a restore point of {} with {} snapshot(s) for {} disk(s); \
             the adapter is faulty: report it to its vendor",
            cloud.plugin_id(),
            item.name,
            point.snapshots.len(),
            disk_ids.len()
        )));
    }
    let note = match (quiesce, point.quiesced) {
        (true, false) => Some(point.note.unwrap_or_else(|| {
            "the adapter could not quiesce the guest and gave no reason".to_string()
        })),
        _ => None,
    };
    Ok(VmPoint {
        snapshot_ids: point.snapshots.into_iter().map(|s| s.id).collect(),
        quiesced: point.quiesced,
        note,
    })
}

/// Deletes the snapshots a failed [`take_vm_point`] took (best effort: what
/// cannot be deleted is logged for the operator).
fn delete_taken<'a>(
    cloud: &mut crate::plugin::PluginInstance,
    ctx: &StepContext,
    taken: impl Iterator<Item = (&'a String, &'a String)>,
) {
    for (disk_id, snapshot) in taken {
        if let Err(e) = cloud.cloud_delete_snapshot(disk_id, snapshot) {
            ctx.log(&format!(
                "cannot delete snapshot {snapshot} of disk {disk_id} ({e}); delete it by hand"
            ));
        }
    }
}

/// The job-log line that records a snapshot as soon as it exists, so a rerun
/// of an interrupted `snapshot` step can delete it ([`parse_taken`]).
pub(super) fn taken_line(item: &str, disk_id: &str, snapshot_id: &str) -> String {
    format!("{item}: snapshot {snapshot_id} of disk {disk_id} taken")
}

/// `(item, disk id, snapshot id)` of a [`taken_line`].
fn parse_taken(line: &str) -> Option<(&str, &str, &str)> {
    let (item, rest) = line.split_once(": snapshot ")?;
    let (snapshot_id, rest) = rest.split_once(" of disk ")?;
    let disk_id = rest.strip_suffix(" taken")?;
    (!item.is_empty() && !snapshot_id.is_empty() && !disk_id.is_empty()).then_some((
        item,
        disk_id,
        snapshot_id,
    ))
}

/// Sorted, disjoint, non-empty.
fn check_ranges(ranges: &[(u64, u64)]) -> Result<(), String> {
    let mut end = 0;
    for (i, (a, b)) in ranges.iter().enumerate() {
        if a >= b || (i > 0 && *a < end) {
            return Err(format!(
                "range {i} ({a}..{b}) is empty, unsorted or overlaps"
            ));
        }
        end = *b;
    }
    Ok(())
}

fn sync_error(doing: &str, e: crate::sync::SyncError) -> StepError {
    let message = format!("{doing}: {e}");
    if e.is_transient() {
        StepError::Transient(message)
    } else {
        StepError::Failed(message)
    }
}

/// For the failover: the journal point of a store point's disk, checked by
/// seq and digest.
pub(crate) fn journal_point(
    journal: &Journal,
    seq: u64,
    digest: &str,
) -> Option<journal::PointMeta> {
    journal
        .points()
        .iter()
        .find(|m| m.seq == seq && m.digest == digest)
        .cloned()
}

/// The journal base of a replica the initial sync (a reprotect to
/// on-premises) just made equal to `digest`: its journal's latest point when
/// that already holds `digest` (a rerun), else a fresh journal with one
/// empty point. The replica was rewritten outside any journal, so older
/// undo sets no longer apply to it and are deleted. Returns the point's seq.
pub(crate) fn journal_base(
    replica: &Path,
    digest: &str,
    options: JournalOptions,
    meta: NewPointMeta,
) -> Result<u64, StepError> {
    let dir = journal_dir(replica);
    let device = DiskEndpoint::Path(replica.to_path_buf())
        .open(true, None)
        .map_err(|e| {
            StepError::Failed(format!("opening the replica {}: {e}", replica.display()))
        })?;
    let device: Arc<dyn crate::disk::BlockDevice> = Arc::from(device);
    let mut journal = match Journal::open(&dir, device.clone(), options.clone()) {
        Ok((journal, _)) => journal,
        // The replica was just synced whole: a journal that does not fit it
        // any more (damaged, of another disk size) has nothing left to give.
        // One in use is another job's: never removed.
        Err(
            e @ (journal::JournalError::Damaged { .. }
            | journal::JournalError::CapacityMismatch { .. }),
        ) => {
            tracing::warn!("starting the journal of {} afresh: {e}", replica.display());
            std::fs::remove_dir_all(&dir).map_err(|e| {
                StepError::Failed(format!(
                    "removing the unusable journal {}: {e}",
                    dir.display()
                ))
            })?;
            open_journal(replica, options.clone())?
        }
        Err(e) => {
            return Err(StepError::Failed(format!(
                "opening the journal of {}: {e}",
                replica.display()
            )));
        }
    };
    if let Some(latest) = journal.latest()
        && latest.digest == digest
    {
        return Ok(latest.seq);
    }
    if !journal.points().is_empty() {
        drop(journal);
        std::fs::remove_dir_all(&dir).map_err(|e| {
            StepError::Failed(format!("removing the stale journal {}: {e}", dir.display()))
        })?;
        journal = open_journal(replica, options)?;
    }
    let writer = journal.begin().map_err(|e| {
        StepError::Failed(format!(
            "starting the base point of {}: {e}",
            replica.display()
        ))
    })?;
    let committed = writer.commit(meta).map_err(|e| {
        StepError::Failed(format!(
            "committing the base point of {}: {e}",
            replica.display()
        ))
    })?;
    if committed.meta.digest != digest {
        return Err(StepError::Failed(format!(
            "the replica {} changed after its sync (digest {} ≠ {}); reprotect again",
            replica.display(),
            committed.meta.digest,
            digest
        )));
    }
    Ok(committed.meta.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::JournalSettings;

    #[test]
    fn the_journal_keeps_points_for_the_groups_retention() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(
            journal_options(&GroupSettings::default()).retention.max_age,
            day
        );
        let group = GroupSettings {
            retention_hours: Some(72),
            ..GroupSettings::default()
        };
        assert_eq!(journal_options(&group).retention.max_age, 3 * day);
        // The journal's own setting wins.
        let group = GroupSettings {
            journal: JournalSettings {
                max_age_secs: Some(3600),
                ..JournalSettings::default()
            },
            ..group
        };
        let options = journal_options(&group);
        assert_eq!(options.retention.max_age, Duration::from_secs(3600));
        assert_eq!(options.max_bytes, u64::MAX);
    }

    #[test]
    fn a_taken_line_reads_back() {
        let line = taken_line("web01", "/subscriptions/s/disks/web01-os", "snap-7");
        assert_eq!(
            parse_taken(&line),
            Some(("web01", "/subscriptions/s/disks/web01-os", "snap-7"))
        );
        assert_eq!(parse_taken("web01: 3 snapshot(s) taken"), None);
        assert_eq!(parse_taken(": snapshot a of disk b taken"), None);
        assert_eq!(parse_taken("x: snapshot a of disk b"), None);
    }
}
