//! Two hosts: VXLAN between switches (one VNI per VNet), the receiving host's own inbound NSG
//! check, stateful return across hosts, isolation of overlapping VNets, metering on both sides.

use std::net::IpAddr;

use tessera_dataplane::DropReason;
use tessera_dataplane::counters::TrafficDirection;
use tessera_dataplane::overlay::{decapsulate, vni_of, vxlan_header};
use tessera_dataplane::wire::GATEWAY_MAC;

use crate::lab::{Lab, Sent, engine, inspect, v4, vnet_id};

const PEERED: &str = r#"
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24 }] }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: s, prefix: 10.2.0.0/24 }] }
vms:
  - { name: a-vm, subnet: a/s, ip: 10.1.0.4 }
  - { name: b-vm, subnet: b/s, ip: 10.2.0.4 }
peerings:
  - { from: a, to: b, reverse: {} }
"#;

fn h(n: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, n])
}

/// Wraps and unwraps a frame the way two agents would (UDP payload = VXLAN header + frame).
fn over_the_wire(vni: u32, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut payload = vxlan_header(vni).to_vec();
    payload.extend_from_slice(frame);
    let (got, inner) = decapsulate(&payload).expect("a VXLAN payload");
    (got, inner.to_vec())
}

#[test]
fn peered_vms_on_two_hosts_talk_over_vxlan_and_replies_return() {
    let e = engine(PEERED);
    let mut h1 = Lab::on_host(e.clone(), &["a-vm"], &[("b-vm", h(2))]);
    let mut h2 = Lab::on_host(e, &["b-vm"], &[("a-vm", h(1))]);
    let syn = h1.tcp("a-vm", v4("10.2.0.4"), 40000, 80, "S");
    let Sent::Encap { host, vni, frame } = h1.send("a-vm", syn) else { panic!("not sent to the other host") };
    assert_eq!(host, h(2));
    assert_eq!(vni, vni_of(&vnet_id(&h1, "b")), "the VNI of the destination's VNet");
    let seen = inspect(&frame);
    assert_eq!((seen.src_mac, seen.dst_mac), (GATEWAY_MAC, h2.mac("b-vm")), "rewritten as for a local delivery");
    let (vni, inner) = over_the_wire(vni, &frame);
    let Sent::Deliver { port, frame } = h2.receive(vni, inner) else { panic!("not delivered at the receiving host") };
    assert_eq!(port, h2.port("b-vm"));
    let seen = inspect(&frame);
    assert_eq!((seen.src, seen.dst, seen.dport), (v4("10.1.0.4"), v4("10.2.0.4"), 80));

    // The reply goes back the same way and reaches a-vm.
    let synack = h2.tcp("b-vm", v4("10.1.0.4"), 80, 40000, "SA");
    let Sent::Encap { host, vni, frame } = h2.send("b-vm", synack) else { panic!("the reply did not leave") };
    assert_eq!((host, vni), (h(1), vni_of(&vnet_id(&h2, "a"))));
    let (vni, inner) = over_the_wire(vni, &frame);
    assert!(matches!(h1.receive(vni, inner), Sent::Deliver { port, .. } if port == h1.port("a-vm")));

    // Metering: the sender counts the egress side, the receiver the ingress side.
    let (a, b) = (vnet_id(&h1, "a"), vnet_id(&h1, "b"));
    assert!(h1.switch.counters().between(&a, &b, TrafficDirection::Egress).packets >= 1);
    assert!(h2.switch.counters().between(&a, &b, TrafficDirection::Ingress).packets >= 1);
}

#[test]
fn the_receiving_host_checks_inbound_nsgs_with_its_own_programs() {
    let stale = engine(PEERED);
    let with_nsg = PEERED.replace("{ name: s, prefix: 10.2.0.0/24 }", "{ name: s, prefix: 10.2.0.0/24, nsg: no-web }")
        + "nsgs:\n  - name: no-web\n    rules:\n      - { name: deny-web, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPorts: \"80\" }\n";
    let fresh = engine(&with_nsg);
    let mut h1 = Lab::on_host(stale, &["a-vm"], &[("b-vm", h(2))]);
    let mut h2 = Lab::on_host(fresh, &["b-vm"], &[("a-vm", h(1))]);
    // Host 1 has not received the NSG yet and lets the packet go; host 2 refuses it.
    let syn = h1.tcp("a-vm", v4("10.2.0.4"), 40001, 80, "S");
    let Sent::Encap { vni, frame, .. } = h1.send("a-vm", syn) else { panic!("host 1 should send it on") };
    assert_eq!(h2.receive(vni, frame), Sent::Drop(DropReason::NsgDeniedInbound));
    // Port 22 is not denied: delivered.
    let ssh = h1.tcp("a-vm", v4("10.2.0.4"), 40002, 22, "S");
    let Sent::Encap { vni, frame, .. } = h1.send("a-vm", ssh) else { panic!("host 1 should send it on") };
    assert!(matches!(h2.receive(vni, frame), Sent::Deliver { .. }));
    // A connection b-vm opened comes back in even on port 80 (N4: stateful).
    let out = h2.tcp("b-vm", v4("10.1.0.4"), 80, 50000, "S");
    assert!(matches!(h2.send("b-vm", out), Sent::Encap { .. }));
    let back = h1.tcp("a-vm", v4("10.2.0.4"), 50000, 80, "SA");
    let Sent::Encap { vni, frame, .. } = h1.send("a-vm", back) else { panic!("the reply should leave host 1") };
    assert!(matches!(h2.receive(vni, frame), Sent::Deliver { .. }), "the reply of b-vm's own connection");
}

#[test]
fn overlapping_vnets_on_two_hosts_stay_apart() {
    let overlap = r#"
vnets:
  - { name: x, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24 }] }
  - { name: y, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24 }] }
vms:
  - { name: x-vm, subnet: x/s, ip: 10.1.0.4 }
  - { name: y-vm, subnet: y/s, ip: 10.1.0.5 }
"#;
    let e = engine(overlap);
    let mut h1 = Lab::on_host(e.clone(), &["x-vm"], &[("y-vm", h(2))]);
    let mut h2 = Lab::on_host(e, &["y-vm"], &[("x-vm", h(1))]);
    // In x, 10.1.0.5 is nobody: the sending host drops it.
    let syn = h1.tcp("x-vm", v4("10.1.0.5"), 40000, 22, "S");
    assert!(matches!(h1.send("x-vm", syn.clone()), Sent::Drop(_)));
    // A frame forged with x's VNI for y-vm's address finds nothing at host 2.
    let x = vni_of(&vnet_id(&h1, "x"));
    assert_ne!(x, vni_of(&vnet_id(&h1, "y")), "each VNet has its own VNI");
    assert_eq!(h2.receive(x, syn), Sent::Drop(DropReason::NoSuchHost));
}

#[test]
fn vxlan_headers_round_trip() {
    for vni in [1u32, 0x00ab_cdef, 0x00ff_ffff] {
        let mut payload = vxlan_header(vni).to_vec();
        payload.extend_from_slice(b"frame");
        assert_eq!(decapsulate(&payload), Some((vni, &b"frame"[..])));
    }
    assert_eq!(decapsulate(&[0u8; 8]), None, "the I flag must be set");
    assert_eq!(decapsulate(&[8u8, 0, 0]), None, "too short");
}

#[test]
fn a_standard_ilb_balances_across_hosts_and_replies_come_from_the_frontend() {
    let e = engine(&crate::lab::example("global-peering-ilb.yaml"));
    let mut h1 = Lab::on_host(e.clone(), &["west-vm"], &[("web1", h(2)), ("web2", h(2))]);
    let mut h2 = Lab::on_host(e, &["web1", "web2"], &[("west-vm", h(1))]);
    let syn = h1.tcp("west-vm", v4("10.10.0.101"), 41000, 80, "S");
    let Sent::Encap { host, vni, frame } = h1.send("west-vm", syn) else { panic!("not balanced to the other host") };
    assert_eq!(host, h(2));
    let seen = inspect(&frame); // checksums stay valid after the translation
    let backend = seen.dst;
    assert!(backend == v4("10.10.0.4") || backend == v4("10.10.0.5"), "translated to a backend: {backend}");
    let Sent::Deliver { port, .. } = h2.receive(vni, frame) else { panic!("the backend's host refused it") };
    let web = if backend == v4("10.10.0.4") { "web1" } else { "web2" };
    assert_eq!(port, h2.port(web));
    // The backend answers from its own address; west-vm sees the frontend.
    let reply = h2.tcp(web, v4("10.20.0.4"), 80, 41000, "SA");
    let Sent::Encap { vni, frame, .. } = h2.send(web, reply) else { panic!("the reply did not leave") };
    let Sent::Deliver { frame, .. } = h1.receive(vni, frame) else { panic!("the reply was not delivered") };
    let seen = inspect(&frame);
    assert_eq!((seen.src, seen.sport), (v4("10.10.0.101"), 80), "un-translated back to the frontend");
    // The Basic frontend is unreachable over global peering (LB1), on the sending host already.
    let basic = h1.tcp("west-vm", v4("10.10.0.100"), 41001, 80, "S");
    assert_eq!(h1.send("west-vm", basic), Sent::Drop(DropReason::BasicLoadBalancerOverGlobalPeering));
}

/// A flood from another host is charged to its sender, not to the VM it arrives at: the victim
/// keeps its whole share for its own flows, and the drops are not counted against it.
#[test]
fn a_flood_from_another_host_is_charged_to_its_sender_not_to_the_victim() {
    use tessera_dataplane::FlowLimits;
    use tessera_dataplane::aging::Timeouts;
    let e = engine(PEERED);
    let limits = FlowLimits { capacity: 1000, port_quota: 10, timeouts: Timeouts::default() };
    let mut host = Lab::on_host_with(e.clone(), &["a-vm"], &[("b-vm", h(2))], limits);
    let sender = Lab::on_host(e, &["b-vm"], &[]);
    let vni = vni_of(&vnet_id(&host, "a"));
    let mut refused = 0;
    for port in 0..100u16 {
        let frame = sender.udp("b-vm", v4("10.1.0.4"), 1000 + port, 53);
        match host.receive(vni, frame) {
            Sent::Drop(DropReason::FlowQuotaExceeded) => refused += 1,
            Sent::Deliver { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 95, "the sender's share: five flows and their replies");
    let victim = host.port("a-vm");
    assert_eq!(host.switch.flows_of(victim), 0, "nothing charged to the VM it arrives at");
    assert_eq!(host.switch.counters().quota_drops(victim), 0);
    // The victim opens its own flows as ever.
    for sport in 0..5u16 {
        let syn = host.tcp("a-vm", v4("10.2.0.4"), 40000 + sport, 80, "S");
        assert!(matches!(host.send("a-vm", syn), Sent::Encap { .. }), "flow {sport} of the victim");
    }
    assert_eq!(host.switch.counters().quota_drops(victim), 0);
}
