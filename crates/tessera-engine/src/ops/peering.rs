//! Peering links: validation (P4, R1, R2, R4, G1–G3, G6, SP1–SP4, limits) and the state
//! changes of P1–P3 and S4.

use std::collections::BTreeSet;

use tessera_model::envelope::ProvisioningState;
use tessera_model::gateway::{GatewayType, VpnType};
use tessera_model::location;
use tessera_model::network::{AddressSpace, Peering, PeeringState};
use tessera_model::prefix::{self, IpNet};
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::common::{check_name, limit};
use super::vnet::overlap_error;
use crate::lifecycle::{peered_local_space, peered_remote_space};
use crate::limits::Limits;
use crate::state::{State, remote_of};

fn peering_name_error(id: &ResourceId) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceName",
        format!(
            "Resource name {} is invalid. The name can be up to 80 characters long. It must begin with a word character, \
             and it must end with a word character. The name may contain word characters or '.', '-'.",
            id.name()
        ),
    )
    .target(id.as_str())
}

/// Creates or updates a link.
pub(crate) fn put(st: &mut State, limits: &Limits, mut link: Peering) -> ArmResult<BTreeSet<ResourceId>> {
    let id = link.id.clone().ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "A peering needs an id."))?;
    check_name(&id, 80).map_err(|_| peering_name_error(&id))?;
    let vid = id.parent().ok_or_else(|| peering_name_error(&id))?;
    let vnet =
        st.vnets.get(&vid).ok_or_else(|| ArmError::resource_not_found(&vid.type_and_name(), vid.resource_group()))?;
    let remote = remote_of(&link).cloned().ok_or_else(|| {
        ArmError::bad_request(
            "InvalidRequestContent",
            format!("Peering {id} must set properties.remoteVirtualNetwork.id."),
        )
        .target(id.as_str())
    })?;
    if !matches!(remote.kind(), Kind::VirtualNetwork | Kind::ClassicVirtualNetwork) {
        return Err(ArmError::bad_request(
            "InvalidResourceReference",
            format!("remoteVirtualNetwork {remote} of peering {id} is not a virtual network."),
        ));
    }
    let existing = st.peering(&id);
    if let Some(old) = existing {
        if remote_of(old) != Some(&remote) {
            return Err(ArmError::bad_request(
                "ChangingRemoteVirtualNetworkNotAllowed",
                format!(
                    "Cannot change the remote virtual network of peering {id}. Delete the peering and create it again."
                ),
            ));
        }
        // SP3: an update of a subnet peering that leaves the subnet names out keeps them (Azure's
        // published sync example sends none and gets the link's names back).
        let p = &mut link.properties;
        if !p.peer_complete_vnets && p.local_subnet_names.is_empty() && p.remote_subnet_names.is_empty() {
            p.local_subnet_names = old.properties.local_subnet_names.clone();
            p.remote_subnet_names = old.properties.remote_subnet_names.clone();
        }
        if old.properties.peer_complete_vnets != link.properties.peer_complete_vnets {
            return Err(ArmError::bad_request(
                "ChangingPeerCompleteVnetsNotAllowed",
                format!(
                    "Peering {id} cannot switch between virtual network and subnet peering (SP3). Delete the peering and create it again."
                ),
            ));
        }
    } else if vnet.properties.virtual_network_peerings.len() >= limits.peerings_per_vnet {
        return Err(limit(
            "PeeringsPerVirtualNetworkLimitReached",
            format!("Virtual network {vid} already has {} peerings, the most allowed.", limits.peerings_per_vnet),
            &id,
        ));
    }
    if remote == vid {
        return Err(ArmError::bad_request(
            "CannotPeerVirtualNetworkWithItself",
            format!("Peering {id} references its own virtual network {vid}."),
        ));
    }
    if !st.vnet_exists(&remote) {
        return Err(ArmError::bad_request(
            "InvalidGlobalResourceReference",
            format!(
                "Resource {remote} referenced by resource {id} was not found. Please make sure that the referenced resource exists."
            ),
        ));
    }
    let classic = st.classic_vnets.contains_key(&remote);
    // R4: never across clouds.
    let (here, there) = (location::find(&vnet.location), st.location_of(&remote).and_then(location::find));
    if let (Some(h), Some(t)) = (here, there)
        && h.cloud != t.cloud
    {
        return Err(ArmError::bad_request(
            "GlobalPeeringAcrossCloudsNotSupported",
            format!(
                "Virtual networks {vid} ({}) and {remote} ({}) are in different clouds and cannot be peered.",
                h.name, t.name
            ),
        ));
    }
    // AnotherPeeringAlreadyReferencesRemoteVnet (O7), SP3: one link per remote VNet.
    if let Some(other) = vnet
        .properties
        .virtual_network_peerings
        .iter()
        .find(|p| remote_of(p) == Some(&remote) && !p.name.eq_ignore_ascii_case(id.name()))
    {
        return Err(ArmError::bad_request(
            "AnotherPeeringAlreadyReferencesRemoteVnet",
            format!(
                "Peering {id} cannot be created because peering {} already references remote virtual network {remote}. Cannot add another peering referencing the same remote virtual network.",
                other.name
            ),
        ));
    }
    // P4: the partner link is Disconnected.
    if let Some(partner) = st.link_to(&remote, &vid)
        && partner.properties.peering_state == Some(PeeringState::Disconnected)
    {
        return Err(ArmError::bad_request(
            "RemotePeeringIsDisconnected",
            format!(
                "Cannot create or update peering {id} because remote peering {} referencing parent virtual network {vid} is in Disconnected state. \
                     Update or re-create the remote peering to get it back to Initiated state. Peering gets Disconnected when remote vnet or remote peering is deleted and re-created.",
                remote.child("virtualNetworkPeerings", &partner.name)
            ),
        ));
    }
    // SP1, SP2, SP4: subnet peering.
    if !link.properties.peer_complete_vnets {
        check_subnet_peering(st, limits, &id, &vid, &remote, classic, &link)?;
    } else {
        link.properties.local_subnet_names.clear();
        link.properties.remote_subnet_names.clear();
    }
    // R1 (whole spaces, also for subnet peering: SP2) and R2.
    let local_space = vnet.properties.address_space.address_prefixes.clone();
    let remote_space = st.address_space(&remote).map(<[IpNet]>::to_vec).unwrap_or_default();
    let clash = prefix::overlapping(&local_space, &remote_space);
    if !clash.is_empty() {
        return Err(overlap_error(&id, &vid, &remote, &clash));
    }
    check_already_peered(st, &id, &vid, &local_space, &remote)?;
    check_already_peered(st, &id, &remote, &remote_space, &vid)?;
    // G1–G3, G4, G6.
    if link.properties.use_remote_gateways {
        check_use_remote_gateways(st, &id, &vid, &remote, classic)?;
    }
    check_peering_group_addresses(st, limits, &id, &vid, &remote)?;

    // Commit: P1, P2, P6.
    let partner_exists = st.link_to(&remote, &vid).is_some();
    let state = match existing.and_then(|e| e.properties.peering_state) {
        Some(PeeringState::Disconnected) => PeeringState::Disconnected,
        _ if classic || partner_exists => PeeringState::Connected,
        _ => PeeringState::Initiated,
    };
    // The peered space is taken at creation, and again when an update changes which subnets
    // are peered (SP3); otherwise only a sync refreshes it (S4).
    let subnets_changed = existing.is_some_and(|old| {
        old.properties.local_subnet_names != link.properties.local_subnet_names
            || old.properties.remote_subnet_names != link.properties.remote_subnet_names
    });
    let remote_synced = match existing {
        Some(old) if !subnets_changed => old.properties.remote_address_space.clone(),
        _ => Some(AddressSpace::of(peered_remote_space(st, &link))),
    };
    // The link's GUID is fixed when it is created (O5).
    // A new link may bring the GUID of an imported document; derive() fills it otherwise.
    link.properties.resource_guid = match existing {
        Some(old) => old.properties.resource_guid.clone(),
        None => link.properties.resource_guid.take().filter(|g| super::common::parse_guid(g).is_some()),
    };
    link.name = id.name().to_string();
    link.kind = Some(Kind::Peering.arm_type().to_string());
    link.properties.peering_state = Some(state);
    link.properties.remote_address_space = remote_synced;
    link.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    if link.properties.enable_only_i_pv6_peering == Some(false) && link.properties.peer_complete_vnets {
        link.properties.enable_only_i_pv6_peering = None;
    }
    let vnet = st.vnets.get_mut(&vid).ok_or_else(|| ArmError::not_found(vid.as_str()))?;
    match vnet.properties.virtual_network_peerings.iter_mut().find(|p| p.name.eq_ignore_ascii_case(id.name())) {
        Some(slot) => *slot = link,
        None => vnet.properties.virtual_network_peerings.push(link),
    }
    if state == PeeringState::Connected && !classic {
        set_state(st, &remote, &vid, PeeringState::Connected);
    }
    Ok([vid, remote].into_iter().collect())
}

/// Deletes one link (P3: the partner becomes Disconnected).
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let link = st.peering(id).ok_or_else(|| ArmError::not_found(id.as_str()))?;
    let vid = id.parent().ok_or_else(|| ArmError::not_found(id.as_str()))?;
    let remote = remote_of(link).cloned();
    if let Some(v) = st.vnets.get_mut(&vid) {
        v.properties.virtual_network_peerings.retain(|p| !p.name.eq_ignore_ascii_case(id.name()));
    }
    let mut dirty: BTreeSet<ResourceId> = [vid.clone()].into_iter().collect();
    if let Some(remote) = remote {
        set_state(st, &remote, &vid, PeeringState::Disconnected);
        dirty.insert(remote);
    }
    Ok(dirty)
}

/// Deletes a link and its partner (the portal's one action, spec P3).
pub(crate) fn delete_pair(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let link = st.peering(id).ok_or_else(|| ArmError::not_found(id.as_str()))?;
    let vid = id.parent().ok_or_else(|| ArmError::not_found(id.as_str()))?;
    let remote = remote_of(link).cloned();
    let mut dirty = delete(st, id)?;
    if let Some(remote) = remote {
        if let Some(v) = st.vnets.get_mut(&remote) {
            v.properties.virtual_network_peerings.retain(|p| remote_of(p) != Some(&vid));
        }
        dirty.insert(remote);
    }
    Ok(dirty)
}

/// S4: takes the remote VNet's current space into `remoteAddressSpace`.
pub(crate) fn sync(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let link = st.peering(id).ok_or_else(|| ArmError::not_found(id.as_str()))?.clone();
    let vid = id.parent().ok_or_else(|| ArmError::not_found(id.as_str()))?;
    let remote = remote_of(&link).cloned().ok_or_else(|| ArmError::not_found(id.as_str()))?;
    if link.properties.peering_state == Some(PeeringState::Disconnected) {
        return Err(ArmError::bad_request(
            "PeeringIsDisconnected",
            format!("Peering {id} is Disconnected and cannot be synced. Delete it and create it again."),
        ));
    }
    let remote_space = st.address_space(&remote).map(<[IpNet]>::to_vec).unwrap_or_default();
    check_already_peered(st, id, &remote, &remote_space, &vid)?;
    let now = peered_remote_space(st, &link);
    if let Some(v) = st.vnets.get_mut(&vid)
        && let Some(l) =
            v.properties.virtual_network_peerings.iter_mut().find(|p| p.name.eq_ignore_ascii_case(id.name()))
    {
        l.properties.remote_address_space = Some(AddressSpace::of(now));
    }
    Ok([vid, remote].into_iter().collect())
}

fn set_state(st: &mut State, on: &ResourceId, towards: &ResourceId, state: PeeringState) {
    if let Some(v) = st.vnets.get_mut(on) {
        for p in &mut v.properties.virtual_network_peerings {
            if remote_of(p) == Some(towards) {
                p.properties.peering_state = Some(state);
            }
        }
    }
}

/// R2: `space` (of `vnet`) must not overlap any VNet already peered with `other`.
fn check_already_peered(
    st: &State,
    link: &ResourceId,
    vnet: &ResourceId,
    space: &[IpNet],
    other: &ResourceId,
) -> ArmResult<()> {
    let Some(o) = st.vnets.get(other) else {
        return Ok(());
    };
    for p in &o.properties.virtual_network_peerings {
        let Some(peer) = remote_of(p) else { continue };
        if peer == vnet || p.properties.peering_state == Some(PeeringState::Disconnected) {
            continue;
        }
        let clash = prefix::overlapping(space, &crate::lifecycle::remote_space_now_and_carried(st, p));
        if !clash.is_empty() {
            let list: Vec<String> = clash.iter().map(ToString::to_string).collect();
            return Err(ArmError::bad_request(
                "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                format!(
                    "Cannot create or update peering {link}. Virtual network {vnet} cannot be peered with {other} because its address space overlaps \
                     with virtual network {peer}, which is already peered with {other}. Overlapping address prefixes: {}",
                    list.join(", ")
                ),
            )
            .target(link.as_str()));
        }
    }
    Ok(())
}

fn check_use_remote_gateways(
    st: &State,
    id: &ResourceId,
    vid: &ResourceId,
    remote: &ResourceId,
    classic: bool,
) -> ArmResult<()> {
    let vnet = st.vnets.get(vid).ok_or_else(|| ArmError::not_found(vid.as_str()))?;
    // G1: one link per VNet.
    if let Some(other) = vnet
        .properties
        .virtual_network_peerings
        .iter()
        .find(|p| p.properties.use_remote_gateways && !p.name.eq_ignore_ascii_case(id.name()))
    {
        return Err(ArmError::bad_request(
            "OnlyOnePeeringCanUseRemoteGateways",
            format!(
                "Peering {id} cannot have UseRemoteGateways flag set to true, because another peering {} already has UseRemoteGateways flag set to true.",
                vid.child("virtualNetworkPeerings", &other.name)
            ),
        ));
    }
    // G2: not with a gateway of its own.
    if st.has_gateway(vid, None) {
        return Err(ArmError::bad_request(
            "VnetWithGatewayCannotUseRemoteGateways",
            format!(
                "Peering {id} cannot have UseRemoteGateways flag set to true because its virtual network {vid} has a gateway of its own."
            ),
        ));
    }
    // G3 / G4: the remote must have a (Resource Manager) gateway; doNotVerifyRemoteGateways does not bypass it.
    let gateways: Vec<_> = if classic { Vec::new() } else { st.gateways_in(remote).collect() };
    if gateways.is_empty() {
        return Err(ArmError::bad_request(
            "RemoteVnetHasNoGateways",
            format!(
                "Peering {id} cannot have UseRemoteGateway flag set to true because remote virtual network {remote} referenced by the peering does not have any gateways."
            ),
        ));
    }
    // G6: a Basic VPN gateway does not serve gateway transit.
    let usable = gateways.iter().any(|g| {
        g.properties.gateway_type == GatewayType::ExpressRoute
            || !(g.properties.sku.name.eq_ignore_ascii_case("Basic")
                || g.properties.vpn_type == Some(VpnType::PolicyBased))
    });
    if !usable {
        return Err(ArmError::bad_request(
            "RemoteGatewaySkuDoesNotSupportGatewayTransit",
            format!(
                "Peering {id} cannot use the gateways of {remote}: a Basic VPN gateway does not support gateway transit."
            ),
        ));
    }
    Ok(())
}

fn check_subnet_peering(
    st: &State,
    limits: &Limits,
    id: &ResourceId,
    vid: &ResourceId,
    remote: &ResourceId,
    classic: bool,
    link: &Peering,
) -> ArmResult<()> {
    let p = &link.properties;
    if classic {
        return Err(ArmError::bad_request(
            "SubnetPeeringNotSupportedForClassicVnet",
            format!("Peering {id}: subnet peering is not available with classic virtual network {remote}."),
        ));
    }
    if p.local_subnet_names.is_empty() || p.remote_subnet_names.is_empty() {
        return Err(ArmError::bad_request(
            "SubnetNamesRequiredForSubnetPeering",
            format!(
                "Peering {id} sets peerCompleteVnets to false and must name localSubnetNames and remoteSubnetNames."
            ),
        ));
    }
    if p.local_subnet_names.len() + p.remote_subnet_names.len() > limits.subnets_per_subnet_peering {
        return Err(limit(
            "SubnetPeeringSubnetLimitReached",
            format!(
                "Peering {id} names more than {} subnets on its two sides together.",
                limits.subnets_per_subnet_peering
            ),
            id,
        ));
    }
    for (names, on) in [(&p.local_subnet_names, vid), (&p.remote_subnet_names, remote)] {
        for (i, n) in names.iter().enumerate() {
            if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
                return Err(ArmError::bad_request(
                    "DuplicateSubnetInSubnetPeering",
                    format!("Peering {id} names subnet {n} twice."),
                ));
            }
            if st.subnet(&on.child("subnets", n)).is_none() {
                return Err(ArmError::bad_request(
                    "SubnetNotFoundForSubnetPeering",
                    format!("Subnet {n} named by peering {id} does not exist in virtual network {on}."),
                ));
            }
        }
    }
    let local = st.vnets.get(vid).map(|v| peered_local_space(v, link)).unwrap_or_default();
    let far = peered_remote_space(st, link);
    let clash = prefix::overlapping(&local, &far);
    if !clash.is_empty() {
        return Err(overlap_error(id, vid, remote, &clash));
    }
    Ok(())
}

/// The 128,000 private addresses limit across a VNet and its directly peered VNets.
fn check_peering_group_addresses(
    st: &State,
    limits: &Limits,
    id: &ResourceId,
    vid: &ResourceId,
    remote: &ResourceId,
) -> ArmResult<()> {
    if limits.private_ips_per_peering_group == usize::MAX {
        return Ok(());
    }
    let count = |v: &ResourceId| st.addresses_in(v).map_or(0, |m| m.len());
    for (a, b) in [(vid, remote), (remote, vid)] {
        let mut members: BTreeSet<ResourceId> = st.vnets.get(a).map(super::vnet::peers_of).unwrap_or_default();
        members.insert(a.clone());
        members.insert(b.clone());
        let total: usize = members.iter().map(count).sum();
        if total > limits.private_ips_per_peering_group {
            return Err(limit(
                "PrivateIpsPerPeeringGroupLimitReached",
                format!(
                    "Peering {id} would join {total} private IP addresses across virtual network {a} and its peers; at most {} are allowed.",
                    limits.private_ips_per_peering_group
                ),
                id,
            ));
        }
    }
    Ok(())
}
