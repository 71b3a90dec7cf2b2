//! NetworkManager connection profiles a cloud agent set aside.
//!
//! Agents that take over the network move `system-connections/*` out of the
//! way as `*.bak` (or rpm leaves `*.rpmsave`). When the directory holds no
//! profile any more but such copies, they are put back under their original
//! names (mode 0600: NetworkManager ignores keyfiles others can read). A
//! directory with live profiles is left alone; its copies are only noted.
//! Static addressing from the recorded NICs is the `static-ip-reset` step's
//! job, which runs after this one.

use homeward_sdk::guest::{GuestRead, PlanBuilder};
use homeward_sdk::types::FileKind;

/// The keyfile directory.
pub const DIR: &str = "/etc/NetworkManager/system-connections";
/// Suffixes of set-aside copies.
const BACKUP_SUFFIXES: &[&str] = &[".bak", ".rpmsave", ".dpkg-old", ".dpkg-bak", ".orig"];
/// At most this many entries are looked at.
const MAX_ENTRIES: usize = 256;

/// The original name of a set-aside copy.
fn original_name(name: &str) -> Option<&str> {
    BACKUP_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
}

/// Plans the restore of set-aside profiles.
pub fn restore(guest: &dyn GuestRead, builder: &mut PlanBuilder) {
    let entries: Vec<String> = guest
        .list(DIR)
        .into_iter()
        .filter(|e| e.kind == FileKind::Regular)
        .take(MAX_ENTRIES)
        .map(|e| e.name)
        .collect();
    let (backups, live): (Vec<&String>, Vec<&String>) =
        entries.iter().partition(|n| original_name(n).is_some());
    if backups.is_empty() {
        if live.is_empty() {
            builder.note(format!("{DIR}: no connection profiles"));
        } else {
            builder.note(format!("{DIR}: {} connection profile(s)", live.len()));
        }
        return;
    }
    if !live.is_empty() {
        let names: Vec<&str> = backups.iter().map(|n| n.as_str()).collect();
        builder.note(format!(
            "{DIR}: has live profiles; set-aside copies left as is: {}",
            names.join(", ")
        ));
        return;
    }
    let mut restored: Vec<&str> = Vec::new();
    for backup in backups {
        let Some(original) = original_name(backup) else {
            continue;
        };
        if restored.contains(&original) {
            builder.note(format!(
                "{DIR}/{backup}: {original} already restored from another copy"
            ));
            continue;
        }
        let Ok(content) = guest.read_file(&format!("{DIR}/{backup}")) else {
            builder.note(format!("{DIR}/{backup}: cannot be read; not restored"));
            continue;
        };
        restored.push(original);
        builder.note(format!("{DIR}/{original}: restored from {backup}"));
        builder.write(
            guest,
            &format!("{DIR}/{original}"),
            content,
            0o600,
            format!("restore the connection profile the cloud agent set aside as {backup}"),
        );
    }
}
