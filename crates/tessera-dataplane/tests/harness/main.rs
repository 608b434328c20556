//! Packet scenarios through the switch, on the examples and small topologies: ARP, ping and
//! TCP across a peering, one link only, NSG deny and stateful return, VNet access off, service
//! chaining with and without forwarded traffic, non-transitivity, Basic and Standard ILBs over
//! global peering, overlapping VNets isolated, and a program swap in the middle of a flow.

mod aging;
mod agreement;
mod drop_reasons;
mod hosts;
mod lab;
mod offload;
mod services;

use lab::{Lab, Sent, delivered, example, inspect, v4};
use tessera_dataplane::DropReason;
use tessera_dataplane::counters::TrafficDirection;
use tessera_dataplane::wire::{self, GATEWAY_MAC};

const TWO_VNETS: &str = r#"
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24, nsg: a-nsg }] }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: s, prefix: 10.2.0.0/24 }] }
nsgs:
  - name: a-nsg
    rules:
      - { name: no-outbound, priority: 100, direction: Outbound, access: Deny }
      - { name: allow-web, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, destinationPorts: "80" }
      - { name: deny-in, priority: 200, direction: Inbound, access: Deny }
vms:
  - { name: a-vm, subnet: a/s, ip: 10.1.0.4 }
  - { name: b-vm, subnet: b/s, ip: 10.2.0.4 }
peerings:
  - { from: a, to: b, reverse: {} }
"#;

#[test]
fn arp_is_answered_with_the_gateway_mac_for_any_address() {
    let mut lab = Lab::new(&example("hub-spoke-nva.yaml"));
    let req = {
        use etherparse::{ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header};
        let eth = Ethernet2Header { source: lab.mac("spoke1-vm"), destination: [0xff; 6], ether_type: EtherType::ARP };
        let arp = ArpEthIpv4Packet {
            operation: ArpOperation::REQUEST,
            sender_mac: lab.mac("spoke1-vm"),
            sender_ipv4: [10, 1, 0, 4],
            target_mac: [0; 6],
            target_ipv4: [10, 1, 0, 1],
        };
        [eth.to_bytes().to_vec(), arp.to_bytes().to_vec()].concat()
    };
    let Sent::Hairpin(reply) = lab.send("spoke1-vm", req) else { panic!("ARP must be answered") };
    assert_eq!(reply, wire::arp_reply(lab.mac("spoke1-vm"), v4("10.1.0.4"), v4("10.1.0.1")));
    assert_eq!(&reply[0..6], &lab.mac("spoke1-vm"));
    assert_eq!(&reply[6..12], &GATEWAY_MAC);
}

#[test]
fn ping_and_tcp_cross_a_peering_with_valid_checksums() {
    let mut lab = Lab::new(&example("hub-spoke-nva.yaml"));
    let hub = lab.ip("hub-vm");
    let (port, frame) = delivered(lab.send("spoke1-vm", lab.ping("spoke1-vm", hub, false)));
    assert_eq!(port, lab.port("hub-vm"));
    let seen = inspect(&frame);
    assert_eq!((seen.src_mac, seen.dst_mac), (GATEWAY_MAC, lab.mac("hub-vm")));
    assert_eq!((seen.src, seen.dst), (lab.ip("spoke1-vm"), hub));
    let (port, _) = delivered(lab.send("hub-vm", lab.ping("hub-vm", lab.ip("spoke1-vm"), true)));
    assert_eq!(port, lab.port("spoke1-vm"));
    let (port, frame) = delivered(lab.send("spoke1-vm", lab.tcp("spoke1-vm", hub, 40000, 22, "S")));
    assert_eq!(port, lab.port("hub-vm"));
    assert_eq!(inspect(&frame).dport, 22);
    // Peering metering: spoke1 -> hub counted on both ends (one ping and one SYN).
    let spoke1 = lab.switch.port(lab.port("spoke1-vm")).expect("port").program.subnet.vnet.clone();
    let hub_vnet = lab.switch.port(lab.port("hub-vm")).expect("port").program.subnet.vnet.clone();
    let c = lab.switch.counters();
    for d in [TrafficDirection::Egress, TrafficDirection::Ingress] {
        let n = c.between(&spoke1, &hub_vnet, d);
        assert_eq!(n.packets, 2, "{d:?}");
        assert!(n.bytes > 2 * 60, "{d:?}");
        assert_eq!(c.between(&hub_vnet, &spoke1, d).packets, 1, "the echo reply");
    }
    assert_eq!(c.received(lab.port("spoke1-vm")).packets, 2);
    assert_eq!(c.delivered(lab.port("hub-vm")).packets, 2);
}

#[test]
fn a_single_link_carries_nothing() {
    let yaml = TWO_VNETS.replace("reverse: {}", "allowForwardedTraffic: false");
    let mut lab = Lab::new(&yaml);
    let b = lab.ip("b-vm");
    assert_eq!(lab.send("b-vm", lab.tcp("b-vm", v4("10.1.0.4"), 40000, 80, "S")), Sent::Drop(DropReason::NoRoute));
    assert_eq!(lab.send("a-vm", lab.ping("a-vm", b, false)), Sent::Drop(DropReason::NsgDeniedOutbound));
    assert_eq!(lab.switch.counters().dropped(DropReason::NoRoute), 1);
}

#[test]
fn nsg_denies_between_peered_vnets_and_replies_are_stateful() {
    let mut lab = Lab::new(TWO_VNETS);
    let (a, b) = (lab.ip("a-vm"), lab.ip("b-vm"));
    // b -> a:22 is denied inbound at a; b -> a:80 is allowed.
    assert_eq!(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 22, "S")), Sent::Drop(DropReason::NsgDeniedInbound));
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40001, 80, "S")));
    // a may not start anything (outbound deny) ...
    assert_eq!(lab.send("a-vm", lab.tcp("a-vm", b, 50000, 80, "S")), Sent::Drop(DropReason::NsgDeniedOutbound));
    // ... but its reply to the allowed connection passes (N4), both ways, until it closes.
    let (port, frame) = delivered(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40001, "SA")));
    assert_eq!(port, lab.port("b-vm"));
    assert_eq!((inspect(&frame).sport, inspect(&frame).dport), (80, 40001));
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40001, 80, "A")));
    delivered(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40001, "A")));
    // A RST ends the connection: the next reply is a new flow again, and denied.
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40001, 80, "R")));
    assert_eq!(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40001, "A")), Sent::Drop(DropReason::NsgDeniedOutbound));
}

#[test]
fn an_echo_reply_returns_through_an_nsg_that_denies_inbound() {
    // a's subnet denies every inbound flow; its own pings still get their replies (N4).
    let yaml =
        TWO_VNETS.replace("      - { name: no-outbound, priority: 100, direction: Outbound, access: Deny }\n", "");
    let mut lab = Lab::new(&yaml);
    let (a, b) = (lab.ip("a-vm"), lab.ip("b-vm"));
    assert_eq!(lab.send("b-vm", lab.ping("b-vm", a, false)), Sent::Drop(DropReason::NsgDeniedInbound));
    let (port, _) = delivered(lab.send("a-vm", lab.ping("a-vm", b, false)));
    assert_eq!(port, lab.port("b-vm"));
    let (port, _) = delivered(lab.send("b-vm", lab.ping("b-vm", a, true)));
    assert_eq!(port, lab.port("a-vm"), "the echo reply is return traffic of a's ping");
}

#[test]
fn fins_in_both_directions_end_a_connection() {
    let mut lab = Lab::new(TWO_VNETS);
    let (a, b) = (lab.ip("a-vm"), lab.ip("b-vm"));
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40002, 80, "S")));
    delivered(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40002, "SA")));
    let before = lab.switch.flow_count();
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40002, 80, "FA")));
    delivered(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40002, "FA")));
    assert_eq!(lab.switch.flow_count(), before - 2);
    assert_eq!(lab.send("a-vm", lab.tcp("a-vm", b, 80, 40002, "A")), Sent::Drop(DropReason::NsgDeniedOutbound));
}

#[test]
fn vnet_access_off_falls_to_the_default_deny_rules() {
    let yaml = r#"
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], subnets: [{ name: s, prefix: 10.1.0.0/24, nsg: open }] }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: s, prefix: 10.2.0.0/24, nsg: open }] }
nsgs: [{ name: open }]
vms:
  - { name: a-vm, subnet: a/s, ip: 10.1.0.4 }
  - { name: b-vm, subnet: b/s, ip: 10.2.0.4 }
peerings:
  - { from: a, to: b, allowVirtualNetworkAccess: false, reverse: { allowVirtualNetworkAccess: false } }
"#;
    let mut lab = Lab::new(yaml);
    let b = lab.ip("b-vm");
    assert_eq!(lab.send("a-vm", lab.tcp("a-vm", b, 40000, 22, "S")), Sent::Drop(DropReason::NsgDeniedOutbound));
}

#[test]
fn service_chaining_through_the_hub_appliance() {
    let mut lab = Lab::new(&example("hub-spoke-nva.yaml"));
    let (s1, s2, nva) = (lab.ip("spoke1-vm"), lab.ip("spoke2-vm"), lab.port("hub-nva"));
    // spoke1 -> spoke2 goes to the appliance first (UDR), with the original destination kept.
    let (port, frame) = delivered(lab.send("spoke1-vm", lab.tcp("spoke1-vm", s2, 40000, 22, "S")));
    assert_eq!(port, nva);
    assert_eq!((inspect(&frame).src, inspect(&frame).dst), (s1, s2));
    // The appliance forwards it (its kernel routes it back out): delivered to spoke2.
    let (port, frame) = delivered(lab.send("hub-nva", lab.tcp_from("hub-nva", s1, s2, 40000, 22, "S")));
    assert_eq!(port, lab.port("spoke2-vm"));
    assert_eq!(inspect(&frame).dst_mac, lab.mac("spoke2-vm"));
    // spoke2's NSG still applies on the way in.
    delivered(lab.send("spoke1-vm", lab.tcp("spoke1-vm", s2, 40001, 3389, "S")));
    assert_eq!(
        lab.send("hub-nva", lab.tcp_from("hub-nva", s1, s2, 40001, 3389, "S")),
        Sent::Drop(DropReason::NsgDeniedInbound)
    );
}

#[test]
fn forwarded_traffic_needs_allow_forwarded_traffic() {
    let yaml = example("hub-spoke-nva.yaml").replace(
        "  - from: hub\n    to: spoke2\n    allowForwardedTraffic: true\n    reverse: { allowForwardedTraffic: true }",
        "  - from: hub\n    to: spoke2\n    allowForwardedTraffic: true\n    reverse: { allowForwardedTraffic: false }",
    );
    assert_ne!(yaml, example("hub-spoke-nva.yaml"), "the example changed; update this test");
    let mut lab = Lab::new(&yaml);
    let (s1, s2) = (lab.ip("spoke1-vm"), lab.ip("spoke2-vm"));
    delivered(lab.send("spoke1-vm", lab.tcp("spoke1-vm", s2, 40000, 22, "S")));
    assert_eq!(
        lab.send("hub-nva", lab.tcp_from("hub-nva", s1, s2, 40000, 22, "S")),
        Sent::Drop(DropReason::ForwardedTrafficNotAllowed)
    );
    // An appliance without IP forwarding may not send others' packets at all.
    let mut lab = Lab::new(&example("hub-spoke-nva.yaml").replace("ipForwarding: true", "ipForwarding: false"));
    assert_eq!(
        lab.send("spoke1-vm", lab.tcp("spoke1-vm", s2, 40000, 22, "S")),
        Sent::Drop(DropReason::ApplianceForwardingDisabled)
    );
    assert_eq!(
        lab.send("hub-nva", lab.tcp_from("hub-nva", s1, s2, 40000, 22, "S")),
        Sent::Drop(DropReason::SpoofedSource)
    );
}

#[test]
fn spoke_to_spoke_is_not_transitive() {
    let mut lab = Lab::new(&example("gateway-transit.yaml"));
    let s3 = lab.ip("spoke3-vm");
    assert_eq!(lab.send("spoke1-vm", lab.tcp("spoke1-vm", s3, 40000, 22, "S")), Sent::Drop(DropReason::NoRoute));
    // On-premises is behind the hub gateway: no gateway port on this switch.
    assert_eq!(
        lab.send("spoke1-vm", lab.tcp("spoke1-vm", v4("192.168.1.1"), 40000, 22, "S")),
        Sent::Drop(DropReason::Gateway)
    );
}

#[test]
fn basic_ilb_is_unreachable_over_global_peering_standard_is_load_balanced() {
    let mut lab = Lab::new(&example("global-peering-ilb.yaml"));
    let west = lab.ip("west-vm");
    assert_eq!(
        lab.send("west-vm", lab.tcp("west-vm", v4("10.10.0.100"), 40000, 80, "S")),
        Sent::Drop(DropReason::BasicLoadBalancerOverGlobalPeering)
    );
    let (port, frame) = delivered(lab.send("west-vm", lab.tcp("west-vm", v4("10.10.0.101"), 40000, 80, "S")));
    assert!(port == lab.port("web1") || port == lab.port("web2"));
    let seen = inspect(&frame);
    let backend_ip = lab.switch.port(port).map(|p| p.program.addresses[0]).expect("port");
    assert_eq!((seen.src, std::net::IpAddr::V4(seen.dst), seen.dport), (west, backend_ip, 80));
    // The backend's reply is translated back to the frontend address.
    let backend = if port == lab.port("web1") { "web1" } else { "web2" };
    let (back, frame) = delivered(lab.send(backend, lab.tcp(backend, west, 80, 40000, "SA")));
    assert_eq!(back, lab.port("west-vm"));
    let seen = inspect(&frame);
    assert_eq!((seen.src, seen.sport, seen.dst), (v4("10.10.0.101"), 80, west));
    // Regionally peered: the Basic frontend works.
    delivered(lab.send("neighbour-vm", lab.tcp("neighbour-vm", v4("10.10.0.100"), 40000, 80, "S")));
}

#[test]
fn overlapping_vnets_that_are_not_peered_stay_isolated() {
    let yaml = r#"
vnets:
  - { name: red, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24 }] }
  - { name: blue, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24 }] }
vms:
  - { name: red-1, subnet: red/s, ip: 10.0.0.4 }
  - { name: blue-1, subnet: blue/s, ip: 10.0.0.4 }
  - { name: blue-2, subnet: blue/s, ip: 10.0.0.5 }
"#;
    let mut lab = Lab::new(yaml);
    // 10.0.0.5 exists only in blue: red-1 cannot reach it.
    assert_eq!(lab.send("red-1", lab.udp("red-1", v4("10.0.0.5"), 5000, 53)), Sent::Drop(DropReason::NoSuchHost));
    // blue-2 -> 10.0.0.4 reaches blue-1, never red-1 (same address, other VNet).
    let (port, _) = delivered(lab.send("blue-2", lab.udp("blue-2", v4("10.0.0.4"), 5000, 53)));
    assert_eq!(port, lab.port("blue-1"));
    assert_ne!(port, lab.port("red-1"));
}

#[test]
fn a_program_swap_keeps_an_established_flow() {
    let mut lab = Lab::new(TWO_VNETS);
    let a = lab.ip("a-vm");
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "S")));
    let generation = lab.switch.generation();
    // An unrelated change: a new rule for another port.
    lab.swap(&TWO_VNETS.replace(
        "      - { name: deny-in, priority: 200",
        "      - { name: allow-dns, priority: 150, direction: Inbound, access: Allow, protocol: Udp, destinationPorts: \"53\" }\n      - { name: deny-in, priority: 200",
    ));
    assert_eq!(lab.switch.generation(), generation + 1);
    let slow = lab.switch.counters().slow_path;
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "A")));
    delivered(lab.send("a-vm", lab.tcp("a-vm", lab.ip("b-vm"), 80, 40000, "A")));
    // Re-validated once under the new generation, then cached again.
    assert_eq!(lab.switch.counters().slow_path, slow + 2);
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "A")));
    assert_eq!(lab.switch.counters().slow_path, slow + 2);
    // A swap that denies the port closes the flow on its next packet.
    lab.swap(&TWO_VNETS.replace("destinationPorts: \"80\"", "destinationPorts: \"8080\""));
    assert_eq!(lab.send("b-vm", lab.tcp("b-vm", a, 40001, 80, "S")), Sent::Drop(DropReason::NsgDeniedInbound));
}

#[test]
fn a_full_flow_table_drops_new_flows_and_counts_them() {
    let mut lab = Lab::with_capacity(TWO_VNETS, 3);
    let a = lab.ip("a-vm");
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "S"))); // 2 entries: flow + reply
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40001, 80, "S"))); // 3rd entry; its reply does not fit
    assert_eq!(lab.send("b-vm", lab.tcp("b-vm", a, 40002, 80, "S")), Sent::Drop(DropReason::FlowTableFull));
    assert!(lab.switch.counters().dropped(DropReason::FlowTableFull) >= 1);
    // Existing flows keep flowing.
    delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "A")));
}

#[test]
fn the_failure_pcap_is_a_valid_capture() {
    let frames = vec![vec![1u8; 60], vec![2u8; 74]];
    let p = lab::pcap(&frames);
    assert_eq!(&p[0..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(u32::from_le_bytes([p[20], p[21], p[22], p[23]]), 1, "link type Ethernet");
    assert_eq!(p.len(), 24 + 16 + 60 + 16 + 74);
    assert_eq!(u32::from_le_bytes([p[24 + 8], p[24 + 9], p[24 + 10], p[24 + 11]]), 60);
}

/// U4 with real frames: a UDR whose next hop is an internal load balancer's frontend (HA ports)
/// hands the packet, destination unchanged, to the NVA behind it.
#[test]
fn a_udr_to_an_ilb_frontend_reaches_the_nva_behind_it() {
    let yaml = r#"
location: westeurope
vnets:
  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: nva, prefix: 10.0.1.0/24 }] }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: spoke1-rt }]
  - { name: spoke2, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
routeTables:
  - name: spoke1-rt
    routes: [{ name: to-spoke2, prefix: 10.2.0.0/16, nextHop: VirtualAppliance, nextHopIp: 10.0.1.100 }]
loadBalancers:
  - name: nva-ilb
    sku: Standard
    frontends: [{ name: fe, subnet: hub/nva, ip: 10.0.1.100 }]
    pools: [nvas]
    rules: [{ name: ha, frontend: fe, pool: nvas, protocol: All, frontendPort: 0, backendPort: 0 }]
vms:
  - { name: nva1, subnet: hub/nva, ip: 10.0.1.4, ipForwarding: true, backendPools: [nva-ilb/nvas] }
  - { name: spoke1-vm, subnet: spoke1/default, ip: 10.1.0.4 }
  - { name: spoke2-vm, subnet: spoke2/default, ip: 10.2.0.4 }
peerings:
  - { from: hub, to: spoke1, reverse: { allowForwardedTraffic: true } }
  - { from: hub, to: spoke2, reverse: { allowForwardedTraffic: true } }
"#;
    let mut lab = Lab::new(yaml);
    let s2 = lab.ip("spoke2-vm");
    let (port, frame) = delivered(lab.send("spoke1-vm", lab.tcp("spoke1-vm", s2, 40000, 443, "S")));
    assert_eq!(port, lab.port("nva1"));
    let seen = inspect(&frame);
    assert_eq!((seen.dst, seen.dport), (s2, 443), "routed, not translated");
}
