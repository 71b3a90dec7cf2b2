//! Virtual networks and subnets: `get-network`, and the subnet a new NIC
//! joins.

use crate::arm::ResourceId;
use crate::format::{Subnet, VNET_TYPE, VirtualNetwork};
use crate::ipv4::Prefix;
use crate::store::Lab;
use homeward_sdk::Error;
use homeward_sdk::types::Network;

/// What a network id names.
enum Target<'a> {
    Vnet(&'a VirtualNetwork),
    Subnet(&'a VirtualNetwork, &'a Subnet),
}

fn resolve<'a>(lab: &'a Lab, id: &str) -> Result<Target<'a>, Error> {
    let parsed = ResourceId::parse(id)?;
    if !parsed.is_kind(VNET_TYPE) {
        return Err(Error::invalid_input(format!(
            "`{}` is a {} id, not a virtual network or subnet id ({VNET_TYPE})",
            id.escape_debug(),
            parsed.kind
        )));
    }
    lab.check_scope(id, &parsed)?;
    let cloud = &lab.cloud;
    let Some(vnet) = cloud.vnet(&parsed.name) else {
        let known: Vec<&str> = cloud
            .virtual_networks
            .iter()
            .map(|v| v.name.as_str())
            .collect();
        return Err(Error::not_found(format!(
            "virtual network `{}` does not exist in resource group {} (it has: {})",
            parsed.name.escape_debug(),
            cloud.resource_group,
            list_or_none(&known)
        )));
    };
    match &parsed.child {
        None => Ok(Target::Vnet(vnet)),
        Some((kind, name)) if kind.eq_ignore_ascii_case("subnets") => match vnet.subnet(name) {
            Some(subnet) => Ok(Target::Subnet(vnet, subnet)),
            None => {
                let known: Vec<&str> = vnet.subnets.iter().map(|s| s.name.as_str()).collect();
                Err(Error::not_found(format!(
                    "virtual network `{}` exists, but it has no subnet `{}` (its subnets: {})",
                    vnet.name,
                    name.escape_debug(),
                    list_or_none(&known)
                )))
            }
        },
        Some((kind, _)) => Err(Error::invalid_input(format!(
            "`{}` names a `{}` of a virtual network; only `subnets` are networks",
            id.escape_debug(),
            kind.escape_debug()
        ))),
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// `get-network`: a virtual network (kind `virtualNetwork`, its address
/// space) or a subnet (kind `subnet`, its one prefix), with its id in
/// canonical form.
pub fn get_network(lab: &Lab, id: &str) -> Result<Network, Error> {
    Ok(match resolve(lab, id)? {
        Target::Vnet(vnet) => Network {
            id: lab.cloud.vnet_id(&vnet.name),
            name: vnet.name.clone(),
            kind: "virtualNetwork".to_string(),
            address_prefixes: vnet.address_prefixes.clone(),
        },
        Target::Subnet(vnet, subnet) => Network {
            id: lab.cloud.subnet_id(&vnet.name, &subnet.name),
            name: subnet.name.clone(),
            kind: "subnet".to_string(),
            address_prefixes: vec![subnet.address_prefix.clone()],
        },
    })
}

/// A subnet a NIC can join.
#[derive(Debug, Clone)]
pub struct JoinedSubnet {
    /// Canonical id.
    pub id: String,
    /// `vnet/subnet`, for messages.
    pub label: String,
    /// Its prefix.
    pub prefix: Prefix,
}

/// The subnet `id` names; a virtual network id is `invalid-input`, a missing
/// virtual network or subnet `not-found` saying which.
pub fn subnet(lab: &Lab, id: &str) -> Result<JoinedSubnet, Error> {
    match resolve(lab, id)? {
        Target::Vnet(vnet) => Err(Error::invalid_input(format!(
            "`{}` is virtual network `{}`, not a subnet: append /subnets/<name> (its subnets: {})",
            id.escape_debug(),
            vnet.name,
            list_or_none(
                &vnet
                    .subnets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
            )
        ))),
        Target::Subnet(vnet, subnet) => {
            let prefix = Prefix::parse(&subnet.address_prefix).map_err(|e| {
                Error::internal(format!(
                    "subnet {}/{} of the lab has a bad prefix: {e}",
                    vnet.name, subnet.name
                ))
            })?;
            Ok(JoinedSubnet {
                id: lab.cloud.subnet_id(&vnet.name, &subnet.name),
                label: format!("{}/{}", vnet.name, subnet.name),
                prefix,
            })
        }
    }
}
