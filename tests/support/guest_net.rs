//! Fixture guests for the static-ip-reset step (`tests/guest_step_static_ip_*.rs`).
//!
//! Each builder writes a guest root in the state failback leaves it: what the
//! cloud did (DHCP, cloud-init files with the cloud NIC's MAC) on top of what
//! was there on premises, with the files as the distributions write them. A
//! [`NetGuest`] also carries the NICs recorded at protection and the
//! `mac-map`, and runs the step natively or as the embedded wasm plugin:
//! plan, apply every change with the host's `DirTree`, plan again.
//!
//! Readers for the result (`KEY=value`, keyfiles, a block-style YAML subset)
//! let the tests compare values, not bytes.

use crate::fixture_tree::FixtureTree;
use crate::fixture_tree::planned_change;
use homeward::guest_fs::{DirTree, PlannedChange};
use homeward::plugin::wit::v0_1::types as host_types;
use homeward::plugin::{LoadedPlugin, PluginSettings, Runtime, RuntimeOptions};
use homeward_sdk::guest_step::exports::homeward::plugin::post_step as sdk_step;
use homeward_sdk::types as sdk_types;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// One recorded NIC.
#[derive(Debug, Clone)]
pub struct Nic {
    /// MAC recorded on premises.
    pub mac: &'static str,
    /// Recorded device name.
    pub device: Option<&'static str>,
    /// `None` for DHCP.
    pub fixed: Option<Fixed>,
}

/// Recorded static addressing.
#[derive(Debug, Clone, Default)]
pub struct Fixed {
    /// `(address, prefix)`.
    pub addresses: Vec<(&'static str, u8)>,
    /// Default gateways.
    pub gateways: Vec<&'static str>,
    /// DNS servers.
    pub dns: Vec<&'static str>,
    /// Search domains.
    pub search: Vec<&'static str>,
}

/// A static NIC.
pub fn fixed(
    mac: &'static str,
    device: &'static str,
    addresses: &[(&'static str, u8)],
    gateways: &[&'static str],
    dns: &[&'static str],
    search: &[&'static str],
) -> Nic {
    Nic {
        mac,
        device: Some(device),
        fixed: Some(Fixed {
            addresses: addresses.to_vec(),
            gateways: gateways.to_vec(),
            dns: dns.to_vec(),
            search: search.to_vec(),
        }),
    }
}

/// A DHCP NIC.
pub fn dhcp(mac: &'static str, device: &'static str) -> Nic {
    Nic {
        mac,
        device: Some(device),
        fixed: None,
    }
}

/// A step context from a fixture's record, in either binding's types: the
/// SDK's (native calls) or the host's (the wasm plugin). The two are
/// generated from the same WIT, so one body fills both.
macro_rules! step_context {
    ($guest:expr, $context:path, $types:ident) => {{
        let guest = $guest;
        $context {
            vm_name: "failback-vm".into(),
            recorded_nics: guest
                .nics
                .iter()
                .map(|n| $types::NicConfig {
                    mac: n.mac.into(),
                    network: None,
                    device_name: n.device.map(Into::into),
                    addressing: match &n.fixed {
                        None => $types::Addressing::Dhcp,
                        Some(f) => $types::Addressing::Fixed($types::StaticAddressing {
                            addresses: f
                                .addresses
                                .iter()
                                .map(|(a, p)| (a.to_string(), *p))
                                .collect(),
                            gateways: f.gateways.iter().map(|g| g.to_string()).collect(),
                            dns_servers: f.dns.iter().map(|d| d.to_string()).collect(),
                            dns_search: f.search.iter().map(|d| d.to_string()).collect(),
                        }),
                    },
                })
                .collect(),
            mac_map: guest
                .mac_map
                .iter()
                .map(|(o, n)| (o.to_string(), n.to_string()))
                .collect(),
        }
    }};
}

/// A fixture guest with its failback record.
pub struct NetGuest {
    /// The guest root.
    pub tree: FixtureTree,
    /// NICs recorded on premises.
    pub nics: Vec<Nic>,
    /// Old MAC → new MAC.
    pub mac_map: Vec<(&'static str, &'static str)>,
}

impl std::ops::Deref for NetGuest {
    type Target = FixtureTree;
    fn deref(&self) -> &FixtureTree {
        &self.tree
    }
}

impl NetGuest {
    /// An empty guest root with this record.
    pub fn new(nics: Vec<Nic>, mac_map: &[(&'static str, &'static str)]) -> NetGuest {
        NetGuest {
            tree: FixtureTree::default(),
            nics,
            mac_map: mac_map.to_vec(),
        }
    }

    /// The context the SDK (native) form of the step takes.
    pub fn sdk_context(&self) -> sdk_step::StepContext {
        step_context!(self, sdk_step::StepContext, sdk_types)
    }

    /// The context the host passes to the plugin.
    pub fn host_context(&self) -> homeward::plugin::instance::StepContext {
        step_context!(self, homeward::plugin::instance::StepContext, host_types)
    }

    /// Plans the step natively on the tree.
    pub fn plan_native(&self) -> Result<sdk_step::StepPlan, homeward_sdk::Error> {
        homeward_static_ip_reset::plan(
            &homeward_sdk::guest::DirGuest::new(self.tree.dir.path()),
            &self.sdk_context(),
        )
    }

    /// Plans natively, applies the plan with the host's `DirTree`, and checks
    /// that planning again finds nothing to do. Returns the first plan.
    pub fn run_native(&self) -> sdk_step::StepPlan {
        let plan = self.plan_native().expect("first plan");
        let tree = DirTree::new(self.tree.dir.path()).expect("tree");
        for change in &plan.changes {
            tree.apply(&planned_change(change))
                .unwrap_or_else(|e| panic!("apply {}: {e}", change.path));
        }
        let again = self.plan_native().expect("second plan");
        assert!(
            again.changes.is_empty(),
            "second native plan is not empty: {:#?}",
            again.changes.iter().map(|c| &c.path).collect::<Vec<_>>()
        );
        plan
    }

    /// Plans through the embedded wasm plugin.
    pub fn plan_wasm(
        &self,
    ) -> Result<homeward::plugin::instance::StepPlan, homeward::plugin::PluginError> {
        let tree = Arc::new(DirTree::new(self.tree.dir.path()).expect("tree"));
        plugin()
            .instantiate()?
            .plan_guest_step(tree, &self.host_context())
    }

    /// [`NetGuest::run_native`] through the embedded wasm plugin.
    pub fn run_wasm(&self) -> homeward::plugin::instance::StepPlan {
        let plan = self.plan_wasm().expect("first plan (wasm)");
        let tree = DirTree::new(self.tree.dir.path()).expect("tree");
        for change in &plan.changes {
            tree.apply(&PlannedChange::from(change))
                .unwrap_or_else(|e| panic!("apply {}: {e}", change.path));
        }
        let again = self.plan_wasm().expect("second plan (wasm)");
        assert!(
            again.changes.is_empty(),
            "second wasm plan is not empty: {:#?}",
            again.changes.iter().map(|c| &c.path).collect::<Vec<_>>()
        );
        plan
    }
}

/// The embedded static-ip-reset plugin, compiled once per test binary.
pub fn plugin() -> &'static LoadedPlugin {
    static PLUGIN: OnceLock<(Runtime, LoadedPlugin)> = OnceLock::new();
    &PLUGIN
        .get_or_init(|| {
            let runtime = Runtime::new(RuntimeOptions::default()).expect("runtime");
            let p = homeward::embedded::STATIC_IP_RESET;
            let plugin = runtime
                .load(p.wasm, p.id, PluginSettings::default())
                .expect("load static-ip-reset");
            (runtime, plugin)
        })
        .1
}

/// Every regular file and symlink under `root`, as (relative path, content
/// or link target), sorted: two trees compare equal when a step did the
/// same to both.
pub fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            let kind = entry.file_type().expect("type");
            if kind.is_dir() {
                walk(root, &path, out);
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                out.push((rel, target.display().to_string().into_bytes()));
            } else {
                out.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// `KEY=value` pairs of a shell-style file, unquoted.
pub fn shell_vars(text: &str) -> homeward_sdk::guest::ShellVars {
    homeward_sdk::guest::ShellVars::parse(text)
}

/// The value of `key` in `[section]` of a keyfile.
pub fn keyfile_get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.to_string();
        } else if current == section
            && let Some((k, v)) = t.split_once('=')
            && k.trim() == key
        {
            found = Some(v.trim().to_string());
        }
    }
    found
}

/// A YAML value of the block-style subset netplan files use.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A scalar, unquoted.
    Scalar(String),
    /// A sequence.
    Seq(Vec<Yaml>),
    /// A mapping, in file order.
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Yaml> {
        path.iter().try_fold(self, |v, k| v.get(k))
    }

    /// A scalar's text.
    pub fn str(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// A sequence of scalars, as text.
    pub fn strs(&self) -> Vec<String> {
        match self {
            Yaml::Seq(items) => items
                .iter()
                .filter_map(|i| i.str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A mapping's keys.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Yaml::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses block-style YAML (mappings, `- ` sequences, `[]`, quoted or plain
/// scalars, comments). Panics on anything else: fixtures and outputs of the
/// step must stay within what netplan users write.
pub fn yaml(text: &str) -> Yaml {
    let lines: Vec<(usize, String)> = text
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            let t = match t.find(" #") {
                Some(i) => &t[..i],
                None => t,
            };
            Some((l.len() - l.trim_start().len(), t.trim_end().to_string()))
        })
        .collect();
    let mut pos = 0;
    let value = parse_block(&lines, &mut pos, 0);
    assert_eq!(pos, lines.len(), "unparsed YAML from line {pos}: {text}");
    value
}

fn scalar(text: &str) -> Yaml {
    let t = text.trim();
    if t == "[]" {
        return Yaml::Seq(Vec::new());
    }
    if t == "{}" {
        return Yaml::Map(Vec::new());
    }
    assert!(
        !t.starts_with('[') && !t.starts_with('{'),
        "flow style not in the subset: {t}"
    );
    Yaml::Scalar(t.trim_matches('"').trim_matches('\'').to_string())
}

fn split_key(text: &str) -> Option<(String, String)> {
    let i = text
        .find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
    Some((
        text[..i].trim().trim_matches('"').to_string(),
        text[i + 1..].trim().to_string(),
    ))
}

fn parse_block(lines: &[(usize, String)], pos: &mut usize, min_indent: usize) -> Yaml {
    let Some((indent, first)) = lines.get(*pos).cloned() else {
        return Yaml::Scalar(String::new());
    };
    if indent < min_indent {
        return Yaml::Scalar(String::new());
    }
    if first.starts_with("- ") || first == "-" {
        let mut items = Vec::new();
        while let Some((i, l)) = lines.get(*pos).cloned() {
            if i != indent || !(l.starts_with("- ") || l == "-") {
                break;
            }
            let rest = l.trim_start_matches('-').trim_start().to_string();
            match split_key(&rest) {
                Some(_) => {
                    // A mapping item: its first key sits after "- ".
                    let mut sub = vec![(i + 2, rest)];
                    *pos += 1;
                    while let Some((j, m)) = lines.get(*pos).cloned() {
                        if j <= i {
                            break;
                        }
                        sub.push((j, m));
                        *pos += 1;
                    }
                    let mut p = 0;
                    items.push(parse_block(&sub, &mut p, i + 2));
                }
                None => {
                    items.push(scalar(&rest));
                    *pos += 1;
                }
            }
        }
        return Yaml::Seq(items);
    }
    let mut map = Vec::new();
    while let Some((i, l)) = lines.get(*pos).cloned() {
        if i != indent {
            assert!(i < indent, "bad indentation at {l:?}");
            break;
        }
        let (key, value) = split_key(&l).unwrap_or_else(|| panic!("not a mapping entry: {l:?}"));
        *pos += 1;
        let value = if value.is_empty() {
            match lines.get(*pos) {
                Some((j, next)) if *j > indent || (*j == indent && next.starts_with("- ")) => {
                    parse_block(lines, pos, *j)
                }
                _ => Yaml::Scalar(String::new()),
            }
        } else {
            scalar(&value)
        };
        map.push((key, value));
    }
    Yaml::Map(map)
}

/// The MAC prefix of Azure NICs: what cloud-init wrote in the cloud.
pub const CLOUD_MAC: &str = "00:0d:3a:5c:7e:01";

const CLOUD_INIT_CFG: &str = "# The top level settings are used as module\n# and base configuration.\nusers:\n - default\ndisable_root: true\ndatasource_list: [ Azure ]\n";

/// RHEL 8.9 (ifcfg read by NetworkManager): `ens192` static with two IPv4
/// addresses and IPv6, switched to DHCP in the cloud; cloud-init's
/// `ifcfg-eth0` for the Azure NIC; `ens224` DHCP. No mac-map (failback to
/// the original VM).
pub fn rhel8() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:10:01",
                "ens192",
                &[
                    ("10.20.30.41", 24),
                    ("10.20.30.42", 24),
                    ("fd00:20::41", 64),
                ],
                &["10.20.30.1", "fd00:20::1"],
                &["10.20.30.2", "10.20.30.3"],
                &["corp.example.com"],
            ),
            dhcp("00:50:56:8a:10:02", "ens224"),
        ],
        &[],
    );
    g.write(
        "/etc/os-release",
        "NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.9 (Ootpa)\"\nID=\"rhel\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"8.9\"\nPLATFORM_ID=\"platform:el8\"\nPRETTY_NAME=\"Red Hat Enterprise Linux 8.9 (Ootpa)\"\nANSI_COLOR=\"0;31\"\n",
    )
    .write("/etc/redhat-release", "Red Hat Enterprise Linux release 8.9 (Ootpa)\n")
    .write(
        "/etc/sysconfig/network-scripts/ifcfg-ens192",
        "TYPE=Ethernet\nPROXY_METHOD=none\nBROWSER_ONLY=no\nBOOTPROTO=dhcp\nDEFROUTE=yes\nIPV4_FAILURE_FATAL=no\nIPV6INIT=yes\nIPV6_AUTOCONF=yes\nIPV6_DEFROUTE=yes\nIPV6_FAILURE_FATAL=no\nIPV6_ADDR_GEN_MODE=stable-privacy\nNAME=ens192\nUUID=3e5ecf5c-2bd4-4c2e-9c0a-3f6a0d1f2b11\nDEVICE=ens192\nONBOOT=yes\n",
    )
    .write(
        "/etc/sysconfig/network-scripts/ifcfg-ens224",
        "TYPE=Ethernet\nBOOTPROTO=dhcp\nDEFROUTE=no\nNAME=ens224\nUUID=7b1d7a4e-3c55-4f0e-8d0b-5a1f4c2e9d22\nDEVICE=ens224\nONBOOT=yes\n",
    )
    .write(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        format!("# Created by cloud-init on instance boot automatically, do not edit.\n#\nBOOTPROTO=dhcp\nDEVICE=eth0\nHWADDR={CLOUD_MAC}\nONBOOT=yes\nSTARTMODE=auto\nTYPE=Ethernet\nUSERCTL=no\n"),
    )
    .write("/etc/sysconfig/network-scripts/ifcfg-lo", "DEVICE=lo\nIPADDR=127.0.0.1\nNETMASK=255.0.0.0\nNETWORK=127.0.0.0\nONBOOT=yes\nNAME=loopback\n")
    .mkdir("/etc/NetworkManager/system-connections")
    .write("/etc/NetworkManager/NetworkManager.conf", "[main]\n#plugins=ifcfg-rh\n\n[logging]\n")
    .write("/etc/cloud/cloud.cfg", CLOUD_INIT_CFG)
    .write(
        "/etc/resolv.conf",
        "# Generated by NetworkManager\nsearch qk0xb3ztbkouhd5tbqbdwyvpjf.bx.internal.cloudapp.net\nnameserver 168.63.129.16\n",
    );
    g
}

/// CentOS 7 with network-scripts (`NM_CONTROLLED=no`), `net.ifnames=0`
/// names pinned by `70-persistent-net.rules`, failed back to a new VM: both
/// NICs get new MACs.
pub fn centos7() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:20:01",
                "eth0",
                &[("192.168.10.21", 24)],
                &["192.168.10.1"],
                &["192.168.10.5"],
                &["lab.example"],
            ),
            dhcp("00:50:56:8a:20:02", "eth1"),
        ],
        &[
            ("00:50:56:8a:20:01", "00:50:56:9b:20:01"),
            ("00:50:56:8a:20:02", "00:50:56:9b:20:02"),
        ],
    );
    g.write(
        "/etc/os-release",
        "NAME=\"CentOS Linux\"\nVERSION=\"7 (Core)\"\nID=\"centos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"7\"\nPRETTY_NAME=\"CentOS Linux 7 (Core)\"\nANSI_COLOR=\"0;31\"\nCPE_NAME=\"cpe:/o:centos:centos:7\"\n",
    )
    .write("/etc/redhat-release", "CentOS Linux release 7.9.2009 (Core)\n")
    .write(
        "/etc/sysconfig/network-scripts/ifcfg-eth0",
        "DEVICE=eth0\nONBOOT=yes\nBOOTPROTO=dhcp\nTYPE=Ethernet\nUSERCTL=no\nPEERDNS=yes\nIPV6INIT=no\nNM_CONTROLLED=no\nHWADDR=00:50:56:8A:20:01\n",
    )
    .write(
        "/etc/sysconfig/network-scripts/ifcfg-eth1",
        "DEVICE=eth1\nONBOOT=yes\nBOOTPROTO=dhcp\nTYPE=Ethernet\nNM_CONTROLLED=no\nHWADDR=00:50:56:8a:20:02\n",
    )
    .write(
        "/etc/udev/rules.d/70-persistent-net.rules",
        "# This file was automatically generated by the /lib/udev/write_net_rules\n# program, run by the persistent-net-generator.rules rules file.\n#\n# You can modify it, as long as you keep each rule on a single\n# line, and change only the value of the NAME= key.\n\n# PCI device 0x15ad:0x07b0 (vmxnet3)\nSUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"00:50:56:8a:20:01\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"\n\n# PCI device 0x15ad:0x07b0 (vmxnet3)\nSUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"00:50:56:8a:20:02\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth1\"\n",
    )
    .write(
        "/etc/resolv.conf",
        "; generated by /usr/sbin/dhclient-script\nsearch reddog.microsoft.com\nnameserver 168.63.129.16\noptions timeout:2\n",
    );
    g
}

/// SLES 15 SP5 (wicked): `eth0` switched to DHCP in the cloud, new MAC; a
/// second static NIC `eth1` that has no ifcfg any more; a static route to
/// keep in `routes`; `resolv.conf` owned by netconfig.
pub fn sles15() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:30:01",
                "eth0",
                &[("10.30.0.15", 24)],
                &["10.30.0.1"],
                &["10.30.0.2", "10.30.0.3"],
                &["sles.example.com"],
            ),
            fixed(
                "00:50:56:8a:30:02",
                "eth1",
                &[("10.31.0.15", 24)],
                &[],
                &[],
                &[],
            ),
        ],
        &[("00:50:56:8a:30:01", "00:50:56:9b:30:01")],
    );
    g.write(
        "/etc/os-release",
        "NAME=\"SLES\"\nVERSION=\"15-SP5\"\nVERSION_ID=\"15.5\"\nPRETTY_NAME=\"SUSE Linux Enterprise Server 15 SP5\"\nID=\"sles\"\nID_LIKE=\"suse\"\nANSI_COLOR=\"0;32\"\nCPE_NAME=\"cpe:/o:suse:sles:15:sp5\"\n",
    )
    .write_mode(
        "/etc/sysconfig/network/ifcfg-eth0",
        "BOOTPROTO='dhcp'\nSTARTMODE='auto'\nDHCLIENT_SET_DEFAULT_ROUTE='yes'\nETHTOOL_OPTIONS=''\nMTU=''\nNAME=''\nZONE=''\n",
        0o600,
    )
    .write(
        "/etc/sysconfig/network/ifcfg-lo",
        "IPADDR=127.0.0.1\nNETMASK=255.0.0.0\nNETWORK=127.0.0.0\nSTARTMODE=nfsroot\nBOOTPROTO=static\nUSERCONTROL=no\nFIREWALL=no\n",
    )
    .write(
        "/etc/sysconfig/network/routes",
        "# static routes added on premises\n10.99.0.0/16 10.30.0.254 - eth0\n",
    )
    .write(
        "/etc/sysconfig/network/config",
        "## Path:\tNetwork/General\n## Description:\tGlobal network configuration\n\n## Type:\tstring\n## Default:\t\"auto\"\nNETCONFIG_DNS_POLICY=\"auto\"\n\n## Type:\tstring\n## Default:\t\"\"\n#\n# List of DNS domain names used for host-name lookup.\nNETCONFIG_DNS_STATIC_SEARCHLIST=\"\"\n\n## Type:\tstring\n## Default:\t\"\"\n#\n# List of DNS nameserver IP addresses to use for host-name lookup.\nNETCONFIG_DNS_STATIC_SERVERS=\"\"\n\nNETCONFIG_DNS_FORWARDER=\"resolver\"\n",
    )
    .symlink("/etc/resolv.conf", "/run/netconfig/resolv.conf");
    g
}

/// Debian 12 (ifupdown): `ens192` (IPv4 + IPv6) switched to DHCP/SLAAC in the
/// cloud with a DHCP-only option; cloud-init's `interfaces.d` file for the
/// Azure `eth0`; a second static NIC `ens224` with no stanza at all.
pub fn debian12() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:50:01",
                "ens192",
                &[("10.50.0.12", 24), ("2001:db8:50::12", 64)],
                &["10.50.0.1", "2001:db8:50::1"],
                &["10.50.0.2"],
                &["deb.example.org", "example.org"],
            ),
            fixed(
                "00:50:56:8a:50:02",
                "ens224",
                &[("10.51.0.12", 16)],
                &[],
                &[],
                &[],
            ),
        ],
        &[],
    );
    g.write(
        "/etc/os-release",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\n",
    )
    .write("/etc/debian_version", "12.5\n")
    .write(
        "/etc/network/interfaces",
        "# This file describes the network interfaces available on your system\n# and how to activate them. For more information, see interfaces(5).\n\nsource /etc/network/interfaces.d/*\n\n# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug ens192\niface ens192 inet dhcp\n\thostname web01\n\t# jumbo frames are off on this segment\n\tmtu 1500\n\tup ip route add 10.250.0.0/16 via 10.50.0.254\n\niface ens192 inet6 auto\n",
    )
    .write(
        "/etc/network/interfaces.d/50-cloud-init",
        "# This file is generated from information provided by the datasource.  Changes\n# to it will not persist across an instance reboot.  To disable cloud-init's\n# network configuration capabilities, write a file\n# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:\n# network: {config: disabled}\nauto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n",
    )
    .write("/etc/cloud/cloud.cfg", CLOUD_INIT_CFG)
    .mkdir("/etc/cloud/cloud.cfg.d")
    .write(
        "/etc/resolv.conf",
        "domain qk0xb3ztbkouhd5tbqbdwyvpjf.bx.internal.cloudapp.net\nsearch qk0xb3ztbkouhd5tbqbdwyvpjf.bx.internal.cloudapp.net\nnameserver 168.63.129.16\n",
    );
    g
}

/// Ubuntu 22.04 (netplan, `net.ifnames=0`), failed back to a new VM: the
/// installer's file still defines `eth0` (switched to DHCP in the cloud, with
/// `mtu` and `optional`) and `eth1` (DHCP) by their old MACs; cloud-init's
/// `50-cloud-init.yaml` defines `eth0` by the Azure MAC and driver with
/// `dhcp4: true`.
pub fn ubuntu2204() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:40:01",
                "eth0",
                &[("10.40.0.11", 24)],
                &["10.40.0.1"],
                &["10.40.0.2", "10.40.0.3"],
                &["ubuntu.example.net"],
            ),
            dhcp("00:50:56:8a:40:02", "eth1"),
        ],
        &[
            ("00:50:56:8a:40:01", "00:50:56:9b:40:01"),
            ("00:50:56:8a:40:02", "00:50:56:9b:40:02"),
        ],
    );
    g.write(
        "/etc/os-release",
        "PRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.4 LTS (Jammy Jellyfish)\"\nVERSION_CODENAME=jammy\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=jammy\n",
    )
    .write_mode(
        "/etc/netplan/00-installer-config.yaml",
        "# This is the network config written by 'subiquity'\nnetwork:\n  ethernets:\n    eth0:\n      dhcp4: true\n      match:\n        macaddress: 00:50:56:8a:40:01\n      mtu: 1500\n      optional: true\n      set-name: eth0\n    eth1:\n      dhcp4: true\n      match:\n        macaddress: 00:50:56:8a:40:02\n      set-name: eth1\n  version: 2\n",
        0o600,
    )
    .write_mode(
        "/etc/netplan/50-cloud-init.yaml",
        format!("# This file is generated from information provided by the datasource.  Changes\n# to it will not persist across an instance reboot.  To disable cloud-init's\n# network configuration capabilities, write a file\n# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:\n# network: {{config: disabled}}\nnetwork:\n    ethernets:\n        eth0:\n            dhcp4: true\n            dhcp4-overrides:\n                route-metric: 100\n            dhcp6: false\n            match:\n                driver: hv_netvsc\n                macaddress: {CLOUD_MAC}\n            set-name: eth0\n    version: 2\n"),
        0o600,
    )
    .write("/etc/cloud/cloud.cfg", CLOUD_INIT_CFG)
    .mkdir("/etc/cloud/cloud.cfg.d")
    .symlink("/etc/resolv.conf", "../run/systemd/resolve/stub-resolv.conf");
    g
}

/// Rocky Linux 9 (NetworkManager keyfiles only): `ens192`'s profile switched
/// to `method=auto` in the cloud, new MAC after failback; cloud-init's
/// profile for the Azure NIC; `ens224` static without any profile; `ens256`
/// DHCP.
pub fn rocky9() -> NetGuest {
    let g = NetGuest::new(
        vec![
            fixed(
                "00:50:56:8a:60:01",
                "ens192",
                &[("172.16.5.20", 24), ("2001:db8:5::20", 64)],
                &["172.16.5.1", "2001:db8:5::1"],
                &["172.16.5.2", "2001:db8:5::2"],
                &["rocky.example.com"],
            ),
            fixed(
                "00:50:56:8a:60:02",
                "ens224",
                &[("172.16.6.20", 24)],
                &[],
                &["172.16.5.2"],
                &[],
            ),
            dhcp("00:50:56:8a:60:03", "ens256"),
        ],
        &[("00:50:56:8a:60:01", "00:50:56:9b:60:01")],
    );
    g.write(
        "/etc/os-release",
        "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\nPLATFORM_ID=\"platform:el9\"\nPRETTY_NAME=\"Rocky Linux 9.3 (Blue Onyx)\"\n",
    )
    .mkdir("/etc/sysconfig/network-scripts")
    .write(
        "/etc/sysconfig/network-scripts/readme-ifcfg-rh.txt",
        "NetworkManager stores new network profiles in keyfile format in the\n/etc/NetworkManager/system-connections/ directory.\n",
    )
    .write_mode(
        "/etc/NetworkManager/system-connections/ens192.nmconnection",
        "[connection]\nid=ens192\nuuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\ntype=ethernet\nautoconnect-priority=-999\ninterface-name=ens192\ntimestamp=1700000000\n\n[ethernet]\nmac-address=00:50:56:8A:60:01\n\n[ipv4]\nmethod=auto\n\n[ipv6]\naddr-gen-mode=eui64\nmethod=auto\n\n[proxy]\n",
        0o600,
    )
    .write_mode(
        "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection",
        format!("# Generated by cloud-init. Changes will be lost.\n\n[connection]\nid=cloud-init eth0\nuuid=1dd9a779-d327-56e1-8454-c65e2556c12c\nautoconnect-priority=120\ntype=ethernet\n\n[user]\norg.freedesktop.NetworkManager.origin=cloud-init\n\n[ethernet]\nmac-address={}\n\n[ipv4]\nmethod=auto\nmay-fail=false\n", CLOUD_MAC.to_uppercase()),
        0o600,
    )
    .write("/etc/cloud/cloud.cfg", CLOUD_INIT_CFG)
    .mkdir("/etc/cloud/cloud.cfg.d")
    .write(
        "/etc/resolv.conf",
        "# Generated by NetworkManager\nsearch reddog.microsoft.com\nnameserver 168.63.129.16\n",
    );
    g
}
