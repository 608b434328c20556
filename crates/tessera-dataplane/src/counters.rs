//! Counters: per port, per drop reason, and per (source VNet, destination VNet, direction) in
//! bytes and packets — the input to peering metering.

use std::collections::BTreeMap;

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
}

/// Which side of a VNet pair a count belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TrafficDirection {
    /// Leaving the source VNet.
    Egress,
    /// Entering the destination VNet.
    Ingress,
}

/// Every counter of a switch.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Frames received from each port's VM.
    pub port_rx: BTreeMap<PortId, Count>,
    /// Frames delivered to each port's VM.
    pub port_tx: BTreeMap<PortId, Count>,
    /// Drops by reason.
    pub drops: BTreeMap<DropReason, Count>,
    /// Traffic between VNets (by VNet id), both ends counted: the inputs to peering metering.
    pub vnet_pairs: BTreeMap<(String, String, TrafficDirection), Count>,
    /// Packets decided by the slow path.
    pub slow_path: u64,
    /// Packets decided by a cached flow.
    pub fast_path: u64,
}

impl Counters {
    pub(crate) fn rx(&mut self, port: PortId, len: usize) {
        self.port_rx.entry(port).or_default().add(len);
    }
    pub(crate) fn tx(&mut self, port: PortId, len: usize) {
        self.port_tx.entry(port).or_default().add(len);
    }
    pub(crate) fn drop(&mut self, reason: DropReason, len: usize) {
        self.drops.entry(reason).or_default().add(len);
    }
    pub(crate) fn crossing(&mut self, from: &str, to: &str, len: usize) {
        for d in [TrafficDirection::Egress, TrafficDirection::Ingress] {
            self.vnet_pairs.entry((from.to_string(), to.to_string(), d)).or_default().add(len);
        }
    }

    /// Drops counted for a reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(&reason).map_or(0, |c| c.packets)
    }
}
