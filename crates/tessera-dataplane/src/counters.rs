//! Counters: per port, per drop reason, and per (source VNet, destination VNet, direction) in
//! bytes and packets — the input to peering metering. Updating one never allocates.

use hashbrown::HashMap;

use tessera_model::ResourceId;

use crate::outcome::{DropReason, PortId};

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += u64::try_from(bytes).unwrap_or(u64::MAX);
    }

    fn add_many(&mut self, n: Count) {
        self.packets += n.packets;
        self.bytes += n.bytes;
    }
}

/// Which side of a VNet pair a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficDirection {
    /// Leaving the source VNet.
    Egress,
    /// Entering the destination VNet.
    Ingress,
}

/// A VNet's index in the switch's counters.
pub type VnetIndex = u32;

/// Every counter of a switch.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    port_rx: Vec<Count>,
    port_tx: Vec<Count>,
    drops: Vec<Count>,
    /// (from, to) -> [egress, ingress].
    pairs: HashMap<(VnetIndex, VnetIndex), [Count; 2]>,
    vnets: Vec<ResourceId>,
    vnet_ids: HashMap<ResourceId, VnetIndex>,
    /// Packets decided by the slow path.
    pub slow_path: u64,
    /// Flow entries removed idle.
    pub expired: u64,
    /// Per port: its entries evicted to make room for another port's flows.
    evictions: Vec<u64>,
    /// Per port: its new flows refused because it held its quota.
    quota_drops: Vec<u64>,
    /// Packets decided by a cached flow.
    pub fast_path: u64,
}

fn slot(v: &mut Vec<Count>, i: usize) -> &mut Count {
    if v.len() <= i {
        v.resize(i + 1, Count::default());
    }
    &mut v[i]
}

fn count_slot(v: &mut Vec<u64>, i: usize) -> &mut u64 {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    &mut v[i]
}

fn side(d: TrafficDirection) -> usize {
    match d {
        TrafficDirection::Egress => 0,
        TrafficDirection::Ingress => 1,
    }
}

fn idx(p: PortId) -> usize {
    usize::try_from(p).unwrap_or(usize::MAX)
}

impl Counters {
    /// Counters for `ports` ports.
    pub(crate) fn new(ports: usize) -> Self {
        Counters {
            port_rx: vec![Count::default(); ports],
            port_tx: vec![Count::default(); ports],
            drops: vec![Count::default(); DropReason::ALL.len()],
            ..Default::default()
        }
    }

    /// The index of a VNet (registered when its ports are built).
    pub(crate) fn vnet_index(&mut self, vnet: &ResourceId) -> VnetIndex {
        if let Some(i) = self.vnet_ids.get(vnet) {
            return *i;
        }
        let i = VnetIndex::try_from(self.vnets.len()).unwrap_or(VnetIndex::MAX);
        self.vnets.push(vnet.clone());
        self.vnet_ids.insert(vnet.clone(), i);
        i
    }

    pub(crate) fn rx(&mut self, port: PortId, len: usize) {
        slot(&mut self.port_rx, idx(port)).add(len);
    }
    pub(crate) fn tx(&mut self, port: PortId, len: usize) {
        slot(&mut self.port_tx, idx(port)).add(len);
    }
    pub(crate) fn drop(&mut self, reason: DropReason, len: usize) {
        slot(&mut self.drops, reason as usize).add(len);
    }
    pub(crate) fn evicted(&mut self, port: PortId) {
        *count_slot(&mut self.evictions, idx(port)) += 1;
    }

    pub(crate) fn quota_drop(&mut self, port: PortId) {
        *count_slot(&mut self.quota_drops, idx(port)) += 1;
    }

    /// Entries of a port evicted to make room for other ports' flows.
    pub fn evictions(&self, port: PortId) -> u64 {
        self.evictions.get(idx(port)).copied().unwrap_or(0)
    }

    /// New flows of a port refused because it held its quota of entries.
    pub fn quota_drops(&self, port: PortId) -> u64 {
        self.quota_drops.get(idx(port)).copied().unwrap_or(0)
    }

    pub(crate) fn crossing(&mut self, from: VnetIndex, to: VnetIndex, len: usize) {
        let both = self.pairs.entry((from, to)).or_default();
        both[0].add(len);
        both[1].add(len);
    }

    /// Frames carried outside the switch (an offloaded flow) from one port to another.
    pub(crate) fn carried(&mut self, from: (PortId, VnetIndex), to: (PortId, VnetIndex), n: Count) {
        slot(&mut self.port_rx, idx(from.0)).add_many(n);
        slot(&mut self.port_tx, idx(to.0)).add_many(n);
        if from.1 != to.1 {
            for c in self.pairs.entry((from.1, to.1)).or_default() {
                c.add_many(n);
            }
        }
        self.fast_path += n.packets;
    }

    /// One side of a crossing between hosts: the sender counts egress, the receiver ingress.
    pub(crate) fn crossing_one(&mut self, from: VnetIndex, to: VnetIndex, d: TrafficDirection, len: usize) {
        self.pairs.entry((from, to)).or_default()[side(d)].add(len);
    }

    /// Frames received from a port's VM.
    pub fn received(&self, port: PortId) -> Count {
        self.port_rx.get(idx(port)).copied().unwrap_or_default()
    }

    /// Frames delivered to a port's VM.
    pub fn delivered(&self, port: PortId) -> Count {
        self.port_tx.get(idx(port)).copied().unwrap_or_default()
    }

    /// Packets dropped for a reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(reason as usize).map_or(0, |c| c.packets)
    }

    /// Traffic from one VNet to another, on one side.
    pub fn between(&self, from: &ResourceId, to: &ResourceId, direction: TrafficDirection) -> Count {
        match (self.vnet_ids.get(from).copied(), self.vnet_ids.get(to).copied()) {
            (Some(a), Some(b)) => self.pairs.get(&(a, b)).map(|c| c[side(direction)]).unwrap_or_default(),
            _ => Count::default(),
        }
    }

    /// Every VNet pair with traffic: (from, to, direction, count).
    pub fn vnet_pairs(&self) -> Vec<(ResourceId, ResourceId, TrafficDirection, Count)> {
        let mut out: Vec<_> = self
            .pairs
            .iter()
            .flat_map(|(k, c)| {
                [(k, TrafficDirection::Egress, c[0]), (k, TrafficDirection::Ingress, c[1])]
                    .into_iter()
                    .filter(|e| e.2.packets > 0)
            })
            .filter_map(|((a, b), d, c)| {
                let name = |i: &VnetIndex| self.vnets.get(usize::try_from(*i).ok()?).cloned();
                Some((name(a)?, name(b)?, d, c))
            })
            .collect();
        out.sort_by(|x, y| (&x.0, &x.1, x.2).cmp(&(&y.0, &y.1, y.2)));
        out
    }
}
