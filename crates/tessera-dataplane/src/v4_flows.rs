//! The IPv4 flow entries: an open-addressing table (linear probing, backward-shift deletion)
//! with one entry per cache line and a dense array of one-byte tags beside it, whose memory for
//! a key can be loaded ahead of the lookup.
//!
//! With 100,000 active flows nearly every lookup misses the caches; touching the entries of a
//! whole batch of frames first lets the CPU wait for those misses together instead of one after
//! the other (it halved the time per cached frame in the switch benchmark). The tags (seven bits
//! of the hash; zero is empty) are small enough to stay cached, so looking up a key that is not
//! there — every first packet of a flow — reads no entry at all. A general-purpose map does not
//! say where a key lives, so this one is written here.

use std::hash::BuildHasher;

use hashbrown::DefaultHashBuilder;

use crate::flow::Entry;

/// The packed key of an IPv4 flow: (src, dst), (sport, dport, proto), port.
pub(crate) type V4Key = (u64, u64, u32);

/// One slot, a cache line of its own.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Line(Option<(V4Key, Entry)>);

const _: () = assert!(size_of::<Line>() == 64, "a slot is one cache line");

/// Most keys touched at once.
pub(crate) const TOUCH_MAX: usize = 32;

/// Fewest slots once the table holds anything.
const MIN_SLOTS: usize = 64;

/// The table. At most seven eighths of its slots are used (runs are long then, but they are
/// walked in the tags, 64 to a cache line).
#[derive(Debug)]
pub(crate) struct V4Flows {
    /// Per slot: 0 when empty, else 0x80 | seven bits of the key's hash.
    tags: Vec<u8>,
    lines: Vec<Line>,
    len: usize,
    hasher: DefaultHashBuilder,
}

impl V4Flows {
    /// An empty table with room for `capacity` entries before it grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let slots = if capacity == 0 { 0 } else { (capacity * 8 / 7 + 1).next_power_of_two().max(MIN_SLOTS) };
        V4Flows {
            tags: vec![0; slots],
            lines: vec![Line::default(); slots],
            len: 0,
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The key's first slot and its tag. Slots are a power of two: the mask keeps the hash's
    /// low bits; the tag takes its top seven.
    fn home(&self, key: &V4Key) -> (usize, u8) {
        let hash = self.hasher.hash_one(key);
        let home = usize::try_from(hash).unwrap_or(0) & (self.lines.len() - 1);
        (home, 0x80 | u8::try_from(hash >> 57).unwrap_or(0))
    }

    /// The slot holding `key`, or the empty slot where it would go, with the key's tag.
    fn find(&self, key: &V4Key) -> (Result<usize, usize>, u8) {
        let mask = self.lines.len() - 1;
        let (mut i, tag) = self.home(key);
        loop {
            match self.tags[i] {
                0 => return (Err(i), tag),
                t if t == tag && self.lines[i].0.is_some_and(|(k, _)| k == *key) => return (Ok(i), tag),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The slot `key` is most likely in, read from the tags alone: the first with its tag in
    /// its run, or the empty slot that ends the run.
    fn likely_slot(&self, key: &V4Key) -> usize {
        let mask = self.lines.len() - 1;
        let (mut i, tag) = self.home(key);
        while self.tags[i] != 0 && self.tags[i] != tag {
            i = (i + 1) & mask;
        }
        i
    }

    /// Loads the entries of `keys` so that their lookups soon after find them in the cache.
    /// Their slots are found in the tags first and the entries then loaded in a loop of a few
    /// instructions, so the CPU has all those loads in flight at once.
    pub(crate) fn touch(&self, keys: &[V4Key]) {
        if self.len == 0 {
            return;
        }
        let mut slots = [0usize; TOUCH_MAX];
        let n = keys.len().min(TOUCH_MAX);
        for (slot, k) in slots.iter_mut().zip(keys) {
            *slot = self.likely_slot(k);
        }
        for &i in &slots[..n] {
            std::hint::black_box(self.lines[i].0.is_some());
        }
    }

    pub(crate) fn get(&self, key: &V4Key) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        let i = self.find(key).0.ok()?;
        self.lines[i].0.as_ref().map(|(_, e)| e)
    }

    pub(crate) fn get_mut(&mut self, key: &V4Key) -> Option<&mut Entry> {
        if self.len == 0 {
            return None;
        }
        let i = self.find(key).0.ok()?;
        self.lines[i].0.as_mut().map(|(_, e)| e)
    }

    /// The entry of `key`, inserting `fresh` when there is none and `may_add` allows it.
    pub(crate) fn entry_or_insert(&mut self, key: V4Key, fresh: Entry, may_add: bool) -> Option<&mut Entry> {
        if (self.len + 1) * 8 > self.lines.len() * 7 {
            self.grow();
        }
        let i = match self.find(&key) {
            (Ok(i), _) => i,
            (Err(_), _) if !may_add => return None,
            (Err(i), tag) => {
                self.tags[i] = tag;
                self.lines[i].0 = Some((key, fresh));
                self.len += 1;
                i
            }
        };
        self.lines[i].0.as_mut().map(|(_, e)| e)
    }

    /// Removes `key`; the entries after it in its run move back so no lookup stops early.
    pub(crate) fn remove(&mut self, key: &V4Key) -> Option<Entry> {
        if self.len == 0 {
            return None;
        }
        let (Ok(mut hole), _) = self.find(key) else { return None };
        let gone = self.lines[hole].0.map(|(_, e)| e);
        self.len -= 1;
        let mask = self.lines.len() - 1;
        let mut i = (hole + 1) & mask;
        while let Some((k, _)) = &self.lines[i].0 {
            // An entry may fill the hole if its home is not in (hole, i], cyclically.
            let home = self.home(k).0;
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.lines[hole] = self.lines[i];
                self.tags[hole] = self.tags[i];
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.lines[hole].0 = None;
        self.tags[hole] = 0;
        gone
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every entry, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(V4Key, Entry)> {
        self.lines.iter().filter_map(|l| l.0.as_ref())
    }

    fn grow(&mut self) {
        let slots = (self.lines.len() * 2).max(MIN_SLOTS);
        self.tags = vec![0; slots];
        let old = std::mem::replace(&mut self.lines, vec![Line::default(); slots]);
        for (k, e) in old.into_iter().filter_map(|l| l.0) {
            let (i, tag) = match self.find(&k) {
                (Ok(i) | Err(i), tag) => (i, tag),
            };
            self.tags[i] = tag;
            self.lines[i].0 = Some((k, e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Action;
    use crate::outcome::DropReason;

    fn entry(generation: u64) -> Entry {
        Entry {
            generation: u32::try_from(generation).unwrap_or(u32::MAX),
            action: Some(Action::Drop(DropReason::SpoofedSource)),
            established: false,
            reply_nat: None,
            fin: false,
            owner: 0,
            expires: 0,
        }
    }

    /// The table against a reference map, through inserts, replacements and removals that
    /// shift runs back, across several growths.
    #[test]
    fn agrees_with_a_map() {
        let mut t = V4Flows::with_capacity(0);
        let mut reference = std::collections::HashMap::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct keys, so removals often hit present keys inside long runs.
            let key: V4Key = (x % 5000, 7, u32::try_from(x % 3).unwrap_or(0));
            match x % 4 {
                0 => {
                    assert_eq!(t.remove(&key).is_some(), reference.remove(&key).is_some());
                }
                _ => {
                    if let Some(e) = t.entry_or_insert(key, entry(step), true) {
                        *e = entry(step);
                    }
                    reference.insert(key, step);
                }
            }
            if step % 997 == 0 {
                assert_eq!(t.len(), reference.len());
            }
        }
        assert_eq!(t.len(), reference.len());
        for (k, g) in &reference {
            assert_eq!(t.get(k).map(|e| u64::from(e.generation)), Some(*g), "{k:?}");
        }
        for k in (0..5000u64).map(|a| (a, 7, 0)) {
            assert_eq!(t.get(&k).is_some(), reference.contains_key(&k));
        }
    }

    #[test]
    fn entry_or_insert_respects_the_limit() {
        let mut t = V4Flows::with_capacity(4);
        assert!(t.entry_or_insert((1, 1, 1), entry(1), false).is_none());
        assert_eq!(t.len(), 0);
        assert_eq!(t.entry_or_insert((1, 1, 1), entry(1), true).map(|e| e.generation), Some(1));
        // Present: returned even when nothing may be added.
        assert_eq!(t.entry_or_insert((1, 1, 1), entry(2), false).map(|e| e.generation), Some(1));
        t.touch(&[(9, 9, 9), (1, 1, 1)]);
        assert_eq!(t.len(), 1);
    }
}
