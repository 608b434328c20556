//! Public IP addresses (issue 15, point 1): SKU and allocation, idle timeout, a pool that runs
//! out, and one attachment at a time (NIC or gateway IP configuration).

use tessera_engine::Change;
use tessera_model::compute::{AllocationMethod, IpVersion};
use tessera_model::envelope::Tracked;
use tessera_model::public_ip::{PublicIpAddress, PublicIpProperties, PublicIpSku, PublicIpSkuName};
use tessera_model::{Kind, Resource};

use crate::fixture::*;

fn pip(
    name: &str,
    sku: PublicIpSkuName,
    method: Option<AllocationMethod>,
    version: Option<IpVersion>,
) -> PublicIpAddress {
    PublicIpAddress {
        resource: Tracked {
            id: top(Kind::PublicIpAddress, name),
            name: String::new(),
            kind: String::new(),
            location: "westeurope".into(),
            tags: Default::default(),
            etag: None,
            properties: PublicIpProperties {
                public_ip_allocation_method: method,
                public_ip_address_version: version,
                ..Default::default()
            },
        },
        sku: PublicIpSku { name: sku, tier: None },
    }
}

fn stored(e: &tessera_engine::Engine, name: &str) -> PublicIpProperties {
    e.state().public_ips.get(&top(Kind::PublicIpAddress, name)).expect("stored").resource.properties.clone()
}

#[test]
fn a_standard_public_ip_must_be_static_and_a_basic_ipv6_one_dynamic() {
    let mut e = base();
    let p = pip("p", PublicIpSkuName::Standard, Some(AllocationMethod::Dynamic), None);
    assert_refused(&mut e, put(Resource::PublicIpAddress(p)), "StandardSkuPublicIPAddressesMustBeStatic", 400);
    let p = pip("p", PublicIpSkuName::Basic, Some(AllocationMethod::Static), Some(IpVersion::IPv6));
    assert_refused(
        &mut e,
        put(Resource::PublicIpAddress(p)),
        "CannotSpecifyPublicIpAllocationMethodAsStaticForIpV6PublicIp",
        400,
    );
    // Standard defaults to Static and gets its address at once, from the pool.
    ok(&mut e, put(Resource::PublicIpAddress(pip("s", PublicIpSkuName::Standard, None, None))));
    let s = stored(&e, "s");
    assert_eq!(s.public_ip_allocation_method, Some(AllocationMethod::Static));
    assert_eq!(s.ip_address.as_deref(), Some("198.18.0.1"));
    ok(&mut e, put(Resource::PublicIpAddress(pip("s6", PublicIpSkuName::Standard, None, Some(IpVersion::IPv6)))));
    assert_eq!(stored(&e, "s6").ip_address.as_deref(), Some("2001:db8:ffff::1"));
    // Basic defaults to Dynamic: no address until attached.
    ok(&mut e, put(Resource::PublicIpAddress(pip("b", PublicIpSkuName::Basic, None, None))));
    assert_eq!(stored(&e, "b").ip_address, None);
}

#[test]
fn the_idle_timeout_is_4_to_30_minutes_and_the_sku_and_version_stay() {
    let mut e = base();
    let mut p = pip("p", PublicIpSkuName::Standard, None, None);
    p.resource.properties.idle_timeout_in_minutes = Some(31);
    assert_refused(&mut e, put(Resource::PublicIpAddress(p)), "PublicIPIdleTimeoutIsOutOfRange", 400);
    ok(&mut e, put(Resource::PublicIpAddress(pip("p", PublicIpSkuName::Standard, None, None))));
    let p = pip("p", PublicIpSkuName::Basic, Some(AllocationMethod::Static), None);
    assert_refused(&mut e, put(Resource::PublicIpAddress(p)), "PublicIPAddressSkuCannotBeChanged", 400);
    let p = pip("p", PublicIpSkuName::Standard, None, Some(IpVersion::IPv6));
    assert_refused(&mut e, put(Resource::PublicIpAddress(p)), "PublicIPAddressVersionCannotBeChanged", 400);
}

#[test]
fn a_pool_with_no_free_address_refuses_the_next_public_ip() {
    // Room for .1 and .2.
    let mut e = with_limits(tessera_engine::Limits { public_pool: vec![net("203.0.113.0/30")], ..Default::default() });
    for name in ["a", "b"] {
        ok(&mut e, put(Resource::PublicIpAddress(pip(name, PublicIpSkuName::Standard, None, None))));
    }
    let c = pip("c", PublicIpSkuName::Standard, None, None);
    assert_refused(&mut e, put(Resource::PublicIpAddress(c)), "PublicIPAddressPoolExhausted", 409);
}

#[test]
fn a_public_ip_is_attached_to_one_configuration_and_not_deleted_while_attached() {
    let mut e = base();
    ok(&mut e, put(Resource::PublicIpAddress(pip("web", PublicIpSkuName::Basic, None, None))));
    let pip_id = top(Kind::PublicIpAddress, "web");
    let mut a = new_nic(&e, "a-nic", subnet_id("lonely", "default"), None);
    a.properties.ip_configurations[0].properties.public_ip_address = Some(sub(pip_id.clone()));
    ok(&mut e, put(Resource::NetworkInterface(a.clone())));
    let attached = stored(&e, "web");
    assert_eq!(
        attached.ip_configuration.map(|c| c.id),
        Some(top(Kind::NetworkInterface, "a-nic").child("ipConfigurations", &a.properties.ip_configurations[0].name))
    );
    assert!(attached.ip_address.is_some(), "a Dynamic address is allocated when attached");
    let mut b = new_nic(&e, "b-nic", subnet_id("lonely", "default"), None);
    b.properties.ip_configurations[0].properties.public_ip_address = Some(sub(pip_id.clone()));
    assert_refused(&mut e, put(Resource::NetworkInterface(b)), "PublicIPAddressInUse", 400);
    assert_refused(&mut e, Change::Delete(pip_id.clone()), "PublicIPAddressCannotBeDeleted", 400);
    // Detached (the NIC goes), the Dynamic address goes back to the pool and the IP may go.
    ok(&mut e, Change::Delete(top(Kind::NetworkInterface, "a-nic")));
    let free = stored(&e, "web");
    assert_eq!((free.ip_configuration, free.ip_address), (None, None));
    ok(&mut e, Change::Delete(pip_id));
}

#[test]
fn a_nic_naming_a_public_ip_that_does_not_exist_is_refused() {
    let mut e = base();
    let mut a = new_nic(&e, "a-nic", subnet_id("lonely", "default"), None);
    a.properties.ip_configurations[0].properties.public_ip_address = Some(sub(top(Kind::PublicIpAddress, "ghost")));
    assert_refused(&mut e, put(Resource::NetworkInterface(a)), "InvalidResourceReference", 400);
}

#[test]
fn a_public_load_balancer_is_refused_with_a_clear_code() {
    let mut e = base();
    ok(&mut e, put(Resource::PublicIpAddress(pip("fe", PublicIpSkuName::Standard, None, None))));
    let mut l = lb(&e, "ilb");
    l.resource.properties.frontend_ip_configurations[0].properties.public_ip_address =
        Some(sub(top(Kind::PublicIpAddress, "fe")));
    assert_refused(&mut e, put(Resource::LoadBalancer(l)), "PublicLoadBalancerNotSupported", 400);
}

#[test]
fn public_ips_per_subscription_and_region_are_limited() {
    let mut e = with_limits(tessera_engine::Limits { public_ips_per_subscription: 1, ..Default::default() });
    ok(&mut e, put(Resource::PublicIpAddress(pip("one", PublicIpSkuName::Standard, None, None))));
    let two = pip("two", PublicIpSkuName::Standard, None, None);
    assert_refused(&mut e, put(Resource::PublicIpAddress(two)), "PublicIPCountLimitReached", 400);
    // Updating the one there is not a new one.
    ok(&mut e, put(Resource::PublicIpAddress(pip("one", PublicIpSkuName::Standard, None, None))));
}
