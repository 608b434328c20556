//! A switch and its userspace VMs in one thread, on a virtual clock: every NIC with a VM gets a
//! [`UserVm`] on its port, frames go VM → switch → VM exactly as between TAP ports, and time
//! only moves when nothing else does (TCP timers run in virtual milliseconds), so a run is
//! deterministic and a test with thousands of VMs takes seconds. No privileges needed.
//!
//! With an underlay socket ([`Fabric::connect`]) the fabric is one host among others: frames
//! for other hosts' ports leave in VXLAN, frames from them arrive through
//! [`Switch::receive`], and the clock is the real one (other hosts do not wait).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

use smoltcp::time::Instant;
use tessera_dataplane::FlowLimits;
use tessera_dataplane::overlay::{VXLAN_PORT, decapsulate, vxlan_header};
use tessera_dataplane::{Direction, Outcome, Switch};
use tessera_engine::Engine;
use tessera_model::ResourceId;

use crate::uvm::{Service, UserVm};

/// How long (virtual) a ping or a connection may take.
const PATIENCE_MS: u64 = 3_000;
/// Echo requests a ping sends (one a second, like `ping -c 3`): a stack drops the packet
/// that made it look up a neighbour, so the first request's reply can be lost.
const PINGS: usize = 3;

/// A switch with a userspace VM on every port.
#[derive(Debug)]
pub struct Fabric {
    switch: Switch,
    vms: Vec<UserVm>,
    now: Instant,
    next_ident: u16,
    /// The VXLAN socket to other hosts, and when the real clock started (None: virtual time).
    underlay: Option<(Arc<UdpSocket>, std::time::Instant)>,
    /// The buffer datagrams from other hosts are read into (made on [`Fabric::connect`]).
    rx: Vec<u8>,
}

impl Fabric {
    /// One userspace VM per NIC that a VM uses, on a switch running the engine's programs.
    pub fn new(engine: Arc<Engine>) -> Fabric {
        let nics: Vec<ResourceId> =
            engine.compiled().nics.values().filter(|p| p.vm.is_some()).map(|p| p.nic.clone()).collect();
        Self::with_nics(engine, nics)
    }

    /// A userspace VM for each of these NICs (those of one host) that a VM uses.
    pub fn with_nics(engine: Arc<Engine>, mut nics: Vec<ResourceId>) -> Fabric {
        nics.retain(|n| engine.program(n).is_some_and(|p| p.vm.is_some()));
        nics.sort_by(|a, b| a.key().cmp(b.key()));
        let mut vms = Vec::new();
        for nic in &nics {
            let Some(p) = engine.program(nic) else { continue };
            let Some(IpAddr::V4(address)) = p.addresses.first().copied() else { continue };
            let Some(prefix) = p.subnet.prefixes.iter().find(|n| n.contains(&IpAddr::V4(address))) else { continue };
            let Some(gateway) = p.subnet.gateway else { continue };
            let name = p.vm.as_ref().map(|v| v.name().to_string()).unwrap_or_default();
            vms.push(UserVm::new(&name, p.mac, address, prefix.prefix_len(), gateway, p.ip_forwarding));
        }
        let switch = Switch::new(engine, &nics[..vms.len().min(nics.len())], FlowLimits::default());
        Fabric { switch, vms, now: Instant::ZERO, next_ident: 1, underlay: None, rx: Vec::new() }
    }

    /// Joins other hosts: VXLAN through `socket` (non-blocking), other hosts' NICs at their
    /// underlay addresses; the clock becomes the real one.
    pub fn connect(&mut self, socket: Arc<UdpSocket>, remotes: &[(ResourceId, IpAddr)]) {
        let _ = socket.set_nonblocking(true);
        self.switch.place_remotes(remotes.iter().map(|(nic, host)| (nic.clone(), *host)));
        self.underlay = Some((socket, std::time::Instant::now()));
        self.rx.resize(65_536, 0);
    }

    /// Moves the clock when nothing moved: a virtual millisecond, or (with other hosts) a real
    /// one.
    fn idle(&mut self) {
        match &self.underlay {
            None => self.now += smoltcp::time::Duration::from_millis(1),
            Some((_, started)) => {
                std::thread::sleep(std::time::Duration::from_micros(500));
                self.now = Instant::from_micros(i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX));
            }
        }
        self.switch.advance(std::time::Duration::from_micros(u64::try_from(self.now.total_micros()).unwrap_or(0)));
    }

    /// One turn of the fabric (for a host that serves other hosts between requests).
    pub fn tick(&mut self) {
        if !self.step() {
            self.idle();
        }
    }

    /// Frames from other hosts, delivered to the local VMs; whether any came.
    fn receive_underlay(&mut self) -> bool {
        let Some((socket, _)) = self.underlay.clone() else { return false };
        let mut moved = false;
        while let Ok((n, _)) = socket.recv_from(&mut self.rx) {
            let Some((vni, _)) = decapsulate(&self.rx[..n]) else { continue };
            let mut frame = self.rx[8..n].to_vec();
            if let Outcome::Deliver(to) = self.switch.receive(vni, &mut frame)
                && let Some(v) = self.vms.get_mut(usize::try_from(to).unwrap_or(usize::MAX))
            {
                v.receive(frame);
            }
            moved = true;
        }
        moved
    }

    /// Swaps in new programs (established connections go on, as on a real host).
    pub fn swap(&mut self, engine: Arc<Engine>) {
        self.switch.swap(engine);
    }

    /// The switch (counters, flows).
    pub fn switch(&self) -> &Switch {
        &self.switch
    }

    /// The number of VMs.
    pub fn len(&self) -> usize {
        self.vms.len()
    }

    /// Whether there are no VMs.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }

    fn index(&self, vm: &str) -> usize {
        self.vms.iter().position(|v| v.name().eq_ignore_ascii_case(vm)).unwrap_or_else(|| panic!("no VM named {vm}"))
    }

    /// A VM by name (panics when there is none: a test's mistake).
    pub fn vm(&mut self, vm: &str) -> &mut UserVm {
        let i = self.index(vm);
        &mut self.vms[i]
    }

    /// Moves every frame that is waiting; true when any moved. Only VMs with something to do
    /// (a frame, a socket used, a timer due) are polled.
    fn step(&mut self) -> bool {
        let mut moved = self.receive_underlay();
        for i in 0..self.vms.len() {
            if !self.vms[i].is_due(self.now) {
                continue;
            }
            let frames = self.vms[i].poll(self.now);
            for mut frame in frames {
                moved = true;
                let port = u32::try_from(i).unwrap_or(u32::MAX);
                match self.switch.process(port, Direction::Outbound, &mut frame) {
                    Outcome::Deliver(to) => {
                        if let Some(v) = self.vms.get_mut(usize::try_from(to).unwrap_or(usize::MAX)) {
                            v.receive(frame);
                        }
                    }
                    Outcome::Hairpin(reply) => self.vms[i].receive(reply),
                    Outcome::Encapsulate { host, vni } => {
                        if let Some((socket, _)) = &self.underlay {
                            let mut out = vxlan_header(vni).to_vec();
                            out.extend_from_slice(&frame);
                            let _ = socket.send_to(&out, SocketAddr::new(host, VXLAN_PORT));
                        }
                    }
                    Outcome::Drop(_) => {}
                }
            }
        }
        moved
    }

    /// Runs until `done` holds or the patience runs out (virtual time); whether it held.
    fn run_until(&mut self, done: impl FnMut(&mut Self) -> bool) -> bool {
        self.run_for(PATIENCE_MS, done)
    }

    /// Runs until `done` holds or `ms` virtual milliseconds pass; whether it held.
    fn run_for(&mut self, ms: u64, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        let deadline = self.now + smoltcp::time::Duration::from_millis(ms);
        while self.now < deadline {
            if done(self) {
                return true;
            }
            if !self.step() {
                self.idle();
            }
        }
        done(self)
    }

    /// Lets every VM settle (ARP, retransmissions) for `ms` virtual milliseconds.
    pub fn settle(&mut self, ms: u64) {
        let until = self.now + smoltcp::time::Duration::from_millis(ms);
        while self.now < until {
            if !self.step() {
                self.idle();
            }
        }
    }

    /// Serves a TCP port on a VM.
    pub fn listen(&mut self, vm: &str, port: u16, service: Service) {
        self.vm(vm).listen(port, service);
    }

    /// Whether `vm` gets an echo reply from `to`.
    pub fn ping(&mut self, vm: &str, to: Ipv4Addr) -> bool {
        self.ping_all(&[(vm.to_string(), to)]) == 1
    }

    /// Pings from many VMs at once; returns how many got their reply.
    pub fn ping_all(&mut self, pairs: &[(String, Ipv4Addr)]) -> usize {
        let from: Vec<usize> = pairs.iter().map(|(vm, _)| self.index(vm)).collect();
        let mut answered = vec![false; pairs.len()];
        for _ in 0..PINGS {
            let mut pending: Vec<(usize, usize, smoltcp::iface::SocketHandle)> = Vec::new();
            for (k, (_, to)) in pairs.iter().enumerate() {
                if !answered[k] {
                    let ident = self.next_ident;
                    self.next_ident = self.next_ident.wrapping_add(1);
                    pending.push((k, from[k], self.vms[from[k]].ping_start(*to, ident)));
                }
            }
            self.run_for(1_000, |f| {
                for (k, i, h) in &pending {
                    if !answered[*k] && f.vms[*i].ping_done(*h) {
                        answered[*k] = true;
                    }
                }
                answered.iter().all(|a| *a)
            });
            for (_, i, h) in pending {
                self.vms[i].release(h);
            }
        }
        answered.iter().filter(|a| **a).count()
    }

    /// Sends `data` over a TCP connection from `vm` and returns what came back before the
    /// connection closed or the patience ran out.
    pub fn tcp(&mut self, vm: &str, to: Ipv4Addr, port: u16, data: &[u8], expect: usize) -> Vec<u8> {
        let i = self.index(vm);
        let local = 49152 + (self.next_ident % 16000);
        self.next_ident = self.next_ident.wrapping_add(1);
        let h = self.vms[i].tcp_connect(to, port, local);
        let (mut sent, mut received) = (false, Vec::new());
        self.run_until(|f| !f.vms[i].tcp_step(h, data, &mut sent, &mut received) || received.len() >= expect);
        self.vms[i].release(h);
        self.settle(5);
        received
    }

    /// Whether a TCP echo from `vm` to `to:port` comes back whole.
    pub fn echo(&mut self, vm: &str, to: Ipv4Addr, port: u16) -> bool {
        self.tcp(vm, to, port, b"hello", 5) == b"hello"
    }

    /// An HTTP GET from `vm`; the response, if any.
    pub fn http_get(&mut self, vm: &str, to: Ipv4Addr, port: u16) -> Option<String> {
        let req = format!("GET / HTTP/1.1\r\nHost: {to}\r\n\r\n");
        let got = self.tcp(vm, to, port, req.as_bytes(), usize::MAX);
        (!got.is_empty()).then(|| String::from_utf8_lossy(&got).to_string())
    }
}
