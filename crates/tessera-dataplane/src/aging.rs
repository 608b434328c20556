//! Flow aging: idle timeouts per protocol and state, and a timing wheel that finds the entries
//! due to expire without walking the table.
//!
//! Time is an input: the switch is told the time ([`crate::Switch::advance`]) and keeps it in
//! whole seconds of the caller's clock (a monotonic clock in the agent, a virtual one in tests).
//! Every packet of a flow pushes its entry's expiry forward (`expires`, a field of the entry,
//! written where the entry already is); the wheel holds each entry's key once, in the slot of the
//! second it was due when it was scheduled. When that second comes the entry is expired if it
//! is still due, or moved to the slot of its new expiry if traffic pushed it on: each live
//! entry costs one move per timeout, never a walk of the table.

use crate::flow::FlowKey;
use crate::wire::{IpFlow, TCP, UDP};

/// Idle timeouts, in seconds. TCP established flows take their VNet's `flowTimeoutInMinutes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A TCP flow that has sent only SYNs (no ACK yet): a handshake that is not finished.
    pub tcp_half_open: u32,
    /// A TCP flow that sent a FIN or a RST.
    pub tcp_closing: u32,
    /// A UDP flow.
    pub udp: u32,
    /// ICMP and any other protocol.
    pub icmp: u32,
    /// A refused decision: re-decided this often at least, whatever the traffic, so a
    /// decision the programs no longer make does not linger.
    pub refused: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { tcp_half_open: 30, tcp_closing: 30, udp: 60, icmp: 30, refused: 2 }
    }
}

impl Timeouts {
    /// The idle timeout a packet of this flow gives its entry; `tcp_established` is the VNet's.
    pub fn idle(&self, f: &IpFlow, tcp_established: u32) -> u32 {
        match f.proto {
            TCP if f.tcp.fin || f.tcp.rst => self.tcp_closing,
            TCP if f.tcp.syn && !f.tcp.ack => self.tcp_half_open,
            proto => self.of_protocol(proto, tcp_established),
        }
    }

    /// The idle timeout of a flow of `proto` in use (TCP established).
    pub fn of_protocol(&self, proto: u8, tcp_established: u32) -> u32 {
        match proto {
            TCP => tcp_established,
            UDP => self.udp,
            _ => self.icmp,
        }
    }
}

/// Slots of the wheel, one per second: more than the longest timeout (30 minutes).
pub(crate) const WHEEL_SLOTS: u32 = 2048;

/// What an eviction does with a key it looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pick {
    /// Evict its entry.
    Take,
    /// Its entry is gone: drop the key.
    Gone,
    /// Leave it.
    Keep,
}

/// The keys of entries by the second they are due.
#[derive(Debug)]
pub(crate) struct Wheel {
    slots: Vec<Vec<FlowKey>>,
    /// Keys filed, in all slots.
    len: usize,
    /// The next second to process (every earlier one has been).
    pub(crate) at: u32,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel { slots: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(), len: 0, at: 0 }
    }
}

fn slot(second: u32) -> usize {
    usize::try_from(second % WHEEL_SLOTS).unwrap_or(0)
}

impl Wheel {
    /// Files `key` under the second `due` (at the earliest the next one processed).
    pub(crate) fn schedule(&mut self, key: FlowKey, due: u32) {
        let due = due.clamp(self.at, self.at.saturating_add(WHEEL_SLOTS - 1));
        self.slots[slot(due)].push(key);
        self.len += 1;
    }

    /// Keys filed.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets every key (the clock stays).
    pub(crate) fn clear(&mut self) {
        for s in &mut self.slots {
            *s = Vec::new();
        }
        self.len = 0;
    }

    /// The keys filed under the next unprocessed second, if it is not after `now`; the wheel
    /// moves on by one second. The caller expires them or files them again.
    pub(crate) fn next_due(&mut self, now: u32) -> Option<Vec<FlowKey>> {
        if self.at > now {
            return None;
        }
        let keys = std::mem::take(&mut self.slots[slot(self.at)]);
        self.len -= keys.len();
        self.at += 1;
        Some(keys)
    }

    /// Moves the wheel to `now` when it lags a whole turn or more behind: every slot is then
    /// due, and is processed once.
    pub(crate) fn catch_up(&mut self, now: u32) {
        if now >= self.at.saturating_add(WHEEL_SLOTS) {
            self.at = now.saturating_add(1) - WHEEL_SLOTS;
        }
    }

    /// Finds, from the soonest due, a key `pick` takes, and takes it out of the wheel. Keys of
    /// entries already gone are dropped on the way and cost nothing; at most `budget` others
    /// are looked at.
    pub(crate) fn take_first(&mut self, budget: usize, mut pick: impl FnMut(&FlowKey) -> Pick) -> Option<FlowKey> {
        let mut seen = 0;
        for second in self.at..self.at.saturating_add(WHEEL_SLOTS) {
            let bucket = &mut self.slots[slot(second)];
            let mut i = 0;
            while i < bucket.len() {
                match pick(&bucket[i]) {
                    Pick::Take => {
                        self.len -= 1;
                        return Some(bucket.swap_remove(i));
                    }
                    Pick::Gone => {
                        self.len -= 1;
                        bucket.swap_remove(i);
                    }
                    Pick::Keep => {
                        i += 1;
                        seen += 1;
                        if seen >= budget {
                            return None;
                        }
                    }
                }
            }
        }
        None
    }
}
