//! Readiness checks: what would stop a reprotect or a failback on this
//! endpoint, found before any data moves. Every finding is `blocking` and
//! says what is wrong, how to fix it, and the details (missing privileges,
//! snapshot names, the licence edition, the setting, the datastore and host).

use crate::convert::{self, ENABLE_UUID_KEY};
use crate::props::Object;
use crate::{authz, client, inventory, licence};
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

/// Every finding for `request`. Objects it names that the endpoint lacks are
/// `not-found`; an unknown operation is `invalid-input`.
pub fn findings(request: &ReadinessRequest, now_ms: u64) -> Result<Vec<Finding>, Error> {
    let op = request.operation.as_str();
    if !OPERATIONS.contains(&op) {
        return Err(Error::invalid_input(format!(
            "readiness knows the operations `reprotect` and `failback`, not {op:?}"
        )));
    }
    let vm = request
        .vm_id
        .as_deref()
        .map(inventory::vm_object)
        .transpose()?;
    let master = request
        .master_target_vm_id
        .as_deref()
        .map(inventory::vm_object)
        .transpose()?;
    let master_host_id = request.master_target_host_id.clone().or_else(|| {
        master
            .as_ref()
            .and_then(|m| m.moref("runtime.host"))
            .map(|h| h.value)
    });
    let master_host = master_host_id
        .as_deref()
        .map(inventory::host_object)
        .transpose()?;
    let datastore = request
        .datastore_id
        .as_deref()
        .map(inventory::datastore_object)
        .transpose()?;

    let mut out = Vec::new();
    let session = client::session()?;

    let missing = authz::missing_required()?;
    if !missing.is_empty() {
        out.push(blocking(
            "privileges",
            format!(
                "account {} lacks {} of the privileges Homeward needs on {}",
                session.settings.user,
                missing.len(),
                session.settings.url
            ),
            "add the listed privileges to the account's role, assigned on the root of the inventory \
             with propagation, or use an account that has them"
                .to_string(),
            missing,
        ));
    }

    if op == "reprotect"
        && let Some(vm) = &vm
    {
        let snapshots = convert::snapshots(vm);
        if !snapshots.is_empty() {
            out.push(blocking(
                "snapshots",
                format!(
                    "VM {} ({}) has {} snapshot(s); reprotect replicates its disks and cannot start while snapshots exist",
                    vm.string("name"),
                    vm.obj.value,
                    snapshots.len()
                ),
                "delete the VM's snapshots (Snapshots → Manage Snapshots → Delete All), then run readiness again"
                    .to_string(),
                snapshots.into_iter().map(|s| s.name).collect(),
            ));
        }
    }

    let l = licence::get()?;
    if op == "failback" && l.free {
        out.push(blocking(
            "licence",
            format!(
                "the endpoint runs a free licence ({}, edition {}) whose API refuses the changes failback makes",
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
            format!("the endpoint's licence ({}) expired", l.product),
            "assign a valid licence to the hosts, then run readiness again".to_string(),
            vec![l.edition.clone()],
        ));
    }

    if let Some(m) = &master {
        disk_uuid(m, &mut out);
    }

    if let (Some(host), Some(ds)) = (&master_host, &datastore)
        && !host.morefs("datastore").iter().any(|d| d == &ds.obj)
    {
        let mounted: Vec<String> = host
            .morefs("datastore")
            .into_iter()
            .map(|d| d.value)
            .collect();
        out.push(blocking(
            "datastore-reach",
            format!(
                "datastore {} ({}) is not mounted by host {} ({}), where the master target runs, so it cannot reach the new disks",
                ds.string("name"),
                ds.obj.value,
                host.string("name"),
                host.obj.value
            ),
            format!(
                "mount {} on {}, or pick a datastore it mounts: {}",
                ds.string("name"),
                host.string("name"),
                mounted.join(", ")
            ),
            vec![ds.obj.value.clone(), host.obj.value.clone()],
        ));
    }
    Ok(out)
}

/// S15: the master target must expose disk UUIDs to tell attached disks apart.
fn disk_uuid(master: &Object, out: &mut Vec<Finding>) {
    let extra = convert::extra_config(master);
    let value = extra
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(ENABLE_UUID_KEY))
        .map(|(_, v)| v.clone());
    if value
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return;
    }
    let name = master.string("name");
    out.push(blocking(
        "disk-uuid",
        format!(
            "master target VM {name} ({}) does not have {ENABLE_UUID_KEY} = TRUE, so it cannot tell the disks Homeward attaches apart",
            master.obj.value
        ),
        format!(
            "power off VM {name} and set the advanced configuration parameter {ENABLE_UUID_KEY} = TRUE \
             (Edit Settings → VM Options → Advanced → Configuration Parameters), then power it on"
        ),
        vec![format!(
            "{ENABLE_UUID_KEY}={}",
            value.as_deref().unwrap_or("<unset>")
        )],
    ));
}
