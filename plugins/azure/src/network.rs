//! Virtual networks, subnets and NICs (`Microsoft.Network`, api-version
//! 2023-05-01): `get-network`, the subnet a new NIC joins, and the NICs of
//! a VM as the API's `nic-config`.
//!
//! A missing subnet is told apart from a missing virtual network (S11): a
//! subnet GET that answers 404 is followed by a GET of its virtual network.

use crate::arm::{Arm, NETWORK_API, ResourceId, text};
use homeward_sdk::Error;
use homeward_sdk::http::Method;
use homeward_sdk::types::{Addressing, Network, NicConfig, StaticAddressing};
use serde_json::{Value, json};
use std::net::Ipv4Addr;

/// The virtual network type.
pub const VNET_TYPE: &str = "Microsoft.Network/virtualNetworks";
/// The NIC type.
pub const NIC_TYPE: &str = "Microsoft.Network/networkInterfaces";
/// The DNS server Azure gives every VM (a virtual public IP).
pub const AZURE_DNS: &str = "168.63.129.16";

/// An IPv4 prefix (`10.0.1.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// Parses `a.b.c.d/n`.
    pub fn parse(text: &str) -> Option<Prefix> {
        let (address, len) = text.split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        Some(Prefix {
            network: Ipv4Addr::from(u32::from(address) & Self::mask(len)),
            len,
        })
    }

    fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.len) == u32::from(self.network)
    }

    /// The default gateway Azure gives a subnet: its first host.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }
}

/// A subnet, as a NIC joining it needs it.
#[derive(Debug, Clone)]
pub struct Subnet {
    /// Canonical id, as ARM returned it.
    pub id: String,
    /// `vnet/subnet`, for messages.
    pub label: String,
    /// Its IPv4 prefixes.
    pub prefixes: Vec<String>,
    /// The virtual network's location (a NIC must be created there).
    pub location: String,
}

/// The address prefixes of a subnet body (`addressPrefix` or `addressPrefixes`).
fn subnet_prefixes(subnet: &Value) -> Vec<String> {
    let props = &subnet["properties"];
    let mut prefixes: Vec<String> = props["addressPrefixes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(one) = props["addressPrefix"].as_str()
        && !prefixes.iter().any(|p| p == one)
    {
        prefixes.insert(0, one.to_string());
    }
    prefixes
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The virtual network `vnet` (an id without child), or `not-found` naming it.
fn vnet(arm: &Arm<'_>, vnet: &ResourceId) -> Result<Value, Error> {
    arm.get_optional(&vnet.path(), NETWORK_API, "", "virtual network")?
        .ok_or_else(|| {
            Error::not_found(format!(
                "virtual network `{}` does not exist in resource group {} of subscription {}",
                vnet.name, vnet.resource_group, vnet.subscription
            ))
        })
}

/// What a network id names, fetched.
enum Found {
    Vnet(Value),
    Subnet { vnet: Value, subnet: Value },
}

fn resolve(arm: &Arm<'_>, id: &str) -> Result<(ResourceId, Found), Error> {
    let parsed = ResourceId::parse(id)?;
    if !parsed.kind.eq_ignore_ascii_case(VNET_TYPE) {
        return Err(Error::invalid_input(format!(
            "`{}` is a {} id, not a virtual network or subnet id ({VNET_TYPE})",
            id.escape_debug(),
            parsed.kind
        )));
    }
    match &parsed.child {
        None => {
            let found = vnet(arm, &parsed)?;
            Ok((parsed, Found::Vnet(found)))
        }
        Some((kind, name)) if kind.eq_ignore_ascii_case("subnets") => {
            let what = format!("subnet `{name}`");
            match arm.get_optional(&parsed.path(), NETWORK_API, "", &what)? {
                Some(subnet) => {
                    let found = vnet(arm, &parsed.parent())?;
                    Ok((
                        parsed,
                        Found::Subnet {
                            vnet: found,
                            subnet,
                        },
                    ))
                }
                None => {
                    // Which one is missing: the network, or only the subnet?
                    let found = vnet(arm, &parsed.parent())?;
                    let known: Vec<String> = found["properties"]["subnets"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s["name"].as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                    Err(Error::not_found(format!(
                        "virtual network `{}` exists, but it has no subnet `{name}` (its subnets: {})",
                        parsed.name,
                        list_or_none(&known)
                    )))
                }
            }
        }
        Some((kind, _)) => Err(Error::invalid_input(format!(
            "`{}` names a `{}` of a virtual network; only `subnets` are networks",
            id.escape_debug(),
            kind.escape_debug()
        ))),
    }
}

/// `get-network`: a virtual network (kind `virtualNetwork`, its address
/// space) or a subnet (kind `subnet`, its prefixes).
pub fn get_network(arm: &Arm<'_>, id: &str) -> Result<Network, Error> {
    let (parsed, found) = resolve(arm, id)?;
    Ok(match found {
        Found::Vnet(vnet) => Network {
            id: non_empty(text(&vnet, "/id"), &parsed.path()),
            name: non_empty(text(&vnet, "/name"), &parsed.name),
            kind: "virtualNetwork".to_string(),
            address_prefixes: vnet["properties"]["addressSpace"]["addressPrefixes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        },
        Found::Subnet { subnet, .. } => Network {
            id: non_empty(text(&subnet, "/id"), &parsed.path()),
            name: non_empty(text(&subnet, "/name"), ""),
            kind: "subnet".to_string(),
            address_prefixes: subnet_prefixes(&subnet),
        },
    })
}

fn non_empty(value: &str, fallback: &str) -> String {
    if value.is_empty() { fallback } else { value }.to_string()
}

/// The subnet `id` names, for a NIC to join; a virtual network id is
/// `invalid-input`, a missing network or subnet `not-found` saying which.
pub fn subnet(arm: &Arm<'_>, id: &str) -> Result<Subnet, Error> {
    let (parsed, found) = resolve(arm, id)?;
    match found {
        Found::Vnet(_) => Err(Error::invalid_input(format!(
            "`{}` is virtual network `{}`, not a subnet: append /subnets/<name>",
            id.escape_debug(),
            parsed.name
        ))),
        Found::Subnet { vnet, subnet } => {
            let name = non_empty(text(&subnet, "/name"), "");
            Ok(Subnet {
                id: non_empty(text(&subnet, "/id"), &parsed.path()),
                label: format!("{}/{name}", parsed.name),
                prefixes: subnet_prefixes(&subnet),
                location: text(&vnet, "/location").to_string(),
            })
        }
    }
}

/// `00-0D-3A-AA-BB-CC` → `00:0d:3a:aa:bb:cc`.
pub fn mac(azure: &str) -> String {
    azure.replace('-', ":").to_ascii_lowercase()
}

/// A NIC of a VM as the API records it: its MAC, its primary IP
/// configuration's subnet and private IP with the subnet's prefix length,
/// the subnet's gateway and Azure's DNS (what Azure hands the guest by
/// DHCP, recorded as fixed addressing to restore on premises).
pub fn nic_config(arm: &Arm<'_>, nic_id: &str) -> Result<(NicConfig, Value), Error> {
    let parsed = crate::arm::parse_kind(nic_id, NIC_TYPE, "network interface")?;
    let nic = arm.get(
        &parsed.path(),
        NETWORK_API,
        "",
        &format!("network interface `{}`", parsed.name),
    )?;
    let configs = nic["properties"]["ipConfigurations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let primary = configs
        .iter()
        .find(|c| c["properties"]["primary"].as_bool() == Some(true))
        .or_else(|| configs.first())
        .cloned()
        .unwrap_or(Value::Null);
    let subnet_id = text(&primary, "/properties/subnet/id").to_string();
    let ip = text(&primary, "/properties/privateIPAddress").to_string();
    let mut addressing = Addressing::Dhcp;
    if !ip.is_empty() && !subnet_id.is_empty() {
        let subnet_path = ResourceId::parse(&subnet_id)?.path();
        let subnet = arm.get(
            &subnet_path,
            NETWORK_API,
            "",
            &format!("subnet {subnet_id} of NIC {}", parsed.name),
        )?;
        let ip4: Option<Ipv4Addr> = ip.parse().ok();
        let prefix = subnet_prefixes(&subnet)
            .iter()
            .filter_map(|p| Prefix::parse(p))
            .find(|p| ip4.is_some_and(|ip| p.contains(ip)));
        let (len, gateways) = match prefix {
            Some(p) => (p.len, vec![p.gateway().to_string()]),
            None => (32, Vec::new()),
        };
        let dns: Vec<String> = nic["properties"]["dnsSettings"]["dnsServers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .filter(|d: &Vec<String>| !d.is_empty())
            .unwrap_or_else(|| vec![AZURE_DNS.to_string()]);
        addressing = Addressing::Fixed(StaticAddressing {
            addresses: vec![(ip, len)],
            gateways,
            dns_servers: dns,
            dns_search: Vec::new(),
        });
    }
    let config = NicConfig {
        mac: mac(text(&nic, "/properties/macAddress")),
        network: (!subnet_id.is_empty()).then_some(subnet_id),
        device_name: None,
        addressing,
    };
    Ok((config, nic))
}

/// Creates NIC `name` in `subnet` (a static private IP when given) and
/// waits for it; its id.
pub fn create_nic(
    arm: &Arm<'_>,
    group: &str,
    name: &str,
    subnet: &Subnet,
    private_ip: Option<Ipv4Addr>,
) -> Result<String, Error> {
    let mut ip_config = json!({
        "subnet": { "id": subnet.id },
        "privateIPAllocationMethod": if private_ip.is_some() { "Static" } else { "Dynamic" },
        "primary": true,
    });
    if let Some(ip) = private_ip {
        ip_config["privateIPAddress"] = json!(ip.to_string());
    }
    let body = json!({
        "location": subnet.location,
        "properties": {
            "ipConfigurations": [{ "name": "ipconfig1", "properties": ip_config }],
        },
    });
    let id = ResourceId::build(&arm.settings.subscription_id, group, NIC_TYPE, name);
    let what = format!("network interface `{name}` in subnet {}", subnet.label);
    let created = arm.change(Method::Put, &id, NETWORK_API, Some(&body), &what)?;
    Ok(created
        .as_ref()
        .map(|c| text(c, "/id").to_string())
        .filter(|i| !i.is_empty())
        .unwrap_or(id))
}

/// Deletes a NIC and waits; a NIC already gone is fine.
pub fn delete_nic(arm: &Arm<'_>, nic_id: &str) -> Result<(), Error> {
    let parsed = crate::arm::parse_kind(nic_id, NIC_TYPE, "network interface")?;
    let what = format!("network interface `{}`", parsed.name);
    match arm.change(Method::Delete, &parsed.path(), NETWORK_API, None, &what) {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_macs() {
        let p = Prefix::parse("10.20.1.0/24").unwrap();
        assert!(p.contains("10.20.1.77".parse().unwrap()));
        assert!(!p.contains("10.99.0.5".parse().unwrap()));
        assert_eq!(p.gateway().to_string(), "10.20.1.1");
        assert_eq!(Prefix::parse("10.0.0.0/33"), None);
        assert_eq!(mac("00-0D-3A-AA-BB-CC"), "00:0d:3a:aa:bb:cc");
    }
}
