//! Gateways, sites, connections (GWY1, GWY4) and internal load balancers.

use crate::fixture::*;

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
fn a_gateway_report_out_of_bounds_or_not_canonical_is_refused_whole() {
    // What an agent reports of a running instance (issue 16): at most 4,000 routes per BGP peer
    // (a gateway's BIRD shuts a session that sends more), canonical prefixes.
    use tessera_model::gateway::{GatewayInstance, GatewayRoute};
    let mut e = base();
    let id = gateway(&e, "hub-gw").id;
    let route = |network: String| GatewayRoute {
        local_address: "10.0.255.4".into(),
        network: network.parse().expect("a prefix"),
        next_hop: "10.255.50.1".into(),
        source_peer: "10.255.50.1".into(),
        origin: "EBgp".into(),
        as_path: "65050".into(),
        weight: 32768,
    };
    let flood = (0..4001u32).map(|i| route(format!("172.{}.{}.0/24", 16 + i / 256, i % 256))).collect();
    let instance = GatewayInstance { host: "local".into(), learned_routes: flood, ..Default::default() };
    assert_refused(&mut e, Change::ReportGateway { id: id.clone(), instance }, "GatewayReportTooLarge", 400);
    let instance = GatewayInstance {
        host: "local".into(),
        learned_routes: vec![route("192.168.1.7/24".into())],
        ..Default::default()
    };
    assert_refused(&mut e, Change::ReportGateway { id, instance }, "InvalidCIDRNotation", 400);
}

#[test]
fn a_connections_shared_key_is_printable_ascii_up_to_128_characters() {
    let mut e = base();
    let conn = e.state().connections.values().next().expect("a connection").clone();
    for bad in [String::new(), "k".repeat(129), "tab\tkey".into(), "clé".into()] {
        let mut c = conn.clone();
        c.properties.shared_key = Some(bad);
        assert_refused(&mut e, put(Resource::Connection(c)), "InvalidSharedKey", 400);
    }
    let mut c = conn;
    c.properties.shared_key = Some("A key with spaces & symbols: ~!@#$%^*()".into());
    ok(&mut e, put(Resource::Connection(c)));
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
