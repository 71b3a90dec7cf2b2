//! Replicate to the cloud: one cycle of continuous replication of
//! on-premises VMs into their cloud replica disks, for the protection that
//! follows a failback's commit (S3). Same job kind as the other direction
//! (`replicate`), other steps:
//!
//! - `snapshot`: a VM snapshot of every VM of the job (quiesced when the
//!   cycle asks and the guest's tools can; else crash-consistent, saying
//!   why), named after the job so a rerun finds and replaces it. One
//!   consistency id for all of them.
//! - `sync-N` (per disk): the disk as the snapshot froze it
//!   (`hypervisor-snapshots.snapshot-disk`, API 0.1.2) synced into the
//!   replica page blob through the data path. Hypervisor adapters report no
//!   changed blocks yet, so the sync compares digests of both sides
//!   ([`DIGEST_COMPARE`]) and sends only the blocks that differ.
//! - `record`: the VM snapshots deleted (consolidated: a VM must not keep
//!   them, S13), a blob snapshot of each replica disk taken as the recovery
//!   point, the store's point recorded, and retention applied: the points it
//!   drops lose their blob snapshots; points without one (the reprotect's
//!   sync) are dropped once a cycle has overwritten the replica.
//!
//! Failing over to an older point copies its blob snapshots back over the
//! replica disks (`failover.rs`).

use super::common::{self, output, plugin_error, store_error, to_output};
use super::disks::{self, Moved};
use super::replicate::{
    Replicate, ReplicateParams, cycle_point, cycle_tag, journal_options, members,
};
use crate::jobs::{StepContext, StepError};
use crate::journal::PointMeta;
use crate::plugin::adapter::Access;
use crate::plugin::{Failure, PluginError};
use crate::store::{Direction, Item, NewPoint, PointDisk, PointKind, RecoveryPoint};
use crate::sync::Mode;
use serde::{Deserialize, Serialize};

/// The change method recorded for a cycle to the cloud: both sides'
/// digests compared (no changed-block tracking from hypervisor adapters yet).
pub const DIGEST_COMPARE: &str = "digest-compare";

/// What `snapshot` took.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnappedVms {
    consistency_id: String,
    taken_at: u64,
    vms: Vec<SnappedVm>,
    /// `(item, disk index)` per `sync-N` step.
    disks: Vec<(String, u32)>,
}

/// One VM's snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnappedVm {
    item: String,
    vm_id: String,
    snapshot_id: String,
    quiesced: bool,
}

impl Replicate {
    pub(super) fn run_to_cloud_step(
        &self,
        ctx: &StepContext,
        p: &ReplicateParams,
    ) -> Result<serde_json::Value, StepError> {
        match ctx.step_name() {
            "snapshot" => to_output(&self.snapshot_vms(ctx, p)?),
            "record" => self.record_to_cloud(ctx),
            name => match name.strip_prefix("sync-").and_then(|n| n.parse().ok()) {
                Some(n) => to_output(&self.sync_to_cloud(ctx, n)?),
                None => Err(StepError::Failed(format!("replicate has no step `{name}`"))),
            },
        }
    }

    fn snapshot_vms(
        &self,
        ctx: &StepContext,
        p: &ReplicateParams,
    ) -> Result<SnappedVms, StepError> {
        let (items, _) = members(&self.0.store, p)?;
        let name = format!("homeward-{}", cycle_tag(ctx));
        let mut vms: Vec<SnappedVm> = Vec::new();
        let mut result = Ok(());
        for item in &items {
            let taken = ctx
                .check_cancelled()
                .and_then(|()| self.snapshot_vm(ctx, item, &name, p.app_consistent));
            match taken {
                Ok(vm) => vms.push(vm),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Err(e) = result {
            // All or nothing, and no VM keeps a snapshot of a cycle that will
            // not ship.
            for (vm, item) in vms.iter().zip(&items) {
                self.delete_vm_snapshot(ctx, item, &vm.vm_id, &vm.snapshot_id);
            }
            return Err(e);
        }
        let quiesced = vms.iter().filter(|v| v.quiesced).count();
        ctx.log(&format!(
            "{} VM snapshot(s) taken (consistency id {}), {quiesced} app-consistent",
            vms.len(),
            cycle_tag(ctx)
        ));
        Ok(SnappedVms {
            consistency_id: cycle_tag(ctx),
            taken_at: crate::store::now_ms(),
            disks: items
                .iter()
                .flat_map(|i| i.disks.iter().map(|d| (i.name.clone(), d.index)))
                .collect(),
            vms,
        })
    }

    /// Snapshots one VM: the adapter must say where a snapshot's disks are
    /// (API 0.1.2); a snapshot of this job an earlier attempt left is
    /// deleted first; a quiesce the guest cannot do falls back to a
    /// crash-consistent snapshot, logged.
    fn snapshot_vm(
        &self,
        ctx: &StepContext,
        item: &Item,
        name: &str,
        quiesce: bool,
    ) -> Result<SnappedVm, StepError> {
        let mut hypervisor = self.adapter_of(&item.source.site)?;
        if !hypervisor
            .hypervisor_has_snapshot_disks()
            .map_err(plugin_error)?
        {
            return Err(StepError::Failed(format!(
                "adapter `{}` is built for a plugin API before 0.1.2 and cannot say where a \
                 snapshot's disks are, so `{}` cannot replicate continuously to the cloud: \
                 upgrade the adapter, or protect the VM with reprotect jobs",
                hypervisor.plugin_id(),
                item.name
            )));
        }
        let vm = hypervisor
            .hypervisor_get_vm(&item.source.vm_id)
            .map_err(plugin_error)?;
        for left in vm.snapshots.iter().filter(|s| s.name == name) {
            hypervisor
                .hypervisor_delete_snapshot(&vm.id, &left.id)
                .map_err(plugin_error)?;
            ctx.log(&format!(
                "{}: snapshot {} an earlier attempt took deleted",
                item.name, left.id
            ));
        }
        let taken = match hypervisor.hypervisor_create_snapshot(&vm.id, name, quiesce) {
            Err(PluginError::Failed {
                failure: Failure::Conflict(why),
                ..
            }) if quiesce => {
                ctx.log(&format!("{}: crash-consistent point: {why}", item.name));
                hypervisor.hypervisor_create_snapshot(&vm.id, name, false)
            }
            other => other,
        }
        .map_err(plugin_error)?;
        Ok(SnappedVm {
            item: item.name.clone(),
            vm_id: vm.id,
            snapshot_id: taken.id,
            quiesced: taken.quiesced,
        })
    }

    /// Deletes (consolidates) a VM snapshot; a failure is logged loudly,
    /// since a VM left with a snapshot cannot be reprotected (S13).
    fn delete_vm_snapshot(&self, ctx: &StepContext, item: &Item, vm_id: &str, snapshot: &str) {
        let deleted = self.adapter_of(&item.source.site).and_then(|mut h| {
            match h.hypervisor_delete_snapshot(vm_id, snapshot) {
                Ok(())
                | Err(PluginError::Failed {
                    failure: Failure::NotFound(_),
                    ..
                }) => Ok(()),
                Err(e) => Err(plugin_error(e)),
            }
        });
        if let Err(e) = deleted {
            ctx.log(&format!(
                "ALARM {}: cannot delete VM snapshot {snapshot} ({e}); delete it by hand: a VM \
                 with snapshots cannot be reprotected",
                item.name
            ));
        }
    }

    fn sync_to_cloud(&self, ctx: &StepContext, n: usize) -> Result<Moved, StepError> {
        let snapped: SnappedVms = output(ctx, "snapshot")?;
        let (name, index) = snapped
            .disks
            .get(n)
            .cloned()
            .ok_or_else(|| StepError::Failed(format!("the cycle has no disk {n}")))?;
        let store = &self.0.store;
        let item = store.item(&name).map_err(store_error)?;
        let vm =
            snapped.vms.iter().find(|v| v.item == name).ok_or_else(|| {
                StepError::Failed(format!("the cycle took no snapshot of `{name}`"))
            })?;
        let disk = item
            .disks
            .iter()
            .find(|d| d.index == index)
            .ok_or_else(|| StepError::Failed(format!("item `{name}` has no disk {index}")))?;
        let mut hypervisor = self.adapter_of(&item.source.site)?;
        let frozen = hypervisor
            .hypervisor_snapshot_disk(&vm.vm_id, &vm.snapshot_id, &disk.source_disk_id)
            .map_err(plugin_error)?
            .ok_or_else(|| {
                StepError::Failed(format!(
                    "adapter `{}` lost its snapshot disks between two steps",
                    hypervisor.plugin_id()
                ))
            })?;
        let source = disks::endpoint(&frozen, &common::site_mounts(store, &item.source.site)?)?;
        let target = replica_disk(self, &item, index, Access::ReadWrite)?;
        ctx.check_cancelled()?;
        let moved = disks::sync_disk(ctx, &source, &target, Mode::Delta)?;
        ctx.log(&format!(
            "{} disk {index}: {} of {} bytes sent ({DIGEST_COMPARE}) in {:.2} s",
            item.name, moved.bytes_sent, moved.bytes_total, moved.seconds
        ));
        Ok(moved)
    }

    fn record_to_cloud(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let snapped: SnappedVms = output(ctx, "snapshot")?;
        let store = &self.0.store;
        if ctx.attempt() > 1 {
            self.drop_abandoned_snapshots(ctx, |item| replica_site(item).unwrap_or_default());
        }
        let mut recorded = Vec::new();
        let mut bytes_sent = 0;
        for vm in &snapped.vms {
            let mut item = store.item(&vm.item).map_err(store_error)?;
            self.delete_vm_snapshot(ctx, &item, &vm.vm_id, &vm.snapshot_id);
            let site = replica_site(&item)?;
            // The point of this cycle, once: a rerun finds it.
            let point = match cycle_point(store, &item, &snapped.consistency_id)? {
                Some(point) => point,
                None => {
                    let mut point_disks = Vec::new();
                    for (n, (_, index)) in snapped
                        .disks
                        .iter()
                        .enumerate()
                        .filter(|(_, (name, _))| *name == vm.item)
                    {
                        let moved: Moved = output(ctx, &format!("sync-{n}"))?;
                        bytes_sent += moved.bytes_sent;
                        let disk_id = replica_disk_id(&item, *index)?;
                        let mut cloud = self.adapter_of(&site)?;
                        let snapshot = cloud
                            .cloud_create_snapshot(&disk_id)
                            .map_err(plugin_error)?;
                        ctx.log(&super::replicate::taken_line(
                            &item.name,
                            &disk_id,
                            &snapshot.id,
                        ));
                        point_disks.push(PointDisk {
                            index: *index,
                            snapshot_id: snapshot.id,
                            digest: Some(moved.digest),
                            journal_seq: None,
                            change_method: Some(DIGEST_COMPARE.to_string()),
                        });
                    }
                    store
                        .add_point(&NewPoint {
                            item_id: item.id,
                            taken_at: snapped.taken_at,
                            kind: if vm.quiesced {
                                PointKind::AppConsistent
                            } else {
                                PointKind::CrashConsistent
                            },
                            direction: Direction::ToCloud,
                            consistency_id: Some(snapped.consistency_id.clone()),
                            disks: point_disks,
                        })
                        .map_err(store_error)?
                }
            };
            let dropped = self.apply_cloud_retention(ctx, &item, &site, &point)?;
            item.state_detail = format!(
                "replicating to the cloud, point {} ({DIGEST_COMPARE}: no changed-block tracking \
                 from the hypervisor adapter)",
                point.id
            );
            store.update_item(&item).map_err(store_error)?;
            recorded.push(serde_json::json!({
                "item": item.name,
                "point": point.id,
                "dropped": dropped,
            }));
        }
        Ok(serde_json::json!({
            "consistency_id": snapped.consistency_id,
            "points": recorded,
            "bytes_sent": bytes_sent,
        }))
    }

    /// Retention of an item's points in the cloud, by the group's journal
    /// settings (the same policy as the master target's journal): dropped
    /// points lose their blob snapshots. A point without snapshots (the
    /// reprotect's sync) no longer exists once a newer point overwrote the
    /// replica, so it goes too. Returns the store points deleted.
    fn apply_cloud_retention(
        &self,
        ctx: &StepContext,
        item: &Item,
        site: &str,
        latest: &RecoveryPoint,
    ) -> Result<Vec<i64>, StepError> {
        let store = &self.0.store;
        let group = store.group(&item.group).map_err(store_error)?;
        let mut points: Vec<RecoveryPoint> = store
            .points(item.id)
            .map_err(store_error)?
            .into_iter()
            .filter(|pt| pt.direction == Direction::ToCloud)
            .collect();
        points.sort_by_key(|pt| (pt.taken_at, pt.id));
        let (kept, gone): (Vec<_>, Vec<_>) = points
            .into_iter()
            .partition(|pt| pt.id == latest.id || has_snapshots(pt));
        let metas: Vec<PointMeta> = kept
            .iter()
            .map(|pt| PointMeta {
                seq: u64::try_from(pt.id).unwrap_or_default(),
                taken_at: pt.taken_at,
                app_consistent: pt.kind == PointKind::AppConsistent,
                consistency_id: pt.consistency_id.clone(),
                digest: String::new(),
                label: String::new(),
            })
            .collect();
        let plan = journal_options(&group.settings)
            .retention
            .plan(&metas, crate::store::now_ms());
        let mut dropped = Vec::new();
        for point in gone
            .iter()
            .chain(plan.iter().filter_map(|(i, _)| kept.get(*i)))
        {
            for disk in point.disks.iter().filter(|d| !d.snapshot_id.is_empty()) {
                let disk_id = replica_disk_id(item, disk.index)?;
                self.delete_snapshot_quietly(ctx, site, &disk_id, &disk.snapshot_id);
            }
            store.delete_point(point.id).map_err(store_error)?;
            dropped.push(point.id);
        }
        if !dropped.is_empty() {
            ctx.log(&format!(
                "{}: retention dropped point(s) {dropped:?}",
                item.name
            ));
        }
        Ok(dropped)
    }
}

/// Whether every disk of a point has a blob snapshot to come back to.
pub(super) fn has_snapshots(point: &RecoveryPoint) -> bool {
    !point.disks.is_empty() && point.disks.iter().all(|d| !d.snapshot_id.is_empty())
}

/// The cloud site an item replicates to.
fn replica_site(item: &Item) -> Result<String, StepError> {
    item.replica
        .as_ref()
        .map(|r| r.site.clone())
        .ok_or_else(|| {
            StepError::Failed(format!(
                "item `{}` has no replica: reprotect it first",
                item.name
            ))
        })
}

/// The replica disk id of disk `index`.
pub(super) fn replica_disk_id(item: &Item, index: u32) -> Result<String, StepError> {
    item.disks
        .iter()
        .find(|d| d.index == index)
        .and_then(|d| d.replica_disk_id.clone())
        .ok_or_else(|| {
            StepError::Failed(format!(
                "disk {index} of item `{}` has no replica yet: reprotect it first",
                item.name
            ))
        })
}

/// Where replica disk `index` is (its page blob, with a fresh credential).
fn replica_disk(
    r: &Replicate,
    item: &Item,
    index: u32,
    access: Access,
) -> Result<crate::sync::DiskEndpoint, StepError> {
    let disk = item
        .disks
        .iter()
        .find(|d| d.index == index)
        .ok_or_else(|| StepError::Failed(format!("item `{}` has no disk {index}", item.name)))?;
    let (Some(id), Some(address)) = (&disk.replica_disk_id, &disk.replica_path) else {
        return Err(StepError::Failed(format!(
            "disk {index} of item `{}` has no replica yet: reprotect it first",
            item.name
        )));
    };
    common::recorded_endpoint(&r.0, &replica_site(item)?, id, address, access)
}
