//! A VNet's addresses as clients ask about them: `CheckIPAddressAvailability` (is an address
//! free, and if not, which ones near it are) and `usages` (addresses used per subnet).

use std::net::IpAddr;

use serde_json::{Value, json};
use tessera_model::prefix::{self, IpNet};
use tessera_model::{ArmError, ArmResult, ResourceId};

use crate::Engine;

/// How many free addresses a refusal suggests (as Azure does).
const SUGGESTED: usize = 5;

fn prefixes_of(engine: &Engine, vnet: &ResourceId) -> ArmResult<Vec<(String, IpNet)>> {
    let v = engine
        .state()
        .vnet(vnet)
        .ok_or_else(|| ArmError::resource_not_found(&vnet.type_and_name(), vnet.resource_group()))?;
    Ok(v.properties
        .subnets
        .iter()
        .flat_map(|s| s.properties.prefixes().into_iter().map(|p| (s.name.clone(), p)))
        .collect())
}

fn free(engine: &Engine, vnet: &ResourceId, net: &IpNet, ip: IpAddr) -> bool {
    !prefix::is_reserved_in_subnet(net, ip) && engine.state().address_owner(vnet, ip).is_none()
}

/// `VirtualNetworks_CheckIPAddressAvailability`: `{available, availableIPAddresses,
/// isPlatformReserved}` for an address of one of the VNet's subnets.
pub fn check_ip_address(engine: &Engine, vnet: &ResourceId, text: &str) -> ArmResult<Value> {
    let ip: IpAddr = text.trim().parse().map_err(|_| {
        ArmError::bad_request("InvalidIPAddress", format!("ipAddress '{text}' is not a valid IP address."))
    })?;
    let subnets = prefixes_of(engine, vnet)?;
    let Some((_, net)) = subnets.iter().find(|(_, n)| n.contains(&ip)) else {
        return Err(ArmError::bad_request(
            "PrivateIPAddressNotInAnySubnet",
            format!("The address {ip} is in no subnet of {vnet}."),
        ));
    };
    let reserved = prefix::is_reserved_in_subnet(net, ip);
    if free(engine, vnet, net, ip) {
        return Ok(json!({"available": true, "isPlatformReserved": false}));
    }
    // The free addresses after it in its subnet (wrapping around), nearest first.
    let size = match net {
        IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
        IpNet::V6(n) => 1u128 << (128 - n.prefix_len()).min(20),
    };
    let start = prefix::addr_offset(net, ip);
    let suggested: Vec<String> = (1..size)
        .map(|k| prefix::nth_address(net, (start + k) % size))
        .filter(|a| free(engine, vnet, net, *a))
        .take(SUGGESTED)
        .map(|a| a.to_string())
        .collect();
    Ok(json!({"available": false, "availableIPAddresses": suggested, "isPlatformReserved": reserved}))
}

/// `VirtualNetworks_ListUsage`: per subnet, the addresses in use and how many it can hold.
pub fn usages(engine: &Engine, vnet: &ResourceId) -> ArmResult<Vec<Value>> {
    let used = engine.state().addresses_in(vnet);
    Ok(prefixes_of(engine, vnet)?
        .into_iter()
        .map(|(name, net)| {
            let limit = match net {
                IpNet::V4(n) => (1u64 << (32 - n.prefix_len())).saturating_sub(5),
                IpNet::V6(n) => 1u64.checked_shl(128 - u32::from(n.prefix_len())).unwrap_or(u64::MAX).saturating_sub(4),
            };
            let current = used.map_or(0, |m| m.keys().filter(|a| net.contains(*a)).count());
            json!({
                "id": vnet.child("subnets", &name).to_string(),
                "currentValue": current,
                "limit": limit,
                "name": {"value": "SubnetSpace", "localizedValue": "Subnet size and usage"},
                "unit": "Count",
            })
        })
        .collect())
}
