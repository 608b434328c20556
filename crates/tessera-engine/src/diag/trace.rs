//! The logical walk of one flow through the compiled programs: NSGs out, route lookup, peering
//! crossings (forwarded traffic, subnet peering), appliances (service chaining), gateways, load
//! balancer frontends (LB1), NSGs in. Connectivity checks and the reachability matrix read it.

use std::net::IpAddr;
use std::sync::Arc;

use tessera_model::ResourceId;
use tessera_model::lb::{LbProtocol, LbSkuName};
use tessera_model::security::{Access, Direction};

use crate::Engine;
use crate::compile::routes::{EffectiveRoute, NextHopType, RouteSource, Target};
use crate::compile::security::{CompiledNsg, Protocol};
use crate::compile::{Endpoint, NicProgram, endpoint};
use crate::lifecycle::is_connected;
use crate::state::{State, ip_of};

/// The most hops a walk takes before it reports a routing loop.
const MAX_HOPS: usize = 8;

/// A flow to trace.
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
    fn new(kind: HopType, resource: Option<ResourceId>, address: Option<IpAddr>) -> Self {
        Hop { kind, resource, address, issues: Vec::new() }
    }
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Hops in order; the last one carries the blocking issue when unreachable.
    pub hops: Vec<Hop>,
    /// Whether the flow arrives.
    pub reachable: bool,
}

impl Trace {
    /// A one-line explanation of why the flow stops (None when reachable).
    pub fn reason(&self) -> Option<String> {
        if self.reachable {
            return None;
        }
        let issue = self.hops.iter().rev().find_map(|h| h.issues.first())?;
        let short = |v: &str| {
            if v.starts_with("/subscriptions/") { v.rsplit('/').next().unwrap_or(v).to_string() } else { v.to_string() }
        };
        let parts: Vec<String> = issue.context.iter().map(|(k, v)| format!("{k}={}", short(v))).collect();
        Some(format!("{:?}: {}", issue.kind, parts.join(", ")))
    }
}

/// What one forwarding step decides for a packet leaving a port.
#[derive(Debug, Clone)]
pub enum StepOutcome {
    /// The packet reaches its destination NIC; `translated` is the backend address and port
    /// when a load balancer frontend chose that NIC.
    Delivered {
        /// The destination port.
        nic: Arc<NicProgram>,
        /// Load balancer translation (new destination address and port).
        translated: Option<(IpAddr, u16)>,
    },
    /// An appliance takes the packet to forward it; the next step starts from its port.
    Appliance(Arc<NicProgram>),
    /// The packet leaves the virtual networks: through a gateway, or to the internet.
    Left,
    /// Dropped; the issue says why.
    Dropped,
}

/// One forwarding step of `flow` leaving the port `from`: its outbound NSGs, its route, a
/// peering crossing, and the inbound checks of the port that takes the packet. The data plane
/// calls this on the first packet of a flow; [`trace`] chains steps. Returns the issue when the
/// packet is dropped.
pub fn step(engine: &Engine, from: &Arc<NicProgram>, flow: Flow) -> (StepOutcome, Option<Issue>) {
    let mut w =
        Walk { st: engine.state(), engine, flow, source_location: from.subnet.location.clone(), hops: Vec::new() };
    w.hops.push(Hop::new(HopType::Source, None, Some(flow.src)));
    let outcome = w.step(from);
    let issue = w.hops.into_iter().rev().find_map(|h| h.issues.into_iter().next());
    (outcome, issue)
}

fn issue(origin: Origin, kind: IssueType, context: &[(&str, String)]) -> Issue {
    Issue { origin, kind, context: context.iter().map(|(k, v)| ((*k).to_string(), v.clone())).collect() }
}

struct Walk<'a> {
    st: &'a State,
    engine: &'a Engine,
    flow: Flow,
    /// Region of the source VM (LB1 compares it with the frontend's).
    source_location: String,
    hops: Vec<Hop>,
}

/// Traces a flow leaving `from` (a NIC program).
pub fn trace(engine: &Engine, from: &Arc<NicProgram>, flow: Flow) -> Trace {
    let mut w =
        Walk { st: engine.state(), engine, flow, source_location: from.subnet.location.clone(), hops: Vec::new() };
    w.hops.push(Hop::new(HopType::Source, Some(from.nic.clone()), Some(flow.src)));
    let reachable = w.run(from.clone());
    Trace { hops: w.hops, reachable }
}

impl Walk<'_> {
    fn fail(&mut self, i: Issue) -> bool {
        if let Some(h) = self.hops.last_mut() {
            h.issues.push(i);
        }
        false
    }

    /// Outbound NSGs of a NIC: NIC first, then subnet (N3).
    fn nsg_out(&mut self, p: &NicProgram) -> bool {
        let (dst, dport) = (self.flow.dst, self.flow.dport);
        self.nsg_layers([&p.nsg, &p.subnet.nsg], Direction::Outbound, dst, dport)
    }

    /// Inbound NSGs of a NIC: subnet first, then NIC (N3). `dst`/`dport` as the NIC sees them.
    fn nsg_in(&mut self, p: &NicProgram, dst: IpAddr, dport: u16) -> bool {
        self.nsg_layers([&p.subnet.nsg, &p.nsg], Direction::Inbound, dst, dport)
    }

    /// Every NSG present must allow the flow; the first deny stops it.
    fn nsg_layers(
        &mut self,
        layers: [&Option<Arc<CompiledNsg>>; 2],
        direction: Direction,
        dst: IpAddr,
        dport: u16,
    ) -> bool {
        let f = self.flow;
        if f.established {
            return true;
        }
        for nsg in layers.into_iter().flatten() {
            if let Some(r) = nsg.evaluate(direction, f.proto, f.src, f.sport, dst, dport)
                && r.access == Access::Deny
            {
                let origin = if direction == Direction::Inbound { Origin::Inbound } else { Origin::Outbound };
                let context = [("RuleName", r.name.clone()), ("NetworkSecurityGroup", nsg.id.to_string())];
                return self.fail(issue(origin, IssueType::NetworkSecurityRule, &context));
            }
        }
        true
    }

    fn run(&mut self, mut cur: Arc<NicProgram>) -> bool {
        for _ in 0..MAX_HOPS {
            match self.step(&cur) {
                StepOutcome::Appliance(next) => cur = next,
                StepOutcome::Delivered { .. } | StepOutcome::Left => return true,
                StepOutcome::Dropped => return false,
            }
        }
        self.fail(issue(Origin::Local, IssueType::UserDefinedRoute, &[("Reason", "RoutingLoop".into())]))
    }

    fn dropped(&mut self, i: Issue) -> StepOutcome {
        self.fail(i);
        StepOutcome::Dropped
    }

    /// One forwarding step of the packet leaving `cur`: its outbound NSGs, its route, and the
    /// port (or gateway, or the internet) that takes the packet next.
    fn step(&mut self, cur: &Arc<NicProgram>) -> StepOutcome {
        let dst = self.flow.dst;
        // LB1 compares the region the packet comes from with the load balancer's.
        self.source_location.clone_from(&cur.subnet.location);
        if !self.nsg_out(cur) {
            return StepOutcome::Dropped;
        }
        let Some(route) = cur.subnet.routes.lookup(dst).cloned() else {
            return self.dropped(issue(Origin::Outbound, IssueType::Platform, &[("Reason", "NoRoute".into())]));
        };
        match route.next_hop {
            NextHopType::None => {
                let kind =
                    if route.source == RouteSource::User { IssueType::UserDefinedRoute } else { IssueType::Platform };
                self.dropped(route_issue(kind, &route, "NextHopType None drops the traffic"))
            }
            NextHopType::Internet => {
                self.hops.push(Hop::new(HopType::Internet, None, Some(dst)));
                // Private and reserved addresses are not routed on the internet.
                if !crate::compile::security::is_internet(dst) {
                    let context = [("Reason", "DestinationNotRoutableOnInternet".into())];
                    return self.dropped(issue(Origin::Local, IssueType::Platform, &context));
                }
                StepOutcome::Left
            }
            NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering => {
                let Target::Vnet(t) = &route.target else { return StepOutcome::Dropped };
                self.deliver(&cur.subnet.vnet, t, false)
            }
            NextHopType::VirtualAppliance => match self.appliance(cur, &route) {
                Some(next) => StepOutcome::Appliance(next),
                None => StepOutcome::Dropped,
            },
            NextHopType::VirtualNetworkGateway => self.gateway(cur, &route),
        }
    }

    /// Hands the packet to the appliance of a VirtualAppliance route (U4); returns its program.
    fn appliance(&mut self, cur: &Arc<NicProgram>, route: &EffectiveRoute) -> Option<Arc<NicProgram>> {
        let Some(nva_ip) = route.next_hop_ips.first().copied() else {
            self.fail(route_issue(
                IssueType::UserDefinedRoute,
                route,
                "VirtualAppliance route without next hop address",
            ));
            return None;
        };
        // The appliance must be directly reachable (U4): inside the VNet, or in a VNet peered
        // with it, whatever the UDRs say about that address.
        let Some(target) = direct_vnet(self.st, &cur.subnet.vnet, nva_ip) else {
            self.fail(route_issue(
                IssueType::UserDefinedRoute,
                route,
                "next hop appliance address is not directly reachable",
            ));
            return None;
        };
        let nic = match endpoint(self.st, &target, nva_ip) {
            Some(Endpoint::Nic(n)) => n,
            _ => {
                self.fail(route_issue(
                    IssueType::UserDefinedRoute,
                    route,
                    "no network interface holds the next hop appliance address",
                ));
                return None;
            }
        };
        let from_vnet = cur.subnet.vnet.clone();
        if target != from_vnet && !self.cross(&from_vnet, &target, false) {
            return None;
        }
        let program = self.engine.program(&nic)?;
        self.hops.push(Hop::new(HopType::VirtualAppliance, Some(nic.clone()), Some(nva_ip)));
        if !self.nsg_in(&program, self.flow.dst, self.flow.dport) {
            return None;
        }
        if !program.ip_forwarding {
            self.fail(issue(
                Origin::Local,
                IssueType::Platform,
                &[("Reason", "IpForwardingDisabled".into()), ("NetworkInterface", nic.to_string())],
            ));
            return None;
        }
        Some(program)
    }

    /// A VirtualNetworkGateway route: to on-premises or VNet-to-VNet, or relayed into a peered
    /// VNet (GWY6; no forwarded-traffic check for a gateway, G7).
    fn gateway(&mut self, cur: &Arc<NicProgram>, route: &EffectiveRoute) -> StepOutcome {
        let Target::Gateway(gw_vnet) = &route.target else {
            return self.dropped(route_issue(IssueType::UserDefinedRoute, route, "no usable virtual network gateway"));
        };
        if *gw_vnet != cur.subnet.vnet && !self.cross(&cur.subnet.vnet, gw_vnet, true) {
            return StepOutcome::Dropped;
        }
        let gw = self.st.gateways_in(gw_vnet).next().map(|g| g.id.clone());
        self.hops.push(Hop::new(HopType::VirtualNetworkGateway, gw, route.next_hop_ips.first().copied()));
        let dst = self.flow.dst;
        // Relay: look the destination up in the GatewaySubnet's routes.
        let gw_subnet = gw_vnet.child("subnets", crate::ops::GATEWAY_SUBNET);
        let relay = self.engine.compiled().subnets.get(&gw_subnet).and_then(|s| s.routes.lookup(dst).cloned());
        match relay {
            Some(r)
                if matches!(
                    r.next_hop,
                    NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering
                ) =>
            {
                let Target::Vnet(t) = &r.target else { return StepOutcome::Dropped };
                self.deliver(gw_vnet, t, true)
            }
            Some(r) if r.next_hop == NextHopType::VirtualNetworkGateway => {
                // Leaves through the tunnel: to a VNet behind a VNet-to-VNet connection, or on-premises.
                let far = self.st.vnets.keys().find(|v| {
                    *v != gw_vnet
                        && self.st.address_space(v).is_some_and(|s| s.iter().any(|p| p.contains(&dst)))
                        && self.st.has_gateway(v, None)
                });
                match far.cloned() {
                    Some(v) => self.deliver(&v, &v, true),
                    None => {
                        self.hops.push(Hop::new(HopType::Destination, None, Some(dst)));
                        StepOutcome::Left
                    }
                }
            }
            _ => self.dropped(issue(
                Origin::Local,
                IssueType::Platform,
                &[("Reason", "GatewayHasNoRouteToDestination".into())],
            )),
        }
    }

    /// Conditions for entering `to` from `from` over their peering: the link back is Connected,
    /// subnet peering admits the source (SP5), and traffic not from the peer's space needs
    /// allowForwardedTraffic on the receiving link unless a gateway forwarded it (G7).
    fn cross(&mut self, from: &ResourceId, to: &ResourceId, via_gateway: bool) -> bool {
        if self.st.classic_vnets.contains_key(to) {
            return true;
        }
        let Some(back) = self.st.link_to(to, from) else {
            return self.fail(peering_issue("NoPeeringBack", to, from, None));
        };
        if !is_connected(back) {
            return self.fail(peering_issue("PeeringNotConnected", to, from, Some(&back.name)));
        }
        let synced: &[tessera_model::IpNet] =
            back.properties.remote_address_space.as_ref().map_or(&[], |a| a.address_prefixes.as_slice());
        let from_peer_space = synced.iter().any(|p| p.contains(&self.flow.src));
        if !from_peer_space && !back.properties.peer_complete_vnets {
            return self.fail(peering_issue("SourceSubnetNotPeered", to, from, Some(&back.name)));
        }
        if !from_peer_space && !via_gateway && !back.properties.allow_forwarded_traffic {
            return self.fail(peering_issue("ForwardedTrafficNotAllowed", to, from, Some(&back.name)));
        }
        true
    }

    /// Delivers into VNet `to` (from `from`), to whatever holds the destination address.
    fn deliver(&mut self, from: &ResourceId, to: &ResourceId, via_gateway: bool) -> StepOutcome {
        if to != from && !self.cross(from, to, via_gateway) {
            return StepOutcome::Dropped;
        }
        let dst = self.flow.dst;
        match endpoint(self.st, to, dst) {
            Some(Endpoint::Nic(nic)) => {
                let Some(p) = self.engine.program(&nic) else { return StepOutcome::Dropped };
                self.hops.push(Hop::new(HopType::Destination, Some(nic), Some(dst)));
                if self.nsg_in(&p, dst, self.flow.dport) {
                    StepOutcome::Delivered { nic: p, translated: None }
                } else {
                    StepOutcome::Dropped
                }
            }
            Some(Endpoint::LoadBalancerFrontend(frontend)) => self.load_balancer(to, &frontend),
            Some(Endpoint::Gateway(gw)) => {
                self.hops.push(Hop::new(HopType::VirtualNetworkGateway, Some(gw), Some(dst)));
                StepOutcome::Left
            }
            None => {
                self.hops.push(Hop::new(HopType::Destination, None, Some(dst)));
                self.dropped(issue(
                    Origin::Local,
                    IssueType::Platform,
                    &[("Reason", "NoResourceAtAddress".into()), ("VirtualNetwork", to.to_string())],
                ))
            }
        }
    }

    /// An ILB frontend: LB1 (Basic not over global peering), then a rule and a backend that
    /// admits the flow.
    fn load_balancer(&mut self, vnet: &ResourceId, frontend: &ResourceId) -> StepOutcome {
        let Some(lb_id) = frontend.parent() else { return StepOutcome::Dropped };
        let Some(lb) = self.st.load_balancers.get(&lb_id) else { return StepOutcome::Dropped };
        self.hops.push(Hop::new(HopType::LoadBalancer, Some(lb_id.clone()), Some(self.flow.dst)));
        let lb_location = self.st.location_of(vnet).unwrap_or_default().to_string();
        if lb.sku.name == LbSkuName::Basic && !lb_location.eq_ignore_ascii_case(&self.source_location) {
            return self.dropped(issue(
                Origin::Inbound,
                IssueType::Platform,
                &[
                    ("Reason", "BasicLoadBalancerFrontendNotReachableOverGlobalPeering".into()),
                    ("LoadBalancer", lb_id.to_string()),
                ],
            ));
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
            return self.dropped(issue(
                Origin::Inbound,
                IssueType::Platform,
                &[("Reason", "NoLoadBalancingRuleForPort".into()), ("Port", f.dport.to_string())],
            ));
        };
        let pool = rule.properties.backend_address_pool.id.clone();
        let backend_port = if rule.properties.frontend_port == 0 { f.dport } else { rule.properties.backend_port };
        let backends = backends_of(self.st, &pool);
        let mut last_issue = None;
        for (nic, ip) in backends {
            let Some(p) = self.engine.program(&nic) else { continue };
            let mark = self.hops.len();
            self.hops.push(Hop::new(HopType::Destination, Some(nic), Some(ip)));
            if self.nsg_in(&p, ip, backend_port) {
                return StepOutcome::Delivered { nic: p, translated: Some((ip, backend_port)) };
            }
            last_issue = self.hops.pop().and_then(|h| h.issues.into_iter().next());
            self.hops.truncate(mark);
        }
        let i = last_issue
            .unwrap_or_else(|| issue(Origin::Inbound, IssueType::Platform, &[("Reason", "NoHealthyBackend".into())]));
        self.dropped(i)
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

fn route_issue(kind: IssueType, route: &EffectiveRoute, why: &str) -> Issue {
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
    issue(Origin::Outbound, kind, &ctx)
}

fn peering_issue(reason: &str, on: &ResourceId, towards: &ResourceId, link: Option<&str>) -> Issue {
    let mut ctx = vec![
        ("Reason", reason.to_string()),
        ("VirtualNetwork", on.to_string()),
        ("RemoteVirtualNetwork", towards.to_string()),
    ];
    if let Some(l) = link {
        ctx.push(("Peering", on.child("virtualNetworkPeerings", l).to_string()));
    }
    issue(Origin::Inbound, IssueType::Platform, &ctx)
}
