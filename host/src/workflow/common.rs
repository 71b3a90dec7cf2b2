//! Small pieces every workflow uses: reading params and earlier outputs,
//! turning store and plugin errors into step errors, and finding the
//! components and sites an item involves.

use crate::jobs::{StepContext, StepError};
use crate::plugin::{Failure, PluginError};
use crate::store::{
    Component, ComponentRole, ComponentState, DatastoreMount, Direction, Site, SiteKind, Store,
    StoreError,
};
use crate::sync::DiskEndpoint;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The job's params as `P`.
pub fn params<P: DeserializeOwned>(value: &serde_json::Value) -> Result<P, StepError> {
    serde_json::from_value(value.clone())
        .map_err(|e| StepError::Failed(format!("the job's parameters do not parse: {e}")))
}

/// The output of the earlier step `step` as `T`.
pub fn output<T: DeserializeOwned>(ctx: &StepContext, step: &str) -> Result<T, StepError> {
    let value = ctx.output_of(step).ok_or_else(|| {
        StepError::Failed(format!("step `{step}` has no output (it did not finish)"))
    })?;
    serde_json::from_value(value.clone())
        .map_err(|e| StepError::Failed(format!("the output of step `{step}` does not parse: {e}")))
}

/// `value` as a step output.
pub fn to_output<T: Serialize>(value: &T) -> Result<serde_json::Value, StepError> {
    serde_json::to_value(value)
        .map_err(|e| StepError::Failed(format!("recording the step's output: {e}")))
}

/// A store failure fails the step (SQLite retries busy locks itself).
pub fn store_error(e: StoreError) -> StepError {
    StepError::Failed(format!("state store: {e}"))
}

/// A plugin failure: an unavailable endpoint or a plugin stopped by a limit
/// is worth retrying; anything the adapter refused is not.
pub fn plugin_error(e: PluginError) -> StepError {
    let transient = matches!(
        &e,
        PluginError::Failed {
            failure: Failure::Unavailable { .. },
            ..
        }
    );
    if transient {
        StepError::Transient(e.to_string())
    } else {
        StepError::Failed(e.to_string())
    }
}

/// The orchestrator's error as a step error.
pub fn orchestrator_error(e: super::OrchestratorError) -> StepError {
    StepError::Failed(e.to_string())
}

/// The component of `role` to use: the named one, else the only registered
/// one on a site of `kind`. It must be registered.
pub fn component(
    store: &Store,
    role: ComponentRole,
    named: Option<&str>,
    kind: SiteKind,
) -> Result<(Component, Site), StepError> {
    let what = match role {
        ComponentRole::MasterTarget => "master target",
        ComponentRole::ProcessServer => "process server",
    };
    let component = match named {
        Some(name) => store.component(name).map_err(store_error)?,
        None => {
            let mut candidates = Vec::new();
            for c in store.components(Some(role)).map_err(store_error)? {
                let site = store.site(&c.site).map_err(store_error)?;
                if site.kind == kind && c.state == ComponentState::Registered {
                    candidates.push(c);
                }
            }
            match candidates.len() {
                1 => candidates.remove(0),
                0 => {
                    return Err(StepError::Failed(format!(
                        "no registered {what}: register one (`homeward component register`) or name it"
                    )));
                }
                _ => {
                    return Err(StepError::Failed(format!(
                        "{} {what}s are registered: name the one to use",
                        candidates.len()
                    )));
                }
            }
        }
    };
    if component.role != role {
        return Err(StepError::Failed(format!(
            "`{}` is not a {what}",
            component.name
        )));
    }
    if component.state != ComponentState::Registered {
        return Err(StepError::Failed(format!(
            "{what} `{}` is not registered ({:?}: {}); wait for its registration or fix it",
            component.name, component.state, component.detail
        )));
    }
    let site = store.site(&component.site).map_err(store_error)?;
    Ok((component, site))
}

/// The datastore mounts of every master target on `site`.
pub fn site_mounts(store: &Store, site: &str) -> Result<Vec<DatastoreMount>, StepError> {
    Ok(store
        .components(Some(ComponentRole::MasterTarget))
        .map_err(store_error)?
        .into_iter()
        .filter(|c| c.site == site)
        .flat_map(|c| c.datastore_mounts)
        .collect())
}

/// The other direction.
pub fn reverse(direction: Direction) -> Direction {
    match direction {
        Direction::ToCloud => Direction::ToOnPremises,
        Direction::ToOnPremises => Direction::ToCloud,
    }
}

/// The kind of site a direction goes to.
pub fn target_kind(direction: Direction) -> SiteKind {
    match direction {
        Direction::ToCloud => SiteKind::Cloud,
        Direction::ToOnPremises => SiteKind::OnPremises,
    }
}

/// Where the item's source (primary) disk `disk_id` is: a cloud disk's
/// endpoint (its page blob, with a credential) or a datastore file.
pub fn source_endpoint(
    shared: &super::Shared,
    item: &crate::store::Item,
    disk_id: &str,
) -> Result<DiskEndpoint, StepError> {
    use crate::plugin::adapter::Access;
    let store = &shared.store;
    let site = store.site(&item.source.site).map_err(store_error)?;
    let mut adapter = shared.env.adapter(&site).map_err(orchestrator_error)?;
    match site.kind {
        SiteKind::Cloud => {
            let endpoint = adapter
                .cloud_disk_endpoint(disk_id, Access::Read)
                .map_err(plugin_error)?;
            super::disks::endpoint(&endpoint, &[])
        }
        SiteKind::OnPremises => {
            let vm = adapter
                .hypervisor_get_vm(&item.source.vm_id)
                .map_err(plugin_error)?;
            let disk =
                vm.disks.iter().find(|d| d.id == disk_id).ok_or_else(|| {
                    StepError::Failed(format!("VM {} has no disk {disk_id}", vm.id))
                })?;
            super::disks::endpoint(disk, &site_mounts(store, &site.name)?)
        }
    }
}

/// Where a replica disk is, from what a step or the store recorded of it
/// (its id and address): on a cloud site the adapter gives the endpoint
/// again (with a fresh credential, which is never recorded); on premises
/// the address is the host path.
pub fn recorded_endpoint(
    shared: &super::Shared,
    site: &str,
    disk_id: &str,
    address: &str,
    access: crate::plugin::adapter::Access,
) -> Result<DiskEndpoint, StepError> {
    let site = shared.store.site(site).map_err(store_error)?;
    match site.kind {
        SiteKind::Cloud => {
            let mut adapter = shared.env.adapter(&site).map_err(orchestrator_error)?;
            let disk = adapter
                .cloud_disk_endpoint(disk_id, access)
                .map_err(plugin_error)?;
            super::disks::endpoint(&disk, &[])
        }
        SiteKind::OnPremises => Ok(DiskEndpoint::Path(std::path::PathBuf::from(address))),
    }
}

/// Where the item's replica disks are, in disk order (see
/// [`recorded_endpoint`]).
pub fn replica_endpoints(
    shared: &super::Shared,
    item: &crate::store::Item,
    access: crate::plugin::adapter::Access,
) -> Result<Vec<DiskEndpoint>, StepError> {
    let replica = item.replica.as_ref().ok_or_else(|| {
        StepError::Failed(format!(
            "item `{}` has no replica: reprotect it first",
            item.name
        ))
    })?;
    item.disks
        .iter()
        .map(|d| {
            let (Some(id), Some(address)) = (&d.replica_disk_id, &d.replica_path) else {
                return Err(StepError::Failed(format!(
                    "disk {} of item `{}` has no replica yet: reprotect it first",
                    d.index, item.name
                )));
            };
            recorded_endpoint(shared, &replica.site, id, address, access)
        })
        .collect()
}

/// The id of the datastore `named` (an id or a name) in `inventory`.
pub fn datastore_id(
    inventory: &crate::plugin::adapter::Inventory,
    named: &str,
) -> Result<String, StepError> {
    inventory
        .datastores
        .iter()
        .find(|d| d.id == named || d.name == named)
        .map(|d| d.id.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = inventory
                .datastores
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            StepError::Failed(format!(
                "the site has no datastore `{named}`; it has: {}",
                known.join(", ")
            ))
        })
}

/// The id of the network `named` (an id or a name) in `inventory`.
pub fn network_id(
    inventory: &crate::plugin::adapter::Inventory,
    named: &str,
) -> Result<String, StepError> {
    inventory
        .networks
        .iter()
        .find(|n| n.id == named || n.name == named)
        .map(|n| n.id.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = inventory.networks.iter().map(|n| n.name.as_str()).collect();
            StepError::Failed(format!(
                "the site has no network `{named}`; it has: {}",
                known.join(", ")
            ))
        })
}
