//! Virtual network gateways, local network gateways and connections (GWY1, GWY4, G2, limits).

use std::collections::BTreeSet;
use std::net::IpAddr;

use tessera_model::envelope::ProvisioningState;
use tessera_model::gateway::{
    Connection, ConnectionType, GatewayInstance, GatewayType, LocalNetworkGateway, VirtualNetworkGateway, VpnType,
};
use tessera_model::prefix;
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::address::{allocate, check_static};
use super::common::*;
use super::vnet::{GATEWAY_SUBNET, peers_of};
use crate::limits::Limits;
use crate::state::{State, gateway_vnet};

/// Validates and stores a virtual network gateway.
pub(crate) fn put(st: &mut State, limits: &Limits, mut gw: VirtualNetworkGateway) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut gw, 80)?;
    let host = crate::placement::tag_host(&gw.tags);
    let p = &mut gw.properties;
    if p.gateway_type == GatewayType::LocalGateway {
        return Err(ArmError::bad_request(
            "InvalidGatewayType",
            format!("Gateway {id}: gatewayType LocalGateway is not a virtual network gateway."),
        ));
    }
    if p.gateway_type == GatewayType::Vpn
        && p.vpn_type == Some(VpnType::PolicyBased)
        && !p.sku.name.eq_ignore_ascii_case("Basic")
    {
        return Err(ArmError::bad_request(
            "PolicyBasedVpnGatewayRequiresBasicSku",
            format!("Gateway {id}: a PolicyBased VPN gateway is available only with the Basic SKU."),
        ));
    }
    if p.gateway_type == GatewayType::Vpn && p.vpn_type.is_none() {
        p.vpn_type = Some(VpnType::RouteBased);
    }
    if p.ip_configurations.is_empty() || p.ip_configurations.len() > 2 {
        return Err(ArmError::bad_request(
            "InvalidGatewayIpConfigurations",
            format!("Gateway {id} needs one IP configuration (two when active-active)."),
        ));
    }
    let mut vnet: Option<ResourceId> = None;
    let mut taken: Vec<IpAddr> = Vec::new();
    for (i, c) in p.ip_configurations.iter_mut().enumerate() {
        if c.name.is_empty() {
            c.name = format!("ipconfig{}", i + 1);
        }
        let cid = id.child("ipConfigurations", &c.name);
        c.id = Some(cid.clone());
        let sid = c.properties.subnet.as_ref().map(|s| s.id.clone()).ok_or_else(|| gateway_subnet_error(&id))?;
        check_kind(&sid, Kind::Subnet, &cid)?;
        if !sid.name().eq_ignore_ascii_case(GATEWAY_SUBNET) {
            return Err(gateway_subnet_error(&id));
        }
        let (v, subnet) = st.subnet(&sid).ok_or_else(|| missing_reference(&sid, &cid))?;
        check_same_region(&id, &gw.location, &v.id, &v.location)?;
        if vnet.as_ref().is_some_and(|x| *x != v.id) {
            return Err(gateway_subnet_error(&id));
        }
        vnet = Some(v.id.clone());
        let prefixes = subnet.properties.prefixes();
        let ip = match c.properties.private_ip_address.as_deref() {
            Some(text) => {
                let ip: IpAddr = text.parse().map_err(|_| {
                    ArmError::bad_request("InvalidPrivateIPAddress", format!("{text} is not an IP address."))
                })?;
                check_static(st, &sid, &prefixes, ip, &cid, &id)?;
                ip
            }
            None => allocate(st, &sid, &prefixes, &id, &taken)?,
        };
        taken.push(ip);
        c.properties.private_ip_address = Some(ip.to_string());
    }
    let vnet = vnet.ok_or_else(|| gateway_subnet_error(&id))?;
    let same_type = st.gateways_in(&vnet).filter(|g| g.id != id && g.properties.gateway_type == p.gateway_type).count();
    let max = if p.gateway_type == GatewayType::Vpn {
        limits.vpn_gateways_per_vnet
    } else {
        limits.expressroute_gateways_per_vnet
    };
    if same_type >= max {
        return Err(limit(
            "GatewayCountLimitReached",
            format!("Virtual network {vnet} already has {same_type} {} gateway(s), the most allowed.", p.gateway_type),
            &id,
        ));
    }
    // G2, other direction: a VNet that uses a remote gateway cannot have its own.
    if let Some(v) = st.vnets.get(&vnet)
        && let Some(link) = v.properties.virtual_network_peerings.iter().find(|l| l.properties.use_remote_gateways)
    {
        return Err(ArmError::bad_request(
            "VnetUsingRemoteGatewaysCannotHaveGateway",
            format!("Gateway {id} cannot be created in {vnet} because its peering {} uses remote gateways.", link.name),
        ));
    }
    p.provisioning_state = Some(ProvisioningState::Succeeded);
    // Read-only: what the running instance reported stays; a client's value is ignored.
    // An instance placed on another host reports afresh: the old host's report goes.
    p.instance = st
        .gateways
        .get(&id)
        .and_then(|old| old.properties.instance.clone())
        .filter(|i| i.host.is_empty() || i.host == host);
    // Azure fills the gateway's BGP address: its first private address.
    if p.enable_bgp
        && let Some(b) = p.bgp_settings.as_mut()
        && b.bgp_peering_address.is_none()
    {
        b.bgp_peering_address = p.ip_configurations.first().and_then(|c| c.properties.private_ip_address.clone());
    }
    // Every check before the first change: a refusal leaves the state (and its indexes) as it was.
    let wanted = super::public_ip::wanted(
        &id,
        gw.properties.ip_configurations.iter().map(|c| (c.name.as_str(), c.properties.public_ip_address.as_ref())),
    );
    super::public_ip::check_attach(st, &id, &gw.location, &wanted)?;
    let pips: BTreeSet<ResourceId> =
        super::public_ip::named_by(st, &id).into_iter().chain(wanted.iter().cloned()).map(|(_, p)| p).collect();
    if let Some(old) = st.gateways.get(&id).cloned() {
        st.index_gateway(&old, false);
    }
    st.index_gateway(&gw, true);
    let mut dirty = st.vnets.get(&vnet).map(peers_of).unwrap_or_default();
    dirty.insert(vnet);
    dirty.extend(v2v_partners(st, &id));
    st.gateways.insert(id, gw);
    dirty.extend(super::public_ip::relink(st, limits, pips));
    Ok(dirty)
}

fn gateway_subnet_error(id: &ResourceId) -> ArmError {
    ArmError::bad_request(
        "GatewaySubnetRequired",
        format!("Virtual network gateway {id} can only be created in subnet with name 'GatewaySubnet'."),
    )
}

/// The VNets joined by VNet-to-VNet connections to the gateways of `vnets`: what those VNets
/// carry (their spaces, their transit spokes) is in the partners' routes.
pub(crate) fn v2v_partners_of(st: &State, vnets: &BTreeSet<ResourceId>) -> BTreeSet<ResourceId> {
    let mut out = BTreeSet::new();
    for v in vnets {
        for gw in st.gateways_in(v) {
            out.extend(v2v_partners(st, &gw.id));
        }
    }
    out
}

/// VNets joined to a gateway by VNet-to-VNet connections.
fn v2v_partners(st: &State, gw: &ResourceId) -> BTreeSet<ResourceId> {
    st.connections
        .values()
        .filter_map(|c| {
            let p = &c.properties;
            let other = if p.virtual_network_gateway1.id == *gw {
                p.virtual_network_gateway2.as_ref()?.id.clone()
            } else if p.virtual_network_gateway2.as_ref().is_some_and(|g| g.id == *gw) {
                p.virtual_network_gateway1.id.clone()
            } else {
                return None;
            };
            st.gateways.get(&other).and_then(gateway_vnet)
        })
        .collect()
}

/// Deletes a gateway that no connection uses.
pub(crate) fn delete(st: &mut State, limits: &Limits, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let gw = st
        .gateways
        .get(id)
        .ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?
        .clone();
    if let Some(c) = st.connections.values().find(|c| {
        c.properties.virtual_network_gateway1.id == *id
            || c.properties.virtual_network_gateway2.as_ref().is_some_and(|g| g.id == *id)
    }) {
        return Err(ArmError::bad_request(
            "InUseVirtualNetworkGatewayCannotBeDeleted",
            format!("Virtual network gateway {id} is used by connection {} and cannot be deleted.", c.id),
        ));
    }
    let pips: BTreeSet<ResourceId> = super::public_ip::named_by(st, id).into_iter().map(|(_, p)| p).collect();
    st.index_gateway(&gw, false);
    st.gateways.remove(id);
    let vnet = gateway_vnet(&gw);
    let mut dirty = vnet.as_ref().and_then(|v| st.vnets.get(v)).map(peers_of).unwrap_or_default();
    dirty.extend(vnet);
    dirty.extend(super::public_ip::relink(st, limits, pips));
    Ok(dirty)
}

/// Validates and stores a local network gateway (an on-premises site).
pub(crate) fn put_local(st: &mut State, mut lng: LocalNetworkGateway) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut lng, 80)?;
    for p in &lng.properties.local_network_address_space.address_prefixes {
        prefix::check_canonical(*p, id.as_str())?;
    }
    lng.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    let dirty = connected_vnets(st, |c| c.properties.local_network_gateway2.as_ref().is_some_and(|l| l.id == id));
    st.local_gateways.insert(id, lng);
    Ok(dirty)
}

/// Deletes a site that no connection uses.
pub(crate) fn delete_local(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if !st.local_gateways.contains_key(id) {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    if let Some(c) =
        st.connections.values().find(|c| c.properties.local_network_gateway2.as_ref().is_some_and(|l| l.id == *id))
    {
        return Err(ArmError::bad_request(
            "InUseLocalNetworkGatewayCannotBeDeleted",
            format!("Local network gateway {id} is used by connection {} and cannot be deleted.", c.id),
        ));
    }
    st.local_gateways.remove(id);
    Ok(BTreeSet::new())
}

/// The VNets (with their peers) of the gateways of matching connections.
fn connected_vnets(st: &State, pick: impl Fn(&Connection) -> bool) -> BTreeSet<ResourceId> {
    let mut out = BTreeSet::new();
    for c in st.connections.values().filter(|c| pick(c)) {
        let gws = std::iter::once(&c.properties.virtual_network_gateway1)
            .chain(c.properties.virtual_network_gateway2.as_ref());
        for g in gws {
            if let Some(v) = st.gateways.get(&g.id).and_then(gateway_vnet) {
                out.extend(st.vnets.get(&v).map(peers_of).unwrap_or_default());
                out.insert(v);
            }
        }
    }
    out
}

/// Validates and stores a connection.
pub(crate) fn put_connection(st: &mut State, mut conn: Connection) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut conn, 80)?;
    let p = &mut conn.properties;
    let gw1 = st
        .gateways
        .get(&p.virtual_network_gateway1.id)
        .ok_or_else(|| missing_reference(&p.virtual_network_gateway1.id, &id))?;
    for pfx in &p.bgp_learned_prefixes {
        prefix::check_canonical(*pfx, id.as_str())?;
    }
    // The pre-shared key: 1 to 128 printable ASCII characters, as Azure's gateways take it.
    if let Some(key) = p.shared_key.as_deref()
        && (key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
    {
        return Err(ArmError::bad_request(
            "InvalidSharedKey",
            format!("Connection {id}: the shared key must be 1 to 128 printable ASCII characters."),
        ));
    }
    let mismatch =
        |why: &str| ArmError::bad_request("InvalidConnectionConfiguration", format!("Connection {id}: {why}"));
    match p.connection_type {
        ConnectionType::IPsec => {
            let site = p
                .local_network_gateway2
                .as_ref()
                .ok_or_else(|| mismatch("an IPsec connection needs localNetworkGateway2"))?;
            if !st.local_gateways.contains_key(&site.id) {
                return Err(missing_reference(&site.id, &id));
            }
            if gw1.properties.gateway_type != GatewayType::Vpn {
                return Err(mismatch("an IPsec connection needs a VPN gateway"));
            }
        }
        ConnectionType::Vnet2Vnet => {
            let other = p
                .virtual_network_gateway2
                .as_ref()
                .ok_or_else(|| mismatch("a Vnet2Vnet connection needs virtualNetworkGateway2"))?;
            let gw2 = st.gateways.get(&other.id).ok_or_else(|| missing_reference(&other.id, &id))?;
            // GWY4: RouteBased VPN gateways, spaces that do not overlap.
            for g in [gw1, gw2] {
                if g.properties.gateway_type != GatewayType::Vpn || g.properties.vpn_type != Some(VpnType::RouteBased) {
                    return Err(mismatch("VNet-to-VNet connections need RouteBased VPN gateways on both sides"));
                }
            }
            let (a, b) = (gateway_vnet(gw1), gateway_vnet(gw2));
            if let (Some(a), Some(b)) = (a, b) {
                let clash =
                    prefix::overlapping(st.address_space(&a).unwrap_or(&[]), st.address_space(&b).unwrap_or(&[]));
                if !clash.is_empty() {
                    let list: Vec<String> = clash.iter().map(ToString::to_string).collect();
                    return Err(ArmError::bad_request(
                        "Vnet2VnetAddressSpacesOverlap",
                        format!("Connection {id} joins {a} and {b}, whose address spaces overlap: {}", list.join(", ")),
                    ));
                }
            }
        }
        ConnectionType::ExpressRoute => {
            if gw1.properties.gateway_type != GatewayType::ExpressRoute {
                return Err(mismatch("an ExpressRoute connection needs an ExpressRoute gateway"));
            }
        }
        ConnectionType::VPNClient => {
            return Err(mismatch("point-to-site connections are not modelled"));
        }
    }
    p.provisioning_state = Some(ProvisioningState::Succeeded);
    p.connection_status = Some(connection_status(gw1, &id));
    st.connections.insert(id.clone(), conn);
    Ok(connected_vnets(st, |c| c.id == id))
}

/// Deletes a connection.
pub(crate) fn delete_connection(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if !st.connections.contains_key(id) {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    let dirty = connected_vnets(st, |c| c.id == *id);
    st.connections.remove(id);
    Ok(dirty)
}

/// A connection's status as its gateway's instance reports it: `Unknown` while no instance runs.
fn connection_status(gw: &VirtualNetworkGateway, connection: &ResourceId) -> String {
    let Some(instance) = gw.properties.instance.as_ref() else {
        return "Unknown".to_string();
    };
    instance
        .tunnels
        .iter()
        .find(|t| t.connection == *connection)
        .map_or_else(|| "NotConnected".to_string(), |t| t.state.clone())
}

/// The most BGP peers, and the most routes learned from each, a report may carry: a gateway
/// instance shuts a session that sends more (`import limit`), as Azure's gateways do.
pub(crate) const REPORT_PEERS: usize = 64;
/// See [`REPORT_PEERS`].
pub(crate) const REPORT_ROUTES_PER_PEER: usize = 4000;

/// A report within bounds, with canonical prefixes: else 400 and nothing taken.
fn check_report(instance: &GatewayInstance) -> ArmResult<()> {
    let peers = instance.bgp_peers.len().max(1);
    let too_many = instance.bgp_peers.len() > REPORT_PEERS
        || instance.tunnels.len() > REPORT_PEERS
        || instance.learned_routes.len() > peers * REPORT_ROUTES_PER_PEER
        || instance.advertised_routes.len() > peers * REPORT_ROUTES_PER_PEER;
    if too_many {
        return Err(ArmError::bad_request(
            "GatewayReportTooLarge",
            format!(
                "A gateway report carries at most {REPORT_PEERS} tunnels and BGP peers and \
                 {REPORT_ROUTES_PER_PEER} routes per peer each way."
            ),
        ));
    }
    for r in instance.learned_routes.iter().chain(&instance.advertised_routes) {
        tessera_model::prefix::check_canonical(r.network, "the gateway report")?;
    }
    Ok(())
}

/// Takes what a gateway's running instance reports; its connections' status follow. The VNets
/// that route the gateway's prefixes are recompiled when the learned routes changed.
pub(crate) fn report(st: &mut State, id: &ResourceId, instance: GatewayInstance) -> ArmResult<BTreeSet<ResourceId>> {
    check_report(&instance)?;
    let gw = st
        .gateways
        .get_mut(id)
        .ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
    let learned_changed = gw.properties.instance.as_ref().map(|i| &i.learned_routes) != Some(&instance.learned_routes);
    gw.properties.instance = Some(instance);
    let gw = gw.clone();
    for c in st.connections.values_mut().filter(|c| c.properties.virtual_network_gateway1.id == *id) {
        c.properties.connection_status = Some(connection_status(&gw, &c.id));
    }
    let mut dirty = BTreeSet::new();
    if learned_changed && let Some(v) = gateway_vnet(&gw) {
        dirty.extend(st.vnets.get(&v).map(peers_of).unwrap_or_default());
        dirty.insert(v);
        dirty.extend(v2v_partners(st, id));
    }
    Ok(dirty)
}
