//! The `networkmanager-restore` guest post-step (MISSION S16): a Linux VM
//! that ran in the cloud lost NetworkManager (cloud images and agents remove,
//! disable or mask it); back on premises it must manage the network again.
//!
//! The step reads the failed-back guest offline and plans:
//! - NetworkManager installed but disabled or masked: unmask it and create
//!   the links its unit's `[Install]` section names, as `systemctl enable`
//!   does (`chkconfig on` links on SysV guests) — [`systemd`], [`sysv`];
//! - NetworkManager removed: a first-boot action that reinstalls it with the
//!   distribution's package manager, enables and starts it, then removes
//!   itself — [`firstboot`];
//! - either way: `NM_CONTROLLED=no` → `yes` in RHEL ifcfg files
//!   ([`ifcfg`]), `NetworkManager.conf` settings that would leave it managing
//!   nothing ([`nm_conf`]), connection profiles a cloud agent set aside
//!   ([`profiles`]).
//!
//! What is on the guest is found by [`detect`] (files) and [`packages`]
//! (dpkg, rpm). Static addressing is restored by the `static-ip-reset` step,
//! which must run after this one. Every change goes through `PlanBuilder`,
//! so a second plan after the first was applied is empty.

pub mod detect;
pub mod firstboot;
pub mod ifcfg;
pub mod ini;
pub mod nm_conf;
pub mod packages;
pub mod plan;
pub mod profiles;
pub mod systemd;
pub mod sysv;

use detect::Init;
use homeward_sdk::Error;
use homeward_sdk::guest::{Distro, Family, GuestRead, network_systems, normalize_mac};
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::{StepContext, StepPlan};
use homeward_sdk::types::Addressing;
use plan::Plan;

/// The step's logic, on any guest tree (the plugin's `guest-fs`, or a
/// fixture tree in native tests).
pub fn plan(guest: &dyn GuestRead, context: &StepContext) -> Result<StepPlan, Error> {
    let mut plan = Plan::new();
    plan.note(format!("vm: {}", context.vm_name));
    let distro = Distro::detect(guest);
    let family = distro.as_ref().map_or(Family::Other, |d| d.family);
    plan.note(match &distro {
        Some(d) => format!("distribution: {} {}", d.id, d.version_id),
        None => "distribution: unknown (no /etc/os-release or release file)".to_string(),
    });
    let systems = network_systems(guest);
    for system in &systems {
        plan.note(format!("network: {}", system.name()));
    }
    note_nics(&mut plan, context);

    let presence = detect::inspect(guest, family);
    for note in presence.notes() {
        plan.note(note);
    }
    let idle = if presence.installed() {
        restore_service(guest, &mut plan, &presence, family);
        "NetworkManager is installed and enabled: nothing to do"
    } else {
        if presence.init == Init::Systemd {
            // A mask left behind would make the first boot's
            // `systemctl enable` fail.
            plan.concern("unmask NetworkManager.service", |b| {
                systemd::unmask(guest, b, systemd::NM_UNIT)
            });
        }
        firstboot::plan(guest, &mut plan, distro.as_ref(), presence.init)?;
        "NetworkManager is not installed and its first-boot reinstall is in place: nothing to do"
    };
    if let Some(owner) = systemd::network_service_owner(guest) {
        plan.note(format!(
            "network.service → {owner}: it still owns the network beside NetworkManager; left as is"
        ));
    }

    plan.concern("set NM_CONTROLLED=yes in ifcfg files", |b| {
        ifcfg::restore_nm_control(guest, b)
    });
    plan.concern(
        format!(
            "let NetworkManager manage the interfaces ({})",
            nm_conf::CONF
        ),
        |b| nm_conf::fix(guest, b, &systems),
    );
    plan.concern("restore set-aside connection profiles", |b| {
        profiles::restore(guest, b)
    });
    Ok(plan.finish(idle))
}

/// Re-enables an installed NetworkManager.
fn restore_service(
    guest: &dyn GuestRead,
    plan: &mut Plan,
    presence: &detect::Presence,
    family: Family,
) {
    match (presence.init, presence.sysv_script) {
        (Init::Systemd, _) => {
            let unit = systemd::NM_UNIT;
            let state = if systemd::is_masked(guest, unit) {
                "masked"
            } else if systemd::is_enabled(guest, unit) {
                "enabled"
            } else {
                "disabled"
            };
            plan.note(format!("{unit}: {state}"));
            plan.concern(format!("enable {unit} (as systemctl enable)"), |b| {
                systemd::enable(guest, b, unit, family)
            });
        }
        (Init::SysV, Some(script)) => {
            let state = if sysv::is_enabled(guest, script) {
                "enabled"
            } else {
                "disabled"
            };
            plan.note(format!("{script}: {state} in runlevel 3"));
            plan.concern(
                "enable the NetworkManager init script (as chkconfig on)",
                |b| sysv::enable(guest, b, script),
            );
        }
        (Init::SysV, None) => {}
    }
}

/// One note per recorded NIC (`nic 00:50:56:aa:bb:cc: eth0, static`), with
/// its new MAC when failback created a new VM.
fn note_nics(plan: &mut Plan, context: &StepContext) {
    for nic in &context.recorded_nics {
        let mac = normalize_mac(&nic.mac).unwrap_or_else(|| nic.mac.clone());
        let device = nic.device_name.as_deref().unwrap_or("(device unknown)");
        let addressing = match &nic.addressing {
            Addressing::Dhcp => "dhcp",
            Addressing::Fixed(_) => "static (restored by static-ip-reset)",
        };
        let new_mac = context
            .mac_map
            .iter()
            .find(|(old, _)| normalize_mac(old).as_deref() == Some(mac.as_str()))
            .map(|(_, new)| format!(", now {new}"))
            .unwrap_or_default();
        plan.note(format!("nic {mac}: {device}, {addressing}{new_mac}"));
    }
}

homeward_sdk::guest_step_plugin! { id: "networkmanager-restore", plan: crate::plan }
