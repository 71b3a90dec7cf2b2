//! Commit a failover and reprotect the other way (S3): the failed-over VMs
//! are committed, each one is reprotected back (to the cloud after a
//! failback, into the stopped cloud VM's disks), and then, if the operator
//! asked, the stopped VM the failover left behind is deleted (its disks stay:
//! they are the replica now).
//!
//! Steps: `commit`, then per VM `reprotect:NAME` (a reprotect job, waited
//! for) and `delete-source:NAME` when asked.

use super::common::{self, params, plugin_error, reverse, store_error, target_kind, to_output};
use super::reprotect::KIND as REPROTECT;
use super::{CommitParams, ReprotectParams, Shared, direction_words};
use crate::jobs::{PreparedJob, StepContext, StepError, Workflow};
use crate::plugin::{Failure, PluginError};
use crate::store::{Item, ItemState, JobFilter, JobState, PlanEntry, SiteKind, Store};
use std::sync::Arc;

/// The job kind.
pub const KIND: &str = "commit";

pub(crate) struct Commit(pub Arc<Shared>);

/// The plan's items that failed over in `direction`.
fn failed_over(store: &Store, p: &CommitParams) -> Result<Vec<Item>, StepError> {
    let plan = store.plan(&p.plan).map_err(store_error)?;
    let mut items = Vec::new();
    for entry in &plan.entries {
        let PlanEntry::Group { name } = entry else {
            continue;
        };
        let group = store.group(name).map_err(store_error)?;
        if group.direction != p.direction {
            continue;
        }
        for item in store.items(Some(name)).map_err(store_error)? {
            let on = store.site(&item.source.site).map_err(store_error)?.kind;
            if on == target_kind(p.direction)
                && matches!(
                    item.state,
                    ItemState::FailedOver | ItemState::Committed | ItemState::Protected
                )
            {
                items.push(item);
            }
        }
    }
    Ok(items)
}

impl Workflow for Commit {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn prepare(&self, value: &serde_json::Value) -> Result<PreparedJob, StepError> {
        let p: CommitParams = params(value)?;
        let items = failed_over(&self.0.store, &p)?;
        if items.is_empty() {
            return Err(StepError::Failed(format!(
                "plan `{}` holds no VM that failed over {}: nothing to commit",
                p.plan,
                direction_words(p.direction)
            )));
        }
        let mut steps = vec!["commit".to_string()];
        for item in &items {
            steps.push(format!("reprotect:{}", item.name));
            if p.delete_source_vm {
                steps.push(format!("delete-source:{}", item.name));
            }
        }
        Ok(PreparedJob {
            steps,
            resources: Vec::new(),
            summary: format!(
                "commit {} {} and reprotect {}",
                p.plan,
                direction_words(p.direction),
                direction_words(reverse(p.direction))
            ),
            parent: None,
        })
    }

    fn run_step(&self, ctx: &StepContext) -> Result<serde_json::Value, StepError> {
        let p: CommitParams = params(ctx.params())?;
        let store = &self.0.store;
        let step = ctx.step_name().to_string();
        if step == "commit" {
            let mut names = Vec::new();
            for mut item in failed_over(store, &p)? {
                if item.state == ItemState::FailedOver {
                    item.state = ItemState::Committed;
                    item.state_detail = format!("committed {}", direction_words(p.direction));
                    store.update_item(&item).map_err(store_error)?;
                }
                names.push(item.name);
            }
            return to_output(&names);
        }
        if let Some(name) = step.strip_prefix("reprotect:") {
            return self.reprotect(ctx, &p, name);
        }
        if let Some(name) = step.strip_prefix("delete-source:") {
            return self.delete_source(ctx, name);
        }
        Err(StepError::Failed(format!("commit has no step `{step}`")))
    }
}

impl Commit {
    /// Submits the item's reprotect the other way (once) and waits for it.
    fn reprotect(
        &self,
        ctx: &StepContext,
        p: &CommitParams,
        name: &str,
    ) -> Result<serde_json::Value, StepError> {
        let scheduler = self.0.scheduler()?;
        let store = &self.0.store;
        let tag = format!("commit-job-{}", ctx.job_id());
        let existing = store
            .jobs(&JobFilter {
                state: None,
                kind: Some(REPROTECT.to_string()),
                limit: None,
            })
            .map_err(store_error)?
            .into_iter()
            .find(|j| {
                j.params.get("item").and_then(|v| v.as_str()) == Some(name)
                    && j.params.get("account").and_then(|v| v.as_str()) == Some(tag.as_str())
            });
        let id = match existing {
            Some(job) => job.id,
            None => {
                // The commit's tag rides in `account` (recorded only) so a
                // rerun of this step finds its job instead of making another.
                let params = ReprotectParams {
                    item: name.to_string(),
                    direction: reverse(p.direction),
                    group: None,
                    master_target: None,
                    process_server: None,
                    account: Some(tag),
                    datastore: None,
                    retention_hours: None,
                    allow_overwrite: false,
                };
                let value = serde_json::to_value(&params)
                    .map_err(|e| StepError::Failed(format!("reprotect parameters: {e}")))?;
                scheduler
                    .submit(REPROTECT, value)
                    .map_err(|e| StepError::Failed(format!("reprotect of {name}: {e}")))?
            }
        };
        ctx.log(&format!(
            "reprotecting {name} {} (job {id})",
            direction_words(reverse(p.direction))
        ));
        let job = ctx
            .runtime()
            .block_on(scheduler.wait(id))
            .map_err(|e| StepError::Failed(format!("waiting for job {id}: {e}")))?;
        if job.state != JobState::Succeeded {
            return Err(StepError::Failed(format!(
                "the reprotect of {name} (job {id}) {}: {}",
                job.state.as_str(),
                job.error.unwrap_or_default()
            )));
        }
        Ok(serde_json::json!({ "item": name, "job": id }))
    }

    /// Deletes the stopped VM on the side the item left (disks kept).
    fn delete_source(&self, ctx: &StepContext, name: &str) -> Result<serde_json::Value, StepError> {
        let store = &self.0.store;
        let mut item = store.item(name).map_err(store_error)?;
        let Some(replica) = item.replica.clone().filter(|r| !r.vm_id.is_empty()) else {
            return Ok(serde_json::json!({ "deleted": null }));
        };
        let site = store.site(&replica.site).map_err(store_error)?;
        if site.kind == SiteKind::OnPremises {
            // A hypervisor deletes a VM with its disks, and those disks are
            // the replica now.
            return Err(StepError::Failed(format!(
                "deleting on-premises VM {} would delete its disks, which are `{name}`'s replica;                  remove it by hand once the replica is no longer needed",
                replica.vm_id
            )));
        }
        let mut adapter = self
            .0
            .env
            .adapter(&site)
            .map_err(common::orchestrator_error)?;
        let deleted = match site.kind {
            SiteKind::Cloud => adapter.cloud_delete_vm(&replica.vm_id),
            SiteKind::OnPremises => adapter.hypervisor_delete_vm(&replica.vm_id),
        };
        match deleted {
            Ok(())
            | Err(PluginError::Failed {
                failure: Failure::NotFound(_),
                ..
            }) => {}
            Err(e) => return Err(plugin_error(e)),
        }
        ctx.log(&format!(
            "deleted the stopped VM {} on {} (its disks are kept)",
            replica.vm_id, site.name
        ));
        if let Some(r) = item.replica.as_mut() {
            r.vm_id.clear();
        }
        store.update_item(&item).map_err(store_error)?;
        Ok(serde_json::json!({ "deleted": replica.vm_id }))
    }
}
