//! NSGs (N1, §2.5) and route tables (U1, §2.5).

use crate::fixture::*;

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
    for bad in [Some("10.0.0.1/16"), Some("not-an-address"), Some("Storage.Atlantis"), Some("NoSuchService"), None] {
        let mut r = rule(&e, "addresses", 200);
        r.properties.source_address_prefix = bad.map(str::to_string);
        let change = nsg1_with(&e, r);
        assert_refused(&mut e, change, "SecurityRuleInvalidAddressPrefix", 400);
    }
}

#[test]
fn azure_service_tags_are_accepted_as_azure_accepts_them_and_match_no_address_here() {
    // Issue 15, point 2: `Storage`, `Sql.WestEurope`, `AzureCloud` are valid rule prefixes.
    for tag in ["Storage", "Sql.WestEurope", "AzureCloud", "storage.eastus"] {
        let mut e = base();
        let mut r = rule(&e, "tagged", 200);
        r.properties.source_address_prefix = Some(tag.to_string());
        let change = nsg1_with(&e, r);
        ok(&mut e, change);
    }
    let compiled = tessera_engine::compile::security::TagContext::default();
    assert_eq!(compiled.expand("Storage.WestEurope"), Some(Vec::new()), "no Tessera address is an Azure service's");
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
