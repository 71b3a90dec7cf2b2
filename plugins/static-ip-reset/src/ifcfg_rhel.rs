//! RHEL/CentOS/Rocky `ifcfg` files (`/etc/sysconfig/network-scripts/ifcfg-*`),
//! read by network-scripts and by NetworkManager's ifcfg-rh plugin alike.
//!
//! A file belongs to a NIC by `HWADDR`/`MACADDR`, else by `DEVICE` (or the
//! file name). For a static NIC the addressing keys are rewritten in place
//! (`BOOTPROTO=none`, `IPADDR`/`PREFIX` or `IPADDR0..`, `GATEWAY`, `DNS1..`,
//! `DOMAIN`, `IPV6ADDR..`), stale address keys go, every other line stays.

use crate::files::{self, HEADER};
use crate::ifcfg::{self, Ifcfg};
use crate::nic::{Nic, Nics, Static};
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder, ShellVars, normalize_mac};

const DIR: &str = "/etc/sysconfig/network-scripts";

fn read_all(guest: &dyn GuestRead) -> Vec<Ifcfg> {
    ifcfg::read_all(guest, NetSystem::RedHatIfcfg, |vars, suffix| {
        let device = vars.get("DEVICE").filter(|d| !d.is_empty()).or(suffix);
        let mac = vars.get("HWADDR").or_else(|| vars.get("MACADDR"));
        (device, mac)
    })
}

/// MAC → device name pairs the files state.
pub fn names(guest: &dyn GuestRead) -> Vec<(String, String)> {
    ifcfg::names(read_all(guest))
}

/// Which NICs (by index) have a file.
pub fn covered(guest: &dyn GuestRead, nics: &Nics) -> Vec<usize> {
    ifcfg::covered(&read_all(guest), nics)
}

/// Rewrites the files of recorded NICs, and creates `ifcfg-<dev>` for each
/// static NIC in `create`.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, create: &[usize], plan: &mut PlanBuilder) {
    for mut file in read_all(guest) {
        let Some(index) = nics.owner(file.mac.as_deref(), file.device.as_deref()) else {
            continue;
        };
        let Some(nic) = nics.all.get(index) else {
            continue;
        };
        if let Some(master) = enslaved(&file.vars) {
            plan.note(format!(
                "{}: {} is a port of {master}; its addresses live there: left as it is, \
                 set them on {master} by hand",
                file.path,
                nic.label()
            ));
            continue;
        }
        set_macs(&mut file.vars, nic);
        let reason = match &nic.addressing {
            Some(s) => {
                apply_static(&mut file.vars, s);
                plan.note(format!(
                    "{}: static addressing for {}",
                    file.path,
                    nic.label()
                ));
                "restore the static addressing recorded on premises"
            }
            None => "follow the NIC's new MAC",
        };
        let mode = files::mode_of(guest, &file.path, 0o644);
        plan.write(guest, &file.path, file.vars.render(), mode, reason);
    }
    for &index in create {
        let Some((nic, s)) = nics.static_at(index) else {
            continue;
        };
        let Some(device) = &nic.device else { continue };
        let path = format!("{DIR}/ifcfg-{device}");
        let mut vars = ShellVars::parse(HEADER);
        for (key, value) in [
            ("TYPE", "Ethernet"),
            ("NAME", device.as_str()),
            ("DEVICE", device.as_str()),
            ("HWADDR", nic.mac.as_str()),
        ] {
            vars.set(key, value);
        }
        apply_static(&mut vars, s);
        plan.note(format!("{path}: created for {}", nic.label()));
        plan.write(
            guest,
            &path,
            vars.render(),
            0o644,
            "the NIC had no configuration: create it with the static addressing recorded on premises",
        );
    }
}

/// The bond, team or bridge a file makes its NIC a port of.
fn enslaved(vars: &ShellVars) -> Option<String> {
    ["MASTER", "TEAM_MASTER", "BRIDGE"]
        .iter()
        .find_map(|k| vars.get(k).filter(|v| !v.is_empty()))
}

/// Points the MAC keys the file already has at the NIC's current MAC (kept
/// when they already name it, whatever the spelling).
fn set_macs(vars: &mut ShellVars, nic: &Nic) {
    for key in ["HWADDR", "MACADDR"] {
        if let Some(current) = vars.get(key)
            && normalize_mac(&current).as_deref() != Some(nic.mac.as_str())
        {
            vars.set(key, &nic.mac);
        }
    }
}

/// The keys of a static configuration, in the order they are written.
fn static_keys(s: &Static) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = vec![
        ("BOOTPROTO".into(), "none".into()),
        ("ONBOOT".into(), "yes".into()),
    ];
    match s.v4.as_slice() {
        [(addr, prefix)] => {
            keys.push(("IPADDR".into(), addr.to_string()));
            keys.push(("PREFIX".into(), prefix.to_string()));
        }
        several => {
            for (i, (addr, prefix)) in several.iter().enumerate() {
                keys.push((format!("IPADDR{i}"), addr.to_string()));
                keys.push((format!("PREFIX{i}"), prefix.to_string()));
            }
        }
    }
    if let Some(gw) = s.gateway4 {
        keys.push(("GATEWAY".into(), gw.to_string()));
    }
    for (i, dns) in s.dns.iter().enumerate() {
        keys.push((format!("DNS{}", i + 1), dns.to_string()));
    }
    if !s.search.is_empty() {
        keys.push(("DOMAIN".into(), s.search.join(" ")));
    }
    if let Some(((first, prefix), rest)) = s.v6.split_first() {
        keys.push(("IPV6INIT".into(), "yes".into()));
        keys.push(("IPV6_AUTOCONF".into(), "no".into()));
        keys.push(("IPV6ADDR".into(), format!("{first}/{prefix}")));
        if !rest.is_empty() {
            let others: Vec<String> = rest.iter().map(|(a, p)| format!("{a}/{p}")).collect();
            keys.push(("IPV6ADDR_SECONDARIES".into(), others.join(" ")));
        }
        if let Some(gw) = s.gateway6 {
            keys.push(("IPV6_DEFAULTGW".into(), gw.to_string()));
        }
    }
    keys
}

/// Whether `key` is an addressing key this step owns (and so removes when
/// the recorded configuration does not have it).
fn owned_key(key: &str, has_v6: bool) -> bool {
    ["IPADDR", "PREFIX", "NETMASK", "GATEWAY"]
        .iter()
        .any(|p| files::numbered(key, p))
        || (key != "DNS" && files::numbered(key, "DNS"))
        || key == "DOMAIN"
        || (has_v6 && ["IPV6ADDR", "IPV6ADDR_SECONDARIES", "IPV6_DEFAULTGW"].contains(&key))
}

fn apply_static(vars: &mut ShellVars, s: &Static) {
    let keys = static_keys(s);
    files::remove_stale(vars, |k| owned_key(k, !s.v6.is_empty()), &keys);
    for (key, value) in &keys {
        files::set(vars, key, value);
    }
}
