//! `/etc/NetworkManager/NetworkManager.conf`: settings that would leave
//! NetworkManager running but managing nothing.
//!
//! - RHEL guests configured with ifcfg files need the `ifcfg-rh` plugin:
//!   when `[main] plugins=` is set without it, it is added.
//! - Debian guests configured in `/etc/network/interfaces` need the
//!   `ifupdown` plugin with `[ifupdown] managed=true`; Debian ships
//!   `managed=false`, so NetworkManager ignores those interfaces. It becomes
//!   true only when the file declares an interface other than `lo`.
//!
//! Nothing else changes. When the file is gone but rpm kept the
//! administrator's copy (`.rpmsave`, made when a modified configuration file
//! is erased with its package), that copy is put back first: rpm then keeps
//! it on reinstall and writes its default beside it as `.rpmnew`.
//! `conf.d/` drop-ins that hide devices (`unmanaged-devices=`) are noted,
//! not changed: an administrator may have meant them.

use crate::ini::Ini;
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder};
use homeward_sdk::types::FileKind;

/// The main configuration file.
pub const CONF: &str = "/etc/NetworkManager/NetworkManager.conf";
/// Copies of it a package removal leaves.
const CONF_BACKUPS: &[&str] = &[".rpmsave", ".dpkg-old", ".dpkg-bak", ".bak"];
/// Drop-ins.
const CONF_D: &str = "/etc/NetworkManager/conf.d";
/// At most this many drop-ins are read.
const MAX_DROP_INS: usize = 64;

/// Names of the interfaces `/etc/network/interfaces` (and `interfaces.d/`)
/// declare with `iface <name> ...`, other than `lo`.
fn ifupdown_interfaces(guest: &dyn GuestRead) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for path in NetSystem::DebianInterfaces.files(guest) {
        let text = guest.read_text(&path).unwrap_or_default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("iface") {
                continue;
            }
            if let Some(name) = words.next().filter(|n| *n != "lo")
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
    }
    names
}

/// A GKeyFile boolean that reads as false.
fn is_false(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "false" | "no" | "0")
}

/// Adds `plugin` to a `[main] plugins=` list that lacks it; an absent key
/// means the distribution's default, which is left alone.
fn require_plugin(ini: &mut Ini, plugin: &str, changed: &mut Vec<String>) {
    let Some(list) = ini.get("main", "plugins") else {
        return;
    };
    let mut plugins: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if plugins.contains(&plugin) {
        return;
    }
    plugins.push(plugin);
    let new = plugins.join(",");
    ini.set("main", "plugins", &new);
    changed.push(format!("[main] plugins={list} → {new}"));
}

/// Plans the changes to `NetworkManager.conf`.
pub fn fix(guest: &dyn GuestRead, builder: &mut PlanBuilder, systems: &[NetSystem]) {
    note_drop_ins(guest, builder);
    let (text, restored_from) = match guest.read_text(CONF) {
        Some(text) => (text, None),
        None => {
            let backup = CONF_BACKUPS
                .iter()
                .map(|suffix| format!("{CONF}{suffix}"))
                .find_map(|p| guest.read_text(&p).map(|t| (t, p)));
            match backup {
                Some((text, path)) => (text, Some(path)),
                None => {
                    builder.note(format!(
                        "{CONF}: absent; the package reinstall puts the default back"
                    ));
                    return;
                }
            }
        }
    };
    let mut ini = Ini::parse(&text);
    let mut changed = Vec::new();
    if systems.contains(&NetSystem::RedHatIfcfg) {
        require_plugin(&mut ini, "ifcfg-rh", &mut changed);
    }
    let interfaces = ifupdown_interfaces(guest);
    if !interfaces.is_empty() {
        require_plugin(&mut ini, "ifupdown", &mut changed);
        if let Some(managed) = ini.get("ifupdown", "managed").filter(|v| is_false(v)) {
            ini.set("ifupdown", "managed", "true");
            changed.push(format!(
                "[ifupdown] managed={managed} → true (interfaces: {})",
                interfaces.join(", ")
            ));
        }
    }
    for change in &changed {
        builder.note(format!("{CONF}: {change}"));
    }
    let content = if changed.is_empty() {
        text
    } else {
        ini.render()
    };
    if let Some(backup) = &restored_from {
        builder.note(format!("{CONF}: absent; restored from {backup}"));
        builder.write(
            guest,
            CONF,
            content,
            0o644,
            format!("restore the administrator's NetworkManager.conf from {backup}"),
        );
    } else if !changed.is_empty() {
        let mode = guest.stat(CONF).map_or(0o644, |s| s.mode & 0o7777);
        builder.write(
            guest,
            CONF,
            content,
            mode,
            format!(
                "let NetworkManager manage the interfaces: {}",
                changed.join("; ")
            ),
        );
    }
}

/// Notes drop-ins that keep devices away from NetworkManager.
fn note_drop_ins(guest: &dyn GuestRead, builder: &mut PlanBuilder) {
    let drop_ins = guest
        .list(CONF_D)
        .into_iter()
        .filter(|e| e.kind == FileKind::Regular && e.name.ends_with(".conf"))
        .take(MAX_DROP_INS);
    for entry in drop_ins {
        let path = format!("{CONF_D}/{}", entry.name);
        let ini = Ini::parse(&guest.read_text(&path).unwrap_or_default());
        if let Some(devices) = ini.get("keyfile", "unmanaged-devices") {
            builder.note(format!(
                "{path}: [keyfile] unmanaged-devices={devices} left as is; remove it if NetworkManager should manage them"
            ));
        }
    }
}
