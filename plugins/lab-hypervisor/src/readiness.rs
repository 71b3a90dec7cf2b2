//! Readiness checks: what would stop a reprotect or a failback on this site,
//! found before any data moves.

use crate::format::{Account, ENABLE_UUID_KEY};
use crate::privileges::{self, HOMEWARD_REQUIRED};
use crate::store::Lab;
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::ReadinessRequest;
use homeward_sdk::types::{Finding, Severity};

/// The operations readiness knows.
const OPERATIONS: [&str; 2] = ["reprotect", "failback"];

fn blocking(check: &str, message: String, remedy: String, details: Vec<String>) -> Finding {
    Finding {
        check: check.to_string(),
        severity: Severity::Blocking,
        message,
        remedy,
        details,
    }
}

/// Every finding for `request`, checked as `account`. Objects the request
/// names but the site lacks are `not-found`; an unknown operation is
/// `invalid-input`.
pub fn findings(
    lab: &Lab,
    account: &Account,
    request: &ReadinessRequest,
    now_ms: u64,
) -> Result<Vec<Finding>, Error> {
    let op = request.operation.as_str();
    if !OPERATIONS.contains(&op) {
        return Err(Error::invalid_input(format!(
            "readiness knows the operations `reprotect` and `failback`, not {op:?}"
        )));
    }
    let vm = request.vm_id.as_deref().map(|id| lab.vm(id)).transpose()?;
    let master = request
        .master_target_vm_id
        .as_deref()
        .map(|id| lab.vm(id))
        .transpose()?;
    let master_host = match (&request.master_target_host_id, &master) {
        (Some(id), _) => Some(lab.host(id)?.clone()),
        (None, Some(m)) => Some(lab.host(&m.config.host)?.clone()),
        (None, None) => None,
    };
    let datastore = request
        .datastore_id
        .as_deref()
        .map(|id| lab.datastore(id))
        .transpose()?;

    let mut out = Vec::new();

    let missing = privileges::missing(HOMEWARD_REQUIRED, &account.privileges);
    if !missing.is_empty() {
        out.push(blocking(
            "privileges",
            format!(
                "lab user {} lacks {} of the privileges Homeward needs",
                account.user,
                missing.len()
            ),
            "add the listed privileges to the account's role (on the whole inventory), \
             or use an account that has them"
                .to_string(),
            missing.iter().map(|p| p.to_string()).collect(),
        ));
    }

    if op == "reprotect"
        && let Some(vm) = &vm
        && !vm.config.snapshots.is_empty()
    {
        out.push(blocking(
            "snapshots",
            format!(
                "VM {} ({}) has {} snapshot(s); reprotect replicates its disks and cannot start while snapshots exist",
                vm.config.name,
                vm.config.id,
                vm.config.snapshots.len()
            ),
            "delete the VM's snapshots (Snapshot Manager → Delete All), then run readiness again"
                .to_string(),
            vm.config.snapshots.iter().map(|s| s.name.clone()).collect(),
        ));
    }

    let l = &lab.site.licence;
    if op == "failback" && l.free {
        out.push(blocking(
            "licence",
            format!(
                "the site runs a free licence ({}, edition {}) whose API refuses the changes failback makes",
                l.product, l.edition
            ),
            "assign a paid vSphere licence (Standard or better) to the hosts, then run readiness again"
                .to_string(),
            vec![l.edition.clone()],
        ));
    }
    if let Some(expiry) = l.expires_at
        && expiry <= now_ms
    {
        out.push(blocking(
            "licence",
            format!("the site's licence ({}) expired", l.product),
            "assign a valid licence to the hosts, then run readiness again".to_string(),
            vec![l.edition.clone()],
        ));
    }

    if let Some(m) = &master {
        let value = m.config.extra_config.get(ENABLE_UUID_KEY);
        if !value.is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            out.push(blocking(
                "disk-uuid",
                format!(
                    "master target VM {} ({}) does not have {ENABLE_UUID_KEY} = TRUE, so it cannot tell the disks Homeward attaches apart",
                    m.config.name, m.config.id
                ),
                format!(
                    "power off VM {} and set the advanced configuration parameter {ENABLE_UUID_KEY} = TRUE \
                     (Edit Settings → VM Options → Advanced → Configuration Parameters), then power it on",
                    m.config.name
                ),
                vec![format!(
                    "{ENABLE_UUID_KEY}={}",
                    value.map(String::as_str).unwrap_or("<unset>")
                )],
            ));
        }
    }

    if let (Some(host), Some(ds)) = (&master_host, datastore)
        && !host.datastores.contains(&ds.id)
    {
        out.push(blocking(
            "datastore-reach",
            format!(
                "datastore {} ({}) is not mounted by host {} ({}), where the master target runs, so it cannot reach the new disks",
                ds.name, ds.id, host.name, host.id
            ),
            format!(
                "mount {} on {}, or pick a datastore it mounts: {}",
                ds.name,
                host.name,
                host.datastores.join(", ")
            ),
            vec![ds.id.clone(), host.id.clone()],
        ));
    }

    Ok(out)
}
