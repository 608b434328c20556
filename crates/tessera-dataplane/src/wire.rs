//! Frame parsing (etherparse slices, no copies) into the fields the switch decides on, ARP
//! replies, and in-place header rewrites with incremental checksum updates.

use std::net::{IpAddr, Ipv4Addr};

use etherparse::{ArpEthIpv4Packet, ArpOperation, EtherType, Ethernet2Header, NetSlice, SlicedPacket, TransportSlice};

/// The MAC every address answers ARP with: Azure's virtual gateway MAC.
pub const GATEWAY_MAC: [u8; 6] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc];

/// IP protocol numbers the switch handles.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// ICMP.
pub const ICMP: u8 = 1;
/// ICMPv6.
pub const ICMPV6: u8 = 58;

/// TCP flags the flow table cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// SYN.
    pub syn: bool,
    /// FIN.
    pub fin: bool,
    /// RST.
    pub rst: bool,
    /// ACK.
    pub ack: bool,
}

/// The fields of an IP packet the switch decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFlow {
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (ICMP: the identifier, except in an echo reply).
    pub sport: u16,
    /// Destination port (ICMP: 0, except the identifier in an echo reply).
    pub dport: u16,
    /// TCP flags.
    pub tcp: TcpFlags,
}

/// A parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An ARP request for an IPv4 address.
    ArpRequest {
        /// Sender MAC.
        sender_mac: [u8; 6],
        /// Sender address.
        sender_ip: Ipv4Addr,
        /// The address asked for.
        target_ip: Ipv4Addr,
    },
    /// An IP packet.
    Ip(IpFlow),
    /// Parsed, but carrying an IP protocol the switch does not forward.
    OtherIp,
}

/// Parses an Ethernet II frame.
pub fn parse(frame: &[u8]) -> Option<Frame> {
    if let Some(f) = parse_common(frame) {
        return Some(Frame::Ip(f));
    }
    parse_sliced(frame)
}

/// The common case read directly: IPv4 without options or fragmentation carrying TCP or UDP
/// whose lengths agree. Anything else (and anything doubtful) is `None` and goes to
/// [`parse_sliced`]; the fuzz target checks that both agree whenever this one answers.
pub fn parse_common(frame: &[u8]) -> Option<IpFlow> {
    let b = frame.get(..54).unwrap_or(frame);
    if b.len() < 14 + 20 + 8 || b[12] != 0x08 || b[13] != 0x00 || b[14] != 0x45 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([b[16], b[17]]));
    let flags_offset = u16::from_be_bytes([b[20], b[21]]);
    if total < 28 || total > frame.len() - 14 || flags_offset & 0x3fff != 0 {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(b[26], b[27], b[28], b[29]));
    let dst = IpAddr::V4(Ipv4Addr::new(b[30], b[31], b[32], b[33]));
    let sport = u16::from_be_bytes([b[34], b[35]]);
    let dport = u16::from_be_bytes([b[36], b[37]]);
    match b[23] {
        UDP if usize::from(u16::from_be_bytes([b[38], b[39]])) == total - 20 => {
            Some(IpFlow { proto: UDP, src, dst, sport, dport, tcp: TcpFlags::default() })
        }
        TCP if b.len() >= 54 => {
            let header = usize::from(b[46] >> 4) * 4;
            if header < 20 || 20 + header > total {
                return None;
            }
            let flags = b[47];
            let tcp = TcpFlags {
                syn: flags & 0x02 != 0,
                fin: flags & 0x01 != 0,
                rst: flags & 0x04 != 0,
                ack: flags & 0x10 != 0,
            };
            Some(IpFlow { proto: TCP, src, dst, sport, dport, tcp })
        }
        _ => None,
    }
}

/// Parses any Ethernet II frame with etherparse.
pub fn parse_sliced(frame: &[u8]) -> Option<Frame> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    match p.net? {
        NetSlice::Arp(arp) => {
            let a = arp.to_packet().try_eth_ipv4().ok()?;
            (a.operation == ArpOperation::REQUEST).then_some(Frame::ArpRequest {
                sender_mac: a.sender_mac,
                sender_ip: a.sender_ipv4_addr(),
                target_ip: a.target_ipv4_addr(),
            })
        }
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            l4(IpAddr::V4(h.source_addr()), IpAddr::V4(h.destination_addr()), p.transport)
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            l4(IpAddr::V6(h.source_addr()), IpAddr::V6(h.destination_addr()), p.transport)
        }
    }
}

fn l4(src: IpAddr, dst: IpAddr, t: Option<TransportSlice<'_>>) -> Option<Frame> {
    let f = |proto, sport, dport, tcp| Some(Frame::Ip(IpFlow { proto, src, dst, sport, dport, tcp }));
    match t {
        Some(TransportSlice::Tcp(t)) => f(
            TCP,
            t.source_port(),
            t.destination_port(),
            TcpFlags { syn: t.syn(), fin: t.fin(), rst: t.rst(), ack: t.ack() },
        ),
        Some(TransportSlice::Udp(u)) => f(UDP, u.source_port(), u.destination_port(), TcpFlags::default()),
        Some(TransportSlice::Icmpv4(i)) => {
            let (sport, dport) = icmp_ports(i.type_u8() == 0, i.bytes5to8());
            f(ICMP, sport, dport, TcpFlags::default())
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let (sport, dport) = icmp_ports(i.type_u8() == 129, i.bytes5to8());
            f(ICMPV6, sport, dport, TcpFlags::default())
        }
        _ => Some(Frame::OtherIp),
    }
}

/// The "ports" of an ICMP message: its identifier as the source port of an echo request (and
/// of any other message) and as the destination port of an echo reply, so that a reply's flow
/// is the request's reversed and returns as established traffic (N4).
fn icmp_ports(echo_reply: bool, bytes5to8: [u8; 4]) -> (u16, u16) {
    let id = u16::from_be_bytes([bytes5to8[0], bytes5to8[1]]);
    if echo_reply { (0, id) } else { (id, 0) }
}

/// The ARP reply that the virtual gateway sends for any address (as Azure does).
pub fn arp_reply(request_sender_mac: [u8; 6], sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let eth = Ethernet2Header { source: GATEWAY_MAC, destination: request_sender_mac, ether_type: EtherType::ARP };
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REPLY,
        sender_mac: GATEWAY_MAC,
        sender_ipv4: target_ip.octets(),
        target_mac: request_sender_mac,
        target_ipv4: sender_ip.octets(),
    };
    let mut out = Vec::with_capacity(14 + ArpEthIpv4Packet::LEN);
    out.extend_from_slice(&eth.to_bytes());
    out.extend_from_slice(&arp.to_bytes());
    out
}

/// Sets the Ethernet addresses of a frame.
pub fn set_macs(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    if frame.len() >= 12 {
        frame[0..6].copy_from_slice(&dst);
        frame[6..12].copy_from_slice(&src);
    }
}

/// One's-complement checksum update for a 16-bit field changing from `old` to `new` (RFC 1624).
fn update(sum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!sum) + u32::from(!old) + u32::from(new);
    let s = (s & 0xffff) + (s >> 16);
    let s = (s & 0xffff) + (s >> 16);
    !(u16::try_from(s).unwrap_or(0xffff))
}

fn word(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn put(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Which end of an IPv4 TCP/UDP packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Source address and port.
    Source,
    /// Destination address and port.
    Destination,
}

/// Rewrites one end's address and port of an IPv4 TCP or UDP frame in place, updating the IP
/// and transport checksums incrementally. Returns false (frame untouched) when it is not one.
pub fn rewrite_v4(frame: &mut [u8], end: End, addr: Ipv4Addr, port: u16) -> bool {
    if frame.len() < 14 + 20 || word(frame, 12) != 0x0800 {
        return false;
    }
    let ip = 14;
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    let proto = frame[ip + 9];
    let l4 = ip + ihl;
    let (csum_at, min) = match proto {
        TCP => (16, 20),
        UDP => (6, 8),
        _ => return false,
    };
    if ihl < 20 || frame.len() < l4 + min {
        return false;
    }
    let (addr_at, port_at) = match end {
        End::Source => (ip + 12, l4),
        End::Destination => (ip + 16, l4 + 2),
    };
    let new = addr.octets();
    let mut ip_sum = word(frame, ip + 10);
    let mut l4_sum = word(frame, l4 + csum_at);
    let udp_zero = proto == UDP && l4_sum == 0;
    for i in [0, 2] {
        let (old_w, new_w) = (word(frame, addr_at + i), u16::from_be_bytes([new[i], new[i + 1]]));
        ip_sum = update(ip_sum, old_w, new_w);
        l4_sum = update(l4_sum, old_w, new_w);
        put(frame, addr_at + i, new_w);
    }
    let old_port = word(frame, port_at);
    l4_sum = update(l4_sum, old_port, port);
    put(frame, port_at, port);
    put(frame, ip + 10, ip_sum);
    if !udp_zero {
        put(frame, l4 + csum_at, if proto == UDP && l4_sum == 0 { 0xffff } else { l4_sum });
    }
    true
}
