//! Virtual networks, address spaces and subnets (F1, S1).

use crate::fixture::*;

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
fn an_unmodelled_property_naming_another_resource_is_refused() {
    // A NAT gateway Tessera does not serve: the reference could be neither authorized nor
    // honoured. Plain unmodelled properties are kept (see the API's round-trip tests).
    let mut e = base();
    let mut v = vnet(&e, "lonely");
    v.properties.subnets[0].properties.unmodelled.0.insert(
        "natGateway".into(),
        serde_json::json!({"id": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/n"}),
    );
    let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "UnsupportedReference", 400);
    assert!(err.message.contains("properties.subnets[0].properties.natGateway"), "{}", err.message);
}

#[test]
fn a_reference_beside_the_properties_of_a_child_is_refused_too() {
    // What a child carries beside `properties` (a frontend's `zones`) is kept as sent, so a
    // reference there is checked like one inside: on a subnet written alone, on a link, and on
    // a subnet inside its VNet.
    let foreign =
        serde_json::json!({"id": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/n"});
    let mut e = base();
    let mut s = subnet(&e, "hub", "spare");
    s.unmodelled.0.insert("natGateway".into(), foreign.clone());
    let err = assert_refused(&mut e, put(Resource::Subnet(s)), "UnsupportedReference", 400);
    assert!(err.message.starts_with("natGateway.id references"), "{}", err.message);
    let mut l = link(&e, "hub", "hub-to-spoke1");
    l.unmodelled.0.insert("extra".into(), foreign.clone());
    assert_refused(&mut e, put(Resource::Peering(l)), "UnsupportedReference", 400);
    let mut v = vnet(&e, "lonely");
    v.properties.subnets[0].unmodelled.0.insert("natGateway".into(), foreign);
    let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "UnsupportedReference", 400);
    assert!(err.message.contains("properties.subnets[0].natGateway"), "{}", err.message);
}

#[test]
fn a_flow_timeout_outside_4_to_30_minutes_is_refused() {
    for minutes in [0, 3, 31, 1_000_000] {
        let mut e = base();
        let mut v = vnet(&e, "lonely");
        v.properties.flow_timeout_in_minutes = Some(minutes);
        let err = assert_refused(&mut e, put(Resource::VirtualNetwork(v)), "InvalidFlowTimeoutInMinutes", 400);
        assert!(err.message.contains(&minutes.to_string()), "{}", err.message);
    }
    for minutes in [4, 30] {
        let mut e = base();
        let mut v = vnet(&e, "lonely");
        v.properties.flow_timeout_in_minutes = Some(minutes);
        e.apply(put(Resource::VirtualNetwork(v))).unwrap_or_else(|err| panic!("{minutes} minutes: {err}"));
    }
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
