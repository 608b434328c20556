//! The base topology and the helpers every refusal test uses.

pub(crate) use tessera_engine::load::{self, Format};
pub(crate) use tessera_engine::{Change, Engine, Limits};
pub(crate) use tessera_model::account::{DEFAULT_RESOURCE_GROUP, DEFAULT_SUBSCRIPTION, DEFAULT_TENANT, Subscription};
pub(crate) use tessera_model::compute::{
    AllocationMethod, IpConfiguration, NetworkInterface, VirtualMachine, VmNicReference, VmNicReferenceProperties,
};
pub(crate) use tessera_model::envelope::SubResource;
pub(crate) use tessera_model::gateway::{
    Connection, ConnectionType, GatewayType, LocalNetworkGateway, VirtualNetworkGateway, VpnType,
};
pub(crate) use tessera_model::lb::LoadBalancer;
pub(crate) use tessera_model::network::{
    AddressSpace, ClassicSubnet, ClassicVirtualNetwork, DhcpOptions, Peering, PeeringProperties, Subnet, VirtualNetwork,
};
pub(crate) use tessera_model::routing::{Route, RouteNextHopType, RouteTable};
pub(crate) use tessera_model::security::{NetworkSecurityGroup, SecurityRule};
pub(crate) use tessera_model::{ArmError, IpNet, Kind, Resource, ResourceId};

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
pub(crate) const BASE: &str = r#"
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

pub(crate) fn base() -> Engine {
    with_limits(Limits::default())
}

pub(crate) fn with_limits(limits: Limits) -> Engine {
    load::load(BASE, Format::Yaml, limits).unwrap_or_else(|e| panic!("the base topology must load: {e}"))
}

/// Applies `change`, expects the refusal `status`/`code`, and proves that nothing changed: the
/// desired state (its full `Debug` form) and the number of compiled NIC and subnet programs.
#[track_caller]
pub(crate) fn assert_refused(engine: &mut Engine, change: Change, code: &str, status: u16) -> ArmError {
    let state_before = format!("{:?}", engine.state());
    let nics_before = engine.compiled().nics.len();
    let subnets_before = engine.compiled().subnets.len();
    let err = match engine.apply(change) {
        Ok(_) => panic!("expected the refusal {status} {code}, but the change was accepted"),
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
pub(crate) fn assert_load_refused(text: &str, format: Format, limits: Limits, code: &str, status: u16) -> ArmError {
    let err = match load::load(text, format, limits) {
        Ok(_) => panic!("expected the load to fail with {status} {code}"),
        Err(e) => e,
    };
    assert_eq!((err.code.as_str(), err.status), (code, status), "unexpected refusal: {err}");
    err
}

/// Applies a set-up step that must succeed.
#[track_caller]
pub(crate) fn ok(engine: &mut Engine, change: Change) {
    if let Err(e) = engine.apply(change) {
        panic!("set-up step refused: {e}");
    }
}

pub(crate) fn put(r: Resource) -> Change {
    Change::Put(r)
}

pub(crate) fn top(kind: Kind, name: &str) -> ResourceId {
    ResourceId::top(DEFAULT_SUBSCRIPTION, DEFAULT_RESOURCE_GROUP, kind, name)
}

pub(crate) fn vnet_id(name: &str) -> ResourceId {
    top(Kind::VirtualNetwork, name)
}

pub(crate) fn subnet_id(vnet: &str, name: &str) -> ResourceId {
    vnet_id(vnet).child("subnets", name)
}

pub(crate) fn link_id(vnet: &str, name: &str) -> ResourceId {
    vnet_id(vnet).child("virtualNetworkPeerings", name)
}

pub(crate) fn net(s: &str) -> IpNet {
    s.parse().unwrap_or_else(|_| panic!("bad prefix in test: {s}"))
}

pub(crate) fn sub(id: ResourceId) -> SubResource {
    SubResource::new(id)
}

// Clones of stored resources (to mutate into the change under test).

pub(crate) fn vnet(e: &Engine, name: &str) -> VirtualNetwork {
    e.state().vnets.get(&vnet_id(name)).cloned().unwrap_or_else(|| panic!("no vnet {name}"))
}

pub(crate) fn subnet(e: &Engine, vnet: &str, name: &str) -> Subnet {
    e.state().subnet(&subnet_id(vnet, name)).map(|(_, s)| s.clone()).unwrap_or_else(|| panic!("no subnet {name}"))
}

pub(crate) fn link(e: &Engine, vnet: &str, name: &str) -> Peering {
    e.state().peering(&link_id(vnet, name)).cloned().unwrap_or_else(|| panic!("no link {vnet}/{name}"))
}

pub(crate) fn classic(e: &Engine, name: &str) -> ClassicVirtualNetwork {
    e.state().classic_vnets.get(&top(Kind::ClassicVirtualNetwork, name)).cloned().expect("classic vnet")
}

pub(crate) fn nsg(e: &Engine, name: &str) -> NetworkSecurityGroup {
    e.state().nsgs.get(&top(Kind::NetworkSecurityGroup, name)).cloned().unwrap_or_else(|| panic!("no nsg {name}"))
}

pub(crate) fn route_table(e: &Engine, name: &str) -> RouteTable {
    e.state().route_tables.get(&top(Kind::RouteTable, name)).cloned().unwrap_or_else(|| panic!("no table {name}"))
}

pub(crate) fn nic(e: &Engine, vm: &str) -> NetworkInterface {
    let id = top(Kind::NetworkInterface, &format!("{vm}-nic"));
    e.state().nics.get(&id).cloned().unwrap_or_else(|| panic!("no nic of {vm}"))
}

pub(crate) fn vm(e: &Engine, name: &str) -> VirtualMachine {
    e.state().vms.get(&top(Kind::VirtualMachine, name)).cloned().unwrap_or_else(|| panic!("no vm {name}"))
}

pub(crate) fn gateway(e: &Engine, name: &str) -> VirtualNetworkGateway {
    let id = top(Kind::VirtualNetworkGateway, name);
    e.state().gateways.get(&id).cloned().unwrap_or_else(|| panic!("no gateway {name}"))
}

pub(crate) fn site(e: &Engine, name: &str) -> LocalNetworkGateway {
    let id = top(Kind::LocalNetworkGateway, name);
    e.state().local_gateways.get(&id).cloned().unwrap_or_else(|| panic!("no site {name}"))
}

pub(crate) fn connection(e: &Engine, name: &str) -> Connection {
    e.state().connections.get(&top(Kind::Connection, name)).cloned().unwrap_or_else(|| panic!("no connection"))
}

pub(crate) fn lb(e: &Engine, name: &str) -> LoadBalancer {
    e.state().load_balancers.get(&top(Kind::LoadBalancer, name)).cloned().unwrap_or_else(|| panic!("no lb {name}"))
}

// New resources, derived from stored ones.

/// A new VNet without subnets (a copy of `lonely` under another name).
pub(crate) fn new_vnet(e: &Engine, name: &str, space: &[&str]) -> VirtualNetwork {
    let mut v = vnet(e, "lonely");
    v.id = vnet_id(name);
    v.properties.address_space = AddressSpace::of(space.iter().map(|s| net(s)).collect());
    v.properties.subnets.clear();
    v.properties.virtual_network_peerings.clear();
    v.properties.resource_guid = None;
    v
}

/// A new subnet without NSG or route table.
pub(crate) fn new_subnet(e: &Engine, vnet: &str, name: &str, prefix: &str) -> Subnet {
    let mut s = subnet(e, "lonely", "other");
    s.id = Some(subnet_id(vnet, name));
    s.name = name.to_string();
    s.properties.address_prefix = Some(net(prefix));
    s.properties.address_prefixes.clear();
    s
}

/// A new link `from` → `to` named `from-to-to` with default flags.
pub(crate) fn new_link(from: &str, to: &str) -> Peering {
    new_link_to(from, vnet_id(to))
}

pub(crate) fn new_link_to(from: &str, to: ResourceId) -> Peering {
    let name = format!("{from}-to-{}", to.name());
    Peering {
        unmodelled: Default::default(),
        id: Some(link_id(from, &name)),
        name,
        kind: None,
        etag: None,
        properties: PeeringProperties { remote_virtual_network: Some(sub(to)), ..PeeringProperties::default() },
    }
}

/// A subnet peering `from` → `to` over the named subnets (SP1).
pub(crate) fn subnet_link(from: &str, to: &str, local: &[&str], remote: &[&str]) -> Peering {
    let mut l = new_link(from, to);
    l.properties.peer_complete_vnets = false;
    l.properties.local_subnet_names = local.iter().map(|s| s.to_string()).collect();
    l.properties.remote_subnet_names = remote.iter().map(|s| s.to_string()).collect();
    l
}

/// A new, unattached NIC with one IP configuration (`ipconfig1`) in `subnet`.
pub(crate) fn new_nic(e: &Engine, name: &str, subnet: ResourceId, ip: Option<&str>) -> NetworkInterface {
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
pub(crate) fn extra_config(n: &NetworkInterface, name: &str, subnet: ResourceId, ip: Option<&str>) -> IpConfiguration {
    let mut c = n.properties.ip_configurations[0].clone();
    c.name = name.to_string();
    c.id = None;
    c.properties.primary = Some(false);
    c.properties.subnet = Some(sub(subnet));
    c.properties.private_ip_address = ip.map(str::to_string);
    c
}

/// A new VM over existing NICs; the first is primary.
pub(crate) fn new_vm(e: &Engine, name: &str, nics: &[&str]) -> VirtualMachine {
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
pub(crate) fn new_gateway(e: &Engine, name: &str, vnet: &str) -> VirtualNetworkGateway {
    let mut g = gateway(e, "hub-gw");
    g.id = top(Kind::VirtualNetworkGateway, name);
    let c = &mut g.properties.ip_configurations[0];
    c.id = None;
    c.properties.subnet = Some(sub(subnet_id(vnet, "GatewaySubnet")));
    c.properties.private_ip_address = None;
    g
}

/// Set-up: gives `lonely` a GatewaySubnet and a Basic PolicyBased VPN gateway `lonely-gw`.
pub(crate) fn give_lonely_a_basic_gateway(e: &mut Engine) {
    let s = new_subnet(e, "lonely", "GatewaySubnet", "10.3.255.0/27");
    ok(e, put(Resource::Subnet(s)));
    let mut g = new_gateway(e, "lonely-gw", "lonely");
    g.properties.sku.name = "Basic".into();
    g.properties.sku.tier = Some("Basic".into());
    g.properties.vpn_type = Some(VpnType::PolicyBased);
    ok(e, put(Resource::VirtualNetworkGateway(g)));
}

/// A security rule (a copy of nsg1's `allow-ssh`) with a new name and priority.
pub(crate) fn rule(e: &Engine, name: &str, priority: u32) -> SecurityRule {
    let mut r = nsg(e, "nsg1").properties.security_rules[0].clone();
    r.name = name.to_string();
    r.id = None;
    r.properties.priority = priority;
    r
}

/// nsg1 with one extra rule.
pub(crate) fn nsg1_with(e: &Engine, r: SecurityRule) -> Change {
    let mut n = nsg(e, "nsg1");
    n.properties.security_rules.push(r);
    put(Resource::NetworkSecurityGroup(n))
}

/// A route (a copy of rt1's `to-nva`) with a new name and prefix.
pub(crate) fn route(e: &Engine, name: &str, prefix: &str) -> Route {
    let mut r = route_table(e, "rt1").properties.routes[0].clone();
    r.name = name.to_string();
    r.id = None;
    r.properties.address_prefix = prefix.to_string();
    r
}

/// rt1 with one extra route.
pub(crate) fn rt1_with(e: &Engine, r: Route) -> Change {
    let mut t = route_table(e, "rt1");
    t.properties.routes.push(r);
    put(Resource::RouteTable(t))
}
