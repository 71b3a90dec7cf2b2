//! What the operator asks of each workflow: the job parameters, stored with
//! the job as JSON so a resumed job runs exactly what was asked.

use crate::store::Direction;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Reprotect: replicate an item's VM to the other side (S1, S3, S4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReprotectParams {
    /// The protected item (the VM's name).
    pub item: String,
    /// Where the replica goes: `to-on-premises` (failback) or `to-cloud`.
    pub direction: Direction,
    /// The group the item joins; default: the group of that direction paired
    /// with the item's group (`PG1` → `PG1_Failback`).
    #[serde(default)]
    pub group: Option<String>,
    /// The master target (on-premises failback: its host and datastores).
    #[serde(default)]
    pub master_target: Option<String>,
    /// The process server that reads the source.
    #[serde(default)]
    pub process_server: Option<String>,
    /// The account the adapter works as (recorded; the plugin set holds its secret).
    #[serde(default)]
    pub account: Option<String>,
    /// The datastore for an alternate-location failback.
    #[serde(default)]
    pub datastore: Option<String>,
    /// How long recovery points are kept.
    #[serde(default)]
    pub retention_hours: Option<u32>,
    /// Overwrite an on-premises disk that changed after the failover to the
    /// cloud (the split-brain guard refuses otherwise).
    #[serde(default)]
    pub allow_overwrite: bool,
}

/// Which recovery point a failover brings up (S2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointChoice {
    /// The newest point.
    Latest,
    /// The newest app-consistent point.
    LatestApp,
    /// The newest crash-consistent point.
    LatestCrash,
    /// A given point.
    Id(i64),
}

impl fmt::Display for PointChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointChoice::Latest => f.write_str("latest"),
            PointChoice::LatestApp => f.write_str("latest-app"),
            PointChoice::LatestCrash => f.write_str("latest-crash"),
            PointChoice::Id(id) => write!(f, "{id}"),
        }
    }
}

impl FromStr for PointChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "latest" => Ok(PointChoice::Latest),
            "latest-app" => Ok(PointChoice::LatestApp),
            "latest-crash" => Ok(PointChoice::LatestCrash),
            other => other.parse::<i64>().map(PointChoice::Id).map_err(|_| {
                format!(
                    "`{other}` is not a recovery point: say latest, latest-app, latest-crash or a point id"
                )
            }),
        }
    }
}

impl Serialize for PointChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PointChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
            Raw::Number(id) => Ok(PointChoice::Id(id)),
        }
    }
}

/// Failover of a recovery plan's groups of one direction (S2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverParams {
    /// The recovery plan.
    pub plan: String,
    /// The direction the operator confirmed.
    pub direction: Direction,
    /// The point to bring up.
    pub point: PointChoice,
    /// Planned: shut the source down and sync it one last time first, so no
    /// data is lost. Unplanned: the source may be gone; use the point as is.
    #[serde(default)]
    pub planned: bool,
    /// The operator confirmed the direction.
    #[serde(default)]
    pub confirm: bool,
    /// The cloud subnet for VMs that have no cloud VM yet (failover to the cloud).
    #[serde(default)]
    pub network: Option<String>,
}

/// Commit a failover, then reprotect the other way (S3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitParams {
    /// The recovery plan.
    pub plan: String,
    /// The direction of the failover being committed.
    pub direction: Direction,
    /// Delete the stopped VM the failover left behind (its disks are kept:
    /// they are the replica of the reprotect).
    #[serde(default)]
    pub delete_source_vm: bool,
}

/// A failover drill into an isolated network, cleaned up afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestFailoverParams {
    /// The recovery plan.
    pub plan: String,
    /// The direction to drill.
    pub direction: Direction,
    /// The point to bring up.
    pub point: PointChoice,
    /// The isolated network (default: `Replication` on premises, `test` in the cloud).
    #[serde(default)]
    pub network: Option<String>,
    /// Delete the drill's VMs and disks at the end.
    #[serde(default)]
    pub cleanup: bool,
}
