//! The two-link peering lifecycle (P1–P5) and the derived, read-only fields of each link
//! (sync levels S2–S3, remote spaces, remote gateways, the shared resourceGuid of O5).

use std::collections::BTreeSet;

use tessera_model::ResourceId;
use tessera_model::envelope::SubResource;
use tessera_model::network::{AddressSpace, Peering, PeeringState, PeeringSyncLevel, VirtualNetwork};
use tessera_model::prefix::IpNet;

use crate::ops::common::{fmt_guid, parse_guid};
use crate::state::{State, remote_of};

/// Marks every link that points at `remote` Disconnected; returns the VNets holding them.
pub(crate) fn disconnect_links_to(st: &mut State, remote: &ResourceId) -> BTreeSet<ResourceId> {
    let mut touched = BTreeSet::new();
    for vnet in st.vnets.values_mut() {
        for link in &mut vnet.properties.virtual_network_peerings {
            if remote_of(link) == Some(remote) {
                link.properties.peering_state = Some(PeeringState::Disconnected);
                touched.insert(vnet.id.clone());
            }
        }
    }
    touched
}

/// The prefixes a link peers on its local side now: the whole VNet space, or the named subnets
/// (subnet peering, SP1), optionally IPv6 only.
pub fn peered_local_space(vnet: &VirtualNetwork, link: &Peering) -> Vec<IpNet> {
    select_space(vnet, link.properties.peer_complete_vnets, &link.properties.local_subnet_names, only_v6(link))
}

/// The prefixes a link peers on the remote side now (for a classic remote, its whole space).
pub fn peered_remote_space(st: &State, link: &Peering) -> Vec<IpNet> {
    let Some(remote) = remote_of(link) else {
        return Vec::new();
    };
    match st.vnets.get(remote) {
        Some(r) => {
            select_space(r, link.properties.peer_complete_vnets, &link.properties.remote_subnet_names, only_v6(link))
        }
        None => st.address_space(remote).map(<[IpNet]>::to_vec).unwrap_or_default(),
    }
}

/// Every prefix a link's VNet routes to its remote or may route after the next sync: the remote
/// VNet's space now and the space the link still carries from its last sync (S5). A VNet's own
/// space, or another link's, must stay clear of all of it.
pub(crate) fn remote_space_now_and_carried(st: &State, link: &Peering) -> Vec<IpNet> {
    let now = remote_of(link).and_then(|r| st.address_space(r)).unwrap_or(&[]);
    let carried = link.properties.remote_address_space.iter().flat_map(|a| a.address_prefixes.iter());
    now.iter().chain(carried).copied().collect()
}

fn only_v6(link: &Peering) -> bool {
    link.properties.enable_only_i_pv6_peering == Some(true)
}

fn select_space(vnet: &VirtualNetwork, complete: bool, subnets: &[String], v6_only: bool) -> Vec<IpNet> {
    let all: Vec<IpNet> = if complete {
        vnet.properties.address_space.address_prefixes.clone()
    } else {
        vnet.properties
            .subnets
            .iter()
            .filter(|s| subnets.iter().any(|n| n.eq_ignore_ascii_case(&s.name)))
            .flat_map(|s| s.properties.prefixes())
            .collect()
    };
    all.into_iter().filter(|p| !v6_only || matches!(p, IpNet::V6(_))).collect()
}

fn same_set(a: &[IpNet], b: &[IpNet]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Recomputes the read-only fields of the links a change can alter: those between VNets of
/// `changed` (`pair_only`), or every link on them or pointing at them. Returns the VNets whose
/// links were looked at.
pub(crate) fn refresh_links(st: &mut State, changed: &BTreeSet<ResourceId>, pair_only: bool) -> BTreeSet<ResourceId> {
    let mut updates: Vec<(ResourceId, usize, Peering)> = Vec::new();
    if changed.is_empty() {
        return BTreeSet::new();
    }
    for vnet in st.vnets.values() {
        let here = changed.contains(&vnet.id);
        if !here && pair_only {
            continue;
        }
        for (i, link) in vnet.properties.virtual_network_peerings.iter().enumerate() {
            let there = remote_of(link).is_some_and(|r| changed.contains(r));
            let wanted = if pair_only { there } else { here || there };
            if wanted {
                let mut l = link.clone();
                derive(st, vnet, &mut l);
                updates.push((vnet.id.clone(), i, l));
            }
        }
    }
    let mut touched = BTreeSet::new();
    for (vid, i, link) in updates {
        if let Some(slot) = st.vnets.get_mut(&vid).and_then(|v| v.properties.virtual_network_peerings.get_mut(i)) {
            *slot = link;
        }
        touched.insert(vid);
    }
    touched
}

fn derive(st: &State, vnet: &VirtualNetwork, link: &mut Peering) {
    let Some(remote) = remote_of(link).cloned() else {
        return;
    };
    let remote_now = peered_remote_space(st, link);
    let local_now = peered_local_space(vnet, link);
    let partner = st.link_to(&remote, &vnet.id);
    let classic = st.classic_vnets.contains_key(&remote);
    let synced_here =
        link.properties.remote_address_space.as_ref().map(|a| a.address_prefixes.as_slice()).unwrap_or(&[]);
    let local_stale = !same_set(synced_here, &remote_now);
    let remote_stale = if classic {
        false
    } else {
        match partner {
            Some(p) => {
                let theirs =
                    p.properties.remote_address_space.as_ref().map(|a| a.address_prefixes.as_slice()).unwrap_or(&[]);
                !same_set(theirs, &local_now)
            }
            None => true,
        }
    };
    link.properties.peering_sync_level = Some(match (local_stale, remote_stale) {
        (false, false) => PeeringSyncLevel::FullyInSync,
        (true, false) => PeeringSyncLevel::LocalNotInSync,
        (false, true) => PeeringSyncLevel::RemoteNotInSync,
        (true, true) => PeeringSyncLevel::LocalAndRemoteNotInSync,
    });
    link.properties.remote_virtual_network_address_space = Some(AddressSpace::of(remote_now));
    if !link.properties.peer_complete_vnets {
        let local_synced = partner
            .and_then(|p| p.properties.remote_address_space.clone())
            .unwrap_or_else(|| AddressSpace::of(local_now.clone()));
        link.properties.local_address_space = Some(local_synced);
        link.properties.local_virtual_network_address_space = Some(AddressSpace::of(local_now));
    } else {
        link.properties.local_address_space = None;
        link.properties.local_virtual_network_address_space = None;
    }
    link.properties.remote_gateways = if link.properties.use_remote_gateways {
        st.gateways_in(&remote).map(|g| SubResource::new(g.id.clone())).collect()
    } else {
        Vec::new()
    };
    if let Some(r) = st.vnets.get(&remote) {
        link.properties.remote_virtual_network_encryption = r.properties.encryption.clone();
        link.properties.remote_bgp_communities = r.properties.bgp_communities.clone();
        let a = vnet.properties.resource_guid.as_deref().and_then(parse_guid);
        let b = r.properties.resource_guid.as_deref().and_then(parse_guid);
        if let (Some(a), Some(b), None) = (a, b, &link.properties.resource_guid) {
            link.properties.resource_guid = Some(fmt_guid(a ^ b));
        }
    }
}

/// Whether a link carries traffic: Connected (both links exist, or a classic remote).
pub fn is_connected(link: &Peering) -> bool {
    link.properties.peering_state == Some(PeeringState::Connected)
}
