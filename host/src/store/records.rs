//! The records the state store keeps: what callers hand in (`New*`) and what
//! they get back (with ids and times). They are plain serde types so the
//! control API, the CLI (`--json`) and the store's JSON columns share one
//! shape. Every enum has a kebab-case text form (`as_str`, `FromStr`,
//! `Display`) that is also its serde form and the form stored in SQLite.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that names no variant of one of the store's enums (e.g. a bad
/// `--direction` on the command line, or a damaged row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} \"{found}\": expected one of {}", expected.join(", "))]
pub struct ParseEnumError {
    /// What was being parsed ("direction", "job state"...).
    pub what: &'static str,
    /// The text that did not match.
    pub found: String,
    /// Every accepted text.
    pub expected: &'static [&'static str],
}

/// Defines a field-less enum whose kebab-case text is its serde form, its
/// `as_str`, its `Display` and what `FromStr` accepts, so the four can never
/// disagree.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The kebab-case text (also the serde and stored form).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseEnumError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(ParseEnumError {
                        what: $what,
                        found: text.to_string(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// Who this configuration server is. Created once, with the store; a restore
/// brings back the identity of the backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// `"hw-"` and 16 random hex digits.
    pub server_id: String,
    /// When the store was first created.
    pub created_at: u64,
    /// The schema version of the store file.
    pub schema_version: u32,
}

/// A backup file that was written and checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub server_id: String,
    pub schema_version: u32,
}

// ---------------------------------------------------------------- sites

text_enum! {
    /// Which side of the failover a site is.
    pub enum SiteKind ("site kind") {
        OnPremises = "on-premises",
        Cloud = "cloud",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSite {
    pub name: String,
    pub kind: SiteKind,
    /// The id of the adapter plugin in the server's plugin set.
    pub plugin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub kind: SiteKind,
    pub plugin: String,
    pub created_at: u64,
}

// ---------------------------------------------------------------- components

text_enum! {
    /// What a data-path component does.
    pub enum ComponentRole ("component role") {
        ProcessServer = "process-server",
        MasterTarget = "master-target",
    }
}

text_enum! {
    /// Where a component's registration stands (S19: it is asynchronous and
    /// visible).
    pub enum ComponentState ("component state") {
        Registering = "registering",
        Registered = "registered",
        Unreachable = "unreachable",
        Failed = "failed",
    }
}

/// Where a datastore is on a master target's file system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatastoreMount {
    /// The datastore's name.
    pub datastore: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewComponent {
    pub name: String,
    pub role: ComponentRole,
    pub site: String,
    /// `host:port` of its gRPC service, or `"local"` when it runs in this process.
    pub address: String,
    /// Master target: the hypervisor host it runs on.
    pub host_id: Option<String>,
    /// Master target: its own VM.
    pub vm_id: Option<String>,
    /// Master target: where each datastore is on its file system.
    pub datastore_mounts: Vec<DatastoreMount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub id: i64,
    pub name: String,
    pub role: ComponentRole,
    pub site: String,
    pub address: String,
    pub host_id: Option<String>,
    pub vm_id: Option<String>,
    pub datastore_mounts: Vec<DatastoreMount>,
    pub state: ComponentState,
    /// Why it is in that state (empty when there is nothing to say).
    pub detail: String,
    pub registered_at: u64,
    pub last_heartbeat: Option<u64>,
}

// ---------------------------------------------------------------- groups

text_enum! {
    /// Which way a group replicates or a failover goes.
    pub enum Direction ("direction") {
        ToCloud = "to-cloud",
        ToOnPremises = "to-on-premises",
    }
}

/// What the operator chooses for a (failback) group (S1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupSettings {
    pub master_target: Option<String>,
    pub process_server: Option<String>,
    pub account: Option<String>,
    pub datastore: Option<String>,
    pub retention_hours: Option<u32>,
    /// Multi-VM consistency: recovery points taken together across the group.
    pub consistency: bool,
    /// Recovery point objective: the item's RPO alert is on while its
    /// latest point is older than this.
    #[serde(default)]
    pub rpo_target_secs: Option<u64>,
    /// Continuous replication: a replication cycle of each item (or of the
    /// whole group with consistency on) every this many seconds.
    #[serde(default)]
    pub cycle_interval_secs: Option<u64>,
    /// Every Nth cycle asks for an app-consistent point (when the source
    /// can quiesce; cloud snapshots are crash-consistent).
    #[serde(default)]
    pub app_consistent_every: Option<u32>,
    /// What the master target's journal keeps of the recovery points.
    #[serde(default)]
    pub journal: JournalSettings,
}

/// Retention of a group's journals (each field: the journal's default when
/// unset: every point for 2 hours, then one an hour, for 24 hours, no cap).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalSettings {
    /// Every point younger than this is kept.
    #[serde(default)]
    pub keep_all_secs: Option<u64>,
    /// Older points are thinned to one per period of this length.
    #[serde(default)]
    pub one_per_secs: Option<u64>,
    /// Points older than this are dropped (unset: the group's
    /// `retention_hours`, else 24 hours).
    #[serde(default)]
    pub max_age_secs: Option<u64>,
    /// At most this many points.
    #[serde(default)]
    pub max_points: Option<usize>,
    /// Size cap of each disk's journal, in bytes (oldest points dropped
    /// early, with an alarm, above it).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewGroup {
    pub name: String,
    pub direction: Direction,
    pub settings: GroupSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub direction: Direction,
    /// The other group of the pair ("PG1" ↔ "PG1_Failback"), if any.
    pub paired: Option<String>,
    pub settings: GroupSettings,
    pub created_at: u64,
}

// ---------------------------------------------------------------- items

text_enum! {
    /// Where a protected item stands.
    pub enum ItemState ("item state") {
        Protecting = "protecting",
        Protected = "protected",
        FailedOver = "failed-over",
        Committed = "committed",
        Failed = "failed",
    }
}

/// A VM on a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRef {
    pub site: String,
    pub vm_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemDisk {
    pub index: u32,
    pub capacity: u64,
    /// On the side being protected.
    pub source_disk_id: String,
    /// On the other side, once it exists.
    pub replica_disk_id: Option<String>,
    /// Host path of the replica (master target view), once known.
    pub replica_path: Option<String>,
}

/// How a NIC got its addresses when the item was protected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Addressing {
    Dhcp,
    Fixed {
        /// (address, prefix length).
        addresses: Vec<(String, u8)>,
        gateways: Vec<String>,
        dns_servers: Vec<String>,
        dns_search: Vec<String>,
    },
}

/// A NIC as recorded at protection (S16, S17).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedNic {
    pub mac: String,
    pub network: Option<String>,
    pub device_name: Option<String>,
    pub addressing: Addressing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewItem {
    pub name: String,
    pub group: String,
    pub source: VmRef,
    pub physical: bool,
    pub disks: Vec<ItemDisk>,
    pub nics: Vec<RecordedNic>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub group: String,
    pub source: VmRef,
    pub replica: Option<VmRef>,
    pub physical: bool,
    pub disks: Vec<ItemDisk>,
    pub nics: Vec<RecordedNic>,
    pub state: ItemState,
    pub state_detail: String,
    pub created_at: u64,
    pub updated_at: u64,
}

// ---------------------------------------------------------------- plans

/// One line of a recovery plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanEntry {
    /// Fail over (or back) every item of a protection group.
    Group { name: String },
    /// A step the operator does by hand; the plan waits for confirmation.
    Manual { text: String },
    /// A command run on the configuration server.
    Script { command: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: i64,
    pub name: String,
    pub entries: Vec<PlanEntry>,
    pub created_at: u64,
}

// ---------------------------------------------------------------- points

text_enum! {
    /// How consistent a recovery point is.
    pub enum PointKind ("point kind") {
        CrashConsistent = "crash-consistent",
        AppConsistent = "app-consistent",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointDisk {
    pub index: u32,
    pub snapshot_id: String,
    /// Whole-disk BLAKE3 hex, once known.
    pub digest: Option<String>,
    /// The point's sequence number in the disk's journal on the master
    /// target (continuous replication), when it has one there.
    #[serde(default)]
    pub journal_seq: Option<u64>,
    /// How the cycle found the changed blocks (`digest-resync`, or the
    /// adapter's change-tracking method).
    #[serde(default)]
    pub change_method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewPoint {
    pub item_id: i64,
    pub taken_at: u64,
    pub kind: PointKind,
    pub direction: Direction,
    /// Shared by the points of a multi-VM consistent set.
    pub consistency_id: Option<String>,
    pub disks: Vec<PointDisk>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecoveryPoint {
    pub id: i64,
    pub item_id: i64,
    pub taken_at: u64,
    pub kind: PointKind,
    pub direction: Direction,
    pub consistency_id: Option<String>,
    pub disks: Vec<PointDisk>,
}

// ---------------------------------------------------------------- split-brain guard

text_enum! {
    /// A side of a protected item's disks.
    pub enum Side ("side") {
        OnPremises = "on-premises",
        Cloud = "cloud",
    }
}

/// DRBD-like generation of one disk on one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskGeneration {
    pub item_id: i64,
    pub disk_index: u32,
    pub side: Side,
    /// Random id, new each time that side becomes primary.
    pub generation: String,
    /// Whole-disk BLAKE3 hex of that side when it stopped being primary.
    pub fingerprint: Option<String>,
    pub recorded_at: u64,
}

// ---------------------------------------------------------------- jobs

text_enum! {
    /// Where a job stands.
    pub enum JobState ("job state") {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl JobState {
    /// Succeeded, Failed or Cancelled: the job will not run again.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

text_enum! {
    /// Where one step of a job stands.
    pub enum StepState ("step state") {
        Pending = "pending",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Skipped = "skipped",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub kind: String,
    pub params: serde_json::Value,
    /// Step names, unique, in order.
    pub steps: Vec<String>,
    /// Concurrency keys: "ps:NAME", "mt:NAME", "host:ID".
    pub resources: Vec<String>,
    pub parent: Option<i64>,
    /// One line for tables: "reprotect web01 → on-premises".
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: u32,
    pub name: String,
    pub state: StepState,
    pub attempts: u32,
    /// `Null` until the step is done.
    pub output: serde_json::Value,
    pub error: Option<String>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: i64,
    pub kind: String,
    pub summary: String,
    pub params: serde_json::Value,
    pub state: JobState,
    pub steps: Vec<StepRecord>,
    pub resources: Vec<String>,
    pub parent: Option<i64>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: u64,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

/// Which jobs `Store::jobs` lists; the default lists all of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub limit: Option<usize>,
}

text_enum! {
    /// What a job event reports.
    pub enum EventKind ("event kind") {
        JobStarted = "job-started",
        StepStarted = "step-started",
        Progress = "progress",
        StepDone = "step-done",
        StepRetry = "step-retry",
        StepFailed = "step-failed",
        Log = "log",
        JobFinished = "job-finished",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJobEvent {
    pub job_id: i64,
    pub kind: EventKind,
    pub step: Option<u32>,
    pub message: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: i64,
    /// 1, 2, ... per job.
    pub seq: u64,
    pub at: u64,
    pub kind: EventKind,
    pub step: Option<u32>,
    pub message: String,
    pub done_bytes: u64,
    pub total_bytes: u64,
}

// ---------------------------------------------------------------- tokens

text_enum! {
    /// What an API token may do.
    pub enum Role ("role") {
        /// Everything.
        Operator = "operator",
        /// Get*, List*, Watch* and Discover only.
        ReadOnly = "read-only",
    }
}
