//! Address prefixes: strict CIDR parsing with ARM errors, overlap tests and set helpers.

use std::net::IpAddr;

pub use ipnet::IpNet;

use crate::error::ArmError;

/// Parses a CIDR the way ARM accepts it: a valid address, a prefix length, no host bits.
pub fn parse_cidr(text: &str, owner: &str) -> Result<IpNet, ArmError> {
    let net: IpNet = text.trim().parse().map_err(|_| {
        ArmError::bad_request(
            "InvalidAddressPrefixFormat",
            format!("Address prefix {text} of resource {owner} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."),
        )
        .target(owner)
    })?;
    check_canonical(net, owner)?;
    Ok(net)
}

/// Marks a serde error about a prefix that is not CIDR notation, so that the JSON loader can
/// answer `InvalidAddressPrefixFormat` naming the value.
pub(crate) const BAD_PREFIX: &str = "not a CIDR prefix: ";

/// Deserializers for prefix fields that name the offending value on failure.
pub(crate) mod cidr {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};

    use super::{BAD_PREFIX, IpNet};

    fn parse<E: Error>(text: &str) -> Result<IpNet, E> {
        text.trim().parse().map_err(|_| E::custom(format!("{BAD_PREFIX}{text}")))
    }

    /// One prefix.
    pub(crate) fn one<'de, D: Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
        parse(&String::deserialize(d)?)
    }

    /// An optional prefix.
    pub(crate) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
        Option::<String>::deserialize(d)?.map(|t| parse(&t)).transpose()
    }

    /// A list of prefixes (`null` is an empty list).
    pub(crate) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?.unwrap_or_default().iter().map(|t| parse(t)).collect()
    }
}

/// Refuses a prefix with host bits set (`InvalidCIDRNotation`).
pub fn check_canonical(net: IpNet, owner: &str) -> Result<(), ArmError> {
    if net.trunc() != net {
        return Err(ArmError::bad_request(
            "InvalidCIDRNotation",
            format!(
                "The address prefix {net} in resource {owner} has an invalid CIDR notation. \
                 For the given prefix length, the address prefix should be {}.",
                net.trunc()
            ),
        )
        .target(owner));
    }
    Ok(())
}

/// Whether two prefixes share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The pairs of prefixes of `a` and `b` that overlap, as `a_prefix` strings (deduplicated, in order).
pub fn overlapping(a: &[IpNet], b: &[IpNet]) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for x in a {
        if b.iter().any(|y| overlaps(x, y)) && !out.contains(x) {
            out.push(*x);
        }
    }
    out
}

/// Whether any prefix of the set contains the address.
pub fn contains_addr(set: &[IpNet], addr: IpAddr) -> bool {
    set.iter().any(|n| n.contains(&addr))
}

/// Whether `inner` lies entirely inside some prefix of `set`.
pub fn covered_by(set: &[IpNet], inner: &IpNet) -> bool {
    set.iter().any(|n| n.contains(inner))
}

/// Whether an address is one Azure reserves in a subnet: the network address, the next three
/// (gateway and DNS) and, for IPv4, the broadcast address.
pub fn is_reserved_in_subnet(subnet: &IpNet, addr: IpAddr) -> bool {
    let offset = addr_offset(subnet, addr);
    match subnet {
        IpNet::V4(n) => {
            let size = 1u128 << (32 - n.prefix_len());
            offset < 4 || offset == size - 1
        }
        IpNet::V6(_) => offset < 4,
    }
}

/// The address `offset` positions after the network address of `net` (wrapping inside it).
pub fn nth_address(net: &IpNet, offset: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let base = u32::from(n.network());
            let size = 1u64 << (32 - n.prefix_len());
            let off = u32::try_from(offset % u128::from(size)).unwrap_or(0);
            IpAddr::V4(base.wrapping_add(off).into())
        }
        IpNet::V6(n) => {
            let base = u128::from(n.network());
            IpAddr::V6(base.wrapping_add(offset).into())
        }
    }
}

/// Position of `addr` inside `net` (0 for the network address).
pub fn addr_offset(net: &IpNet, addr: IpAddr) -> u128 {
    match (net, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a).wrapping_sub(u32::from(n.network()))),
        (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a).wrapping_sub(u128::from(n.network())),
        _ => u128::MAX,
    }
}

/// Number of addresses in a prefix (saturating for huge IPv6 prefixes).
pub fn size(net: &IpNet) -> u128 {
    let host_bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().expect("valid prefix")
    }

    #[test]
    fn strict_cidr() {
        assert_eq!(parse_cidr("10.0.0.0/16", "x").expect("ok"), n("10.0.0.0/16"));
        assert_eq!(parse_cidr("10.0.0.1/16", "x").expect_err("host bits").code, "InvalidCIDRNotation");
        assert_eq!(parse_cidr("10.0.0/16", "x").expect_err("bad").code, "InvalidAddressPrefixFormat");
        assert_eq!(parse_cidr("10.0.0.0/33", "x").expect_err("bad").code, "InvalidAddressPrefixFormat");
    }

    #[test]
    fn overlap_and_reserved() {
        assert!(overlaps(&n("10.0.0.0/16"), &n("10.0.5.0/24")));
        assert!(!overlaps(&n("10.0.0.0/16"), &n("10.1.0.0/16")));
        let s = n("10.0.1.0/24");
        assert!(is_reserved_in_subnet(&s, "10.0.1.3".parse().expect("ip")));
        assert!(!is_reserved_in_subnet(&s, "10.0.1.4".parse().expect("ip")));
        assert!(is_reserved_in_subnet(&s, "10.0.1.255".parse().expect("ip")));
        assert_eq!(nth_address(&s, 4).to_string(), "10.0.1.4");
        assert_eq!(size(&s), 256);
    }
}
