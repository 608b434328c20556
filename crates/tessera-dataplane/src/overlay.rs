//! Ports on other hosts: VXLAN between hosts (one VNI per VNet), and the receiving host's own
//! inbound check.
//!
//! The sending host decides a flow with the engine (which knows every port); when the
//! destination port lives elsewhere the frame leaves as [`Outcome::Encapsulate`], rewritten
//! (MACs, NAT) exactly as a local delivery would be, and the agent sends
//! `vxlan_header(vni) + frame` over UDP to the host. The receiving host finds the port by
//! (VNI, destination address) — so overlapping address spaces of different VNets never meet —
//! and checks the port's inbound NSGs (subnet, then NIC) with its own programs, unless the
//! packet returns on a connection its port opened (N4). A program newer on the receiver than on
//! the sender therefore wins.

use std::net::IpAddr;

use hashbrown::HashMap;
use tessera_engine::compile::security::Protocol;
use tessera_engine::forward::{Flow, admit_inbound};
use tessera_model::ResourceId;

pub use tessera_engine::compile::vni_of;

use crate::counters::{TrafficDirection, VnetIndex};
use crate::flow::{Action, Entry, FlowKey, Nat};
use crate::outcome::{DropReason, Outcome, PortId};
use crate::switch::{Port, Switch, rewrite};
use crate::wire::{self, Frame, GATEWAY_MAC, TCP, UDP};

/// The UDP port of VXLAN (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;

/// The 8-byte VXLAN header (flags: VNI present).
pub fn vxlan_header(vni: u32) -> [u8; 8] {
    let v = vni.to_be_bytes();
    [0x08, 0, 0, 0, v[1], v[2], v[3], 0]
}

/// The VNI and the inner frame of a VXLAN UDP payload.
pub fn decapsulate(payload: &[u8]) -> Option<(u32, &[u8])> {
    let h = payload.get(..8)?;
    if h[0] & 0x08 == 0 {
        return None;
    }
    Some((u32::from_be_bytes([0, h[4], h[5], h[6]]), &payload[8..]))
}

/// A port of another host.
#[derive(Debug, Clone)]
pub(crate) struct RemotePort {
    host: IpAddr,
    mac: [u8; 6],
    vnet: VnetIndex,
    vni: u32,
}

/// Where the switch's remote ports are, and its local ports by (VNI, address).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    placements: HashMap<ResourceId, IpAddr>,
    remotes: Vec<RemotePort>,
    remote_by_nic: HashMap<ResourceId, u32>,
    /// Remote ports by address (None where two hold the same address in different VNets).
    remote_by_addr: HashMap<IpAddr, Option<u32>>,
    local: HashMap<(u32, IpAddr), PortId>,
}

impl Overlay {
    /// Indexes the local ports by (VNI of their VNet, address).
    pub(crate) fn index_local(&mut self, ports: &[Port]) {
        self.local.clear();
        for (i, p) in ports.iter().enumerate() {
            let vni = p.program.subnet.network.vni;
            for a in &p.program.addresses {
                self.local.insert((vni, *a), PortId::try_from(i).unwrap_or(PortId::MAX));
            }
        }
    }

    /// The remote port of a NIC.
    pub(crate) fn remote_index(&self, nic: &ResourceId) -> Option<u32> {
        self.remote_by_nic.get(nic).copied()
    }
}

fn proto_of(p: u8) -> Protocol {
    match p {
        TCP => Protocol::Tcp,
        UDP => Protocol::Udp,
        _ => Protocol::Icmp,
    }
}

impl Switch {
    /// Declares that `nic` runs on the host at `host` (its underlay address).
    pub fn place_remote(&mut self, nic: ResourceId, host: IpAddr) {
        self.place_remotes([(nic, host)]);
    }

    /// Declares where each of many NICs runs, with one rebuild of the remote ports (not one
    /// per NIC: thousands of remote NICs placed one by one cost millions of lookups).
    pub fn place_remotes(&mut self, placements: impl IntoIterator<Item = (ResourceId, IpAddr)>) {
        self.overlay.placements.extend(placements);
        self.refresh_remote();
        // Decisions cached before the placement may have dropped packets for this NIC.
        self.generation += 1;
    }

    /// Rebuilds the remote ports from the placements and the current programs.
    pub(crate) fn refresh_remote(&mut self) {
        let mut remotes = Vec::new();
        let mut by_nic = HashMap::new();
        let mut by_addr: HashMap<IpAddr, Option<u32>> = HashMap::new();
        for (nic, host) in &self.overlay.placements {
            if self.by_nic.contains_key(nic) {
                continue;
            }
            let Some(program) = self.engine.program(nic) else { continue };
            let vnet = self.counters.vnet_index(&program.subnet.vnet);
            let remote = RemotePort { host: *host, mac: program.mac, vnet, vni: program.subnet.network.vni };
            let index = u32::try_from(remotes.len()).unwrap_or(u32::MAX);
            by_nic.insert(nic.clone(), index);
            for a in &program.addresses {
                let seen = by_addr.entry(*a).or_insert(Some(index));
                if *seen != Some(index) {
                    *seen = None;
                }
            }
            remotes.push(remote);
        }
        self.overlay.remotes = remotes;
        self.overlay.remote_by_nic = by_nic;
        self.overlay.remote_by_addr = by_addr;
    }

    /// Rewrites a frame for a port of another host and says where to send it.
    pub(crate) fn send_remote(&mut self, from: PortId, to: u32, nat: Option<Nat>, frame: &mut [u8]) -> Outcome {
        let (Some(src), Some(remote)) = (
            self.port(from).map(|p| p.vnet),
            self.overlay.remotes.get(usize::try_from(to).unwrap_or(usize::MAX)).cloned(),
        ) else {
            return self.drop_frame(DropReason::UnknownPort, frame.len());
        };
        wire::set_macs(frame, GATEWAY_MAC, remote.mac);
        rewrite(frame, nat);
        if src != remote.vnet {
            self.counters.crossing_one(src, remote.vnet, TrafficDirection::Egress, frame.len());
        }
        Outcome::Encapsulate { host: remote.host, vni: remote.vni }
    }

    /// A frame that arrived from another host (decapsulated): delivered to the local port that
    /// holds its destination in the VNet of `vni`, if that port's inbound NSGs admit it.
    pub fn receive(&mut self, vni: u32, frame: &mut [u8]) -> Outcome {
        let f = match wire::parse(frame) {
            Some(Frame::Ip(f)) => f,
            Some(_) => return self.drop_frame(DropReason::UnsupportedProtocol, frame.len()),
            None => return self.drop_frame(DropReason::Unparsable, frame.len()),
        };
        let Some(&to) = self.overlay.local.get(&(vni, f.dst)) else {
            return self.drop_frame(DropReason::NoSuchHost, frame.len());
        };
        let key = FlowKey::of(to, &f);
        let tcp_idle = self.port(to).map_or(0, |p| p.program.subnet.network.tcp_idle_timeout_secs);
        let expires = self.now.saturating_add(self.timeouts.idle(&f, tcp_idle));
        let (generation, now) = (self.generation as u32, self.now);
        let cached = self.flows.hit(&key, generation, now, expires);
        let existing = match cached {
            Some(e) => Some(e),
            None => self.flows.get(&key).copied(),
        };
        let action = match cached.and_then(|e| e.action) {
            Some(a) => a,
            None => {
                let established = existing.is_some_and(|e| e.established);
                let allowed = self.port(to).is_some_and(|p| {
                    let flow = Flow {
                        proto: proto_of(f.proto),
                        src: f.src,
                        sport: f.sport,
                        dst: f.dst,
                        dport: f.dport,
                        established,
                    };
                    admit_inbound(&p.program, flow).is_ok()
                });
                let (action, expires) = if allowed {
                    (Action::Deliver { to, nat: None }, expires)
                } else {
                    (Action::Drop(DropReason::NsgDeniedInbound), now.saturating_add(self.timeouts.refused))
                };
                let owner = self.remote_owner(f.src);
                let entry = Entry::decided(generation, action, established, existing, owner, expires);
                match self.flows.insert(key, entry) {
                    Ok(admitted) => self.count_eviction(admitted),
                    Err(r) => {
                        let reason = self.refused(owner, r);
                        return self.drop_frame(reason, frame.len());
                    }
                }
                if allowed && !established {
                    // N4: the port's reply leaves as an established flow.
                    self.establish(key.reply_at(to), None, owner, expires);
                }
                action
            }
        };
        match action {
            Action::Deliver { to, .. } => {
                let Some(dest) = self.port(to).cloned() else {
                    return self.drop_frame(DropReason::UnknownPort, frame.len());
                };
                wire::set_macs(frame, GATEWAY_MAC, dest.mac);
                // The reply of a load-balanced flow opened here: the backend becomes the frontend.
                rewrite(frame, existing.and_then(|e| e.reply_nat));
                if let Some(from) = self.source_vnet(&dest, f.src) {
                    self.counters.crossing_one(from, dest.vnet, TrafficDirection::Ingress, frame.len());
                }
                self.counters.tx(to, frame.len());
                Outcome::Deliver(to)
            }
            Action::Drop(reason) => self.drop_frame(reason, frame.len()),
            Action::Remote { .. } => self.drop_frame(DropReason::DestinationNotOnThisHost, frame.len()),
        }
    }

    /// The account a flow arriving from another host is charged to: its sender's remote port
    /// (after the local ports), or one account for senders it cannot tell apart — never the
    /// local port it arrives at, so a flood from elsewhere cannot use up that VM's share.
    fn remote_owner(&self, src: IpAddr) -> PortId {
        let base = PortId::try_from(self.ports.len()).unwrap_or(PortId::MAX);
        let unknown = u32::try_from(self.overlay.remotes.len()).unwrap_or(u32::MAX);
        base.saturating_add(self.overlay.remote_by_addr.get(&src).copied().flatten().unwrap_or(unknown))
    }

    /// The peered VNet a packet arriving at `dest` comes from (None within its own VNet).
    fn source_vnet(&mut self, dest: &Port, src: IpAddr) -> Option<VnetIndex> {
        let network = dest.program.subnet.network.clone();
        let remote = network.peer_holding(src)?;
        Some(self.counters.vnet_index(remote))
    }
}
