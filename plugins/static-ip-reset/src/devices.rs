//! Which device name each recorded NIC will have in the guest.
//!
//! The guest's own pinning wins over the host's record: a udev rule for the
//! NIC's MAC, else a configuration that ties its MAC to a name (ifcfg
//! `HWADDR` + `DEVICE`, keyfile `mac-address` + `interface-name`, netplan
//! `macaddress` + `set-name`); the recorded `device-name` is the fallback
//! (ifupdown has no MAC at all).

use crate::nic::{Nics, valid_device};
use crate::{ifcfg_rhel, ifcfg_suse, keyfile, netplan, udev};
use homeward_sdk::guest::{GuestRead, PlanBuilder};

/// Fills in `device` of every NIC, noting what it found.
pub fn resolve(guest: &dyn GuestRead, nics: &mut Nics, plan: &mut PlanBuilder) {
    let pinned = udev::names(guest);
    let mut stated = ifcfg_rhel::names(guest);
    stated.extend(ifcfg_suse::names(guest));
    stated.extend(keyfile::names(guest));
    stated.extend(netplan::names(guest));
    for nic in &mut nics.all {
        let learned = pinned
            .iter()
            .chain(&stated)
            .find(|(mac, name)| nic.has_mac(mac) && valid_device(name))
            .map(|(_, name)| name.clone());
        if let (Some(l), Some(r)) = (&learned, &nic.recorded_device)
            && l != r
        {
            plan.note(format!(
                "nic {}: recorded as {r}, the guest names it {l}; using {l}",
                nic.mac
            ));
        }
        nic.device = learned.or_else(|| nic.recorded_device.clone());
        let how = match &nic.addressing {
            Some(_) => "static",
            None => "DHCP recorded: addressing left as it is",
        };
        match &nic.device {
            Some(d) => plan.note(format!("nic {}: {d}, {how}", nic.mac)),
            None => plan.note(format!("nic {}: device name unknown, {how}", nic.mac)),
        }
        if nic.mac_changed() {
            plan.note(format!(
                "nic {}: new MAC after failback (was {})",
                nic.mac, nic.recorded_mac
            ));
        }
    }
}
