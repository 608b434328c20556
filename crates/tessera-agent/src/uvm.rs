//! Userspace VMs: a smoltcp TCP/IP stack behind a switch port, for unprivileged use and for
//! tests with thousands of VMs. A VM answers ping (smoltcp replies to echo requests for its
//! address), serves a TCP echo and a small HTTP responder on the ports it is told, can ping and
//! open TCP connections itself, and — as an appliance (a NIC with IP forwarding) — forwards
//! packets not addressed to it back to the switch, one hop (TTL − 1) like a router's kernel.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr};
use tessera_dataplane::wire::GATEWAY_MAC;

/// The VM's side of its port: frames in from the switch, frames out to it.
#[derive(Debug, Default)]
pub(crate) struct Wire {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

pub(crate) struct RxToken(Vec<u8>);
pub(crate) struct TxToken<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// What a listening port does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Echoes every byte back.
    Echo,
    /// Answers any request with `200 OK` and the VM's name.
    Http,
}

/// A VM with a userspace TCP/IP stack.
pub struct UserVm {
    name: String,
    mac: [u8; 6],
    address: Ipv4Addr,
    appliance: bool,
    iface: Interface,
    sockets: SocketSet<'static>,
    wire: Wire,
    listeners: Vec<(u16, Service, SocketHandle)>,
    forwarded: u64,
    /// When its stack next has something to do (a frame came, a socket was used, a timer is
    /// due); `None`: nothing until a frame comes or a socket is used.
    due: Option<Instant>,
}

impl std::fmt::Debug for UserVm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserVm").field("name", &self.name).field("address", &self.address).finish_non_exhaustive()
    }
}

fn tcp_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(tcp::SocketBuffer::new(vec![0; 8192]), tcp::SocketBuffer::new(vec![0; 8192]))
}

impl UserVm {
    /// A VM with one address on its subnet and a default route through the gateway.
    pub fn new(
        name: &str,
        mac: [u8; 6],
        address: Ipv4Addr,
        prefix_len: u8,
        gateway: Ipv4Addr,
        appliance: bool,
    ) -> Self {
        let mut wire = Wire::default();
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(config, &mut wire, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(address), prefix_len));
        });
        let _ = iface.routes_mut().add_default_ipv4_route(gateway);
        UserVm {
            name: name.to_string(),
            mac,
            address,
            appliance,
            iface,
            sockets: SocketSet::new(Vec::new()),
            wire,
            listeners: Vec::new(),
            forwarded: 0,
            due: Some(Instant::ZERO),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// Packets it forwarded as an appliance.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// Whether its stack has something to do at `now` (a fabric polls only those VMs).
    pub fn is_due(&self, now: Instant) -> bool {
        self.due.is_some_and(|at| at <= now)
    }

    /// Something changed that the stack must see at its next poll.
    fn touch(&mut self) {
        self.due = Some(Instant::ZERO);
    }

    /// Serves `service` on a TCP port.
    pub fn listen(&mut self, port: u16, service: Service) {
        self.touch();
        let mut s = tcp_socket();
        let _ = s.listen(port);
        let h = self.sockets.add(s);
        self.listeners.push((port, service, h));
    }

    /// A frame from the switch.
    pub fn receive(&mut self, frame: Vec<u8>) {
        self.touch();
        if self.appliance && self.forward(&frame) {
            return;
        }
        self.wire.rx.push_back(frame);
    }

    /// Forwards an IPv4 packet addressed to someone else: TTL − 1, to the gateway.
    fn forward(&mut self, frame: &[u8]) -> bool {
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            return false;
        }
        let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
        if dst == self.address || dst.is_broadcast() || dst.is_multicast() {
            return false;
        }
        let ttl = frame[22];
        if ttl <= 1 {
            return true;
        }
        let mut out = frame.to_vec();
        out[0..6].copy_from_slice(&GATEWAY_MAC);
        out[6..12].copy_from_slice(&self.mac);
        out[22] = ttl - 1;
        // RFC 1624: the checksum after the TTL word drops by 0x0100.
        let sum = u16::from_be_bytes([out[24], out[25]]);
        let folded = u32::from(sum) + 0x0100;
        let sum = u16::try_from((folded & 0xffff) + (folded >> 16)).unwrap_or(0xffff);
        out[24..26].copy_from_slice(&sum.to_be_bytes());
        self.wire.tx.push(out);
        self.forwarded += 1;
        true
    }

    /// Runs the stack at `now`; returns the frames it sends.
    pub fn poll(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.iface.poll(now, &mut self.wire, &mut self.sockets);
        let mut served = false;
        for &(port, service, h) in &self.listeners {
            let s = self.sockets.get_mut::<tcp::Socket<'_>>(h);
            if !s.is_open() {
                let _ = s.listen(port);
                continue;
            }
            if s.can_recv() {
                let mut buf = [0u8; 4096];
                let n = s.recv_slice(&mut buf).unwrap_or(0);
                match service {
                    Service::Echo => {
                        let _ = s.send_slice(&buf[..n]);
                    }
                    Service::Http => {
                        let body = format!("{}\n", self.name);
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.send_slice(reply.as_bytes());
                        s.close();
                    }
                }
                served = true;
            } else if s.state() == tcp::State::CloseWait {
                s.close();
            }
        }
        if served {
            self.iface.poll(now, &mut self.wire, &mut self.sockets);
        }
        self.due = self.iface.poll_at(now, &self.sockets);
        std::mem::take(&mut self.wire.tx)
    }

    /// Starts a ping; `ident` tells the replies apart.
    pub(crate) fn ping_start(&mut self, to: Ipv4Addr, ident: u16) -> SocketHandle {
        self.touch();
        let mut s = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        );
        let _ = s.bind(icmp::Endpoint::Ident(ident));
        let repr = Icmpv4Repr::EchoRequest { ident, seq_no: 1, data: b"tessera" };
        if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(to)) {
            repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &ChecksumCapabilities::default());
        }
        self.sockets.add(s)
    }

    /// Whether the echo reply came back.
    pub(crate) fn ping_done(&mut self, h: SocketHandle) -> bool {
        let s = self.sockets.get_mut::<icmp::Socket<'_>>(h);
        while let Ok((payload, _)) = s.recv() {
            if let Ok(p) = Icmpv4Packet::new_checked(payload)
                && let Ok(Icmpv4Repr::EchoReply { .. }) = Icmpv4Repr::parse(&p, &ChecksumCapabilities::default())
            {
                return true;
            }
        }
        false
    }

    /// Opens a TCP connection.
    pub(crate) fn tcp_connect(&mut self, to: Ipv4Addr, port: u16, local_port: u16) -> SocketHandle {
        self.touch();
        let mut s = tcp_socket();
        let _ = s.connect(self.iface.context(), (IpAddress::Ipv4(to), port), local_port);
        self.sockets.add(s)
    }

    /// Moves a client connection on: sends `data` once it can, collects what arrives. False once
    /// the connection is closed or failed.
    pub(crate) fn tcp_step(&mut self, h: SocketHandle, data: &[u8], sent: &mut bool, received: &mut Vec<u8>) -> bool {
        self.touch();
        let s = self.sockets.get_mut::<tcp::Socket<'_>>(h);
        if !*sent && s.may_send() {
            *sent = s.send_slice(data).is_ok_and(|n| n == data.len());
        }
        let mut buf = [0u8; 4096];
        while s.can_recv() {
            match s.recv_slice(&mut buf) {
                Ok(n) if n > 0 => received.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if s.state() == tcp::State::CloseWait {
            s.close();
        }
        s.is_open()
    }

    /// Forgets a client socket (aborting its connection).
    pub(crate) fn release(&mut self, h: SocketHandle) {
        self.touch();
        if let Some(s) = self.sockets.iter_mut().find(|(k, _)| *k == h).map(|(_, s)| s)
            && let smoltcp::socket::Socket::Tcp(t) = s
        {
            t.abort();
        }
        self.sockets.remove(h);
    }
}
