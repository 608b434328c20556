//! Subscriptions, names, regions and 404s, for every resource type.

use crate::fixture::*;

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
