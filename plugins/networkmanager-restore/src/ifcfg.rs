//! RHEL ifcfg files that keep NetworkManager away (`NM_CONTROLLED=no`).
//!
//! Cloud agents and images set `NM_CONTROLLED=no` so the legacy network
//! scripts own the NIC; back on premises NetworkManager must own it again.
//! Only that key changes: `ShellVars` keeps every other line, comment and
//! the order. While NetworkManager is not running (first boot, before the
//! reinstall) the network scripts still bring such a NIC up.

use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder, ShellVars};

/// How the network scripts spell "no" (initscripts' `is_false`).
fn is_false(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "no" | "n" | "false" | "f" | "off" | "0"
    )
}

/// Sets `NM_CONTROLLED=yes` where it says no; notes every file it changes.
pub fn restore_nm_control(guest: &dyn GuestRead, builder: &mut PlanBuilder) {
    for path in NetSystem::RedHatIfcfg.files(guest) {
        let Some(text) = guest.read_text(&path) else {
            builder.note(format!("{path}: cannot be read; NM_CONTROLLED left as is"));
            continue;
        };
        let mut vars = ShellVars::parse(&text);
        let Some(value) = vars.get("NM_CONTROLLED") else {
            continue;
        };
        if !is_false(&value) {
            continue;
        }
        vars.set("NM_CONTROLLED", "yes");
        let mode = guest.stat(&path).map_or(0o644, |s| s.mode & 0o7777);
        builder.note(format!("{path}: NM_CONTROLLED={value} → yes"));
        builder.write(
            guest,
            &path,
            vars.render(),
            mode,
            "NM_CONTROLLED=yes: let NetworkManager manage this interface again",
        );
    }
}
