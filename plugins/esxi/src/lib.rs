//! The standalone ESXi hypervisor adapter: Homeward's `hypervisor-adapter`
//! for an ESXi host without vCenter, over the vSphere SOAP API (vim25). All
//! the logic lives in the shared `homeward-vsphere` crate (configuration
//! keys and behaviour are documented there).
//!
//! ESXi specifics are the endpoint's own: one datacenter (`ha-datacenter`),
//! one `HostSystem`, the licence of the host's own licence manager, and the
//! host's hardware UUID as the endpoint's instance id. It refuses a vCenter
//! endpoint with `invalid-input` pointing at the vcenter plugin.

use homeward_vsphere::adapter::Flavour;

/// The plugin's exports.
pub struct Esxi;

homeward_vsphere::hypervisor_adapter!(Esxi, Flavour::Esxi);

#[cfg(target_arch = "wasm32")]
homeward_sdk::plugin! {
    id: "esxi",
    kind: hypervisor_adapter,
    component: Esxi,
    network: ["*:443", "*:80", "127.0.0.1:*"],
}
