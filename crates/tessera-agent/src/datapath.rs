//! The forwarding thread: owns the switch, the TAP ports and the underlay socket, and moves
//! frames between them. Frames are read in batches from every ready device (edge-triggered
//! polling, so a busy port cannot starve the others: at most [`BATCH`] frames per turn); a frame
//! keeps its virtio-net header from TAP to TAP, so a 64 KB TSO super-frame crosses the switch as
//! one frame. New programs arrive over a channel and are swapped in between two batches.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tessera_dataplane::overlay::{VXLAN_PORT, decapsulate, vxlan_header};
use tessera_dataplane::switch::{DEFAULT_FLOWS, PREFETCH_BATCH};
use tessera_dataplane::{Direction, Outcome, Switch};
use tessera_engine::Engine;
use tessera_model::ResourceId;

use crate::fastpath::Flows;
use crate::offload;
use crate::tap::{Tap, VNET_HDR_LEN};

/// Frames read from one device before the others get a turn.
pub const BATCH: usize = 64;
const WAKER: Token = Token(0);
const UNDERLAY: Token = Token(1);
const FIRST_PORT: usize = 2;
/// Room for a 64 KB super-frame, its virtio-net header and a VXLAN header.
const BUF: usize = 65_536 + 256;

/// What the agent asks of the forwarding thread.
#[derive(Debug)]
pub enum Command {
    /// New programs: the engine, this host's ports (NIC and TAP), and where other hosts' NICs are.
    Update {
        /// The engine built from the feed.
        engine: Arc<Engine>,
        /// Local ports in order.
        ports: Vec<PortDevice>,
        /// NICs of other hosts and those hosts' underlay addresses.
        remotes: Vec<(ResourceId, IpAddr)>,
    },
    /// A snapshot of the counters, sent back on the channel.
    Counters(Sender<Snapshot>),
    /// Stop forwarding.
    Stop,
}

/// A local port's devices.
#[derive(Debug, Clone)]
pub struct PortDevice {
    /// The NIC.
    pub nic: ResourceId,
    /// The TAP the switch reads and writes.
    pub tap: Arc<Tap>,
    /// The host end of the VM's veth pair when the kernel fast path carries its flows.
    pub veth: Option<u32>,
}

/// Counters read from the switch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (source VNet, destination VNet, direction, bytes, packets), the peering meter's input.
    pub vnet_pairs: Vec<(ResourceId, ResourceId, String, u64, u64)>,
    /// Drops by reason.
    pub drops: Vec<(String, u64)>,
    /// The switch's program generation.
    pub generation: u64,
    /// Packets the switch decided from its flow table, or carried by the kernel fast path.
    pub fast_path: u64,
    /// Packets decided by the engine (new flows, changed programs).
    pub slow_path: u64,
    /// Flows the kernel fast path carries now.
    pub offloaded: usize,
}

impl Snapshot {
    /// As JSON (the agent's counters file).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "generation": self.generation,
            "fastPath": self.fast_path,
            "slowPath": self.slow_path,
            "offloadedFlows": self.offloaded,
            "drops": self.drops.iter().map(|(r, n)| serde_json::json!({"reason": r, "packets": n})).collect::<Vec<_>>(),
            "vnetPairs": self.vnet_pairs.iter().map(|(a, b, d, bytes, packets)| serde_json::json!({
                "source": a.as_str(), "destination": b.as_str(), "direction": d, "bytes": bytes, "packets": packets,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Reads the counters of a running forwarding thread (from any thread).
#[derive(Debug, Clone)]
pub struct Probe {
    tx: Sender<Command>,
    waker: Arc<Waker>,
}

impl Probe {
    /// The switch's counters now; None once the thread stopped.
    pub fn counters(&self) -> Option<Snapshot> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send(Command::Counters(tx)).ok()?;
        let _ = self.waker.wake();
        rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
    }
}

/// A handle on the forwarding thread.
#[derive(Debug)]
pub struct Handle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Handle {
    /// Sends a command and wakes the thread.
    pub fn send(&self, c: Command) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// The switch's counters now.
    pub fn counters(&self) -> Option<Snapshot> {
        self.probe().counters()
    }

    /// A counters reader for another thread.
    pub fn probe(&self) -> Probe {
        Probe { tx: self.tx.clone(), waker: self.waker.clone() }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the forwarding thread; `underlay` is this host's VXLAN socket, if it has peers;
/// `fast` the kernel fast path's flow map, if it runs.
pub fn start(underlay: Option<UdpSocket>, fast: Option<Flows>) -> std::io::Result<Handle> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(u) = &underlay {
        u.set_nonblocking(true)?;
        use std::os::fd::AsRawFd;
        poll.registry().register(&mut SourceFd(&u.as_raw_fd()), UNDERLAY, Interest::READABLE)?;
    }
    let mut dp = Datapath { poll, rx, switch: None, taps: Vec::new(), underlay, ready: VecDeque::new(), fast };
    let thread = std::thread::Builder::new().name("tessera-datapath".into()).spawn(move || dp.run())?;
    Ok(Handle { tx, waker, thread: Some(thread) })
}

struct Datapath {
    poll: Poll,
    rx: Receiver<Command>,
    switch: Option<Switch>,
    taps: Vec<Arc<Tap>>,
    underlay: Option<UdpSocket>,
    /// Devices with frames left after their batch.
    ready: VecDeque<Token>,
    /// The kernel fast path's flows.
    fast: Option<Flows>,
}

impl Datapath {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        // One buffer per frame of a prefetched group; the underlay uses the first.
        let mut bufs = vec![vec![0u8; BUF]; PREFETCH_BATCH];
        loop {
            let timeout = if self.ready.is_empty() { None } else { Some(std::time::Duration::ZERO) };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                tracing::error!("datapath poll failed: {e}");
                return;
            }
            for ev in events.iter() {
                if ev.token() != WAKER && !self.ready.contains(&ev.token()) {
                    self.ready.push_back(ev.token());
                }
            }
            if !self.commands() {
                return;
            }
            for _ in 0..self.ready.len() {
                let Some(token) = self.ready.pop_front() else { break };
                let more = if token == UNDERLAY {
                    self.underlay_batch(&mut bufs[0])
                } else {
                    self.port_batch(token, &mut bufs)
                };
                if more {
                    self.ready.push_back(token);
                }
            }
        }
    }

    /// Handles pending commands; false on Stop.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Update { engine, ports, remotes }) => self.update(engine, ports, remotes),
                Ok(Command::Counters(tx)) => {
                    let _ = tx.send(self.snapshot());
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn update(&mut self, engine: Arc<Engine>, ports: Vec<PortDevice>, remotes: Vec<(ResourceId, IpAddr)>) {
        let nics: Vec<ResourceId> = ports.iter().map(|p| p.nic.clone()).collect();
        let same_ports = self.switch.as_ref().is_some_and(|s| {
            s.port_count() == nics.len() && nics.iter().enumerate().all(|(i, n)| s.port_of(n) == u32::try_from(i).ok())
        }) && self.taps.iter().zip(&ports).all(|(a, b)| Arc::ptr_eq(a, &b.tap));
        if let Some(f) = self.fast.as_mut() {
            // Every offloaded flow goes back to the switch, to be decided under the new programs.
            f.set_ports(self.switch.as_mut(), ports.iter().map(|p| p.veth).collect());
        }
        if same_ports {
            if let Some(s) = self.switch.as_mut() {
                s.swap(engine);
            }
        } else {
            for (i, t) in self.taps.iter().enumerate() {
                let _ = self.poll.registry().deregister(&mut SourceFd(&t.fd()));
                self.ready.retain(|k| *k != Token(FIRST_PORT + i));
            }
            let mut switch = Switch::new(engine, &nics, DEFAULT_FLOWS);
            self.taps = ports.into_iter().map(|p| p.tap).collect();
            for (i, t) in self.taps.iter().enumerate() {
                if let Err(e) =
                    self.poll.registry().register(&mut SourceFd(&t.fd()), Token(FIRST_PORT + i), Interest::READABLE)
                {
                    tracing::error!("cannot poll {}: {e}", t.name());
                }
                // Frames may already wait.
                self.ready.push_back(Token(FIRST_PORT + i));
            }
            for (nic, host) in &remotes {
                switch.place_remote(nic.clone(), *host);
            }
            self.switch = Some(switch);
            return;
        }
        if let Some(s) = self.switch.as_mut() {
            for (nic, host) in remotes {
                s.place_remote(nic, host);
            }
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let Some(s) = self.switch.as_mut() else { return Snapshot::default() };
        if let Some(f) = self.fast.as_mut() {
            f.harvest(s);
        }
        let c = s.counters();
        Snapshot {
            vnet_pairs: c
                .vnet_pairs()
                .into_iter()
                .map(|(a, b, d, n)| (a, b, format!("{d:?}"), n.bytes, n.packets))
                .collect(),
            drops: tessera_dataplane::DropReason::ALL
                .iter()
                .map(|r| (format!("{r:?}"), c.dropped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            generation: s.generation(),
            fast_path: c.fast_path,
            slow_path: c.slow_path,
            offloaded: self.fast.as_ref().map_or(0, Flows::len),
        }
    }

    /// Reads up to a batch from a TAP port; true when frames may remain. Frames are taken in
    /// groups of [`PREFETCH_BATCH`]: the switch loads a group's flow entries together, then
    /// processes its frames.
    fn port_batch(&mut self, token: Token, bufs: &mut [Vec<u8>]) -> bool {
        let index = token.0 - FIRST_PORT;
        let Some(tap) = self.taps.get(index).cloned() else { return false };
        let port = u32::try_from(index).unwrap_or(u32::MAX);
        let mut lens = [0usize; PREFETCH_BATCH];
        for _ in 0..BATCH / PREFETCH_BATCH {
            let mut n = 0;
            let mut more = true;
            for _ in 0..PREFETCH_BATCH.min(bufs.len()) {
                match tap.recv(&mut bufs[n]) {
                    Ok(len) if len > VNET_HDR_LEN => {
                        lens[n] = len;
                        n += 1;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::WouldBlock {
                            tracing::warn!("read from {}: {e}", tap.name());
                        }
                        more = false;
                        break;
                    }
                }
            }
            let Some(switch) = self.switch.as_ref() else { return false };
            switch.prefetch(port, bufs.iter().zip(&lens[..n]).map(|(b, len)| &b[VNET_HDR_LEN..*len]));
            for (buf, len) in bufs.iter_mut().zip(&lens[..n]) {
                self.forward(&tap, port, &mut buf[..*len]);
            }
            if !more {
                return false;
            }
        }
        true
    }

    /// Processes one frame (with its virtio-net header) read from `port`'s TAP and sends it on.
    fn forward(&mut self, tap: &Tap, port: u32, buf: &mut [u8]) {
        let Some(switch) = self.switch.as_mut() else { return };
        let (hdr, frame) = buf.split_at_mut(VNET_HDR_LEN);
        let partial = offload::PartialSum::take(hdr, frame);
        let outcome = switch.process(port, Direction::Outbound, frame);
        if let Some(p) = partial {
            p.restore(frame);
        }
        match outcome {
            Outcome::Deliver(to) => {
                if let Some(dest) = self.taps.get(usize::try_from(to).unwrap_or(usize::MAX)) {
                    let _ = dest.send(buf);
                }
                if let Some(f) = self.fast.as_mut() {
                    f.offer(switch, port, to, &buf[VNET_HDR_LEN..]);
                }
            }
            Outcome::Hairpin(reply) => {
                let mut out = vec![0u8; VNET_HDR_LEN + reply.len()];
                out[VNET_HDR_LEN..].copy_from_slice(&reply);
                let _ = tap.send(&out);
            }
            Outcome::Encapsulate { host, vni } => {
                if let Some(u) = &self.underlay {
                    let to = SocketAddr::new(host, VXLAN_PORT);
                    let header = vxlan_header(vni);
                    offload::for_each_segment(hdr, frame, |segment| {
                        let mut out = Vec::with_capacity(8 + segment.len());
                        out.extend_from_slice(&header);
                        out.extend_from_slice(segment);
                        let _ = u.send_to(&out, to);
                    });
                }
            }
            Outcome::Drop(_) => {}
        }
    }

    /// Reads up to a batch of VXLAN datagrams from other hosts; true when more may remain.
    fn underlay_batch(&mut self, buf: &mut [u8]) -> bool {
        let (Some(u), Some(switch)) = (self.underlay.as_ref(), self.switch.as_mut()) else { return false };
        // The datagram lands 2 bytes in, so the inner frame starts right after a 10-byte gap
        // that becomes its (empty) virtio-net header.
        let offset = VNET_HDR_LEN - 8;
        for _ in 0..BATCH {
            let n = match u.recv_from(&mut buf[offset..]) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    tracing::warn!("underlay read: {e}");
                    return false;
                }
            };
            let Some((vni, _)) = decapsulate(&buf[offset..offset + n]) else { continue };
            let end = offset + n;
            buf[..VNET_HDR_LEN].fill(0);
            if let Outcome::Deliver(to) = switch.receive(vni, &mut buf[VNET_HDR_LEN..end])
                && let Some(dest) = self.taps.get(usize::try_from(to).unwrap_or(usize::MAX))
            {
                let _ = dest.send(&buf[..end]);
            }
        }
        true
    }
}
