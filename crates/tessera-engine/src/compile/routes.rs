//! Effective routes of a subnet (spec §3): system routes, reserved prefixes (RT2, RT3), peering
//! routes, gateway routes (GW1, U5), user-defined routes (U1–U4) and selection (SEL1–SEL4).

use std::net::IpAddr;

use serde::Serialize;
use tessera_model::ResourceId;
use tessera_model::gateway::{ConnectionType, GatewayType};
use tessera_model::network::{Subnet, VirtualNetwork};
use tessera_model::prefix::{self, IpNet};
use tessera_model::routing::RouteNextHopType;

use super::lpm::Lpm;
use crate::lifecycle::is_connected;
use crate::state::{State, gateway_vnet, ip_of, remote_of};

/// Next hop types as effective routes report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum NextHopType {
    /// Inside the VNet.
    VnetLocal,
    /// A peered VNet in the same region.
    VNetPeering,
    /// A peered VNet in another region.
    VNetGlobalPeering,
    /// A virtual network gateway.
    VirtualNetworkGateway,
    /// The internet.
    Internet,
    /// An appliance.
    VirtualAppliance,
    /// Dropped.
    None,
}

impl NextHopType {
    /// The effective-routes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NextHopType::VnetLocal => "VnetLocal",
            NextHopType::VNetPeering => "VNetPeering",
            NextHopType::VNetGlobalPeering => "VNetGlobalPeering",
            NextHopType::VirtualNetworkGateway => "VirtualNetworkGateway",
            NextHopType::Internet => "Internet",
            NextHopType::VirtualAppliance => "VirtualAppliance",
            NextHopType::None => "None",
        }
    }
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum RouteSource {
    /// System route.
    Default,
    /// User-defined route.
    User,
    /// Learned from or configured on a virtual network gateway (the BGP class of SEL2).
    VirtualNetworkGateway,
}

/// What a route delivers to, beyond its next-hop type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Nothing more (Internet, None, appliance addressed by IP).
    Nothing,
    /// A VNet (the local one, or a peered one).
    Vnet(ResourceId),
    /// The gateways of a VNet (local, or the hub's through gateway transit).
    Gateway(ResourceId),
}

/// One route of an effective route table.
#[derive(Debug, Clone)]
pub struct EffectiveRoute {
    /// Destination prefix.
    pub prefix: IpNet,
    /// Source.
    pub source: RouteSource,
    /// Next hop type.
    pub next_hop: NextHopType,
    /// Next hop addresses (appliance IP, gateway IPs).
    pub next_hop_ips: Vec<IpAddr>,
    /// UDR name (User routes).
    pub name: Option<String>,
    /// The route table of a UDR.
    pub route_table: Option<ResourceId>,
    /// Active, or Invalid (lost on an equal prefix, SEL4; or unusable, U3).
    pub active: bool,
    /// What the route delivers to.
    pub target: Target,
}

impl EffectiveRoute {
    fn system(prefix: IpNet, next_hop: NextHopType, target: Target) -> Self {
        EffectiveRoute {
            prefix,
            source: RouteSource::Default,
            next_hop,
            next_hop_ips: Vec::new(),
            name: None,
            route_table: None,
            active: true,
            target,
        }
    }

    /// VNet, peering (and service endpoint) system routes: preferred over BGP routes (SEL3).
    pub fn is_protected(&self) -> bool {
        self.source == RouteSource::Default
            && matches!(
                self.next_hop,
                NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering
            )
    }

    /// Precedence on an equal prefix (SEL2 with SEL3): User > VNet/peering system > BGP > other system.
    pub fn rank(&self) -> u8 {
        match self.source {
            RouteSource::User => 3,
            _ if self.is_protected() => 2,
            RouteSource::VirtualNetworkGateway => 1,
            RouteSource::Default => 0,
        }
    }
}

/// The reserved `None` routes of every subnet, in the order real Azure lists them (azure-observed
/// O9; 172.16.0.0/12 is absent there).
pub const RESERVED_NONE: &[&str] = &[
    "10.0.0.0/8",
    "100.64.0.0/10",
    "25.48.0.0/12",
    "25.4.0.0/14",
    "198.18.0.0/15",
    "157.59.0.0/16",
    "192.168.0.0/16",
    "25.33.0.0/16",
    "40.109.0.0/16",
    "104.147.0.0/16",
    "104.146.0.0/17",
    "40.108.0.0/17",
    "23.103.0.0/18",
    "25.41.0.0/20",
    "20.35.252.0/22",
];

/// A subnet's route table with its lookup structures.
#[derive(Debug, Clone, Default)]
pub struct RouteProgram {
    /// Every route, Active and Invalid, in display order.
    pub routes: Vec<EffectiveRoute>,
    all: Lpm<usize>,
    without_gateway: Lpm<usize>,
    protected: Lpm<usize>,
}

impl RouteProgram {
    /// Builds the lookup tables over the Active routes. VNet and peering system routes mark
    /// their prefixes as protected from BGP routes even when a UDR overrides them (SEL3).
    pub fn new(routes: Vec<EffectiveRoute>) -> Self {
        let mut p = RouteProgram { routes, ..Default::default() };
        for (i, r) in p.routes.iter().enumerate() {
            if r.is_protected() {
                p.protected.insert(r.prefix, i);
            }
            if !r.active {
                continue;
            }
            p.all.insert(r.prefix, i);
            if r.source != RouteSource::VirtualNetworkGateway {
                p.without_gateway.insert(r.prefix, i);
            }
        }
        p
    }

    /// The route used for `dst` (SEL1–SEL3): longest prefix among Active routes, except that a
    /// matching VNet or peering system route excludes every gateway route.
    pub fn lookup(&self, dst: IpAddr) -> Option<&EffectiveRoute> {
        let table = if self.protected.matches(dst) { &self.without_gateway } else { &self.all };
        let hits = table.lookup(dst)?;
        let best = hits.iter().map(|i| &self.routes[*i]).max_by_key(|r| r.rank())?;
        Some(best)
    }
}

/// The VNet whose gateways serve `vnet`: its own, or the hub's through gateway transit (GW1).
pub fn gateway_vnet_for(st: &State, vnet: &VirtualNetwork) -> Option<ResourceId> {
    if st.has_gateway(&vnet.id, None) {
        return Some(vnet.id.clone());
    }
    let link = vnet
        .properties
        .virtual_network_peerings
        .iter()
        .find(|l| l.properties.use_remote_gateways && is_connected(l))?;
    let hub = remote_of(link)?;
    let back = st.link_to(hub, &vnet.id)?;
    (back.properties.allow_gateway_transit && st.has_gateway(hub, None)).then(|| hub.clone())
}

/// The spaces of the VNets that use `hub`'s gateway (gateway transit, GW1–GW2): Connected
/// links of the hub that allow transit, whose link back uses remote gateways; each as last synced.
pub fn transit_spoke_spaces(st: &State, hub: &ResourceId) -> Vec<IpNet> {
    let Some(v) = st.vnets.get(hub) else { return Vec::new() };
    v.properties
        .virtual_network_peerings
        .iter()
        .filter(|l| crate::lifecycle::is_connected(l) && l.properties.allow_gateway_transit)
        .filter(|l| {
            crate::state::remote_of(l)
                .and_then(|spoke| st.link_to(spoke, hub))
                .is_some_and(|back| back.properties.use_remote_gateways)
        })
        .flat_map(|l| l.properties.remote_address_space.iter().flat_map(|a| a.address_prefixes.iter().copied()))
        .collect()
}

/// The prefixes the gateways of `gw_vnet` route, with the gateway addresses they use.
pub fn gateway_prefixes(st: &State, gw_vnet: &ResourceId) -> Vec<(IpNet, Vec<IpAddr>)> {
    let mut out: Vec<(IpNet, Vec<IpAddr>)> = Vec::new();
    let mut add = |p: IpNet, ips: &Vec<IpAddr>| {
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, ips.clone()));
        }
    };
    for gw in st.gateways_in(gw_vnet) {
        let ips: Vec<IpAddr> =
            gw.properties.ip_configurations.iter().filter_map(|c| ip_of(&c.properties.private_ip_address)).collect();
        for c in st.connections.values() {
            let p = &c.properties;
            if p.virtual_network_gateway1.id != gw.id {
                continue;
            }
            match p.connection_type {
                ConnectionType::IPsec => {
                    if let Some(site) = p.local_network_gateway2.as_ref().and_then(|l| st.local_gateways.get(&l.id)) {
                        for pfx in &site.properties.local_network_address_space.address_prefixes {
                            add(*pfx, &ips);
                        }
                    }
                }
                ConnectionType::Vnet2Vnet => {
                    let Some(other) = p.virtual_network_gateway2.as_ref() else {
                        continue;
                    };
                    let back = st.connections.values().any(|b| {
                        b.properties.virtual_network_gateway1.id == other.id
                            && b.properties.virtual_network_gateway2.as_ref().is_some_and(|g| g.id == gw.id)
                    });
                    let far = st.gateways.get(&other.id).and_then(gateway_vnet);
                    if let (true, Some(far)) = (back, far) {
                        for pfx in st.address_space(&far).unwrap_or(&[]) {
                            add(*pfx, &ips);
                        }
                        // GW1–GW2: the spokes that use the far hub's gateway are reached
                        // through it too.
                        for pfx in transit_spoke_spaces(st, &far) {
                            add(pfx, &ips);
                        }
                    }
                }
                ConnectionType::ExpressRoute | ConnectionType::VPNClient => {}
            }
            if p.enable_bgp || p.connection_type == ConnectionType::ExpressRoute {
                for pfx in &p.bgp_learned_prefixes {
                    add(*pfx, &ips);
                }
            }
        }
        // GWY3: what the instance's BGP sessions learned.
        for r in gw.properties.instance.iter().flat_map(|i| &i.learned_routes) {
            add(r.network, &ips);
        }
    }
    out
}

/// Builds the effective routes of one subnet.
pub fn subnet_routes(st: &State, vnet: &VirtualNetwork, subnet: &Subnet) -> Vec<EffectiveRoute> {
    let mut routes: Vec<EffectiveRoute> = Vec::new();
    let local = &vnet.properties.address_space.address_prefixes;
    for p in local {
        routes.push(EffectiveRoute::system(*p, NextHopType::VnetLocal, Target::Vnet(vnet.id.clone())));
    }
    let mut peered: Vec<IpNet> = Vec::new();
    for link in vnet.properties.virtual_network_peerings.iter().filter(|l| is_connected(l)) {
        let Some(remote) = remote_of(link) else {
            continue;
        };
        let global = st.location_of(remote).is_some_and(|l| !l.eq_ignore_ascii_case(&vnet.location));
        let hop = if global { NextHopType::VNetGlobalPeering } else { NextHopType::VNetPeering };
        for p in link.properties.remote_address_space.iter().flat_map(|a| a.address_prefixes.iter()) {
            routes.push(EffectiveRoute::system(*p, hop, Target::Vnet(remote.clone())));
            peered.push(*p);
        }
    }
    let table = subnet.properties.route_table.as_ref().and_then(|t| st.route_tables.get(&t.id));
    let has_v6 = local.iter().any(|p| matches!(p, IpNet::V6(_)));
    routes.push(EffectiveRoute::system(IpNet::V4(Default::default()), NextHopType::Internet, Target::Nothing));
    if has_v6 {
        routes.push(EffectiveRoute::system(IpNet::V6(Default::default()), NextHopType::Internet, Target::Nothing));
    }
    let udr_default =
        table.is_some_and(|t| t.properties.routes.iter().any(|r| r.properties.address_prefix.trim() == "0.0.0.0/0"));
    if !udr_default {
        for text in RESERVED_NONE {
            let Ok(r) = text.parse::<IpNet>() else {
                continue;
            };
            // RT2: a VNet (or peered) prefix equal to or wider than a reserved one replaces it.
            if local.iter().chain(peered.iter()).any(|p| p.contains(&r)) {
                continue;
            }
            routes.push(EffectiveRoute::system(r, NextHopType::None, Target::Nothing));
        }
    }
    let gw_vnet = gateway_vnet_for(st, vnet);
    let propagate = !table.is_some_and(|t| t.properties.disable_bgp_route_propagation);
    if let (Some(g), true) = (&gw_vnet, propagate) {
        for (p, ips) in gateway_prefixes(st, g) {
            routes.push(EffectiveRoute {
                prefix: p,
                source: RouteSource::VirtualNetworkGateway,
                next_hop: NextHopType::VirtualNetworkGateway,
                next_hop_ips: ips,
                name: None,
                route_table: None,
                active: true,
                target: Target::Gateway(g.clone()),
            });
        }
    }
    if let Some(t) = table {
        for r in &t.properties.routes {
            let Ok(p) = r.properties.address_prefix.trim().parse::<IpNet>() else {
                continue;
            };
            let (next_hop, ips, target, usable) = match r.properties.next_hop_type {
                RouteNextHopType::VnetLocal => {
                    (NextHopType::VnetLocal, Vec::new(), Target::Vnet(vnet.id.clone()), true)
                }
                RouteNextHopType::Internet => (NextHopType::Internet, Vec::new(), Target::Nothing, true),
                RouteNextHopType::None => (NextHopType::None, Vec::new(), Target::Nothing, true),
                RouteNextHopType::VirtualAppliance => {
                    let ip: Vec<IpAddr> = r
                        .properties
                        .next_hop_ip_address
                        .as_deref()
                        .and_then(|s| s.trim().parse().ok())
                        .into_iter()
                        .collect();
                    (NextHopType::VirtualAppliance, ip, Target::Nothing, true)
                }
                RouteNextHopType::VirtualNetworkGateway => {
                    // U3: only towards a VPN gateway, and not where VPN and ExpressRoute coexist.
                    let usable = gw_vnet.as_ref().is_some_and(|g| {
                        st.has_gateway(g, Some(GatewayType::Vpn)) && !st.has_gateway(g, Some(GatewayType::ExpressRoute))
                    });
                    let ips = gw_vnet
                        .as_ref()
                        .map(|g| {
                            st.gateways_in(g)
                                .flat_map(|gw| gw.properties.ip_configurations.iter())
                                .filter_map(|c| ip_of(&c.properties.private_ip_address))
                                .collect()
                        })
                        .unwrap_or_default();
                    let target = gw_vnet.clone().map_or(Target::Nothing, Target::Gateway);
                    (NextHopType::VirtualNetworkGateway, ips, target, usable)
                }
            };
            routes.push(EffectiveRoute {
                prefix: p,
                source: RouteSource::User,
                next_hop,
                next_hop_ips: ips,
                name: Some(r.name.clone()),
                route_table: Some(t.id.clone()),
                active: usable,
                target,
            });
        }
    }
    select(&mut routes);
    routes
}

/// SEL4: on each prefix only the highest-precedence routes stay Active.
pub fn select(routes: &mut [EffectiveRoute]) {
    let mut best: std::collections::HashMap<IpNet, u8> = std::collections::HashMap::new();
    for r in routes.iter().filter(|r| r.active) {
        let e = best.entry(r.prefix).or_insert(0);
        *e = (*e).max(r.rank());
    }
    for r in routes.iter_mut() {
        if r.active && best.get(&r.prefix).is_some_and(|b| r.rank() < *b) {
            r.active = false;
        }
    }
}

/// Whether `addr` is inside any of the prefixes.
pub fn covers(prefixes: &[IpNet], addr: IpAddr) -> bool {
    prefix::contains_addr(prefixes, addr)
}
