//! Small helpers every writer shares: keeping a file's mode, editing
//! `KEY=value` files without touching what is already right, and the header
//! of the files this step creates.

use homeward_sdk::guest::{GuestRead, ShellVars};

/// The first line of every file this step creates, so an operator knows
/// where it came from.
pub const HEADER: &str = "# Written by Homeward (static-ip-reset): the static addressing recorded when this VM was protected on premises.";

/// The permission bits of an existing file, `default` when it is absent.
/// A replaced file keeps its mode (some readers, like NetworkManager, check
/// it).
pub fn mode_of(guest: &dyn GuestRead, path: &str, default: u32) -> u32 {
    guest.stat(path).map_or(default, |s| s.mode & 0o7777)
}

/// Sets `key` only when its value differs, so a file that is already right
/// keeps its exact spelling (quotes included) and yields no change.
pub fn set(vars: &mut ShellVars, key: &str, value: &str) {
    if vars.get(key).as_deref() != Some(value) {
        vars.set(key, value);
    }
}

/// Removes every key `stale` says is one this step owns, except those in
/// `keep`: addresses from an older configuration must not survive next to
/// the restored ones (`IPADDR1` left over beside a new `IPADDR`).
pub fn remove_stale(vars: &mut ShellVars, stale: impl Fn(&str) -> bool, keep: &[(String, String)]) {
    let keys: Vec<String> = vars
        .entries()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| stale(k) && !keep.iter().any(|(kk, _)| kk == k))
        .collect();
    for key in keys {
        vars.remove(&key);
    }
}

/// Whether `key` is `prefix` followed by nothing or by digits only
/// (`IPADDR`, `IPADDR0`, `IPADDR12`).
pub fn numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
}

/// `lines` joined back into a file, with a final newline when there is text.
pub fn join_lines(lines: &[String]) -> String {
    let mut out = String::new();
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}
