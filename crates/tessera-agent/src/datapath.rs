//! The forwarding workers. Each worker reads one queue of every TAP port (a TAP has a queue per
//! worker; the kernel keeps a flow on one queue, so a flow stays with one worker and its frames
//! stay in order), the first one also the underlay socket. The switch and the kernel fast path's
//! flows are shared under one lock, taken once per group of frames: a group of up to
//! [`PREFETCH_BATCH`] frames is read, then processed under the lock (its flow entries loaded
//! together first), then written out after the lock is released, so the workers' reads and
//! writes — most of the time a frame costs — run side by side.
//!
//! Frames are read in batches from every ready device (edge-triggered polling, so a busy port
//! cannot starve the others: at most [`BATCH`] frames per turn); a frame keeps its virtio-net
//! header from TAP to TAP, so a 64 KB TSO super-frame crosses the switch as one frame. New
//! programs reach every worker; the first to see them swaps them into the shared switch.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use tessera_dataplane::FlowLimits;
use tessera_dataplane::counters::TrafficDirection;
use tessera_dataplane::overlay::{VXLAN_PORT, decapsulate, vxlan_header};
use tessera_dataplane::switch::PREFETCH_BATCH;
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

/// What the agent asks of the forwarding workers.
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
    /// Stop forwarding.
    Stop,
}

/// A local port's devices.
#[derive(Debug, Clone)]
pub struct PortDevice {
    /// The NIC.
    pub nic: ResourceId,
    /// The TAP the switch reads and writes (a queue per worker).
    pub tap: Arc<Tap>,
    /// The host end of the VM's veth pair when the kernel fast path carries its flows.
    pub veth: Option<u32>,
}

/// Counters read from the switch.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// (source VNet, destination VNet, direction, bytes, packets), the peering meter's input.
    pub vnet_pairs: Vec<(ResourceId, ResourceId, TrafficDirection, u64, u64)>,
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
    /// Frames each worker read from its TAP queues.
    pub worker_frames: Vec<u64>,
    /// Flow entries held now, and removed idle so far.
    pub flows: usize,
    /// Flow entries removed idle so far.
    pub expired: u64,
    /// Per port (NIC): flow entries held, entries evicted for other ports, new flows refused
    /// at its quota.
    pub ports: Vec<PortFlows>,
    /// Programs swapped in (or a new switch built) so far.
    pub swaps: u64,
}

/// A port's share of the flow table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFlows {
    /// The NIC.
    pub nic: ResourceId,
    /// Entries charged to it.
    pub flows: usize,
    /// Its entries evicted to make room for other ports' flows.
    pub evictions: u64,
    /// Its new flows refused because it held its quota.
    pub quota_drops: u64,
}

impl Snapshot {
    /// As JSON (the agent's counters file).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "generation": self.generation,
            "fastPath": self.fast_path,
            "slowPath": self.slow_path,
            "offloadedFlows": self.offloaded,
            "workerFrames": self.worker_frames,
            "flows": self.flows,
            "expiredFlows": self.expired,
            "ports": self.ports.iter().map(|p| serde_json::json!({
                "nic": p.nic.as_str(), "flows": p.flows, "evictions": p.evictions, "quotaDrops": p.quota_drops,
            })).collect::<Vec<_>>(),
            "drops": self.drops.iter().map(|(r, n)| serde_json::json!({"reason": r, "packets": n})).collect::<Vec<_>>(),
            "vnetPairs": self.vnet_pairs.iter().map(|(a, b, d, bytes, packets)| serde_json::json!({
                "source": a.as_str(), "destination": b.as_str(), "direction": format!("{d:?}"), "bytes": bytes, "packets": packets,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The ports in switch order.
type Taps = Arc<Vec<Arc<Tap>>>;

/// What the workers share, under one lock.
struct Shared {
    switch: Option<Switch>,
    /// The TAP of each switch port.
    taps: Taps,
    /// The kernel fast path's flows.
    fast: Option<Flows>,
    /// The last update swapped in (numbered as the handle sends them).
    update: u64,
    /// Frames each worker read from its TAP queues.
    frames: Vec<u64>,
    /// The origin of the switch's clock.
    epoch: std::time::Instant,
    /// The flow table of a new switch.
    limits: FlowLimits,
    /// What switches replaced since the start counted per VNet pair, so that the counts stay
    /// running totals of the agent's run (the peering meter's input).
    retired: BTreeMap<(ResourceId, ResourceId, TrafficDirection), (u64, u64)>,
    /// Programs swapped in (or a new switch built) so far.
    swaps: u64,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A worker that panicked left nothing half-done that the next frame cannot redo.
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether two port lists hold the same TAPs in the same order.
fn same_taps(a: &[Arc<Tap>], b: &[Arc<Tap>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

impl Shared {
    /// Swaps in update `seq` unless a worker already did.
    fn apply(&mut self, seq: u64, update: &Update) {
        if self.update >= seq {
            return;
        }
        self.update = seq;
        self.swaps += 1;
        let nics: Vec<ResourceId> = update.ports.iter().map(|p| p.nic.clone()).collect();
        let same_ports = self.switch.as_ref().is_some_and(|s| {
            s.port_count() == nics.len() && nics.iter().enumerate().all(|(i, n)| s.port_of(n) == u32::try_from(i).ok())
        }) && same_taps(&self.taps, &update.taps);
        if let Some(f) = self.fast.as_mut() {
            // Every offloaded flow goes back to the switch, to be decided under the new programs.
            f.set_ports(self.switch.as_mut(), update.ports.iter().map(|p| p.veth).collect());
        }
        match self.switch.as_mut() {
            Some(s) if same_ports => {
                s.swap(update.engine.clone());
                tracing::info!(generation = s.generation(), ports = nics.len(), "new programs swapped in");
            }
            _ => {
                if let Some(old) = self.switch.as_ref() {
                    for (a, b, d, n) in old.counters().vnet_pairs() {
                        let e = self.retired.entry((a, b, d)).or_default();
                        *e = (e.0 + n.bytes, e.1 + n.packets);
                    }
                }
                self.switch = Some(Switch::new(update.engine.clone(), &nics, self.limits));
                self.taps = update.taps.clone();
                tracing::info!(ports = nics.len(), "a new switch for the host's ports");
            }
        }
        if let Some(s) = self.switch.as_mut() {
            s.place_remotes(update.remotes.iter().map(|(nic, host)| (nic.clone(), *host)));
        }
    }

    /// Tells the switch the time; the flows it expires leave the kernel fast path too.
    fn advance(&mut self) {
        let Some(s) = self.switch.as_mut() else { return };
        let expired = s.advance(self.epoch.elapsed());
        if let (Some(f), false) = (self.fast.as_mut(), expired.is_empty()) {
            f.expired(s, &expired);
        }
    }

    fn snapshot(&mut self) -> Snapshot {
        let worker_frames = self.frames.clone();
        if let (Some(s), Some(f)) = (self.switch.as_mut(), self.fast.as_mut()) {
            // What the kernel carried keeps its flows alive before the switch ages them.
            f.harvest(s);
        }
        self.advance();
        let Some(s) = self.switch.as_mut() else { return Snapshot { worker_frames, ..Snapshot::default() } };
        let c = s.counters();
        Snapshot {
            vnet_pairs: {
                let mut all = self.retired.clone();
                for (a, b, d, n) in c.vnet_pairs() {
                    let e = all.entry((a, b, d)).or_default();
                    *e = (e.0 + n.bytes, e.1 + n.packets);
                }
                all.into_iter().map(|((a, b, d), (bytes, packets))| (a, b, d, bytes, packets)).collect()
            },
            drops: tessera_dataplane::DropReason::ALL
                .iter()
                .map(|r| (format!("{r:?}"), c.dropped(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            generation: s.generation(),
            swaps: self.swaps,
            fast_path: c.fast_path,
            slow_path: c.slow_path,
            offloaded: self.fast.as_ref().map_or(0, Flows::len),
            worker_frames,
            flows: s.flow_count(),
            expired: c.expired,
            ports: (0..s.port_count())
                .filter_map(|i| {
                    let id = u32::try_from(i).ok()?;
                    Some(PortFlows {
                        nic: s.port(id)?.nic.clone(),
                        flows: s.flows_of(id),
                        evictions: c.evictions(id),
                        quota_drops: c.quota_drops(id),
                    })
                })
                .collect(),
        }
    }
}

/// An update as every worker receives it.
struct Update {
    engine: Arc<Engine>,
    ports: Vec<PortDevice>,
    taps: Taps,
    remotes: Vec<(ResourceId, IpAddr)>,
}

#[derive(Clone)]
enum Message {
    Update(u64, Arc<Update>),
    Stop,
}

/// Reads the counters of running workers (from any thread).
#[derive(Clone)]
pub struct Probe {
    shared: Arc<Mutex<Shared>>,
    stopped: Arc<AtomicBool>,
}

impl Probe {
    /// The switch's counters now; None once the workers stopped.
    pub fn counters(&self) -> Option<Snapshot> {
        if self.stopped.load(Ordering::Acquire) {
            return None;
        }
        Some(lock(&self.shared).snapshot())
    }
}

struct Worker {
    tx: Sender<Message>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A handle on the forwarding workers.
pub struct Handle {
    workers: Vec<Worker>,
    probe: Probe,
    next_update: AtomicU64,
}

impl Handle {
    /// Sends a command to every worker and wakes them.
    pub fn send(&self, c: Command) {
        let message = match c {
            Command::Update { engine, ports, remotes } => {
                let taps = Arc::new(ports.iter().map(|p| p.tap.clone()).collect());
                let seq = self.next_update.fetch_add(1, Ordering::Relaxed) + 1;
                Message::Update(seq, Arc::new(Update { engine, ports, taps, remotes }))
            }
            Command::Stop => Message::Stop,
        };
        // Every worker has the update queued before any is woken: a worker that finds the
        // switch on newer ports than its own finds those ports in its queue.
        for w in &self.workers {
            let _ = w.tx.send(message.clone());
        }
        for w in &self.workers {
            let _ = w.waker.wake();
        }
    }

    /// The switch's counters now.
    pub fn counters(&self) -> Option<Snapshot> {
        self.probe.counters()
    }

    /// A counters reader for another thread.
    pub fn probe(&self) -> Probe {
        self.probe.clone()
    }

    /// Stops the workers and waits for them.
    pub fn stop(mut self) {
        self.send(Command::Stop);
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        self.probe.stopped.store(true, Ordering::Release);
    }
}

/// Starts `workers` forwarding workers (at least one); `underlay` is this host's VXLAN socket,
/// if it has peers; `fast` the kernel fast path's flow map, if it runs. Each TAP needs a queue
/// per worker.
pub fn start(
    workers: usize,
    underlay: Option<UdpSocket>,
    fast: Option<Flows>,
    limits: FlowLimits,
) -> std::io::Result<Handle> {
    let count = workers.max(1);
    let shared = Arc::new(Mutex::new(Shared {
        switch: None,
        taps: Arc::new(Vec::new()),
        fast,
        update: 0,
        frames: vec![0; count],
        epoch: std::time::Instant::now(),
        limits,
        retired: BTreeMap::new(),
        swaps: 0,
    }));
    if let Some(u) = &underlay {
        u.set_nonblocking(true)?;
    }
    let underlay = underlay.map(Arc::new);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = std::sync::mpsc::channel();
        if let (0, Some(u)) = (index, &underlay) {
            use std::os::fd::AsRawFd;
            poll.registry().register(&mut SourceFd(&u.as_raw_fd()), UNDERLAY, Interest::READABLE)?;
        }
        let mut dp = Datapath {
            queue: index,
            poll,
            rx,
            shared: shared.clone(),
            taps: Arc::new(Vec::new()),
            underlay: underlay.clone(),
            ready: VecDeque::new(),
            outs: Vec::new(),
        };
        let thread = std::thread::Builder::new().name(format!("tessera-datapath-{index}")).spawn(move || dp.run())?;
        handles.push(Worker { tx, waker, thread: Some(thread) });
    }
    let probe = Probe { shared, stopped: Arc::new(AtomicBool::new(false)) };
    Ok(Handle { workers: handles, probe, next_update: AtomicU64::new(0) })
}

/// Where a processed frame goes once the lock is released.
enum Out {
    /// Frame `k` of the group to this TAP.
    Tap(Arc<Tap>, usize),
    /// An answer (ARP, DHCP, neighbour discovery) back to the port.
    Hairpin(Vec<u8>),
    /// Frame `k` of the group to another host.
    Vxlan(IpAddr, u32, usize),
}

/// One worker.
struct Datapath {
    /// Its queue of every TAP.
    queue: usize,
    poll: Poll,
    rx: Receiver<Message>,
    shared: Arc<Mutex<Shared>>,
    /// The ports it polls (its queue of each).
    taps: Taps,
    underlay: Option<Arc<UdpSocket>>,
    /// Devices with frames left after their batch.
    ready: VecDeque<Token>,
    /// The current group's sends (kept to reuse its memory).
    outs: Vec<Out>,
}

impl Datapath {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        // One buffer per frame of a group; the underlay uses the first.
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
            if !self.messages() {
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

    /// Handles pending messages; false on Stop.
    fn messages(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Message::Update(seq, update)) => {
                    lock(&self.shared).apply(seq, &update);
                    self.follow(&update.taps);
                }
                Ok(Message::Stop) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Polls this worker's queue of each of `taps`.
    fn follow(&mut self, taps: &Taps) {
        if same_taps(&self.taps, taps) {
            return;
        }
        for (i, t) in self.taps.iter().enumerate() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&t.fd(self.queue)));
            self.ready.retain(|k| *k != Token(FIRST_PORT + i));
        }
        self.taps = taps.clone();
        for (i, t) in self.taps.iter().enumerate() {
            let fd = t.fd(self.queue);
            if let Err(e) = self.poll.registry().register(&mut SourceFd(&fd), Token(FIRST_PORT + i), Interest::READABLE)
            {
                tracing::error!("cannot poll {}: {e}", t.name());
            }
            // Frames may already wait.
            self.ready.push_back(Token(FIRST_PORT + i));
        }
    }

    /// Reads up to a batch from a TAP queue, a group at a time; true when frames may remain.
    fn port_batch(&mut self, token: Token, bufs: &mut [Vec<u8>]) -> bool {
        let index = token.0 - FIRST_PORT;
        let Some(tap) = self.taps.get(index).cloned() else { return false };
        let mut lens = [0usize; PREFETCH_BATCH];
        for _ in 0..BATCH / PREFETCH_BATCH {
            let mut n = 0;
            let mut more = true;
            for _ in 0..PREFETCH_BATCH.min(bufs.len()) {
                match tap.recv(self.queue, &mut bufs[n]) {
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
            if n > 0 {
                self.group(&tap, index, bufs, &lens[..n]);
            }
            if !more {
                return false;
            }
        }
        true
    }

    /// Processes a group of frames (with their virtio-net headers) read from the TAP of port
    /// `index` and sends them on.
    fn group(&mut self, tap: &Arc<Tap>, index: usize, bufs: &mut [Vec<u8>], lens: &[usize]) {
        let mut outs = std::mem::take(&mut self.outs);
        {
            let mut guard = lock(&self.shared);
            guard.advance();
            let s = &mut *guard;
            if let Some(n) = s.frames.get_mut(self.queue) {
                *n += lens.len() as u64;
            }
            // The port's place in the switch: this worker may not have seen the latest ports yet.
            let port = if Arc::ptr_eq(&self.taps, &s.taps) {
                Some(index)
            } else {
                s.taps.iter().position(|t| Arc::ptr_eq(t, tap))
            };
            let (Some(port), Some(switch)) = (port.and_then(|p| u32::try_from(p).ok()), s.switch.as_mut()) else {
                return;
            };
            switch.prefetch(port, bufs.iter().zip(lens).map(|(b, len)| &b[VNET_HDR_LEN..*len]));
            for (k, (buf, len)) in bufs.iter_mut().zip(lens).enumerate() {
                let (hdr, frame) = buf[..*len].split_at_mut(VNET_HDR_LEN);
                let partial = offload::PartialSum::take(hdr, frame);
                let outcome = switch.process(port, Direction::Outbound, frame);
                if let Some(p) = partial {
                    p.restore(frame);
                }
                match outcome {
                    Outcome::Deliver(to) => {
                        if let Some(dest) = s.taps.get(usize::try_from(to).unwrap_or(usize::MAX)) {
                            outs.push(Out::Tap(dest.clone(), k));
                        }
                        if let Some(f) = s.fast.as_mut() {
                            f.offer(switch, port, to, frame);
                        }
                    }
                    Outcome::Hairpin(reply) => outs.push(Out::Hairpin(reply)),
                    Outcome::Encapsulate { host, vni } => outs.push(Out::Vxlan(host, vni, k)),
                    Outcome::Drop(_) => {}
                }
            }
        }
        for out in outs.drain(..) {
            match out {
                Out::Tap(dest, k) => {
                    let _ = dest.send(self.queue, &bufs[k][..lens[k]]);
                }
                Out::Hairpin(reply) => {
                    let mut frame = vec![0u8; VNET_HDR_LEN + reply.len()];
                    frame[VNET_HDR_LEN..].copy_from_slice(&reply);
                    let _ = tap.send(self.queue, &frame);
                }
                Out::Vxlan(host, vni, k) => {
                    if let Some(u) = &self.underlay {
                        let to = SocketAddr::new(host, VXLAN_PORT);
                        let header = vxlan_header(vni);
                        let (hdr, frame) = bufs[k][..lens[k]].split_at_mut(VNET_HDR_LEN);
                        offload::for_each_segment(hdr, frame, |segment| {
                            let mut out = Vec::with_capacity(8 + segment.len());
                            out.extend_from_slice(&header);
                            out.extend_from_slice(segment);
                            let _ = u.send_to(&out, to);
                        });
                    }
                }
            }
        }
        self.outs = outs;
    }

    /// Reads up to a batch of VXLAN datagrams from other hosts; true when more may remain.
    fn underlay_batch(&mut self, buf: &mut [u8]) -> bool {
        let Some(u) = self.underlay.clone() else { return false };
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
            let dest = {
                let mut guard = lock(&self.shared);
                let s = &mut *guard;
                match s.switch.as_mut().map(|sw| sw.receive(vni, &mut buf[VNET_HDR_LEN..end])) {
                    Some(Outcome::Deliver(to)) => s.taps.get(usize::try_from(to).unwrap_or(usize::MAX)).cloned(),
                    _ => None,
                }
            };
            if let Some(dest) = dest {
                let _ = dest.send(self.queue, &buf[..end]);
            }
        }
        true
    }
}
