//! Property tests: route selection (SEL1–SEL4) equals a brute-force reference on random route
//! sets, and overlap detection (R1) equals a brute-force interval check, both on the prefix
//! helper and through the peering validation of the engine.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use tessera_engine::Limits;
use tessera_engine::compile::routes::{EffectiveRoute, NextHopType, RouteProgram, RouteSource, Target, select};
use tessera_engine::load::{self, Format};
use tessera_model::prefix::{self, IpNet};

fn net(a: u32, len: u8) -> IpNet {
    let n: IpNet = ipnet::Ipv4Net::new(Ipv4Addr::from(a), len).expect("valid length").into();
    n.trunc()
}

/// Routes drawn from a small space (10.0.0.0/16 and around) so that they overlap often.
fn route_strategy() -> impl Strategy<Value = EffectiveRoute> {
    let kinds = prop_oneof![
        Just((RouteSource::Default, NextHopType::VnetLocal)),
        Just((RouteSource::Default, NextHopType::VNetPeering)),
        Just((RouteSource::Default, NextHopType::VNetGlobalPeering)),
        Just((RouteSource::Default, NextHopType::Internet)),
        Just((RouteSource::Default, NextHopType::None)),
        Just((RouteSource::VirtualNetworkGateway, NextHopType::VirtualNetworkGateway)),
        Just((RouteSource::User, NextHopType::VirtualAppliance)),
        Just((RouteSource::User, NextHopType::None)),
        Just((RouteSource::User, NextHopType::VnetLocal)),
    ];
    (0u32..=0xFFFF, 8u8..=28, kinds).prop_map(|(low, len, (source, next_hop))| EffectiveRoute {
        prefix: net(0x0A00_0000 | low, len),
        source,
        next_hop,
        next_hop_ips: Vec::new(),
        name: None,
        route_table: None,
        active: true,
        target: Target::Nothing,
    })
}

fn protected(r: &EffectiveRoute) -> bool {
    r.source == RouteSource::Default
        && matches!(r.next_hop, NextHopType::VnetLocal | NextHopType::VNetPeering | NextHopType::VNetGlobalPeering)
}

fn class(r: &EffectiveRoute) -> u8 {
    match r.source {
        RouteSource::User => 3,
        _ if protected(r) => 2,
        RouteSource::VirtualNetworkGateway => 1,
        RouteSource::Default => 0,
    }
}

/// The reference, by brute force over the whole list: a route is Active when no route on the
/// same prefix has a better class (SEL4, User > VNet/peering system > BGP > other system); among
/// the Active routes containing the address, BGP routes drop out when any VNet or peering system
/// route contains it (SEL3, even one a UDR overrides); the longest prefix wins (SEL1), then the
/// best class (SEL2).
fn reference(routes: &[EffectiveRoute], dst: IpAddr) -> Option<(IpNet, u8)> {
    let active = |r: &EffectiveRoute| routes.iter().filter(|o| o.prefix == r.prefix).all(|o| class(o) <= class(r));
    let shielded = routes.iter().any(|r| protected(r) && r.prefix.contains(&dst));
    let hits: Vec<&EffectiveRoute> = routes
        .iter()
        .filter(|r| r.prefix.contains(&dst) && active(r))
        .filter(|r| !(shielded && r.source == RouteSource::VirtualNetworkGateway))
        .collect();
    let longest = hits.iter().map(|r| r.prefix.prefix_len()).max()?;
    let best = hits.iter().filter(|r| r.prefix.prefix_len() == longest).map(|r| class(r)).max()?;
    Some((hits.iter().find(|r| r.prefix.prefix_len() == longest)?.prefix, best))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn route_selection_matches_reference(routes in prop::collection::vec(route_strategy(), 1..40), probes in prop::collection::vec(0u32..=0xFFFF, 1..20)) {
        let original = routes.clone();
        let mut routes = routes;
        select(&mut routes);
        // SEL4: on every prefix, only the best class stays Active.
        for r in &routes {
            let best = routes.iter().filter(|o| o.prefix == r.prefix).map(class).max().unwrap_or(0);
            prop_assert_eq!(r.active, class(r) == best);
        }
        let program = RouteProgram::new(routes.clone());
        for p in probes {
            let dst = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | p));
            let got = program.lookup(dst).map(|r| (r.prefix, class(r)));
            prop_assert_eq!(got, reference(&original, dst), "dst {}", dst);
        }
    }

    #[test]
    fn overlap_matches_interval_reference(a in prop::collection::vec((0u32..=0xFFFF, 12u8..=28), 1..4), b in prop::collection::vec((0u32..=0xFFFF, 12u8..=28), 1..4)) {
        let a: Vec<IpNet> = a.into_iter().map(|(x, l)| net(0x0A00_0000 | x, l)).collect();
        let b: Vec<IpNet> = b.into_iter().map(|(x, l)| net(0x0A00_0000 | x, l)).collect();
        let range = |n: &IpNet| match n {
            IpNet::V4(v) => (u32::from(v.network()), u32::from(v.broadcast())),
            IpNet::V6(_) => (0, 0),
        };
        let brute = a.iter().any(|x| b.iter().any(|y| {
            let ((s1, e1), (s2, e2)) = (range(x), range(y));
            s1 <= e2 && s2 <= e1
        }));
        prop_assert_eq!(!prefix::overlapping(&a, &b).is_empty(), brute);
    }

    #[test]
    fn peering_refused_exactly_when_spaces_overlap(x in 0u32..=0xFF, xl in 8u8..=24, y in 0u32..=0xFF, yl in 8u8..=24) {
        let a = net(0x0A00_0000 | (x << 12), xl);
        let b = net(0x0A00_0000 | (y << 12), yl);
        let yaml = format!(
            "vnets:\n  - {{ name: a, addressSpace: [{a}] }}\n  - {{ name: b, addressSpace: [{b}] }}\npeerings:\n  - {{ from: a, to: b, reverse: {{}} }}\n"
        );
        let brute = {
            let (IpNet::V4(p), IpNet::V4(q)) = (a, b) else { unreachable!() };
            u32::from(p.network()) <= u32::from(q.broadcast()) && u32::from(q.network()) <= u32::from(p.broadcast())
        };
        match load::load(&yaml, Format::Yaml, Limits::default()) {
            Ok(_) => prop_assert!(!brute, "{} and {} overlap but were peered", a, b),
            Err(e) => {
                prop_assert!(brute, "{} and {} refused: {}", a, b, e);
                prop_assert_eq!(e.code, "VnetAddressSpacesOverlap");
            }
        }
    }
}
