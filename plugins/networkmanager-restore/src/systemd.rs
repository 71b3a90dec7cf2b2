//! systemd: where a unit file is, whether it is masked, and enabling it the
//! way `systemctl enable` does.
//!
//! `systemctl enable` reads the unit's `[Install]` section and creates one
//! symlink per `WantedBy=`/`RequiredBy=` target (in `<target>.wants/` or
//! `.requires/`) and per `Alias=`, then does the same for every `Also=` unit.
//! NetworkManager's own unit asks for `multi-user.target.wants`, the D-Bus
//! alias `dbus-org.freedesktop.NetworkManager.service`, and (through `Also=`)
//! the dispatcher and `NetworkManager-wait-online.service` in
//! `network-online.target.wants`; this module creates exactly what the
//! guest's unit files say, so a distribution's variant is honoured.

use crate::plan::ensure_dirs;
use homeward_sdk::guest::{Family, GuestRead, PlanBuilder};
use homeward_sdk::types::FileKind;

/// NetworkManager's unit.
pub const NM_UNIT: &str = "NetworkManager.service";
/// Where `systemctl enable` writes.
pub const ETC: &str = "/etc/systemd/system";
/// How many units one enable may visit through `Also=` (NetworkManager
/// names two; a loop or a hostile unit stops here).
const MAX_UNITS: usize = 8;

/// The unit file systemd would load for `unit`: an administrator's copy in
/// `/etc/systemd/system` (not a mask), else the package's. Debian-family
/// packages ship units in `/lib`, the others in `/usr/lib`.
pub fn unit_path(guest: &dyn GuestRead, unit: &str, family: Family) -> Option<String> {
    let local = format!("{ETC}/{unit}");
    if guest
        .stat(&local)
        .is_ok_and(|s| s.kind == FileKind::Regular && s.size > 0)
    {
        return Some(local);
    }
    let vendor: [&str; 2] = if family == Family::Debian {
        ["/lib/systemd/system", "/usr/lib/systemd/system"]
    } else {
        ["/usr/lib/systemd/system", "/lib/systemd/system"]
    };
    vendor
        .iter()
        .map(|dir| format!("{dir}/{unit}"))
        .find(|p| guest.exists(p))
}

/// Whether `unit` is masked: `/etc/systemd/system/<unit>` is a symlink to
/// `/dev/null` or an empty file.
pub fn is_masked(guest: &dyn GuestRead, unit: &str) -> bool {
    let path = format!("{ETC}/{unit}");
    match guest.stat(&path) {
        Ok(s) if s.kind == FileKind::Symlink => {
            guest.read_link(&path).is_ok_and(|t| t == "/dev/null")
        }
        Ok(s) => s.kind == FileKind::Regular && s.size == 0,
        Err(_) => false,
    }
}

/// Whether `unit` is wanted by `multi-user.target` (what "enabled" means
/// for NetworkManager and for the first-boot unit).
pub fn is_enabled(guest: &dyn GuestRead, unit: &str) -> bool {
    link_points_to(
        guest,
        &format!("{ETC}/multi-user.target.wants/{unit}"),
        unit,
    )
}

/// Removes `unit`'s mask.
pub fn unmask(guest: &dyn GuestRead, builder: &mut PlanBuilder, unit: &str) {
    if is_masked(guest, unit) {
        builder.note(format!("{unit}: masked ({ETC}/{unit}); unmasking"));
        builder.remove(
            guest,
            &format!("{ETC}/{unit}"),
            format!("unmask {unit} (systemctl unmask)"),
        );
    }
}

/// What a unit's `[Install]` section asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Install {
    /// `WantedBy=` targets.
    pub wanted_by: Vec<String>,
    /// `RequiredBy=` targets.
    pub required_by: Vec<String>,
    /// `Alias=` names.
    pub alias: Vec<String>,
    /// `Also=` units, enabled with it.
    pub also: Vec<String>,
}

/// Parses the `[Install]` section of a unit file. Lists accumulate over
/// lines and an empty assignment clears them, as in systemd; names that are
/// not plain unit names are dropped (they would become paths).
pub fn parse_install(text: &str) -> Install {
    let mut install = Install::default();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[Install]";
            continue;
        }
        if !inside || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let list = match key.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "Alias" => &mut install.alias,
            "Also" => &mut install.also,
            _ => continue,
        };
        if value.trim().is_empty() {
            list.clear();
        }
        for name in value.split_whitespace().filter(|n| is_unit_name(n)) {
            if !list.iter().any(|n| n == name) {
                list.push(name.to_string());
            }
        }
    }
    install
}

/// A concrete unit name: `name.suffix`, systemd's characters, no path, no
/// template without an instance.
fn is_unit_name(name: &str) -> bool {
    name.len() <= 255
        && !name.starts_with('.')
        && name.contains('.')
        && !name.contains("@.")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":-_.@\\".contains(c))
}

/// Whether `link` is a symlink to a file named `unit` (wherever systemctl
/// put it: `/lib` or `/usr/lib`, absolute or relative).
fn link_points_to(guest: &dyn GuestRead, link: &str, unit: &str) -> bool {
    guest.stat(link).is_ok_and(|s| s.kind == FileKind::Symlink)
        && guest
            .read_link(link)
            .is_ok_and(|t| t.rsplit('/').next() == Some(unit))
}

/// Enables `unit` as `systemctl enable` would: unmasks it and every `Also=`
/// unit, and creates the links their `[Install]` sections name.
pub fn enable(guest: &dyn GuestRead, builder: &mut PlanBuilder, unit: &str, family: Family) {
    let mut queue = vec![unit.to_string()];
    let mut visited = 0;
    while visited < queue.len() && visited < MAX_UNITS {
        let Some(current) = queue.get(visited).cloned() else {
            break;
        };
        visited += 1;
        unmask(guest, builder, &current);
        let Some(path) = unit_path(guest, &current, family) else {
            builder.note(format!("{current}: no unit file; not enabled"));
            continue;
        };
        let Some(text) = guest.read_text(&path) else {
            builder.note(format!("{current}: {path} cannot be read; not enabled"));
            continue;
        };
        let install = parse_install(&text);
        for (targets, dir_suffix) in [
            (&install.wanted_by, "wants"),
            (&install.required_by, "requires"),
        ] {
            for target in targets {
                let dir = format!("{ETC}/{target}.{dir_suffix}");
                link_unit(guest, builder, &dir, &current, &path, target);
            }
        }
        for alias in &install.alias {
            alias_unit(guest, builder, alias, &current, &path);
        }
        for also in install.also {
            if !queue.contains(&also) {
                queue.push(also);
            }
        }
    }
}

/// `<dir>/<unit>` → the unit file, unless a link to that unit is there.
fn link_unit(
    guest: &dyn GuestRead,
    builder: &mut PlanBuilder,
    dir: &str,
    unit: &str,
    path: &str,
    target: &str,
) {
    let link = format!("{dir}/{unit}");
    if link_points_to(guest, &link, unit) {
        return;
    }
    ensure_dirs(guest, builder, dir);
    builder.symlink(
        guest,
        &link,
        path,
        format!("enable {unit}: {target} wants it ([Install] of {path})"),
    );
}

/// `/etc/systemd/system/<alias>` → the unit file. An alias that already
/// names another unit (SUSE's `network.service` → wicked) is left alone, as
/// `systemctl enable` without `--force` does, and noted.
fn alias_unit(
    guest: &dyn GuestRead,
    builder: &mut PlanBuilder,
    alias: &str,
    unit: &str,
    path: &str,
) {
    let link = format!("{ETC}/{alias}");
    if link_points_to(guest, &link, unit) {
        return;
    }
    if guest.stat(&link).is_ok() {
        let owner = guest
            .read_link(&link)
            .unwrap_or_else(|_| "a file".to_string());
        builder.note(format!(
            "alias {alias} of {unit} is taken ({link} → {owner}): left as is; to hand it to {unit} run `systemctl enable --force {unit}`"
        ));
        return;
    }
    ensure_dirs(guest, builder, ETC);
    builder.symlink(
        guest,
        &link,
        path,
        format!("enable {unit}: alias {alias} ([Install] of {path})"),
    );
}

/// The unit `network.service` is an alias of, when it is not
/// NetworkManager (SUSE's wicked, the legacy network scripts).
pub fn network_service_owner(guest: &dyn GuestRead) -> Option<String> {
    let link = format!("{ETC}/network.service");
    if !guest.stat(&link).is_ok_and(|s| s.kind == FileKind::Symlink) {
        return None;
    }
    let target = guest.read_link(&link).ok()?;
    let unit = target.rsplit('/').next().unwrap_or(&target).to_string();
    (unit != NM_UNIT).then_some(unit)
}
