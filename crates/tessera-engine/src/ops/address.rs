//! Private address checks and allocation shared by NICs, gateways and load balancer frontends.

use std::net::IpAddr;

use tessera_model::prefix::{self, IpNet};
use tessera_model::{ArmError, ArmResult, ResourceId};

use crate::state::State;

/// Checks a static address for `holder` in `subnet`: inside the prefix, not reserved, free
/// (holders whose id starts with `owner_prefix` are the resource being replaced).
pub(crate) fn check_static(
    st: &State,
    subnet: &ResourceId,
    prefixes: &[IpNet],
    ip: IpAddr,
    holder: &ResourceId,
    owner: &ResourceId,
) -> ArmResult<()> {
    let Some(net) = prefixes.iter().find(|n| n.contains(&ip)) else {
        let shown = prefixes.first().map(ToString::to_string).unwrap_or_default();
        return Err(ArmError::bad_request(
            "PrivateIPAddressNotInSubnet",
            format!("Private static IP address {ip} does not belong to the range of subnet prefix {shown}."),
        )
        .target(holder.as_str()));
    };
    if prefix::is_reserved_in_subnet(net, ip) {
        return Err(ArmError::bad_request(
            "PrivateIPAddressInReservedRange",
            format!("Private static IP address {ip} falls within reserved IP range of subnet prefix {net}."),
        )
        .target(holder.as_str()));
    }
    let vnet = subnet.parent().ok_or_else(|| ArmError::not_found(subnet.as_str()))?;
    if let Some(o) = st.address_owner(&vnet, ip)
        && !is_own(&o.holder, owner)
    {
        return Err(ArmError::bad_request(
                "PrivateIPAddressIsAllocated",
                format!("IP configuration {holder} is using the private IP address {ip} which is already allocated to resource {}.", o.holder),
            )
            .target(holder.as_str()));
    }
    Ok(())
}

/// Whether `holder` belongs to the resource `owner` (its id or a child of it).
pub(crate) fn is_own(holder: &ResourceId, owner: &ResourceId) -> bool {
    holder == owner || holder.key().starts_with(&format!("{}/", owner.key()))
}

/// The first free, non-reserved address of the subnet (Azure's dynamic allocation order),
/// skipping `taken` (addresses chosen earlier in the same request).
pub(crate) fn allocate(
    st: &State,
    subnet: &ResourceId,
    prefixes: &[IpNet],
    owner: &ResourceId,
    taken: &[IpAddr],
) -> ArmResult<IpAddr> {
    let vnet = subnet.parent().ok_or_else(|| ArmError::not_found(subnet.as_str()))?;
    let used = st.addresses_in(&vnet);
    for net in prefixes {
        let size = prefix::size(net).min(1 << 20);
        for off in 4..size {
            let ip = prefix::nth_address(net, off);
            if prefix::is_reserved_in_subnet(net, ip) || taken.contains(&ip) {
                continue;
            }
            match used.and_then(|m| m.get(&ip)) {
                Some(o) if !is_own(&o.holder, owner) => continue,
                _ => return Ok(ip),
            }
        }
    }
    Err(ArmError::bad_request("SubnetIsFull", format!("Subnet {subnet} has no free private IP address left.")))
}
