//! The packet harness: builds a switch from a topology, makes real frames, pushes them through
//! `Switch::process`, checks outcomes and output bytes, and writes every frame of a test to a
//! pcap file when the test fails (`target/test-pcaps/<test>.pcap`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use tessera_dataplane::wire::GATEWAY_MAC;
use tessera_dataplane::{Direction, DropReason, FlowLimits, Outcome, PortId, Switch};
use tessera_engine::diag::resolve;
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};

/// A switch with every NIC of a topology as a port, and a frame recorder.
pub(crate) struct Lab {
    pub(crate) switch: Switch,
    pub(crate) engine: Arc<Engine>,
    frames: Vec<Vec<u8>>,
}

pub(crate) fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn engine(yaml: &str) -> Arc<Engine> {
    Arc::new(load::load(yaml, Format::Yaml, Limits::default()).unwrap_or_else(|e| panic!("topology: {e}")))
}

impl Lab {
    pub(crate) fn new(yaml: &str) -> Lab {
        Lab::with_limits(yaml, FlowLimits::default())
    }

    pub(crate) fn with_capacity(yaml: &str, flows: usize) -> Lab {
        Lab::with_limits(yaml, FlowLimits::new(flows))
    }

    pub(crate) fn with_limits(yaml: &str, limits: FlowLimits) -> Lab {
        Lab::of(engine(yaml), limits)
    }

    /// A switch with every NIC of an engine as a port.
    pub(crate) fn of(engine: Arc<Engine>, limits: FlowLimits) -> Lab {
        let nics: Vec<_> = engine.state().nics.keys().cloned().collect();
        let switch = Switch::new(engine.clone(), &nics, limits);
        Lab { switch, engine, frames: Vec::new() }
    }

    pub(crate) fn port(&self, vm: &str) -> PortId {
        let nic = resolve::resolve_nic(&self.engine, vm).unwrap_or_else(|e| panic!("{vm}: {e}"));
        self.switch.port_of(&nic).unwrap_or_else(|| panic!("{vm} has no port"))
    }

    pub(crate) fn ip(&self, vm: &str) -> Ipv4Addr {
        let p = self.switch.port(self.port(vm)).expect("port");
        match p.program.addresses[0] {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => panic!("{vm} is IPv6"),
        }
    }

    pub(crate) fn mac(&self, vm: &str) -> [u8; 6] {
        self.switch.port(self.port(vm)).expect("port").mac
    }

    /// Sends a frame from a VM's port and records both it and the result.
    pub(crate) fn send(&mut self, vm: &str, frame: Vec<u8>) -> Sent {
        let port = self.port(vm);
        self.frames.push(frame.clone());
        let mut buf = frame;
        match self.switch.process(port, Direction::Outbound, &mut buf) {
            Outcome::Deliver(to) => {
                self.frames.push(buf.clone());
                Sent::Deliver { port: to, frame: buf }
            }
            Outcome::Hairpin(reply) => {
                self.frames.push(reply.clone());
                Sent::Hairpin(reply)
            }
            Outcome::Encapsulate { host, vni } => {
                self.frames.push(buf.clone());
                Sent::Encap { host, vni, frame: buf }
            }
            Outcome::Drop(reason) => Sent::Drop(reason),
        }
    }

    /// A host's switch: ports for `local` VMs only; `remote` VMs placed on other hosts.
    pub(crate) fn on_host(engine: Arc<Engine>, local: &[&str], remote: &[(&str, IpAddr)]) -> Lab {
        Lab::on_host_with(engine, local, remote, FlowLimits::default())
    }

    /// [`Lab::on_host`] with a flow table of its own size.
    pub(crate) fn on_host_with(
        engine: Arc<Engine>,
        local: &[&str],
        remote: &[(&str, IpAddr)],
        limits: FlowLimits,
    ) -> Lab {
        let nic = |vm: &str| resolve::resolve_nic(&engine, vm).unwrap_or_else(|e| panic!("{vm}: {e}"));
        let nics: Vec<_> = local.iter().map(|vm| nic(vm)).collect();
        let mut switch = Switch::new(engine.clone(), &nics, limits);
        for (vm, host) in remote {
            switch.place_remote(nic(vm), *host);
        }
        Lab { switch, engine, frames: Vec::new() }
    }

    /// A frame arriving from another host (decapsulated), recorded like a sent one.
    pub(crate) fn receive(&mut self, vni: u32, frame: Vec<u8>) -> Sent {
        self.frames.push(frame.clone());
        let mut buf = frame;
        match self.switch.receive(vni, &mut buf) {
            Outcome::Deliver(port) => {
                self.frames.push(buf.clone());
                Sent::Deliver { port, frame: buf }
            }
            Outcome::Drop(reason) => Sent::Drop(reason),
            other => panic!("a received frame can only be delivered or dropped, not {other:?}"),
        }
    }

    /// A TCP segment from `vm` to `dst`.
    pub(crate) fn tcp(&self, vm: &str, dst: Ipv4Addr, sport: u16, dport: u16, flags: &str) -> Vec<u8> {
        self.tcp_from(vm, self.ip(vm), dst, sport, dport, flags)
    }

    /// A TCP segment from `vm` with any source address (appliances forward others' packets).
    pub(crate) fn tcp_from(
        &self,
        vm: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        sport: u16,
        dport: u16,
        flags: &str,
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.mac(vm), GATEWAY_MAC)
            .ipv4(src.octets(), dst.octets(), 64)
            .tcp(sport, dport, 1000, 64240);
        let b = if flags.contains('S') { b.syn() } else { b };
        let b = if flags.contains('A') { b.ack(1) } else { b };
        let b = if flags.contains('F') { b.fin() } else { b };
        let b = if flags.contains('R') { b.rst() } else { b };
        let payload = b"hello";
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("build tcp");
        out
    }

    pub(crate) fn udp(&self, vm: &str, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.mac(vm), GATEWAY_MAC)
            .ipv4(self.ip(vm).octets(), dst.octets(), 64)
            .udp(sport, dport);
        let payload = [0u8; 18];
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, &payload).expect("build udp");
        out
    }

    pub(crate) fn ping(&self, vm: &str, dst: Ipv4Addr, reply: bool) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.mac(vm), GATEWAY_MAC).ipv4(self.ip(vm).octets(), dst.octets(), 64);
        let b = if reply { b.icmpv4_echo_reply(7, 1) } else { b.icmpv4_echo_request(7, 1) };
        let payload = [0xabu8; 32];
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, &payload).expect("build icmp");
        out
    }

    pub(crate) fn swap(&mut self, yaml: &str) {
        let e = engine(yaml);
        self.engine = e.clone();
        self.switch.swap(e);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let name = std::thread::current().name().unwrap_or("test").replace("::", "-");
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/test-pcaps");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}.pcap"));
            if std::fs::write(&path, pcap(&self.frames)).is_ok() {
                eprintln!("frames of this test: {}", path.display());
            }
        }
    }
}

/// A pcap file (Ethernet link type) of the frames, one microsecond apart.
pub(crate) fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        let len = u32::try_from(f.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&u32::try_from(i).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// What came of a frame sent from a VM, with the output bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Delivered to a port, as rewritten.
    Deliver { port: PortId, frame: Vec<u8> },
    /// Answered (ARP).
    Hairpin(Vec<u8>),
    /// Sent on to another host (VXLAN), as rewritten.
    Encap { host: IpAddr, vni: u32, frame: Vec<u8> },
    /// Dropped.
    Drop(DropReason),
}

/// The delivered frame and port, or a panic naming what happened instead.
#[track_caller]
pub(crate) fn delivered(o: Sent) -> (PortId, Vec<u8>) {
    match o {
        Sent::Deliver { port, frame } => (port, frame),
        other => panic!("expected delivery, got {other:?}"),
    }
}

/// Parsed view of an output frame, with its checksums verified.
pub(crate) struct Seen {
    pub(crate) src_mac: [u8; 6],
    pub(crate) dst_mac: [u8; 6],
    pub(crate) src: Ipv4Addr,
    pub(crate) dst: Ipv4Addr,
    pub(crate) sport: u16,
    pub(crate) dport: u16,
}

#[track_caller]
pub(crate) fn inspect(frame: &[u8]) -> Seen {
    let p = SlicedPacket::from_ethernet(frame).expect("a valid frame");
    let Some(NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum");
    let (sport, dport) = match p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).expect("checksum");
            assert_eq!(t.checksum(), want, "TCP checksum");
            (t.source_port(), t.destination_port())
        }
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).expect("checksum");
            assert_eq!(u.checksum(), want, "UDP checksum");
            (u.source_port(), u.destination_port())
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(i.checksum(), i.icmp_type().calc_checksum(i.payload()), "ICMP checksum");
            (0, 0)
        }
        _ => panic!("no transport header"),
    };
    let eth = p.link.and_then(|l| l.to_header()).and_then(|h| h.ethernet2()).expect("ethernet");
    Seen {
        src_mac: eth.source,
        dst_mac: eth.destination,
        src: Ipv4Addr::from(h.source),
        dst: Ipv4Addr::from(h.destination),
        sport,
        dport,
    }
}

/// The id of a VNet of the lab, by name.
pub(crate) fn vnet_id(lab: &Lab, name: &str) -> tessera_model::ResourceId {
    lab.engine.state().vnets.keys().find(|v| v.name() == name).cloned().expect("vnet")
}

pub(crate) fn v4(s: &str) -> Ipv4Addr {
    s.parse().expect("ipv4")
}
