//! Reprotect: replicate an item's VM from the side it runs on to the other.
//!
//! To on-premises (failback, S1, S4): the adapters' readiness checks
//! (S12–S15) run first and any error stops the job before data moves; if
//! the original VM still exists (and the item is not a physical server) its
//! disks take a delta, guarded against split brain; otherwise a new VM is
//! made on the master target's host and datastore. To the cloud (S3): the
//! item's cloud disks take a delta. Either way the last step records a
//! recovery point and the item joins the group of that direction.
//!
//! Steps: `check`, `split-brain`, `prepare-target`, `sync-disk-N`..., `record-point`.

use super::common::{
    self, component, output, params, plugin_error, site_mounts, store_error, to_output,
};
use super::disks::{self, Moved};
use super::split_brain;
use super::{ReprotectParams, Shared, direction_words};
use crate::jobs::{PreparedJob, StepContext, StepError, Workflow};
use crate::plugin::adapter::{Access, HypervisorVmSpec, ReadinessRequest, Severity};
use crate::store::{
    ComponentRole, Direction, Item, ItemState, NewPoint, PointDisk, PointKind, SiteKind, VmRef,
};
use crate::sync::Mode;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// The job kind.
pub const KIND: &str = "reprotect";

pub(crate) struct Reprotect(pub Arc<Shared>);

/// What `check` decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checked {
    /// The site the replica is on.
    target_site: String,
    /// `original` (delta into the VM that exists) or `alternate` (a new VM).
    location: String,
    /// The replica VM when it exists (original location; cloud VM if any).
    vm_id: Option<String>,
    /// Alternate location: where the new VM goes.
    host_id: Option<String>,
    datastore: Option<String>,
    /// The group the item joins.
    group: String,
    /// Readiness findings that did not stop the job (warnings).
    warnings: Vec<String>,
}

/// What `prepare-target` found or made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Target {
    vm_id: String,
    vm_name: String,
    /// Per disk: the replica disk's id and address (its host path, or its
    /// page blob's URL without query: never a credential).
    disks: Vec<(String, String)>,
    /// The replica VM's NIC MACs (a new VM has new ones).
    macs: Vec<String>,
    /// Whether the disks are new (their first sync is full).
    created: bool,
}

impl Workflow for Reprotect {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: ReprotectParams = params(value)?;
        let item = self
            .0
            .store
            .item(&p.item)
            .map_err(|e| StepError::Failed(e.to_string()))?;
        let source_kind = self
            .0
            .store
            .site(&item.source.site)
            .map_err(store_error)?
            .kind;
        if source_kind == common::target_kind(p.direction) {
            return Err(StepError::Failed(format!(
                "item `{}` runs on {} already; reprotect {} replicates it away from there, \
                 fail it over first or reprotect the other way",
                item.name,
                item.source.site,
                direction_words(p.direction)
            )));
        }
        let mut steps = vec!["check".to_string()];
        if p.direction == Direction::ToOnPremises {
            steps.push("split-brain".to_string());
        }
        steps.push("prepare-target".to_string());
        steps.extend((0..item.disks.len()).map(|i| format!("sync-disk-{i}")));
        steps.push("record-point".to_string());
        // The components the operator named, else the group's (S1).
        let settings = self
            .0
            .store
            .group(&item.group)
            .map(|g| g.settings)
            .unwrap_or_default();
        let mut resources = Vec::new();
        if let Some(mt) = p.master_target.as_ref().or(settings.master_target.as_ref()) {
            resources.push(format!("mt:{mt}"));
        }
        if let Some(ps) = p
            .process_server
            .as_ref()
            .or(settings.process_server.as_ref())
        {
            resources.push(format!("ps:{ps}"));
        }
        Ok(PreparedJob {
            steps,
            resources,
            summary: format!("reprotect {} {}", item.name, direction_words(p.direction)),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: ReprotectParams = params(ctx.params())?;
        let item = self.0.store.item(&p.item).map_err(store_error)?;
        match ctx.step_name() {
            "check" => to_output(&self.check(ctx, &p, &item)?),
            "split-brain" => self.split_brain(ctx, &p, &item),
            "prepare-target" => to_output(&self.prepare_target(ctx, &p, &item)?),
            "record-point" => self.record_point(ctx, &p, item),
            name => match name
                .strip_prefix("sync-disk-")
                .and_then(|i| i.parse::<usize>().ok())
            {
                Some(index) => to_output(&self.sync_disk(ctx, &p, &item, index)?),
                None => Err(StepError::Failed(format!("reprotect has no step `{name}`"))),
            },
        }
    }
}

impl Reprotect {
    /// The retention the operator chose for this reprotect (S1) becomes the
    /// failback group's: its journals keep points that long (unless the
    /// group's journal settings say otherwise).
    fn keep_retention(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        group: &str,
    ) -> Result<(), StepError> {
        let Some(hours) = p.retention_hours else {
            return Ok(());
        };
        if hours == 0 {
            return Err(StepError::Failed(
                "a retention of 0 hours keeps no recovery point: give at least 1 hour".to_string(),
            ));
        }
        let store = &self.0.store;
        let mut settings = store.group(group).map_err(store_error)?.settings;
        if settings.retention_hours != Some(hours) {
            settings.retention_hours = Some(hours);
            store
                .set_group_settings(group, &settings)
                .map_err(store_error)?;
            ctx.log(&format!(
                "group {group}: recovery points kept {hours} h (retention chosen for this reprotect)"
            ));
        }
        Ok(())
    }

    fn check(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        item: &Item,
    ) -> Result<Checked, StepError> {
        let store = &self.0.store;
        let env = &self.0.env;
        // The source VM must be there to be read.
        let source_site = store.site(&item.source.site).map_err(store_error)?;
        let mut source = env
            .adapter(&source_site)
            .map_err(common::orchestrator_error)?;
        match source_site.kind {
            SiteKind::Cloud => source.cloud_get_vm(&item.source.vm_id),
            SiteKind::OnPremises => source.hypervisor_get_vm(&item.source.vm_id),
        }
        .map_err(plugin_error)?;
        let group = self.target_group(p, item)?;

        match p.direction {
            Direction::ToOnPremises => {
                let group_settings = store.group(&group).map_err(store_error)?.settings;
                let named = p
                    .master_target
                    .clone()
                    .or(group_settings.master_target.clone());
                let (mt, site) = component(
                    store,
                    ComponentRole::MasterTarget,
                    named.as_deref(),
                    SiteKind::OnPremises,
                )?;
                let mut hypervisor = env.adapter(&site).map_err(common::orchestrator_error)?;
                // Original location when the VM is still there (S4).
                let original = match &item.replica {
                    Some(replica)
                        if !item.physical
                            && replica.site == site.name
                            && !replica.vm_id.is_empty() =>
                    {
                        match hypervisor.hypervisor_get_vm(&replica.vm_id) {
                            Ok(vm) => Some(vm.id),
                            Err(crate::plugin::PluginError::Failed {
                                failure: crate::plugin::Failure::NotFound(_),
                                ..
                            }) => None,
                            Err(e) => return Err(plugin_error(e)),
                        }
                    }
                    _ => None,
                };
                let datastore = p.datastore.clone().or(group_settings.datastore);
                // Operators name datastores; adapters want their ids.
                let datastore = match datastore {
                    Some(named) => {
                        let inventory = hypervisor.hypervisor_discover().map_err(plugin_error)?;
                        Some(common::datastore_id(&inventory, &named)?)
                    }
                    None => None,
                };
                if original.is_none() && datastore.is_none() {
                    return Err(StepError::Failed(format!(
                        "item `{}` goes to an alternate location (its on-premises VM is gone{}): \
                         name the datastore for the new VM",
                        item.name,
                        if item.physical {
                            " or it is a physical server"
                        } else {
                            ""
                        }
                    )));
                }
                let findings = hypervisor
                    .hypervisor_readiness(&ReadinessRequest {
                        operation: "reprotect".to_string(),
                        vm_id: original.clone(),
                        master_target_vm_id: mt.vm_id.clone(),
                        master_target_host_id: mt.host_id.clone(),
                        datastore_id: if original.is_none() {
                            datastore.clone()
                        } else {
                            None
                        },
                    })
                    .map_err(plugin_error)?;
                let mut errors = Vec::new();
                let mut warnings = Vec::new();
                for f in &findings {
                    let line = format!("{}: {} ({})", f.check, f.message, f.remedy);
                    if f.severity == Severity::Blocking {
                        errors.push(line);
                    } else {
                        warnings.push(line);
                    }
                }
                for w in &warnings {
                    ctx.log(&format!("readiness warning: {w}"));
                }
                if !errors.is_empty() {
                    return Err(StepError::Failed(format!(
                        "readiness checks stop the reprotect of `{}` before any data moves:\n  {}",
                        item.name,
                        errors.join("\n  ")
                    )));
                }
                let location = if original.is_some() {
                    "original"
                } else {
                    "alternate"
                };
                ctx.log(&format!("failback to the {location} location"));
                self.keep_retention(ctx, p, &group)?;
                Ok(Checked {
                    target_site: site.name,
                    location: location.to_string(),
                    vm_id: original,
                    host_id: mt.host_id,
                    datastore,
                    group,
                    warnings,
                })
            }
            Direction::ToCloud => {
                let Some(replica) = &item.replica else {
                    return Err(StepError::Failed(format!(
                        "item `{}` has no cloud disks to replicate into: name them first \
                         (the cloud's managed disks made for it)",
                        item.name
                    )));
                };
                let site = store.site(&replica.site).map_err(store_error)?;
                // The cloud disks must take writes now (their VM deallocated).
                let mut cloud = env.adapter(&site).map_err(common::orchestrator_error)?;
                for disk in &item.disks {
                    let Some(id) = &disk.replica_disk_id else {
                        return Err(StepError::Failed(format!(
                            "disk {} of item `{}` has no cloud disk to replicate into",
                            disk.index, item.name
                        )));
                    };
                    cloud
                        .cloud_disk_endpoint(id, Access::ReadWrite)
                        .map_err(plugin_error)?;
                }
                Ok(Checked {
                    target_site: site.name,
                    location: "original".to_string(),
                    vm_id: Some(replica.vm_id.clone()).filter(|id| !id.is_empty()),
                    host_id: None,
                    datastore: None,
                    group,
                    warnings: Vec::new(),
                })
            }
        }
    }

    /// The group of the target direction: the one asked for, else the pair
    /// of the item's group (`PG1` ↔ `PG1_Failback`).
    fn target_group(&self, p: &ReprotectParams, item: &Item) -> Result<String, StepError> {
        let store = &self.0.store;
        let name = match &p.group {
            Some(name) => name.clone(),
            None => {
                let current = store.group(&item.group).map_err(store_error)?;
                if current.direction == p.direction {
                    current.name
                } else {
                    current.paired.ok_or_else(|| {
                        StepError::Failed(format!(
                            "group `{}` has no paired group {}: name the group",
                            current.name,
                            direction_words(p.direction)
                        ))
                    })?
                }
            }
        };
        let group = store.group(&name).map_err(store_error)?;
        if group.direction != p.direction {
            return Err(StepError::Failed(format!(
                "group `{name}` protects {}, not {}",
                direction_words(group.direction),
                direction_words(p.direction)
            )));
        }
        Ok(name)
    }

    fn split_brain(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        item: &Item,
    ) -> Result<serde_json::Value, StepError> {
        let checked: Checked = output(ctx, "check")?;
        let Some(vm_id) = &checked.vm_id else {
            return to_output(
                &serde_json::json!({ "checked": 0, "reason": "alternate location: nothing is overwritten" }),
            );
        };
        let paths = self.on_premises_disks(&checked.target_site, vm_id)?;
        let verdict = split_brain::check(&self.0.store, item, &paths, p.allow_overwrite)?;
        for line in &verdict.notes {
            ctx.log(line);
        }
        to_output(&verdict)
    }

    /// The on-premises VM's disks: ids and host paths, in unit order.
    fn on_premises_disks(
        &self,
        site: &str,
        vm_id: &str,
    ) -> Result<Vec<(String, PathBuf)>, StepError> {
        let store = &self.0.store;
        let site = store.site(site).map_err(store_error)?;
        let mut hypervisor = self
            .0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)?;
        let vm = hypervisor.hypervisor_get_vm(vm_id).map_err(plugin_error)?;
        let mounts = site_mounts(store, &site.name)?;
        vm.disks
            .iter()
            .map(|d| Ok((d.id.clone(), disks::host_path(d, &mounts)?)))
            .collect()
    }

    fn prepare_target(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        item: &Item,
    ) -> Result<Target, StepError> {
        let checked: Checked = output(ctx, "check")?;
        let store = &self.0.store;
        match p.direction {
            Direction::ToCloud => {
                let site = store.site(&checked.target_site).map_err(store_error)?;
                let mut cloud = self
                    .0
                    .env
                    .adapter(&site)
                    .map_err(common::orchestrator_error)?;
                let mut out = Vec::new();
                for disk in &item.disks {
                    let id = disk.replica_disk_id.clone().unwrap_or_default();
                    let endpoint = cloud
                        .cloud_disk_endpoint(&id, Access::ReadWrite)
                        .map_err(plugin_error)?;
                    out.push((id, disks::endpoint(&endpoint, &[])?.address()));
                }
                Ok(Target {
                    vm_id: checked.vm_id.clone().unwrap_or_default(),
                    vm_name: item.name.clone(),
                    disks: out,
                    macs: Vec::new(),
                    created: false,
                })
            }
            Direction::ToOnPremises => {
                let site = store.site(&checked.target_site).map_err(store_error)?;
                let mut hypervisor = self
                    .0
                    .env
                    .adapter(&site)
                    .map_err(common::orchestrator_error)?;
                let (vm, created) = match &checked.vm_id {
                    Some(id) => (
                        hypervisor.hypervisor_get_vm(id).map_err(plugin_error)?,
                        false,
                    ),
                    None => {
                        // A rerun finds the VM an earlier attempt made.
                        let name = item.name.clone();
                        let inventory = hypervisor.hypervisor_discover().map_err(plugin_error)?;
                        let existing = inventory.vms.iter().find(|vm| vm.name == name).cloned();
                        match existing {
                            Some(vm) if ctx.attempt() > 1 || vm.disks.len() == item.disks.len() => {
                                (vm, true)
                            }
                            Some(vm) => {
                                return Err(StepError::Failed(format!(
                                    "a VM named `{name}` ({}) already exists on site {} and is not this \
                                     item's: rename it or delete it",
                                    vm.id, site.name
                                )));
                            }
                            None => {
                                let source_site =
                                    store.site(&item.source.site).map_err(store_error)?;
                                let mut cloud = self
                                    .0
                                    .env
                                    .adapter(&source_site)
                                    .map_err(common::orchestrator_error)?;
                                let source = cloud
                                    .cloud_get_vm(&item.source.vm_id)
                                    .map_err(plugin_error)?;
                                let networks: Vec<String> =
                                    item.nics.iter().filter_map(|n| n.network.clone()).collect();
                                let spec = HypervisorVmSpec {
                                    name: name.clone(),
                                    host_id: checked.host_id.clone().unwrap_or_default(),
                                    datastore_id: common::datastore_id(
                                        &inventory,
                                        checked.datastore.as_deref().unwrap_or_default(),
                                    )?,
                                    guest_id: guest_id(&source.guest_os),
                                    cpus: 2,
                                    memory_mib: 2048,
                                    disk_sizes: item.disks.iter().map(|d| d.capacity).collect(),
                                    network_ids: if networks.is_empty() {
                                        vec![common::network_id(&inventory, "VM Network")?]
                                    } else {
                                        networks
                                            .iter()
                                            .map(|n| common::network_id(&inventory, n))
                                            .collect::<Result<_, _>>()?
                                    },
                                };
                                let vm = hypervisor
                                    .hypervisor_create_vm(&spec)
                                    .map_err(plugin_error)?;
                                ctx.log(&format!(
                                    "created VM {} ({}) on {}",
                                    vm.name, vm.id, spec.datastore_id
                                ));
                                (vm, true)
                            }
                        }
                    }
                };
                let mounts = site_mounts(store, &site.name)?;
                let disks = vm
                    .disks
                    .iter()
                    .map(|d| Ok((d.id.clone(), disks::endpoint(d, &mounts)?.address())))
                    .collect::<Result<Vec<_>, StepError>>()?;
                if disks.len() != item.disks.len() {
                    return Err(StepError::Failed(format!(
                        "VM {} has {} disks; item `{}` has {}",
                        vm.id,
                        disks.len(),
                        item.name,
                        item.disks.len()
                    )));
                }
                Ok(Target {
                    vm_id: vm.id,
                    vm_name: vm.name,
                    disks,
                    macs: vm.nics.iter().map(|n| n.mac.clone()).collect(),
                    created,
                })
            }
        }
    }

    fn sync_disk(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        item: &Item,
        index: usize,
    ) -> Result<Moved, StepError> {
        let target: Target = output(ctx, "prepare-target")?;
        let disk = item.disks.get(index).ok_or_else(|| {
            StepError::Failed(format!("item `{}` has no disk {index}", item.name))
        })?;
        let checked: Checked = output(ctx, "check")?;
        let (target_id, target_address) = target.disks.get(index).cloned().ok_or_else(|| {
            StepError::Failed(format!(
                "the replica of item `{}` has no disk {index}",
                item.name
            ))
        })?;
        let source = common::source_endpoint(&self.0, item, &disk.source_disk_id)?;
        let target_disk = common::recorded_endpoint(
            &self.0,
            &checked.target_site,
            &target_id,
            &target_address,
            Access::ReadWrite,
        )?;
        // A new disk's first pass copies everything; a rerun or an existing
        // disk compares digests and sends only what differs.
        let mode = if target.created && ctx.attempt() == 1 && p.direction == Direction::ToOnPremises
        {
            Mode::Full
        } else {
            Mode::Delta
        };
        ctx.check_cancelled()?;
        let moved = disks::sync_disk(ctx, &source, &target_disk, mode)?;
        ctx.log(&format!(
            "disk {index}: {} of {} bytes sent ({}) in {:.2} s",
            moved.bytes_sent, moved.bytes_total, moved.mode, moved.seconds
        ));
        Ok(moved)
    }

    fn record_point(
        &self,
        ctx: &StepContext,
        p: &ReprotectParams,
        mut item: Item,
    ) -> Result<serde_json::Value, StepError> {
        let checked: Checked = output(ctx, "check")?;
        let target: Target = output(ctx, "prepare-target")?;
        let store = &self.0.store;
        let mut point_disks = Vec::new();
        let mut bytes_sent = 0;
        let group = store.group(&checked.group).map_err(store_error)?;
        for i in 0..item.disks.len() {
            let moved: Moved = output(ctx, &format!("sync-disk-{i}"))?;
            bytes_sent += moved.bytes_sent;
            // On premises the replica's journal starts at the synced disk
            // (continuous replication's first base point).
            let journal_seq = match (p.direction, target.disks.get(i)) {
                (Direction::ToOnPremises, Some((_, path))) => Some(super::replicate::journal_base(
                    std::path::Path::new(path),
                    &moved.digest,
                    super::replicate::journal_options(&group.settings),
                    crate::journal::NewPointMeta {
                        taken_at: crate::store::now_ms(),
                        app_consistent: false,
                        consistency_id: Some(job_tag(ctx)),
                        label: format!("initial sync, job {}", ctx.job_id()),
                    },
                )?),
                _ => None,
            };
            point_disks.push(PointDisk {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                snapshot_id: String::new(),
                digest: Some(moved.digest),
                journal_seq,
                change_method: None,
            });
        }
        // The point of this job, once: a rerun finds it.
        let existing = store
            .points(item.id)
            .map_err(store_error)?
            .into_iter()
            .find(|pt| pt.consistency_id.as_deref() == Some(&job_tag(ctx)));
        let point = match existing {
            Some(point) => point,
            None => store
                .add_point(&NewPoint {
                    item_id: item.id,
                    taken_at: crate::store::now_ms(),
                    kind: PointKind::CrashConsistent,
                    direction: p.direction,
                    consistency_id: Some(job_tag(ctx)),
                    disks: point_disks,
                })
                .map_err(store_error)?,
        };
        for (disk, (id, path)) in item.disks.iter_mut().zip(&target.disks) {
            disk.replica_disk_id = Some(id.clone());
            disk.replica_path = Some(path.clone());
        }
        item.replica = Some(VmRef {
            site: checked.target_site.clone(),
            vm_id: target.vm_id.clone(),
            name: target.vm_name.clone(),
        });
        item.group = group.name.clone();
        item.state = ItemState::Protected;
        item.state_detail = format!(
            "replicating {} ({} location), point {}",
            direction_words(p.direction),
            checked.location,
            point.id
        );
        store.update_item(&item).map_err(store_error)?;
        ctx.log(&format!(
            "recovery point {} recorded for {}",
            point.id, item.name
        ));
        Ok(serde_json::json!({ "point": point.id, "bytes_sent": bytes_sent, "group": group.name }))
    }
}

/// The consistency tag of the points a job records (one id shared by all the
/// VMs of the job, and how a rerun finds its own point).
pub(crate) fn job_tag(ctx: &StepContext) -> String {
    format!("job-{}", ctx.job_id())
}

/// The hypervisor's guest id for a cloud VM's OS type.
fn guest_id(os: &str) -> String {
    if os.to_ascii_lowercase().contains("windows") {
        "windows2019srv_64Guest".to_string()
    } else {
        "otherLinux64Guest".to_string()
    }
}
