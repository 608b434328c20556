//! The flow table: one exact-match entry per (port, 5-tuple), caching the decision of the slow
//! path with the program generation it was made under. A stale entry is re-decided lazily on
//! its next packet; an entry may also mark the reverse direction of an allowed connection as
//! established (stateful NSGs, N4). The table is bounded; a full table drops new flows.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use crate::outcome::{DropReason, PortId};
use crate::v4_flows::{TOUCH_MAX, V4Flows, V4Key};
use crate::wire::IpFlow;

/// The exact-match key of a flow at a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The port the packet left (its VNet scopes the addresses).
    pub port: PortId,
    /// IP protocol.
    pub proto: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl FlowKey {
    /// A placeholder key (port 0, unspecified addresses).
    pub const EMPTY: FlowKey = FlowKey {
        port: 0,
        proto: 0,
        src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        sport: 0,
        dport: 0,
    };

    /// The key of a packet leaving `port`.
    pub fn of(port: PortId, f: &IpFlow) -> Self {
        FlowKey { port, proto: f.proto, src: f.src, dst: f.dst, sport: f.sport, dport: f.dport }
    }

    /// The key of the reply, as it leaves `port`.
    pub fn reply_at(&self, port: PortId) -> Self {
        FlowKey { port, proto: self.proto, src: self.dst, dst: self.src, sport: self.dport, dport: self.sport }
    }
}

/// An address/port rewrite applied to every packet of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Load balancing: the frontend destination becomes this backend.
    Destination(Ipv4Addr, u16),
    /// The reply of a load-balanced flow: the backend source becomes the frontend again.
    Source(Ipv4Addr, u16),
}

/// The cached decision of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deliver to a local port, with an optional rewrite.
    Deliver {
        /// The port.
        to: PortId,
        /// The rewrite.
        nat: Option<Nat>,
    },
    /// Deliver to a port on another host (an index into the switch's remote ports).
    Remote {
        /// The remote port.
        to: u32,
        /// The rewrite.
        nat: Option<Nat>,
    },
    /// Drop.
    Drop(DropReason),
}

/// One entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Generation of the programs the action was decided under.
    pub generation: u64,
    /// The decision (None until the first packet of this direction is decided).
    pub action: Option<Action>,
    /// Return traffic of an allowed connection: NSGs are not evaluated again.
    pub established: bool,
    /// The rewrite that replies of this direction need (set on the reverse entry).
    pub reply_nat: Option<Nat>,
    /// TCP FIN seen in this direction.
    pub fin: bool,
}

impl Entry {
    /// A decision made under `generation`, keeping what the entry it replaces knew (the
    /// reply rewrite, a FIN already seen) and whether the flow is established.
    pub fn decided(generation: u64, action: Action, established: bool, existing: Option<Entry>) -> Entry {
        Entry {
            generation,
            action: Some(action),
            established,
            reply_nat: existing.and_then(|e| e.reply_nat),
            fin: existing.is_some_and(|e| e.fin),
        }
    }
}

/// A bounded flow table. IPv4 flows (nearly all) are kept under a packed 16-byte key in a table
/// whose lines can be loaded ahead of a batch of lookups ([`FlowTable::touch`]); the rest under
/// the full key.
#[derive(Debug)]
pub struct FlowTable {
    v4: V4Flows,
    other: HashMap<FlowKey, Entry>,
    capacity: usize,
}

/// The packed key of an IPv4 flow: (src, dst), (sport, dport, proto), port.
fn packed(key: &FlowKey) -> Option<V4Key> {
    match (key.src, key.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some((
            u64::from(u32::from(s)) << 32 | u64::from(u32::from(d)),
            u64::from(key.sport) << 48 | u64::from(key.dport) << 32 | u64::from(key.proto),
            key.port,
        )),
        _ => None,
    }
}

impl FlowTable {
    /// A table holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        // Grown on demand: a table sized for its limit spreads a few active flows over far more
        // memory than the caches hold, and every lookup misses.
        FlowTable { v4: V4Flows::with_capacity(capacity.min(4096)), other: HashMap::new(), capacity }
    }

    /// Loads the memory where the entries of `keys` live, so that their lookups soon after do
    /// not wait for it: the cache misses of a batch overlap instead of following each other.
    pub fn touch(&self, keys: &[FlowKey]) {
        let mut packed_keys = [(0, 0, 0); TOUCH_MAX];
        let mut n = 0;
        for k in keys.iter().filter_map(packed).take(TOUCH_MAX) {
            packed_keys[n] = k;
            n += 1;
        }
        self.v4.touch(&packed_keys[..n]);
    }

    /// The entry of a key.
    pub fn get(&self, key: &FlowKey) -> Option<&Entry> {
        match packed(key) {
            Some(k) => self.v4.get(&k),
            None => self.other.get(key),
        }
    }

    /// The entry of a key, mutably.
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Entry> {
        match packed(key) {
            Some(k) => self.v4.get_mut(&k),
            None => self.other.get_mut(key),
        }
    }

    /// The entry of `key`, made from `fresh` when there is none and the table has room.
    fn entry_or_insert(&mut self, key: FlowKey, fresh: Entry) -> Option<&mut Entry> {
        let may_add = self.len() < self.capacity;
        match packed(&key) {
            Some(k) => self.v4.entry_or_insert(k, fresh, may_add),
            None => match self.other.entry(key) {
                hashbrown::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                hashbrown::hash_map::Entry::Vacant(v) => may_add.then(|| v.insert(fresh)),
            },
        }
    }

    /// Inserts or replaces an entry; false when the table is full. One lookup.
    pub fn insert(&mut self, key: FlowKey, entry: Entry) -> bool {
        self.entry_or_insert(key, entry).map(|e| *e = entry).is_some()
    }

    /// Marks a flow established (the reply of an allowed connection) unless it already is;
    /// false when the table is full. One lookup.
    pub fn mark_established(&mut self, key: FlowKey, reply_nat: Option<Nat>) -> bool {
        let fresh = Entry { generation: 0, action: None, established: true, reply_nat, fin: false };
        self.entry_or_insert(key, fresh)
            .map(|e| {
                if !e.established {
                    *e = fresh;
                }
            })
            .is_some()
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &FlowKey) {
        match packed(key) {
            Some(k) => self.v4.remove(&k),
            None => {
                self.other.remove(key);
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
