//! The readiness findings of S5 and S12–S15, built from plain facts, so the
//! vSphere adapter (`readiness.rs`) and the lab hypervisor say the same thing
//! the same way. Every finding is `blocking`: it says what is wrong, how to
//! fix it, and the details an operator acts on.

use homeward_sdk::Error;
use homeward_sdk::types::{Finding, Severity};

/// The operations readiness knows.
pub const OPERATIONS: [&str; 2] = ["reprotect", "failback"];

/// The setting S15 needs on the master target VM.
pub const ENABLE_UUID_KEY: &str = "disk.EnableUUID";

/// Refuses an operation readiness does not know.
pub fn check_operation(op: &str) -> Result<(), Error> {
    if OPERATIONS.contains(&op) {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "readiness knows the operations `reprotect` and `failback`, not {op:?}"
        )))
    }
}

fn blocking(check: &str, message: String, remedy: String, details: Vec<String>) -> Finding {
    Finding {
        check: check.to_string(),
        severity: Severity::Blocking,
        message,
        remedy,
        details,
    }
}

/// S12: `account` (e.g. "account admin on https://vc/sdk") lacks `missing`.
pub fn privileges(account: &str, missing: Vec<String>) -> Option<Finding> {
    (!missing.is_empty()).then(|| {
        blocking(
            "privileges",
            format!(
                "{account} lacks {} of the privileges Homeward needs",
                missing.len()
            ),
            "add the listed privileges to the account's role, assigned on the root of the inventory \
             with propagation, or use an account that has them"
                .to_string(),
            missing,
        )
    })
}

/// S13: VM `name` (`id`) has the snapshots `names`; reprotect waits for them to go.
pub fn snapshots(op: &str, name: &str, id: &str, names: Vec<String>) -> Option<Finding> {
    (op == "reprotect" && !names.is_empty()).then(|| {
        blocking(
            "snapshots",
            format!(
                "VM {name} ({id}) has {} snapshot(s); reprotect replicates its disks and cannot start while snapshots exist",
                names.len()
            ),
            "delete the VM's snapshots (Snapshots → Manage Snapshots → Delete All), then run readiness again"
                .to_string(),
            names,
        )
    })
}

/// The facts S14 looks at.
pub struct LicenceFacts<'a> {
    /// Product name.
    pub product: &'a str,
    /// Edition key.
    pub edition: &'a str,
    /// Whether it is a free licence (read-only API for Homeward's changes).
    pub free: bool,
    /// Expiry, if it expires.
    pub expires_at: Option<u64>,
}

/// S14: a free licence refuses failback; an expired one refuses everything.
pub fn licence(op: &str, licence: &LicenceFacts<'_>, now_ms: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    if op == "failback" && licence.free {
        out.push(blocking(
            "licence",
            format!(
                "the endpoint runs a free licence ({}, edition {}) whose API refuses the changes failback makes",
                licence.product, licence.edition
            ),
            "assign a paid vSphere licence (Standard or better) to the hosts, then run readiness again"
                .to_string(),
            vec![licence.edition.to_string()],
        ));
    }
    if licence.expires_at.is_some_and(|expiry| expiry <= now_ms) {
        out.push(blocking(
            "licence",
            format!("the endpoint's licence ({}) expired", licence.product),
            "assign a valid licence to the hosts, then run readiness again".to_string(),
            vec![licence.edition.to_string()],
        ));
    }
    out
}

/// S15: the master target VM `name` (`id`) must have `disk.EnableUUID = TRUE`
/// (`value` is what it has) to tell the disks Homeward attaches apart.
pub fn disk_uuid(name: &str, id: &str, value: Option<&str>) -> Option<Finding> {
    if value.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    Some(blocking(
        "disk-uuid",
        format!(
            "master target VM {name} ({id}) does not have {ENABLE_UUID_KEY} = TRUE, so it cannot tell the disks Homeward attaches apart"
        ),
        format!(
            "power off VM {name} and set the advanced configuration parameter {ENABLE_UUID_KEY} = TRUE \
             (Edit Settings → VM Options → Advanced → Configuration Parameters), then power it on"
        ),
        vec![format!("{ENABLE_UUID_KEY}={}", value.unwrap_or("<unset>"))],
    ))
}

/// A datastore or host, by name and id, for S5.
pub struct Named<'a> {
    /// Display name.
    pub name: &'a str,
    /// Endpoint id.
    pub id: &'a str,
}

/// S5: the chosen datastore must be mounted by the master target's host;
/// `mounted` lists the datastores the host does mount.
pub fn datastore_reach(datastore: Named<'_>, host: Named<'_>, mounted: &[String]) -> Finding {
    blocking(
        "datastore-reach",
        format!(
            "datastore {} ({}) is not mounted by host {} ({}), where the master target runs, so it cannot reach the new disks",
            datastore.name, datastore.id, host.name, host.id
        ),
        format!(
            "mount {} on {}, or pick a datastore it mounts: {}",
            datastore.name,
            host.name,
            mounted.join(", ")
        ),
        vec![datastore.id.to_string(), host.id.to_string()],
    )
}
