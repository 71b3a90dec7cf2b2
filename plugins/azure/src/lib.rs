//! # The Azure cloud adapter
//!
//! Homeward's `cloud-adapter` for Azure: compute over the Azure Resource
//! Manager REST API (`Microsoft.Compute` api-version **2023-03-01**,
//! `Microsoft.Network` **2023-05-01**, resource groups `Microsoft.Resources`
//! 2021-04-01) with a bearer token from the OAuth2 client-credentials flow,
//! and disks as page blobs in VHD-fixed format over the Blob service REST
//! API (`x-ms-version` 2021-08-06) with a Shared Key or a SAS. Everything
//! goes through `wasi:http` and the host's allow-list. Its semantics and
//! error kinds are the lab cloud's (`plugins/lab-cloud`), so the cloud
//! conformance suite means the same thing for both.
//!
//! ## Configuration
//!
//! | key | kind | meaning |
//! |---|---|---|
//! | `subscription-id` | config | subscription (also `connect`'s instance id) |
//! | `resource-group` | config | resource group `connect` checks and `create-vm` creates in |
//! | `arm-endpoint` | config | ARM base URL (default `https://management.azure.com`); `url` (what `plugin test --target` sets) is used when it is absent |
//! | `token-endpoint` | config | OAuth2 v2.0 token URL (default `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`, `{tenant}` = `tenant-id`) |
//! | `tenant-id`, `client-id` | config | the service principal |
//! | `client-secret` | secret | its client secret |
//! | `storage-account` | config | storage account of the disks' page blobs |
//! | `blob-endpoint` | config | Blob service URL (default `https://<account>.blob.core.windows.net`; Azurite: `http://127.0.0.1:PORT/devstoreaccount1`) |
//! | `storage-key` / `storage-sas` | secret | the account's Shared Key, or a SAS query string |
//! | `disk-container` | config | container managed-disk ids map to (default `disks`) |
//! | `change-tracking` | config | `compare` (default) or `service-diff`, see `changed-ranges` |
//! | `os-type` | config | `osType` of VMs made by `create-vm` (`Linux` default, or `Windows`) |
//! | `max-retries` | config | retries of a 429 or 503 (default 3) |
//! | `timeout-ms` | config | budget of one call (default 20000); keep it below the plugin set's `call-timeout-ms` (default 30000) so the plugin answers `unavailable` before the host stops the call |
//!
//! A missing key is `invalid-input` naming it. The manifest asks for
//! `*:443` and loopback; the operator grants the exact hosts.
//!
//! ## Authentication
//!
//! ARM calls carry a token from the client-credentials grant (form POST,
//! `scope=https://management.azure.com/.default`), cached in the instance
//! until a minute before it expires and renewed once when ARM answers 401.
//! A refused sign-in is `permission-denied` naming the client id; neither the
//! secret nor a token appears in any log line or error.
//!
//! ## Failures
//!
//! 404 → `not-found`; 401/403 → `permission-denied` (an ARM
//! `AuthorizationFailed` lists the action it names in `missing-privileges`);
//! 409/412 → `conflict` (and a 400 whose code says "in use"); 400 →
//! `invalid-input`; 429 and 503 are retried after their `Retry-After`, at
//! most `max-retries` times, then `unavailable` with `retry-after-ms`; other
//! 5xx → `unavailable`. A connection that fails is `unavailable` naming the
//! endpoint. Every request, retry wait and long-running-operation poll
//! stays within `timeout-ms`.
//!
//! ## Calls
//!
//! - `connect`: signs in and reads the resource group; `product` `Azure
//!   Resource Manager`, `api-version` 2023-03-01, `instance-id` the
//!   subscription id.
//! - `get-vm(id)`: the VM with `$expand=instanceView` and each NIC (GET);
//!   power `powered-on` for `PowerState/running|starting`, `powered-off` for
//!   `stopped|deallocated` (property `power-state` keeps the code). Disks:
//!   OS disk first (controller `osDisk`), data disks by LUN (`dataDisks`,
//!   `unit` = LUN), capacity from `diskSizeGB`, format `vhd-fixed`, locator
//!   the blob the disk maps to (no credential: `disk-endpoint` gives one).
//!   NICs: MAC, subnet id, and fixed addressing (private IP with the subnet's
//!   prefix length, the subnet's gateway, the NIC's DNS servers or Azure's
//!   `168.63.129.16`); properties `nic.<i>.id`, `nic.<i>.allocation`,
//!   `size`, `location`, `resource-group`, `provisioning-state`. Snapshots:
//!   those of its disks that map to page blobs, oldest first per disk
//!   (`List Blobs` with `include=snapshots`), named `<disk>@<timestamp>`,
//!   `parent-id` chained per disk, `quiesced` false, description empty;
//!   none without storage settings (logged at debug; get-vm still answers).
//! - `power-off(id, deallocate)`: POST `powerOff` or `deallocate` and wait
//!   for the operation; a VM already in that state is left alone.
//! - `start(id)`: POST `start` and wait; a running VM is left alone.
//! - `delete-vm(id)`: missing → `not-found` (ARM itself answers 204);
//!   running → `conflict`; otherwise DELETE, wait, then delete its NICs.
//!   Disks are kept.
//! - `create-vm(spec)`: name and size checked (`invalid-input`), no or
//!   repeated disks `invalid-input`, name taken `conflict`, subnet resolved
//!   (missing virtual network or subnet `not-found` saying which), private IP
//!   outside the subnet `invalid-input`; then a NIC `<name>-nic0` in the
//!   subnet (`Static` with the asked IP, else `Dynamic`) and the VM
//!   attaching the disks (`createOption: Attach`: `managedDisk.id` for a
//!   managed-disk id, `vhd.uri` for a page blob), each waited for. A VM
//!   that cannot be created takes its NIC with it.
//! - `get-network(id)`: a virtual network (kind `virtualNetwork`, its
//!   address space) or a subnet (kind `subnet`); a missing subnet is told
//!   apart from a missing virtual network (S11).
//! - Disks (`disks.rs`): a disk id is `container/blob` in the configured
//!   account, or a managed-disk id mapped to `<disk-container>/<name>.vhd`.
//!   `disk-endpoint` checks the blob is a page blob ending in a VHD footer
//!   and answers `locator: blob(url, shared-key | sas-token)`, format
//!   `vhd-fixed`; `read-write` on a leased blob is `conflict`.
//!   `create-snapshot` lists the blob's snapshots, then `Snapshot Blob`;
//!   the snapshot id is the `x-ms-snapshot` timestamp, `parent-id` the
//!   newest snapshot before it (as in the lab cloud), `created-at` the
//!   timestamp. `delete-snapshot` deletes it.
//!   `create-restore-point` (API 0.1.1, `restore_points.rs`) checks the
//!   disks are the VM's and snapshots each; blob snapshots cannot quiesce,
//!   so the point is crash-consistent, with a `note` when asked to quiesce.
//!   `changed-ranges` uses the configured method and logs it:
//!   `service-diff` (Get Page Ranges with `prevsnapshot`; Azurite's answer
//!   to it is wrong, which is why it is not the default) or
//!   `page-range-compare` (both snapshots' page ranges, then every 64 KiB
//!   block either has pages in read from both and compared by SHA-256).

pub mod arm;
pub mod auth;
pub mod blob;
pub mod compute;
pub mod crypto;
pub mod disks;
pub mod fault;
pub mod lro;
pub mod network;
pub mod restore_points;
pub mod settings;
pub mod transport;

use arm::{Arm, RESOURCES_API};
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud::{
    Access, ChangeSet, Guest, VmSpec,
};
use homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::RestorePoint;
use homeward_sdk::types::{Disk, EndpointInfo, Network, Snapshot, Vm};
use homeward_sdk::{Error, log};
use settings::{HostConfig, Settings};
use transport::Transport;

/// What `connect` calls the endpoint.
pub const PRODUCT: &str = "Azure Resource Manager";

/// The exported component.
pub struct Azure;

/// The settings and clock of one call.
fn session() -> Result<(Settings, Transport), Error> {
    let settings = Settings::read(&HostConfig)?;
    let transport = Transport::new(settings.timeout_ms, settings.max_retries);
    Ok((settings, transport))
}

impl Guest for Azure {
    fn connect() -> Result<EndpointInfo, Error> {
        let (s, t) = session()?;
        let arm = Arm::new(&s, &t);
        let path = format!(
            "/subscriptions/{}/resourcegroups/{}",
            s.subscription_id, s.resource_group
        );
        if path.contains(['?', '#', '%']) {
            return Err(Error::invalid_input(
                "configuration keys `subscription-id` and `resource-group` may not hold `?`, `#` or `%`",
            ));
        }
        arm.get_optional(&path, RESOURCES_API, "", "resource group")?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "resource group `{}` does not exist in subscription {}: check config \
                     `resource-group` and `subscription-id`",
                    s.resource_group, s.subscription_id
                ))
            })?;
        log::info(&format!(
            "connected to {} as application `{}`: subscription {}, resource group {}",
            s.arm_endpoint, s.principal.client_id, s.subscription_id, s.resource_group
        ));
        Ok(EndpointInfo {
            product: PRODUCT.to_string(),
            api_version: arm::COMPUTE_API.to_string(),
            instance_id: s.subscription_id.clone(),
        })
    }

    fn get_vm(vm_id: String) -> Result<Vm, Error> {
        let (s, t) = session()?;
        compute::get_vm(&Arm::new(&s, &t), &vm_id)
    }

    fn power_off(vm_id: String, deallocate: bool) -> Result<(), Error> {
        let (s, t) = session()?;
        let state = compute::power_off(&Arm::new(&s, &t), &vm_id, deallocate)?;
        log::info(&format!("{vm_id}: {state}"));
        Ok(())
    }

    fn start(vm_id: String) -> Result<(), Error> {
        let (s, t) = session()?;
        compute::start(&Arm::new(&s, &t), &vm_id)?;
        log::info(&format!("{vm_id}: PowerState/running"));
        Ok(())
    }

    fn delete_vm(vm_id: String) -> Result<(), Error> {
        let (s, t) = session()?;
        compute::delete_vm(&Arm::new(&s, &t), &vm_id)?;
        log::info(&format!("{vm_id}: deleted with its NICs (disks kept)"));
        Ok(())
    }

    fn create_vm(spec: VmSpec) -> Result<Vm, Error> {
        let (s, t) = session()?;
        let vm = compute::create_vm(&Arm::new(&s, &t), &spec)?;
        log::info(&format!("{}: created", vm.id));
        Ok(vm)
    }

    fn get_network(network_id: String) -> Result<Network, Error> {
        let (s, t) = session()?;
        network::get_network(&Arm::new(&s, &t), &network_id)
    }

    fn disk_endpoint(disk_id: String, access: Access) -> Result<Disk, Error> {
        let (s, t) = session()?;
        disks::endpoint(&s, &t, &disk_id, access)
    }

    fn create_snapshot(disk_id: String) -> Result<Snapshot, Error> {
        let (s, t) = session()?;
        let snapshot = disks::create_snapshot(&s, &t, &disk_id)?;
        log::info(&format!("{disk_id}: snapshot {} taken", snapshot.id));
        Ok(snapshot)
    }

    fn delete_snapshot(disk_id: String, snapshot_id: String) -> Result<(), Error> {
        let (s, t) = session()?;
        disks::delete_snapshot(&s, &t, &disk_id, &snapshot_id)?;
        log::info(&format!("{disk_id}: snapshot {snapshot_id} deleted"));
        Ok(())
    }

    fn changed_ranges(disk_id: String, base: String, target: String) -> Result<ChangeSet, Error> {
        let (s, t) = session()?;
        disks::changed_ranges(&s, &t, &disk_id, &base, &target)
    }
}

impl homeward_sdk::cloud_adapter::exports::homeward::plugin::cloud_restore_points::Guest for Azure {
    fn create_restore_point(
        vm_id: String,
        disk_ids: Vec<String>,
        quiesce: bool,
    ) -> Result<RestorePoint, Error> {
        let (s, t) = session()?;
        let point = restore_points::create(&s, &t, &vm_id, &disk_ids, quiesce)?;
        log::info(&format!(
            "{vm_id}: {} blob snapshot(s) taken as one restore point",
            point.snapshots.len()
        ));
        Ok(point)
    }
}

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "azure",
    kind: cloud_adapter,
    component: Azure,
    network: ["*:443", "127.0.0.1:*", "localhost:*"],
}
