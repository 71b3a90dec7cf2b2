//! Store records ↔ control API messages.
//!
//! Records become messages on the server (`From`); messages become records
//! again on the client (`TryFrom`), so `--json` prints the store's own serde
//! shape. Requests become the store's `New*` values and the orchestrator's
//! params. An unspecified or unknown enum value is an [`Invalid`] naming the
//! field and the values it takes.

use super::proto as pb;
use crate::store::{
    Addressing, Component, ComponentRole, ComponentState, DatastoreMount, Direction, EventKind,
    Group, GroupSettings, Item, ItemDisk, ItemState, JobEvent, JobRecord, JobState,
    JournalSettings, NewComponent, NewSite, Plan, PlanEntry, PointDisk, PointKind, RecordedNic,
    RecoveryPoint, Role, ServerIdentity, Site, SiteKind, StepRecord, StepState, VmRef,
};
use crate::workflow::PointChoice;
use std::path::PathBuf;

/// A message that does not make a valid record (what and why).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Pairs a store enum with its protobuf enum: `NAME_pb` (record → wire
/// value) and `NAME_from` (wire value → record, or which values it takes).
macro_rules! enum_pair {
    ($to:ident, $from:ident, $store:ident, $pb:ident, $field:literal, {
        $($s:ident => $p:ident),+ $(,)?
    }) => {
        #[doc = concat!("The wire value of a [`", stringify!($store), "`].")]
        pub fn $to(value: &$store) -> i32 {
            match value {
                $($store::$s => pb::$pb::$p as i32),+
            }
        }

        #[doc = concat!("The [`", stringify!($store), "`] of a wire value.")]
        pub fn $from(value: i32) -> Result<$store, Invalid> {
            match pb::$pb::try_from(value) {
                $(Ok(pb::$pb::$p) => Ok($store::$s),)+
                _ => Err(Invalid(format!(
                    "{} is missing or unknown ({value}); it is one of: {}",
                    $field,
                    [$(pb::$pb::$p.as_str_name()),+].join(", ")
                ))),
            }
        }
    };
}

enum_pair!(role_pb, role_from, Role, Role, "role", {
    Operator => Operator,
    ReadOnly => ReadOnly,
});
enum_pair!(site_kind_pb, site_kind_from, SiteKind, SiteKind, "site kind", {
    OnPremises => OnPremises,
    Cloud => Cloud,
});
enum_pair!(component_role_pb, component_role_from, ComponentRole, ComponentRole, "component role", {
    ProcessServer => ProcessServer,
    MasterTarget => MasterTarget,
});
enum_pair!(component_state_pb, component_state_from, ComponentState, ComponentState, "component state", {
    Registering => Registering,
    Registered => Registered,
    Unreachable => Unreachable,
    Failed => Failed,
});
enum_pair!(direction_pb, direction_from, Direction, Direction, "direction", {
    ToCloud => ToCloud,
    ToOnPremises => ToOnPremises,
});
enum_pair!(item_state_pb, item_state_from, ItemState, ItemState, "item state", {
    Protecting => Protecting,
    Protected => Protected,
    FailedOver => FailedOver,
    Committed => Committed,
    Failed => Failed,
});
enum_pair!(point_kind_pb, point_kind_from, PointKind, PointKind, "point kind", {
    CrashConsistent => CrashConsistent,
    AppConsistent => AppConsistent,
});
enum_pair!(job_state_pb, job_state_from, JobState, JobState, "job state", {
    Queued => Queued,
    Running => Running,
    Succeeded => Succeeded,
    Failed => Failed,
    Cancelled => Cancelled,
});
enum_pair!(step_state_pb, step_state_from, StepState, StepState, "step state", {
    Pending => Pending,
    Running => Running,
    Done => Done,
    Failed => Failed,
    Skipped => Skipped,
});
enum_pair!(event_kind_pb, event_kind_from, EventKind, EventKind, "event kind", {
    JobStarted => JobStarted,
    StepStarted => StepStarted,
    Progress => Progress,
    StepDone => StepDone,
    StepRetry => StepRetry,
    StepFailed => StepFailed,
    Log => Log,
    JobFinished => JobFinished,
});

fn required<T>(value: Option<T>, what: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid(format!("{what} is missing")))
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn json_value(text: &str, what: &str) -> Result<serde_json::Value, Invalid> {
    if text.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(text).map_err(|e| Invalid(format!("{what} is not JSON: {e}")))
}

// ---- server ----

/// The server's identity as the API shows it (the caller is filled in by the service).
pub fn server_info(identity: &ServerIdentity) -> pb::ServerInfo {
    pb::ServerInfo {
        server_id: identity.server_id.clone(),
        created_at: identity.created_at,
        schema_version: identity.schema_version,
        version: env!("CARGO_PKG_VERSION").to_string(),
        caller: String::new(),
        caller_role: 0,
    }
}

// ---- sites ----

impl From<&Site> for pb::Site {
    fn from(s: &Site) -> Self {
        pb::Site {
            id: s.id,
            name: s.name.clone(),
            kind: site_kind_pb(&s.kind),
            plugin: s.plugin.clone(),
            created_at: s.created_at,
        }
    }
}

impl TryFrom<pb::Site> for Site {
    type Error = Invalid;
    fn try_from(s: pb::Site) -> Result<Self, Invalid> {
        Ok(Site {
            id: s.id,
            name: s.name,
            kind: site_kind_from(s.kind)?,
            plugin: s.plugin,
            created_at: s.created_at,
        })
    }
}

impl TryFrom<pb::AddSiteRequest> for NewSite {
    type Error = Invalid;
    fn try_from(r: pb::AddSiteRequest) -> Result<Self, Invalid> {
        Ok(NewSite {
            name: r.name,
            kind: site_kind_from(r.kind)?,
            plugin: r.plugin,
        })
    }
}

// ---- components ----

fn mount_pb(m: &DatastoreMount) -> pb::DatastoreMount {
    pb::DatastoreMount {
        datastore: m.datastore.clone(),
        path: m.path.display().to_string(),
    }
}

fn mount_from(m: pb::DatastoreMount) -> DatastoreMount {
    DatastoreMount {
        datastore: m.datastore,
        path: PathBuf::from(m.path),
    }
}

impl From<&Component> for pb::Component {
    fn from(c: &Component) -> Self {
        pb::Component {
            id: c.id,
            name: c.name.clone(),
            role: component_role_pb(&c.role),
            site: c.site.clone(),
            address: c.address.clone(),
            host_id: c.host_id.clone(),
            vm_id: c.vm_id.clone(),
            datastore_mounts: c.datastore_mounts.iter().map(mount_pb).collect(),
            state: component_state_pb(&c.state),
            detail: c.detail.clone(),
            registered_at: c.registered_at,
            last_heartbeat: c.last_heartbeat,
        }
    }
}

impl TryFrom<pb::Component> for Component {
    type Error = Invalid;
    fn try_from(c: pb::Component) -> Result<Self, Invalid> {
        Ok(Component {
            id: c.id,
            name: c.name,
            role: component_role_from(c.role)?,
            site: c.site,
            address: c.address,
            host_id: c.host_id,
            vm_id: c.vm_id,
            datastore_mounts: c.datastore_mounts.into_iter().map(mount_from).collect(),
            state: component_state_from(c.state)?,
            detail: c.detail,
            registered_at: c.registered_at,
            last_heartbeat: c.last_heartbeat,
        })
    }
}

impl TryFrom<pb::RegisterComponentRequest> for NewComponent {
    type Error = Invalid;
    fn try_from(r: pb::RegisterComponentRequest) -> Result<Self, Invalid> {
        Ok(NewComponent {
            name: r.name,
            role: component_role_from(r.role)?,
            site: r.site,
            address: r.address,
            host_id: r.host_id,
            vm_id: r.vm_id,
            datastore_mounts: r.datastore_mounts.into_iter().map(mount_from).collect(),
        })
    }
}

// ---- groups ----

/// A group's journal settings on the wire.
pub fn journal_pb(j: &JournalSettings) -> pb::JournalSettings {
    pb::JournalSettings {
        keep_all_secs: j.keep_all_secs,
        one_per_secs: j.one_per_secs,
        max_age_secs: j.max_age_secs,
        max_points: j.max_points.map(|n| u64::try_from(n).unwrap_or(u64::MAX)),
        max_bytes: j.max_bytes,
    }
}

/// A group's journal settings from the wire. A point count past `usize`
/// saturates; validation refuses it with the field named.
pub fn journal_from(j: pb::JournalSettings) -> JournalSettings {
    JournalSettings {
        keep_all_secs: j.keep_all_secs,
        one_per_secs: j.one_per_secs,
        max_age_secs: j.max_age_secs,
        max_points: j
            .max_points
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_bytes: j.max_bytes,
    }
}

impl From<&GroupSettings> for pb::GroupSettings {
    fn from(s: &GroupSettings) -> Self {
        pb::GroupSettings {
            master_target: s.master_target.clone(),
            process_server: s.process_server.clone(),
            account: s.account.clone(),
            datastore: s.datastore.clone(),
            retention_hours: s.retention_hours,
            consistency: Some(s.consistency),
            rpo_target_secs: s.rpo_target_secs,
            cycle_interval_secs: s.cycle_interval_secs,
            app_consistent_every: s.app_consistent_every,
            journal: Some(journal_pb(&s.journal)),
        }
    }
}

/// Whole settings from the wire (CreateGroup, and groups the client reads):
/// every unset field is unset, consistency off.
impl From<pb::GroupSettings> for GroupSettings {
    fn from(s: pb::GroupSettings) -> Self {
        GroupSettings {
            master_target: s.master_target,
            process_server: s.process_server,
            account: s.account,
            datastore: s.datastore,
            retention_hours: s.retention_hours,
            consistency: s.consistency.unwrap_or(false),
            rpo_target_secs: s.rpo_target_secs,
            cycle_interval_secs: s.cycle_interval_secs,
            app_consistent_every: s.app_consistent_every,
            journal: s.journal.map(journal_from).unwrap_or_default(),
        }
    }
}

impl From<&Group> for pb::Group {
    fn from(g: &Group) -> Self {
        pb::Group {
            id: g.id,
            name: g.name.clone(),
            direction: direction_pb(&g.direction),
            paired: g.paired.clone(),
            settings: Some((&g.settings).into()),
            created_at: g.created_at,
        }
    }
}

impl TryFrom<pb::Group> for Group {
    type Error = Invalid;
    fn try_from(g: pb::Group) -> Result<Self, Invalid> {
        Ok(Group {
            id: g.id,
            name: g.name,
            direction: direction_from(g.direction)?,
            paired: g.paired,
            settings: g.settings.unwrap_or_default().into(),
            created_at: g.created_at,
        })
    }
}

// ---- items ----

fn vm_ref_pb(v: &VmRef) -> pb::VmRef {
    pb::VmRef {
        site: v.site.clone(),
        vm_id: v.vm_id.clone(),
        name: v.name.clone(),
    }
}

fn vm_ref_from(v: pb::VmRef) -> VmRef {
    VmRef {
        site: v.site,
        vm_id: v.vm_id,
        name: v.name,
    }
}

fn disk_pb(d: &ItemDisk) -> pb::ItemDisk {
    pb::ItemDisk {
        index: d.index,
        capacity: d.capacity,
        source_disk_id: d.source_disk_id.clone(),
        replica_disk_id: d.replica_disk_id.clone(),
        replica_path: d.replica_path.clone(),
    }
}

fn disk_from(d: pb::ItemDisk) -> ItemDisk {
    ItemDisk {
        index: d.index,
        capacity: d.capacity,
        source_disk_id: d.source_disk_id,
        replica_disk_id: d.replica_disk_id,
        replica_path: d.replica_path,
    }
}

fn nic_pb(n: &RecordedNic) -> pb::RecordedNic {
    let fixed = match &n.addressing {
        Addressing::Dhcp => None,
        Addressing::Fixed {
            addresses,
            gateways,
            dns_servers,
            dns_search,
        } => Some(pb::FixedAddressing {
            addresses: addresses
                .iter()
                .map(|(address, prefix)| pb::IpPrefix {
                    address: address.clone(),
                    prefix: u32::from(*prefix),
                })
                .collect(),
            gateways: gateways.clone(),
            dns_servers: dns_servers.clone(),
            dns_search: dns_search.clone(),
        }),
    };
    pb::RecordedNic {
        mac: n.mac.clone(),
        network: n.network.clone(),
        device_name: n.device_name.clone(),
        fixed,
    }
}

fn nic_from(n: pb::RecordedNic) -> Result<RecordedNic, Invalid> {
    let addressing = match n.fixed {
        None => Addressing::Dhcp,
        Some(f) => Addressing::Fixed {
            addresses: f
                .addresses
                .into_iter()
                .map(|p| {
                    let prefix = u8::try_from(p.prefix).map_err(|_| {
                        Invalid(format!(
                            "prefix length {} of {} is out of range",
                            p.prefix, p.address
                        ))
                    })?;
                    Ok((p.address, prefix))
                })
                .collect::<Result<_, Invalid>>()?,
            gateways: f.gateways,
            dns_servers: f.dns_servers,
            dns_search: f.dns_search,
        },
    };
    Ok(RecordedNic {
        mac: n.mac,
        network: n.network,
        device_name: n.device_name,
        addressing,
    })
}

impl From<&Item> for pb::Item {
    fn from(i: &Item) -> Self {
        pb::Item {
            id: i.id,
            name: i.name.clone(),
            group: i.group.clone(),
            source: Some(vm_ref_pb(&i.source)),
            replica: i.replica.as_ref().map(vm_ref_pb),
            physical: i.physical,
            disks: i.disks.iter().map(disk_pb).collect(),
            nics: i.nics.iter().map(nic_pb).collect(),
            state: item_state_pb(&i.state),
            state_detail: i.state_detail.clone(),
            created_at: i.created_at,
            updated_at: i.updated_at,
            rpo_age_secs: None,
            rpo_target_secs: None,
            rpo_alert: false,
            journal_seq: None,
            latest_point_at: None,
        }
    }
}

/// An item with its recovery point objective (what `ListItems` answers).
pub fn item_with_rpo(i: &Item, rpo: &crate::workflow::Rpo) -> pb::Item {
    pb::Item {
        rpo_age_secs: rpo.age_secs,
        rpo_target_secs: rpo.target_secs,
        rpo_alert: rpo.alert,
        journal_seq: rpo.journal_seq,
        latest_point_at: rpo.latest_taken_at,
        ..pb::Item::from(i)
    }
}

impl TryFrom<pb::Item> for Item {
    type Error = Invalid;
    fn try_from(i: pb::Item) -> Result<Self, Invalid> {
        Ok(Item {
            id: i.id,
            name: i.name,
            group: i.group,
            source: vm_ref_from(required(i.source, "an item's source VM")?),
            replica: i.replica.map(vm_ref_from),
            physical: i.physical,
            disks: i.disks.into_iter().map(disk_from).collect(),
            nics: i.nics.into_iter().map(nic_from).collect::<Result<_, _>>()?,
            state: item_state_from(i.state)?,
            state_detail: i.state_detail,
            created_at: i.created_at,
            updated_at: i.updated_at,
        })
    }
}

// ---- plans ----

impl From<&PlanEntry> for pb::PlanEntry {
    fn from(e: &PlanEntry) -> Self {
        use pb::plan_entry::Entry;
        let entry = match e {
            PlanEntry::Group { name } => Entry::Group(name.clone()),
            PlanEntry::Manual { text } => Entry::Manual(text.clone()),
            PlanEntry::Script { command } => Entry::Script(command.clone()),
        };
        pb::PlanEntry { entry: Some(entry) }
    }
}

impl TryFrom<pb::PlanEntry> for PlanEntry {
    type Error = Invalid;
    fn try_from(e: pb::PlanEntry) -> Result<Self, Invalid> {
        use pb::plan_entry::Entry;
        Ok(
            match required(e.entry, "a plan entry (group, manual or script)")? {
                Entry::Group(name) => PlanEntry::Group { name },
                Entry::Manual(text) => PlanEntry::Manual { text },
                Entry::Script(command) => PlanEntry::Script { command },
            },
        )
    }
}

impl From<&Plan> for pb::Plan {
    fn from(p: &Plan) -> Self {
        pb::Plan {
            id: p.id,
            name: p.name.clone(),
            entries: p.entries.iter().map(Into::into).collect(),
            created_at: p.created_at,
        }
    }
}

impl TryFrom<pb::Plan> for Plan {
    type Error = Invalid;
    fn try_from(p: pb::Plan) -> Result<Self, Invalid> {
        Ok(Plan {
            id: p.id,
            name: p.name,
            entries: p
                .entries
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            created_at: p.created_at,
        })
    }
}

// ---- points ----

impl From<&RecoveryPoint> for pb::RecoveryPoint {
    fn from(p: &RecoveryPoint) -> Self {
        pb::RecoveryPoint {
            id: p.id,
            item_id: p.item_id,
            taken_at: p.taken_at,
            kind: point_kind_pb(&p.kind),
            direction: direction_pb(&p.direction),
            consistency_id: p.consistency_id.clone(),
            disks: p
                .disks
                .iter()
                .map(|d| pb::PointDisk {
                    index: d.index,
                    snapshot_id: d.snapshot_id.clone(),
                    digest: d.digest.clone(),
                    journal_seq: d.journal_seq,
                    change_method: d.change_method.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<pb::RecoveryPoint> for RecoveryPoint {
    type Error = Invalid;
    fn try_from(p: pb::RecoveryPoint) -> Result<Self, Invalid> {
        Ok(RecoveryPoint {
            id: p.id,
            item_id: p.item_id,
            taken_at: p.taken_at,
            kind: point_kind_from(p.kind)?,
            direction: direction_from(p.direction)?,
            consistency_id: p.consistency_id,
            disks: p
                .disks
                .into_iter()
                .map(|d| PointDisk {
                    index: d.index,
                    snapshot_id: d.snapshot_id,
                    digest: d.digest,
                    journal_seq: d.journal_seq,
                    change_method: d.change_method,
                })
                .collect(),
        })
    }
}

/// The point a failover request chose (unset: the newest).
pub fn point_choice_from(p: Option<pb::PointChoice>) -> PointChoice {
    use pb::point_choice::Choice;
    match p.and_then(|p| p.choice) {
        None | Some(Choice::Latest(_)) => PointChoice::Latest,
        Some(Choice::LatestApp(_)) => PointChoice::LatestApp,
        Some(Choice::LatestCrash(_)) => PointChoice::LatestCrash,
        Some(Choice::Id(id)) => PointChoice::Id(id),
    }
}

/// A point choice on the wire.
pub fn point_choice_pb(p: PointChoice) -> pb::PointChoice {
    use pb::point_choice::Choice;
    let choice = match p {
        PointChoice::Latest => Choice::Latest(true),
        PointChoice::LatestApp => Choice::LatestApp(true),
        PointChoice::LatestCrash => Choice::LatestCrash(true),
        PointChoice::Id(id) => Choice::Id(id),
    };
    pb::PointChoice {
        choice: Some(choice),
    }
}

// ---- jobs ----

impl From<&StepRecord> for pb::Step {
    fn from(s: &StepRecord) -> Self {
        pb::Step {
            index: s.index,
            name: s.name.clone(),
            state: step_state_pb(&s.state),
            attempts: s.attempts,
            output_json: json_text(&s.output),
            error: s.error.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }
}

impl TryFrom<pb::Step> for StepRecord {
    type Error = Invalid;
    fn try_from(s: pb::Step) -> Result<Self, Invalid> {
        Ok(StepRecord {
            index: s.index,
            output: json_value(&s.output_json, "a step's output")?,
            name: s.name,
            state: step_state_from(s.state)?,
            attempts: s.attempts,
            error: s.error,
            started_at: s.started_at,
            finished_at: s.finished_at,
        })
    }
}

impl From<&JobRecord> for pb::Job {
    fn from(j: &JobRecord) -> Self {
        pb::Job {
            id: j.id,
            kind: j.kind.clone(),
            summary: j.summary.clone(),
            params_json: json_text(&j.params),
            state: job_state_pb(&j.state),
            steps: j.steps.iter().map(Into::into).collect(),
            resources: j.resources.clone(),
            parent: j.parent,
            error: j.error.clone(),
            cancel_requested: j.cancel_requested,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

impl TryFrom<pb::Job> for JobRecord {
    type Error = Invalid;
    fn try_from(j: pb::Job) -> Result<Self, Invalid> {
        Ok(JobRecord {
            id: j.id,
            params: json_value(&j.params_json, "a job's parameters")?,
            kind: j.kind,
            summary: j.summary,
            state: job_state_from(j.state)?,
            steps: j
                .steps
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            resources: j.resources,
            parent: j.parent,
            error: j.error,
            cancel_requested: j.cancel_requested,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        })
    }
}

impl From<&JobEvent> for pb::JobEvent {
    fn from(e: &JobEvent) -> Self {
        pb::JobEvent {
            job_id: e.job_id,
            seq: e.seq,
            at: e.at,
            kind: event_kind_pb(&e.kind),
            step: e.step,
            message: e.message.clone(),
            done_bytes: e.done_bytes,
            total_bytes: e.total_bytes,
        }
    }
}

impl TryFrom<pb::JobEvent> for JobEvent {
    type Error = Invalid;
    fn try_from(e: pb::JobEvent) -> Result<Self, Invalid> {
        Ok(JobEvent {
            job_id: e.job_id,
            seq: e.seq,
            at: e.at,
            kind: event_kind_from(e.kind)?,
            step: e.step,
            message: e.message,
            done_bytes: e.done_bytes,
            total_bytes: e.total_bytes,
        })
    }
}

// ---- discovery ----

/// A summary of an endpoint's inventory: no disk locations, so no blob URL
/// or credential ever leaves the server.
pub fn inventory_pb(site: &str, inv: &crate::plugin::adapter::Inventory) -> pb::Inventory {
    use crate::plugin::adapter::PowerState;
    pb::Inventory {
        site: site.to_string(),
        datacenters: inv.datacenters.clone(),
        hosts: inv
            .hosts
            .iter()
            .map(|h| pb::InventoryHost {
                id: h.id.clone(),
                name: h.name.clone(),
                version: h.version.clone(),
                connected: h.connected,
            })
            .collect(),
        datastores: inv
            .datastores
            .iter()
            .map(|d| pb::InventoryDatastore {
                id: d.id.clone(),
                name: d.name.clone(),
                kind: d.kind.clone(),
                capacity_bytes: d.capacity_bytes,
                free_bytes: d.free_bytes,
                accessible: d.accessible,
            })
            .collect(),
        networks: inv
            .networks
            .iter()
            .map(|n| pb::InventoryNetwork {
                id: n.id.clone(),
                name: n.name.clone(),
                kind: n.kind.clone(),
            })
            .collect(),
        vms: inv
            .vms
            .iter()
            .map(|vm| pb::InventoryVm {
                id: vm.id.clone(),
                name: vm.name.clone(),
                power: match vm.power {
                    PowerState::PoweredOn => "powered-on",
                    PowerState::PoweredOff => "powered-off",
                    PowerState::Suspended => "suspended",
                    PowerState::Unknown => "unknown",
                }
                .to_string(),
                guest_os: vm.guest_os.clone(),
                host_id: vm.host_id.clone(),
                disks: u32::try_from(vm.disks.len()).unwrap_or(u32::MAX),
                capacity_bytes: vm.disks.iter().map(|d| d.capacity_bytes).sum(),
                macs: vm.nics.iter().map(|n| n.mac.clone()).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unspecified_is_refused_with_the_choices() {
        for d in [Direction::ToCloud, Direction::ToOnPremises] {
            assert_eq!(direction_from(direction_pb(&d)).unwrap(), d);
        }
        let e = direction_from(0).unwrap_err();
        assert!(e.0.contains("DIRECTION_TO_CLOUD"), "{e}");
        assert!(event_kind_from(99).is_err());
    }

    #[test]
    fn a_fixed_nic_round_trips() {
        let nic = RecordedNic {
            mac: "00:50:56:aa:bb:cc".into(),
            network: Some("VM Network".into()),
            device_name: None,
            addressing: Addressing::Fixed {
                addresses: vec![("192.168.10.5".into(), 24)],
                gateways: vec!["192.168.10.1".into()],
                dns_servers: vec![],
                dns_search: vec!["lab".into()],
            },
        };
        assert_eq!(nic_from(nic_pb(&nic)).unwrap(), nic);
        let mut bad = nic_pb(&nic);
        bad.fixed.as_mut().unwrap().addresses[0].prefix = 300;
        assert!(nic_from(bad).is_err());
    }
}
