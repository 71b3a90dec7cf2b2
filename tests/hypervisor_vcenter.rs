//! The embedded `vcenter` adapter against govmomi's vSphere simulator started by
//! the test: a vCenter (the simulator's VPX model: a datacenter, a cluster of hosts and a standalone host). Discovery matches the simulator's inventory; a VM created
//! at an alternate location has its disks (and their files) on the chosen
//! datastore; the read-only account is reported with exactly the privileges
//! it lacks; snapshots block reprotect; a free licence added through
//! LicenseManager refuses failback; a stopped simulator is unavailable within
//! the deadline; a wrong password is permission-denied and never logged;
//! snapshot-disk (API 0.1.2) answers the file a snapshot froze and refuses a
//! frozen delta (see `common::snapshot_disks` for what the simulator cannot
//! show); and the hypervisor conformance suite passes.

#[path = "hypervisor_vsphere/common.rs"]
mod common;

use homeward::embedded::VCENTER;
use homeward_tests::vsphere_sim::Model;

#[test]
fn discovery_matches_the_simulator_inventory() {
    common::discovery_matches_the_inventory(Model::Vpx, VCENTER, "vCenter");
}

#[test]
fn vm_at_an_alternate_location_with_disks_snapshots_and_power() {
    common::alternate_location_lifecycle(Model::Vpx, VCENTER);
}

#[test]
fn read_only_account_is_reported_with_exactly_what_it_lacks() {
    common::read_only_account(Model::Vpx, VCENTER);
}

#[test]
fn free_licence_refuses_failback() {
    common::free_licence(Model::Vpx, VCENTER);
}

#[test]
fn master_target_disk_uuid_and_datastore_reach() {
    common::master_target_checks(Model::Vpx, VCENTER);
}

#[test]
fn stopped_simulator_is_unavailable_within_the_deadline() {
    common::stopped_endpoint_is_unavailable(Model::Vpx, VCENTER);
}

#[test]
fn wrong_password_is_denied_and_never_logged() {
    common::wrong_credentials(Model::Vpx, VCENTER);
}

#[test]
fn snapshot_disk_answers_the_frozen_file() {
    common::snapshot_disks(Model::Vpx, VCENTER);
}

#[test]
fn conformance_suite_passes() {
    common::conformance(Model::Vpx, VCENTER);
}

#[test]
fn a_standalone_esxi_endpoint_is_refused() {
    common::other_flavour_is_refused(Model::Esx, VCENTER, "esxi plugin");
}
