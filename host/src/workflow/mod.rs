//! The failback workflows and the [`Orchestrator`] that runs them: what the
//! control API and `homeward demo` call.
//!
//! Each workflow is a [`Workflow`](crate::jobs::Workflow) of the job
//! scheduler: its steps are idempotent and persisted, so a server killed in
//! the middle goes on where it was.
//!
//! ```text
//!  protect (PG1) ─► reprotect to-cloud ─► failover to-cloud ─► reprotect to-on-premises (PG1_Failback)
//!      ▲                                                            │ readiness S12–S15, split-brain guard,
//!      │                                                            │ original location (delta) or alternate (new VM)
//!  commit + reprotect to-cloud (S3) ◄── failover to-on-premises ◄───┘ point (S2), guest post-steps (S16, S17)
//! ```
//!
//! An item's `source` is the side that runs the VM now (the primary) and its
//! `replica` the other side; a failover swaps them. A replica whose VM does
//! not exist yet (cloud disks protected before any failover) has an empty
//! `vm_id`.
//!
//! - [`Env`] (`env.rs`): the plugins: adapters by id, file-system handlers, guest steps.
//! - `params.rs`: what each workflow is asked, stored with its job.
//! - `disks.rs`: disk locators to endpoints (host paths or page blobs), one disk through the data path, fingerprints.
//! - `reprotect.rs`, `failover.rs`, `commit.rs`: the workflows.
//! - `split_brain.rs`: DRBD-like generations per disk and side.
//! - `replicate.rs`: one cycle of continuous replication (snapshot barrier,
//!   changed ranges or digest resync, shipping into the master target's
//!   journal, points); `cycles.rs`: the driver that submits cycles;
//!   `rpo.rs`: each item's recovery point objective.

mod commit;
mod common;
pub mod components;
mod cycles;
mod disks;
mod env;
mod failover;
mod params;
mod replicate;
mod replicate_to_cloud;
mod reprotect;
pub mod rpo;
mod split_brain;

pub use cycles::Cycles;
pub use disks::{Moved, fingerprint, host_path};
pub use env::Env;
pub use params::{CommitParams, FailoverParams, PointChoice, ReprotectParams, TestFailoverParams};
pub use replicate::{DIGEST_RESYNC, ReplicateParams, journal_dir, journal_options};
pub use rpo::Rpo;

use crate::jobs::{Scheduler, SchedulerError, SchedulerOptions, StepError, Workflow};
use crate::plugin::adapter::{Inventory, NicConfig};
use crate::store::{
    Addressing, Component, ComponentRole, ComponentState, Direction, Item, ItemDisk, ItemState,
    NewComponent, NewItem, RecordedNic, Site, SiteKind, Store, StoreError, VmRef,
};
use std::sync::{Arc, Mutex};

/// Why the orchestrator refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is understood but not allowed now (state, readiness...).
    #[error("{0}")]
    Refused(String),
    /// The request does not make sense.
    #[error("{0}")]
    Invalid(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The scheduler refused the job.
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// An adapter failed.
    #[error("{0}")]
    Plugin(String),
}

/// What every workflow shares: the store, the plugins, and the scheduler
/// (set once it exists: plan jobs submit one job per item).
pub(crate) struct Shared {
    pub store: Arc<Store>,
    pub env: Arc<Env>,
    // The scheduler holds the workflows, which hold this: `shutdown` takes
    // it out so the cycle (and the store's lock) ends with the orchestrator.
    pub scheduler: Mutex<Option<Scheduler>>,
    /// The components' heartbeat monitor, once started.
    pub monitor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Shared {
    pub fn scheduler(&self) -> Result<Scheduler, StepError> {
        self.scheduler
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| StepError::Failed("the scheduler is not running".to_string()))
    }
}

/// The control plane's entry: the store, the scheduler with every workflow,
/// and the plugins they use.
#[derive(Clone)]
pub struct Orchestrator {
    shared: Arc<Shared>,
    scheduler: Scheduler,
}

impl Orchestrator {
    /// An orchestrator over `store` with the plugins of `env`.
    pub fn new(store: Arc<Store>, env: Arc<Env>, options: SchedulerOptions) -> Orchestrator {
        let shared = Arc::new(Shared {
            store: store.clone(),
            env,
            scheduler: Mutex::new(None),
            monitor: Mutex::new(None),
        });
        let workflows: Vec<Arc<dyn Workflow>> = vec![
            Arc::new(reprotect::Reprotect(shared.clone())),
            Arc::new(failover::Failover(shared.clone())),
            Arc::new(failover::FailoverItem(shared.clone())),
            Arc::new(commit::Commit(shared.clone())),
            Arc::new(failover::TestFailover(shared.clone())),
            Arc::new(replicate::Replicate(shared.clone())),
        ];
        let scheduler = Scheduler::new(store, workflows, options);
        if let Ok(mut slot) = shared.scheduler.lock() {
            *slot = Some(scheduler.clone());
        }
        Orchestrator { shared, scheduler }
    }

    /// Stops taking steps, waits for running ones, and lets go of the
    /// workflows (and with the last handle, the store and its lock). Jobs
    /// still running stay so in the store: the next start resumes them.
    pub async fn shutdown(&self) {
        if let Some(monitor) = self.shared.monitor.lock().ok().and_then(|mut m| m.take()) {
            monitor.abort();
        }
        self.scheduler.shutdown().await;
        if let Ok(mut slot) = self.shared.scheduler.lock() {
            slot.take();
        }
    }

    /// Starts the scheduler (inside a tokio runtime): unfinished jobs
    /// resume; and the components' heartbeat monitor.
    pub fn start(&self) -> Result<(), OrchestratorError> {
        self.scheduler().start()?;
        let monitor = components::monitor(self.shared.store.clone(), components::DEFAULT_INTERVAL);
        if let Ok(mut slot) = self.shared.monitor.lock()
            && let Some(old) = slot.replace(monitor)
        {
            old.abort();
        }
        Ok(())
    }

    /// The state store.
    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// The job scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The plugins.
    pub fn env(&self) -> &Arc<Env> {
        &self.shared.env
    }

    /// An on-premises site's inventory, from its hypervisor adapter.
    pub fn discover(&self, site: &str) -> Result<Inventory, OrchestratorError> {
        let site = self.shared.store.site(site)?;
        if site.kind != SiteKind::OnPremises {
            return Err(OrchestratorError::Invalid(format!(
                "site `{}` is a cloud: cloud adapters have no discovery; protect its VMs by id",
                site.name
            )));
        }
        let mut adapter = self.shared.env.adapter(&site)?;
        adapter.hypervisor_discover().map_err(env::plugin_error)
    }

    /// Registers a process server or master target. Registration is
    /// asynchronous and visible (S19): the record says `registering` at once,
    /// and a background check sets `registered` or `failed` with the reason.
    pub fn register_component(&self, c: &NewComponent) -> Result<Component, OrchestratorError> {
        let site = self.shared.store.site(&c.site)?;
        let component = self.shared.store.register_component(c)?;
        let shared = self.shared.clone();
        let name = component.name.clone();
        let check = c.clone();
        std::thread::spawn(move || {
            let (state, detail) = match check_component(&shared, &site, &check) {
                Ok(detail) => (ComponentState::Registered, detail),
                Err(reason) => (ComponentState::Failed, reason),
            };
            if let Err(e) = shared.store.set_component_state(&name, state, &detail) {
                tracing::warn!("recording the registration of {name}: {e}");
            }
            let _ = shared.store.heartbeat(&name, crate::store::now_ms());
        });
        Ok(component)
    }

    /// Protects VMs of `site` in `group`: records each VM with its disks and
    /// the NICs it has now (what the guest steps restore after failback).
    pub fn protect(
        &self,
        group: &str,
        site: &str,
        vm_ids: &[String],
    ) -> Result<Vec<Item>, OrchestratorError> {
        let store = &self.shared.store;
        let group = store.group(group)?;
        let site = store.site(site)?;
        let mut adapter = self.shared.env.adapter(&site)?;
        let mut items = Vec::new();
        for vm_id in vm_ids {
            let vm = match site.kind {
                SiteKind::OnPremises => adapter.hypervisor_get_vm(vm_id),
                SiteKind::Cloud => adapter.cloud_get_vm(vm_id),
            }
            .map_err(env::plugin_error)?;
            let item = store.add_item(&NewItem {
                name: vm.name.clone(),
                group: group.name.clone(),
                source: VmRef {
                    site: site.name.clone(),
                    vm_id: vm.id.clone(),
                    name: vm.name.clone(),
                },
                physical: false,
                disks: vm
                    .disks
                    .iter()
                    .enumerate()
                    .map(|(i, d)| ItemDisk {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        capacity: d.capacity_bytes,
                        source_disk_id: d.id.clone(),
                        replica_disk_id: None,
                        replica_path: None,
                    })
                    .collect(),
                nics: vm.nics.iter().map(recorded_nic).collect(),
            })?;
            items.push(item);
        }
        Ok(items)
    }

    /// Names the disks on the other side an item replicates into (cloud
    /// managed disks made for it, in disk order) before its first reprotect.
    pub fn set_replica_disks(
        &self,
        item: &str,
        site: &str,
        disk_ids: &[String],
    ) -> Result<Item, OrchestratorError> {
        let store = &self.shared.store;
        let mut record = store.item(item)?;
        let site = store.site(site)?;
        if disk_ids.len() != record.disks.len() {
            return Err(OrchestratorError::Invalid(format!(
                "item `{item}` has {} disks; {} replica disks were named",
                record.disks.len(),
                disk_ids.len()
            )));
        }
        for (disk, id) in record.disks.iter_mut().zip(disk_ids) {
            disk.replica_disk_id = Some(id.clone());
        }
        record.replica = Some(VmRef {
            site: site.name,
            vm_id: String::new(),
            name: record.name.clone(),
        });
        store.update_item(&record)?;
        Ok(record)
    }

    /// Replaces the NICs recorded for an item (an operator who knows the
    /// guest's addressing better than the hypervisor's guest info).
    pub fn record_nics(
        &self,
        item: &str,
        nics: Vec<RecordedNic>,
    ) -> Result<Item, OrchestratorError> {
        let store = &self.shared.store;
        let mut record = store.item(item)?;
        record.nics = nics;
        store.update_item(&record)?;
        Ok(record)
    }

    /// Submits one replication cycle of an item or a group.
    pub fn replicate(&self, p: &ReplicateParams) -> Result<i64, OrchestratorError> {
        self.submit(replicate::KIND, p)
    }

    /// Starts the replication-cycle driver (continuous replication of the
    /// groups that set `cycle_interval_secs`), looking for due cycles every
    /// `tick`. Stop it with [`Cycles::stop`] before [`shutdown`](Self::shutdown).
    pub fn start_cycles(&self, tick: std::time::Duration) -> Cycles {
        cycles::start(self.shared.clone(), tick)
    }

    /// An item's recovery point objective now: the age of its latest point,
    /// its group's target, the alert.
    pub fn rpo(&self, item: &str) -> Result<Rpo, OrchestratorError> {
        let store = &self.shared.store;
        let item = store.item(item)?;
        Ok(rpo::rpo(store, &item, crate::store::now_ms())?)
    }

    /// Submits a reprotect (S1, S3, S4).
    pub fn reprotect(&self, p: &ReprotectParams) -> Result<i64, OrchestratorError> {
        self.submit(reprotect::KIND, p)
    }

    /// Submits a failover of a plan (S2).
    pub fn failover(&self, p: &FailoverParams) -> Result<i64, OrchestratorError> {
        if !p.confirm {
            return Err(OrchestratorError::Refused(format!(
                "failover of plan `{}` {} needs the operator's confirmation of the direction",
                p.plan,
                direction_words(p.direction)
            )));
        }
        self.submit(failover::KIND, p)
    }

    /// Submits a commit and reprotect the other way (S3).
    pub fn commit(&self, p: &CommitParams) -> Result<i64, OrchestratorError> {
        self.submit(commit::KIND, p)
    }

    /// Submits a test failover (a drill into an isolated network).
    pub fn test_failover(&self, p: &TestFailoverParams) -> Result<i64, OrchestratorError> {
        self.submit(failover::TEST_KIND, p)
    }

    fn submit<P: serde::Serialize>(&self, kind: &str, p: &P) -> Result<i64, OrchestratorError> {
        let params = serde_json::to_value(p)
            .map_err(|e| OrchestratorError::Invalid(format!("{kind} parameters: {e}")))?;
        match self.scheduler().submit(kind, params) {
            Ok(id) => Ok(id),
            Err(SchedulerError::Refused(reason)) => Err(OrchestratorError::Refused(reason)),
            Err(e) => Err(e.into()),
        }
    }
}

/// "to the cloud" / "to on-premises", for messages.
pub(crate) fn direction_words(direction: Direction) -> &'static str {
    match direction {
        Direction::ToCloud => "to the cloud",
        Direction::ToOnPremises => "to on-premises",
    }
}

/// The record protection keeps of a NIC as an adapter (or a guest) gives it.
pub fn recorded_nic(nic: &NicConfig) -> RecordedNic {
    use crate::plugin::wit::v0_1::types::Addressing as Wit;
    RecordedNic {
        mac: nic.mac.clone(),
        network: nic.network.clone(),
        device_name: nic.device_name.clone(),
        addressing: match &nic.addressing {
            Wit::Dhcp => Addressing::Dhcp,
            Wit::Fixed(s) => Addressing::Fixed {
                addresses: s.addresses.clone(),
                gateways: s.gateways.clone(),
                dns_servers: s.dns_servers.clone(),
                dns_search: s.dns_search.clone(),
            },
        },
    }
}

/// The NIC a guest step receives for a recorded one.
pub(crate) fn nic_config(nic: &RecordedNic) -> NicConfig {
    use crate::plugin::wit::v0_1::types::{Addressing as Wit, StaticAddressing};
    NicConfig {
        mac: nic.mac.clone(),
        network: nic.network.clone(),
        device_name: nic.device_name.clone(),
        addressing: match &nic.addressing {
            Addressing::Dhcp => Wit::Dhcp,
            Addressing::Fixed {
                addresses,
                gateways,
                dns_servers,
                dns_search,
            } => Wit::Fixed(StaticAddressing {
                addresses: addresses.clone(),
                gateways: gateways.clone(),
                dns_servers: dns_servers.clone(),
                dns_search: dns_search.clone(),
            }),
        },
    }
}

/// The background check of a registration: the site's adapter connects, a
/// master target's VM exists and its datastore mounts are directories.
fn check_component(shared: &Shared, site: &Site, c: &NewComponent) -> Result<String, String> {
    let mut adapter = shared.env.adapter(site).map_err(|e| e.to_string())?;
    if c.role == ComponentRole::MasterTarget {
        if let Some(vm) = &c.vm_id {
            adapter
                .hypervisor_get_vm(vm)
                .map_err(|e| format!("master target VM {vm}: {e}"))?;
        }
        for mount in &c.datastore_mounts {
            if !mount.path.is_dir() {
                return Err(format!(
                    "datastore `{}` is mounted at {}, which is not a directory here",
                    mount.datastore,
                    mount.path.display()
                ));
            }
        }
    }
    Ok(format!("connected to site {}", site.name))
}

/// An item's state as a one-line reason (for failed steps).
pub(crate) fn item_state_words(item: &Item) -> String {
    let state = match item.state {
        ItemState::Protecting => "protecting",
        ItemState::Protected => "protected",
        ItemState::FailedOver => "failed over",
        ItemState::Committed => "committed",
        ItemState::Failed => "failed",
    };
    format!("item `{}` is {state} ({})", item.name, item.state_detail)
}
