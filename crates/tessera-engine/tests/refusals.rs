//! Refusals: every ARM error code the engine can return through `Engine::apply` or
//! `load::load`, each triggered through the public API. Every case checks the code, the HTTP
//! status, and that the refusal left the desired state and the compiled programs untouched
//! (`assert_refused`).
//!
//! Rule numbers (P4, R1, G3, N1, U1, SP4, GWY2, …) refer to the behaviour spec
//! `azure-semantics.md`; O-numbers (O2, O7) to `azure-observed.md`; "§2.5" is the limits table.
//!
//! The last test (`every_error_code_in_the_sources_is_covered`) scans the engine and model
//! sources for error codes and fails on any code that is not in [`COVERED`] or [`EXCLUDED`].
//!
//! Tests named `regression_*` pin engine bugs found while writing this file (all fixed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use tessera_engine::load::{self, Format};
use tessera_engine::{Change, Engine, Limits};
use tessera_model::account::{DEFAULT_RESOURCE_GROUP, DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Subscription};
use tessera_model::compute::{
    AllocationMethod, IpConfiguration, NetworkInterface, VirtualMachine, VmNicReference, VmNicReferenceProperties,
};
use tessera_model::envelope::SubResource;
use tessera_model::gateway::{
    Connection, ConnectionType, GatewayType, LocalNetworkGateway, VirtualNetworkGateway, VpnType,
};
use tessera_model::lb::LoadBalancer;
use tessera_model::network::{
    AddressSpace, ClassicSubnet, ClassicVirtualNetwork, DhcpOptions, Peering, PeeringProperties, Subnet, VirtualNetwork,
};
use tessera_model::routing::{Route, RouteNextHopType, RouteTable};
use tessera_model::security::{NetworkSecurityGroup, SecurityRule};
use tessera_model::{ArmError, IpNet, Kind, Resource, ResourceId};

// ---------------------------------------------------------------------------------------------
// Fixture and helpers
// ---------------------------------------------------------------------------------------------

/// One topology with something of every kind, so that most refusals need no set-up:
/// - `hub` (gateway, ILB, vm1, NSG and route table on `default`) is peered both ways with
///   `spoke1` (which uses the hub's gateway, G1–G3) and `spoke2`;
/// - `lonely` (vm3) is peered with nothing; `clash` overlaps `spoke1` (R1, R2);
/// - `north` is in another region, `china` in another cloud (R4), `legacy` is classic (P6, G4);
/// - `hub/tiny` is a /29 (three usable addresses);
/// - `spoke1/GatewaySubnet` carries the plain route table `rt-gw` (GWY2).
const BASE: &str = r#"
location: westeurope
resourceGroup: rg
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: default, prefix: 10.0.0.0/24, nsg: nsg1, routeTable: rt1 }
      - { name: spare, prefix: 10.0.1.0/24 }
      - { name: tiny, prefix: 10.0.2.0/29 }
      - { name: GatewaySubnet, prefix: 10.0.255.0/27 }
  - name: spoke1
    addressSpace: [10.1.0.0/16]
    subnets:
      - { name: default, prefix: 10.1.0.0/24 }
      - { name: GatewaySubnet, prefix: 10.1.255.0/27, routeTable: rt-gw }
  - name: spoke2
    addressSpace: [10.2.0.0/16]
    subnets: [{ name: default, prefix: 10.2.0.0/24 }]
  - name: lonely
    addressSpace: [10.3.0.0/16]
    subnets:
      - { name: default, prefix: 10.3.0.0/24 }
      - { name: other, prefix: 10.3.1.0/24 }
  - name: clash
    addressSpace: [10.1.0.0/16]
    subnets:
      - { name: default, prefix: 10.1.0.0/24 }
      - { name: upper, prefix: 10.1.128.0/24 }
  - name: north
    location: northeurope
    addressSpace: [10.4.0.0/16]
    subnets: [{ name: default, prefix: 10.4.0.0/24 }]
  - name: china
    location: chinanorth2
    addressSpace: [10.5.0.0/16]
  - name: legacy
    classic: true
    addressSpace: [10.6.0.0/16]
    subnets: [{ name: default, prefix: 10.6.0.0/24 }]
nsgs:
  - name: nsg1
    rules:
      - { name: allow-ssh, priority: 100, direction: Inbound, access: Allow, protocol: Tcp, destinationPorts: "22" }
  - name: nsg-nic
  - name: nsg-free
routeTables:
  - name: rt1
    routes:
      - { name: to-nva, prefix: 10.9.0.0/16, nextHop: VirtualAppliance, nextHopIp: 10.0.0.4 }
  - name: rt-gw
  - name: rt-nobgp
    disableBgpRoutePropagation: true
  - name: rt-default
    routes:
      - { name: default, prefix: 0.0.0.0/0, nextHop: VirtualAppliance, nextHopIp: 10.0.0.4 }
gateways:
  - { name: hub-gw, vnet: hub, sku: VpnGw1 }
sites:
  - { name: onprem, addressSpace: [192.168.0.0/16], gatewayIp: 203.0.113.10 }
connections:
  - { name: hub-to-onprem, gateway: hub-gw, site: onprem }
loadBalancers:
  - name: ilb
    frontends: [{ name: fe, subnet: hub/spare, ip: 10.0.1.10 }]
    pools: [pool]
    rules: [{ name: http, frontend: fe, pool: pool, frontendPort: 80, backendPort: 80 }]
vms:
  - { name: vm1, subnet: hub/default, ip: 10.0.0.4, backendPools: [ilb/pool] }
  - { name: vm2, subnet: spoke1/default, ip: 10.1.0.4, nsg: nsg-nic }
  - { name: vm3, subnet: lonely/default, ip: 10.3.0.4 }
peerings:
  - { from: hub, to: spoke1, allowGatewayTransit: true, reverse: { useRemoteGateways: true } }
  - { from: hub, to: spoke2, reverse: {} }
"#;

fn base() -> Engine {
    with_limits(Limits::default())
}

fn with_limits(limits: Limits) -> Engine {
    load::load(BASE, Format::Yaml, limits).unwrap_or_else(|e| panic!("the base topology must load: {e}"))
}

/// Applies `change`, expects the refusal `status`/`code`, and proves that nothing changed: the
/// desired state (its full `Debug` form) and the number of compiled NIC and subnet programs.
#[track_caller]
fn assert_refused(engine: &mut Engine, change: Change, code: &str, status: u16) -> ArmError {
    let state_before = format!("{:?}", engine.state());
    let nics_before = engine.compiled().nics.len();
    let subnets_before = engine.compiled().subnets.len();
    let err = match engine.apply(change) {
        Ok(()) => panic!("expected the refusal {status} {code}, but the change was accepted"),
        Err(e) => e,
    };
    assert_eq!((err.code.as_str(), err.status), (code, status), "unexpected refusal: {err}");
    assert!(!err.message.is_empty(), "{code} has an empty message");
    assert!(state_before == format!("{:?}", engine.state()), "the refusal {code} changed the desired state");
    assert_eq!(engine.compiled().nics.len(), nics_before, "the refusal {code} changed the NIC programs");
    assert_eq!(engine.compiled().subnets.len(), subnets_before, "the refusal {code} changed the subnet programs");
    err
}

/// A topology file that must fail to load with `status`/`code`.
#[track_caller]
fn assert_load_refused(text: &str, format: Format, limits: Limits, code: &str, status: u16) -> ArmError {
    let err = match load::load(text, format, limits) {
        Ok(_) => panic!("expected the load to fail with {status} {code}"),
        Err(e) => e,
    };
    assert_eq!((err.code.as_str(), err.status), (code, status), "unexpected refusal: {err}");
    err
}

/// Applies a set-up step that must succeed.
#[track_caller]
fn ok(engine: &mut Engine, change: Change) {
    if let Err(e) = engine.apply(change) {
        panic!("set-up step refused: {e}");
    }
}

fn put(r: Resource) -> Change {
    Change::Put(r)
}

fn top(kind: Kind, name: &str) -> ResourceId {
    ResourceId::top(DEFAULT_SUBSCRIPTION, DEFAULT_RESOURCE_GROUP, kind, name)
}

fn vnet_id(name: &str) -> ResourceId {
    top(Kind::VirtualNetwork, name)
}

fn subnet_id(vnet: &str, name: &str) -> ResourceId {
    vnet_id(vnet).child("subnets", name)
}

fn link_id(vnet: &str, name: &str) -> ResourceId {
    vnet_id(vnet).child("virtualNetworkPeerings", name)
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|_| panic!("bad prefix in test: {s}"))
}

fn sub(id: ResourceId) -> SubResource {
    SubResource::new(id)
}

// Clones of stored resources (to mutate into the change under test).

fn vnet(e: &Engine, name: &str) -> VirtualNetwork {
    e.state().vnets.get(&vnet_id(name)).cloned().unwrap_or_else(|| panic!("no vnet {name}"))
}

fn subnet(e: &Engine, vnet: &str, name: &str) -> Subnet {
    e.state().subnet(&subnet_id(vnet, name)).map(|(_, s)| s.clone()).unwrap_or_else(|| panic!("no subnet {name}"))
}

fn link(e: &Engine, vnet: &str, name: &str) -> Peering {
    e.state().peering(&link_id(vnet, name)).cloned().unwrap_or_else(|| panic!("no link {vnet}/{name}"))
}

fn classic(e: &Engine, name: &str) -> ClassicVirtualNetwork {
    e.state().classic_vnets.get(&top(Kind::ClassicVirtualNetwork, name)).cloned().expect("classic vnet")
}

fn nsg(e: &Engine, name: &str) -> NetworkSecurityGroup {
    e.state().nsgs.get(&top(Kind::NetworkSecurityGroup, name)).cloned().unwrap_or_else(|| panic!("no nsg {name}"))
}

fn route_table(e: &Engine, name: &str) -> RouteTable {
    e.state().route_tables.get(&top(Kind::RouteTable, name)).cloned().unwrap_or_else(|| panic!("no table {name}"))
}

fn nic(e: &Engine, vm: &str) -> NetworkInterface {
    let id = top(Kind::NetworkInterface, &format!("{vm}-nic"));
    e.state().nics.get(&id).cloned().unwrap_or_else(|| panic!("no nic of {vm}"))
}

fn vm(e: &Engine, name: &str) -> VirtualMachine {
    e.state().vms.get(&top(Kind::VirtualMachine, name)).cloned().unwrap_or_else(|| panic!("no vm {name}"))
}

fn gateway(e: &Engine, name: &str) -> VirtualNetworkGateway {
    let id = top(Kind::VirtualNetworkGateway, name);
    e.state().gateways.get(&id).cloned().unwrap_or_else(|| panic!("no gateway {name}"))
}

fn site(e: &Engine, name: &str) -> LocalNetworkGateway {
    let id = top(Kind::LocalNetworkGateway, name);
    e.state().local_gateways.get(&id).cloned().unwrap_or_else(|| panic!("no site {name}"))
}

fn connection(e: &Engine, name: &str) -> Connection {
    e.state().connections.get(&top(Kind::Connection, name)).cloned().unwrap_or_else(|| panic!("no connection"))
}

fn lb(e: &Engine, name: &str) -> LoadBalancer {
    e.state().load_balancers.get(&top(Kind::LoadBalancer, name)).cloned().unwrap_or_else(|| panic!("no lb {name}"))
}

// New resources, derived from stored ones.

/// A new VNet without subnets (a copy of `lonely` under another name).
fn new_vnet(e: &Engine, name: &str, space: &[&str]) -> VirtualNetwork {
    let mut v = vnet(e, "lonely");
    v.id = vnet_id(name);
    v.properties.address_space = AddressSpace::of(space.iter().map(|s| net(s)).collect());
    v.properties.subnets.clear();
    v.properties.virtual_network_peerings.clear();
    v.properties.resource_guid = None;
    v
}

/// A new subnet without NSG or route table.
fn new_subnet(e: &Engine, vnet: &str, name: &str, prefix: &str) -> Subnet {
    let mut s = subnet(e, "lonely", "other");
    s.id = Some(subnet_id(vnet, name));
    s.name = name.to_string();
    s.properties.address_prefix = Some(net(prefix));
    s.properties.address_prefixes.clear();
    s
}

/// A new link `from` → `to` named `from-to-to` with default flags.
fn new_link(from: &str, to: &str) -> Peering {
    new_link_to(from, vnet_id(to))
}

fn new_link_to(from: &str, to: ResourceId) -> Peering {
    let name = format!("{from}-to-{}", to.name());
    Peering {
        id: Some(link_id(from, &name)),
        name,
        kind: None,
        etag: None,
        properties: PeeringProperties { remote_virtual_network: Some(sub(to)), ..PeeringProperties::default() },
    }
}

/// A subnet peering `from` → `to` over the named subnets (SP1).
fn subnet_link(from: &str, to: &str, local: &[&str], remote: &[&str]) -> Peering {
    let mut l = new_link(from, to);
    l.properties.peer_complete_vnets = false;
    l.properties.local_subnet_names = local.iter().map(|s| s.to_string()).collect();
    l.properties.remote_subnet_names = remote.iter().map(|s| s.to_string()).collect();
    l
}

/// A new, unattached NIC with one IP configuration (`ipconfig1`) in `subnet`.
fn new_nic(e: &Engine, name: &str, subnet: ResourceId, ip: Option<&str>) -> NetworkInterface {
    let mut n = nic(e, "vm3");
    n.id = top(Kind::NetworkInterface, name);
    n.properties.virtual_machine = None;
    n.properties.network_security_group = None;
    let c = &mut n.properties.ip_configurations[0];
    c.id = None;
    c.properties.subnet = Some(sub(subnet));
    c.properties.private_ip_address = ip.map(str::to_string);
    c.properties.private_ip_allocation_method = None;
    c.properties.private_ip_address_version = None;
    c.properties.load_balancer_backend_address_pools.clear();
    n
}

/// A second, non-primary IP configuration copied from the first.
fn extra_config(n: &NetworkInterface, name: &str, subnet: ResourceId, ip: Option<&str>) -> IpConfiguration {
    let mut c = n.properties.ip_configurations[0].clone();
    c.name = name.to_string();
    c.id = None;
    c.properties.primary = Some(false);
    c.properties.subnet = Some(sub(subnet));
    c.properties.private_ip_address = ip.map(str::to_string);
    c
}

/// A new VM over existing NICs; the first is primary.
fn new_vm(e: &Engine, name: &str, nics: &[&str]) -> VirtualMachine {
    let mut m = vm(e, "vm3");
    m.id = top(Kind::VirtualMachine, name);
    m.properties.network_profile.network_interfaces = nics
        .iter()
        .enumerate()
        .map(|(i, n)| VmNicReference {
            id: top(Kind::NetworkInterface, n),
            properties: Some(VmNicReferenceProperties { primary: i == 0 }),
        })
        .collect();
    m
}

/// A new RouteBased VpnGw1 gateway in `vnet`'s GatewaySubnet (a copy of `hub-gw`).
fn new_gateway(e: &Engine, name: &str, vnet: &str) -> VirtualNetworkGateway {
    let mut g = gateway(e, "hub-gw");
    g.id = top(Kind::VirtualNetworkGateway, name);
    let c = &mut g.properties.ip_configurations[0];
    c.id = None;
    c.properties.subnet = Some(sub(subnet_id(vnet, "GatewaySubnet")));
    c.properties.private_ip_address = None;
    g
}

/// Set-up: gives `lonely` a GatewaySubnet and a Basic PolicyBased VPN gateway `lonely-gw`.
fn give_lonely_a_basic_gateway(e: &mut Engine) {
    let s = new_subnet(e, "lonely", "GatewaySubnet", "10.3.255.0/27");
    ok(e, put(Resource::Subnet(s)));
    let mut g = new_gateway(e, "lonely-gw", "lonely");
    g.properties.sku.name = "Basic".into();
    g.properties.sku.tier = Some("Basic".into());
    g.properties.vpn_type = Some(VpnType::PolicyBased);
    ok(e, put(Resource::VirtualNetworkGateway(g)));
}

/// A security rule (a copy of nsg1's `allow-ssh`) with a new name and priority.
fn rule(e: &Engine, name: &str, priority: u32) -> SecurityRule {
    let mut r = nsg(e, "nsg1").properties.security_rules[0].clone();
    r.name = name.to_string();
    r.id = None;
    r.properties.priority = priority;
    r
}

/// nsg1 with one extra rule.
fn nsg1_with(e: &Engine, r: SecurityRule) -> Change {
    let mut n = nsg(e, "nsg1");
    n.properties.security_rules.push(r);
    put(Resource::NetworkSecurityGroup(n))
}

/// A route (a copy of rt1's `to-nva`) with a new name and prefix.
fn route(e: &Engine, name: &str, prefix: &str) -> Route {
    let mut r = route_table(e, "rt1").properties.routes[0].clone();
    r.name = name.to_string();
    r.id = None;
    r.properties.address_prefix = prefix.to_string();
    r
}

/// rt1 with one extra route.
fn rt1_with(e: &Engine, r: Route) -> Change {
    let mut t = route_table(e, "rt1");
    t.properties.routes.push(r);
    put(Resource::RouteTable(t))
}

// ---------------------------------------------------------------------------------------------
// Subscriptions, names, regions (every resource type)
// ---------------------------------------------------------------------------------------------

#[test]
fn subscription_needs_an_id() {
    let mut e = base();
    let s = Subscription::new("  ", DEFAULT_TENANT, "blank");
    assert_refused(&mut e, put(Resource::Subscription(s)), "InvalidSubscriptionId", 400);
}

#[test]
fn resource_in_unknown_subscription_is_subscription_not_found() {
    let mut e = base();
    let mut v = new_vnet(&e, "elsewhere", &["10.7.0.0/16"]);
    v.id = ResourceId::top("99999999-9999-4999-8999-999999999999", "rg", Kind::VirtualNetwork, "elsewhere");
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "SubscriptionNotFound", 404);
    let mut n = nsg(&e, "nsg-free");
    n.id = ResourceId::top("99999999-9999-4999-8999-999999999999", "rg", Kind::NetworkSecurityGroup, "x");
    assert_refused(&mut e, put(Resource::NetworkSecurityGroup(n)), "SubscriptionNotFound", 404);
}

#[test]
fn resource_names_follow_arm_rules() {
    let mut e = base();
    // Must end with a word character or '_'.
    let v = new_vnet(&e, "bad.", &["10.7.0.0/16"]);
    let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidResourceName", 400);
    assert_eq!(err.target.as_deref(), Some(vnet_id("bad.").as_str()));
    // VNet names: at most 64 characters.
    let v = new_vnet(&e, &"v".repeat(65), &["10.7.0.0/16"]);
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidResourceName", 400);
    // Subnets, NICs, rules, routes, classic VNets, gateways, LBs, VMs: the same rules.
    let s = new_subnet(&e, "hub", "bad name", "10.0.3.0/24");
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidResourceName", 400);
    let n = new_nic(&e, "-nic", subnet_id("hub", "spare"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceName", 400);
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].name = "ip config".into();
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceName", 400);
    let change = nsg1_with(&e, rule(&e, "bad rule!", 200));
    assert_refused(&mut e, change, "InvalidResourceName", 400);
    let change = rt1_with(&e, route(&e, "route.", "10.8.0.0/16"));
    assert_refused(&mut e, change, "InvalidResourceName", 400);
    let mut c = classic(&e, "legacy");
    c.id = top(Kind::ClassicVirtualNetwork, "legacy-");
    assert_refused(&mut e, put(Resource::ClassicVirtualNetwork(c)), "InvalidResourceName", 400);
    let g = new_gateway(&e, "gw?", "spoke1");
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidResourceName", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].name = "fe#".into();
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceName", 400);
    let m = new_vm(&e, &"m".repeat(65), &["vm3-nic"]);
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "InvalidResourceName", 400);
}

#[test]
fn o7_peering_names_follow_arm_rules() {
    // O7: the peering wording of InvalidResourceName ("…end with a word character…").
    let mut e = base();
    let mut l = new_link("lonely", "spoke2");
    l.id = Some(link_id("lonely", "to-spoke2-"));
    let err = assert_refused(&mut e, put(Resource::Peering(l)), "InvalidResourceName", 400);
    assert!(err.message.contains("up to 80 characters"), "{}", err.message);
}

#[test]
fn unknown_region_is_refused() {
    let mut e = base();
    let mut v = new_vnet(&e, "mars-vnet", &["10.7.0.0/16"]);
    v.location = "mars".into();
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "LocationNotAvailableForResourceType", 400);
    let mut t = route_table(&e, "rt-gw");
    t.location = "atlantis".into();
    assert_refused(&mut e, put(Resource::RouteTable(t)), "LocationNotAvailableForResourceType", 400);
}

#[test]
fn vnet_location_cannot_be_changed() {
    let mut e = base();
    let mut v = vnet(&e, "lonely");
    v.location = "northeurope".into();
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "LocationCannotBeChanged", 400);
}

#[test]
fn deleting_an_unsupported_type_is_refused() {
    let mut e = base();
    let rule_id = top(Kind::NetworkSecurityGroup, "nsg1").child("securityRules", "allow-ssh");
    assert_refused(&mut e, Change::Delete(rule_id), "UnsupportedResourceType", 400);
    let watcher = top(Kind::NetworkWatcher, "nw");
    assert_refused(&mut e, Change::Delete(watcher), "UnsupportedResourceType", 400);
}

// ---------------------------------------------------------------------------------------------
// 404s (O2: `ResourceNotFound` for top-level resources, `NotFound` for child resources)
// ---------------------------------------------------------------------------------------------

#[test]
fn o2_deleting_a_missing_top_level_resource_is_resource_not_found() {
    let mut e = base();
    for kind in [
        Kind::VirtualNetwork,
        Kind::ClassicVirtualNetwork,
        Kind::NetworkSecurityGroup,
        Kind::RouteTable,
        Kind::NetworkInterface,
        Kind::VirtualMachine,
        Kind::VirtualNetworkGateway,
        Kind::LocalNetworkGateway,
        Kind::Connection,
        Kind::LoadBalancer,
    ] {
        let err = assert_refused(&mut e, Change::Delete(top(kind, "ghost")), "ResourceNotFound", 404);
        assert!(err.message.contains("under resource group 'rg' was not found"), "{}", err.message);
    }
}

#[test]
fn o2_missing_child_resources_are_not_found() {
    let mut e = base();
    assert_refused(&mut e, Change::Delete(subnet_id("hub", "ghost")), "NotFound", 404);
    let ghost = link_id("hub", "ghost");
    let err = assert_refused(&mut e, Change::Delete(ghost.clone()), "NotFound", 404);
    assert_eq!(err.message, format!("Resource {ghost} not found."));
    assert_refused(&mut e, Change::SyncPeering(ghost.clone()), "NotFound", 404);
    assert_refused(&mut e, Change::DeletePeeringPair(ghost), "NotFound", 404);
    // A link under a VNet that does not exist.
    assert_refused(&mut e, Change::SyncPeering(link_id("ghost", "x")), "NotFound", 404);
}

#[test]
fn o2_child_under_a_missing_parent_is_resource_not_found() {
    let mut e = base();
    let s = new_subnet(&e, "ghost", "default", "10.7.0.0/24");
    assert_refused(&mut e, put(Resource::Subnet(s)), "ResourceNotFound", 404);
    let l = new_link("ghost", "hub");
    assert_refused(&mut e, put(Resource::Peering(l)), "ResourceNotFound", 404);
}

// ---------------------------------------------------------------------------------------------
// Virtual networks and address spaces (F1, S1)
// ---------------------------------------------------------------------------------------------

#[test]
fn address_space_is_required() {
    let mut e = base();
    let v = new_vnet(&e, "empty", &[]);
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "AddressSpaceRequired", 400);
}

#[test]
fn prefixes_with_host_bits_are_invalid_cidr_notation() {
    let mut e = base();
    let v = new_vnet(&e, "hostbits", &["10.7.0.1/16"]);
    let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidCIDRNotation", 400);
    assert!(err.message.contains("should be 10.7.0.0/16"), "{}", err.message);
    let s = new_subnet(&e, "hub", "hostbits", "10.0.3.1/24");
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidCIDRNotation", 400);
    let mut c = classic(&e, "legacy");
    c.properties.subnets.push(ClassicSubnet { name: "hostbits".into(), address_prefix: net("10.6.1.1/24") });
    assert_refused(&mut e, put(Resource::ClassicVirtualNetwork(c)), "InvalidCIDRNotation", 400);
}

#[test]
fn vnet_prefixes_must_not_overlap_each_other() {
    let mut e = base();
    let v = new_vnet(&e, "selfoverlap", &["10.7.0.0/16", "10.7.1.0/24"]);
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "VnetAddressSpacePrefixesOverlap", 400);
}

#[test]
fn limits_vnets_per_subscription_and_region() {
    // §2.5: five VNets in westeurope already (north and china are elsewhere).
    let mut e = with_limits(Limits { vnets_per_subscription: 5, ..Limits::default() });
    let v = new_vnet(&e, "sixth", &["10.7.0.0/16"]);
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "VnetCountLimitReached", 400);
    // Updating an existing VNet is not creating one.
    let v = vnet(&e, "lonely");
    ok(&mut e, put(Resource::VirtualNetwork(v)));
}

#[test]
fn limits_dns_servers_per_vnet() {
    // §2.5.
    let mut e = with_limits(Limits { dns_servers_per_vnet: 1, ..Limits::default() });
    let mut v = vnet(&e, "lonely");
    v.properties.dhcp_options = Some(DhcpOptions { dns_servers: vec!["10.3.0.4".into(), "10.3.0.5".into()] });
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "DnsServersLimitReached", 400);
}

#[test]
fn dns_servers_are_ip_addresses() {
    let mut e = base();
    let mut v = vnet(&e, "lonely");
    v.properties.dhcp_options = Some(DhcpOptions { dns_servers: vec!["dns.example.com".into()] });
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidDnsServerAddress", 400);
}

#[test]
fn s1_a_peered_vnet_cannot_grow_into_its_peers_space() {
    // S1: hub may change its space while peered, but not into spoke1's 10.1.0.0/16.
    let mut e = base();
    let mut v = vnet(&e, "hub");
    v.properties.address_space.address_prefixes.push(net("10.1.0.0/16"));
    let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "VnetAddressSpacesOverlap", 400);
    assert_eq!(err.target.as_deref(), Some(link_id("hub", "hub-to-spoke1").as_str()));
}

#[test]
fn s1_removing_a_prefix_that_a_subnet_uses() {
    // S1: "removing a prefix requires that no subnet uses it" (GatewaySubnet is 10.0.255.0/27).
    let mut e = base();
    let mut v = vnet(&e, "hub");
    v.properties.address_space = AddressSpace::of(vec![net("10.0.0.0/17")]);
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "NetcfgSubnetRangeOutsideVnet", 400);
}

// ---------------------------------------------------------------------------------------------
// Subnets
// ---------------------------------------------------------------------------------------------

#[test]
fn limits_subnets_per_vnet() {
    // §2.5: hub has four subnets.
    let mut e = with_limits(Limits { subnets_per_vnet: 4, ..Limits::default() });
    let s = new_subnet(&e, "hub", "fifth", "10.0.3.0/24");
    assert_refused(&mut e, put(Resource::Subnet(s)), "SubnetCountLimitReached", 400);
    let mut v = vnet(&e, "lonely");
    for (i, p) in ["10.3.2.0/24", "10.3.3.0/24", "10.3.4.0/24"].into_iter().enumerate() {
        v.properties.subnets.push(new_subnet(&e, "lonely", &format!("s{i}"), p));
    }
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "SubnetCountLimitReached", 400);
}

#[test]
fn subnet_needs_a_prefix() {
    let mut e = base();
    let mut s = new_subnet(&e, "hub", "noprefix", "10.0.3.0/24");
    s.properties.address_prefix = None;
    assert_refused(&mut e, put(Resource::Subnet(s)), "NetcfgInvalidSubnet", 400);
}

#[test]
fn subnet_names_are_unique_in_a_vnet() {
    let mut e = base();
    let mut v = vnet(&e, "lonely");
    v.properties.subnets.push(new_subnet(&e, "lonely", "DEFAULT", "10.3.9.0/24"));
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "DuplicateResourceName", 400);
}

#[test]
fn subnet_must_lie_inside_the_vnet_space() {
    let mut e = base();
    let s = new_subnet(&e, "hub", "outside", "10.9.0.0/24");
    assert_refused(&mut e, put(Resource::Subnet(s)), "NetcfgSubnetRangeOutsideVnet", 400);
    let mut c = classic(&e, "legacy");
    c.properties.subnets.push(ClassicSubnet { name: "outside".into(), address_prefix: net("10.9.0.0/24") });
    assert_refused(&mut e, put(Resource::ClassicVirtualNetwork(c)), "NetcfgSubnetRangeOutsideVnet", 400);
}

#[test]
fn subnets_must_not_overlap() {
    let mut e = base();
    let s = new_subnet(&e, "hub", "overlapping", "10.0.0.128/25");
    assert_refused(&mut e, put(Resource::Subnet(s)), "NetcfgSubnetRangesOverlap", 400);
}

#[test]
fn subnet_references_must_resolve_to_the_right_kind() {
    let mut e = base();
    // Missing NSG.
    let mut s = subnet(&e, "hub", "spare");
    s.properties.network_security_group = Some(sub(top(Kind::NetworkSecurityGroup, "ghost")));
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidResourceReference", 400);
    // An NSG reference that names a route table.
    let mut s = subnet(&e, "hub", "spare");
    s.properties.network_security_group = Some(sub(top(Kind::RouteTable, "rt1")));
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidResourceReference", 400);
    // Missing route table.
    let mut s = subnet(&e, "hub", "spare");
    s.properties.route_table = Some(sub(top(Kind::RouteTable, "ghost")));
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidResourceReference", 400);
}

#[test]
fn subnet_put_needs_a_subnet_id() {
    let mut e = base();
    let mut s = new_subnet(&e, "hub", "anonymous", "10.0.3.0/24");
    s.id = None;
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidRequestContent", 400);
    let mut s = new_subnet(&e, "hub", "anonymous", "10.0.3.0/24");
    s.id = Some(vnet_id("hub"));
    assert_refused(&mut e, put(Resource::Subnet(s)), "InvalidRequestContent", 400);
}

#[test]
fn gwy2_gateway_subnet_table_cannot_disable_bgp_propagation() {
    // GWY2: "do not disable route propagation" on GatewaySubnet.
    let mut e = base();
    let mut s = subnet(&e, "hub", "GatewaySubnet");
    s.properties.route_table = Some(sub(top(Kind::RouteTable, "rt-nobgp")));
    assert_refused(&mut e, put(Resource::Subnet(s)), "GatewaySubnetRouteTableCannotDisableBgpPropagation", 400);
    // A table already on a GatewaySubnet cannot be changed to disable it either.
    let mut t = route_table(&e, "rt-gw");
    t.properties.disable_bgp_route_propagation = true;
    assert_refused(&mut e, put(Resource::RouteTable(t)), "GatewaySubnetRouteTableCannotDisableBgpPropagation", 400);
}

#[test]
fn gwy2_gateway_subnet_table_cannot_route_the_default_prefix() {
    // GWY2: no 0.0.0.0/0 UDR on GatewaySubnet.
    let mut e = base();
    let mut s = subnet(&e, "hub", "GatewaySubnet");
    s.properties.route_table = Some(sub(top(Kind::RouteTable, "rt-default")));
    assert_refused(&mut e, put(Resource::Subnet(s)), "GatewaySubnetRouteTableCannotHaveDefaultRoute", 400);
    let mut t = route_table(&e, "rt-gw");
    t.properties.routes.push(route(&e, "default", "0.0.0.0/0"));
    assert_refused(&mut e, put(Resource::RouteTable(t)), "GatewaySubnetRouteTableCannotHaveDefaultRoute", 400);
}

#[test]
fn a_subnet_in_use_cannot_be_deleted() {
    let mut e = base();
    // A VM's NIC, the gateway and the ILB frontend each hold an address.
    for s in ["default", "GatewaySubnet", "spare"] {
        assert_refused(&mut e, Change::Delete(subnet_id("hub", s)), "InUseSubnetCannotBeDeleted", 400);
    }
    // Nor by leaving it out of a VNet PUT, nor by deleting the VNet.
    let mut v = vnet(&e, "hub");
    v.properties.subnets.retain(|s| s.name != "default");
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InUseSubnetCannotBeDeleted", 400);
    assert_refused(&mut e, Change::Delete(vnet_id("hub")), "InUseSubnetCannotBeDeleted", 400);
}

#[test]
fn a_subnet_in_use_cannot_drop_its_addresses() {
    // vm1 holds 10.0.0.4; 10.0.0.128/25 does not contain it.
    let mut e = base();
    let mut s = subnet(&e, "hub", "default");
    s.properties.address_prefix = Some(net("10.0.0.128/25"));
    assert_refused(&mut e, put(Resource::Subnet(s)), "InUseSubnetCannotBeUpdated", 400);
}

// ---------------------------------------------------------------------------------------------
// Peering (P1–P6, R1–R4, S4, SP1–SP4, G1–G6, O7)
// ---------------------------------------------------------------------------------------------

#[test]
fn peering_needs_an_id_and_a_remote() {
    let mut e = base();
    let mut l = new_link("lonely", "spoke2");
    l.id = None;
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidRequestContent", 400);
    let mut l = new_link("lonely", "spoke2");
    l.properties.remote_virtual_network = None;
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidRequestContent", 400);
}

#[test]
fn peering_remote_must_be_a_virtual_network() {
    let mut e = base();
    let l = new_link_to("lonely", top(Kind::NetworkSecurityGroup, "nsg1"));
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidResourceReference", 400);
}

#[test]
fn peering_remote_must_exist() {
    let mut e = base();
    let l = new_link("lonely", "ghost");
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidGlobalResourceReference", 400);
}

#[test]
fn a_vnet_cannot_peer_with_itself() {
    let mut e = base();
    let l = new_link("lonely", "lonely");
    assert_refused(&mut e, put(Resource::Peering(l)), "CannotPeerVirtualNetworkWithItself", 400);
}

#[test]
fn o7_remote_of_a_link_cannot_change() {
    // O7 ChangingRemoteVirtualNetworkNotAllowed: remoteVirtualNetwork is immutable.
    let mut e = base();
    let mut l = link(&e, "hub", "hub-to-spoke2");
    l.properties.remote_virtual_network = Some(sub(vnet_id("lonely")));
    assert_refused(&mut e, put(Resource::Peering(l)), "ChangingRemoteVirtualNetworkNotAllowed", 400);
}

#[test]
fn sp3_link_type_cannot_change() {
    // SP3: VNet-wide and subnet peering cannot be switched in place.
    let mut e = base();
    let mut l = link(&e, "hub", "hub-to-spoke2");
    l.properties.peer_complete_vnets = false;
    l.properties.local_subnet_names = vec!["default".into()];
    l.properties.remote_subnet_names = vec!["default".into()];
    assert_refused(&mut e, put(Resource::Peering(l)), "ChangingPeerCompleteVnetsNotAllowed", 400);
}

#[test]
fn sp3_only_one_link_per_remote_vnet() {
    // SP3 / O7 AnotherPeeringAlreadyReferencesRemoteVnet.
    let mut e = base();
    let mut l = new_link("hub", "spoke1");
    l.id = Some(link_id("hub", "second-link-to-spoke1"));
    assert_refused(&mut e, put(Resource::Peering(l)), "AnotherPeeringAlreadyReferencesRemoteVnet", 400);
}

#[test]
fn limits_peerings_per_vnet() {
    // §2.5: hub already has two links.
    let mut e = with_limits(Limits { peerings_per_vnet: 2, ..Limits::default() });
    let l = new_link("hub", "lonely");
    assert_refused(&mut e, put(Resource::Peering(l)), "PeeringsPerVirtualNetworkLimitReached", 400);
}

#[test]
fn r4_no_peering_across_clouds() {
    // R4: westeurope (AzureCloud) and chinanorth2 (AzureChinaCloud).
    let mut e = base();
    let l = new_link("lonely", "china");
    assert_refused(&mut e, put(Resource::Peering(l)), "GlobalPeeringAcrossCloudsNotSupported", 400);
}

#[test]
fn p4_remote_peering_is_disconnected() {
    // P3: deleting hub→spoke1 leaves spoke1→hub Disconnected; P4: re-creating hub→spoke1 is
    // then refused until spoke1→hub is deleted and re-created.
    let mut e = base();
    let saved = link(&e, "hub", "hub-to-spoke1");
    ok(&mut e, Change::Delete(link_id("hub", "hub-to-spoke1")));
    let err = assert_refused(&mut e, put(Resource::Peering(saved)), "RemotePeeringIsDisconnected", 400);
    assert!(err.message.contains("Disconnected state"), "{}", err.message);
}

#[test]
fn p5_recreated_remote_vnet_leaves_the_local_link_disconnected() {
    // P5: spoke2 deleted and re-created: hub→spoke2 stays Disconnected, so the new spoke2→hub
    // is refused (P4).
    let mut e = base();
    let old = vnet(&e, "spoke2");
    ok(&mut e, Change::Delete(vnet_id("spoke2")));
    ok(&mut e, put(Resource::VirtualNetwork(old)));
    let l = new_link("spoke2", "hub");
    assert_refused(&mut e, put(Resource::Peering(l)), "RemotePeeringIsDisconnected", 400);
}

#[test]
fn s4_a_disconnected_link_cannot_be_synced() {
    // S4 on a link whose partner is gone (P3): delete and re-create it instead.
    let mut e = base();
    ok(&mut e, Change::Delete(link_id("spoke2", "spoke2-to-hub")));
    let change = Change::SyncPeering(link_id("hub", "hub-to-spoke2"));
    assert_refused(&mut e, change, "PeeringIsDisconnected", 400);
}

#[test]
fn r1_address_spaces_overlap() {
    // R1: spoke1 and clash are both 10.1.0.0/16.
    let mut e = base();
    let l = new_link("spoke1", "clash");
    let err = assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpacesOverlap", 400);
    assert!(err.message.contains("Overlapping address prefixes: 10.1.0.0/16"), "{}", err.message);
}

#[test]
fn r2_overlap_with_already_peered_vnet() {
    // R2: clash (10.1.0.0/16) does not overlap hub, but overlaps spoke1, already peered with hub.
    let mut e = base();
    let l = new_link("clash", "hub");
    let err = assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
    assert!(err.message.contains("10.1.0.0/16"), "{}", err.message);
    // The same from hub's side (the remote's space against the local VNet's peers).
    let l = new_link("hub", "clash");
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
}

#[test]
fn r2_s4_sync_refused_when_the_remote_grew_into_another_peer() {
    // spoke2 grows into 10.1.0.0/16 (S1 allows it: spoke2's only peer is hub). Syncing hub's
    // link would bring 10.1.0.0/16 next to spoke1's, already peered with hub (R2).
    let mut e = base();
    let mut v = vnet(&e, "spoke2");
    v.properties.address_space.address_prefixes.push(net("10.1.0.0/16"));
    ok(&mut e, put(Resource::VirtualNetwork(v)));
    let change = Change::SyncPeering(link_id("hub", "hub-to-spoke2"));
    assert_refused(&mut e, change, "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
}

#[test]
fn sp2_subnet_peering_overlap_is_checked_on_whole_spaces() {
    // SP2 (field report): clash/upper and spoke1/default do not overlap, the VNet spaces do.
    let mut e = base();
    let l = subnet_link("clash", "spoke1", &["upper"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpacesOverlap", 400);
}

#[test]
fn sp1_subnet_peering_needs_subnet_names() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default"], &[]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetNamesRequiredForSubnetPeering", 400);
}

#[test]
fn sp1_subnet_peering_names_existing_subnets() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default"], &["ghost"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetNotFoundForSubnetPeering", 400);
}

#[test]
fn sp2_subnet_peering_subnets_are_unique() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default", "DEFAULT"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "DuplicateSubnetInSubnetPeering", 400);
}

#[test]
fn sp4_limits_subnets_per_subnet_peering() {
    // SP4: at most N subnets on both sides together (200 in Azure).
    let mut e = with_limits(Limits { subnets_per_subnet_peering: 2, ..Limits::default() });
    let l = subnet_link("lonely", "spoke2", &["default", "other"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetPeeringSubnetLimitReached", 400);
}

#[test]
fn p6_subnet_peering_is_not_available_with_a_classic_vnet() {
    let mut e = base();
    let mut l = subnet_link("lonely", "spoke2", &["default"], &["default"]);
    l.properties.remote_virtual_network = Some(sub(top(Kind::ClassicVirtualNetwork, "legacy")));
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetPeeringNotSupportedForClassicVnet", 400);
}

#[test]
fn g1_only_one_use_remote_gateways() {
    // G1: spoke1→hub already uses remote gateways (checked before G3, so lonely needs none).
    let mut e = base();
    let mut l = new_link("spoke1", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "OnlyOnePeeringCanUseRemoteGateways", 400);
}

#[test]
fn g2_vnet_with_a_gateway_cannot_use_remote_gateways() {
    let mut e = base();
    let mut l = new_link("hub", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetWithGatewayCannotUseRemoteGateways", 400);
}

#[test]
fn g2_vnet_using_remote_gateways_cannot_have_a_gateway() {
    // G2, other direction: spoke1 uses hub's gateway, so it cannot get one of its own.
    let mut e = base();
    let g = new_gateway(&e, "spoke1-gw", "spoke1");
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "VnetUsingRemoteGatewaysCannotHaveGateway", 400);
}

#[test]
fn g3_remote_vnet_has_no_gateways() {
    let mut e = base();
    let mut l = new_link("spoke2", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l.clone())), "RemoteVnetHasNoGateways", 400);
    // doNotVerifyRemoteGateways does not bypass it (azure-semantics §1.1).
    l.properties.do_not_verify_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteVnetHasNoGateways", 400);
}

#[test]
fn g4_a_classic_gateway_does_not_serve_transit() {
    // G4: the gateway must be in the Resource Manager VNet.
    let mut e = base();
    let mut c = classic(&e, "legacy");
    c.properties.has_gateway = true;
    ok(&mut e, put(Resource::ClassicVirtualNetwork(c)));
    let mut l = new_link_to("lonely", top(Kind::ClassicVirtualNetwork, "legacy"));
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteVnetHasNoGateways", 400);
}

#[test]
fn g6_basic_vpn_gateway_does_not_serve_transit() {
    let mut e = base();
    give_lonely_a_basic_gateway(&mut e);
    let mut l = new_link("spoke2", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteGatewaySkuDoesNotSupportGatewayTransit", 400);
}

#[test]
fn limits_private_ips_per_peering_group() {
    // §2.5: hub (gateway, ILB frontend, vm1) + spoke1 (vm2) + spoke2 = 4 addresses; peering
    // lonely (vm3) with hub would make 5.
    let mut e = with_limits(Limits { private_ips_per_peering_group: 4, ..Limits::default() });
    let l = new_link("lonely", "hub");
    assert_refused(&mut e, put(Resource::Peering(l)), "PrivateIpsPerPeeringGroupLimitReached", 400);
}

// ---------------------------------------------------------------------------------------------
// NICs, VMs and private addresses
// ---------------------------------------------------------------------------------------------

#[test]
fn nic_needs_an_ip_configuration() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations.clear();
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "NetworkInterfaceMustHaveIpConfiguration", 400);
}

#[test]
fn nic_has_exactly_one_primary_ip_configuration() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    let mut second = extra_config(&n, "second", subnet_id("hub", "spare"), None);
    second.properties.primary = Some(true);
    n.properties.ip_configurations.push(second);
    let code = "NetworkInterfaceMustHaveOnePrimaryIpConfiguration";
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), code, 400);
}

#[test]
fn nic_ip_configuration_names_are_unique() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    let twin = extra_config(&n, "IPCONFIG1", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations.push(twin);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "DuplicateResourceName", 400);
}

#[test]
fn nic_ip_configuration_needs_a_subnet() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].properties.subnet = None;
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "SubnetRequired", 400);
}

#[test]
fn nic_references_must_resolve() {
    let mut e = base();
    // Missing subnet.
    let n = new_nic(&e, "nic-x", subnet_id("hub", "ghost"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
    // A subnet reference that names a VNet.
    let n = new_nic(&e, "nic-x", vnet_id("hub"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
    // A subnet in another region (north is in northeurope, the NIC in westeurope).
    let n = new_nic(&e, "nic-x", subnet_id("north", "default"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
    // Missing NSG.
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.network_security_group = Some(sub(top(Kind::NetworkSecurityGroup, "ghost")));
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
    // Missing backend pool, on an existing load balancer and on a missing one.
    let pool = top(Kind::LoadBalancer, "ilb").child("backendAddressPools", "ghost");
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].properties.load_balancer_backend_address_pools = vec![sub(pool)];
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
    let pool = top(Kind::LoadBalancer, "ghost").child("backendAddressPools", "pool");
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].properties.load_balancer_backend_address_pools = vec![sub(pool)];
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceReference", 400);
}

#[test]
fn nic_ip_configurations_share_one_vnet() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    let other = extra_config(&n, "second", subnet_id("lonely", "other"), None);
    n.properties.ip_configurations.push(other);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "IpConfigurationsOfNicMustBeInSameVnet", 400);
}

#[test]
fn private_address_must_parse() {
    let mut e = base();
    let n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), Some("10.0.1.999"));
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidPrivateIPAddress", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].properties.private_ip_address = Some("frontend".into());
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidPrivateIPAddress", 400);
    let mut g = gateway(&e, "hub-gw");
    g.properties.ip_configurations[0].properties.private_ip_address = Some("10.0.255".into());
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidPrivateIPAddress", 400);
}

#[test]
fn static_allocation_needs_an_address() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].properties.private_ip_allocation_method = Some(AllocationMethod::Static);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressRequired", 400);
}

#[test]
fn private_address_must_be_in_the_subnet() {
    let mut e = base();
    let n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), Some("10.0.0.50"));
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressNotInSubnet", 400);
}

#[test]
fn private_address_must_not_be_reserved() {
    // The first four addresses and the broadcast address of each subnet.
    let mut e = base();
    for ip in ["10.0.1.0", "10.0.1.1", "10.0.1.3", "10.0.1.255"] {
        let n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), Some(ip));
        assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressInReservedRange", 400);
    }
}

#[test]
fn private_address_must_be_free() {
    let mut e = base();
    // Held by vm1's NIC.
    let n = new_nic(&e, "nic-x", subnet_id("hub", "default"), Some("10.0.0.4"));
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressIsAllocated", 400);
    // Used twice by the same NIC.
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), Some("10.0.1.20"));
    let twin = extra_config(&n, "second", subnet_id("hub", "spare"), Some("10.0.1.20"));
    n.properties.ip_configurations.push(twin);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressIsAllocated", 400);
    // An ILB frontend on vm1's address.
    let mut l = lb(&e, "ilb");
    let fe = &mut l.resource.properties.frontend_ip_configurations[0].properties;
    fe.subnet = Some(sub(subnet_id("hub", "default")));
    fe.private_ip_address = Some("10.0.0.4".into());
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "PrivateIPAddressIsAllocated", 400);
}

#[test]
fn subnet_is_full() {
    // hub/tiny is a /29: .4, .5 and .6 are usable.
    let mut e = base();
    for name in ["t1", "t2", "t3"] {
        let n = new_nic(&e, name, subnet_id("hub", "tiny"), None);
        ok(&mut e, put(Resource::NetworkInterface(n)));
    }
    let n = new_nic(&e, "t4", subnet_id("hub", "tiny"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "SubnetIsFull", 400);
    let mut l = lb(&e, "ilb");
    let fe = &mut l.resource.properties.frontend_ip_configurations[0].properties;
    fe.subnet = Some(sub(subnet_id("hub", "tiny")));
    fe.private_ip_address = None;
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "SubnetIsFull", 400);
}

#[test]
fn limits_private_ips_per_vnet() {
    // §2.5: hub holds three addresses (gateway, ILB frontend, vm1).
    let mut e = with_limits(Limits { private_ips_per_vnet: 3, ..Limits::default() });
    let n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIpsPerVnetLimitReached", 400);
}

#[test]
fn a_nic_in_use_by_a_vm_cannot_be_deleted_or_shared() {
    let mut e = base();
    let nic_id = top(Kind::NetworkInterface, "vm1-nic");
    assert_refused(&mut e, Change::Delete(nic_id), "NicInUse", 400);
    let m = new_vm(&e, "vm4", &["vm1-nic"]);
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "NicInUse", 400);
}

#[test]
fn vm_needs_a_network_interface() {
    let mut e = base();
    let m = new_vm(&e, "vm4", &[]);
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "NetworkProfileRequired", 400);
    let m = new_vm(&e, "vm4", &["ghost-nic"]);
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "InvalidResourceReference", 400);
    let m = new_vm(&e, "vm4", &[]);
    let mut m2 = m.clone();
    m2.properties.network_profile.network_interfaces =
        vec![VmNicReference { id: top(Kind::LoadBalancer, "ilb"), properties: None }];
    assert_refused(&mut e, put(Resource::VirtualMachine(m2)), "InvalidResourceReference", 400);
}

#[test]
fn vm_has_exactly_one_primary_nic() {
    let mut e = base();
    let mut m = new_vm(&e, "vm4", &["free-a", "free-b"]);
    for r in &mut m.properties.network_profile.network_interfaces {
        r.properties = Some(VmNicReferenceProperties { primary: false });
    }
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "VirtualMachineMustHaveOnePrimaryNic", 400);
}

#[test]
fn vm_nics_share_one_vnet() {
    let mut e = base();
    let a = new_nic(&e, "free-a", subnet_id("lonely", "other"), None);
    let b = new_nic(&e, "free-b", subnet_id("spoke2", "default"), None);
    ok(&mut e, put(Resource::NetworkInterface(a)));
    ok(&mut e, put(Resource::NetworkInterface(b)));
    let m = new_vm(&e, "vm4", &["free-a", "free-b"]);
    assert_refused(&mut e, put(Resource::VirtualMachine(m)), "NetworkInterfacesInDifferentVirtualNetworks", 400);
}

// ---------------------------------------------------------------------------------------------
// Gateways, sites and connections (GWY1, GWY4)
// ---------------------------------------------------------------------------------------------

#[test]
fn gwy1_gateway_type_must_be_vpn_or_expressroute() {
    let mut e = base();
    let mut g = new_gateway(&e, "lonely-gw", "hub");
    g.properties.gateway_type = GatewayType::LocalGateway;
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidGatewayType", 400);
}

#[test]
fn gwy1_policy_based_only_with_basic_sku() {
    let mut e = base();
    let mut g = gateway(&e, "hub-gw");
    g.properties.vpn_type = Some(VpnType::PolicyBased);
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "PolicyBasedVpnGatewayRequiresBasicSku", 400);
}

#[test]
fn gateway_has_one_or_two_ip_configurations() {
    let mut e = base();
    let mut g = gateway(&e, "hub-gw");
    g.properties.ip_configurations.clear();
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidGatewayIpConfigurations", 400);
    let mut g = gateway(&e, "hub-gw");
    let c = g.properties.ip_configurations[0].clone();
    g.properties.ip_configurations = vec![c.clone(), c.clone(), c];
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidGatewayIpConfigurations", 400);
}

#[test]
fn gwy1_gateway_needs_the_gateway_subnet() {
    let mut e = base();
    let mut g = gateway(&e, "hub-gw");
    g.properties.ip_configurations[0].properties.subnet = Some(sub(subnet_id("hub", "spare")));
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "GatewaySubnetRequired", 400);
    let mut g = gateway(&e, "hub-gw");
    g.properties.ip_configurations[0].properties.subnet = None;
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "GatewaySubnetRequired", 400);
    // A GatewaySubnet that does not exist (lonely has none).
    let g = new_gateway(&e, "lonely-gw", "lonely");
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "InvalidResourceReference", 400);
}

#[test]
fn gwy1_one_vpn_gateway_per_vnet() {
    // GWY1 / §2.5: one VPN gateway (and one ExpressRoute gateway) per VNet.
    let mut e = base();
    let g = new_gateway(&e, "hub-gw2", "hub");
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "GatewayCountLimitReached", 400);
}

#[test]
fn gateway_and_site_in_use_cannot_be_deleted() {
    let mut e = base();
    let g = top(Kind::VirtualNetworkGateway, "hub-gw");
    assert_refused(&mut e, Change::Delete(g), "InUseVirtualNetworkGatewayCannotBeDeleted", 400);
    let s = top(Kind::LocalNetworkGateway, "onprem");
    assert_refused(&mut e, Change::Delete(s), "InUseLocalNetworkGatewayCannotBeDeleted", 400);
}

#[test]
fn site_and_connection_prefixes_are_canonical() {
    let mut e = base();
    let mut s = site(&e, "onprem");
    s.properties.local_network_address_space = AddressSpace::of(vec![net("192.168.1.1/16")]);
    assert_refused(&mut e, put(Resource::LocalNetworkGateway(s)), "InvalidCIDRNotation", 400);
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.bgp_learned_prefixes = vec![net("172.20.0.1/16")];
    assert_refused(&mut e, put(Resource::Connection(c)), "InvalidCIDRNotation", 400);
}

#[test]
fn connection_references_must_resolve() {
    let mut e = base();
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.virtual_network_gateway1 = sub(top(Kind::VirtualNetworkGateway, "ghost"));
    assert_refused(&mut e, put(Resource::Connection(c)), "InvalidResourceReference", 400);
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.local_network_gateway2 = Some(sub(top(Kind::LocalNetworkGateway, "ghost")));
    assert_refused(&mut e, put(Resource::Connection(c)), "InvalidResourceReference", 400);
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.connection_type = ConnectionType::Vnet2Vnet;
    c.properties.virtual_network_gateway2 = Some(sub(top(Kind::VirtualNetworkGateway, "ghost")));
    assert_refused(&mut e, put(Resource::Connection(c)), "InvalidResourceReference", 400);
}

#[test]
fn connection_type_must_match_its_ends() {
    let mut e = base();
    let code = "InvalidConnectionConfiguration";
    // IPsec without a site.
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.local_network_gateway2 = None;
    assert_refused(&mut e, put(Resource::Connection(c)), code, 400);
    // Vnet2Vnet without a second gateway.
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.connection_type = ConnectionType::Vnet2Vnet;
    assert_refused(&mut e, put(Resource::Connection(c)), code, 400);
    // ExpressRoute on a VPN gateway.
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.connection_type = ConnectionType::ExpressRoute;
    assert_refused(&mut e, put(Resource::Connection(c)), code, 400);
    // Point-to-site is not modelled.
    let mut c = connection(&e, "hub-to-onprem");
    c.properties.connection_type = ConnectionType::VPNClient;
    assert_refused(&mut e, put(Resource::Connection(c)), code, 400);
}

#[test]
fn gwy4_vnet_to_vnet_needs_route_based_gateways() {
    let mut e = base();
    give_lonely_a_basic_gateway(&mut e);
    let mut c = connection(&e, "hub-to-onprem");
    c.id = top(Kind::Connection, "hub-to-lonely");
    c.properties.connection_type = ConnectionType::Vnet2Vnet;
    c.properties.local_network_gateway2 = None;
    c.properties.virtual_network_gateway2 = Some(sub(top(Kind::VirtualNetworkGateway, "lonely-gw")));
    assert_refused(&mut e, put(Resource::Connection(c)), "InvalidConnectionConfiguration", 400);
}

#[test]
fn gwy4_vnet_to_vnet_spaces_must_not_overlap() {
    // GWY4: twin reuses hub's 10.0.0.0/16.
    let mut e = base();
    let mut twin = new_vnet(&e, "twin", &["10.0.0.0/16"]);
    twin.properties.subnets.push(new_subnet(&e, "twin", "GatewaySubnet", "10.0.255.0/27"));
    ok(&mut e, put(Resource::VirtualNetwork(twin)));
    let g = new_gateway(&e, "twin-gw", "twin");
    ok(&mut e, put(Resource::VirtualNetworkGateway(g)));
    let mut c = connection(&e, "hub-to-onprem");
    c.id = top(Kind::Connection, "hub-to-twin");
    c.properties.connection_type = ConnectionType::Vnet2Vnet;
    c.properties.local_network_gateway2 = None;
    c.properties.virtual_network_gateway2 = Some(sub(top(Kind::VirtualNetworkGateway, "twin-gw")));
    assert_refused(&mut e, put(Resource::Connection(c)), "Vnet2VnetAddressSpacesOverlap", 400);
}

// ---------------------------------------------------------------------------------------------
// Internal load balancers
// ---------------------------------------------------------------------------------------------

#[test]
fn load_balancer_needs_a_frontend_in_a_subnet() {
    let mut e = base();
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations.clear();
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "LoadBalancerFrontendRequired", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].properties.subnet = None;
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "SubnetRequired", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].properties.subnet = Some(sub(subnet_id("hub", "ghost")));
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceReference", 400);
}

#[test]
fn load_balancer_rules_name_its_own_children() {
    let mut e = base();
    let lb_id = top(Kind::LoadBalancer, "ilb");
    let mut l = lb(&e, "ilb");
    l.resource.properties.load_balancing_rules[0].properties.backend_address_pool =
        sub(lb_id.child("backendAddressPools", "ghost"));
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceReference", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.load_balancing_rules[0].properties.frontend_ip_configuration =
        sub(lb_id.child("frontendIPConfigurations", "ghost"));
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceReference", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.load_balancing_rules[0].properties.probe = Some(sub(lb_id.child("probes", "ghost")));
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceReference", 400);
}

#[test]
fn load_balancer_with_pool_members_cannot_be_deleted() {
    let mut e = base();
    let change = Change::Delete(top(Kind::LoadBalancer, "ilb"));
    assert_refused(&mut e, change, "InUseLoadBalancerCannotBeDeleted", 400);
}

// ---------------------------------------------------------------------------------------------
// NSGs (N1, §2.5)
// ---------------------------------------------------------------------------------------------

#[test]
fn limits_nsgs_per_subscription_and_region() {
    let mut e = with_limits(Limits { nsgs_per_subscription: 3, ..Limits::default() });
    let mut n = nsg(&e, "nsg-free");
    n.id = top(Kind::NetworkSecurityGroup, "nsg4");
    assert_refused(&mut e, put(Resource::NetworkSecurityGroup(n)), "NetworkSecurityGroupCountLimitReached", 400);
}

#[test]
fn limits_rules_per_nsg() {
    let mut e = with_limits(Limits { rules_per_nsg: 1, ..Limits::default() });
    let change = nsg1_with(&e, rule(&e, "second", 200));
    assert_refused(&mut e, change, "SecurityRuleCountLimitReached", 400);
}

#[test]
fn n1_priority_is_100_to_4096() {
    let mut e = base();
    for p in [99, 4097, 65000] {
        let change = nsg1_with(&e, rule(&e, "out-of-range", p));
        let err = assert_refused(&mut e, change, "SecurityRuleInvalidPriority", 400);
        assert!(err.target.as_deref().is_some_and(|t| t.ends_with("/securityRules/out-of-range")));
    }
}

#[test]
fn n1_description_is_at_most_140_characters() {
    let mut e = base();
    let mut r = rule(&e, "wordy", 200);
    r.properties.description = Some("x".repeat(141));
    let change = nsg1_with(&e, r);
    assert_refused(&mut e, change, "SecurityRuleDescriptionTooLong", 400);
}

#[test]
fn n1_no_two_rules_share_priority_and_direction() {
    let mut e = base();
    let change = nsg1_with(&e, rule(&e, "same-priority", 100));
    let err = assert_refused(&mut e, change, "SecurityRuleConflict", 400);
    assert!(err.message.contains("conflicts with rule allow-ssh"), "{}", err.message);
}

#[test]
fn n1_single_and_plural_fields_are_exclusive_and_tags_stand_alone() {
    let mut e = base();
    let code = "SecurityRuleParameterContainsUnsupportedValue";
    let mut r = rule(&e, "both-forms", 200);
    r.properties.source_address_prefixes = vec!["10.1.0.0/16".into()];
    let change = nsg1_with(&e, r);
    assert_refused(&mut e, change, code, 400);
    let mut r = rule(&e, "both-port-forms", 200);
    r.properties.destination_port_ranges = vec!["80".into()];
    let change = nsg1_with(&e, r);
    assert_refused(&mut e, change, code, 400);
    // N1: one service tag per side, not mixed with addresses.
    let mut r = rule(&e, "tag-and-cidr", 200);
    r.properties.source_address_prefix = None;
    r.properties.source_address_prefixes = vec!["VirtualNetwork".into(), "10.1.0.0/16".into()];
    let change = nsg1_with(&e, r);
    assert_refused(&mut e, change, code, 400);
}

#[test]
fn n1_port_ranges_are_valid() {
    let mut e = base();
    for bad in [Some("70000"), Some("90-80"), Some("http"), None] {
        let mut r = rule(&e, "ports", 200);
        r.properties.destination_port_range = bad.map(str::to_string);
        let change = nsg1_with(&e, r);
        assert_refused(&mut e, change, "SecurityRuleInvalidPortRange", 400);
    }
}

#[test]
fn n1_address_prefixes_are_valid() {
    let mut e = base();
    for bad in [Some("10.0.0.1/16"), Some("not-an-address"), Some("Storage"), None] {
        let mut r = rule(&e, "addresses", 200);
        r.properties.source_address_prefix = bad.map(str::to_string);
        let change = nsg1_with(&e, r);
        assert_refused(&mut e, change, "SecurityRuleInvalidAddressPrefix", 400);
    }
}

#[test]
fn limits_prefixes_per_rule_side() {
    let mut e = with_limits(Limits { prefixes_per_rule_side: 1, ..Limits::default() });
    let mut r = rule(&e, "many", 200);
    r.properties.source_address_prefix = None;
    r.properties.source_address_prefixes = vec!["10.1.0.0/16".into(), "10.2.0.0/16".into()];
    let change = nsg1_with(&e, r);
    assert_refused(&mut e, change, "SecurityRuleAddressPrefixCountLimitReached", 400);
}

#[test]
fn an_nsg_in_use_cannot_be_deleted() {
    let mut e = base();
    // On hub/default, and on vm2's NIC.
    for name in ["nsg1", "nsg-nic"] {
        let change = Change::Delete(top(Kind::NetworkSecurityGroup, name));
        assert_refused(&mut e, change, "InUseNetworkSecurityGroupCannotBeDeleted", 400);
    }
}

// ---------------------------------------------------------------------------------------------
// Route tables (U1, §2.5)
// ---------------------------------------------------------------------------------------------

#[test]
fn limits_route_tables_per_subscription_and_region() {
    let mut e = with_limits(Limits { route_tables_per_subscription: 4, ..Limits::default() });
    let mut t = route_table(&e, "rt-gw");
    t.id = top(Kind::RouteTable, "rt5");
    assert_refused(&mut e, put(Resource::RouteTable(t)), "RouteTableCountLimitReached", 400);
}

#[test]
fn limits_routes_per_table() {
    let mut e = with_limits(Limits { routes_per_table: 1, ..Limits::default() });
    let change = rt1_with(&e, route(&e, "second", "10.8.0.0/16"));
    assert_refused(&mut e, change, "RouteCountLimitReached", 400);
}

#[test]
fn u1_service_tag_prefixes_are_not_modelled() {
    // U1 allows a service tag as addressPrefix; Tessera refuses it explicitly.
    let mut e = base();
    let change = rt1_with(&e, route(&e, "storage", "Storage"));
    assert_refused(&mut e, change, "ServiceTagRoutesNotSupported", 400);
}

#[test]
fn u1_route_prefix_is_a_cidr() {
    let mut e = base();
    for bad in ["10.8.0/16", "10.8.0.0/33", "10.8.0.0./16"] {
        let change = rt1_with(&e, route(&e, "malformed", bad));
        assert_refused(&mut e, change, "InvalidAddressPrefixFormat", 400);
    }
    let change = rt1_with(&e, route(&e, "hostbits", "10.8.0.1/16"));
    assert_refused(&mut e, change, "InvalidCIDRNotation", 400);
}

#[test]
fn u1_route_prefixes_are_unique_in_a_table() {
    let mut e = base();
    let change = rt1_with(&e, route(&e, "again", "10.9.0.0/16"));
    assert_refused(&mut e, change, "RouteConflict", 400);
}

#[test]
fn u1_virtual_appliance_needs_a_next_hop_ip() {
    let mut e = base();
    for bad in [None, Some(""), Some("nva.example.com")] {
        let mut r = route(&e, "nva", "10.8.0.0/16");
        r.properties.next_hop_ip_address = bad.map(str::to_string);
        let change = rt1_with(&e, r);
        assert_refused(&mut e, change, "InvalidNextHopIpAddress", 400);
    }
}

#[test]
fn u1_next_hop_ip_only_with_virtual_appliance() {
    let mut e = base();
    for hop in [RouteNextHopType::Internet, RouteNextHopType::VnetLocal, RouteNextHopType::None] {
        let mut r = route(&e, "hop", "10.8.0.0/16");
        r.properties.next_hop_type = hop;
        let change = rt1_with(&e, r);
        assert_refused(&mut e, change, "NextHopIpAddressNotAllowed", 400);
    }
}

#[test]
fn a_route_table_in_use_cannot_be_deleted() {
    let mut e = base();
    for name in ["rt1", "rt-gw"] {
        let change = Change::Delete(top(Kind::RouteTable, name));
        assert_refused(&mut e, change, "InUseRouteTableCannotBeDeleted", 400);
    }
}

// ---------------------------------------------------------------------------------------------
// Loading topology files (load::load)
// ---------------------------------------------------------------------------------------------

#[test]
fn load_refuses_malformed_json() {
    assert_load_refused("{ not json", Format::Json, Limits::default(), "InvalidRequestFormat", 400);
}

#[test]
fn load_refuses_json_of_the_wrong_shape() {
    let code = "InvalidRequestContent";
    assert_load_refused("42", Format::Json, Limits::default(), code, 400);
    assert_load_refused(r#"[{"id": "not-an-id"}]"#, Format::Json, Limits::default(), code, 400);
    let no_properties = r#"[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
                            "location": "westeurope"}]"#;
    assert_load_refused(no_properties, Format::Json, Limits::default(), code, 400);
}

#[test]
fn load_refuses_unsupported_resource_types() {
    let watcher = r#"[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkWatchers/nw",
                       "location": "westeurope", "properties": {}}]"#;
    assert_load_refused(watcher, Format::Json, Limits::default(), "NoRegisteredProviderFound", 400);
}

#[test]
fn load_refuses_invalid_yaml_topologies() {
    let code = "InvalidTopology";
    // Not YAML of the expected shape, an unknown field, an undeclared name, an ambiguous name.
    assert_load_refused("vnets: 12", Format::Yaml, Limits::default(), code, 400);
    assert_load_refused(
        "vnets: [{ name: a, addressSpace: [10.0.0.0/16], colour: red }]",
        Format::Yaml,
        Limits::default(),
        code,
        400,
    );
    let undeclared =
        "vnets: [{ name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24, nsg: ghost }] }]";
    assert_load_refused(undeclared, Format::Yaml, Limits::default(), code, 400);
    let ambiguous = "vnets:\n  - { name: a, addressSpace: [10.0.0.0/16] }\n  - { name: a, resourceGroup: other, addressSpace: [10.1.0.0/16] }\npeerings: [{ from: a, to: a }]\n";
    assert_load_refused(ambiguous, Format::Yaml, Limits::default(), code, 400);
}

#[test]
fn load_reports_engine_refusals_with_their_target() {
    // R1 in a file (examples/invalid-overlap.yaml): the refusal names the link.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/invalid-overlap.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let err = assert_load_refused(&text, Format::Yaml, Limits::default(), "VnetAddressSpacesOverlap", 400);
    assert!(err.target.as_deref().is_some_and(|t| t.contains("/virtualNetworkPeerings/")), "{err:?}");
    // A refusal without a target of its own gets the resource's id.
    let overlap = "vnets: [{ name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24 }, { name: t, prefix: 10.0.0.0/25 }] }]";
    let err = assert_load_refused(overlap, Format::Yaml, Limits::default(), "NetcfgSubnetRangesOverlap", 400);
    assert!(err.target.as_deref().is_some_and(|t| t.ends_with("/virtualNetworks/a")), "{err:?}");
    // Limits apply while loading too.
    let two = "vnets: [{ name: a, addressSpace: [10.0.0.0/16] }, { name: b, addressSpace: [10.1.0.0/16] }]";
    let limits = Limits { vnets_per_subscription: 1, ..Limits::default() };
    assert_load_refused(two, Format::Yaml, limits, "VnetCountLimitReached", 400);
}

// ---------------------------------------------------------------------------------------------
// Engine bugs found while writing this file (ignored until fixed)
// ---------------------------------------------------------------------------------------------

/// Child names are turned into ids (`ResourceId::child`, which panics on an invalid id) before
/// `check_name` looks at them, so an empty child name panics instead of being refused.
#[test]
fn regression_empty_child_names_panic_instead_of_invalid_resource_name() {
    let mut e = base();
    let mut v = vnet(&e, "lonely");
    v.properties.subnets[1].name = String::new();
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidResourceName", 400);
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.ip_configurations[0].name = String::new();
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "InvalidResourceName", 400);
    let change = nsg1_with(&e, rule(&e, "", 200));
    assert_refused(&mut e, change, "InvalidResourceName", 400);
    let change = rt1_with(&e, route(&e, "", "10.8.0.0/16"));
    assert_refused(&mut e, change, "InvalidResourceName", 400);
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].name = String::new();
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "InvalidResourceName", 400);
    // The same through the loaders (YAML panics in tessera-model, JSON in the engine).
    let yaml = "vnets: [{ name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: '', prefix: 10.0.0.0/24 }] }]";
    assert_load_refused(yaml, Format::Yaml, Limits::default(), "InvalidResourceName", 400);
    let json = r#"[{"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/a",
                    "location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"properties": {"addressPrefix": "10.0.0.0/24"}}]}}]"#;
    assert_load_refused(json, Format::Json, Limits::default(), "InvalidResourceName", 400);
}

/// NIC → subnet checks the region, but no other reference does, although the engine's own
/// `InvalidResourceReference` message says "both resources are in the same region".
#[test]
fn regression_cross_region_references_are_accepted() {
    let base = base();
    let mut far_nsg = nsg(&base, "nsg-free");
    far_nsg.id = top(Kind::NetworkSecurityGroup, "nsg-north");
    far_nsg.location = "northeurope".into();
    let mut far_table = route_table(&base, "rt-gw");
    far_table.id = top(Kind::RouteTable, "rt-north");
    far_table.location = "northeurope".into();
    let mut setup = base.clone();
    ok(&mut setup, put(Resource::NetworkSecurityGroup(far_nsg)));
    ok(&mut setup, put(Resource::RouteTable(far_table)));

    let mut cases: Vec<(&str, Change)> = Vec::new();
    let mut s = subnet(&setup, "hub", "spare");
    s.properties.network_security_group = Some(sub(top(Kind::NetworkSecurityGroup, "nsg-north")));
    cases.push(("subnet → NSG in northeurope", put(Resource::Subnet(s))));
    let mut s = subnet(&setup, "hub", "spare");
    s.properties.route_table = Some(sub(top(Kind::RouteTable, "rt-north")));
    cases.push(("subnet → route table in northeurope", put(Resource::Subnet(s))));
    let mut n = new_nic(&setup, "nic-x", subnet_id("hub", "spare"), None);
    n.properties.network_security_group = Some(sub(top(Kind::NetworkSecurityGroup, "nsg-north")));
    cases.push(("NIC → NSG in northeurope", put(Resource::NetworkInterface(n))));
    let mut g = new_gateway(&setup, "hub-gw", "hub");
    g.location = "northeurope".into();
    cases.push(("northeurope gateway in a westeurope VNet", put(Resource::VirtualNetworkGateway(g))));
    let mut l = lb(&setup, "ilb");
    l.resource.location = "northeurope".into();
    cases.push(("northeurope ILB with a westeurope frontend subnet", put(Resource::LoadBalancer(l))));
    let mut m = vm(&setup, "vm3");
    m.location = "northeurope".into();
    cases.push(("northeurope VM on a westeurope NIC", put(Resource::VirtualMachine(m))));

    let mut accepted = Vec::new();
    for (what, change) in cases {
        let mut e = setup.clone();
        match e.apply(change) {
            Ok(()) => accepted.push(what),
            Err(err) => assert_eq!(err.code, "InvalidResourceReference", "{what}: {err}"),
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

/// Subnets and NIC IP configurations refuse duplicate names; the children of NSGs, route
/// tables and load balancers do not, so two rules (or routes, frontends…) can share a name.
#[test]
fn regression_duplicate_child_names_are_accepted() {
    let base = base();
    let mut cases: Vec<(&str, Change)> = Vec::new();
    cases.push(("two security rules named allow-ssh", nsg1_with(&base, rule(&base, "ALLOW-SSH", 200))));
    cases.push(("two routes named to-nva", rt1_with(&base, route(&base, "To-Nva", "10.8.0.0/16"))));
    let mut l = lb(&base, "ilb");
    let mut fe = l.resource.properties.frontend_ip_configurations[0].clone();
    fe.properties.private_ip_address = Some("10.0.1.11".into());
    l.resource.properties.frontend_ip_configurations.push(fe);
    cases.push(("two LB frontends named fe", put(Resource::LoadBalancer(l))));
    let mut l = lb(&base, "ilb");
    let pool = l.resource.properties.backend_address_pools[0].clone();
    l.resource.properties.backend_address_pools.push(pool);
    cases.push(("two LB pools named pool", put(Resource::LoadBalancer(l))));

    let mut accepted = Vec::new();
    for (what, change) in cases {
        let mut e = base.clone();
        match e.apply(change) {
            Ok(()) => accepted.push(what),
            Err(err) => assert_eq!(err.code, "DuplicateResourceName", "{what}: {err}"),
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:#?}");
}

/// `Change::Put` never checks that the resource's id is of its variant's kind: a
/// `Resource::VirtualNetwork` whose id names an NSG is stored among the VNets, and
/// `Change::Delete` of that id then looks among the NSGs and cannot find it.
#[test]
fn regression_put_accepts_an_id_of_another_kind() {
    let mut e = base();
    let mut v = new_vnet(&e, "x", &["10.7.0.0/16"]);
    v.id = top(Kind::NetworkSecurityGroup, "not-a-vnet");
    assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidRequestContent", 400);
}

// ---------------------------------------------------------------------------------------------
// Coverage: every code in the sources is demonstrated above
// ---------------------------------------------------------------------------------------------

/// Every code this file demonstrates (each is asserted by at least one test above).
const COVERED: &[&str] = &[
    "ResourceMoveProviderValidationFailed",
    "CannotMoveVirtualNetworkWithPeerings",
    "CannotMoveVirtualNetworkInUse",
    "ResourceAlreadyExists",
    // ops/mod.rs
    "InvalidSubscriptionId",
    "UnsupportedResourceType",
    // ops/common.rs and model error/location/prefix helpers
    "InvalidResourceName",
    "SubscriptionNotFound",
    "InvalidResourceReference",
    "LocationNotAvailableForResourceType",
    "InvalidCIDRNotation",
    "InvalidAddressPrefixFormat",
    "NotFound",
    "ResourceNotFound",
    // ops/vnet.rs
    "LocationCannotBeChanged",
    "VnetCountLimitReached",
    "AddressSpaceRequired",
    "VnetAddressSpacePrefixesOverlap",
    "DnsServersLimitReached",
    "InvalidDnsServerAddress",
    "SubnetCountLimitReached",
    "NetcfgInvalidSubnet",
    "DuplicateResourceName",
    "NetcfgSubnetRangeOutsideVnet",
    "NetcfgSubnetRangesOverlap",
    "GatewaySubnetRouteTableCannotDisableBgpPropagation",
    "GatewaySubnetRouteTableCannotHaveDefaultRoute",
    "InUseSubnetCannotBeDeleted",
    "InUseSubnetCannotBeUpdated",
    "VnetAddressSpacesOverlap",
    // ops/peering.rs
    "InvalidRequestContent",
    "ChangingRemoteVirtualNetworkNotAllowed",
    "ChangingPeerCompleteVnetsNotAllowed",
    "PeeringsPerVirtualNetworkLimitReached",
    "CannotPeerVirtualNetworkWithItself",
    "InvalidGlobalResourceReference",
    "GlobalPeeringAcrossCloudsNotSupported",
    "AnotherPeeringAlreadyReferencesRemoteVnet",
    "RemotePeeringIsDisconnected",
    "PeeringIsDisconnected",
    "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
    "OnlyOnePeeringCanUseRemoteGateways",
    "VnetWithGatewayCannotUseRemoteGateways",
    "RemoteVnetHasNoGateways",
    "RemoteGatewaySkuDoesNotSupportGatewayTransit",
    "SubnetPeeringNotSupportedForClassicVnet",
    "SubnetNamesRequiredForSubnetPeering",
    "SubnetPeeringSubnetLimitReached",
    "DuplicateSubnetInSubnetPeering",
    "SubnetNotFoundForSubnetPeering",
    "PrivateIpsPerPeeringGroupLimitReached",
    // ops/nic.rs and ops/address.rs
    "NetworkInterfaceMustHaveIpConfiguration",
    "NetworkInterfaceMustHaveOnePrimaryIpConfiguration",
    "SubnetRequired",
    "IpConfigurationsOfNicMustBeInSameVnet",
    "InvalidPrivateIPAddress",
    "PrivateIPAddressRequired",
    "PrivateIPAddressIsAllocated",
    "PrivateIPAddressNotInSubnet",
    "PrivateIPAddressInReservedRange",
    "SubnetIsFull",
    "PrivateIpsPerVnetLimitReached",
    "NicInUse",
    "NetworkProfileRequired",
    "VirtualMachineMustHaveOnePrimaryNic",
    "NetworkInterfacesInDifferentVirtualNetworks",
    // ops/gateway.rs
    "InvalidGatewayType",
    "PolicyBasedVpnGatewayRequiresBasicSku",
    "InvalidGatewayIpConfigurations",
    "GatewaySubnetRequired",
    "GatewayCountLimitReached",
    "VnetUsingRemoteGatewaysCannotHaveGateway",
    "InUseVirtualNetworkGatewayCannotBeDeleted",
    "InUseLocalNetworkGatewayCannotBeDeleted",
    "InvalidConnectionConfiguration",
    "Vnet2VnetAddressSpacesOverlap",
    // ops/lb.rs
    "LoadBalancerFrontendRequired",
    "InUseLoadBalancerCannotBeDeleted",
    // ops/nsg.rs
    "NetworkSecurityGroupCountLimitReached",
    "SecurityRuleCountLimitReached",
    "SecurityRuleInvalidPriority",
    "SecurityRuleDescriptionTooLong",
    "SecurityRuleConflict",
    "SecurityRuleParameterContainsUnsupportedValue",
    "SecurityRuleInvalidPortRange",
    "SecurityRuleInvalidAddressPrefix",
    "SecurityRuleAddressPrefixCountLimitReached",
    "InUseNetworkSecurityGroupCannotBeDeleted",
    "RouteTableCountLimitReached",
    "RouteCountLimitReached",
    "ServiceTagRoutesNotSupported",
    "RouteConflict",
    "InvalidNextHopIpAddress",
    "NextHopIpAddressNotAllowed",
    "InUseRouteTableCannotBeDeleted",
    // tessera-model: resource.rs (ARM JSON) and yaml.rs
    "InvalidRequestFormat",
    "NoRegisteredProviderFound",
    "InvalidTopology",
];

/// Codes found in the scanned sources that no `Engine::apply` or `load::load` call can
/// produce, each with the reason. Empty: every scanned code is reachable.
const EXCLUDED: &[(&str, &str)] = &[];

/// Source trees scanned, relative to this crate, with the sub-trees left out and why.
const SCANNED: &[(&str, &[(&str, &str)])] = &[
    (
        "src",
        &[(
            "src/diag",
            "diagnostics (nextHop, ipFlowVerify, effective routes, resolve): read-only queries, \
             not reachable through Engine::apply or load::load",
        )],
    ),
    ("../tessera-model/src", &[]),
];

/// Calls whose first argument (after an HTTP status for `with_status`) is an ARM error code.
const CALLS: &[&str] = &["bad_request(", "with_status(", "limit(", "rule_error(", "refused("];

/// Call sites that forward a code they received as a parameter: the helpers in [`CALLS`]
/// (`ArmError::bad_request` → `with_status`, `common::limit` and `nsg::rule_error` →
/// `bad_request`). A new forwarding helper must be added to [`CALLS`] and here.
const FORWARDERS: &[&str] = &[
    "tessera-model/src/error.rs: with_status(400, code",
    "tessera-engine/src/ops/common.rs: bad_request(code",
    "tessera-engine/src/ops/nsg.rs: bad_request(code",
    "tessera-engine/src/ops/vnet.rs: bad_request(code",
];

fn rust_files(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("directory entry").path()).collect();
    paths.sort();
    for p in paths {
        if skip.iter().any(|s| p.starts_with(s)) {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, skip, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `<crate>/src/...` for messages (paths are canonical, see the coverage test).
fn short(path: &Path) -> String {
    let text = path.to_string_lossy().replace('\\', "/");
    let cut = text.rfind("/crates/").map_or(0, |i| i + "/crates/".len());
    text[cut..].to_string()
}

/// Scans one file: codes (with the files they come from) and forwarding call sites.
fn scan(file: &str, text: &str, codes: &mut BTreeMap<String, BTreeSet<String>>, forwarders: &mut Vec<String>) {
    for call in CALLS {
        for (at, _) in text.match_indices(call) {
            let before = &text[..at];
            // A longer identifier (`my_limit(`) or the definition itself (`fn limit(`).
            if before.ends_with(|c: char| c.is_alphanumeric() || c == '_') || before.ends_with("fn ") {
                continue;
            }
            let mut rest = text[at + call.len()..].trim_start();
            let mut head = String::new();
            if *call == "with_status(" {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    forwarders.push(format!("{file}: {call}<status>"));
                    continue;
                }
                head = format!("{digits}, ");
                rest = rest[digits.len()..].trim_start().trim_start_matches(',').trim_start();
            }
            match rest.strip_prefix('"') {
                Some(lit) => {
                    let code = &lit[..lit.find('"').expect("closed string literal")];
                    codes.entry(code.to_string()).or_default().insert(file.to_string());
                }
                None => {
                    let arg: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    forwarders.push(format!("{file}: {call}{head}{arg}"));
                }
            }
        }
    }
}

#[test]
fn every_error_code_in_the_sources_is_covered() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let canonical = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut files = Vec::new();
    for (dir, skip) in SCANNED {
        let skip: Vec<PathBuf> = skip.iter().map(|(s, _)| canonical(root.join(s))).collect();
        rust_files(&canonical(root.join(dir)), &skip, &mut files);
    }
    let mut codes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut forwarders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        scan(&short(f), &text, &mut codes, &mut forwarders);
    }
    assert!(codes.len() > 50, "the scan found only {} codes; is it still reading the sources?", codes.len());

    // The scanner knows every helper that forwards a code.
    let expected: BTreeSet<&str> = FORWARDERS.iter().copied().collect();
    let found: BTreeSet<&str> = forwarders.iter().map(String::as_str).collect();
    assert_eq!(found, expected, "call sites that forward a non-literal code changed; teach CALLS/FORWARDERS");

    let covered: BTreeSet<&str> = COVERED.iter().copied().collect();
    let excluded: BTreeSet<&str> = EXCLUDED.iter().map(|(c, _)| *c).collect();
    let missing: Vec<String> = codes
        .iter()
        .filter(|(c, _)| !covered.contains(c.as_str()) && !excluded.contains(c.as_str()))
        .map(|(c, f)| format!("{c} (in {})", f.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(missing.is_empty(), "error codes without a refusal test in refusals.rs:\n  {}", missing.join("\n  "));

    // No stale entries: every listed code still exists, and is asserted by a test here.
    let stale: Vec<&str> = covered.iter().chain(&excluded).copied().filter(|c| !codes.contains_key(*c)).collect();
    assert!(stale.is_empty(), "COVERED/EXCLUDED name codes the sources no longer produce: {stale:?}");
    let me = std::fs::read_to_string(root.join("tests/refusals.rs")).expect("read refusals.rs");
    let unused: Vec<&str> = COVERED.iter().copied().filter(|c| me.matches(&format!("\"{c}\"")).count() < 2).collect();
    assert!(unused.is_empty(), "COVERED lists codes no test asserts: {unused:?}");
}

// R6: a VNet cannot move to another resource group or subscription while it has peerings.

fn move_to(id: ResourceId, resource_group: &str) -> Change {
    Change::MoveVnet { id, subscription: DEFAULT_SUBSCRIPTION.to_string(), resource_group: resource_group.to_string() }
}

#[test]
fn r6_move_refused_while_peered() {
    let mut e = base();
    for vnet in ["hub", "spoke2"] {
        let err =
            assert_refused(&mut e, move_to(vnet_id(vnet), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
        assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("CannotMoveVirtualNetworkWithPeerings"));
    }
}

#[test]
fn r6_move_refused_while_subnets_are_in_use() {
    let mut e = base();
    let err =
        assert_refused(&mut e, move_to(vnet_id("lonely"), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
    assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("CannotMoveVirtualNetworkInUse"));
}

#[test]
fn r6_move_succeeds_without_peerings_and_keeps_the_vnet() {
    let mut e = base();
    let before = vnet(&e, "clash");
    ok(&mut e, move_to(vnet_id("clash"), "other-rg"));
    let moved_id = ResourceId::top(DEFAULT_SUBSCRIPTION, "other-rg", Kind::VirtualNetwork, "clash");
    let moved = e.state().vnets.get(&moved_id).expect("moved VNet");
    assert!(!e.state().vnets.contains_key(&vnet_id("clash")));
    assert_eq!(moved.properties.resource_guid, before.properties.resource_guid);
    assert_eq!(moved.properties.address_space, before.properties.address_space);
    assert_eq!(moved.properties.subnets[0].id, Some(moved_id.child("subnets", "default")));
    assert!(e.compiled().subnets.contains_key(&moved_id.child("subnets", "default")));
    assert!(!e.compiled().subnets.contains_key(&subnet_id("clash", "default")));
    // Moving onto an existing VNet's id is refused.
    let mut again = base();
    ok(&mut again, move_to(vnet_id("clash"), "other-rg"));
    let err =
        assert_refused(&mut again, move_to(moved_id.clone(), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
    assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("ResourceAlreadyExists"));
}
