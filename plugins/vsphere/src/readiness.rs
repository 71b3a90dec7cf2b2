//! Readiness checks: what would stop a reprotect or a failback on this
//! endpoint, found before any data moves. Every finding is `blocking` and
//! says what is wrong, how to fix it, and the details (missing privileges,
//! snapshot names, the licence edition, the setting, the datastore and host).

use crate::convert::{self, ENABLE_UUID_KEY};
use crate::findings::{self, LicenceFacts, Named};
use crate::{authz, client, inventory, licence};
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::ReadinessRequest;
use homeward_sdk::types::Finding;

/// Every finding for `request`. Objects it names that the endpoint lacks are
/// `not-found`; an unknown operation is `invalid-input`.
pub fn findings(request: &ReadinessRequest, now_ms: u64) -> Result<Vec<Finding>, Error> {
    let op = request.operation.as_str();
    findings::check_operation(op)?;
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
    let account = format!(
        "account {} on {}",
        session.settings.user, session.settings.url
    );
    out.extend(findings::privileges(&account, authz::missing_required()?));
    if let Some(vm) = &vm {
        let names = convert::snapshots(vm).into_iter().map(|s| s.name).collect();
        out.extend(findings::snapshots(
            op,
            &vm.string("name"),
            &vm.obj.value,
            names,
        ));
    }
    let l = licence::get()?;
    out.extend(findings::licence(
        op,
        &LicenceFacts {
            product: &l.product,
            edition: &l.edition,
            free: l.free,
            expires_at: l.expires_at,
        },
        now_ms,
    ));
    if let Some(m) = &master {
        let extra = convert::extra_config(m);
        let value = extra
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(ENABLE_UUID_KEY))
            .map(|(_, v)| v.as_str());
        out.extend(findings::disk_uuid(&m.string("name"), &m.obj.value, value));
    }
    if let (Some(host), Some(ds)) = (&master_host, &datastore)
        && !host.morefs("datastore").iter().any(|d| d == &ds.obj)
    {
        let mounted: Vec<String> = host
            .morefs("datastore")
            .into_iter()
            .map(|d| d.value)
            .collect();
        out.push(findings::datastore_reach(
            Named {
                name: &ds.string("name"),
                id: &ds.obj.value,
            },
            Named {
                name: &host.string("name"),
                id: &host.obj.value,
            },
            &mounted,
        ));
    }
    Ok(out)
}
