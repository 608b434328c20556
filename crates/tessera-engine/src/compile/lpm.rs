//! Longest-prefix lookup: one hash map per prefix length, probed from the longest length down.

use std::collections::HashMap;
use std::net::IpAddr;

use tessera_model::prefix::IpNet;

/// A longest-prefix-match table from prefixes to lists of values.
#[derive(Debug, Clone, Default)]
pub struct Lpm<T> {
    v4: Vec<(u8, HashMap<u32, Vec<T>>)>,
    v6: Vec<(u8, HashMap<u128, Vec<T>>)>,
}

fn mask4(a: u32, len: u8) -> u32 {
    if len == 0 { 0 } else { a & (u32::MAX << (32 - u32::from(len))) }
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 { 0 } else { a & (u128::MAX << (128 - u32::from(len))) }
}

impl<T: Clone> Lpm<T> {
    /// Adds a value under a prefix.
    pub fn insert(&mut self, net: IpNet, value: T) {
        let len = net.prefix_len();
        match net {
            IpNet::V4(n) => slot(&mut self.v4, len).entry(mask4(u32::from(n.network()), len)).or_default().push(value),
            IpNet::V6(n) => slot(&mut self.v6, len).entry(mask6(u128::from(n.network()), len)).or_default().push(value),
        }
    }

    /// The values of the longest prefix containing `addr` (ties: all values of that prefix).
    pub fn lookup(&self, addr: IpAddr) -> Option<&[T]> {
        match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4.iter().find_map(|(len, m)| m.get(&mask4(a, *len)).map(Vec::as_slice))
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6.iter().find_map(|(len, m)| m.get(&mask6(a, *len)).map(Vec::as_slice))
            }
        }
    }

    /// Whether any prefix contains `addr`.
    pub fn matches(&self, addr: IpAddr) -> bool {
        self.lookup(addr).is_some()
    }
}

fn slot<K, T>(levels: &mut Vec<(u8, HashMap<K, Vec<T>>)>, len: u8) -> &mut HashMap<K, Vec<T>> {
    let pos = match levels.iter().position(|(l, _)| *l <= len) {
        Some(p) if levels[p].0 == len => p,
        Some(p) => {
            levels.insert(p, (len, HashMap::new()));
            p
        }
        None => {
            levels.push((len, HashMap::new()));
            levels.len() - 1
        }
    };
    &mut levels[pos].1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let mut t = Lpm::default();
        t.insert("0.0.0.0/0".parse().expect("net"), 0);
        t.insert("10.0.0.0/8".parse().expect("net"), 1);
        t.insert("10.1.0.0/16".parse().expect("net"), 2);
        t.insert("::/0".parse().expect("net"), 9);
        assert_eq!(t.lookup("10.1.2.3".parse().expect("ip")), Some(&[2][..]));
        assert_eq!(t.lookup("10.2.2.3".parse().expect("ip")), Some(&[1][..]));
        assert_eq!(t.lookup("8.8.8.8".parse().expect("ip")), Some(&[0][..]));
        assert_eq!(t.lookup("fd00::1".parse().expect("ip")), Some(&[9][..]));
    }
}
