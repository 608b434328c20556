//! The kernel fast path: the tc programs of `bpf/fastpath.c`, loaded with aya.
//!
//! With it a namespace VM's interface is one end of a veth pair; the other end stays on the
//! host, where `from_vm` looks each frame's flow up in the `FLOWS` map. A hit goes straight into
//! the destination VM with the switch's MAC rewrite (`bpf_redirect_peer`) and is counted in
//! the entry; a miss goes to the port's TAP, so the userspace switch reads exactly what it read
//! before (with the virtio-net header and GSO), and whatever the switch writes to a TAP
//! `from_agent` hands to that port's VM.
//!
//! The switch stays the only place where decisions are made: after it delivered a frame, the
//! forwarding thread offers the flow ([`Flows::offer`]) and only a plain local delivery under
//! the current programs ([`tessera_dataplane::Switch::offload`]) becomes an entry. TCP SYN,
//! FIN and RST always reach the switch (state tracking), and a FIN or RST withdraws both
//! directions. New programs empty the map, so every flow is decided again by the switch on its
//! next frame (lazily, as the switch itself re-checks cached decisions). Each entry counts into
//! a slot of the `COUNTS` array, which outlives the entry: what a slot counted is added to the
//! switch's counters (port and VNet-pair counters, the peering meter's input) whenever counters
//! are read and when its entry goes, and once more a harvest after that — a frame that found
//! the entry just before it was removed is counted too — before the slot is freed.

use std::collections::HashMap as StdHashMap;
use std::net::IpAddr;

use aya::Ebpf;
use aya::maps::{Array, HashMap, MapData};
use aya::programs::tc::SchedClassifierLink;
use aya::programs::{SchedClassifier, TcAttachType};
use tessera_dataplane::counters::Count;
use tessera_dataplane::flow::FlowKey;
use tessera_dataplane::wire::{self, Frame, TCP};
use tessera_dataplane::{PortId, Switch};

/// The compiled programs (empty when build.rs found no clang).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/fastpath.o"));

/// `struct flow_key` of fastpath.c.
type Key = [u8; 44];
/// `struct flow_value` of fastpath.c.
type Value = [u8; 20];
/// `struct flow_count` of fastpath.c: packets, bytes.
type Counts = [u64; 2];
/// The entries of `FLOWS`, and the slots of `COUNTS`.
const CAPACITY: u32 = 262_144;
/// `BPF_NOEXIST`: an entry is never overwritten.
const NO_EXIST: u64 = 1;

/// The programs, shared by every port; the VM side of the agent attaches them.
pub struct Programs {
    ebpf: Ebpf,
    links: HashMap<MapData, u32, u32>,
}

impl std::fmt::Debug for Programs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Programs")
    }
}

/// An entry's counters in `COUNTS`, with what was already added to the switch.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u32,
    /// The host-side veths of the entry's source and destination.
    from: u32,
    to: u32,
    seen: Count,
}

/// The flow map, kept by the forwarding thread.
pub struct Flows {
    map: HashMap<MapData, Key, Value>,
    counts: Array<MapData, Counts>,
    /// The entries in the map: their slots, and the switch's key of each (its activity keeps
    /// the switch's entry alive).
    entries: StdHashMap<Key, (Slot, FlowKey)>,
    /// Slots of removed entries, with the harvest they were removed in: a frame that found the
    /// entry just before may still count into the slot, so it is read (and freed) only once a
    /// later harvest began.
    retiring: Vec<(Slot, u64)>,
    free: Vec<u32>,
    harvests: u64,
    /// The host-side veth of each switch port (None: a port without the fast path).
    veths: Vec<Option<u32>>,
    ports: StdHashMap<u32, PortId>,
}

impl std::fmt::Debug for Flows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flows").field("veths", &self.veths).finish_non_exhaustive()
    }
}

/// Loads the programs and their maps (needs CAP_BPF and CAP_NET_ADMIN).
pub fn load() -> Result<(Programs, Flows), String> {
    if OBJECT.is_empty() {
        return Err("built without clang, so without the eBPF programs".into());
    }
    let mut ebpf = Ebpf::load(OBJECT).map_err(|e| format!("loading the eBPF object: {e}"))?;
    for name in ["from_vm", "from_agent"] {
        let p: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("no program {name}"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        p.load().map_err(|e| format!("verifying {name}: {e}"))?;
    }
    let take = |ebpf: &mut Ebpf, name: &str| ebpf.take_map(name).ok_or_else(|| format!("no map {name}"));
    let links = HashMap::try_from(take(&mut ebpf, "LINKS")?).map_err(|e| e.to_string())?;
    let map = HashMap::try_from(take(&mut ebpf, "FLOWS")?).map_err(|e| e.to_string())?;
    let counts = Array::try_from(take(&mut ebpf, "COUNTS")?).map_err(|e| e.to_string())?;
    Ok((
        Programs { ebpf, links },
        Flows {
            map,
            counts,
            entries: StdHashMap::new(),
            retiring: Vec::new(),
            free: (0..CAPACITY).rev().collect(),
            harvests: 0,
            veths: Vec::new(),
            ports: StdHashMap::new(),
        },
    ))
}

impl Programs {
    /// Joins a port's host-side veth and TAP (interface indexes, in the caller's namespace):
    /// frames from the VM go through `from_vm`, frames the agent writes through `from_agent`.
    /// The links detach when dropped.
    pub fn attach(&mut self, veth: (&str, u32), tap: (&str, u32)) -> Result<Vec<SchedClassifierLink>, String> {
        self.links.insert(veth.1, tap.1, 0).map_err(|e| e.to_string())?;
        self.links.insert(tap.1, veth.1, 0).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for (program, link) in [("from_vm", veth.0), ("from_agent", tap.0)] {
            // Before 6.6 (no TCX) tc programs hang off a clsact qdisc.
            if aya::util::KernelVersion::current().is_ok_and(|v| v < aya::util::KernelVersion::new(6, 6, 0)) {
                let _ = aya::programs::tc::qdisc_add_clsact(link);
            }
            let p: &mut SchedClassifier = self
                .ebpf
                .program_mut(program)
                .ok_or_else(|| format!("no program {program}"))?
                .try_into()
                .map_err(|e| format!("{program}: {e}"))?;
            let id = p.attach(link, TcAttachType::Ingress).map_err(|e| format!("attaching to {link}: {e}"))?;
            out.push(p.take_link(id).map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// Forgets a port's devices.
    pub fn forget(&mut self, veth: u32, tap: u32) {
        let _ = self.links.remove(&veth);
        let _ = self.links.remove(&tap);
    }
}

impl Flows {
    /// The host-side veth of each switch port, in port order; empties the map first (the
    /// ports, or the programs, changed).
    pub fn set_ports(&mut self, switch: Option<&mut Switch>, veths: Vec<Option<u32>>) {
        self.clear(switch);
        self.ports = veths.iter().enumerate().filter_map(|(i, v)| Some(((*v)?, PortId::try_from(i).ok()?))).collect();
        self.veths = veths;
    }

    /// After the switch delivered `frame` from `port`: an entry for its flow when the switch
    /// allows it; a TCP FIN or RST withdraws both directions of its connection.
    pub fn offer(&mut self, switch: &mut Switch, port: PortId, to: PortId, frame: &[u8]) {
        if self.veth(port).is_none() {
            return;
        }
        let Some(Frame::Ip(f)) = wire::parse(frame) else { return };
        let key = FlowKey::of(port, &f);
        if f.proto == TCP && (f.tcp.fin || f.tcp.rst) {
            self.withdraw(switch, &key);
            self.withdraw(switch, &key.reply_at(to));
            return;
        }
        let Some(o) = switch.offload_flow(key) else { return };
        let (Some(key), Some(from), Some(to)) = (self.key(&o.key), self.veth(o.key.port), self.veth(o.to)) else {
            return;
        };
        // An entry that exists stays: its counters keep counting.
        if self.entries.contains_key(&key) {
            return;
        }
        let Some(index) = self.free.pop() else { return };
        let mut value = [0u8; 20];
        value[..4].copy_from_slice(&to.to_ne_bytes());
        value[4..16].copy_from_slice(&o.macs);
        value[16..].copy_from_slice(&index.to_ne_bytes());
        // A free slot reads zero (it was emptied when freed, or never used).
        if self.map.insert(key, value, NO_EXIST).is_ok() {
            self.entries.insert(key, (Slot { index, from, to, seen: Count::default() }, o.key));
        } else {
            self.free.push(index);
        }
    }

    /// Withdraws the entries of flows the switch expired (idle: the kernel carried nothing for
    /// them either, or [`Flows::harvest`] would have kept them alive).
    pub fn expired(&mut self, switch: &mut Switch, keys: &[FlowKey]) {
        for k in keys {
            self.withdraw(switch, k);
        }
    }

    /// Adds what the entries carried since the last time to the switch's counters, and what
    /// removed entries carried until they were gone (their slots are then free again).
    pub fn harvest(&mut self, switch: &mut Switch) {
        self.harvests += 1;
        let mut entries = std::mem::take(&mut self.entries);
        for (slot, flow) in entries.values_mut() {
            if self.account(switch, slot) {
                // Carried by the kernel since the last look: in use, so not idle in the switch.
                switch.keep_alive(flow);
            }
        }
        self.entries = entries;
        let harvests = self.harvests;
        let (done, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.retiring).into_iter().partition(|(_, at)| *at + 1 < harvests);
        self.retiring = waiting;
        for (mut slot, _) in done {
            self.account(switch, &mut slot);
            if self.counts.set(slot.index, [0u64; 2], 0).is_ok() {
                self.free.push(slot.index);
            }
        }
    }

    /// Empties the map (what the entries carried so far added to the switch's counters, when
    /// there is one; the rest at a later harvest).
    pub fn clear(&mut self, mut switch: Option<&mut Switch>) {
        let keys: Vec<Key> = self.entries.keys().copied().collect();
        for k in keys {
            self.remove(switch.as_deref_mut(), &k);
        }
    }

    /// The number of entries in the map.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn withdraw(&mut self, switch: &mut Switch, key: &FlowKey) {
        if let Some(k) = self.key(key) {
            self.remove(Some(switch), &k);
        }
    }

    /// Removes an entry from the map; its slot waits a harvest for frames still counting.
    fn remove(&mut self, switch: Option<&mut Switch>, k: &Key) {
        let Some((mut slot, _)) = self.entries.remove(k) else { return };
        let _ = self.map.remove(k);
        if let Some(s) = switch {
            self.account(s, &mut slot);
        }
        self.retiring.push((slot, self.harvests));
    }

    /// Adds what a slot counted since it was last read to the switch (the ports found by their
    /// veths, so that a renumbering in between changes nothing); true when it counted any.
    fn account(&mut self, switch: &mut Switch, slot: &mut Slot) -> bool {
        let Ok([packets, bytes]) = self.counts.get(&slot.index, 0) else { return false };
        let now = Count { packets, bytes };
        let delta = Count {
            packets: now.packets.saturating_sub(slot.seen.packets),
            bytes: now.bytes.saturating_sub(slot.seen.bytes),
        };
        slot.seen = now;
        let (Some(&from), Some(&to)) = (self.ports.get(&slot.from), self.ports.get(&slot.to)) else { return false };
        if delta.packets == 0 {
            return false;
        }
        switch.account(from, to, delta);
        true
    }

    fn veth(&self, port: PortId) -> Option<u32> {
        self.veths.get(usize::try_from(port).ok()?).copied().flatten()
    }

    /// The map key of a flow at a port, as `from_vm` builds it.
    fn key(&self, f: &FlowKey) -> Option<Key> {
        let mut k = [0u8; 44];
        k[..4].copy_from_slice(&self.veth(f.port)?.to_ne_bytes());
        k[4] = f.proto;
        k[8..10].copy_from_slice(&f.sport.to_be_bytes());
        k[10..12].copy_from_slice(&f.dport.to_be_bytes());
        match (f.src, f.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                k[5] = 4;
                k[12..16].copy_from_slice(&s.octets());
                k[28..32].copy_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                k[5] = 6;
                k[12..28].copy_from_slice(&s.octets());
                k[28..44].copy_from_slice(&d.octets());
            }
            _ => return None,
        }
        Some(k)
    }
}
