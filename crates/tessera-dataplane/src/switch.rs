//! The switch: one port per NIC, executing the engine's programs.
//!
//! Fast path: parse, look the (port, 5-tuple) up in the flow table; an entry of the current
//! generation carries the decision (deliver to a port, with a rewrite, or drop). Slow path (a
//! new flow, or an entry of an older generation): one forwarding step of the engine
//! (`tessera_engine::diag::trace::step`: NSGs out, route, peering crossing, NSGs in at the
//! port that takes the packet), whose result is cached; an allowed flow also marks its reply
//! as established at the ports it reached, so return traffic passes NSGs (N4).

use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::trace::{Flow, Issue, IssueType, Origin, StepOutcome, step};
use tessera_engine::{Engine, NicProgram};
use tessera_model::ResourceId;

use crate::control;
use crate::counters::Counters;
use crate::flow::{Action, Entry, FlowKey, FlowTable, Nat};
use crate::outcome::{Direction, DropReason, Outcome, PortId};
use crate::wire::{self, End, Frame, GATEWAY_MAC, IpFlow, TCP, UDP};

/// A port: a NIC's program and its MAC.
#[derive(Debug, Clone)]
pub struct Port {
    /// The NIC.
    pub nic: ResourceId,
    /// Its compiled program.
    pub program: Arc<NicProgram>,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its VNet's index in the counters.
    pub vnet: crate::counters::VnetIndex,
}

/// A flow the switch lets a kernel fast path carry (see [`Switch::offload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offload {
    /// The flow at the port it leaves.
    pub key: FlowKey,
    /// The port that takes it.
    pub to: PortId,
    /// The Ethernet addresses the switch writes: destination then source.
    pub macs: [u8; 12],
}

/// The default number of flow entries.
pub const DEFAULT_FLOWS: usize = 1 << 20;

/// Frames touched with [`Switch::prefetch`] before they are processed: enough to overlap the
/// cache misses of their lookups, few enough that the first is still cached when it is processed.
pub const PREFETCH_BATCH: usize = 16;

/// A virtual switch for the NICs of one host.
#[derive(Debug)]
pub struct Switch {
    pub(crate) engine: Arc<Engine>,
    pub(crate) ports: Vec<Port>,
    pub(crate) by_nic: HashMap<ResourceId, PortId>,
    pub(crate) flows: FlowTable,
    pub(crate) generation: u64,
    pub(crate) counters: Counters,
    /// Ports of other hosts (VXLAN), and the local ports by (VNI, address).
    pub(crate) overlay: crate::overlay::Overlay,
}

/// The MAC of a port's NIC as the engine assigned it (`AA-BB-…`; zeros when it has none).
pub fn mac_of(program: &NicProgram, engine: &Engine) -> [u8; 6] {
    let text = engine.state().nics.get(&program.nic).and_then(|n| n.properties.mac_address.clone()).unwrap_or_default();
    let mut mac = [0u8; 6];
    for (i, part) in text.split(['-', ':']).take(6).enumerate() {
        mac[i] = u8::from_str_radix(part, 16).unwrap_or(0);
    }
    mac
}

impl Switch {
    /// A switch with a port for each NIC (in order: the first NIC is port 0).
    pub fn new(engine: Arc<Engine>, nics: &[ResourceId], flow_capacity: usize) -> Self {
        let mut s = Switch {
            engine,
            ports: Vec::new(),
            by_nic: HashMap::new(),
            flows: FlowTable::new(flow_capacity),
            generation: 1,
            counters: Counters::new(nics.len()),
            overlay: crate::overlay::Overlay::default(),
        };
        for nic in nics {
            if let Some(program) = s.engine.program(nic) {
                let id = PortId::try_from(s.ports.len()).unwrap_or(PortId::MAX);
                let mac = mac_of(&program, &s.engine);
                let vnet = s.counters.vnet_index(&program.subnet.vnet);
                s.ports.push(Port { nic: nic.clone(), program, mac, vnet });
                s.by_nic.insert(nic.clone(), id);
            }
        }
        s.overlay.index_local(&s.ports);
        s
    }

    /// Swaps in new programs (a new engine snapshot). Cached decisions become stale and are
    /// re-decided lazily, packet by packet, so unaffected flows never stall.
    pub fn swap(&mut self, engine: Arc<Engine>) {
        for p in &mut self.ports {
            if let Some(program) = engine.program(&p.nic) {
                p.vnet = self.counters.vnet_index(&program.subnet.vnet);
                p.program = program;
            }
        }
        self.engine = engine;
        self.generation += 1;
        let ports = std::mem::take(&mut self.ports);
        self.overlay.index_local(&ports);
        self.ports = ports;
        self.refresh_remote();
    }

    /// The port of a NIC.
    pub fn port_of(&self, nic: &ResourceId) -> Option<PortId> {
        self.by_nic.get(nic).copied()
    }

    /// A port.
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(usize::try_from(id).ok()?)
    }

    /// The number of ports.
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The number of flow entries.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// The current program generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What a kernel fast path may do with further frames of this frame's flow, which the
    /// switch has just delivered: a plain delivery to a local port (no rewrite but the MACs),
    /// under the current programs. None for anything else (rewrites, other hosts, drops, ARP…),
    /// which stays with the switch. An offloaded flow's frames are counted with [`Switch::account`].
    pub fn offload(&self, port: PortId, frame: &[u8]) -> Option<Offload> {
        let Some(Frame::Ip(f)) = wire::parse(frame) else { return None };
        self.offload_flow(FlowKey::of(port, &f))
    }

    /// [`Switch::offload`] for a flow already parsed.
    pub fn offload_flow(&self, key: FlowKey) -> Option<Offload> {
        let entry = self.flows.get(&key)?;
        match entry.action {
            Some(Action::Deliver { to, nat: None }) if entry.generation == self.generation => {
                let dest = self.port(to)?;
                let mut macs = [0u8; 12];
                macs[..6].copy_from_slice(&dest.mac);
                macs[6..].copy_from_slice(&GATEWAY_MAC);
                Some(Offload { key, to, macs })
            }
            _ => None,
        }
    }

    /// Counts frames an offloaded flow carried outside the switch from `from` to `to`.
    pub fn account(&mut self, from: PortId, to: PortId, carried: crate::counters::Count) {
        let (Some(a), Some(b)) = (self.port(from).map(|p| p.vnet), self.port(to).map(|p| p.vnet)) else { return };
        self.counters.carried((from, a), (to, b), carried);
    }

    /// Loads the flow entries of frames about to be processed on `port` into the caches (at
    /// most [`PREFETCH_BATCH`]). With many active flows each lookup waits for memory; touching
    /// a batch of frames first and then processing them lets those waits overlap.
    pub fn prefetch<'a>(&self, port: PortId, frames: impl IntoIterator<Item = &'a [u8]>) {
        let mut keys = [FlowKey::EMPTY; PREFETCH_BATCH];
        let mut n = 0;
        for frame in frames.into_iter().take(PREFETCH_BATCH) {
            if let Some(Frame::Ip(f)) = wire::parse(frame) {
                keys[n] = FlowKey::of(port, &f);
                n += 1;
            }
        }
        self.flows.touch(&keys[..n]);
    }

    /// Processes one frame on a port. A delivered frame is rewritten in place (MACs, NAT).
    pub fn process(&mut self, port: PortId, direction: Direction, frame: &mut [u8]) -> Outcome {
        let Some(p) = self.port(port) else {
            return self.drop(DropReason::UnknownPort, frame.len());
        };
        if direction == Direction::Inbound {
            // Decided at the sending port (NSGs out and in); delivered as it is.
            self.counters.tx(port, frame.len());
            return Outcome::Deliver(port);
        }
        let forwards = p.program.ip_forwarding;
        let own = p.program.addresses.first().copied();
        self.counters.rx(port, frame.len());
        match wire::parse(frame) {
            None => self.drop(DropReason::Unparsable, frame.len()),
            Some(Frame::OtherIp) => self.drop(DropReason::UnsupportedProtocol, frame.len()),
            Some(Frame::ArpRequest { sender_mac, sender_ip, target_ip }) => {
                Outcome::Hairpin(wire::arp_reply(sender_mac, sender_ip, target_ip))
            }
            Some(Frame::Ip(f)) if f.proto == UDP && f.dport == 67 && f.sport == 68 && f.src.is_ipv4() => {
                match self.lease(port).and_then(|l| control::dhcp_reply(frame, &l)) {
                    Some(reply) => Outcome::Hairpin(reply),
                    None => self.drop(DropReason::UnsupportedProtocol, frame.len()),
                }
            }
            Some(Frame::Ip(f)) if f.proto == wire::ICMPV6 && control::is_neighbor_discovery(frame) => {
                match control::neighbor_advertisement(frame) {
                    Some(reply) => Outcome::Hairpin(reply),
                    None => self.drop(DropReason::UnsupportedProtocol, frame.len()),
                }
            }
            Some(Frame::Ip(f)) => {
                if !forwards && own != Some(f.src) && !self.owns(port, f.src) {
                    return self.drop(DropReason::SpoofedSource, frame.len());
                }
                let key = FlowKey::of(port, &f);
                let existing = self.flows.get(&key).copied();
                let action = match existing {
                    Some(e) if e.generation == self.generation && e.action.is_some() => {
                        self.counters.fast_path += 1;
                        e.action
                    }
                    _ => None,
                };
                let action = match action {
                    Some(a) => a,
                    None => {
                        self.counters.slow_path += 1;
                        let Some(program) = self.port(port).map(|p| p.program.clone()) else {
                            return self.drop(DropReason::UnknownPort, frame.len());
                        };
                        match self.decide(&program, key, &f, existing) {
                            Some(a) => a,
                            None => return self.drop(DropReason::FlowTableFull, frame.len()),
                        }
                    }
                };
                self.track_tcp(key, &f, action);
                self.apply(port, action, frame)
            }
        }
    }

    fn drop(&mut self, reason: DropReason, len: usize) -> Outcome {
        self.drop_frame(reason, len)
    }

    /// Counts a drop and says so.
    pub(crate) fn drop_frame(&mut self, reason: DropReason, len: usize) -> Outcome {
        self.counters.drop(reason, len);
        Outcome::Drop(reason)
    }

    /// The slow path: decide the flow with the engine, cache the decision, and mark the reply
    /// established where the packet was allowed. None when the flow table is full.
    fn decide(
        &mut self,
        program: &Arc<NicProgram>,
        key: FlowKey,
        f: &IpFlow,
        existing: Option<Entry>,
    ) -> Option<Action> {
        let established = existing.is_some_and(|e| e.established);
        let proto = match f.proto {
            TCP => Protocol::Tcp,
            UDP => Protocol::Udp,
            _ => Protocol::Icmp,
        };
        let flow = Flow { proto, src: f.src, sport: f.sport, dst: f.dst, dport: f.dport, established };
        let (outcome, issue) = step(&self.engine, program, flow);
        let action = match outcome {
            StepOutcome::Delivered { nic, translated } => {
                let nat = match translated {
                    Some((IpAddr::V4(a), port)) => Some(Nat::Destination(a, port)),
                    _ => None,
                }
                .or(existing.and_then(|e| e.reply_nat));
                self.towards(&nic.nic, nat)
            }
            StepOutcome::Appliance(nic) => self.towards(&nic.nic, existing.and_then(|e| e.reply_nat)),
            StepOutcome::Left => {
                Action::Drop(if issue.is_none() && tessera_engine::compile::security::is_internet(f.dst) {
                    DropReason::Internet
                } else {
                    DropReason::Gateway
                })
            }
            StepOutcome::Dropped => Action::Drop(issue.as_ref().map_or(DropReason::NoRoute, reason_of)),
        };
        let entry = Entry::decided(self.generation, action, established, existing);
        if !self.flows.insert(key, entry) {
            return None;
        }
        let reached = match action {
            Action::Deliver { to, nat } => Some((to, nat)),
            // The reply comes back from the other host into this port (see `receive`).
            Action::Remote { nat, .. } => Some((key.port, nat)),
            Action::Drop(_) => None,
        };
        if let (Some((to, nat)), false) = (reached, established) {
            // N4: the reply may return through the port the packet reached.
            let (reply_key, reply_nat) = match nat {
                Some(Nat::Destination(a, port_no)) => {
                    let translated = FlowKey { dst: IpAddr::V4(a), dport: port_no, ..key };
                    (translated.reply_at(to), original_destination(&key))
                }
                _ => (key.reply_at(to), None),
            };
            if !self.flows.mark_established(reply_key, reply_nat) {
                self.counters.drop(DropReason::FlowTableFull, 0);
            }
        }
        Some(action)
    }

    /// Where a packet for `nic` goes: its local port, or its port on another host.
    fn towards(&self, nic: &ResourceId, nat: Option<Nat>) -> Action {
        if let Some(to) = self.by_nic.get(nic).copied() {
            return Action::Deliver { to, nat };
        }
        match self.overlay.remote_index(nic) {
            Some(to) => Action::Remote { to, nat },
            None => Action::Drop(DropReason::DestinationNotOnThisHost),
        }
    }

    /// Ends a TCP connection's entries early: at a RST, or once both directions sent a FIN.
    fn track_tcp(&mut self, key: FlowKey, f: &IpFlow, action: Action) {
        if f.proto != TCP || !(f.tcp.fin || f.tcp.rst) {
            return;
        }
        let (to, nat) = match action {
            Action::Deliver { to, nat } => (to, nat),
            Action::Remote { nat, .. } => (key.port, nat),
            Action::Drop(_) => return,
        };
        let reply = match nat {
            Some(Nat::Destination(a, p)) => FlowKey { dst: IpAddr::V4(a), dport: p, ..key }.reply_at(to),
            Some(Nat::Source(a, p)) => FlowKey { src: IpAddr::V4(a), sport: p, ..key }.reply_at(to),
            None => key.reply_at(to),
        };
        let reply_fin = self.flows.get(&reply).is_some_and(|e| e.fin);
        if f.tcp.rst || reply_fin {
            self.flows.remove(&key);
            self.flows.remove(&reply);
        } else if let Some(e) = self.flows.get_mut(&key) {
            e.fin = true;
        }
    }

    /// What DHCP hands the port: its primary IPv4 address, its subnet, the VNet's DNS servers.
    fn lease(&self, port: PortId) -> Option<control::Lease> {
        let p = self.port(port)?;
        let address = p.program.addresses.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        })?;
        let subnet = p.program.subnet.prefixes.iter().find_map(|n| match n {
            tessera_model::prefix::IpNet::V4(n) if n.contains(&address) => Some(*n),
            _ => None,
        })?;
        let vnet = self.engine.state().vnet(&p.program.subnet.vnet);
        let dns: Vec<std::net::Ipv4Addr> = vnet
            .and_then(|v| v.properties.dhcp_options.as_ref())
            .map(|d| d.dns_servers.iter().filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_default();
        let dns = if dns.is_empty() { vec![control::AZURE_DNS] } else { dns };
        Some(control::Lease { address, subnet, dns })
    }

    fn owns(&self, port: PortId, ip: IpAddr) -> bool {
        self.port(port).is_some_and(|p| p.program.addresses.contains(&ip))
    }

    fn apply(&mut self, from: PortId, action: Action, frame: &mut [u8]) -> Outcome {
        match action {
            Action::Drop(reason) => self.drop(reason, frame.len()),
            Action::Remote { to, nat } => self.send_remote(from, to, nat, frame),
            Action::Deliver { to, nat } => {
                let (Some(src), Some(dest)) = (self.port(from), self.port(to)) else {
                    return self.drop(DropReason::UnknownPort, frame.len());
                };
                wire::set_macs(frame, GATEWAY_MAC, dest.mac);
                rewrite(frame, nat);
                let (a, b) = (src.vnet, dest.vnet);
                if a != b {
                    self.counters.crossing(a, b, frame.len());
                }
                self.counters.tx(to, frame.len());
                Outcome::Deliver(to)
            }
        }
    }
}

/// Applies a flow's rewrite to a frame.
pub(crate) fn rewrite(frame: &mut [u8], nat: Option<Nat>) {
    match nat {
        Some(Nat::Destination(a, p)) => {
            wire::rewrite_v4(frame, End::Destination, a, p);
        }
        Some(Nat::Source(a, p)) => {
            wire::rewrite_v4(frame, End::Source, a, p);
        }
        None => {}
    }
}

/// The rewrite that turns a backend's reply back into the frontend's.
pub(crate) fn original_destination(key: &FlowKey) -> Option<Nat> {
    match key.dst {
        IpAddr::V4(a) => Some(Nat::Source(a, key.dport)),
        IpAddr::V6(_) => None,
    }
}

/// The drop reason of an engine issue.
pub fn reason_of(issue: &Issue) -> DropReason {
    let why = issue.context.iter().find(|(k, _)| k == "Reason").map(|(_, v)| v.as_str()).unwrap_or_default();
    match (issue.kind, issue.origin, why) {
        (IssueType::NetworkSecurityRule, Origin::Outbound, _) => DropReason::NsgDeniedOutbound,
        (IssueType::NetworkSecurityRule, _, _) => DropReason::NsgDeniedInbound,
        (_, _, "NoPeeringBack" | "PeeringNotConnected") => DropReason::PeeringNotConnected,
        (_, _, "ForwardedTrafficNotAllowed") => DropReason::ForwardedTrafficNotAllowed,
        (_, _, "SourceSubnetNotPeered") => DropReason::SubnetNotPeered,
        (_, _, "NoResourceAtAddress") => DropReason::NoSuchHost,
        (_, _, "IpForwardingDisabled") => DropReason::ApplianceForwardingDisabled,
        (_, _, "BasicLoadBalancerFrontendNotReachableOverGlobalPeering") => {
            DropReason::BasicLoadBalancerOverGlobalPeering
        }
        (_, _, "NoLoadBalancingRuleForPort" | "NoHealthyBackend") => DropReason::NoLoadBalancerBackend,
        (_, _, "RoutingLoop") => DropReason::RoutingLoop,
        (_, _, "DestinationNotRoutableOnInternet") => DropReason::Internet,
        (IssueType::UserDefinedRoute, _, w) if w.contains("appliance") => DropReason::ApplianceUnreachable,
        _ => DropReason::NoRoute,
    }
}
