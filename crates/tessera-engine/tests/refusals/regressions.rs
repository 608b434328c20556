//! Engine bugs found while writing these tests, pinned (all fixed).

use crate::fixture::*;

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
            Ok(_) => accepted.push(what),
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
            Ok(_) => accepted.push(what),
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
