//! What the virtual gateway answers itself, as Azure's hosts do: DHCP (the NIC's address, the
//! subnet's gateway, DNS servers and routes) and IPv6 neighbour discovery (every address is
//! the gateway's MAC). Replies are whole Ethernet frames sent back on the asking port.

use std::net::Ipv4Addr;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use etherparse::{
    Icmpv6Type, NetSlice, PacketBuilder, SlicedPacket, TransportSlice, icmpv6::NeighborAdvertisementHeader,
};
use ipnet::Ipv4Net;

use crate::wire::GATEWAY_MAC;

/// Azure's platform address (DNS, health probes): the default DNS server.
pub const AZURE_DNS: Ipv4Addr = Ipv4Addr::new(168, 63, 129, 16);
/// Lease time handed out, in seconds (Azure's leases are long and renewed).
pub const LEASE_SECONDS: u32 = 24 * 3600;

/// What a port's DHCP answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The NIC's address.
    pub address: Ipv4Addr,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// DNS servers (the VNet's, else Azure's).
    pub dns: Vec<Ipv4Addr>,
}

impl Lease {
    /// The subnet's gateway: its first host address (Azure reserves .1 for it).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.subnet.network()).wrapping_add(1))
    }
}

/// The answer to a DHCP DISCOVER (OFFER) or REQUEST (ACK, or NAK for another address), or
/// `None` when the frame is not a DHCP request this gateway answers.
pub fn dhcp_reply(frame: &[u8], lease: &Lease) -> Option<Vec<u8>> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(TransportSlice::Udp(udp)) = p.transport else { return None };
    let request = Message::decode(&mut Decoder::new(udp.payload())).ok()?;
    if request.opcode() != Opcode::BootRequest {
        return None;
    }
    let kind = match request.opts().msg_type()? {
        MessageType::Discover => MessageType::Offer,
        MessageType::Request => {
            let asked = match request.opts().get(OptionCode::RequestedIpAddress) {
                Some(DhcpOption::RequestedIpAddress(a)) => *a,
                _ => request.ciaddr(),
            };
            if asked == lease.address { MessageType::Ack } else { MessageType::Nak }
        }
        _ => return None,
    };
    let gateway = lease.gateway();
    let yiaddr = if kind == MessageType::Nak { Ipv4Addr::UNSPECIFIED } else { lease.address };
    let chaddr = request.chaddr();
    let mut reply = Message::new_with_id(
        request.xid(),
        Ipv4Addr::UNSPECIFIED,
        yiaddr,
        gateway,
        Ipv4Addr::UNSPECIFIED,
        &chaddr[..chaddr.len().min(16)],
    );
    reply.set_opcode(Opcode::BootReply).set_flags(request.flags());
    let opts = reply.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    opts.insert(DhcpOption::ServerIdentifier(gateway));
    if kind != MessageType::Nak {
        opts.insert(DhcpOption::SubnetMask(lease.subnet.netmask()));
        opts.insert(DhcpOption::Router(vec![gateway]));
        opts.insert(DhcpOption::DomainNameServer(lease.dns.clone()));
        opts.insert(DhcpOption::AddressLeaseTime(LEASE_SECONDS));
        // RFC 3442: with option 121 clients ignore option 3, so the default route is listed too.
        let platform = Ipv4Net::new(AZURE_DNS, 32).ok()?;
        opts.insert(DhcpOption::ClasslessStaticRoute(vec![(Ipv4Net::default(), gateway), (platform, gateway)]));
    }
    let mut payload = Vec::new();
    reply.encode(&mut Encoder::new(&mut payload)).ok()?;
    let broadcast = request.flags().broadcast() || kind == MessageType::Nak;
    let (dst_mac, dst_ip) = if broadcast {
        ([0xff; 6], Ipv4Addr::BROADCAST)
    } else {
        let mut mac = [0u8; 6];
        mac.copy_from_slice(chaddr.get(..6)?);
        (mac, lease.address)
    };
    let b = PacketBuilder::ethernet2(GATEWAY_MAC, dst_mac).ipv4(gateway.octets(), dst_ip.octets(), 64).udp(67, 68);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).ok()?;
    Some(out)
}

/// Whether an ICMPv6 frame is neighbour or router discovery (answered or dropped by the
/// gateway, never forwarded). Types 133–137.
pub fn is_neighbor_discovery(frame: &[u8]) -> bool {
    let Ok(p) = SlicedPacket::from_ethernet(frame) else { return false };
    match p.transport {
        Some(TransportSlice::Icmpv6(i)) => (133..=137).contains(&i.type_u8()),
        _ => false,
    }
}

/// The neighbour advertisement answering a neighbour solicitation for any address: the
/// gateway's MAC (RFC 4861, router, solicited, override). `None` for other frames, and for
/// duplicate address detection (a solicitation from the unspecified address): the VM's own
/// address is never a duplicate, so the probe goes unanswered and the address becomes usable.
pub fn neighbor_advertisement(frame: &[u8]) -> Option<Vec<u8>> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let sender_mac = p.link.as_ref().and_then(|l| l.to_header()).and_then(|h| h.ethernet2()).map(|e| e.source)?;
    let Some(NetSlice::Ipv6(ip)) = &p.net else { return None };
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else { return None };
    if icmp.icmp_type() != Icmpv6Type::NeighborSolicitation {
        return None;
    }
    let target: [u8; 16] = icmp.payload().get(..16)?.try_into().ok()?;
    let dst = ip.header().source_addr();
    if dst.is_unspecified() {
        return None;
    }
    let na = NeighborAdvertisementHeader { router: true, solicited: true, r#override: true };
    let mut payload = Vec::with_capacity(24);
    payload.extend_from_slice(&target);
    payload.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    payload.extend_from_slice(&GATEWAY_MAC);
    let b = PacketBuilder::ethernet2(GATEWAY_MAC, sender_mac)
        .ipv6(target, dst.octets(), 255)
        .icmpv6(Icmpv6Type::NeighborAdvertisement(na));
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).ok()?;
    Some(out)
}
