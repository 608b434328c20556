//! What the gateway answers itself: DHCP (address, gateway, mask, DNS, routes) and IPv6
//! neighbour discovery, with valid checksums.

use std::net::{Ipv4Addr, Ipv6Addr};

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use etherparse::{Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use tessera_dataplane::DropReason;
use tessera_dataplane::wire::GATEWAY_MAC;

use crate::lab::{Lab, Sent, inspect};

const DNS_VNET: &str = r#"
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], dnsServers: [10.1.0.10, 10.1.0.11], subnets: [{ name: s, prefix: 10.1.2.0/24 }] }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: s, prefix: 10.2.0.0/26 }] }
vms:
  - { name: a-vm, subnet: a/s, ip: 10.1.2.7 }
  - { name: b-vm, subnet: b/s, ip: 10.2.0.5 }
"#;

fn dhcp(lab: &Lab, vm: &str, kind: MessageType, requested: Option<Ipv4Addr>) -> Vec<u8> {
    let mac = lab.mac(vm);
    let mut m = Message::new_with_id(
        0x1234_5678,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &mac,
    );
    m.set_opcode(Opcode::BootRequest).set_flags(Flags::default().set_broadcast());
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(a) = requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    }
    let mut payload = Vec::new();
    m.encode(&mut Encoder::new(&mut payload)).expect("encode");
    let b = PacketBuilder::ethernet2(mac, [0xff; 6]).ipv4([0; 4], [255; 4], 64).udp(68, 67);
    let mut out = Vec::new();
    b.write(&mut out, &payload).expect("frame");
    out
}

fn answer(sent: Sent) -> Message {
    let Sent::Hairpin(frame) = sent else { panic!("expected a DHCP answer, got {sent:?}") };
    let seen = inspect(&frame); // checks the IPv4 and UDP checksums
    assert_eq!((seen.sport, seen.dport), (67, 68));
    assert_eq!(seen.src_mac, GATEWAY_MAC);
    let p = SlicedPacket::from_ethernet(&frame).expect("frame");
    let Some(TransportSlice::Udp(u)) = p.transport else { panic!("not UDP") };
    let m = Message::decode(&mut Decoder::new(u.payload())).expect("a DHCP message");
    assert_eq!(m.opcode(), Opcode::BootReply);
    assert_eq!(m.xid(), 0x1234_5678);
    m
}

#[test]
fn dhcp_offers_and_acknowledges_the_nic_address_with_gateway_dns_and_routes() {
    let mut lab = Lab::new(DNS_VNET);
    let offer = answer(lab.send("a-vm", dhcp(&lab, "a-vm", MessageType::Discover, None)));
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(offer.yiaddr(), Ipv4Addr::new(10, 1, 2, 7));
    let gw = Ipv4Addr::new(10, 1, 2, 1);
    assert_eq!(offer.opts().get(OptionCode::Router), Some(&DhcpOption::Router(vec![gw])));
    assert_eq!(
        offer.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
    );
    assert_eq!(offer.opts().get(OptionCode::ServerIdentifier), Some(&DhcpOption::ServerIdentifier(gw)));
    assert_eq!(
        offer.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 1, 0, 10), Ipv4Addr::new(10, 1, 0, 11)])),
        "the VNet's DNS servers"
    );
    match offer.opts().get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(routes)) => {
            assert!(routes.contains(&("0.0.0.0/0".parse().expect("net"), gw)), "{routes:?}");
        }
        other => panic!("no classless static routes: {other:?}"),
    }
    let ack = answer(lab.send("a-vm", dhcp(&lab, "a-vm", MessageType::Request, Some(Ipv4Addr::new(10, 1, 2, 7)))));
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(ack.yiaddr(), Ipv4Addr::new(10, 1, 2, 7));
    // Asking for someone else's address gets a NAK.
    let nak = answer(lab.send("a-vm", dhcp(&lab, "a-vm", MessageType::Request, Some(Ipv4Addr::new(10, 1, 2, 99)))));
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    // Without VNet DNS servers, Azure's resolver; the mask follows the subnet (/26).
    let other = answer(lab.send("b-vm", dhcp(&lab, "b-vm", MessageType::Discover, None)));
    assert_eq!(other.yiaddr(), Ipv4Addr::new(10, 2, 0, 5));
    assert_eq!(
        other.opts().get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![Ipv4Addr::new(168, 63, 129, 16)]))
    );
    assert_eq!(
        other.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 192)))
    );
    // A DHCP message that is not a request the gateway answers is dropped, never forwarded.
    assert_eq!(
        lab.send("a-vm", dhcp(&lab, "a-vm", MessageType::Release, None)),
        Sent::Drop(DropReason::UnsupportedProtocol)
    );
}

#[test]
fn neighbor_solicitations_are_answered_with_the_gateway_mac() {
    let mut lab = Lab::new(DNS_VNET);
    let mac = lab.mac("a-vm");
    let me: Ipv6Addr = "fe80::2".parse().expect("v6");
    let target: Ipv6Addr = "fe80::1".parse().expect("v6");
    let mut payload = target.octets().to_vec();
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(&mac);
    let b = PacketBuilder::ethernet2(mac, [0x33, 0x33, 0xff, 0, 0, 1])
        .ipv6(me.octets(), "ff02::1:ff00:1".parse::<Ipv6Addr>().expect("v6").octets(), 255)
        .icmpv6(Icmpv6Type::NeighborSolicitation);
    let mut ns = Vec::new();
    b.write(&mut ns, &payload).expect("frame");
    let Sent::Hairpin(na) = lab.send("a-vm", ns) else { panic!("no neighbour advertisement") };
    let p = SlicedPacket::from_ethernet(&na).expect("frame");
    let eth = p.link.as_ref().and_then(|l| l.to_header()).and_then(|h| h.ethernet2()).expect("ethernet");
    assert_eq!((eth.source, eth.destination), (GATEWAY_MAC, mac));
    let Some(NetSlice::Ipv6(ip)) = &p.net else { panic!("not IPv6") };
    assert_eq!((ip.header().source_addr(), ip.header().destination_addr()), (target, me));
    assert_eq!(ip.header().hop_limit(), 255, "RFC 4861: hop limit 255");
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { panic!("not ICMPv6") };
    let Icmpv6Type::NeighborAdvertisement(h) = icmp.icmp_type() else {
        panic!("not an advertisement: {:?}", icmp.icmp_type())
    };
    assert!(h.router && h.solicited && h.r#override);
    let want = icmp.icmp_type().calc_checksum(target.octets(), me.octets(), icmp.payload()).expect("checksum");
    assert_eq!(icmp.checksum(), want, "ICMPv6 checksum");
    assert_eq!(&icmp.payload()[..16], &target.octets());
    assert_eq!(
        &icmp.payload()[16..24],
        &[2, 1, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc],
        "target link-layer address option"
    );
}

/// Duplicate address detection (a solicitation from `::`) is not answered: the VM's own address
/// must not look taken (its kernel would mark it `dadfailed`).
#[test]
fn duplicate_address_detection_is_not_answered() {
    let mut lab = Lab::new(DNS_VNET);
    let mac = lab.mac("a-vm");
    let target: Ipv6Addr = "fe80::20d:3aff:fe00:1".parse().expect("v6");
    let mut payload = target.octets().to_vec();
    payload.extend_from_slice(&[1, 1]);
    payload.extend_from_slice(&mac);
    let b = PacketBuilder::ethernet2(mac, [0x33, 0x33, 0xff, 0, 0, 1])
        .ipv6(Ipv6Addr::UNSPECIFIED.octets(), "ff02::1:ff00:1".parse::<Ipv6Addr>().expect("v6").octets(), 255)
        .icmpv6(Icmpv6Type::NeighborSolicitation);
    let mut ns = Vec::new();
    b.write(&mut ns, &payload).expect("frame");
    assert!(!matches!(lab.send("a-vm", ns), Sent::Hairpin(_)), "a DAD probe must go unanswered");
}
