//! SysV init: whether NetworkManager's init script starts in the usual
//! runlevels, and enabling it as `chkconfig NetworkManager on` would.
//!
//! `chkconfig on` links `rcN.d/S<start><name>` → `../init.d/<name>` in
//! runlevels 2 to 5 (the script's `# chkconfig:` header gives the start
//! number) and drops that runlevel's `K..<name>` link.

use homeward_sdk::guest::{GuestRead, PlanBuilder};
use homeward_sdk::types::FileKind;

/// The runlevels `chkconfig on` enables when the header says `-`.
const DEFAULT_LEVELS: &str = "2345";
/// Start position when the script has no `# chkconfig:` header
/// (NetworkManager's own header says 23).
const DEFAULT_START: u32 = 23;

/// The base of the runlevel directories: `/etc/rc.d/rc` (RHEL) or `/etc/rc`
/// (Debian, SUSE).
fn rc_base(guest: &dyn GuestRead) -> &'static str {
    let rhel = guest
        .stat("/etc/rc.d/rc3.d")
        .is_ok_and(|s| s.kind == FileKind::Directory);
    if rhel { "/etc/rc.d/rc" } else { "/etc/rc" }
}

/// `(runlevels, start)` from the `# chkconfig: - 23 84` header.
fn header(text: &str) -> (String, u32) {
    let found = text.lines().take(100).find_map(|line| {
        let rest = line
            .trim_start_matches('#')
            .trim()
            .strip_prefix("chkconfig:")?;
        let mut words = rest.split_whitespace();
        let levels = words.next()?;
        let start = words.next()?.parse::<u32>().ok().filter(|s| *s < 100)?;
        let levels = if levels == "-" {
            DEFAULT_LEVELS.to_string()
        } else {
            levels.chars().filter(|c| ('0'..='6').contains(c)).collect()
        };
        Some((levels, start))
    });
    found.unwrap_or_else(|| (DEFAULT_LEVELS.to_string(), DEFAULT_START))
}

/// `S..<name>` / `K..<name>` with a two-digit position.
fn is_link_for(entry: &str, prefix: char, name: &str) -> bool {
    let mut chars = entry.chars();
    chars.next() == Some(prefix)
        && chars.next().is_some_and(|c| c.is_ascii_digit())
        && chars.next().is_some_and(|c| c.is_ascii_digit())
        && chars.as_str() == name
}

/// Whether `script` starts in runlevel 3 (the servers' default).
pub fn is_enabled(guest: &dyn GuestRead, script: &str) -> bool {
    let name = script.rsplit('/').next().unwrap_or(script);
    guest
        .list(&format!("{}3.d", rc_base(guest)))
        .iter()
        .any(|e| is_link_for(&e.name, 'S', name))
}

/// Enables `script` in its runlevels.
pub fn enable(guest: &dyn GuestRead, builder: &mut PlanBuilder, script: &str) {
    let name = script.rsplit('/').next().unwrap_or(script);
    let text = guest.read_text(script).unwrap_or_default();
    let (levels, start) = header(&text);
    let base = rc_base(guest);
    for level in levels.chars() {
        let dir = format!("{base}{level}.d");
        if guest.stat(&dir).is_err() {
            builder.note(format!(
                "{dir} does not exist: {name} not enabled in runlevel {level}"
            ));
            continue;
        }
        let entries = guest.list(&dir);
        for kill in entries.iter().filter(|e| is_link_for(&e.name, 'K', name)) {
            builder.remove(
                guest,
                &format!("{dir}/{}", kill.name),
                format!("chkconfig {name} on: do not stop it in runlevel {level}"),
            );
        }
        if !entries.iter().any(|e| is_link_for(&e.name, 'S', name)) {
            builder.symlink(
                guest,
                &format!("{dir}/S{start:02}{name}"),
                &format!("../init.d/{name}"),
                format!("chkconfig {name} on: start it in runlevel {level}"),
            );
        }
    }
}
