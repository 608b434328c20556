//! The switch: one port per NIC, executing the engine's programs.
//!
//! Fast path: parse, look the (port, 5-tuple) up in the flow table; an entry of the current
//! generation carries the decision (deliver to a port, with a rewrite, or drop) and its packet
//! pushes the entry's expiry on. Slow path (a new flow, an expired one, or an entry of an older
//! generation): one forwarding step of the engine ([`tessera_engine::forward::step`]: NSGs
//! out, route, peering crossing, NSGs in at the port that takes the packet), whose verdict is
//! cached, charged to the port; an allowed flow also marks its reply as established at the
//! ports it reached, so return traffic passes NSGs (N4).
//!
//! The switch reads no clock: [`Switch::advance`] tells it the time, and expires idle flows.

use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_engine::compile::security::Protocol;
use tessera_engine::forward::{self, Exit, Flow, Verdict};
use tessera_engine::{Engine, NicProgram};
use tessera_model::ResourceId;

use crate::aging::Timeouts;
use crate::control;
use crate::counters::Counters;
use crate::flow::{Action, Entry, FlowKey, FlowTable, Lookup, Nat, Refusal};
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

/// The default number of flow entries one port may hold (a quarter of the table: Azure's
/// per-VM flow limits are of this order).
pub const DEFAULT_PORT_FLOWS: usize = DEFAULT_FLOWS / 4;

/// The size and fairness of a switch's flow table, and its idle timeouts.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// Entries in all.
    pub capacity: usize,
    /// Entries one port may hold.
    pub port_quota: usize,
    /// Idle timeouts.
    pub timeouts: Timeouts,
}

impl FlowLimits {
    /// A table of `capacity` entries, any port may fill it (no quota below the capacity).
    pub fn new(capacity: usize) -> Self {
        FlowLimits { capacity, port_quota: capacity, timeouts: Timeouts::default() }
    }
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits { capacity: DEFAULT_FLOWS, port_quota: DEFAULT_PORT_FLOWS, timeouts: Timeouts::default() }
    }
}

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
    pub(crate) timeouts: Timeouts,
    /// The time, in whole seconds of the caller's clock ([`Switch::advance`]).
    pub(crate) now: u32,
    pub(crate) counters: Counters,
    /// Ports of other hosts (VXLAN), and the local ports by (VNI, address).
    pub(crate) overlay: crate::overlay::Overlay,
}

impl Switch {
    /// A switch with a port for each NIC (in order: the first NIC is port 0).
    pub fn new(engine: Arc<Engine>, nics: &[ResourceId], limits: FlowLimits) -> Self {
        let mut s = Switch {
            engine,
            ports: Vec::new(),
            by_nic: HashMap::new(),
            flows: FlowTable::new(limits.capacity, limits.port_quota),
            generation: 1,
            timeouts: limits.timeouts,
            now: 0,
            counters: Counters::new(nics.len()),
            overlay: crate::overlay::Overlay::default(),
        };
        for nic in nics {
            if let Some(program) = s.engine.program(nic) {
                let id = PortId::try_from(s.ports.len()).unwrap_or(PortId::MAX);
                let vnet = s.counters.vnet_index(&program.subnet.vnet);
                s.ports.push(Port { nic: nic.clone(), mac: program.mac, program, vnet });
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
                p.mac = program.mac;
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

    /// The generation as flow entries keep it.
    fn generation32(&self) -> u32 {
        self.generation as u32
    }

    /// The flow entries charged to a port.
    pub fn flows_of(&self, port: PortId) -> usize {
        self.flows.owned(port)
    }

    /// Tells the switch the time (any monotonic clock of the caller's: the agent's, or a
    /// virtual one) and removes the flows idle past it. Returns their keys, for a kernel fast
    /// path to withdraw. Cheap when called with every batch: work happens once a second.
    pub fn advance(&mut self, now: Duration) -> Vec<FlowKey> {
        let now = u32::try_from(now.as_secs()).unwrap_or(u32::MAX);
        if now < self.now {
            return Vec::new();
        }
        self.now = now;
        let gone = self.flows.expire(now);
        self.counters.expired += gone.len() as u64;
        gone
    }

    /// Marks a flow active now without a packet through the switch (a kernel fast path carried
    /// its packets), so it does not expire while it is in use.
    pub fn keep_alive(&mut self, key: &FlowKey) {
        let (generation, now) = (self.generation32(), self.now);
        let tcp = self.port(key.port).map_or(0, |p| p.program.subnet.network.tcp_idle_timeout_secs);
        let idle = self.timeouts.of_protocol(key.proto, tcp);
        self.flows.hit(key, generation, now, now.saturating_add(idle));
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
            Some(Action::Deliver { to, nat: None }) if entry.generation == self.generation32() => {
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
        let tcp_idle = p.program.subnet.network.tcp_idle_timeout_secs;
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
                let expires = self.now.saturating_add(self.timeouts.idle(&f, tcp_idle));
                let action = match self.flows.lookup(&key, self.generation32(), self.now, expires) {
                    Lookup::Hit(Entry { action: Some(a), .. }) => {
                        self.counters.fast_path += 1;
                        a
                    }
                    Lookup::Hit(existing) | Lookup::Miss(Some(existing)) => {
                        self.counters.slow_path += 1;
                        match self.decide_at(port, key, &f, expires, Some(existing)) {
                            Ok(a) => a,
                            Err(reason) => return self.drop(reason, frame.len()),
                        }
                    }
                    Lookup::Miss(None) => {
                        self.counters.slow_path += 1;
                        match self.decide_at(port, key, &f, expires, None) {
                            Ok(a) => a,
                            Err(reason) => return self.drop(reason, frame.len()),
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

    /// The slow path: decide the flow with the engine, cache the decision (charged to the
    /// port), and mark the reply established where the packet was allowed. A refusal of the
    /// table (the port's quota, or a full table) is the drop reason.
    fn decide_at(
        &mut self,
        port: PortId,
        key: FlowKey,
        f: &IpFlow,
        expires: u32,
        existing: Option<Entry>,
    ) -> Result<Action, DropReason> {
        let Some(program) = self.port(port).map(|p| p.program.clone()) else {
            return Err(DropReason::UnknownPort);
        };
        if existing.is_none()
            && let Err(r) = self.flows.has_room(key.port)
        {
            // Refused before any work: a port flooding new flows costs a lookup each.
            return Err(self.refused(key.port, r));
        }
        let established = existing.is_some_and(|e| e.established);
        let proto = match f.proto {
            TCP => Protocol::Tcp,
            UDP => Protocol::Udp,
            _ => Protocol::Icmp,
        };
        let flow = Flow { proto, src: f.src, sport: f.sport, dst: f.dst, dport: f.dport, established };
        let action = match forward::step(&self.engine, &program, flow) {
            Verdict::Deliver { nic, translated } => {
                let nat = match translated {
                    Some((IpAddr::V4(a), port)) => Some(Nat::Destination(a, port)),
                    _ => None,
                }
                .or(existing.and_then(|e| e.reply_nat));
                self.towards(&nic.nic, nat)
            }
            Verdict::Appliance(nic) => self.towards(&nic.nic, existing.and_then(|e| e.reply_nat)),
            // The gateway's instance takes it into its tunnels, where one runs.
            Verdict::Gateway(gw) => match self.towards(&gw.nic, existing.and_then(|e| e.reply_nat)) {
                Action::Drop(_) => Action::Drop(DropReason::Gateway),
                a => a,
            },
            Verdict::Exit(Exit::Internet) => Action::Drop(DropReason::Internet),
            Verdict::Exit(Exit::Gateway) => Action::Drop(DropReason::Gateway),
            Verdict::Drop(cause) => Action::Drop(DropReason::from(cause)),
        };
        let expires = match action {
            Action::Drop(_) => self.now.saturating_add(self.timeouts.refused),
            _ => expires,
        };
        let reached = match action {
            Action::Deliver { to, nat } => Some((to, nat)),
            // The reply comes back from the other host into this port (see `receive`).
            Action::Remote { nat, .. } => Some((key.port, nat)),
            Action::Drop(_) => None,
        };
        // N4: the reply may return through the port the packet reached.
        let reply = match (reached, established) {
            (Some((to, Some(Nat::Destination(a, port_no)))), false) => {
                let translated = FlowKey { dst: IpAddr::V4(a), dport: port_no, ..key };
                Some((translated.reply_at(to), original_destination(&key)))
            }
            (Some((to, _)), false) => Some((key.reply_at(to), None)),
            _ => None,
        };
        if let Some((reply_key, _)) = reply {
            // Its entry's memory loads while the flow's own entry is written.
            self.flows.touch(&[reply_key]);
        }
        let entry = Entry::decided(self.generation32(), action, established, existing, key.port, expires);
        let admitted = self.flows.insert(key, entry).map_err(|r| self.refused(key.port, r))?;
        self.count_eviction(admitted);
        if let Some((reply_key, reply_nat)) = reply {
            self.establish(reply_key, reply_nat, key.port, expires);
        }
        Ok(action)
    }

    /// Marks the reply of an allowed flow established, charged to the port that opened it.
    pub(crate) fn establish(&mut self, reply: FlowKey, nat: Option<Nat>, owner: PortId, expires: u32) {
        match self.flows.mark_established(reply, nat, owner, expires) {
            Ok(admitted) => self.count_eviction(admitted),
            Err(r) => {
                let reason = self.refused(owner, r);
                self.counters.drop(reason, 0);
            }
        }
    }

    /// Counts a refusal of the table against the port; the drop reason.
    pub(crate) fn refused(&mut self, port: PortId, r: Refusal) -> DropReason {
        match r {
            Refusal::Quota => {
                self.counters.quota_drop(port);
                DropReason::FlowQuotaExceeded
            }
            Refusal::Full => DropReason::FlowTableFull,
        }
    }

    pub(crate) fn count_eviction(&mut self, admitted: crate::flow::Admitted) {
        if let Some(p) = admitted.evicted {
            self.counters.evicted(p);
        }
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
        let dns: Vec<std::net::Ipv4Addr> = p
            .program
            .subnet
            .network
            .dns_servers
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(v) => Some(*v),
                IpAddr::V6(_) => None,
            })
            .collect();
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
