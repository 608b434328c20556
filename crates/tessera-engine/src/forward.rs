//! Forwarding: what happens to a packet at one port, decided on the compiled programs. The
//! switch calls [`step`] on the first packet of a flow and [`admit_inbound`] on a packet that
//! arrives from another host; the diagnostics (connectivity check, reachability matrix) chain
//! steps through [`crate::diag::trace`]. One code path, so what Tessera says about a packet is
//! what it does to it.
//!
//! A step is a pure function of the engine (programs and the address index), the packet's
//! headers and its direction. A refusal is a [`Cause`], a small `Copy` value the data plane
//! counts as it is; the connectivity check's issue (with its key/value context) is only built
//! when a walk records hops.

use std::net::IpAddr;
use std::sync::Arc;

use tessera_model::ResourceId;
use tessera_model::gateway::GatewayType;
use tessera_model::lb::{LbProtocol, LbSkuName};
use tessera_model::security::{Access, Direction};

use crate::Engine;
use crate::compile::routes::{EffectiveRoute, NextHopType, RouteSource, Target};
use crate::compile::security::{CompiledNsg, Protocol};
use crate::compile::{Endpoint, NicProgram, endpoint};
use crate::lifecycle::is_connected;
use crate::state::{State, ip_of};

/// A flow's headers.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// Protocol.
    pub proto: Protocol,
    /// Source address (a NIC address of the source).
    pub src: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port.
    pub dport: u16,
    /// Return traffic of a connection NSGs already allowed: NSGs do not apply again (N4).
    pub established: bool,
}

impl Flow {
    /// A new flow (not the return traffic of an established one).
    pub fn new(proto: Protocol, src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Flow { proto, src, sport, dst, dport, established: false }
    }
}

/// Why a packet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// An NSG rule of the sending port (NIC, then subnet) denies it (N2, N3).
    NsgDeniedOutbound,
    /// An NSG rule of the receiving port (subnet, then NIC) denies it (N2, N3).
    NsgDeniedInbound,
    /// No route covers the destination.
    NoRoute,
    /// The route's next hop is None (a user route, or a reserved range).
    NextHopNone,
    /// The receiving VNet has no link back to the sender (P1: both links are needed).
    NoPeeringBack,
    /// The link back is not Connected.
    PeeringNotConnected,
    /// Subnet peering: the source is outside the peered subnets (SP5).
    SubnetNotPeered,
    /// The source is outside the peer's space and the receiving link refuses forwarded traffic.
    ForwardedTrafficNotAllowed,
    /// Nothing holds the destination address in the VNet the route leads to.
    NoResourceAtAddress,
    /// A VirtualAppliance route whose appliance address is not directly reachable (U4), or
    /// that no NIC holds.
    ApplianceUnreachable,
    /// The appliance's NIC does not forward (ipForwarding off).
    IpForwardingDisabled,
    /// The gateway has no route to the destination.
    GatewayHasNoRoute,
    /// A Basic internal load balancer's frontend reached over global peering (LB1).
    BasicLoadBalancerOverGlobalPeering,
    /// No load-balancing rule of the frontend takes the protocol and port.
    NoLoadBalancingRule,
    /// The pool has no backend.
    NoHealthyBackend,
    /// The routes send the packet around more appliances than a walk allows.
    RoutingLoop,
    /// A private or reserved address routed to the internet.
    DestinationNotRoutableOnInternet,
}

impl Cause {
    /// Every cause.
    pub const ALL: &'static [Cause] = &[
        Cause::NsgDeniedOutbound,
        Cause::NsgDeniedInbound,
        Cause::NoRoute,
        Cause::NextHopNone,
        Cause::NoPeeringBack,
        Cause::PeeringNotConnected,
        Cause::SubnetNotPeered,
        Cause::ForwardedTrafficNotAllowed,
        Cause::NoResourceAtAddress,
        Cause::ApplianceUnreachable,
        Cause::IpForwardingDisabled,
        Cause::GatewayHasNoRoute,
        Cause::BasicLoadBalancerOverGlobalPeering,
        Cause::NoLoadBalancingRule,
        Cause::NoHealthyBackend,
        Cause::RoutingLoop,
        Cause::DestinationNotRoutableOnInternet,
    ];

    /// The `Reason` a connectivity check names (for the causes that are not a rule or a route).
    pub fn reason(self) -> &'static str {
        match self {
            Cause::NsgDeniedOutbound | Cause::NsgDeniedInbound => "NetworkSecurityRule",
            Cause::NoRoute => "NoRoute",
            Cause::NextHopNone => "NextHopType None drops the traffic",
            Cause::NoPeeringBack => "NoPeeringBack",
            Cause::PeeringNotConnected => "PeeringNotConnected",
            Cause::SubnetNotPeered => "SourceSubnetNotPeered",
            Cause::ForwardedTrafficNotAllowed => "ForwardedTrafficNotAllowed",
            Cause::NoResourceAtAddress => "NoResourceAtAddress",
            Cause::ApplianceUnreachable => "ApplianceUnreachable",
            Cause::IpForwardingDisabled => "IpForwardingDisabled",
            Cause::GatewayHasNoRoute => "GatewayHasNoRouteToDestination",
            Cause::BasicLoadBalancerOverGlobalPeering => "BasicLoadBalancerFrontendNotReachableOverGlobalPeering",
            Cause::NoLoadBalancingRule => "NoLoadBalancingRuleForPort",
            Cause::NoHealthyBackend => "NoHealthyBackend",
            Cause::RoutingLoop => "RoutingLoop",
            Cause::DestinationNotRoutableOnInternet => "DestinationNotRoutableOnInternet",
        }
    }
}

/// Where a packet leaves the virtual networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// To the internet.
    Internet,
    /// Through a virtual network gateway (on-premises, or a VNet-to-VNet connection).
    Gateway,
}

/// What one step decides for a packet leaving a port.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The packet reaches its destination NIC; `translated` is the backend address and port
    /// when a load balancer frontend chose that NIC.
    Deliver {
        /// The destination port.
        nic: Arc<NicProgram>,
        /// Load balancer translation (new destination address and port).
        translated: Option<(IpAddr, u16)>,
    },
    /// An appliance takes the packet to forward it; the next step starts from its port.
    Appliance(Arc<NicProgram>),
    /// The packet leaves the virtual networks.
    Exit(Exit),
    /// The instance of the gateway the route leads to takes the packet into its tunnels
    /// (on-premises); its port is a switch port like a NIC's.
    Gateway(Arc<NicProgram>),
    /// Refused.
    Drop(Cause),
}

/// The kind of a hop, in connectivity-check spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopType {
    /// The source VM.
    Source,
    /// An appliance that forwards.
    VirtualAppliance,
    /// A virtual network gateway.
    VirtualNetworkGateway,
    /// An internal load balancer frontend.
    LoadBalancer,
    /// Leaves for the internet.
    Internet,
    /// The destination.
    Destination,
}

impl HopType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HopType::Source => "Source",
            HopType::VirtualAppliance => "VirtualAppliance",
            HopType::VirtualNetworkGateway => "VirtualNetworkGateway",
            HopType::LoadBalancer => "LoadBalancer",
            HopType::Internet => "Internet",
            HopType::Destination => "Destination",
        }
    }
}

/// Where an issue was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// On the hop itself.
    Local,
    /// On traffic entering the hop.
    Inbound,
    /// On traffic leaving the hop.
    Outbound,
}

/// Issue types of connectivity checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// An NSG rule denied the flow.
    NetworkSecurityRule,
    /// A user-defined route dropped or misdirected the flow.
    UserDefinedRoute,
    /// The platform refused it (peering settings, load balancer SKU, no such host, …).
    Platform,
}

/// One issue on a hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// The refusal.
    pub cause: Cause,
    /// Where.
    pub origin: Origin,
    /// What kind.
    pub kind: IssueType,
    /// Key/value context, e.g. `("RuleName", "securityRules/deny-ssh")`.
    pub context: Vec<(String, String)>,
}

/// One hop of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Kind.
    pub kind: HopType,
    /// The resource (NIC, gateway, load balancer), if any.
    pub resource: Option<ResourceId>,
    /// The hop's address.
    pub address: Option<IpAddr>,
    /// Problems found here.
    pub issues: Vec<Issue>,
}

impl Hop {
    pub(crate) fn new(kind: HopType, resource: Option<ResourceId>, address: Option<IpAddr>) -> Self {
        Hop { kind, resource, address, issues: Vec::new() }
    }
}

/// The most hops a walk takes before it reports a routing loop.
pub const MAX_HOPS: usize = 8;

/// One forwarding step of `flow` leaving the port `from`: its outbound NSGs, its route, a
/// peering crossing, and the inbound checks of the port that takes the packet.
pub fn step(engine: &Engine, from: &Arc<NicProgram>, flow: Flow) -> Verdict {
    Walk::new(engine, from, flow, false).step(from)
}

/// The inbound check of a packet arriving at `to` from another host: the port's NSGs, subnet
/// then NIC (N3), unless it returns on a connection the port opened (N4).
pub fn admit_inbound(to: &NicProgram, flow: Flow) -> Result<(), Cause> {
    if flow.established {
        return Ok(());
    }
    match deny_of([&to.subnet.nsg, &to.nsg], Direction::Inbound, &flow, flow.dst, flow.dport) {
        Some(_) => Err(Cause::NsgDeniedInbound),
        None => Ok(()),
    }
}

/// The first NSG of `layers` that denies the flow, with the rule's name.
fn deny_of<'n>(
    layers: [&'n Option<Arc<CompiledNsg>>; 2],
    direction: Direction,
    f: &Flow,
    dst: IpAddr,
    dport: u16,
) -> Option<(&'n CompiledNsg, String)> {
    for nsg in layers.into_iter().flatten() {
        if let Some(r) = nsg.evaluate(direction, f.proto, f.src, f.sport, dst, dport)
            && r.access == Access::Deny
        {
            return Some((nsg, r.name.clone()));
        }
    }
    None
}

/// A walk through the programs, recording hops (and issues) when a diagnostic asks for them.
pub(crate) struct Walk<'a> {
    st: &'a State,
    engine: &'a Engine,
    flow: Flow,
    /// Region of the port the packet last left (LB1 compares it with the frontend's).
    source_location: String,
    record: bool,
    pub(crate) hops: Vec<Hop>,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(engine: &'a Engine, from: &NicProgram, flow: Flow, record: bool) -> Self {
        let mut hops = Vec::new();
        if record {
            hops.push(Hop::new(HopType::Source, Some(from.nic.clone()), Some(flow.src)));
        }
        Walk { st: engine.state(), engine, flow, source_location: from.subnet.location.clone(), record, hops }
    }

    fn hop(&mut self, kind: HopType, resource: Option<ResourceId>, address: Option<IpAddr>) {
        if self.record {
            self.hops.push(Hop::new(kind, resource, address));
        }
    }

    /// Refuses the packet; the issue (built only when recording) goes on the last hop.
    fn refuse(
        &mut self,
        cause: Cause,
        issue: impl FnOnce() -> (Origin, IssueType, Vec<(&'static str, String)>),
    ) -> Cause {
        if self.record {
            let (origin, kind, context) = issue();
            let context = context.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if let Some(h) = self.hops.last_mut() {
                h.issues.push(Issue { cause, origin, kind, context });
            }
        }
        cause
    }

    fn platform(&mut self, cause: Cause, origin: Origin, extra: impl FnOnce() -> Vec<(&'static str, String)>) -> Cause {
        self.refuse(cause, || {
            let mut ctx = vec![("Reason", cause.reason().to_string())];
            ctx.extend(extra());
            (origin, IssueType::Platform, ctx)
        })
    }

    /// NSGs of a port in the order of the direction; the first deny refuses.
    fn nsgs(&mut self, p: &NicProgram, direction: Direction, dst: IpAddr, dport: u16) -> Result<(), Cause> {
        if self.flow.established {
            return Ok(());
        }
        let layers = match direction {
            Direction::Outbound => [&p.nsg, &p.subnet.nsg],
            Direction::Inbound => [&p.subnet.nsg, &p.nsg],
        };
        let Some((nsg, rule)) = deny_of(layers, direction, &self.flow, dst, dport) else { return Ok(()) };
        let (cause, origin) = match direction {
            Direction::Outbound => (Cause::NsgDeniedOutbound, Origin::Outbound),
            Direction::Inbound => (Cause::NsgDeniedInbound, Origin::Inbound),
        };
        let nsg_id = nsg.id.to_string();
        Err(self.refuse(cause, || {
            (origin, IssueType::NetworkSecurityRule, vec![("RuleName", rule), ("NetworkSecurityGroup", nsg_id)])
        }))
    }

    /// Chains steps from `cur` until the packet is delivered, leaves or is refused.
    pub(crate) fn run(&mut self, mut cur: Arc<NicProgram>) -> Result<(), Cause> {
        for _ in 0..MAX_HOPS {
            match self.step(&cur) {
                Verdict::Appliance(next) => cur = next,
                Verdict::Deliver { .. } | Verdict::Exit(_) | Verdict::Gateway(_) => return Ok(()),
                Verdict::Drop(c) => return Err(c),
            }
        }
        Err(self.refuse(Cause::RoutingLoop, || {
            (Origin::Local, IssueType::UserDefinedRoute, vec![("Reason", Cause::RoutingLoop.reason().to_string())])
        }))
    }

    /// One forwarding step of the packet leaving `cur`.
    pub(crate) fn step(&mut self, cur: &Arc<NicProgram>) -> Verdict {
        match self.step_inner(cur) {
            Ok(v) => v,
            Err(c) => Verdict::Drop(c),
        }
    }

    fn step_inner(&mut self, cur: &Arc<NicProgram>) -> Result<Verdict, Cause> {
        let dst = self.flow.dst;
        self.source_location.clone_from(&cur.subnet.location);
        self.nsgs(cur, Direction::Outbound, dst, self.flow.dport)?;
        let Some(route) = cur.subnet.routes.lookup(dst) else {
            return Err(self.platform(Cause::NoRoute, Origin::Outbound, Vec::new));
        };
        match route.next_hop {
            NextHopType::None => {
                let kind =
                    if route.source == RouteSource::User { IssueType::UserDefinedRoute } else { IssueType::Platform };
                Err(self.refuse(Cause::NextHopNone, || route_issue(kind, route, Cause::NextHopNone.reason())))
            }
            NextHopType::Internet => {
                self.hop(HopType::Internet, None, Some(dst));
                // Private and reserved addresses are not routed on the internet.
                if !crate::compile::security::is_internet(dst) {
                    return Err(self.platform(Cause::DestinationNotRoutableOnInternet, Origin::Local, Vec::new));
                }
                Ok(Verdict::Exit(Exit::Internet))
            }
            NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering => {
                let Target::Vnet(t) = &route.target else {
                    return Err(self.platform(Cause::NoRoute, Origin::Outbound, Vec::new));
                };
                self.deliver(&cur.subnet.vnet, t, cur.gateway.is_some())
            }
            NextHopType::VirtualAppliance => self.appliance(cur, route).map(Verdict::Appliance),
            NextHopType::VirtualNetworkGateway => self.gateway(cur, route),
        }
    }

    /// Hands the packet to the appliance of a VirtualAppliance route (U4); returns its program.
    fn appliance(&mut self, cur: &Arc<NicProgram>, route: &EffectiveRoute) -> Result<Arc<NicProgram>, Cause> {
        let unreachable = |w: &mut Self, why: &'static str| {
            w.refuse(Cause::ApplianceUnreachable, || route_issue(IssueType::UserDefinedRoute, route, why))
        };
        let Some(nva_ip) = route.next_hop_ips.first().copied() else {
            return Err(unreachable(self, "VirtualAppliance route without next hop address"));
        };
        // The appliance must be directly reachable (U4): inside the VNet, or in a VNet peered
        // with it, whatever the UDRs say about that address.
        let Some(target) = direct_vnet(self.st, &cur.subnet.vnet, nva_ip) else {
            return Err(unreachable(self, "next hop appliance address is not directly reachable"));
        };
        let program = match endpoint(self.st, &target, nva_ip) {
            Some(Endpoint::Nic(n)) => self.engine.program(&n),
            Some(Endpoint::LoadBalancerFrontend(frontend)) => {
                // U4: an internal load balancer's frontend in front of appliances (HA ports).
                let from_vnet = cur.subnet.vnet.clone();
                if target != from_vnet {
                    self.cross(&from_vnet, &target, false)?;
                }
                return self.appliance_behind(&target, &frontend, nva_ip);
            }
            _ => None,
        };
        let Some(program) = program else {
            return Err(unreachable(self, "no network interface holds the next hop appliance address"));
        };
        let from_vnet = cur.subnet.vnet.clone();
        if target != from_vnet {
            self.cross(&from_vnet, &target, false)?;
        }
        self.hop(HopType::VirtualAppliance, Some(program.nic.clone()), Some(nva_ip));
        self.nsgs(&program, Direction::Inbound, self.flow.dst, self.flow.dport)?;
        if !program.ip_forwarding {
            let nic = program.nic.to_string();
            return Err(self.platform(Cause::IpForwardingDisabled, Origin::Local, || vec![("NetworkInterface", nic)]));
        }
        Ok(program)
    }

    /// The appliance an internal load balancer's frontend hands a routed packet to (U4): the
    /// first backend of a rule that takes the packet (HA ports take every one) whose NSGs admit
    /// it and that forwards. The packet keeps its destination: it is routed, not addressed to
    /// the frontend.
    fn appliance_behind(
        &mut self,
        vnet: &ResourceId,
        frontend: &ResourceId,
        at: IpAddr,
    ) -> Result<Arc<NicProgram>, Cause> {
        let f = self.flow;
        let (p, _, _) = self.balance(vnet, frontend, at, HopType::VirtualAppliance, |w, p, _, _| {
            w.nsgs(p, Direction::Inbound, f.dst, f.dport)?;
            if p.ip_forwarding {
                return Ok(());
            }
            let n = p.nic.to_string();
            Err(w.platform(Cause::IpForwardingDisabled, Origin::Local, || vec![("NetworkInterface", n)]))
        })?;
        Ok(p)
    }

    /// A VirtualNetworkGateway route: to on-premises or VNet-to-VNet, or relayed into a peered
    /// VNet (GWY6; no forwarded-traffic check for a gateway, G7).
    fn gateway(&mut self, cur: &Arc<NicProgram>, route: &EffectiveRoute) -> Result<Verdict, Cause> {
        let Target::Gateway(gw_vnet) = &route.target else {
            return Err(self.platform(Cause::GatewayHasNoRoute, Origin::Outbound, Vec::new));
        };
        if *gw_vnet != cur.subnet.vnet {
            self.cross(&cur.subnet.vnet, gw_vnet, true)?;
        }
        if self.record {
            let gw = self.st.gateways_in(gw_vnet).next().map(|g| g.id.clone());
            self.hop(HopType::VirtualNetworkGateway, gw, route.next_hop_ips.first().copied());
        }
        let dst = self.flow.dst;
        // Relay: look the destination up in the GatewaySubnet's routes.
        let gw_subnet = gw_vnet.child("subnets", crate::ops::GATEWAY_SUBNET);
        let relay = self.engine.compiled().subnets.get(&gw_subnet).and_then(|s| s.routes.lookup(dst));
        match relay.map(|r| (r.next_hop, &r.target)) {
            Some((
                NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering,
                Target::Vnet(t),
            )) => {
                let t = t.clone();
                self.deliver(gw_vnet, &t, true)
            }
            Some((NextHopType::VirtualNetworkGateway, _)) => {
                // Leaves through the tunnel: to a VNet behind a VNet-to-VNet connection, or on-premises.
                let far = self.st.vnets.keys().find(|v| {
                    *v != gw_vnet
                        && self.st.address_space(v).is_some_and(|s| s.iter().any(|p| p.contains(&dst)))
                        && self.st.has_gateway(v, None)
                });
                let instance = self.vpn_instance(gw_vnet);
                match far.cloned() {
                    // The walk goes on in the far VNet (its NSGs decide); the packet itself goes
                    // to this gateway's instance when both ends run one: a real tunnel (GWY4).
                    Some(v) => {
                        let logical = self.deliver(&v, &v, true)?;
                        match (instance, self.vpn_instance(&v)) {
                            (Some(instance), Some(_)) => Ok(Verdict::Gateway(instance)),
                            _ => Ok(logical),
                        }
                    }
                    None => {
                        self.hop(HopType::Destination, None, Some(dst));
                        Ok(instance.map_or(Verdict::Exit(Exit::Gateway), Verdict::Gateway))
                    }
                }
            }
            _ => Err(self.platform(Cause::GatewayHasNoRoute, Origin::Local, Vec::new)),
        }
    }

    /// The port program of the instance of VNet `vnet`'s VPN gateway, when one runs.
    fn vpn_instance(&self, vnet: &ResourceId) -> Option<Arc<NicProgram>> {
        let vpn = self.st.gateways_in(vnet).find(|g| g.properties.gateway_type == GatewayType::Vpn)?;
        self.engine.program(&crate::compile::instance_id(vpn)?)
    }

    /// Conditions for entering `to` from `from` over their peering: the link back is Connected,
    /// subnet peering admits the source (SP5), and traffic not from the peer's space needs
    /// allowForwardedTraffic on the receiving link unless a gateway forwarded it (G7).
    fn cross(&mut self, from: &ResourceId, to: &ResourceId, via_gateway: bool) -> Result<(), Cause> {
        if self.st.classic_vnets.contains_key(to) {
            return Ok(());
        }
        let Some(back) = self.st.link_to(to, from) else {
            return Err(self.peering(Cause::NoPeeringBack, to, from, None));
        };
        if !is_connected(back) {
            return Err(self.peering(Cause::PeeringNotConnected, to, from, Some(&back.name)));
        }
        let synced: &[tessera_model::IpNet] =
            back.properties.remote_address_space.as_ref().map_or(&[], |a| a.address_prefixes.as_slice());
        let from_peer_space = synced.iter().any(|p| p.contains(&self.flow.src));
        if !from_peer_space && !back.properties.peer_complete_vnets {
            return Err(self.peering(Cause::SubnetNotPeered, to, from, Some(&back.name)));
        }
        if !from_peer_space && !via_gateway && !back.properties.allow_forwarded_traffic {
            return Err(self.peering(Cause::ForwardedTrafficNotAllowed, to, from, Some(&back.name)));
        }
        Ok(())
    }

    fn peering(&mut self, cause: Cause, on: &ResourceId, towards: &ResourceId, link: Option<&str>) -> Cause {
        self.platform(cause, Origin::Inbound, || {
            let mut ctx = vec![("VirtualNetwork", on.to_string()), ("RemoteVirtualNetwork", towards.to_string())];
            if let Some(l) = link {
                ctx.push(("Peering", on.child("virtualNetworkPeerings", l).to_string()));
            }
            ctx
        })
    }

    /// Delivers into VNet `to` (from `from`), to whatever holds the destination address.
    fn deliver(&mut self, from: &ResourceId, to: &ResourceId, via_gateway: bool) -> Result<Verdict, Cause> {
        if to != from {
            self.cross(from, to, via_gateway)?;
        }
        let dst = self.flow.dst;
        match endpoint(self.st, to, dst) {
            Some(Endpoint::Nic(nic)) => {
                let Some(p) = self.engine.program(&nic) else {
                    return Err(self.platform(Cause::NoResourceAtAddress, Origin::Local, Vec::new));
                };
                self.hop(HopType::Destination, Some(nic), Some(dst));
                self.nsgs(&p, Direction::Inbound, dst, self.flow.dport)?;
                Ok(Verdict::Deliver { nic: p, translated: None })
            }
            Some(Endpoint::LoadBalancerFrontend(frontend)) => self.load_balancer(to, &frontend),
            Some(Endpoint::Gateway(gw)) => {
                let instance = self.st.gateways.get(&gw).and_then(crate::compile::instance_id);
                self.hop(HopType::VirtualNetworkGateway, Some(gw), Some(dst));
                // The gateway's own address: its instance, when it has one, takes the packet.
                match instance.and_then(|i| self.engine.program(&i)) {
                    Some(p) if p.addresses.contains(&dst) => {
                        self.nsgs(&p, Direction::Inbound, dst, self.flow.dport)?;
                        Ok(Verdict::Deliver { nic: p, translated: None })
                    }
                    _ => Ok(Verdict::Exit(Exit::Gateway)),
                }
            }
            None => {
                self.hop(HopType::Destination, None, Some(dst));
                Err(self
                    .platform(Cause::NoResourceAtAddress, Origin::Local, || vec![("VirtualNetwork", to.to_string())]))
            }
        }
    }

    /// An ILB frontend: the backend that takes the flow, with the address and port it is
    /// translated to.
    fn load_balancer(&mut self, vnet: &ResourceId, frontend: &ResourceId) -> Result<Verdict, Cause> {
        let dst = self.flow.dst;
        let (nic, ip, port) = self.balance(vnet, frontend, dst, HopType::Destination, |w, p, ip, port| {
            w.nsgs(p, Direction::Inbound, ip, port)
        })?;
        Ok(Verdict::Deliver { nic, translated: Some((ip, port)) })
    }

    /// An ILB frontend at `at` takes the flow: LB1 (Basic not over global peering), then the
    /// rule for its protocol and port, then the first backend that `admits` (given the
    /// backend's program, address and port), each backend a hop of `kind`. When none does, the
    /// refusal is the last backend's, its issue on the load balancer's hop.
    fn balance(
        &mut self,
        vnet: &ResourceId,
        frontend: &ResourceId,
        at: IpAddr,
        kind: HopType,
        mut admits: impl FnMut(&mut Self, &NicProgram, IpAddr, u16) -> Result<(), Cause>,
    ) -> Result<(Arc<NicProgram>, IpAddr, u16), Cause> {
        let Some(lb_id) = frontend.parent() else {
            return Err(self.platform(Cause::NoHealthyBackend, Origin::Inbound, Vec::new));
        };
        let Some(lb) = self.st.load_balancers.get(&lb_id) else {
            return Err(self.platform(Cause::NoHealthyBackend, Origin::Inbound, Vec::new));
        };
        self.hop(HopType::LoadBalancer, Some(lb_id.clone()), Some(at));
        let lb_location = self.st.location_of(vnet).unwrap_or_default();
        if lb.sku.name == LbSkuName::Basic && !lb_location.eq_ignore_ascii_case(&self.source_location) {
            return Err(self.platform(Cause::BasicLoadBalancerOverGlobalPeering, Origin::Inbound, || {
                vec![("LoadBalancer", lb_id.to_string())]
            }));
        }
        let f = self.flow;
        let rule = lb.resource.properties.load_balancing_rules.iter().find(|r| {
            let p = &r.properties;
            p.frontend_ip_configuration.id.name().eq_ignore_ascii_case(frontend.name())
                && match p.protocol {
                    LbProtocol::All => true,
                    LbProtocol::Tcp => f.proto == Protocol::Tcp,
                    LbProtocol::Udp => f.proto == Protocol::Udp,
                }
                && (p.frontend_port == f.dport || (p.protocol == LbProtocol::All && p.frontend_port == 0))
        });
        let Some(rule) = rule else {
            return Err(
                self.platform(Cause::NoLoadBalancingRule, Origin::Inbound, || vec![("Port", f.dport.to_string())])
            );
        };
        let pool = rule.properties.backend_address_pool.id.clone();
        let port = if rule.properties.frontend_port == 0 { f.dport } else { rule.properties.backend_port };
        let mut refused: Option<(Cause, Option<Issue>)> = None;
        for (nic, ip) in backends_of(self.st, &pool) {
            let Some(p) = self.engine.program(&nic) else { continue };
            let mark = self.hops.len();
            self.hop(kind, Some(nic), Some(ip));
            match admits(self, &p, ip, port) {
                Ok(()) => return Ok((p, ip, port)),
                Err(cause) => {
                    let issue = self.hops.pop().and_then(|h| h.issues.into_iter().next());
                    self.hops.truncate(mark);
                    refused = Some((cause, issue));
                }
            }
        }
        match refused {
            Some((cause, issue)) => {
                if let (Some(i), Some(h)) = (issue, self.hops.last_mut()) {
                    h.issues.push(i);
                }
                Err(cause)
            }
            None => Err(self.platform(Cause::NoHealthyBackend, Origin::Inbound, Vec::new)),
        }
    }
}

/// The VNet that directly holds `ip` as seen from `vnet`: itself, or a Connected peer whose
/// synced space contains it.
fn direct_vnet(st: &State, vnet: &ResourceId, ip: IpAddr) -> Option<ResourceId> {
    let v = st.vnets.get(vnet)?;
    if v.properties.address_space.address_prefixes.iter().any(|p| p.contains(&ip)) {
        return Some(vnet.clone());
    }
    v.properties.virtual_network_peerings.iter().filter(|l| is_connected(l)).find_map(|l| {
        let space = l.properties.remote_address_space.as_ref()?;
        space.address_prefixes.iter().any(|p| p.contains(&ip)).then(|| crate::state::remote_of(l).cloned()).flatten()
    })
}

/// The NICs (with their addresses) in a backend pool.
pub fn backends_of(st: &State, pool: &ResourceId) -> Vec<(ResourceId, IpAddr)> {
    let mut out = Vec::new();
    for nic in st.nics.values() {
        for c in &nic.properties.ip_configurations {
            if c.properties.load_balancer_backend_address_pools.iter().any(|p| p.id == *pool)
                && let Some(ip) = ip_of(&c.properties.private_ip_address)
            {
                out.push((nic.id.clone(), ip));
            }
        }
    }
    out
}

fn route_issue(kind: IssueType, route: &EffectiveRoute, why: &str) -> (Origin, IssueType, Vec<(&'static str, String)>) {
    let source = match route.source {
        RouteSource::User => "User",
        RouteSource::Default => "System",
        RouteSource::VirtualNetworkGateway => "VirtualNetworkGateway",
    };
    let mut ctx = vec![
        ("RouteType", source.to_string()),
        ("AddressPrefix", route.prefix.to_string()),
        ("Reason", why.to_string()),
    ];
    if let Some(n) = &route.name {
        ctx.push(("RouteName", n.clone()));
    }
    (Origin::Outbound, kind, ctx)
}
