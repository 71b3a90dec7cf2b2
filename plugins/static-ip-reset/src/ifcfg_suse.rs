//! SUSE `ifcfg` files (`/etc/sysconfig/network/ifcfg-<dev>`, read by wicked)
//! and the two files that hold what SUSE keeps outside them: default routes
//! (`routes`, or `ifroute-<dev>`) and DNS (`config`, through netconfig).
//!
//! The device is the file name; `LLADDR` (which cloud-init writes, and which
//! *sets* the NIC's MAC) is treated as the file's MAC and made to follow the
//! NIC's current one, or the NIC would take the cloud MAC on premises.

use crate::files::{self, HEADER};
use crate::ifcfg::{self, Ifcfg};
use crate::nic::{Nic, Nics, Static};
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder, ShellVars, normalize_mac};

const DIR: &str = "/etc/sysconfig/network";
const ROUTES: &str = "/etc/sysconfig/network/routes";
const CONFIG: &str = "/etc/sysconfig/network/config";

fn read_all(guest: &dyn GuestRead) -> Vec<Ifcfg> {
    ifcfg::read_all(guest, NetSystem::SuseIfcfg, |vars, suffix| {
        let mac = vars.get("LLADDR").filter(|m| normalize_mac(m).is_some());
        (suffix, mac)
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

/// Rewrites the files of recorded NICs, creates `ifcfg-<dev>` for each static
/// NIC in `create`, then the default routes and DNS of every static NIC
/// handled here.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, create: &[usize], plan: &mut PlanBuilder) {
    // (device, addressing) of the static NICs configured here.
    let mut done: Vec<(String, &Static)> = Vec::new();
    for mut file in read_all(guest) {
        let Some(index) = nics.owner(file.mac.as_deref(), file.device.as_deref()) else {
            continue;
        };
        let (Some(nic), Some(device)) = (nics.all.get(index), file.device.clone()) else {
            continue;
        };
        set_mac(&mut file.vars, nic);
        let reason = match &nic.addressing {
            Some(s) => {
                apply_static(&mut file.vars, s);
                plan.note(format!(
                    "{}: static addressing for {}",
                    file.path,
                    nic.label()
                ));
                done.push((device, s));
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
        apply_static(&mut vars, s);
        plan.note(format!("{path}: created for {}", nic.label()));
        plan.write(
            guest,
            &path,
            vars.render(),
            // As YaST writes them: ifcfg files may hold secrets (WLAN keys).
            0o600,
            "the NIC had no configuration: create it with the static addressing recorded on premises",
        );
        done.push((device.clone(), s));
    }
    plan_routes(guest, &done, plan);
    plan_dns(guest, nics, &done, plan);
}

fn set_mac(vars: &mut ShellVars, nic: &Nic) {
    if let Some(current) = vars.get("LLADDR")
        && normalize_mac(&current).as_deref() != Some(nic.mac.as_str())
    {
        vars.set("LLADDR", &nic.mac);
    }
}

fn apply_static(vars: &mut ShellVars, s: &Static) {
    let addresses =
        s.v4.iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .chain(s.v6.iter().map(|(a, p)| format!("{a}/{p}")));
    // The first address is `IPADDR`, the others `IPADDR_1`, `IPADDR_2`...
    let mut keys: Vec<(String, String)> = vec![
        ("BOOTPROTO".into(), "static".into()),
        ("STARTMODE".into(), "auto".into()),
    ];
    for (i, addr) in addresses.enumerate() {
        let key = if i == 0 {
            "IPADDR".to_string()
        } else {
            format!("IPADDR_{i}")
        };
        keys.push((key, addr));
    }
    let owned = |k: &str| {
        ["IPADDR", "NETMASK", "PREFIXLEN", "BROADCAST"]
            .iter()
            .any(|p| k.starts_with(p))
    };
    files::remove_stale(vars, owned, &keys);
    for (key, value) in &keys {
        files::set(vars, key, value);
    }
}

/// Default routes: in `ifroute-<dev>` when the NIC has one, else in
/// `routes`, as `default <gateway> - <dev>`. A default route of the same
/// family left for a static NIC, or for no interface (`-`), is replaced.
fn plan_routes(guest: &dyn GuestRead, done: &[(String, &Static)], plan: &mut PlanBuilder) {
    let mut by_file: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (device, s) in done {
        let own = format!("{DIR}/ifroute-{device}");
        let path = if guest.exists(&own) {
            own
        } else {
            ROUTES.to_string()
        };
        let gateways = s
            .gateway4
            .map(|g| g.to_string())
            .into_iter()
            .chain(s.gateway6.map(|g| g.to_string()));
        for gw in gateways {
            match by_file.iter_mut().find(|(p, _)| *p == path) {
                Some((_, routes)) => routes.push((gw, device.clone())),
                None => by_file.push((path.clone(), vec![(gw, device.clone())])),
            }
        }
    }
    let static_devices: Vec<&str> = done.iter().map(|(d, _)| d.as_str()).collect();
    for (path, routes) in by_file {
        let text = guest.read_text(&path).unwrap_or_default();
        let families: Vec<bool> = routes.iter().map(|(gw, _)| gw.contains(':')).collect();
        let mut lines: Vec<String> = Vec::new();
        let mut insert_at = None;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let replaced = match fields.as_slice() {
                ["default", gw, rest @ ..] => {
                    let iface = rest.get(1).copied().unwrap_or("-");
                    families.contains(&gw.contains(':'))
                        && (iface == "-" || static_devices.contains(&iface))
                }
                _ => false,
            };
            if replaced {
                insert_at.get_or_insert(lines.len());
            } else {
                lines.push(line.to_string());
            }
        }
        let ours = routes
            .iter()
            .map(|(gw, dev)| format!("default {gw} - {dev}"));
        let at = insert_at.unwrap_or(lines.len());
        lines.splice(at..at, ours);
        let mode = files::mode_of(guest, &path, 0o644);
        plan.note(format!("{path}: default route of the static NICs"));
        plan.write(
            guest,
            &path,
            files::join_lines(&lines),
            mode,
            "restore the default gateway recorded on premises",
        );
    }
}

/// DNS servers and search domains of the static NICs, as netconfig's static
/// lists (netconfig writes `resolv.conf` from them at boot).
fn plan_dns(
    guest: &dyn GuestRead,
    nics: &Nics,
    done: &[(String, &Static)],
    plan: &mut PlanBuilder,
) {
    if done.is_empty() {
        return;
    }
    let servers: Vec<String> = nics.all_dns().iter().map(|d| d.to_string()).collect();
    let search = nics.all_search();
    if servers.is_empty() && search.is_empty() {
        return;
    }
    let Some(text) = guest.read_text(CONFIG) else {
        plan.note(format!(
            "{CONFIG} is missing: DNS not restored; set NETCONFIG_DNS_STATIC_SERVERS there by hand"
        ));
        return;
    };
    let mut vars = ShellVars::parse(&text);
    if !servers.is_empty() {
        files::set(
            &mut vars,
            "NETCONFIG_DNS_STATIC_SERVERS",
            &servers.join(" "),
        );
    }
    if !search.is_empty() {
        files::set(
            &mut vars,
            "NETCONFIG_DNS_STATIC_SEARCHLIST",
            &search.join(" "),
        );
    }
    let mode = files::mode_of(guest, CONFIG, 0o644);
    plan.write(
        guest,
        CONFIG,
        vars.render(),
        mode,
        "restore the DNS servers and search domains recorded on premises",
    );
}
