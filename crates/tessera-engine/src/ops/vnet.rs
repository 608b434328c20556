//! Virtual networks and subnets: validation (S1, subnet rules, limits) and commit.

use std::collections::BTreeSet;

use tessera_model::envelope::ProvisioningState;
use tessera_model::network::{ClassicVirtualNetwork, Subnet, VirtualNetwork};
use tessera_model::prefix::{self, IpNet};
use tessera_model::routing::RouteNextHopType;
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::common::*;
use crate::limits::Limits;
use crate::state::{State, remote_of};

/// The name of the subnet that holds gateways (GWY1).
pub const GATEWAY_SUBNET: &str = "GatewaySubnet";

/// The range of a VNet's `flowTimeoutInMinutes`.
pub(crate) const FLOW_TIMEOUT_MINUTES: (u32, u32) = (4, 30);

/// Validates and stores a VNet. Embedded peerings in the request are ignored (azure-observed O8);
/// existing links are kept. Returns the VNets whose programs change.
pub(crate) fn put(
    st: &mut State,
    limits: &Limits,
    mut vnet: VirtualNetwork,
    seq: u64,
) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut vnet, 64)?;
    vnet.properties.unmodelled.default_to("enableDdosProtection", serde_json::json!(false));
    let old = st.vnets.get(&id);
    if let Some(old) = old {
        if old.location != vnet.location {
            return Err(ArmError::bad_request(
                "LocationCannotBeChanged",
                format!("Changing the location of {id} from {} to {} is not allowed.", old.location, vnet.location),
            ));
        }
    } else {
        check_region_quota(
            "VnetCountLimitReached",
            "virtual networks",
            limits.vnets_per_subscription,
            st.vnets.values(),
            &id,
            &vnet.location,
        )?;
    }
    let space = vnet.properties.address_space.address_prefixes.clone();
    check_space(&id, &space)?;
    if let Some(dns) = &vnet.properties.dhcp_options {
        if dns.dns_servers.len() > limits.dns_servers_per_vnet {
            return Err(limit(
                "DnsServersLimitReached",
                format!("A virtual network can have at most {} DNS servers.", limits.dns_servers_per_vnet),
                &id,
            ));
        }
        for s in &dns.dns_servers {
            if s.parse::<std::net::IpAddr>().is_err() {
                return Err(ArmError::bad_request(
                    "InvalidDnsServerAddress",
                    format!("DNS server address {s} of {id} is not a valid IP address."),
                ));
            }
        }
    }
    if let Some(minutes) = vnet.properties.flow_timeout_in_minutes
        && !(FLOW_TIMEOUT_MINUTES.0..=FLOW_TIMEOUT_MINUTES.1).contains(&minutes)
    {
        return Err(ArmError::bad_request(
            "InvalidFlowTimeoutInMinutes",
            format!(
                "The flowTimeoutInMinutes {minutes} of {id} is out of range: it must be between {} and {} minutes.",
                FLOW_TIMEOUT_MINUTES.0, FLOW_TIMEOUT_MINUTES.1
            ),
        ));
    }
    let mut subnets = std::mem::take(&mut vnet.properties.subnets);
    for s in &mut subnets {
        normalize_subnet(&id, s)?;
    }
    if subnets.len() > limits.subnets_per_vnet {
        return Err(limit(
            "SubnetCountLimitReached",
            format!("A virtual network can have at most {} subnets.", limits.subnets_per_vnet),
            &id,
        ));
    }
    check_subnets(st, &id, &vnet.location, &space, &subnets)?;
    if let Some(old) = old {
        // Subnets that disappear or shrink must not be in use.
        for os in &old.properties.subnets {
            let sid = id.child("subnets", &os.name);
            let new = subnets.iter().find(|s| s.name.eq_ignore_ascii_case(&os.name));
            check_subnet_change(st, &sid, new)?;
        }
        // S1: a peered VNet may change its space, but never into a peer's space — neither the
        // peer's space now nor the one its link still carries until the next sync (S5), else
        // one prefix would have a local and a peering route.
        for link in &old.properties.virtual_network_peerings {
            let Some(remote) = remote_of(link) else {
                continue;
            };
            let clash = prefix::overlapping(&space, &crate::lifecycle::remote_space_now_and_carried(st, link));
            if !clash.is_empty() {
                return Err(overlap_error(&link_id(&id, &link.name), &id, remote, &clash));
            }
        }
    }
    // The regional community is Azure's, read-only: whatever was sent, the region's is returned.
    if let Some(communities) = vnet.properties.bgp_communities.as_mut() {
        communities.regional_community =
            tessera_model::location::regional_bgp_community(&vnet.location).map(str::to_string);
    }
    // Commit.
    vnet.properties.subnets = subnets;
    vnet.properties.virtual_network_peerings =
        old.map(|o| o.properties.virtual_network_peerings.clone()).unwrap_or_default();
    vnet.properties.resource_guid = Some(keep_guid(
        old.and_then(|o| o.properties.resource_guid.as_deref()),
        vnet.properties.resource_guid.as_deref(),
        id.key(),
        seq,
    ));
    vnet.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    let mut dirty = peers_of(&vnet);
    dirty.insert(id.clone());
    st.vnets.insert(id, vnet);
    Ok(dirty)
}

/// Validates and stores one subnet of an existing VNet.
pub(crate) fn put_subnet(st: &mut State, limits: &Limits, mut subnet: Subnet) -> ArmResult<BTreeSet<ResourceId>> {
    let sid =
        subnet.id.clone().ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "A subnet needs an id."))?;
    let vid =
        sid.parent().ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "A subnet id names its VNet."))?;
    let vnet =
        st.vnets.get(&vid).ok_or_else(|| ArmError::resource_not_found(&vid.type_and_name(), vid.resource_group()))?;
    subnet.name = sid.name().to_string();
    normalize_subnet(&vid, &mut subnet)?;
    let mut subnets: Vec<Subnet> =
        vnet.properties.subnets.iter().filter(|s| !s.name.eq_ignore_ascii_case(&subnet.name)).cloned().collect();
    let existed = subnets.len() != vnet.properties.subnets.len();
    if !existed && subnets.len() + 1 > limits.subnets_per_vnet {
        return Err(limit(
            "SubnetCountLimitReached",
            format!("A virtual network can have at most {} subnets.", limits.subnets_per_vnet),
            &vid,
        ));
    }
    subnets.push(subnet.clone());
    check_subnets(st, &vid, &vnet.location, &vnet.properties.address_space.address_prefixes, &subnets)?;
    check_subnet_change(st, &sid, Some(&subnet))?;
    let vnet = st.vnets.get_mut(&vid).ok_or_else(|| ArmError::not_found(vid.as_str()))?;
    match vnet.properties.subnets.iter_mut().find(|s| s.name.eq_ignore_ascii_case(&subnet.name)) {
        Some(slot) => *slot = subnet,
        None => vnet.properties.subnets.push(subnet),
    }
    let mut dirty = peers_of(vnet);
    dirty.insert(vid);
    Ok(dirty)
}

/// Deletes a subnet that nothing uses.
pub(crate) fn delete_subnet(st: &mut State, sid: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if st.subnet(sid).is_none() {
        return Err(ArmError::not_found(sid.as_str()));
    }
    check_subnet_change(st, sid, None)?;
    let vid = sid.parent().ok_or_else(|| ArmError::not_found(sid.as_str()))?;
    let vnet = st.vnets.get_mut(&vid).ok_or_else(|| ArmError::not_found(sid.as_str()))?;
    vnet.properties.subnets.retain(|s| !s.name.eq_ignore_ascii_case(sid.name()));
    let mut dirty = peers_of(vnet);
    dirty.insert(vid);
    Ok(dirty)
}

/// Deletes a VNet whose subnets nothing uses. Its links go with it; the links pointing at it
/// become Disconnected (P3, P5).
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let vnet =
        st.vnets.get(id).ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
    for s in &vnet.properties.subnets {
        check_subnet_change(st, &id.child("subnets", &s.name), None)?;
    }
    let mut dirty = peers_of(vnet);
    st.vnets.remove(id);
    dirty.extend(crate::lifecycle::disconnect_links_to(st, id));
    dirty.insert(id.clone());
    Ok(dirty)
}

/// R6: moves a VNet (with its subnets) to another resource group or subscription. Refused
/// while it has peering links or while any link points at it, and while resources in other
/// groups use its subnets (they would have to move with it).
pub(crate) fn move_vnet(
    st: &mut State,
    id: &ResourceId,
    subscription: &str,
    resource_group: &str,
) -> ArmResult<BTreeSet<ResourceId>> {
    let vnet =
        st.vnets.get(id).ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
    let refused = |code: &str, why: String| {
        let mut e = ArmError::with_status(
            409,
            "ResourceMoveProviderValidationFailed",
            format!("Resource move validation failed for {id}. See details."),
        );
        e.details.push(ArmError::bad_request(code, why).target(id.as_str()));
        e
    };
    let pointing =
        st.vnets.values().any(|v| v.properties.virtual_network_peerings.iter().any(|p| remote_of(p) == Some(id)));
    if !vnet.properties.virtual_network_peerings.is_empty() || pointing {
        return Err(refused(
            "CannotMoveVirtualNetworkWithPeerings",
            format!(
                "Virtual network {id} has peerings. Delete the peerings, move the virtual network, then peer it again (R6)."
            ),
        ));
    }
    if let Some(user) =
        vnet.properties.subnets.iter().flat_map(|s| st.subnet_users(&id.child("subnets", &s.name))).next()
    {
        return Err(refused(
            "CannotMoveVirtualNetworkInUse",
            format!("Virtual network {id} is used by {user}; move or delete the resources in its subnets first."),
        ));
    }
    check_subscription(st, &ResourceId::top(subscription, resource_group, Kind::VirtualNetwork, id.name()))?;
    let new_id = ResourceId::top(subscription, resource_group, Kind::VirtualNetwork, id.name());
    if st.vnets.contains_key(&new_id) {
        return Err(refused("ResourceAlreadyExists", format!("Virtual network {new_id} already exists.")));
    }
    let mut moved = st.vnets.remove(id).ok_or_else(|| ArmError::not_found(id.as_str()))?;
    moved.id = new_id.clone();
    for s in &mut moved.properties.subnets {
        s.id = Some(new_id.child("subnets", &s.name));
    }
    st.vnets.insert(new_id.clone(), moved);
    Ok([id.clone(), new_id].into_iter().collect())
}

/// Validates and stores a classic VNet.
pub(crate) fn put_classic(st: &mut State, mut vnet: ClassicVirtualNetwork) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut vnet, 64)?;
    let space = vnet.properties.address_space.address_prefixes.clone();
    check_space(&id, &space)?;
    for s in &vnet.properties.subnets {
        prefix::check_canonical(s.address_prefix, id.as_str())?;
        if !prefix::covered_by(&space, &s.address_prefix) {
            return Err(outside(&s.name, &id));
        }
    }
    let dirty: BTreeSet<ResourceId> = st
        .vnets
        .values()
        .filter(|v| v.properties.virtual_network_peerings.iter().any(|p| remote_of(p) == Some(&id)))
        .map(|v| v.id.clone())
        .collect();
    st.classic_vnets.insert(id, vnet);
    Ok(dirty)
}

/// Deletes a classic VNet; Resource Manager links to it become Disconnected.
pub(crate) fn delete_classic(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if st.classic_vnets.remove(id).is_none() {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    Ok(crate::lifecycle::disconnect_links_to(st, id))
}

/// The VNets this VNet has links to.
pub(crate) fn peers_of(vnet: &VirtualNetwork) -> BTreeSet<ResourceId> {
    vnet.properties.virtual_network_peerings.iter().filter_map(remote_of).cloned().collect()
}

/// `vnet/virtualNetworkPeerings/name`.
pub(crate) fn link_id(vnet: &ResourceId, name: &str) -> ResourceId {
    vnet.child("virtualNetworkPeerings", name)
}

/// R1 / S1 refusal in Azure's words (azure-observed O7).
pub(crate) fn overlap_error(link: &ResourceId, a: &ResourceId, b: &ResourceId, clash: &[IpNet]) -> ArmError {
    let list: Vec<String> = clash.iter().map(ToString::to_string).collect();
    ArmError::bad_request(
        "VnetAddressSpacesOverlap",
        format!(
            "Cannot create or update peering {link}. Virtual networks {a} and {b} cannot be peered because their address spaces overlap. Overlapping address prefixes: {}",
            list.join(", ")
        ),
    )
    .target(link.as_str())
}

fn check_space(id: &ResourceId, space: &[IpNet]) -> ArmResult<()> {
    if space.is_empty() {
        return Err(ArmError::bad_request(
            "AddressSpaceRequired",
            format!("Virtual network {id} must have at least one address prefix in its address space."),
        ));
    }
    for (i, p) in space.iter().enumerate() {
        prefix::check_canonical(*p, id.as_str())?;
        if let Some(q) = space[..i].iter().find(|q| prefix::overlaps(p, q)) {
            return Err(ArmError::bad_request(
                "VnetAddressSpacePrefixesOverlap",
                format!("Address prefixes {q} and {p} of virtual network {id} overlap."),
            )
            .target(id.as_str()));
        }
    }
    Ok(())
}

fn normalize_subnet(vnet: &ResourceId, s: &mut Subnet) -> ArmResult<()> {
    let sid = vnet.child("subnets", &s.name);
    check_name(&sid, 80)?;
    s.id = Some(sid.clone());
    s.kind = Some(Kind::Subnet.arm_type().to_string());
    s.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    s.properties.ip_configurations.clear();
    // What Azure fills in when a client leaves it out.
    let u = &mut s.properties.unmodelled;
    u.default_to("privateEndpointNetworkPolicies", serde_json::json!("Disabled"));
    u.default_to("privateLinkServiceNetworkPolicies", serde_json::json!("Enabled"));
    u.default_to("delegations", serde_json::json!([]));
    if s.properties.prefixes().is_empty() {
        return Err(ArmError::bad_request(
            "NetcfgInvalidSubnet",
            format!("Subnet '{}' is not valid in virtual network '{}': it has no address prefix.", s.name, vnet.name()),
        ));
    }
    for p in s.properties.prefixes() {
        prefix::check_canonical(p, sid.as_str())?;
    }
    Ok(())
}

fn outside(subnet: &str, vnet: &ResourceId) -> ArmError {
    ArmError::bad_request(
        "NetcfgSubnetRangeOutsideVnet",
        format!(
            "Subnet '{subnet}' is not valid because its IP address range is outside the IP address range of virtual network '{}'.",
            vnet.name()
        ),
    )
}

/// Subnet-level rules over the full list: unique names, inside the space, no overlaps, valid
/// references, GatewaySubnet route-table rules (GWY2).
fn check_subnets(st: &State, vid: &ResourceId, location: &str, space: &[IpNet], subnets: &[Subnet]) -> ArmResult<()> {
    let mut seen: Vec<(String, Vec<IpNet>)> = Vec::with_capacity(subnets.len());
    for s in subnets {
        let sid = vid.child("subnets", &s.name);
        if seen.iter().any(|(n, _)| n.eq_ignore_ascii_case(&s.name)) {
            return Err(ArmError::bad_request(
                "DuplicateResourceName",
                format!("Virtual network {vid} has two subnets named {}.", s.name),
            ));
        }
        let prefixes = s.properties.prefixes();
        for p in &prefixes {
            if !prefix::covered_by(space, p) {
                return Err(outside(&s.name, vid));
            }
            if seen.iter().any(|(_, q)| q.iter().any(|q| prefix::overlaps(p, q))) {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangesOverlap",
                    format!(
                        "Subnet '{}' is not valid because its IP address range overlaps with that of an existing subnet in virtual network '{}'.",
                        s.name,
                        vid.name()
                    ),
                ));
            }
        }
        if let Some(nsg) = &s.properties.network_security_group {
            check_kind(&nsg.id, Kind::NetworkSecurityGroup, &sid)?;
            let n = st.nsgs.get(&nsg.id).ok_or_else(|| missing_reference(&nsg.id, &sid))?;
            check_same_region(&sid, location, &n.id, &n.location)?;
        }
        if let Some(rt) = &s.properties.route_table {
            check_kind(&rt.id, Kind::RouteTable, &sid)?;
            let table = st.route_tables.get(&rt.id).ok_or_else(|| missing_reference(&rt.id, &sid))?;
            check_same_region(&sid, location, &table.id, &table.location)?;
            if s.name.eq_ignore_ascii_case(GATEWAY_SUBNET) {
                check_gateway_subnet_table(table, &sid)?;
            }
        }
        seen.push((s.name.clone(), prefixes));
    }
    Ok(())
}

/// GWY2: no BGP-propagation switch-off and no 0.0.0.0/0 route on a GatewaySubnet.
pub(crate) fn check_gateway_subnet_table(
    table: &tessera_model::routing::RouteTable,
    sid: &ResourceId,
) -> ArmResult<()> {
    if table.properties.disable_bgp_route_propagation {
        return Err(ArmError::bad_request(
            "GatewaySubnetRouteTableCannotDisableBgpPropagation",
            format!("Route table {} disables gateway route propagation and cannot be associated with {sid}.", table.id),
        ));
    }
    let default_route = table.properties.routes.iter().any(|r| {
        r.properties.address_prefix.trim() == "0.0.0.0/0" && r.properties.next_hop_type != RouteNextHopType::Internet
    });
    if default_route {
        return Err(ArmError::bad_request(
            "GatewaySubnetRouteTableCannotHaveDefaultRoute",
            format!("Route table {} has a 0.0.0.0/0 route and cannot be associated with {sid}.", table.id),
        ));
    }
    Ok(())
}

/// A subnet that is replaced (`Some`) or removed (`None`) must keep every address in use.
fn check_subnet_change(st: &State, sid: &ResourceId, new: Option<&Subnet>) -> ArmResult<()> {
    let Some(vid) = sid.parent() else {
        return Ok(());
    };
    let users: Vec<(std::net::IpAddr, ResourceId)> = st
        .addresses_in(&vid)
        .into_iter()
        .flatten()
        .filter(|(_, o)| o.subnet == *sid)
        .map(|(ip, o)| (*ip, o.holder.clone()))
        .collect();
    let Some((_, first)) = users.first() else {
        return Ok(());
    };
    match new {
        None => Err(ArmError::bad_request(
            "InUseSubnetCannotBeDeleted",
            format!(
                "Subnet {} is in use by {first} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                sid.name()
            ),
        )),
        Some(s) => {
            let prefixes = s.properties.prefixes();
            match users.iter().find(|(ip, _)| !prefix::contains_addr(&prefixes, *ip)) {
                Some((ip, holder)) => Err(ArmError::bad_request(
                    "InUseSubnetCannotBeUpdated",
                    format!(
                        "Subnet {} is in use by {holder} with address {ip}, which the new address prefix does not contain.",
                        sid.name()
                    ),
                )),
                None => Ok(()),
            }
        }
    }
}
