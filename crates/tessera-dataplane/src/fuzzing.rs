//! Entry points for the fuzzers (`fuzz/`) and for the regression tests that replay every input
//! a fuzzer ever crashed on (`tests/fuzz_regressions.rs`). Each checks the invariants that must
//! hold for any bytes at all, and panics when one does not.

use std::sync::Arc;

use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};

use crate::outcome::{Direction, Outcome, PortId};
use crate::switch::Switch;
use crate::wire::{self, End, Frame};

/// The topology the `process` target runs on: two peered VNets with NSGs, an NVA with IP
/// forwarding behind a UDR, and a Standard ILB (so NAT paths are reached).
pub const TOPOLOGY: &str = r#"
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: default, prefix: 10.0.0.0/24, nsg: hub-nsg }
      - { name: nva, prefix: 10.0.1.0/24 }
  - name: spoke
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: via-nva }]
nsgs:
  - name: hub-nsg
    rules:
      - { name: deny-rdp, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPorts: "3389" }
routeTables:
  - name: via-nva
    routes: [{ name: hub, prefix: 10.0.0.0/24, nextHop: VirtualAppliance, nextHopIp: 10.0.1.4 }]
loadBalancers:
  - name: ilb
    sku: Standard
    frontends: [{ name: fe, subnet: hub/default, ip: 10.0.0.100 }]
    pools: [web]
    probes: [{ name: http, port: 80 }]
    rules: [{ name: http, frontend: fe, pool: web, probe: http, frontendPort: 80, backendPort: 8080 }]
vms:
  - { name: web1, subnet: hub/default, ip: 10.0.0.4, backendPools: [ilb/web] }
  - { name: web2, subnet: hub/default, ip: 10.0.0.5, backendPools: [ilb/web] }
  - { name: nva, subnet: hub/nva, ip: 10.0.1.4, ipForwarding: true }
  - { name: client, subnet: spoke/default, ip: 10.1.0.4 }
peerings:
  - { from: hub, to: spoke, allowForwardedTraffic: true, reverse: { allowForwardedTraffic: true } }
"#;

/// Parses arbitrary bytes; whatever parses as IPv4 must survive every header rewrite with its
/// length unchanged.
pub fn parse(data: &[u8]) {
    // The direct reader of the common case agrees with etherparse whenever it answers.
    if let Some(fast) = wire::parse_common(data) {
        assert_eq!(wire::parse_sliced(data), Some(Frame::Ip(fast)), "the fast parser disagrees with etherparse");
    }
    let parsed = wire::parse(data);
    if let Some(Frame::Ip(f)) = parsed {
        let mut frame = data.to_vec();
        wire::set_macs(&mut frame, wire::GATEWAY_MAC, [2, 0, 0, 0, 0, 1]);
        if f.src.is_ipv4() {
            wire::rewrite_v4(&mut frame, End::Destination, [10, 9, 8, 7].into(), 4242);
            wire::rewrite_v4(&mut frame, End::Source, [10, 9, 8, 6].into(), 4243);
        }
        assert_eq!(frame.len(), data.len(), "a rewrite changed the frame's length");
        // Rewriting twice back to the original addresses gives the original flow again.
        if let (Some(Frame::Ip(before)), std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst)) =
            (wire::parse(data), f.src, f.dst)
        {
            wire::rewrite_v4(&mut frame, End::Destination, dst, before.dport);
            wire::rewrite_v4(&mut frame, End::Source, src, before.sport);
            if let Some(Frame::Ip(after)) = wire::parse(&frame) {
                assert_eq!(
                    (after.src, after.dst, after.sport, after.dport),
                    (before.src, before.dst, before.sport, before.dport)
                );
            }
        }
    }
}

/// The engine of [`TOPOLOGY`], compiled once per process.
fn engine() -> Arc<Engine> {
    static ENGINE: std::sync::OnceLock<Arc<Engine>> = std::sync::OnceLock::new();
    ENGINE
        .get_or_init(|| {
            Arc::new(load::load(TOPOLOGY, Format::Yaml, Limits::default()).unwrap_or_else(|e| panic!("topology: {e}")))
        })
        .clone()
}

fn data_port_parity(port: PortId) -> u8 {
    u8::from(port % 2 == 1)
}

/// A fresh switch with a port for every NIC of [`TOPOLOGY`] (and an empty flow table).
pub fn switch() -> Switch {
    let engine = engine();
    let nics: Vec<_> = engine.state().nics.keys().cloned().collect();
    Switch::new(engine, &nics, crate::FlowLimits::new(4096))
}

/// Feeds a sequence of frames to the switch. Input: repeated `[port, flags, len_hi, len_lo,
/// frame…]`; flags bit 0 = inbound, bit 1 = swap the programs in first, bit 2 = arriving from
/// another host (VXLAN) with the VNI of the hub (port byte even) or the spoke; frames from a port are
/// prefetched first, as the agent does. Invariants: no panic;
/// a delivery names an existing port and keeps the frame's length; the flow table stays within
/// its capacity.
pub fn process(switch: &mut Switch, mut data: &[u8]) {
    // One more than the ports, so that unknown ports are exercised too.
    let span = PortId::try_from(switch.port_count() + 1).unwrap_or(PortId::MAX);
    while data.len() >= 4 {
        let port = PortId::from(data[0]) % span;
        let flags = data[1];
        let len = usize::from(u16::from_be_bytes([data[2], data[3]])).min(data.len() - 4);
        let mut frame = data[4..4 + len].to_vec();
        data = &data[4 + len..];
        if flags & 2 != 0 {
            let engine =
                load::load(TOPOLOGY, Format::Yaml, Limits::default()).unwrap_or_else(|e| panic!("topology: {e}"));
            switch.swap(Arc::new(engine));
        }
        let direction = if flags & 1 != 0 { Direction::Inbound } else { Direction::Outbound };
        let before = frame.len();
        let outcome = if flags & 4 != 0 {
            let vnets: Vec<_> = engine().state().vnets.keys().cloned().collect();
            let vni = vnets.get(usize::from(data_port_parity(port))).map_or(0, crate::overlay::vni_of);
            switch.receive(vni, &mut frame)
        } else {
            // Loading the flow's entry first must change nothing.
            switch.prefetch(port, [frame.as_slice()]);
            switch.process(port, direction, &mut frame)
        };
        match outcome {
            Outcome::Encapsulate { .. } => assert_eq!(frame.len(), before, "an encapsulated frame changed length"),
            Outcome::Deliver(to) => {
                assert!(switch.port(to).is_some(), "delivered to a port that does not exist: {to}");
                assert_eq!(frame.len(), before, "a delivered frame changed length");
            }
            Outcome::Hairpin(reply) => assert!(!reply.is_empty(), "an empty reply"),
            Outcome::Drop(_) => {}
        }
        assert!(switch.flow_count() <= 4096, "the flow table grew past its capacity");
    }
}
