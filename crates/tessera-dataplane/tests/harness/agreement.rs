//! Agreement: for random topologies and flows, what the switch does to a packet is what the
//! engine's Network Watcher says about it — delivered exactly when `ipFlowVerify` allows it
//! outbound at the source, `nextHop` routes it inside the VNet or over a peering, and
//! `ipFlowVerify` allows it inbound at the destination; and a drop names the first of those
//! that failed.

use std::fmt::Write as _;

use proptest::prelude::*;
use serde_json::Value;
use tessera_dataplane::DropReason;
use tessera_engine::diag::{resolve, watcher};
use tessera_model::Kind;
use tessera_model::security::Direction;

use crate::lab::{Lab, Sent};

/// One link of a pair: absent, or present with (allowVirtualNetworkAccess, allowForwardedTraffic).
type Link = Option<(bool, bool)>;

#[derive(Debug, Clone)]
struct Rule {
    inbound: bool,
    allow: bool,
    proto: &'static str,
    port: &'static str,
    source: usize,
}

#[derive(Debug, Clone)]
struct Topology {
    /// Subnets per VNet (1 or 2).
    vnets: Vec<usize>,
    /// Links for every ordered pair (i, k), i != k.
    links: Vec<((usize, usize), Link)>,
    /// NSGs (rules), and where each is attached: subnet (vnet, subnet) or a VM's NIC.
    nsgs: Vec<Vec<Rule>>,
    subnet_nsg: Vec<Option<usize>>,
    nic_nsg: Vec<Option<usize>>,
    /// A blackhole UDR (next hop None) on a subnet towards a VNet.
    blackhole: Option<(usize, usize)>,
}

const PORTS: &[&str] = &["22", "80", "*"];
const PROTOS: &[&str] = &["Tcp", "Udp", "*"];

fn vm_names(t: &Topology) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (i, subnets) in t.vnets.iter().enumerate() {
        for j in 0..*subnets {
            out.push((format!("vm{i}{j}"), format!("v{i}/s{j}"), format!("10.{}.{j}.4", i + 1)));
        }
    }
    out
}

/// Source prefixes rules choose from: any, the VirtualNetwork tag, or one VNet's space.
fn source_text(t: &Topology, source: usize) -> String {
    match source {
        0 => "*".into(),
        1 => "VirtualNetwork".into(),
        n => format!("10.{}.0.0/16", (n - 2) % t.vnets.len() + 1),
    }
}

fn yaml(t: &Topology) -> String {
    let mut y = String::from("vnets:\n");
    let mut subnet_index = 0;
    for (i, subnets) in t.vnets.iter().enumerate() {
        let _ = writeln!(y, "  - name: v{i}\n    addressSpace: [10.{}.0.0/16]\n    subnets:", i + 1);
        for j in 0..*subnets {
            let mut extra = String::new();
            if let Some(Some(n)) = t.subnet_nsg.get(subnet_index) {
                let _ = write!(extra, ", nsg: nsg{n}");
            }
            if t.blackhole.is_some_and(|(s, _)| s == subnet_index) {
                extra.push_str(", routeTable: blackhole");
            }
            let _ = writeln!(y, "      - {{ name: s{j}, prefix: 10.{}.{j}.0/24{extra} }}", i + 1);
            subnet_index += 1;
        }
    }
    if !t.nsgs.is_empty() {
        y.push_str("nsgs:\n");
        for (n, rules) in t.nsgs.iter().enumerate() {
            let _ = writeln!(y, "  - name: nsg{n}\n    rules:");
            if rules.is_empty() {
                y.push_str("      []\n");
            }
            for (r, rule) in rules.iter().enumerate() {
                let _ = writeln!(
                    y,
                    "      - {{ name: r{r}, priority: {}, direction: {}, access: {}, protocol: \"{}\", source: \"{}\", destinationPorts: \"{}\" }}",
                    100 + r,
                    if rule.inbound { "Inbound" } else { "Outbound" },
                    if rule.allow { "Allow" } else { "Deny" },
                    rule.proto,
                    source_text(t, rule.source),
                    rule.port
                );
            }
        }
    }
    if let Some((_, to)) = t.blackhole {
        let _ = writeln!(
            y,
            "routeTables:\n  - name: blackhole\n    routes:\n      - {{ name: drop, prefix: 10.{}.0.0/16, nextHop: None }}",
            to % t.vnets.len() + 1
        );
    }
    y.push_str("vms:\n");
    for (k, (name, subnet, ip)) in vm_names(t).iter().enumerate() {
        let nsg = match t.nic_nsg.get(k) {
            Some(Some(n)) => format!(", nsg: nsg{n}"),
            _ => String::new(),
        };
        let _ = writeln!(y, "  - {{ name: {name}, subnet: {subnet}, ip: {ip}{nsg} }}");
    }
    let links: Vec<_> = t.links.iter().filter(|(_, l)| l.is_some()).collect();
    if !links.is_empty() {
        y.push_str("peerings:\n");
        for ((i, k), link) in links {
            if let Some((access, forwarded)) = link {
                let _ = writeln!(
                    y,
                    "  - {{ from: v{i}, to: v{k}, allowVirtualNetworkAccess: {access}, allowForwardedTraffic: {forwarded} }}"
                );
            }
        }
    }
    y
}

fn topology() -> impl Strategy<Value = Topology> {
    (2usize..=3).prop_flat_map(|n| {
        let pairs: Vec<(usize, usize)> =
            (0..n).flat_map(|i| (0..n).filter(move |k| *k != i).map(move |k| (i, k))).collect();
        let rule = (any::<bool>(), any::<bool>(), 0..PROTOS.len(), 0..PORTS.len(), 0usize..(2 + n)).prop_map(
            |(inbound, allow, p, port, source)| Rule { inbound, allow, proto: PROTOS[p], port: PORTS[port], source },
        );
        (
            prop::collection::vec(1usize..=2, n),
            prop::collection::vec(prop::option::weighted(0.7, (prop::bool::weighted(0.8), any::<bool>())), pairs.len()),
            prop::collection::vec(prop::collection::vec(rule, 0..4), 0..3),
            prop::collection::vec(any::<prop::sample::Index>(), 2 * n),
            prop::collection::vec(any::<prop::sample::Index>(), 2 * n),
            prop::option::weighted(0.2, (0usize..2 * n, 0usize..n)),
            Just(pairs),
        )
            .prop_map(|(vnets, links, nsgs, subnet_pick, nic_pick, blackhole, pairs)| {
                let subnets: usize = vnets.iter().sum();
                let pick = |p: &[prop::sample::Index], count: usize| -> Vec<Option<usize>> {
                    // Index n (one past the NSGs) means "no NSG".
                    p.iter()
                        .take(count)
                        .map(|i| i.index(nsgs.len() + 1))
                        .map(|x| (x < nsgs.len()).then_some(x))
                        .collect()
                };
                Topology {
                    links: pairs.into_iter().zip(links).collect(),
                    subnet_nsg: pick(&subnet_pick, subnets),
                    nic_nsg: pick(&nic_pick, subnets),
                    blackhole: blackhole.filter(|(s, _)| *s < subnets),
                    nsgs,
                    vnets,
                }
            })
    })
}

fn flow_params(
    lab: &Lab,
    vm: &str,
    inbound: bool,
    proto: &str,
    local: (&str, u16),
    remote: (&str, u16),
) -> watcher::IpFlowParameters {
    watcher::IpFlowParameters {
        target_resource_id: resolve::resolve(&lab.engine, Kind::VirtualMachine, vm).expect("vm"),
        direction: if inbound { Direction::Inbound } else { Direction::Outbound },
        protocol: proto.into(),
        local_port: local.1.to_string(),
        remote_port: remote.1.to_string(),
        local_ip_address: local.0.into(),
        remote_ip_address: remote.0.into(),
        target_nic_resource_id: None,
    }
}

fn access(v: &Value) -> bool {
    v["access"] == "Allow"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_switch_agrees_with_ip_flow_verify_and_next_hop(
        t in topology(),
        flows in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>(), 0usize..2), 1..6),
    ) {
        let text = yaml(&t);
        let mut lab = Lab::new(&text);
        let vms = vm_names(&t);
        for (n, (a, b, udp, port)) in flows.into_iter().enumerate() {
            let (src, dst) = (a.index(vms.len()), b.index(vms.len()));
            if src == dst {
                continue;
            }
            let (src_vm, _, src_ip) = &vms[src];
            let (dst_vm, _, dst_ip) = &vms[dst];
            let sport = 40_000 + u16::try_from(n).unwrap_or(0);
            let dport = [22u16, 80][port];
            let proto = if udp { "UDP" } else { "TCP" };
            let out = watcher::ip_flow_verify(&lab.engine, &flow_params(&lab, src_vm, false, proto, (src_ip, sport), (dst_ip, dport)))
                .expect("ipFlowVerify outbound");
            let hop = watcher::next_hop(&lab.engine, &watcher::NextHopParameters {
                target_resource_id: resolve::resolve(&lab.engine, Kind::VirtualMachine, src_vm).expect("vm"),
                source_ip_address: src_ip.clone(),
                destination_ip_address: dst_ip.clone(),
                target_nic_resource_id: None,
            }).expect("nextHop");
            let inb = watcher::ip_flow_verify(&lab.engine, &flow_params(&lab, dst_vm, true, proto, (dst_ip, dport), (src_ip, sport)))
                .expect("ipFlowVerify inbound");
            let routed = matches!(hop["nextHopType"].as_str(), Some("VirtualNetwork" | "VnetLocal" | "VirtualNetworkPeering"));
            let expect = access(&out) && routed && access(&inb);
            let dst_addr = dst_ip.parse().expect("ip");
            let frame = if udp { lab.udp(src_vm, dst_addr, sport, dport) } else { lab.tcp(src_vm, dst_addr, sport, dport, "S") };
            let sent = lab.send(src_vm, frame);
            let why = format!("{src_vm} -> {dst_vm} {proto}/{dport}: out {out}, hop {hop}, in {inb}\n{text}");
            match sent {
                Sent::Deliver { port, .. } => {
                    prop_assert!(expect, "delivered, but the engine says no: {why}");
                    prop_assert_eq!(port, lab.port(dst_vm), "delivered to the wrong port: {}", why);
                }
                Sent::Drop(reason) => {
                    prop_assert!(!expect, "dropped ({reason:?}), but the engine allows it: {why}");
                    if !access(&out) {
                        prop_assert_eq!(reason, DropReason::NsgDeniedOutbound, "{}", why);
                    } else if !routed {
                        prop_assert!(matches!(reason, DropReason::NoRoute | DropReason::PeeringNotConnected), "{reason:?}: {why}");
                    } else {
                        prop_assert_eq!(reason, DropReason::NsgDeniedInbound, "{}", why);
                    }
                }
                Sent::Hairpin(_) | Sent::Encap { .. } => prop_assert!(false, "every port is local here: {}", why),
            }
        }
    }
}
