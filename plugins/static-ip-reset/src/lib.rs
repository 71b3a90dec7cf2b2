//! The static-ip-reset guest post-step (MISSION S17).
//!
//! In the cloud a VM with static addresses was switched to DHCP (and often got
//! a new MAC and device name); failed back, it keeps DHCP. This step writes
//! back, offline, the static configuration recorded when the VM was protected
//! on premises, in whatever the guest uses: RHEL or SUSE `ifcfg`, Debian
//! `interfaces`, netplan, NetworkManager keyfiles. It also makes the udev
//! name pinning and every MAC it finds follow `mac-map` (a new VM on
//! failback), points a plain `/etc/resolv.conf` at the recorded DNS, and
//! keeps cloud-init from writing DHCP back at the next boot.
//!
//! NICs recorded with DHCP keep their addressing (only their MAC follows
//! `mac-map`). A static NIC without any configuration gets one in the
//! guest's main system. Every writer edits in place and only what it owns,
//! so a second plan is empty.

mod cloud_init;
mod devices;
mod files;
mod ifcfg;
mod ifcfg_rhel;
mod ifcfg_suse;
mod interfaces;
mod keyfile;
mod netplan;
mod nic;
mod resolv;
mod udev;

use homeward_sdk::Error;
use homeward_sdk::guest::{Distro, Family, GuestRead, NetSystem, PlanBuilder, network_systems};
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{StepContext, StepPlan};
use homeward_sdk::types::FileKind;
use nic::Nics;

/// The step's logic, on any guest tree (the plugin's `guest-fs`, or a
/// fixture tree in native tests).
pub fn plan(guest: &dyn GuestRead, context: &StepContext) -> Result<StepPlan, Error> {
    let mut plan = PlanBuilder::new();
    let mut notes = Vec::new();
    let mut nics = Nics::from_context(context, &mut notes)?;
    for note in notes {
        plan.note(note);
    }
    if nics.statics().next().is_none() {
        for nic in &nics.all {
            plan.note(format!(
                "nic {}: DHCP recorded: left as it is",
                nic.recorded_mac
            ));
        }
        return Ok(plan.finish("", "no recorded NIC has static addressing: nothing to do"));
    }

    let distro = Distro::detect(guest);
    let systems = network_systems(guest);
    match &distro {
        Some(d) => plan.note(format!("distribution: {} {}", d.id, d.version_id)),
        None => plan.note("distribution: unknown (no os-release or release file)"),
    }
    let names: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    plan.note(format!(
        "network: {}",
        if names.is_empty() {
            "no configuration files".to_string()
        } else {
            names.join(", ")
        }
    ));
    let Some(main) = main_system(guest, distro.as_ref(), &systems) else {
        return Err(unsupported(distro.as_ref(), &nics));
    };
    plan.note(format!("missing configurations go to: {}", main.name()));

    devices::resolve(guest, &mut nics, &mut plan);
    let create = to_create(guest, &nics, main, &systems, &mut plan);

    udev::plan(guest, &nics, &mut plan);
    let uses = |s: NetSystem| systems.contains(&s) || main == s;
    let create_in = |s: NetSystem| if main == s { create.as_slice() } else { &[] };
    if uses(NetSystem::RedHatIfcfg) {
        ifcfg_rhel::plan(guest, &nics, create_in(NetSystem::RedHatIfcfg), &mut plan);
    }
    if uses(NetSystem::SuseIfcfg) {
        ifcfg_suse::plan(guest, &nics, create_in(NetSystem::SuseIfcfg), &mut plan);
    }
    if uses(NetSystem::DebianInterfaces) {
        interfaces::plan(
            guest,
            &nics,
            create_in(NetSystem::DebianInterfaces),
            &mut plan,
        );
    }
    if uses(NetSystem::NmKeyfile) {
        keyfile::plan(guest, &nics, create_in(NetSystem::NmKeyfile), &mut plan);
    }
    if uses(NetSystem::Netplan) {
        netplan::plan(guest, &nics, &mut plan)?;
    }
    resolv::plan(guest, &nics, &mut plan);
    cloud_init::plan(guest, &mut plan);

    let labels: Vec<String> = nics.statics().map(|(_, n, _)| n.label()).collect();
    Ok(plan.finish(
        format!(
            "restore the static addressing of {} in {}",
            labels.join(", "),
            main.name()
        ),
        format!(
            "the static addressing of {} is already in place: nothing to do",
            labels.join(", ")
        ),
    ))
}

/// The system a static NIC without any configuration is configured in: the
/// one the guest has files for, else the one its distribution uses.
fn main_system(
    guest: &dyn GuestRead,
    distro: Option<&Distro>,
    systems: &[NetSystem],
) -> Option<NetSystem> {
    let has = |s: NetSystem| systems.contains(&s);
    let is_dir = |p: &str| guest.stat(p).is_ok_and(|s| s.kind == FileKind::Directory);
    for s in [
        NetSystem::Netplan,
        NetSystem::RedHatIfcfg,
        NetSystem::SuseIfcfg,
        NetSystem::DebianInterfaces,
    ] {
        if has(s) {
            return Some(s);
        }
    }
    if has(NetSystem::NmKeyfile) || keyfile::dir_exists(guest) {
        return Some(NetSystem::NmKeyfile);
    }
    let family = distro.map_or(Family::Other, |d| d.family);
    let fallback = match family {
        Family::RedHat => NetSystem::RedHatIfcfg,
        Family::Suse => NetSystem::SuseIfcfg,
        Family::Debian if is_dir(NetSystem::Netplan.config_dir()) => NetSystem::Netplan,
        Family::Debian => NetSystem::DebianInterfaces,
        Family::Other => return None,
    };
    is_dir(fallback.config_dir()).then_some(fallback)
}

/// The static NICs no configuration covers, which `main` must create.
fn to_create(
    guest: &dyn GuestRead,
    nics: &Nics,
    main: NetSystem,
    systems: &[NetSystem],
    plan: &mut PlanBuilder,
) -> Vec<usize> {
    if main == NetSystem::Netplan {
        // The owned netplan file defines every static NIC anyway.
        return Vec::new();
    }
    let mut covered = Vec::new();
    for s in systems {
        covered.extend(match s {
            NetSystem::RedHatIfcfg => ifcfg_rhel::covered(guest, nics),
            NetSystem::SuseIfcfg => ifcfg_suse::covered(guest, nics),
            NetSystem::DebianInterfaces => interfaces::covered(guest, nics),
            NetSystem::NmKeyfile => keyfile::covered(guest, nics),
            NetSystem::Netplan => Vec::new(),
        });
    }
    let mut create = Vec::new();
    for (i, nic, _) in nics.statics() {
        if covered.contains(&i) {
            continue;
        }
        // A keyfile can match by MAC alone; the other systems need a name.
        if nic.device.is_none() && main != NetSystem::NmKeyfile {
            plan.note(format!(
                "nic {}: no configuration mentions it and its device name is unknown: \
                 configure it by hand",
                nic.mac
            ));
            continue;
        }
        create.push(i);
    }
    create
}

/// Why nothing can be done: what was found, and what to do by hand.
fn unsupported(distro: Option<&Distro>, nics: &Nics) -> Error {
    let found = match distro {
        Some(d) => format!(
            "distribution {:?} ({} {})",
            d.pretty_name, d.id, d.version_id
        ),
        None => "no /etc/os-release or release file".to_string(),
    };
    let wanted: Vec<String> = nics
        .statics()
        .map(|(_, n, s)| {
            let addrs: Vec<String> =
                s.v4.iter()
                    .map(|(a, p)| format!("{a}/{p}"))
                    .chain(s.v6.iter().map(|(a, p)| format!("{a}/{p}")))
                    .collect();
            format!("{} {}", n.recorded_mac, addrs.join(" "))
        })
        .collect();
    Error::unsupported(format!(
        "static-ip-reset: found {found} and no network configuration it knows \
         (ifcfg, /etc/network/interfaces, netplan, NetworkManager keyfiles); \
         set the static addresses by hand: {}",
        wanted.join("; ")
    ))
}

homeward_sdk::guest_step_plugin! { id: "static-ip-reset", plan: crate::plan }
