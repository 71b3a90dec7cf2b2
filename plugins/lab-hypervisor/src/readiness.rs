//! Readiness checks: what would stop a reprotect or a failback on this site,
//! found before any data moves.
//!
//! The findings themselves are the vSphere adapter's
//! (`homeward_vsphere::findings`), so the lab says what a vCenter would.

use crate::format::{Account, ENABLE_UUID_KEY};
use crate::privileges::{self, HOMEWARD_REQUIRED};
use crate::store::Lab;
use homeward_sdk::Error;
use homeward_sdk::hypervisor_adapter::exports::homeward::plugin::hypervisor::ReadinessRequest;
use homeward_sdk::types::Finding;
use homeward_vsphere::findings::{self, LicenceFacts, Named};

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
    findings::check_operation(op)?;
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
    out.extend(findings::privileges(
        &format!("lab user {}", account.user),
        missing.iter().map(|p| p.to_string()).collect(),
    ));
    if let Some(vm) = &vm {
        let names = vm.config.snapshots.iter().map(|s| s.name.clone()).collect();
        out.extend(findings::snapshots(
            op,
            &vm.config.name,
            &vm.config.id,
            names,
        ));
    }
    let l = &lab.site.licence;
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
        let value = m
            .config
            .extra_config
            .get(ENABLE_UUID_KEY)
            .map(String::as_str);
        out.extend(findings::disk_uuid(&m.config.name, &m.config.id, value));
    }
    if let (Some(host), Some(ds)) = (&master_host, datastore)
        && !host.datastores.contains(&ds.id)
    {
        out.push(findings::datastore_reach(
            Named {
                name: &ds.name,
                id: &ds.id,
            },
            Named {
                name: &host.name,
                id: &host.id,
            },
            &host.datastores,
        ));
    }
    Ok(out)
}
