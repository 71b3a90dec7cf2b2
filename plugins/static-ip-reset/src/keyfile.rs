//! NetworkManager keyfiles (`/etc/NetworkManager/system-connections/*.nmconnection`,
//! RHEL 9 and later, Rocky, Fedora, Ubuntu desktops).
//!
//! A profile belongs to a NIC by `[ethernet] mac-address`, else by
//! `[connection] interface-name`. For a static NIC `[ipv4]` (and `[ipv6]`
//! when IPv6 was recorded) become `method=manual` with `address1=IP/PREFIX,GW`,
//! `dns=`, `dns-search=`; every other key and section stays. Files are
//! written with mode 0600: NetworkManager ignores keyfiles other users can
//! read.

use crate::files::HEADER;
use crate::nic::{Nic, Nics, Static};
use homeward_sdk::guest::{GuestRead, NetSystem, PlanBuilder, normalize_mac};
use std::net::IpAddr;

/// Where profiles live.
pub const DIR: &str = "/etc/NetworkManager/system-connections";
const MODE: u32 = 0o600;

/// A keyfile kept line by line, so that editing a key leaves the rest as it
/// was.
struct KeyFile {
    lines: Vec<String>,
}

fn section_name(line: &str) -> Option<&str> {
    line.trim().strip_prefix('[')?.strip_suffix(']')
}

fn key_value(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    Some((k.trim(), v.trim()))
}

impl KeyFile {
    fn parse(text: &str) -> KeyFile {
        KeyFile {
            lines: text.lines().map(str::to_string).collect(),
        }
    }

    /// The line range of a section's body: after its header, up to the next
    /// header.
    fn section(&self, name: &str) -> Option<(usize, usize)> {
        let header = self
            .lines
            .iter()
            .position(|l| section_name(l) == Some(name))?;
        let end = self
            .lines
            .iter()
            .enumerate()
            .skip(header + 1)
            .find(|(_, l)| section_name(l).is_some())
            .map_or(self.lines.len(), |(i, _)| i);
        Some((header + 1, end))
    }

    fn get(&self, section: &str, key: &str) -> Option<String> {
        let (start, end) = self.section(section)?;
        self.lines
            .get(start..end)?
            .iter()
            .rev()
            .filter_map(|l| key_value(l))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    }

    fn keys(&self, section: &str) -> Vec<String> {
        let Some((start, end)) = self.section(section) else {
            return Vec::new();
        };
        self.lines
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .filter_map(|l| key_value(l).map(|(k, _)| k.to_string()))
            .collect()
    }

    /// Sets `key` in `section` when its value differs: in place, or after the
    /// section's last key; the section is added at the end when missing.
    fn set(&mut self, section: &str, key: &str, value: &str) {
        if self.get(section, key).as_deref() == Some(value) {
            return;
        }
        let line = format!("{key}={value}");
        let Some((start, end)) = self.section(section) else {
            if self.lines.last().is_some_and(|l| !l.trim().is_empty()) {
                self.lines.push(String::new());
            }
            self.lines.push(format!("[{section}]"));
            self.lines.push(line);
            return;
        };
        let at = (start..end).rev().find(|&i| {
            self.lines
                .get(i)
                .and_then(|l| key_value(l))
                .is_some_and(|(k, _)| k == key)
        });
        match at {
            Some(i) => {
                if let Some(l) = self.lines.get_mut(i) {
                    *l = line;
                }
            }
            None => {
                // After the last non-blank line, so the blank line before the
                // next section stays where it is.
                let last = (start..end)
                    .rev()
                    .find(|&i| self.lines.get(i).is_some_and(|l| !l.trim().is_empty()))
                    .map_or(start, |i| i + 1);
                self.lines.insert(last, line);
            }
        }
    }

    fn remove(&mut self, section: &str, key: &str) {
        let Some((start, end)) = self.section(section) else {
            return;
        };
        let mut i = end;
        while i > start {
            i -= 1;
            if self
                .lines
                .get(i)
                .and_then(|l| key_value(l))
                .is_some_and(|(k, _)| k == key)
            {
                self.lines.remove(i);
            }
        }
    }

    fn render(&self) -> String {
        crate::files::join_lines(&self.lines)
    }
}

/// One profile, read.
struct Profile {
    path: String,
    file: KeyFile,
    mac: Option<String>,
    device: Option<String>,
}

fn read_all(guest: &dyn GuestRead) -> Vec<Profile> {
    NetSystem::NmKeyfile
        .files(guest)
        .into_iter()
        .filter_map(|path| {
            let file = KeyFile::parse(&guest.read_text(&path)?);
            let kind = file.get("connection", "type").unwrap_or_default();
            if kind != "ethernet" && kind != "802-3-ethernet" {
                return None;
            }
            let mac = file.get("ethernet", "mac-address");
            let device = file
                .get("connection", "interface-name")
                .filter(|d| !d.is_empty());
            Some(Profile {
                path,
                file,
                mac,
                device,
            })
        })
        .collect()
}

/// MAC → device name pairs the profiles state.
pub fn names(guest: &dyn GuestRead) -> Vec<(String, String)> {
    read_all(guest)
        .into_iter()
        .filter_map(|p| Some((p.mac?, p.device?)))
        .collect()
}

/// Which NICs (by index) have a profile.
pub fn covered(guest: &dyn GuestRead, nics: &Nics) -> Vec<usize> {
    read_all(guest)
        .iter()
        .filter_map(|p| nics.owner(p.mac.as_deref(), p.device.as_deref()))
        .collect()
}

/// Rewrites the profiles of recorded NICs, and creates one for each static
/// NIC in `create`.
pub fn plan(guest: &dyn GuestRead, nics: &Nics, create: &[usize], plan: &mut PlanBuilder) {
    for mut profile in read_all(guest) {
        let Some(nic) = nics
            .owner(profile.mac.as_deref(), profile.device.as_deref())
            .and_then(|i| nics.all.get(i))
        else {
            continue;
        };
        let port_of = profile
            .file
            .get("connection", "controller")
            .or_else(|| profile.file.get("connection", "master"));
        if let Some(master) = port_of {
            plan.note(format!(
                "{}: {} is a port of {master}; its addresses live there: left as it is, \
                 set them on {master} by hand",
                profile.path,
                nic.label()
            ));
            continue;
        }
        if profile
            .mac
            .as_deref()
            .is_some_and(|m| normalize_mac(m).as_deref() != Some(nic.mac.as_str()))
        {
            profile.file.set("ethernet", "mac-address", &nic.mac);
        }
        let reason = match &nic.addressing {
            Some(s) => {
                if profile.file.get("connection", "autoconnect").as_deref() == Some("false") {
                    profile.file.set("connection", "autoconnect", "true");
                }
                apply_static(&mut profile.file, s);
                plan.note(format!(
                    "{}: static addressing for {}",
                    profile.path,
                    nic.label()
                ));
                "restore the static addressing recorded on premises"
            }
            None => "follow the NIC's new MAC",
        };
        plan.write(guest, &profile.path, profile.file.render(), MODE, reason);
    }
    for &index in create {
        let Some((nic, s)) = nics.static_at(index) else {
            continue;
        };
        let name = nic
            .device
            .clone()
            .unwrap_or_else(|| format!("homeward-{}", nic.mac.replace(':', "")));
        let path = format!("{DIR}/{name}.nmconnection");
        let file = new_profile(nic, &name, s);
        plan.note(format!("{path}: created for {}", nic.label()));
        plan.write(
            guest,
            &path,
            file.render(),
            MODE,
            "the NIC had no profile: create it with the static addressing recorded on premises",
        );
    }
}

fn new_profile(nic: &Nic, name: &str, s: &Static) -> KeyFile {
    let mut file = KeyFile::parse(HEADER);
    file.set("connection", "id", name);
    file.set("connection", "uuid", &uuid_for(&nic.mac));
    file.set("connection", "type", "ethernet");
    if let Some(device) = &nic.device {
        file.set("connection", "interface-name", device);
    }
    file.set("connection", "autoconnect", "true");
    file.set("ethernet", "mac-address", &nic.mac);
    apply_static(&mut file, s);
    if s.v6.is_empty() {
        file.set("ipv6", "method", "auto");
    }
    file
}

/// `a;b;` as keyfiles spell lists.
fn list(items: impl IntoIterator<Item = String>) -> String {
    items.into_iter().map(|i| format!("{i};")).collect()
}

/// Sets one family's section: `method`, `addressN`, `dns`, `dns-search`;
/// removes the address keys the record does not have.
fn apply_family(file: &mut KeyFile, section: &str, entries: &[(String, String)]) {
    let owned = |k: &str| {
        k == "addresses"
            || k == "gateway"
            || k == "dns"
            || k == "dns-search"
            || crate::files::numbered(k, "address")
    };
    for key in file.keys(section) {
        if owned(&key) && !entries.iter().any(|(k, _)| *k == key) {
            file.remove(section, &key);
        }
    }
    for (key, value) in entries {
        file.set(section, key, value);
    }
}

fn apply_static(file: &mut KeyFile, s: &Static) {
    let (dns4, dns6): (Vec<IpAddr>, Vec<IpAddr>) = s.dns.iter().partition(|d| d.is_ipv4());
    let mut v4: Vec<(String, String)> = Vec::new();
    if s.v4.is_empty() {
        v4.push(("method".into(), "disabled".into()));
    } else {
        v4.push(("method".into(), "manual".into()));
        for (i, (a, p)) in s.v4.iter().enumerate() {
            let gw = match s.gateway4 {
                Some(g) if i == 0 => format!(",{g}"),
                _ => String::new(),
            };
            v4.push((format!("address{}", i + 1), format!("{a}/{p}{gw}")));
        }
        if !dns4.is_empty() {
            v4.push(("dns".into(), list(dns4.iter().map(|d| d.to_string()))));
        }
        if !s.search.is_empty() {
            v4.push(("dns-search".into(), list(s.search.iter().cloned())));
        }
    }
    apply_family(file, "ipv4", &v4);
    if s.v6.is_empty() && dns6.is_empty() {
        return;
    }
    let mut v6: Vec<(String, String)> = Vec::new();
    if !s.v6.is_empty() {
        v6.push(("method".into(), "manual".into()));
        for (i, (a, p)) in s.v6.iter().enumerate() {
            let gw = match s.gateway6 {
                Some(g) if i == 0 => format!(",{g}"),
                _ => String::new(),
            };
            v6.push((format!("address{}", i + 1), format!("{a}/{p}{gw}")));
        }
    }
    if !dns6.is_empty() {
        v6.push(("dns".into(), list(dns6.iter().map(|d| d.to_string()))));
    }
    if s.v4.is_empty() && !s.search.is_empty() {
        v6.push(("dns-search".into(), list(s.search.iter().cloned())));
    }
    if s.v6.is_empty() {
        // Only DNS to add: the method and addresses (SLAAC, DHCPv6) stay.
        for (key, value) in &v6 {
            file.set("ipv6", key, value);
        }
    } else {
        apply_family(file, "ipv6", &v6);
    }
}

/// A stable UUID for a created profile (the same on every run, so planning
/// twice yields the same file): FNV-1a of the MAC, shaped as a version 4 UUID.
fn uuid_for(mac: &str) -> String {
    let hash = |seed: u64| {
        mac.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let hi = hash(0xcbf2_9ce4_8422_2325);
    let lo = hash(0x8422_2325_cbf2_9ce4);
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Whether the profile directory exists: then NetworkManager manages the
/// guest, and a NIC without any configuration gets a profile here.
pub fn dir_exists(guest: &dyn GuestRead) -> bool {
    guest
        .stat(DIR)
        .is_ok_and(|s| s.kind == homeward_sdk::types::FileKind::Directory)
}
