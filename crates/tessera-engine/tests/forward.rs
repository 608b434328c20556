//! The forwarding step (`forward::step`), the inbound check of a packet from another host
//! (`forward::admit_inbound`) and the multi-hop walk built on them (`diag::trace::trace`).
//!
//! `every_cause_has_a_case` holds one named case (or more) per `Cause`, so a new cause without
//! a case fails it. Rule numbers are from `../shared/spec/azure-semantics.md`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::resolve;
use tessera_engine::diag::trace::{HopType, trace};
use tessera_engine::forward::{self, Cause, Exit, Flow, MAX_HOPS, Verdict};
use tessera_engine::load::{self, Format};
use tessera_engine::{Change, Engine, Limits, NicProgram};
use tessera_model::Kind;
use tessera_model::network::PeeringState;

// ---------------------------------------------------------------------------------------------
// Topologies

/// One VNet: an NSG on a NIC and one on a subnet, a route table with a None route and
/// appliance routes (to an appliance without IP forwarding, to an address no NIC holds, to an
/// address outside the VNet), and two forwarding appliances whose subnets route 10.0.7.0/24 to
/// each other.
const SINGLE: &str = r#"
location: westeurope
vnets:
  - name: net
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: app, prefix: 10.0.0.0/24 }
      - { name: locked, prefix: 10.0.1.0/24, nsg: locked-nsg }
      - { name: udr, prefix: 10.0.2.0/24, routeTable: udr-rt }
      - { name: nva, prefix: 10.0.3.0/24 }
      - { name: loop-a, prefix: 10.0.10.0/24, routeTable: loop-a-rt }
      - { name: loop-b, prefix: 10.0.11.0/24, routeTable: loop-b-rt }
nsgs:
  - name: no-ssh-out
    rules:
      - { name: deny-ssh-out, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPorts: "22" }
  - name: locked-nsg
    rules:
      - { name: deny-rdp, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPorts: "3389" }
routeTables:
  - name: udr-rt
    routes:
      - { name: blackhole, prefix: 10.0.8.0/24, nextHop: None }
      - { name: via-nva-off, prefix: 10.0.4.0/24, nextHop: VirtualAppliance, nextHopIp: 10.0.3.4 }
      - { name: via-nobody, prefix: 10.0.5.0/24, nextHop: VirtualAppliance, nextHopIp: 10.0.3.99 }
      - { name: via-far, prefix: 10.0.6.0/24, nextHop: VirtualAppliance, nextHopIp: 172.16.0.4 }
  - name: loop-a-rt
    routes: [{ name: to-b, prefix: 10.0.7.0/24, nextHop: VirtualAppliance, nextHopIp: 10.0.11.4 }]
  - name: loop-b-rt
    routes: [{ name: to-a, prefix: 10.0.7.0/24, nextHop: VirtualAppliance, nextHopIp: 10.0.10.4 }]
vms:
  - { name: app-vm, subnet: net/app, ip: 10.0.0.4 }
  - { name: guarded-vm, subnet: net/app, ip: 10.0.0.5, nsg: no-ssh-out }
  - { name: locked-vm, subnet: net/locked, ip: 10.0.1.4 }
  - { name: udr-vm, subnet: net/udr, ip: 10.0.2.4 }
  - { name: nva-off, subnet: net/nva, ip: 10.0.3.4 }
  - { name: loop-vm, subnet: net/loop-a, ip: 10.0.10.5 }
  - { name: nva-a, subnet: net/loop-a, ip: 10.0.10.4, ipForwarding: true }
  - { name: nva-b, subnet: net/loop-b, ip: 10.0.11.4, ipForwarding: true }
"#;

/// Two VNets peered both ways (P2).
const PAIR: &str = r#"
location: westeurope
vnets:
  - { name: a, addressSpace: [10.1.0.0/16], subnets: [{ name: default, prefix: 10.1.0.0/24 }] }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
vms:
  - { name: a-vm, subnet: a/default, ip: 10.1.0.4 }
  - { name: b-vm, subnet: b/default, ip: 10.2.0.4 }
peerings:
  - { from: a, to: b, reverse: {} }
"#;

/// Hub and spokes with a forwarding appliance in the hub, but no link allows forwarded traffic.
const HUB_NVA_NO_FORWARDING: &str = r#"
location: westeurope
vnets:
  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: nva, prefix: 10.0.1.0/24 }] }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: spoke1-rt }]
  - { name: spoke2, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
routeTables:
  - name: spoke1-rt
    routes: [{ name: to-spoke2, prefix: 10.2.0.0/16, nextHop: VirtualAppliance, nextHopIp: 10.0.1.4 }]
vms:
  - { name: hub-nva, subnet: hub/nva, ip: 10.0.1.4, ipForwarding: true }
  - { name: spoke1-vm, subnet: spoke1/default, ip: 10.1.0.4 }
  - { name: spoke2-vm, subnet: spoke2/default, ip: 10.2.0.4 }
peerings:
  - { from: hub, to: spoke1, reverse: {} }
  - { from: hub, to: spoke2, reverse: {} }
"#;

/// The same spokes relayed by the hub's VPN gateway instead (GWY6); no link allows forwarded
/// traffic either.
const HUB_GATEWAY_RELAY: &str = r#"
location: westeurope
vnets:
  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: GatewaySubnet, prefix: 10.0.255.0/27 }] }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: spoke1-rt }]
  - { name: spoke2, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
routeTables:
  - name: spoke1-rt
    routes: [{ name: to-spoke2, prefix: 10.2.0.0/16, nextHop: VirtualNetworkGateway }]
gateways:
  - { name: hub-gw, vnet: hub, type: Vpn, sku: VpnGw1 }
vms:
  - { name: spoke1-vm, subnet: spoke1/default, ip: 10.1.0.4 }
  - { name: spoke2-vm, subnet: spoke2/default, ip: 10.2.0.4 }
peerings:
  - { from: hub, to: spoke1, allowGatewayTransit: true, reverse: { useRemoteGateways: true } }
  - { from: hub, to: spoke2, allowGatewayTransit: true, reverse: { useRemoteGateways: true } }
"#;

/// A VNet with its own VPN gateway and an on-premises site; a UDR sends 10.50.0.0/16, which
/// nothing behind the gateway holds, to the gateway.
const GATEWAY: &str = r#"
location: westeurope
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: default, prefix: 10.0.0.0/24, routeTable: to-gateway }
      - { name: GatewaySubnet, prefix: 10.0.255.0/27 }
routeTables:
  - name: to-gateway
    routes: [{ name: dead-end, prefix: 10.50.0.0/16, nextHop: VirtualNetworkGateway }]
gateways:
  - { name: hub-gw, vnet: hub, type: Vpn, sku: VpnGw1 }
sites:
  - { name: onprem, addressSpace: [192.168.0.0/16], gatewayIp: 203.0.113.10 }
connections:
  - { name: hub-to-onprem, gateway: hub-gw, site: onprem }
vms:
  - { name: hub-vm, subnet: hub/default, ip: 10.0.0.4 }
"#;

/// Subnet peering (SP1, SP5): only s1 and t1 are peered; s2 still gets the route to t1.
const SUBNET_PEERING: &str = r#"
location: westeurope
vnets:
  - name: vnet1
    addressSpace: [10.1.0.0/16]
    subnets:
      - { name: s1, prefix: 10.1.1.0/24 }
      - { name: s2, prefix: 10.1.2.0/24 }
  - name: vnet2
    addressSpace: [10.2.0.0/16]
    subnets:
      - { name: t1, prefix: 10.2.1.0/24 }
      - { name: t2, prefix: 10.2.2.0/24 }
vms:
  - { name: s1-vm, subnet: vnet1/s1, ip: 10.1.1.4 }
  - { name: s2-vm, subnet: vnet1/s2, ip: 10.1.2.4 }
  - { name: t1-vm, subnet: vnet2/t1, ip: 10.2.1.4 }
peerings:
  - from: vnet1
    to: vnet2
    localSubnets: [s1]
    remoteSubnets: [t1]
    reverse: { localSubnets: [t1], remoteSubnets: [s1] }
"#;

/// A Standard internal load balancer: `http` (80 -> 8080) and `admin` (8443 -> 9443) over two
/// backends whose subnet NSG denies 9443, and `spare` (8080) over an empty pool.
const ILB: &str = r#"
location: eastus
vnets:
  - name: web
    addressSpace: [10.10.0.0/16]
    subnets:
      - { name: front, prefix: 10.10.0.0/24 }
      - { name: backend, prefix: 10.10.1.0/24, nsg: backend-nsg }
nsgs:
  - name: backend-nsg
    rules:
      - { name: deny-admin, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPorts: "9443" }
loadBalancers:
  - name: ilb
    sku: Standard
    frontends: [{ name: fe, subnet: web/front, ip: 10.10.0.100 }]
    pools: [web, spare]
    rules:
      - { name: http, frontend: fe, pool: web, frontendPort: 80, backendPort: 8080 }
      - { name: admin, frontend: fe, pool: web, frontendPort: 8443, backendPort: 9443 }
      - { name: spare, frontend: fe, pool: spare, frontendPort: 8080, backendPort: 8080 }
vms:
  - { name: client-vm, subnet: web/front, ip: 10.10.0.4 }
  - { name: web1, subnet: web/backend, ip: 10.10.1.4, backendPools: [ilb/web] }
  - { name: web2, subnet: web/backend, ip: 10.10.1.5, backendPools: [ilb/web] }
"#;

// ---------------------------------------------------------------------------------------------
// Helpers

fn engine(yaml: &str) -> Engine {
    load::load(yaml, Format::Yaml, Limits::default()).expect("valid topology")
}

fn example(name: &str) -> Engine {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    engine(&std::fs::read_to_string(path).expect("example"))
}

/// A snapshot of `yaml`'s engine, edited, then loaded back. A snapshot is restored as stored,
/// without validation (load::restore), so it can hold link states no API call produces.
fn restored_with(yaml: &str, edit: impl FnOnce(&mut Value)) -> Engine {
    let mut doc = load::export(&engine(yaml));
    edit(&mut doc);
    load::load(&doc.to_string(), Format::Json, Limits::default()).expect("snapshot restores")
}

/// The `virtualNetworkPeerings` of the VNet named `vnet` in a snapshot.
fn links_of<'a>(doc: &'a mut Value, vnet: &str) -> &'a mut Vec<Value> {
    doc["resources"]
        .as_array_mut()
        .expect("resources")
        .iter_mut()
        .find(|r| r["type"] == "Microsoft.Network/virtualNetworks" && r["name"] == vnet)
        .expect("vnet in the snapshot")["properties"]["virtualNetworkPeerings"]
        .as_array_mut()
        .expect("links")
}

fn program(e: &Engine, vm: &str) -> Arc<NicProgram> {
    let nic = resolve::resolve_nic(e, vm).expect("nic");
    e.program(&nic).expect("program")
}

fn nic_of(e: &Engine, vm: &str) -> tessera_model::ResourceId {
    resolve::resolve_nic(e, vm).expect("nic")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn tcp(src: &str, dst: &str, dport: u16) -> Flow {
    Flow::new(Protocol::Tcp, ip(src), 50000, ip(dst), dport)
}

fn udp(src: &str, dst: &str, dport: u16) -> Flow {
    Flow::new(Protocol::Udp, ip(src), 50000, ip(dst), dport)
}

#[track_caller]
fn delivered_to(v: Verdict) -> (tessera_model::ResourceId, Option<(IpAddr, u16)>) {
    match v {
        Verdict::Deliver { nic, translated } => (nic.nic.clone(), translated),
        other => panic!("expected Deliver, got {other:?}"),
    }
}

#[track_caller]
fn dropped(v: Verdict) -> Cause {
    match v {
        Verdict::Drop(c) => c,
        other => panic!("expected Drop, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Every cause

/// How a case is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// One `forward::step` from the source port gives `Drop(cause)`.
    Step,
    /// Only a multi-hop walk sees it: `trace`'s last hop names the cause.
    Walk,
}

struct Case {
    name: &'static str,
    cause: Cause,
    engine: Engine,
    from: &'static str,
    flow: Flow,
    via: Via,
}

fn case(name: &'static str, cause: Cause, engine: &Engine, from: &'static str, flow: Flow) -> Case {
    Case { name, cause, engine: engine.clone(), from, flow, via: Via::Step }
}

impl Case {
    fn by_walk(mut self) -> Self {
        self.via = Via::Walk;
        self
    }
}

fn cases() -> Vec<Case> {
    let single = engine(SINGLE);
    let hub_nva = engine(HUB_NVA_NO_FORWARDING);
    let gateway = engine(GATEWAY);
    let subnet_peering = engine(SUBNET_PEERING);
    let ilb = engine(ILB);
    let global_ilb = example("global-peering-ilb.yaml");
    // Only a restored snapshot can hold a Connected link whose partner is missing or not
    // Connected: through the API a link is Connected only while its partner is (P1-P3), and
    // routes exist only over Connected links.
    let no_link_back = restored_with(PAIR, |doc| links_of(doc, "b").clear());
    let link_back_initiated =
        restored_with(PAIR, |doc| links_of(doc, "b")[0]["properties"]["peeringState"] = "Initiated".into());

    vec![
        // N3: outbound, the NIC NSG is evaluated first; its rule denies SSH.
        case(
            "nic_nsg_denies_outbound",
            Cause::NsgDeniedOutbound,
            &single,
            "guarded-vm",
            tcp("10.0.0.5", "10.0.0.4", 22),
        ),
        // N3: inbound, the destination subnet's NSG denies RDP, within one VNet too.
        case(
            "subnet_nsg_denies_inbound",
            Cause::NsgDeniedInbound,
            &single,
            "app-vm",
            tcp("10.0.0.4", "10.0.1.4", 3389),
        ),
        // An IPv4-only VNet has no ::/0 route: nothing covers an IPv6 destination.
        case(
            "ipv6_destination_from_ipv4_only_vnet",
            Cause::NoRoute,
            &single,
            "app-vm",
            tcp("10.0.0.4", "2001:db8::4", 443),
        ),
        // RT2 / SEL5: 10.0.0.0/8 outside the VNet's space keeps its system None route.
        case("reserved_prefix_none_route", Cause::NextHopNone, &single, "app-vm", tcp("10.0.0.4", "10.99.0.4", 22)),
        // U1 / SEL1 / SEL5: a more specific UDR with next hop None overrides VnetLocal.
        case("udr_next_hop_none", Cause::NextHopNone, &single, "udr-vm", tcp("10.0.2.4", "10.0.8.4", 22)),
        case(
            "restored_link_without_partner",
            Cause::NoPeeringBack,
            &no_link_back,
            "a-vm",
            tcp("10.1.0.4", "10.2.0.4", 22),
        ),
        case(
            "restored_link_back_initiated",
            Cause::PeeringNotConnected,
            &link_back_initiated,
            "a-vm",
            tcp("10.1.0.4", "10.2.0.4", 22),
        ),
        // SP5: s2 is not peered but has the route to t1; the packet is dropped on arrival.
        case("non_peered_subnet", Cause::SubnetNotPeered, &subnet_peering, "s2-vm", tcp("10.1.2.4", "10.2.1.4", 22)),
        // R3 / U4: the hub appliance forwards spoke1's packet, but spoke2's link to the hub does
        // not allow forwarded traffic (the source is outside the hub's space).
        case(
            "appliance_forwarding_into_spoke_without_flag",
            Cause::ForwardedTrafficNotAllowed,
            &hub_nva,
            "hub-nva",
            tcp("10.1.0.4", "10.2.0.4", 22),
        ),
        case("unused_address_in_vnet", Cause::NoResourceAtAddress, &single, "app-vm", tcp("10.0.0.4", "10.0.0.99", 22)),
        // U4: the appliance address is in the VNet but no NIC holds it.
        case(
            "appliance_address_unused",
            Cause::ApplianceUnreachable,
            &single,
            "udr-vm",
            tcp("10.0.2.4", "10.0.5.4", 22),
        ),
        // U4: the appliance address is outside the VNet and its peerings (not directly reachable).
        case("appliance_not_direct", Cause::ApplianceUnreachable, &single, "udr-vm", tcp("10.0.2.4", "10.0.6.4", 22)),
        // U4: the appliance's NIC has IP forwarding off.
        case(
            "appliance_without_ip_forwarding",
            Cause::IpForwardingDisabled,
            &single,
            "udr-vm",
            tcp("10.0.2.4", "10.0.4.4", 22),
        ),
        // U3 / GWY6: the UDR sends the packet to the VPN gateway, whose GatewaySubnet routes
        // 10.50.0.0/16 nowhere (only to the reserved None route).
        case("gateway_without_route", Cause::GatewayHasNoRoute, &gateway, "hub-vm", tcp("10.0.0.4", "10.50.0.4", 22)),
        // LB1: west (West Europe) is globally peered with web (East US): a Basic ILB frontend
        // there is unreachable.
        case(
            "basic_ilb_over_global_peering",
            Cause::BasicLoadBalancerOverGlobalPeering,
            &global_ilb,
            "west-vm",
            tcp("10.20.0.4", "10.10.0.100", 80),
        ),
        case(
            "ilb_no_rule_for_port",
            Cause::NoLoadBalancingRule,
            &ilb,
            "client-vm",
            tcp("10.10.0.4", "10.10.0.100", 443),
        ),
        // The http rule is Tcp: a UDP flow to port 80 has no rule.
        case(
            "ilb_no_rule_for_protocol",
            Cause::NoLoadBalancingRule,
            &ilb,
            "client-vm",
            udp("10.10.0.4", "10.10.0.100", 80),
        ),
        case("ilb_empty_pool", Cause::NoHealthyBackend, &ilb, "client-vm", tcp("10.10.0.4", "10.10.0.100", 8080)),
        // Every backend's NSG denies the backend port (N3 on the translated flow): the step and
        // the walk both name the backend's NSG rule.
        case(
            "ilb_backends_deny_port",
            Cause::NsgDeniedInbound,
            &ilb,
            "client-vm",
            tcp("10.10.0.4", "10.10.0.100", 8443),
        ),
        // U4 appliances whose routes point at each other: each step hands the packet on, only
        // the walk sees the loop.
        case(
            "appliances_route_to_each_other",
            Cause::RoutingLoop,
            &single,
            "loop-vm",
            tcp("10.0.10.5", "10.0.7.4", 22),
        )
        .by_walk(),
        // 172.16.0.0/12 has no None route (O9), so the default route sends it to the internet.
        case(
            "private_address_to_internet",
            Cause::DestinationNotRoutableOnInternet,
            &single,
            "app-vm",
            tcp("10.0.0.4", "172.16.5.5", 443),
        ),
    ]
}

#[test]
fn every_cause_has_a_case() {
    let mut covered = BTreeSet::new();
    let mut names = BTreeSet::new();
    for c in cases() {
        assert!(names.insert(c.name), "two cases named {}", c.name);
        let from = program(&c.engine, c.from);
        let walk = trace(&c.engine, &from, c.flow);
        let last_issue = walk.hops.last().and_then(|h| h.issues.first()).map(|i| i.cause);
        match c.via {
            Via::Step => {
                match forward::step(&c.engine, &from, c.flow) {
                    Verdict::Drop(got) => assert_eq!(got, c.cause, "{}: step", c.name),
                    other => panic!("{}: expected Drop({:?}), got {other:?}", c.name, c.cause),
                }
                // The walk stops where the step does.
                assert!(!walk.reachable, "{}: the walk arrives", c.name);
                assert_eq!(last_issue, Some(c.cause), "{}: walk {:?}", c.name, walk.hops);
            }
            Via::Walk => {
                let first = forward::step(&c.engine, &from, c.flow);
                assert!(!matches!(first, Verdict::Drop(_)), "{}: the first step already drops: {first:?}", c.name);
                assert!(!walk.reachable, "{}: the walk arrives", c.name);
                assert_eq!(last_issue, Some(c.cause), "{}: walk {:?}", c.name, walk.hops);
            }
        }
        covered.insert(c.cause);
    }
    let all: BTreeSet<Cause> = Cause::ALL.iter().copied().collect();
    assert_eq!(all.len(), Cause::ALL.len(), "Cause::ALL lists a cause twice");
    let missing: Vec<&Cause> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "causes without a case: {missing:?}");
    assert_eq!(covered, all);
}

// ---------------------------------------------------------------------------------------------
// Verdicts other than Drop

#[test]
fn delivers_to_the_destination_nic() {
    let e = engine(SINGLE);
    let from = program(&e, "app-vm");
    // N2: AllowVnetInBound lets SSH through the subnet NSG that denies only RDP.
    let (nic, translated) = delivered_to(forward::step(&e, &from, tcp("10.0.0.4", "10.0.1.4", 22)));
    assert_eq!(nic, nic_of(&e, "locked-vm"));
    assert_eq!(translated, None);
    let t = trace(&e, &from, tcp("10.0.0.4", "10.0.1.4", 22));
    assert!(t.reachable);
    assert_eq!(t.hops.iter().map(|h| h.kind).collect::<Vec<_>>(), [HopType::Source, HopType::Destination]);

    // P2: over a Connected peering, to the NIC in the other VNet.
    let e = engine(PAIR);
    let (nic, _) = delivered_to(forward::step(&e, &program(&e, "a-vm"), tcp("10.1.0.4", "10.2.0.4", 22)));
    assert_eq!(nic, nic_of(&e, "b-vm"));

    // SP1: the peered subnet s1 reaches t1 (the contrast of non_peered_subnet).
    let e = engine(SUBNET_PEERING);
    let (nic, _) = delivered_to(forward::step(&e, &program(&e, "s1-vm"), tcp("10.1.1.4", "10.2.1.4", 22)));
    assert_eq!(nic, nic_of(&e, "t1-vm"));
}

#[test]
fn load_balancer_frontend_translates_to_a_backend() {
    let e = engine(ILB);
    let (nic, translated) =
        delivered_to(forward::step(&e, &program(&e, "client-vm"), tcp("10.10.0.4", "10.10.0.100", 80)));
    assert_eq!(nic, nic_of(&e, "web1"));
    assert_eq!(translated, Some((ip("10.10.1.4"), 8080)));
}

#[test]
fn lb1_basic_frontend_only_within_its_region() {
    let e = example("global-peering-ilb.yaml");
    let west = program(&e, "west-vm");
    // LB1: Standard works over global peering, and the backends stay reachable on their own
    // addresses; Basic works over regional peering.
    let (nic, translated) = delivered_to(forward::step(&e, &west, tcp("10.20.0.4", "10.10.0.101", 80)));
    assert_eq!((nic, translated), (nic_of(&e, "web1"), Some((ip("10.10.0.4"), 80))));
    let (nic, translated) = delivered_to(forward::step(&e, &west, tcp("10.20.0.4", "10.10.0.5", 80)));
    assert_eq!((nic, translated), (nic_of(&e, "web2"), None));
    let neighbour = program(&e, "neighbour-vm");
    let (nic, _) = delivered_to(forward::step(&e, &neighbour, tcp("10.30.0.4", "10.10.0.100", 80)));
    assert_eq!(nic, nic_of(&e, "web1"));
    assert_eq!(
        dropped(forward::step(&e, &west, tcp("10.20.0.4", "10.10.0.100", 80))),
        Cause::BasicLoadBalancerOverGlobalPeering
    );
}

#[test]
fn appliance_takes_the_packet_then_forwards_it() {
    // U4 service chaining: spoke1's UDR sends spoke2 to the hub's appliance in a peered VNet;
    // the spokes' links allow forwarded traffic.
    let e = example("hub-spoke-nva.yaml");
    let flow = tcp("10.1.0.4", "10.2.0.4", 22);
    let nva = match forward::step(&e, &program(&e, "spoke1-vm"), flow) {
        Verdict::Appliance(p) => p,
        other => panic!("expected Appliance, got {other:?}"),
    };
    assert_eq!(nva.nic, nic_of(&e, "hub-nva"));
    assert!(nva.ip_forwarding);
    let (nic, _) = delivered_to(forward::step(&e, &nva, flow));
    assert_eq!(nic, nic_of(&e, "spoke2-vm"));
    // The next step applies the destination's NSG: spoke2's subnet denies RDP.
    assert_eq!(dropped(forward::step(&e, &nva, tcp("10.1.0.4", "10.2.0.4", 3389))), Cause::NsgDeniedInbound);
    let t = trace(&e, &program(&e, "spoke1-vm"), flow);
    assert!(t.reachable);
    assert_eq!(
        t.hops.iter().map(|h| h.kind).collect::<Vec<_>>(),
        [HopType::Source, HopType::VirtualAppliance, HopType::Destination]
    );
}

#[test]
fn routing_loop_is_a_chain_of_appliance_steps() {
    let e = engine(SINGLE);
    let flow = tcp("10.0.10.5", "10.0.7.4", 22);
    let (a, b) = (nic_of(&e, "nva-a"), nic_of(&e, "nva-b"));
    let mut cur = program(&e, "loop-vm");
    let mut seen = Vec::new();
    for _ in 0..4 {
        cur = match forward::step(&e, &cur, flow) {
            Verdict::Appliance(p) => p,
            other => panic!("expected Appliance, got {other:?}"),
        };
        seen.push(cur.nic.clone());
    }
    assert_eq!(seen, [b.clone(), a.clone(), b, a]);
    let t = trace(&e, &program(&e, "loop-vm"), flow);
    assert!(!t.reachable);
    assert_eq!(t.hops.len(), 1 + MAX_HOPS, "the source, then one appliance hop per step");
    assert!(t.hops[1..].iter().all(|h| h.kind == HopType::VirtualAppliance));
}

#[test]
fn exits_to_the_internet() {
    let e = engine(SINGLE);
    let verdict = forward::step(&e, &program(&e, "app-vm"), tcp("10.0.0.4", "8.8.8.8", 443));
    assert!(matches!(verdict, Verdict::Exit(Exit::Internet)), "{verdict:?}");
    // N2: AllowInternetOutBound lets it through the NIC NSG that denies only SSH.
    let verdict = forward::step(&e, &program(&e, "guarded-vm"), tcp("10.0.0.5", "8.8.8.8", 443));
    assert!(matches!(verdict, Verdict::Exit(Exit::Internet)), "{verdict:?}");
}

#[test]
fn exits_through_the_gateway_to_on_premises() {
    // GW1 / SEL2: the site's prefix is a gateway route, preferred over the 192.168.0.0/16 None
    // route on the equal prefix.
    // The VPN gateway's instance (its port, on GatewaySubnet) takes the packet into its tunnels.
    let instance = |v: &Verdict| match v {
        Verdict::Gateway(p) => p.gateway.as_ref().map(|g| g.name().to_string()),
        _ => None,
    };
    let e = engine(GATEWAY);
    let verdict = forward::step(&e, &program(&e, "hub-vm"), tcp("10.0.0.4", "192.168.1.4", 22));
    assert_eq!(instance(&verdict).as_deref(), Some("hub-gw"), "{verdict:?}");
    // The same from a spoke through gateway transit.
    let e = example("gateway-transit.yaml");
    let verdict = forward::step(&e, &program(&e, "spoke1-vm"), tcp("10.1.0.4", "192.168.1.4", 22));
    assert_eq!(instance(&verdict).as_deref(), Some("hub-gw"), "{verdict:?}");
    // G7: what the instance forwards from on-premises enters the spoke, whose link does not
    // allow forwarded traffic.
    let Verdict::Gateway(gw) = verdict else { unreachable!() };
    assert!(gw.ip_forwarding && gw.addresses.iter().any(|a| gw.subnet.prefixes.iter().any(|p| p.contains(a))));
    let back = forward::step(&e, &gw, tcp("192.168.1.4", "10.1.0.4", 22));
    assert!(matches!(&back, Verdict::Deliver { nic, .. } if nic.nic.name() == "spoke1-vm-nic"), "{back:?}");
}

const VNET_TO_VNET: &str = r#"
location: westeurope
vnets:
  - name: east
    addressSpace: [10.10.0.0/16]
    subnets:
      - { name: default, prefix: 10.10.0.0/24 }
      - { name: GatewaySubnet, prefix: 10.10.255.0/27 }
  - name: west
    addressSpace: [10.20.0.0/16]
    subnets:
      - { name: default, prefix: 10.20.0.0/24 }
      - { name: GatewaySubnet, prefix: 10.20.255.0/27 }
gateways:
  - { name: east-gw, vnet: east, type: Vpn, sku: VpnGw1, publicIp: true }
  - { name: west-gw, vnet: west, type: Vpn, sku: VpnGw1, publicIp: true }
connections:
  - { name: east-to-west, gateway: east-gw, remoteGateway: west-gw, sharedKey: k }
  - { name: west-to-east, gateway: west-gw, remoteGateway: east-gw, sharedKey: k }
vms:
  - { name: east-vm, subnet: east/default, ip: 10.10.0.4 }
  - { name: west-vm, subnet: west/default, ip: 10.20.0.4 }
"#;

#[test]
fn vnet_to_vnet_goes_through_the_gateway_instance_until_a_peering_takes_it() {
    // GWY4: both gateways run an instance, so the packet goes to the local one (its tunnel);
    // the walk still reaches the far VM, as a connectivity check shows.
    let e = engine(VNET_TO_VNET);
    let flow = tcp("10.10.0.4", "10.20.0.4", 80);
    let verdict = forward::step(&e, &program(&e, "east-vm"), flow);
    assert!(
        matches!(&verdict, Verdict::Gateway(p) if p.gateway.as_ref().is_some_and(|g| g.name() == "east-gw")),
        "{verdict:?}"
    );
    let t = trace(&e, &program(&e, "east-vm"), flow);
    assert!(t.reachable, "{t:?}");
    assert!(t.hops.iter().any(|h| h.kind == HopType::VirtualNetworkGateway), "{t:?}");
    // What the far instance forwards out of its tunnel is delivered in its VNet.
    let Verdict::Gateway(east) = verdict else { unreachable!() };
    let west_instance = e.program(&east.nic.to_string().replace("east", "west").parse().expect("an id"));
    let west = west_instance.expect("the west gateway's instance");
    let (nic, _) = delivered_to(forward::step(&e, &west, flow));
    assert_eq!(nic, nic_of(&e, "west-vm"));
    // R10 / SEL3: once the VNets are peered, the peering route wins and no gateway is involved.
    let mut peered = VNET_TO_VNET.to_string();
    peered.push_str("peerings:\n  - { from: east, to: west, reverse: {} }\n");
    let e = engine(&peered);
    let (nic, _) = delivered_to(forward::step(&e, &program(&e, "east-vm"), flow));
    assert_eq!(nic, nic_of(&e, "west-vm"));
}

#[test]
fn an_expressroute_gateway_has_no_instance_and_exits() {
    // Only VPN gateways run an instance here; an ExpressRoute gateway's routes leave logically.
    let e = engine(
        r#"
location: westeurope
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: default, prefix: 10.0.0.0/24 }
      - { name: GatewaySubnet, prefix: 10.0.255.0/27 }
gateways:
  - { name: hub-er, vnet: hub, type: ExpressRoute, sku: Standard }
connections:
  - { name: circuit, gateway: hub-er, expressRoute: true, bgpLearnedPrefixes: [192.168.0.0/16] }
vms:
  - { name: hub-vm, subnet: hub/default, ip: 10.0.0.4 }
"#,
    );
    let verdict = forward::step(&e, &program(&e, "hub-vm"), tcp("10.0.0.4", "192.168.1.4", 22));
    assert!(matches!(verdict, Verdict::Exit(Exit::Gateway)), "{verdict:?}");
}

#[test]
fn g7_gateway_relay_needs_no_forwarded_traffic_flag() {
    // G7 / GWY6: relayed by the hub's VPN gateway, spoke1's packet enters spoke2 although no link
    // allows forwarded traffic.
    let e = engine(HUB_GATEWAY_RELAY);
    let (nic, _) = delivered_to(forward::step(&e, &program(&e, "spoke1-vm"), tcp("10.1.0.4", "10.2.0.4", 22)));
    assert_eq!(nic, nic_of(&e, "spoke2-vm"));
    // Forwarded by an appliance, the same packet needs the flag on spoke2's link.
    let e = engine(HUB_NVA_NO_FORWARDING);
    let flow = tcp("10.1.0.4", "10.2.0.4", 22);
    let Verdict::Appliance(nva) = forward::step(&e, &program(&e, "spoke1-vm"), flow) else {
        panic!("spoke1's UDR leads to the hub appliance");
    };
    assert_eq!(dropped(forward::step(&e, &nva, flow)), Cause::ForwardedTrafficNotAllowed);
}

#[test]
fn unconnected_links_carry_no_route() {
    // Why NoPeeringBack and PeeringNotConnected need a restored snapshot: through the API a
    // link that is not Connected gives no peering route, so the packet meets the reserved
    // 10.0.0.0/8 None route before any peering check.
    let flow = tcp("10.1.0.4", "10.2.0.4", 22);
    // P1: one link only, Initiated.
    let one_sided = PAIR.replace("reverse: {} ", "");
    let e = engine(&one_sided);
    assert_eq!(link_state(&e, "a"), Some(PeeringState::Initiated));
    assert_eq!(dropped(forward::step(&e, &program(&e, "a-vm"), flow)), Cause::NextHopNone);
    // P3: the partner deleted, the link left Disconnected.
    let mut e = engine(PAIR);
    let b = resolve::resolve(&e, Kind::VirtualNetwork, "b").expect("vnet");
    let link = e.state().vnet(&b).expect("b").properties.virtual_network_peerings[0].id.clone().expect("link id");
    e.apply(Change::Delete(link)).expect("deleted");
    assert_eq!(link_state(&e, "a"), Some(PeeringState::Disconnected));
    assert_eq!(dropped(forward::step(&e, &program(&e, "a-vm"), flow)), Cause::NextHopNone);
    // Connected both ways: delivered.
    let e = engine(PAIR);
    assert_eq!(link_state(&e, "a"), Some(PeeringState::Connected));
    assert!(matches!(forward::step(&e, &program(&e, "a-vm"), flow), Verdict::Deliver { .. }));
}

/// The state of the (only) link of the VNet named `vnet`.
fn link_state(e: &Engine, vnet: &str) -> Option<PeeringState> {
    let id = resolve::resolve(e, Kind::VirtualNetwork, vnet).expect("vnet");
    let links = &e.state().vnet(&id).expect("vnet").properties.virtual_network_peerings;
    assert_eq!(links.len(), 1, "{vnet} has one link");
    links[0].properties.peering_state
}

// ---------------------------------------------------------------------------------------------
// admit_inbound

#[test]
fn admit_inbound_applies_the_port_nsgs() {
    let e = engine(SINGLE);
    let locked = program(&e, "locked-vm");
    // N2: AllowVnetInBound.
    assert_eq!(forward::admit_inbound(&locked, tcp("10.0.0.4", "10.0.1.4", 22)), Ok(()));
    // N3: the subnet NSG's rule.
    assert_eq!(forward::admit_inbound(&locked, tcp("10.0.0.4", "10.0.1.4", 3389)), Err(Cause::NsgDeniedInbound));
    // N2: DenyAllInBound for a source outside VirtualNetwork.
    assert_eq!(forward::admit_inbound(&locked, tcp("203.0.113.7", "10.0.1.4", 22)), Err(Cause::NsgDeniedInbound));
    // A port without NSGs admits everything (N3: a missing NSG counts as allow-all).
    assert_eq!(forward::admit_inbound(&program(&e, "app-vm"), tcp("203.0.113.7", "10.0.0.4", 3389)), Ok(()));
}

#[test]
fn n4_established_flows_bypass_nsgs() {
    let e = engine(SINGLE);
    let locked = program(&e, "locked-vm");
    // The same flows as new ones are refused (admit_inbound_applies_the_port_nsgs).
    assert_eq!(forward::admit_inbound(&locked, established("10.0.0.4", "10.0.1.4", 3389)), Ok(()));
    assert_eq!(forward::admit_inbound(&locked, established("203.0.113.7", "10.0.1.4", 22)), Ok(()));
    // The step skips NSGs too: outbound (the NIC's deny-ssh-out) and inbound (deny-rdp).
    let guarded = program(&e, "guarded-vm");
    assert_eq!(dropped(forward::step(&e, &guarded, tcp("10.0.0.5", "10.0.0.4", 22))), Cause::NsgDeniedOutbound);
    let (nic, _) = delivered_to(forward::step(&e, &guarded, established("10.0.0.5", "10.0.0.4", 22)));
    assert_eq!(nic, nic_of(&e, "app-vm"));
    let app = program(&e, "app-vm");
    assert_eq!(dropped(forward::step(&e, &app, tcp("10.0.0.4", "10.0.1.4", 3389))), Cause::NsgDeniedInbound);
    let (nic, _) = delivered_to(forward::step(&e, &app, established("10.0.0.4", "10.0.1.4", 3389)));
    assert_eq!(nic, nic_of(&e, "locked-vm"));
}

/// Return traffic of a connection NSGs already allowed.
fn established(src: &str, dst: &str, dport: u16) -> Flow {
    Flow { established: true, ..tcp(src, dst, dport) }
}

/// U4: an internal load balancer's frontend as the next hop (HA ports in front of two NVAs in
/// the hub): the first backend that admits the packet and forwards takes it, destination
/// unchanged; with no forwarding backend the packet is refused, the walk saying why.
const HUB_ILB_NVAS: &str = r#"
location: westeurope
vnets:
  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: nva, prefix: 10.0.1.0/24 }] }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: spoke1-rt }]
  - { name: spoke2, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
routeTables:
  - name: spoke1-rt
    routes: [{ name: to-spoke2, prefix: 10.2.0.0/16, nextHop: VirtualAppliance, nextHopIp: 10.0.1.100 }]
loadBalancers:
  - name: nva-ilb
    sku: Standard
    frontends: [{ name: fe, subnet: hub/nva, ip: 10.0.1.100 }]
    pools: [nvas]
    rules: [{ name: ha, frontend: fe, pool: nvas, protocol: All, frontendPort: 0, backendPort: 0 }]
vms:
  - { name: nva1, subnet: hub/nva, ip: 10.0.1.4, ipForwarding: FORWARDING, backendPools: [nva-ilb/nvas] }
  - { name: spoke1-vm, subnet: spoke1/default, ip: 10.1.0.4 }
  - { name: spoke2-vm, subnet: spoke2/default, ip: 10.2.0.4 }
peerings:
  - { from: hub, to: spoke1, reverse: { allowForwardedTraffic: true } }
  - { from: hub, to: spoke2, reverse: { allowForwardedTraffic: true } }
"#;

#[test]
fn an_ilb_frontend_as_next_hop_hands_the_packet_to_a_forwarding_backend() {
    let e = engine(&HUB_ILB_NVAS.replace("FORWARDING", "true"));
    let from = program(&e, "spoke1-vm");
    let flow = tcp("10.1.0.4", "10.2.0.4", 443);
    match forward::step(&e, &from, flow) {
        Verdict::Appliance(nva) => assert_eq!(nva.nic, nic_of(&e, "nva1")),
        other => panic!("expected the NVA behind the frontend, got {other:?}"),
    }
    let walk = trace(&e, &from, flow);
    assert!(walk.reachable, "{:?}", walk.hops);
    let kinds: Vec<HopType> = walk.hops.iter().map(|h| h.kind).collect();
    assert_eq!(
        kinds,
        [HopType::Source, HopType::LoadBalancer, HopType::VirtualAppliance, HopType::Destination],
        "{:?}",
        walk.hops
    );

    let e = engine(&HUB_ILB_NVAS.replace("FORWARDING", "false"));
    let from = program(&e, "spoke1-vm");
    assert!(matches!(forward::step(&e, &from, flow), Verdict::Drop(Cause::IpForwardingDisabled)));
    let walk = trace(&e, &from, flow);
    assert!(!walk.reachable);
    assert_eq!(walk.hops.last().and_then(|h| h.issues.first()).map(|i| i.cause), Some(Cause::IpForwardingDisabled));
}

/// GW1–GW2 over VNet-to-VNet: a branch joined to a hub by a VNet-to-VNet connection routes the
/// hub's transit spokes through its gateway, and follows the spoke's link as it comes and goes
/// (the branch is recompiled with the hub).
#[test]
fn a_vnet_to_vnet_branch_reaches_the_hubs_transit_spokes_and_follows_their_links() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/gw1-transit-routes-in-spoke/topology.yaml"),
    )
    .expect("topology");
    let mut e = engine(&text);
    let routes_to_spoke = |e: &Engine| {
        let nic = nic_of(e, "branch-vm");
        let body = tessera_engine::diag::effective::effective_route_table(e, &nic).expect("routes");
        let v = serde_json::to_value(body).expect("json");
        v["value"]
            .as_array()
            .expect("routes")
            .iter()
            .filter(|r| r["addressPrefix"][0] == "10.1.0.0/16" && r["nextHopType"] == "VirtualNetworkGateway")
            .count()
    };
    assert_eq!(routes_to_spoke(&e), 1, "the spoke's space, through the branch's gateway");
    let spoke_link = e
        .state()
        .vnets
        .values()
        .find(|v| v.name == "spoke")
        .and_then(|v| {
            v.properties.virtual_network_peerings.first().map(|l| v.id.child("virtualNetworkPeerings", &l.name))
        })
        .expect("the spoke's link");
    e.apply(Change::Delete(spoke_link)).expect("delete the spoke's link");
    assert_eq!(routes_to_spoke(&e), 0, "no longer a transit spoke: the branch stops routing it");
}

/// A connectivity check is an exchange: the SYN reaches spoke2 through the hub appliance, but
/// spoke2 has no route back to spoke1, so the destination is unreachable and the issue says the
/// reply failed.
#[test]
fn a_connectivity_check_fails_when_the_reply_cannot_come_back() {
    let e = engine(
        r#"
location: westeurope
vnets:
  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: nva, prefix: 10.0.1.0/24 }] }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets: [{ name: default, prefix: 10.1.0.0/24, routeTable: spoke1-rt }]
  - { name: spoke2, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
routeTables:
  - name: spoke1-rt
    routes: [{ name: to-spoke2, prefix: 10.2.0.0/16, nextHop: VirtualAppliance, nextHopIp: 10.0.1.4 }]
vms:
  - { name: hub-nva, subnet: hub/nva, ip: 10.0.1.4, ipForwarding: true }
  - { name: spoke1-vm, subnet: spoke1/default, ip: 10.1.0.4 }
  - { name: spoke2-vm, subnet: spoke2/default, ip: 10.2.0.4 }
peerings:
  - { from: hub, to: spoke1, allowForwardedTraffic: true, reverse: { allowForwardedTraffic: true } }
  - { from: hub, to: spoke2, allowForwardedTraffic: true, reverse: { allowForwardedTraffic: true } }
"#,
    );
    let from = program(&e, "spoke1-vm");
    assert!(trace(&e, &from, tcp("10.1.0.4", "10.2.0.4", 22)).reachable, "the SYN arrives");
    let vm = |name: &str| e.state().vms.keys().find(|v| v.name() == name).cloned().expect("vm");
    let p: tessera_engine::diag::watcher::ConnectivityParameters = serde_json::from_value(serde_json::json!({
        "source": {"resourceId": vm("spoke1-vm").to_string()},
        "destination": {"resourceId": vm("spoke2-vm").to_string(), "port": 22},
    }))
    .expect("parameters");
    let body = tessera_engine::diag::watcher::connectivity_check(&e, &p).expect("check");
    assert_eq!(body["connectionStatus"], "Unreachable", "{body}");
    let issues = body["hops"].as_array().expect("hops").last().expect("hop")["issues"].to_string();
    assert!(issues.contains("Reply"), "the reply is named: {issues}");
}
