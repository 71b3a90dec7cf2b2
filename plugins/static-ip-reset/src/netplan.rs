//! netplan (`/etc/netplan/*.yaml`, Ubuntu 18.04+).
//!
//! netplan merges every file in name order, mappings key by key. Overriding
//! a NIC from a later file is therefore unsafe: cloud-init's definition
//! matches `driver: hv_netvsc`, and a merged `match` would keep that and
//! never match the on-premises NIC; sequences (addresses, routes) would pile
//! up. So the step owns one file, `99-homeward-static.yaml`, with a complete
//! definition of every static NIC, and removes the definitions of those NICs
//! from the other files (found by `match: macaddress`, else by `set-name` or
//! the id). Scalar options of a removed definition (`mtu`, `optional`...)
//! move into the owned file; anything else is named in a note.
//!
//! There is no YAML library here: the files are read by indentation, which
//! is enough for block-style netplan; flow-style `network` or `ethernets`
//! mappings are refused with what to do by hand.

use crate::files::{self, HEADER};
use crate::nic::{Nic, Nics, Static};
use homeward_sdk::Error;
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder, normalize_mac};

/// The file this step owns; netplan reads it last.
pub const OWNED: &str = "/etc/netplan/99-homeward-static.yaml";

/// Keys of a definition the owned file writes itself.
const WRITTEN_KEYS: &[&str] = &[
    "match",
    "set-name",
    "dhcp4",
    "dhcp6",
    "dhcp4-overrides",
    "dhcp6-overrides",
    "accept-ra",
    "addresses",
    "routes",
    "gateway4",
    "gateway6",
    "nameservers",
];

/// One netplan line: its indentation and, for `key: value` lines, both.
struct Line<'a> {
    indent: usize,
    key: Option<&'a str>,
    value: &'a str,
}

fn parse_line(raw: &str) -> Option<Line<'_>> {
    let text = raw.trim_start();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let indent = raw.len() - text.len();
    // A key ends at the first `:` followed by a space or the end of line.
    let split = text
        .char_indices()
        .find(|&(i, c)| {
            c == ':'
                && text
                    .get(i + 1..)
                    .is_none_or(|r| r.is_empty() || r.starts_with(' '))
        })
        .map(|(i, _)| i);
    let (key, value) = match split {
        Some(i) if !text.starts_with("- ") => (
            Some(
                text.get(..i)
                    .unwrap_or_default()
                    .trim()
                    .trim_matches(['"', '\'']),
            ),
            text.get(i + 1..).unwrap_or_default(),
        ),
        _ => (None, text),
    };
    Some(Line {
        indent,
        key,
        value: strip_comment(value).trim(),
    })
}

fn strip_comment(value: &str) -> &str {
    match value.find(" #") {
        Some(i) => value.get(..i).unwrap_or(value),
        None => value,
    }
}

fn unquote(value: &str) -> &str {
    value.trim().trim_matches(['"', '\''])
}

/// The index after the last content line of the block whose key is at
/// `start`.
fn block_end(lines: &[&str], start: usize) -> usize {
    let indent = lines
        .get(start)
        .and_then(|l| parse_line(l))
        .map_or(0, |l| l.indent);
    let mut end = start + 1;
    let mut i = start + 1;
    while let Some(raw) = lines.get(i) {
        match parse_line(raw) {
            Some(l) if l.indent <= indent => break,
            Some(_) => end = i + 1,
            None => {}
        }
        i += 1;
    }
    end
}

/// The key lines directly inside the block at `start`.
fn children(lines: &[&str], start: usize) -> Vec<usize> {
    let end = block_end(lines, start);
    let mut indent = None;
    let mut out = Vec::new();
    for i in start + 1..end {
        let Some(l) = lines.get(i).and_then(|r| parse_line(r)) else {
            continue;
        };
        let want = *indent.get_or_insert(l.indent);
        if l.indent == want && l.key.is_some() {
            out.push(i);
        }
    }
    out
}

fn child<'a>(lines: &[&'a str], start: usize, key: &str) -> Option<(usize, Line<'a>)> {
    children(lines, start).into_iter().find_map(|i| {
        let l = parse_line(lines.get(i)?)?;
        (l.key == Some(key)).then_some((i, l))
    })
}

/// One ethernet definition.
struct Definition {
    id: String,
    start: usize,
    end: usize,
    mac: Option<String>,
    device: Option<String>,
}

/// The `ethernets` key line of a file, and its definitions.
fn definitions(path: &str, lines: &[&str]) -> Result<Option<(usize, Vec<Definition>)>, Error> {
    let flow = |what: &str| {
        Error::unsupported(format!(
            "{path}: the {what} mapping is written in YAML flow style ({{...}}), which this step \
             does not edit; rewrite it in block style, or set the static addresses in it by hand"
        ))
    };
    let Some(network) = (0..lines.len()).find(|&i| {
        lines
            .get(i)
            .and_then(|r| parse_line(r))
            .is_some_and(|l| l.indent == 0 && l.key == Some("network"))
    }) else {
        return Ok(None);
    };
    if lines
        .get(network)
        .and_then(|r| parse_line(r))
        .is_some_and(|l| !l.value.is_empty())
    {
        return Err(flow("network"));
    }
    let Some((ethernets, eth_line)) = child(lines, network, "ethernets") else {
        return Ok(None);
    };
    if !eth_line.value.is_empty() && eth_line.value != "{}" {
        return Err(flow("ethernets"));
    }
    let mut defs = Vec::new();
    for start in children(lines, ethernets) {
        let Some(head) = lines.get(start).and_then(|r| parse_line(r)) else {
            continue;
        };
        let id = head.key.unwrap_or_default().to_string();
        let end = block_end(lines, start);
        // A one-line flow definition (`eth0: {dhcp4: true}`) still names its
        // MAC somewhere in the text.
        let inline_mac = head
            .value
            .split(|c: char| c.is_whitespace() || c == ',' || c == '{' || c == '}')
            .find_map(|w| normalize_mac(unquote(w)));
        let matched = child(lines, start, "match");
        let mac = matched
            .as_ref()
            .and_then(|(m, _)| child(lines, *m, "macaddress"))
            .map(|(_, l)| unquote(l.value).to_string())
            .or(inline_mac);
        let set_name = child(lines, start, "set-name").map(|(_, l)| unquote(l.value).to_string());
        let device = set_name.or_else(|| matched.is_none().then(|| id.clone()));
        defs.push(Definition {
            id,
            start,
            end,
            mac,
            device,
        });
    }
    Ok(Some((ethernets, defs)))
}

/// MAC → device name pairs the definitions state.
pub fn names(guest: &dyn GuestRead) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in NetSystem::Netplan.files(guest) {
        let text = guest.read_text(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if let Ok(Some((_, defs))) = definitions(&path, &lines) {
            out.extend(defs.into_iter().filter_map(|d| Some((d.mac?, d.device?))));
        }
    }
    out
}

/// Removes the definitions of static NICs from the other files (keeping
/// their scalar options for the owned file), follows MAC changes in the
/// definitions left, and writes the owned file.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, plan: &mut PlanBuilder) -> Result<(), Error> {
    // Scalar options carried over, per NIC index.
    let mut carried: Vec<(usize, Vec<String>)> = Vec::new();
    for path in NetSystem::Netplan.files(guest) {
        let Some(text) = guest.read_text(&path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().collect();
        let Some((ethernets, defs)) = definitions(&path, &lines)? else {
            continue;
        };
        let mut drop = vec![false; lines.len()];
        let mut kept_defs = 0usize;
        for def in &defs {
            let owner = nics.owner(def.mac.as_deref(), def.device.as_deref());
            let Some((index, nic)) = owner.and_then(|i| nics.static_at(i).map(|(n, _)| (i, n)))
            else {
                kept_defs += 1;
                continue;
            };
            let (scalars, dropped) = options_of(&lines, def.start);
            match carried.iter_mut().find(|(i, _)| *i == index) {
                Some((_, list)) => {
                    for s in scalars {
                        if !list.iter().any(|l| key_of(l) == key_of(&s)) {
                            list.push(s);
                        }
                    }
                }
                None => carried.push((index, scalars)),
            }
            if path == OWNED {
                continue;
            }
            for flag in drop.get_mut(def.start..def.end).into_iter().flatten() {
                *flag = true;
            }
            plan.note(format!(
                "{path}: definition {:?} of {} moved to {OWNED}",
                def.id,
                nic.label()
            ));
            if !dropped.is_empty() {
                plan.note(format!(
                    "{path}: {:?} also had {}; not carried over, add them to {OWNED} by hand if \
                     they are still needed",
                    def.id,
                    dropped.join(", ")
                ));
            }
        }
        if path == OWNED {
            continue;
        }
        if kept_defs == 0 && !defs.is_empty() {
            // An empty `ethernets:` would be null, which netplan rejects.
            for flag in drop
                .get_mut(ethernets..block_end(&lines, ethernets))
                .into_iter()
                .flatten()
            {
                *flag = true;
            }
        }
        let out: Vec<String> = lines
            .iter()
            .zip(&drop)
            .filter(|(_, d)| !**d)
            .map(|(l, _)| follow_mac(l, nics))
            .collect();
        let mode = files::mode_of(guest, &path, 0o600);
        plan.write(
            guest,
            &path,
            files::join_lines(&out),
            mode,
            "the NIC is defined in full in the file Homeward owns; an earlier definition would \
             merge into it",
        );
    }
    let text = owned_file(nics, &carried);
    plan.write(
        guest,
        OWNED,
        text,
        0o600,
        "restore the static addressing recorded on premises (netplan reads this file last)",
    );
    Ok(())
}

fn key_of(line: &str) -> &str {
    line.split(':').next().unwrap_or_default().trim()
}

/// A definition's scalar options to carry (`mtu: 9000`), and the keys of
/// the other options it has that the owned file does not write.
fn options_of(lines: &[&str], start: usize) -> (Vec<String>, Vec<String>) {
    let mut scalars = Vec::new();
    let mut dropped = Vec::new();
    for i in children(lines, start) {
        let Some(l) = lines.get(i).and_then(|r| parse_line(r)) else {
            continue;
        };
        let key = l.key.unwrap_or_default();
        if WRITTEN_KEYS.contains(&key) {
            continue;
        }
        let is_block = block_end(lines, i) > i + 1;
        if l.value.is_empty() || is_block || l.value.starts_with(['[', '{']) {
            dropped.push(key.to_string());
        } else {
            scalars.push(format!("{key}: {}", l.value));
        }
    }
    (scalars, dropped)
}

/// A `macaddress:` line with a recorded NIC's old MAC, pointed at its new one.
fn follow_mac(line: &str, nics: &Nics) -> String {
    let Some(l) = parse_line(line) else {
        return line.to_string();
    };
    if l.key != Some("macaddress") {
        return line.to_string();
    }
    let Some(nic) = nics.all.iter().find(|n| n.has_mac(unquote(l.value))) else {
        return line.to_string();
    };
    if normalize_mac(unquote(l.value)).as_deref() == Some(nic.mac.as_str()) {
        return line.to_string();
    }
    format!("{}macaddress: \"{}\"", " ".repeat(l.indent), nic.mac)
}

/// The netplan id of a NIC in the owned file.
fn id_of(nic: &Nic) -> String {
    nic.device
        .clone()
        .unwrap_or_else(|| format!("nic-{}", nic.mac.replace(':', "")))
}

fn owned_file(nics: &Nics, carried: &[(usize, Vec<String>)]) -> String {
    let mut out = String::new();
    out.push_str(HEADER);
    out.push('\n');
    out.push_str("# Each NIC below is defined only here: do not define it in another file.\n");
    out.push_str("network:\n  version: 2\n  ethernets:\n");
    for (index, nic, s) in nics.statics() {
        out.push_str(&format!("    {}:\n", id_of(nic)));
        out.push_str(&format!(
            "      match:\n        macaddress: \"{}\"\n",
            nic.mac
        ));
        if let Some(device) = &nic.device {
            out.push_str(&format!("      set-name: {device}\n"));
        }
        out.push_str("      dhcp4: false\n");
        if !s.v6.is_empty() {
            out.push_str("      dhcp6: false\n      accept-ra: false\n");
        }
        if let Some((_, extra)) = carried.iter().find(|(i, _)| *i == index) {
            for line in extra {
                out.push_str(&format!("      {line}\n"));
            }
        }
        write_addressing(&mut out, s);
    }
    out
}

fn write_addressing(out: &mut String, s: &Static) {
    out.push_str("      addresses:\n");
    for (a, p) in &s.v4 {
        out.push_str(&format!("        - \"{a}/{p}\"\n"));
    }
    for (a, p) in &s.v6 {
        out.push_str(&format!("        - \"{a}/{p}\"\n"));
    }
    let gateways: Vec<String> = s
        .gateway4
        .map(|g| g.to_string())
        .into_iter()
        .chain(s.gateway6.map(|g| g.to_string()))
        .collect();
    if !gateways.is_empty() {
        out.push_str("      routes:\n");
        for gw in gateways {
            out.push_str(&format!("        - to: default\n          via: \"{gw}\"\n"));
        }
    }
    if !s.dns.is_empty() || !s.search.is_empty() {
        out.push_str("      nameservers:\n");
        if !s.dns.is_empty() {
            out.push_str("        addresses:\n");
            for d in &s.dns {
                out.push_str(&format!("          - \"{d}\"\n"));
            }
        }
        if !s.search.is_empty() {
            out.push_str("        search:\n");
            for d in &s.search {
                out.push_str(&format!("          - \"{d}\"\n"));
            }
        }
    }
}
