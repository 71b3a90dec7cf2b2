//! The recorded NICs, checked once and put in the shape the writers need.
//!
//! The host's record is trusted more than the guest, but it still ends up
//! inside guest configuration files and file names, so every address, domain
//! and device name is parsed or checked here: a newline in a search domain or
//! a `/` in a device name must never reach a writer.

use homeward_sdk::Error;
use homeward_sdk::guest::normalize_mac;
use homeward_sdk::guest_step::exports::homeward::plugin::post_step::StepContext;
use homeward_sdk::types::Addressing;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Linux refuses interface names longer than this (`IFNAMSIZ` - 1).
const MAX_DEVICE_NAME: usize = 15;

/// Static addressing of one NIC, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Static {
    /// IPv4 addresses with prefix lengths, in recorded order.
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses with prefix lengths, in recorded order.
    pub v6: Vec<(Ipv6Addr, u8)>,
    /// The IPv4 default gateway.
    pub gateway4: Option<Ipv4Addr>,
    /// The IPv6 default gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// DNS servers, in order of preference.
    pub dns: Vec<IpAddr>,
    /// DNS search domains.
    pub search: Vec<String>,
}

/// One recorded NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The MAC recorded on premises.
    pub recorded_mac: String,
    /// The MAC the NIC has now (the recorded one, or its `mac-map` entry).
    pub mac: String,
    /// The device name the host recorded.
    pub recorded_device: Option<String>,
    /// The device name the guest will give it (see `devices`).
    pub device: Option<String>,
    /// `None` when the NIC uses DHCP.
    pub addressing: Option<Static>,
}

impl Nic {
    /// Whether `mac` (any spelling) is this NIC's old or new MAC.
    pub fn has_mac(&self, mac: &str) -> bool {
        normalize_mac(mac).is_some_and(|m| m == self.mac || m == self.recorded_mac)
    }

    /// Whether the MAC changes (failback created a new VM).
    pub fn mac_changed(&self) -> bool {
        self.mac != self.recorded_mac
    }

    /// A label for notes and messages: the device, else the MAC.
    pub fn label(&self) -> String {
        match &self.device {
            Some(d) => format!("{d} ({})", self.mac),
            None => self.mac.clone(),
        }
    }
}

/// Every recorded NIC.
#[derive(Debug, Clone, Default)]
pub struct Nics {
    /// In recorded order.
    pub all: Vec<Nic>,
}

impl Nics {
    /// Checks the host's record. `notes` gets what was set aside and why.
    pub fn from_context(context: &StepContext, notes: &mut Vec<String>) -> Result<Nics, Error> {
        let mut map = Vec::new();
        for (old, new) in &context.mac_map {
            let (Some(o), Some(n)) = (normalize_mac(old), normalize_mac(new)) else {
                return Err(Error::invalid_input(format!(
                    "mac-map entry {old:?} -> {new:?} is not a pair of MAC addresses; \
                     fix the failback record (six hex octets, colon separated)"
                )));
            };
            map.push((o, n));
        }
        let mut all = Vec::new();
        for (i, recorded) in context.recorded_nics.iter().enumerate() {
            let Some(recorded_mac) = normalize_mac(&recorded.mac) else {
                return Err(Error::invalid_input(format!(
                    "recorded NIC #{} has MAC {:?}, which is not a MAC address; \
                     fix the VM's protection record",
                    i + 1,
                    recorded.mac
                )));
            };
            let mac = map
                .iter()
                .find(|(o, _)| *o == recorded_mac)
                .map_or_else(|| recorded_mac.clone(), |(_, n)| n.clone());
            let recorded_device = match recorded.device_name.as_deref() {
                Some(d) if valid_device(d) => Some(d.to_string()),
                Some(d) => {
                    notes.push(format!(
                        "nic {recorded_mac}: recorded device name {d:?} is not a valid \
                         interface name; ignored"
                    ));
                    None
                }
                None => None,
            };
            let addressing = match &recorded.addressing {
                Addressing::Dhcp => None,
                Addressing::Fixed(s) => parse_static(&recorded_mac, s, notes)?,
            };
            all.push(Nic {
                recorded_mac,
                mac,
                device: recorded_device.clone(),
                recorded_device,
                addressing,
            });
        }
        Ok(Nics { all })
    }

    /// Whether no recorded NIC has `mac` (a cloud MAC, or another machine's).
    pub fn is_foreign(&self, mac: &str) -> bool {
        !self.all.iter().any(|n| n.has_mac(mac))
    }

    /// Which NIC a configuration belongs to: the one with its MAC; when it
    /// has no MAC or a foreign one (typically the cloud NIC's, written by
    /// cloud-init), the one whose device it names.
    pub fn owner(&self, mac: Option<&str>, device: Option<&str>) -> Option<usize> {
        if let Some(mac) = mac.filter(|m| normalize_mac(m).is_some())
            && let Some(i) = self.all.iter().position(|n| n.has_mac(mac))
        {
            return Some(i);
        }
        let device = device?;
        self.all
            .iter()
            .position(|n| n.device.as_deref() == Some(device))
    }

    /// The NICs with static addressing, with their index.
    pub fn statics(&self) -> impl Iterator<Item = (usize, &Nic, &Static)> {
        self.all
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.addressing.as_ref().map(|s| (i, n, s)))
    }

    /// The NIC at `index` with its static addressing, if it has one.
    pub fn static_at(&self, index: usize) -> Option<(&Nic, &Static)> {
        let nic = self.all.get(index)?;
        nic.addressing.as_ref().map(|s| (nic, s))
    }

    /// DNS servers of every static NIC, deduplicated, in NIC order.
    pub fn all_dns(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for (_, _, s) in self.statics() {
            for d in &s.dns {
                if !out.contains(d) {
                    out.push(*d);
                }
            }
        }
        out
    }

    /// Search domains of every static NIC, deduplicated, in NIC order.
    pub fn all_search(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, _, s) in self.statics() {
            for d in &s.search {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

/// Parses one NIC's static record; `None` (with a note) when it has no
/// address at all, as there is then nothing to restore.
fn parse_static(
    mac: &str,
    s: &homeward_sdk::types::StaticAddressing,
    notes: &mut Vec<String>,
) -> Result<Option<Static>, Error> {
    let bad = |what: &str, value: &str| {
        Error::invalid_input(format!(
            "recorded NIC {mac}: {what} {value:?} is not valid; fix the VM's protection record"
        ))
    };
    let mut out = Static {
        v4: Vec::new(),
        v6: Vec::new(),
        gateway4: None,
        gateway6: None,
        dns: Vec::new(),
        search: Vec::new(),
    };
    for (addr, prefix) in &s.addresses {
        match addr.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if *prefix <= 32 => out.v4.push((a, *prefix)),
            Ok(IpAddr::V6(a)) if *prefix <= 128 => out.v6.push((a, *prefix)),
            _ => return Err(bad("address", &format!("{addr}/{prefix}"))),
        }
    }
    for gw in &s.gateways {
        match gw.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) if out.gateway4.is_none() => out.gateway4 = Some(a),
            Ok(IpAddr::V6(a)) if out.gateway6.is_none() => out.gateway6 = Some(a),
            Ok(_) => notes.push(format!(
                "nic {mac}: more than one default gateway of a family recorded; kept the first, \
                 ignored {gw}"
            )),
            Err(_) => return Err(bad("gateway", gw)),
        }
    }
    for dns in &s.dns_servers {
        out.dns.push(
            dns.trim()
                .parse::<IpAddr>()
                .map_err(|_| bad("DNS server", dns))?,
        );
    }
    for domain in &s.dns_search {
        let d = domain.trim();
        if d.is_empty()
            || d.len() > 253
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(bad("search domain", domain));
        }
        out.search.push(d.to_string());
    }
    if out.v4.is_empty() && out.v6.is_empty() {
        notes.push(format!(
            "nic {mac}: recorded as static but without any address; left as it is"
        ));
        return Ok(None);
    }
    Ok(Some(out))
}

/// Whether `name` can be an interface name, and so a safe file-name suffix
/// (`ifcfg-<name>`): short, no `/`, no whitespace, not `.` or `..`.
pub fn valid_device(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DEVICE_NAME
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}
