//! NICs, VMs and private addresses.

use crate::fixture::*;

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

#[test]
fn an_ip_prefix_on_a_nic_is_refused() {
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    let mut second = extra_config(&n, "prefix", subnet_id("hub", "spare"), None);
    second.properties.unmodelled.0.insert("privateIPAddressPrefixLength".into(), serde_json::json!(28));
    n.properties.ip_configurations.push(second);
    assert_refused(&mut e, put(Resource::NetworkInterface(n)), "PrivateIPAddressPrefixNotSupported", 400);
}

#[test]
fn without_a_primary_mark_the_first_configuration_is_primary_and_lends_its_subnet() {
    // As Azure answers its published NetworkInterfaceCreate example.
    let mut e = base();
    let mut n = new_nic(&e, "nic-x", subnet_id("hub", "spare"), None);
    let mut second = extra_config(&n, "second", subnet_id("hub", "spare"), None);
    second.properties.subnet = None;
    second.properties.primary = None;
    n.properties.ip_configurations[0].properties.primary = None;
    n.properties.ip_configurations.push(second);
    let id = n.id.clone();
    ok(&mut e, put(Resource::NetworkInterface(n)));
    let stored = e.state().nics.get(&id).cloned().expect("stored");
    let configs = &stored.properties.ip_configurations;
    assert_eq!(configs[0].properties.primary, Some(true));
    assert_ne!(configs[1].properties.primary, Some(true));
    assert_eq!(configs[1].properties.subnet.as_ref().map(|s| s.id.clone()), Some(subnet_id("hub", "spare")));
}

#[test]
fn gateway_and_cross_region_load_balancers_are_refused_in_requests() {
    use tessera_model::lb::refuse_unoffered_sku;
    let lb = top(Kind::LoadBalancer, "lb");
    let body = |sku: serde_json::Value| serde_json::json!({"id": lb.as_str(), "sku": sku, "properties": {}});
    for sku in [serde_json::json!({"name": "Gateway"}), serde_json::json!({"name": "Standard", "tier": "Global"})] {
        let err = refuse_unoffered_sku(&body(sku.clone())).expect_err("refused");
        assert_eq!((err.status, err.code.as_str()), (400, "LoadBalancerSkuNotSupported"), "{sku}");
    }
    for sku in [serde_json::json!({"name": "Standard", "tier": "Regional"}), serde_json::json!({"name": "Basic"})] {
        assert!(refuse_unoffered_sku(&body(sku.clone())).is_ok(), "{sku}");
    }
}
