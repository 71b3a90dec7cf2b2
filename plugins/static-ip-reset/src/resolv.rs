//! `/etc/resolv.conf` as DHCP left it in the cloud (the cloud's resolver,
//! its search domain).
//!
//! NetworkManager, netconfig and network-scripts rewrite it from the restored
//! configuration at boot, but ifupdown without `resolvconf` never does, and
//! until the first boot every guest would resolve through the cloud. So a
//! regular file gets the recorded servers and domains; other lines (options,
//! comments) stay. A symlink (systemd-resolved, netconfig) belongs to its
//! service and is left alone.

use crate::files;
use crate::nic::Nics;
use homeward_sdk::guest::{GuestRead, PlanBuilder};
use homeward_sdk::types::FileKind;

const PATH: &str = "/etc/resolv.conf";

/// Rewrites the `nameserver`, `search` and `domain` lines when static NICs
/// recorded DNS servers.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, plan: &mut PlanBuilder) {
    let servers = nics.all_dns();
    if servers.is_empty() {
        return;
    }
    match guest.stat(PATH) {
        Ok(s) if s.kind == FileKind::Regular => {}
        Ok(s) if s.kind == FileKind::Symlink => {
            let target = guest.read_link(PATH).unwrap_or_default();
            plan.note(format!(
                "{PATH} links to {target}: left to the service that owns it"
            ));
            return;
        }
        _ => return,
    }
    let Some(text) = guest.read_text(PATH) else {
        return;
    };
    let search = nics.all_search();
    if already_right(&text, &servers, &search) {
        return;
    }
    let ours = servers
        .iter()
        .map(|s| format!("nameserver {s}"))
        .chain((!search.is_empty()).then(|| format!("search {}", search.join(" "))));
    let mut lines: Vec<String> = Vec::new();
    let mut insert_at = None;
    for line in text.lines() {
        let word = line.split_whitespace().next().unwrap_or_default();
        let replaced =
            word == "nameserver" || ((word == "search" || word == "domain") && !search.is_empty());
        if replaced {
            insert_at.get_or_insert(lines.len());
        } else {
            lines.push(line.to_string());
        }
    }
    let at = insert_at.unwrap_or(lines.len());
    lines.splice(at..at, ours);
    let mode = files::mode_of(guest, PATH, 0o644);
    plan.write(
        guest,
        PATH,
        files::join_lines(&lines),
        mode,
        "resolve through the DNS servers recorded on premises, not the cloud's",
    );
}

/// Whether the file already names exactly these servers, in this order, and
/// these search domains, wherever its lines are.
fn already_right(text: &str, servers: &[std::net::IpAddr], search: &[String]) -> bool {
    let mut found_servers = Vec::new();
    let mut found_search: Option<Vec<&str>> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => found_servers.push(words.next().unwrap_or_default()),
            Some("search") => found_search = Some(words.collect()),
            _ => {}
        }
    }
    let servers: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    found_servers == servers && (search.is_empty() || found_search.is_some_and(|f| f == search))
}
