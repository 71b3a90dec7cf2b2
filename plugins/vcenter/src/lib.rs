//! The vCenter hypervisor adapter: Homeward's `hypervisor-adapter` for a
//! vCenter Server, over the vSphere SOAP API (vim25). All the logic lives in
//! the shared `homeward-vsphere` crate (configuration keys and behaviour are
//! documented there); this crate names the flavour and asks for the network.
//!
//! It refuses a standalone ESXi endpoint (`apiType` `HostAgent`) with
//! `invalid-input` pointing at the esxi plugin.

use homeward_vsphere::adapter::Flavour;

/// The plugin's exports.
pub struct VCenter;

homeward_vsphere::hypervisor_adapter!(VCenter, Flavour::VCenter);

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "vcenter",
    kind: hypervisor_adapter,
    component: VCenter,
    network: ["*:443", "*:80", "127.0.0.1:*"],
}
