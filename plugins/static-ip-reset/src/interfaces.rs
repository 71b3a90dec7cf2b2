//! Debian/Ubuntu ifupdown: `/etc/network/interfaces` and `interfaces.d/*`.
//!
//! The format has no MAC, so a stanza belongs to a NIC by its device name.
//! A static NIC's `iface <dev> inet ...` stanza becomes `inet static` with
//! `address`/`gateway`/`dns-*` options first and every other option (`mtu`,
//! `up ...`) kept; an `inet6` stanza is handled the same way when IPv6
//! addresses were recorded. Stanzas of other devices, `auto`/`allow-hotplug`
//! and `source` lines stay as they are.

use crate::files::{self, HEADER};
use crate::nic::{Nics, Static};
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder};

const MAIN: &str = "/etc/network/interfaces";
const DEFAULT_INDENT: &str = "    ";

/// Words that start a new stanza (interfaces(5)).
const STANZA_WORDS: &[&str] = &[
    "iface",
    "mapping",
    "auto",
    "source",
    "source-directory",
    "no-auto-down",
    "no-scripts",
];

/// Options this step owns in a rewritten stanza, and those that only mean
/// something with DHCP (ifup rejects them on a static stanza).
const OWNED_OPTIONS: &[&str] = &[
    "address",
    "netmask",
    "gateway",
    "broadcast",
    "network",
    "dns-nameservers",
    "dns-search",
    "dns-domain",
    "hostname",
    "leasehours",
    "leasetime",
    "vendor",
    "client",
    "dhcp",
    "request_prefix",
];

fn starts_stanza(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or_default();
    STANZA_WORDS.contains(&word) || word.starts_with("allow-")
}

/// `(device, family, method)` of an `iface` line.
fn iface_of(line: &str) -> Option<(&str, &str, &str)> {
    let mut words = line.split_whitespace();
    if words.next()? != "iface" {
        return None;
    }
    Some((words.next()?, words.next()?, words.next()?))
}

/// Which NICs (by index) have an `iface` stanza.
pub fn covered(guest: &dyn GuestRead, nics: &Nics) -> Vec<usize> {
    let mut out = Vec::new();
    for path in NetSystem::DebianInterfaces.files(guest) {
        for line in guest.read_text(&path).unwrap_or_default().lines() {
            if let Some(i) = iface_of(line).and_then(|(dev, _, _)| nics.owner(None, Some(dev))) {
                out.push(i);
            }
        }
    }
    out
}

/// Rewrites the stanzas of static NICs, and appends stanzas for each static
/// NIC in `create` to `/etc/network/interfaces`.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, create: &[usize], plan: &mut PlanBuilder) {
    let paths = NetSystem::DebianInterfaces.files(guest);
    let texts: Vec<(String, String)> = paths
        .iter()
        .filter_map(|p| Some((p.clone(), guest.read_text(p)?)))
        .collect();
    // Devices brought up at boot, across every file.
    let mut started: Vec<String> = Vec::new();
    for (_, text) in &texts {
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or_default();
            if first == "auto" || first.starts_with("allow-") {
                started.extend(words.map(str::to_string));
            }
        }
    }
    let mut wrote_main = false;
    for (path, text) in &texts {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for (_, nic, s) in nics.statics() {
            let Some(device) = &nic.device else { continue };
            if rewrite_device(&mut lines, device, s, started.contains(device)) {
                started.push(device.clone());
                plan.note(format!("{path}: static addressing for {}", nic.label()));
            }
        }
        if path == MAIN {
            wrote_main = true;
            append_created(&mut lines, nics, create, plan);
        }
        let mode = files::mode_of(guest, path, 0o644);
        plan.write(
            guest,
            path,
            files::join_lines(&lines),
            mode,
            "restore the static addressing recorded on premises",
        );
    }
    if !wrote_main {
        let mut lines = vec![
            HEADER.to_string(),
            "source /etc/network/interfaces.d/*".to_string(),
            String::new(),
            "auto lo".to_string(),
            "iface lo inet loopback".to_string(),
        ];
        append_created(&mut lines, nics, create, plan);
        plan.write(
            guest,
            MAIN,
            files::join_lines(&lines),
            0o644,
            "the NIC had no configuration: create it with the static addressing recorded on premises",
        );
    }
}

fn append_created(lines: &mut Vec<String>, nics: &Nics, create: &[usize], plan: &mut PlanBuilder) {
    let indent = file_indent(lines);
    for &index in create {
        let Some((nic, s)) = nics.static_at(index) else {
            continue;
        };
        let Some(device) = &nic.device else { continue };
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push(format!("auto {device}"));
        for (family, options) in [("inet", v4_options(s)), ("inet6", v6_options(s))] {
            if options.is_empty() {
                continue;
            }
            lines.push(format!("iface {device} {family} static"));
            lines.extend(options.into_iter().map(|o| format!("{indent}{o}")));
        }
        plan.note(format!("{MAIN}: stanza added for {}", nic.label()));
    }
}

/// DNS goes with the IPv4 stanza, or the IPv6 one when there is no IPv4.
fn dns_options(s: &Static) -> Vec<String> {
    let mut out = Vec::new();
    if !s.dns.is_empty() {
        let servers: Vec<String> = s.dns.iter().map(|d| d.to_string()).collect();
        out.push(format!("dns-nameservers {}", servers.join(" ")));
    }
    if !s.search.is_empty() {
        out.push(format!("dns-search {}", s.search.join(" ")));
    }
    out
}

fn v4_options(s: &Static) -> Vec<String> {
    if s.v4.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> =
        s.v4.iter()
            .map(|(a, p)| format!("address {a}/{p}"))
            .collect();
    if let Some(gw) = s.gateway4 {
        out.push(format!("gateway {gw}"));
    }
    out.extend(dns_options(s));
    out
}

fn v6_options(s: &Static) -> Vec<String> {
    if s.v6.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> =
        s.v6.iter()
            .map(|(a, p)| format!("address {a}/{p}"))
            .collect();
    if let Some(gw) = s.gateway6 {
        out.push(format!("gateway {gw}"));
    }
    if s.v4.is_empty() {
        out.extend(dns_options(s));
    }
    out
}

/// Rewrites `device`'s stanzas in `lines`; adds an `inet6` stanza after the
/// `inet` one when IPv6 was recorded and there is none, and `auto <dev>`
/// when nothing starts the device. Whether the file had the device.
fn rewrite_device(lines: &mut Vec<String>, device: &str, s: &Static, started: bool) -> bool {
    let file_indent = file_indent(lines);
    let mut found = false;
    let mut has_v6 = false;
    let mut inet_end = None;
    let mut first_iface = None;
    let mut i = 0;
    // Each pass either moves past a line or rewrites one stanza and moves past
    // it, so the loop ends within the file's length plus what it inserts.
    while i < lines.len() {
        let Some((dev, family)) = lines
            .get(i)
            .and_then(|l| iface_of(l))
            .map(|(d, f, _)| (d.to_string(), f.to_string()))
        else {
            i += 1;
            continue;
        };
        let family = family.as_str();
        if dev != device || (family != "inet" && family != "inet6") {
            i += 1;
            continue;
        }
        found = true;
        first_iface.get_or_insert(i);
        let options = if family == "inet" {
            v4_options(s)
        } else {
            has_v6 = true;
            v6_options(s)
        };
        let end = stanza_end(lines, i);
        if options.is_empty() {
            // Nothing recorded for this family: leave the stanza.
            if family == "inet" {
                inet_end = Some(end);
            }
            i = end;
            continue;
        }
        let body: Vec<String> = lines
            .get(i + 1..end)
            .map(<[String]>::to_vec)
            .unwrap_or_default();
        let indent = body
            .iter()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| {
                l.get(..l.len() - l.trim_start().len())
                    .unwrap_or_default()
                    .to_string()
            })
            .filter(|ind| !ind.is_empty())
            .unwrap_or_else(|| file_indent.clone());
        let kept = body.into_iter().filter(|l| {
            let word = l.split_whitespace().next().unwrap_or_default();
            !OWNED_OPTIONS.contains(&word)
        });
        let mut stanza = vec![format!("iface {device} {family} static")];
        stanza.extend(options.into_iter().map(|o| format!("{indent}{o}")));
        stanza.extend(kept);
        let len = stanza.len();
        lines.splice(i..end, stanza);
        if family == "inet" {
            inet_end = Some(i + len);
        }
        i += len;
    }
    if !found {
        return false;
    }
    if !has_v6 && !s.v6.is_empty() {
        let at = inet_end.unwrap_or(lines.len());
        let mut stanza = vec![format!("iface {device} inet6 static")];
        stanza.extend(
            v6_options(s)
                .into_iter()
                .map(|o| format!("{file_indent}{o}")),
        );
        lines.splice(at..at, stanza);
    }
    if !started && let Some(at) = first_iface {
        lines.insert(at, format!("auto {device}"));
    }
    true
}

/// The index after the last line of the stanza starting at `start`; blank
/// and comment lines that precede the next stanza stay outside it.
fn stanza_end(lines: &[String], start: usize) -> usize {
    let mut end = start + 1;
    let mut last_option = end;
    while let Some(line) = lines.get(end) {
        if starts_stanza(line) {
            break;
        }
        end += 1;
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            last_option = end;
        }
    }
    last_option
}

/// The indentation the file's option lines use (a tab, four spaces...), so
/// added lines look like the rest.
fn file_indent(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| {
            let t = l.trim_start();
            t.len() < l.len() && !t.is_empty() && !t.starts_with('#') && !starts_stanza(t)
        })
        .and_then(|l| l.get(..l.len() - l.trim_start().len()))
        .map_or_else(|| DEFAULT_INDENT.to_string(), str::to_string)
}
