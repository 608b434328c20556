//! The flow table: one exact-match entry per (port, 5-tuple), caching the decision of the slow
//! path with the program generation it was made under. A stale entry is re-decided lazily on
//! its next packet; an entry may also mark the reverse direction of an allowed connection as
//! established (stateful NSGs, N4).
//!
//! Entries age ([`crate::aging`]): each has an expiry its packets push on, and expired ones
//! are reclaimed by [`FlowTable::expire`] without a walk. The table is shared fairly: every
//! entry is charged to the port that opened its flow, a port holds at most its quota (a new
//! flow beyond it is refused and counted against that port only), and when the whole table is
//! full a new flow of a port under its quota evicts the entry closest to expiry of the port that
//! holds the most.

use std::net::{IpAddr, Ipv4Addr};

use hashbrown::HashMap;

use crate::aging::{Pick, Wheel};
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

/// One entry (with its key, one cache line).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The decision (None until the first packet of this direction is decided).
    pub action: Option<Action>,
    /// The rewrite that replies of this direction need (set on the reverse entry).
    pub reply_nat: Option<Nat>,
    /// Generation of the programs the action was decided under (its low 32 bits).
    pub generation: u32,
    /// The second (of the switch's clock) after which the entry is idle and goes.
    pub expires: u32,
    /// The port charged for the entry: the one whose flow made it.
    pub owner: PortId,
    /// Return traffic of an allowed connection: NSGs are not evaluated again.
    pub established: bool,
    /// TCP FIN seen in this direction.
    pub fin: bool,
}

impl Entry {
    /// A decision made under `generation`, keeping what the entry it replaces knew (the
    /// reply rewrite, a FIN already seen, the port charged) and whether the flow is established.
    pub fn decided(
        generation: u32,
        action: Action,
        established: bool,
        existing: Option<Entry>,
        owner: PortId,
        expires: u32,
    ) -> Entry {
        Entry {
            action: Some(action),
            reply_nat: existing.and_then(|e| e.reply_nat),
            generation,
            expires,
            owner: existing.map_or(owner, |e| e.owner),
            established,
            fin: existing.is_some_and(|e| e.fin),
        }
    }
}

/// Why a new entry was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The port holds its quota of entries.
    Quota,
    /// The table is full and no port holds more than its share to evict from.
    Full,
}

/// What making an entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Admitted {
    /// The port an entry was evicted from to make room.
    pub evicted: Option<PortId>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy)]
pub enum Lookup {
    /// A decision to apply.
    Hit(Entry),
    /// Nothing to apply: no entry, or the one there (to decide again).
    Miss(Option<Entry>),
}

/// How many wheel keys an eviction looks at before it gives up.
const EVICTION_BUDGET: usize = 4096;

/// A bounded flow table. IPv4 flows (nearly all) are kept under a packed 16-byte key in a table
/// whose lines can be loaded ahead of a batch of lookups ([`FlowTable::touch`]); the rest under
/// the full key.
#[derive(Debug)]
pub struct FlowTable {
    v4: V4Flows,
    other: HashMap<FlowKey, Entry>,
    capacity: usize,
    port_quota: usize,
    /// Entries charged to each port.
    owned: Vec<usize>,
    wheel: Wheel,
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

/// The key of a packed IPv4 key.
fn unpacked(k: &V4Key) -> FlowKey {
    let (addresses, ports, port) = *k;
    FlowKey {
        port,
        proto: (ports & 0xff) as u8,
        src: IpAddr::V4(Ipv4Addr::from((addresses >> 32) as u32)),
        dst: IpAddr::V4(Ipv4Addr::from(addresses as u32)),
        sport: (ports >> 48) as u16,
        dport: (ports >> 32) as u16,
    }
}

impl FlowTable {
    /// A table holding at most `capacity` entries, at most `port_quota` of them for one port.
    pub fn new(capacity: usize, port_quota: usize) -> Self {
        // Grown on demand: a table sized for its limit spreads a few active flows over far more
        // memory than the caches hold, and every lookup misses.
        FlowTable {
            v4: V4Flows::with_capacity(capacity.min(4096)),
            other: HashMap::new(),
            capacity,
            port_quota: port_quota.max(1),
            owned: Vec::new(),
            wheel: Wheel::default(),
        }
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

    /// The entry of a key, mutably (its key, owner and expiry stay as they are).
    pub fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Entry> {
        match packed(key) {
            Some(k) => self.v4.get_mut(&k),
            None => self.other.get_mut(key),
        }
    }

    /// A packet of a cached flow at `now`: the entry decided under `generation`, its expiry
    /// pushed to `expires`. A refused decision keeps its own expiry, and once past it is
    /// decided again. One lookup.
    pub fn hit(&mut self, key: &FlowKey, generation: u32, now: u32, expires: u32) -> Option<Entry> {
        match self.lookup(key, generation, now, expires) {
            Lookup::Hit(e) => Some(e),
            Lookup::Miss(_) => None,
        }
    }

    /// [`FlowTable::hit`], and on a miss the entry there is (stale, expired, or a reply
    /// waiting for its first packet), so the slow path looks no second time. One lookup.
    pub fn lookup(&mut self, key: &FlowKey, generation: u32, now: u32, expires: u32) -> Lookup {
        let Some(e) = self.get_mut(key) else { return Lookup::Miss(None) };
        if e.generation != generation || e.action.is_none() {
            return Lookup::Miss(Some(*e));
        }
        let earlier = match e.action {
            Some(Action::Drop(_)) if e.expires <= now => return Lookup::Miss(Some(*e)),
            Some(Action::Drop(_)) => false,
            _ => {
                let earlier = expires < e.expires;
                e.expires = expires;
                earlier
            }
        };
        let copy = *e;
        if earlier {
            // A FIN shortens the flow's life: its key goes to the earlier second too.
            self.schedule(*key, expires);
        }
        Lookup::Hit(copy)
    }

    /// Adds `fresh` under `key` unless an entry is there; whether it was added.
    fn add_absent(&mut self, key: FlowKey, fresh: Entry) -> bool {
        match packed(&key) {
            Some(k) => {
                let before = self.v4.len();
                self.v4.entry_or_insert(k, fresh, true);
                self.v4.len() > before
            }
            None => match self.other.entry(key) {
                hashbrown::hash_map::Entry::Occupied(_) => false,
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(fresh);
                    true
                }
            },
        }
    }

    /// Whether a new entry of `owner` would be refused at its quota (a full table may still
    /// make room by eviction).
    pub fn has_room(&self, owner: PortId) -> Result<(), Refusal> {
        if self.port_quota < self.capacity && self.owned(owner) >= self.port_quota {
            return Err(Refusal::Quota);
        }
        Ok(())
    }

    /// Room for one more entry of `owner`: within its quota (unless `over_quota`) and the
    /// table's capacity, evicting another port's entry when the table is full.
    fn room(&mut self, owner: PortId, over_quota: bool) -> Result<Admitted, Refusal> {
        if !over_quota && self.owned(owner) >= self.port_quota {
            // A quota as large as the table is no quota: the table is what is full.
            return Err(if self.port_quota < self.capacity { Refusal::Quota } else { Refusal::Full });
        }
        if self.len() < self.capacity {
            return Ok(Admitted::default());
        }
        self.evict(owner).map(|p| Admitted { evicted: Some(p) }).ok_or(Refusal::Full)
    }

    /// Evicts the entry closest to expiry of the port holding the most entries, if that is
    /// not `owner` itself (a port cannot push others out to grow past them).
    fn evict(&mut self, owner: PortId) -> Option<PortId> {
        let (heaviest, held) = self.owned.iter().enumerate().max_by_key(|(_, n)| **n)?;
        let heaviest = PortId::try_from(heaviest).ok()?;
        if heaviest == owner || *held <= self.owned(owner) + 1 {
            return None;
        }
        let (v4, other) = (&self.v4, &self.other);
        let key = self.wheel.take_first(EVICTION_BUDGET, |k| {
            let e = match packed(k) {
                Some(p) => v4.get(&p),
                None => other.get(k),
            };
            match e {
                None => Pick::Gone,
                Some(e) if e.owner == heaviest => Pick::Take,
                Some(_) => Pick::Keep,
            }
        })?;
        self.remove(&key);
        Some(heaviest)
    }

    /// Makes or replaces the entry of `key`. A new entry is charged to `entry.owner` and needs
    /// room ([`Refusal`] otherwise); a replaced one keeps its charge. One lookup when present.
    pub fn insert(&mut self, key: FlowKey, entry: Entry) -> Result<Admitted, Refusal> {
        if let Some(e) = self.get_mut(&key) {
            let owner = e.owner;
            let earlier = entry.expires < e.expires;
            *e = Entry { owner, ..entry };
            if earlier {
                self.schedule(key, entry.expires);
            }
            return Ok(Admitted::default());
        }
        let admitted = self.room(entry.owner, false)?;
        self.add(key, entry);
        Ok(admitted)
    }

    fn add(&mut self, key: FlowKey, entry: Entry) {
        if self.add_absent(key, entry) {
            self.charge(entry.owner, true);
            self.schedule(key, entry.expires);
        }
    }

    /// Files a key in the wheel. Keys of entries removed early (a FIN, a RST, an eviction) stay
    /// there until their second; when churn leaves more of them than twice the table holds,
    /// the wheel is built again from the entries — a walk paid for by that many insertions,
    /// so a VM opening and resetting connections as fast as it can does not grow it without
    /// bound.
    fn schedule(&mut self, key: FlowKey, due: u32) {
        self.wheel.schedule(key, due);
        if self.wheel.len() > 2 * self.capacity.max(self.len()) + 1024 {
            self.wheel.clear();
            let v4 = self.v4.iter().map(|(k, e)| (unpacked(k), e.expires));
            let keys: Vec<(FlowKey, u32)> = v4.chain(self.other.iter().map(|(k, e)| (*k, e.expires))).collect();
            for (k, due) in keys {
                self.wheel.schedule(k, due);
            }
        }
    }

    /// Marks a flow established (the reply of an allowed connection, charged to `owner`, the
    /// port that opened it, beyond its quota by the reply) unless it already is.
    pub fn mark_established(
        &mut self,
        key: FlowKey,
        reply_nat: Option<Nat>,
        owner: PortId,
        expires: u32,
    ) -> Result<Admitted, Refusal> {
        let fresh = Entry { generation: 0, action: None, established: true, reply_nat, fin: false, owner, expires };
        if let Some(e) = self.get_mut(&key) {
            if !e.established {
                *e = Entry { owner: e.owner, expires: e.expires.max(expires), ..fresh };
            }
            return Ok(Admitted::default());
        }
        let admitted = self.room(owner, true)?;
        self.add(key, fresh);
        Ok(admitted)
    }

    /// Removes an entry.
    pub fn remove(&mut self, key: &FlowKey) {
        let gone = match packed(key) {
            Some(k) => self.v4.remove(&k),
            None => self.other.remove(key),
        };
        if let Some(e) = gone {
            self.charge(e.owner, false);
        }
    }

    fn charge(&mut self, owner: PortId, add: bool) {
        let i = usize::try_from(owner).unwrap_or(usize::MAX);
        if self.owned.len() <= i {
            self.owned.resize(i + 1, 0);
        }
        if add {
            self.owned[i] += 1;
        } else {
            self.owned[i] = self.owned[i].saturating_sub(1);
        }
    }

    /// Removes every entry idle past `now` (a second of the switch's clock) and returns their
    /// keys. Work in proportion to the seconds passed and the entries due, never the table.
    pub fn expire(&mut self, now: u32) -> Vec<FlowKey> {
        let mut gone = Vec::new();
        self.wheel.catch_up(now);
        while let Some(keys) = self.wheel.next_due(now) {
            for key in keys {
                match self.get(&key).map(|e| e.expires) {
                    None => {}
                    Some(expires) if expires <= now => {
                        self.remove(&key);
                        gone.push(key);
                    }
                    // Traffic pushed it on: filed again under its new second.
                    Some(expires) => self.wheel.schedule(key, expires),
                }
            }
        }
        gone
    }

    /// The entries charged to a port.
    pub fn owned(&self, port: PortId) -> usize {
        self.owned.get(usize::try_from(port).unwrap_or(usize::MAX)).copied().unwrap_or(0)
    }

    /// The most entries one port may hold.
    pub fn port_quota(&self) -> usize {
        self.port_quota
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: PortId, expires: u32) -> Entry {
        Entry {
            action: Some(Action::Drop(DropReason::NoRoute)),
            reply_nat: None,
            generation: 1,
            expires,
            owner,
            established: false,
            fin: false,
        }
    }

    fn key(i: u32, v4: bool) -> FlowKey {
        let (src, dst) = if v4 {
            (IpAddr::V4(Ipv4Addr::from(i)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        } else {
            (IpAddr::V6(std::net::Ipv6Addr::from(u128::from(i))), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))
        };
        FlowKey { port: 0, proto: 6, src, dst, sport: 1, dport: 2 }
    }

    /// Flows opened and removed at once (a SYN and a RST) leave their keys in the wheel until
    /// their second; however many there are, the wheel stays within twice the table.
    #[test]
    fn churn_does_not_grow_the_wheel_without_bound() {
        let mut t = FlowTable::new(100, 100);
        for i in 0..200_000 {
            let k = key(i, i % 3 == 0);
            assert!(t.insert(k, entry(0, 30)).is_ok());
            t.remove(&k);
            assert!(t.wheel.len() <= 2 * 100 + 1024 + 1, "{} keys filed at {i}", t.wheel.len());
        }
        assert!(t.is_empty());
        // The entries that remain are all still filed, and expire at their time.
        let live: Vec<FlowKey> = (0..50).map(|i| key(1_000_000 + i, i % 2 == 0)).collect();
        for k in &live {
            assert!(t.insert(*k, entry(0, 30)).is_ok());
        }
        for i in 0..5_000 {
            let k = key(i, true);
            assert!(t.insert(k, entry(0, 30)).is_ok());
            t.remove(&k);
        }
        assert_eq!(t.expire(29).len(), 0);
        let mut gone = t.expire(30);
        gone.sort_by_key(|k| format!("{k:?}"));
        let mut want = live.clone();
        want.sort_by_key(|k| format!("{k:?}"));
        assert_eq!(gone, want);
        assert_eq!(t.owned(0), 0);
    }

    #[test]
    fn a_packed_key_unpacks_to_itself() {
        let k = FlowKey {
            port: 7,
            proto: 17,
            src: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 168, 255, 254)),
            sport: 65535,
            dport: 1,
        };
        assert_eq!(packed(&k).map(|p| unpacked(&p)), Some(k));
    }
}
