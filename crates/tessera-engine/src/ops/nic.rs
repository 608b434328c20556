//! NICs and VMs: address checks and allocation, references, VM attachment.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tessera_model::compute::{AllocationMethod, IpVersion, NetworkInterface, VirtualMachine};
use tessera_model::envelope::{ProvisioningState, SubResource};
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::address::{allocate, check_static};
use super::common::*;
use crate::limits::Limits;
use crate::state::State;

/// Validates and stores a NIC.
pub(crate) fn put(st: &mut State, limits: &Limits, mut nic: NetworkInterface) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut nic, 80)?;
    // What Azure fills in when a client leaves it out (clients read `dnsSettings` unguarded).
    let u = &mut nic.properties.unmodelled;
    u.default_to("dnsSettings", serde_json::json!({"dnsServers": [], "appliedDnsServers": []}));
    u.default_to("enableAcceleratedNetworking", serde_json::json!(false));
    let old = st.nics.get(&id).cloned();
    let configs = &mut nic.properties.ip_configurations;
    if configs.is_empty() {
        return Err(ArmError::bad_request(
            "NetworkInterfaceMustHaveIpConfiguration",
            format!("Network interface {id} must have at least one IP configuration."),
        ));
    }
    // Azure makes the first configuration primary when none is marked (and a lone one always).
    let primaries = configs.iter().filter(|c| c.properties.primary == Some(true)).count();
    if configs.len() == 1 || primaries == 0 {
        configs[0].properties.primary = Some(true);
    } else if primaries != 1 {
        return Err(ArmError::bad_request(
            "NetworkInterfaceMustHaveOnePrimaryIpConfiguration",
            format!(
                "Network interface {id} has {} IP configurations and must mark exactly one of them primary.",
                configs.len()
            ),
        ));
    }
    // A secondary configuration that names no subnet is in the primary's (as Azure fills it in).
    let primary_subnet =
        configs.iter().find(|c| c.properties.primary == Some(true)).and_then(|c| c.properties.subnet.clone());
    for c in configs.iter_mut() {
        if c.properties.subnet.is_none() {
            c.properties.subnet = primary_subnet.clone();
        }
        // An IP prefix on a NIC (`privateIPAddressPrefixLength`): its addresses would all have to be
        // the VM's, which the switch cannot deliver.
        if c.properties.unmodelled.0.contains_key("privateIPAddressPrefixLength") {
            return Err(ArmError::bad_request(
                "PrivateIPAddressPrefixNotSupported",
                format!(
                    "IP configuration {} of network interface {id} asks for an IP prefix (privateIPAddressPrefixLength), which Tessera does not offer.",
                    c.name
                ),
            ));
        }
    }
    let mut vnet: Option<ResourceId> = None;
    let mut taken: Vec<IpAddr> = Vec::new();
    for i in 0..configs.len() {
        let name = configs[i].name.clone();
        if configs[..i].iter().any(|c| c.name.eq_ignore_ascii_case(&name)) {
            return Err(ArmError::bad_request(
                "DuplicateResourceName",
                format!("Network interface {id} has two IP configurations named {name}."),
            ));
        }
        let cid = id.child("ipConfigurations", &name);
        check_name(&cid, 80)?;
        let c = &mut configs[i];
        c.id = Some(cid.clone());
        c.kind = Some(Kind::IpConfiguration.arm_type().to_string());
        c.properties.provisioning_state = Some(ProvisioningState::Succeeded);
        let sid = c.properties.subnet.as_ref().map(|s| s.id.clone()).ok_or_else(|| {
            ArmError::bad_request("SubnetRequired", format!("IP configuration {cid} must reference a subnet."))
                .target(cid.as_str())
        })?;
        check_kind(&sid, Kind::Subnet, &cid)?;
        let (v, subnet) = st.subnet(&sid).ok_or_else(|| missing_reference(&sid, &cid))?;
        if v.location != nic.location {
            return Err(ArmError::bad_request(
                "InvalidResourceReference",
                format!(
                    "Subnet {sid} referenced by {cid} is in region {} but the network interface is in {}.",
                    v.location, nic.location
                ),
            ));
        }
        match &vnet {
            Some(first) if *first != v.id => {
                return Err(ArmError::bad_request(
                    "IpConfigurationsOfNicMustBeInSameVnet",
                    format!(
                        "All IP configurations of network interface {id} must be in one virtual network; {cid} is in {}.",
                        v.id
                    ),
                ));
            }
            _ => vnet = Some(v.id.clone()),
        }
        let prefixes = subnet.properties.prefixes();
        let want_v6 = c.properties.private_ip_address_version == Some(IpVersion::IPv6);
        let family: Vec<_> =
            prefixes.iter().copied().filter(|p| matches!(p, tessera_model::IpNet::V6(_)) == want_v6).collect();
        let method =
            c.properties.private_ip_allocation_method.unwrap_or(if c.properties.private_ip_address.is_some() {
                AllocationMethod::Static
            } else {
                AllocationMethod::Dynamic
            });
        c.properties.private_ip_allocation_method = Some(method);
        let kept = old.as_ref().and_then(|o| {
            o.properties.ip_configurations.iter().find(|oc| {
                oc.name.eq_ignore_ascii_case(&name) && oc.properties.subnet.as_ref().map(|s| &s.id) == Some(&sid)
            })
        });
        // A given address is honoured whatever the method (documents exported from Azure carry
        // the dynamic addresses Azure chose); otherwise the old address stays or a free one is taken.
        let ip: IpAddr = match c.properties.private_ip_address.as_deref() {
            Some(text) => {
                let ip: IpAddr = text.parse().map_err(|_| {
                    ArmError::bad_request(
                        "InvalidPrivateIPAddress",
                        format!("Private IP address {text} of {cid} is not a valid IP address."),
                    )
                    .target(cid.as_str())
                })?;
                check_static(st, &sid, &family, ip, &cid, &id)?;
                ip
            }
            None if method == AllocationMethod::Static => {
                return Err(ArmError::bad_request(
                    "PrivateIPAddressRequired",
                    format!("IP configuration {cid} is Static and must set privateIPAddress."),
                ));
            }
            None => match kept.and_then(|k| crate::state::ip_of(&k.properties.private_ip_address)) {
                Some(ip) => ip,
                None => allocate(st, &sid, &family, &id, &taken)?,
            },
        };
        if taken.contains(&ip) {
            return Err(ArmError::bad_request(
                "PrivateIPAddressIsAllocated",
                format!("Network interface {id} uses address {ip} twice."),
            ));
        }
        taken.push(ip);
        c.properties.private_ip_address = Some(ip.to_string());
        c.properties.private_ip_address_version = Some(if ip.is_ipv6() { IpVersion::IPv6 } else { IpVersion::IPv4 });
        for pool in &c.properties.load_balancer_backend_address_pools {
            check_kind(&pool.id, Kind::BackendAddressPool, &cid)?;
            let lb = pool
                .id
                .parent()
                .and_then(|l| st.load_balancers.get(&l))
                .ok_or_else(|| missing_reference(&pool.id, &cid))?;
            if !lb.resource.properties.backend_address_pools.iter().any(|p| p.name.eq_ignore_ascii_case(pool.id.name()))
            {
                return Err(missing_reference(&pool.id, &cid));
            }
        }
    }
    if let Some(nsg) = &nic.properties.network_security_group {
        check_kind(&nsg.id, Kind::NetworkSecurityGroup, &id)?;
        let n = st.nsgs.get(&nsg.id).ok_or_else(|| missing_reference(&nsg.id, &id))?;
        check_same_region(&id, &nic.location, &n.id, &n.location)?;
    }
    let vnet =
        vnet.ok_or_else(|| ArmError::bad_request("SubnetRequired", format!("Network interface {id} has no subnet.")))?;
    let asgs = super::asg::of_nic(&nic);
    super::asg::check_members(st, &id, &vnet, &nic.location, &asgs)?;
    let mut asg_changed = asgs.clone();
    asg_changed.extend(old.as_ref().map(super::asg::of_nic).unwrap_or_default());
    let in_use = st.addresses_in(&vnet).map_or(0, |m| m.len());
    let before = old.as_ref().map_or(0, |o| o.properties.ip_configurations.len());
    if in_use + taken.len() > limits.private_ips_per_vnet + before {
        return Err(limit(
            "PrivateIpsPerVnetLimitReached",
            format!(
                "Virtual network {vnet} cannot hold more than {} private IP addresses.",
                limits.private_ips_per_vnet
            ),
            &id,
        ));
    }
    let wanted = super::public_ip::wanted(
        &id,
        nic.properties.ip_configurations.iter().map(|c| (c.name.as_str(), c.properties.public_ip_address.as_ref())),
    );
    super::public_ip::check_attach(st, &id, &nic.location, &wanted)?;
    let pips: BTreeSet<ResourceId> =
        super::public_ip::named_by(st, &id).into_iter().chain(wanted.iter().cloned()).map(|(_, p)| p).collect();
    // Commit.
    nic.properties.virtual_machine = old.as_ref().and_then(|o| o.properties.virtual_machine.clone());
    nic.properties.mac_address = Some(mac_of(&id));
    nic.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    let mut dirty: BTreeSet<ResourceId> = BTreeSet::new();
    if let Some(o) = &old {
        st.unindex_nic(o);
        dirty.extend(vnet_of(o));
    }
    st.index_nic(&nic);
    dirty.insert(vnet);
    st.nics.insert(id, nic);
    // Rules naming its groups now match (or no longer match) its addresses.
    dirty.extend(super::asg::users(st, &asg_changed));
    dirty.extend(super::public_ip::relink(st, limits, pips));
    Ok(dirty)
}

fn vnet_of(nic: &NetworkInterface) -> Option<ResourceId> {
    State::primary_ip_config(nic)?.properties.subnet.as_ref()?.id.parent()
}

/// Azure's MAC prefix 00-0D-3A with three bytes from the id.
fn mac_of(id: &ResourceId) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.key().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let [_, a, b, c] = h.to_be_bytes();
    format!("00-0D-3A-{a:02X}-{b:02X}-{c:02X}")
}

/// Deletes a NIC that no VM uses.
pub(crate) fn delete(st: &mut State, limits: &Limits, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let nic =
        st.nics.get(id).ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?.clone();
    if let Some(vm) = &nic.properties.virtual_machine {
        return Err(ArmError::bad_request(
            "NicInUse",
            format!(
                "Network Interface {id} is used by existing resource {}. In order to delete the network interface, it must be dissociated from the resource.",
                vm.id
            ),
        ));
    }
    let pips: BTreeSet<ResourceId> = super::public_ip::named_by(st, id).into_iter().map(|(_, p)| p).collect();
    st.unindex_nic(&nic);
    st.nics.remove(id);
    let mut dirty: BTreeSet<ResourceId> = vnet_of(&nic).into_iter().collect();
    dirty.extend(super::asg::users(st, &super::asg::of_nic(&nic)));
    dirty.extend(super::public_ip::relink(st, limits, pips));
    Ok(dirty)
}

/// Validates and stores a VM (its NICs must exist and be free).
pub(crate) fn put_vm(st: &mut State, mut vm: VirtualMachine) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut vm, 64)?;
    // Kept as sent, but for what Azure never returns: the administrator's password and custom
    // data are write-only (a secret is not served back, nor stored).
    strip_secrets(&mut vm.properties.unmodelled.0);
    let refs = &mut vm.properties.network_profile.network_interfaces;
    if refs.is_empty() {
        return Err(ArmError::bad_request(
            "NetworkProfileRequired",
            format!("Virtual machine {id} must have at least one network interface."),
        ));
    }
    if refs.len() == 1 {
        refs[0].properties = Some(tessera_model::compute::VmNicReferenceProperties { primary: true });
    } else if refs.iter().filter(|r| r.properties.as_ref().is_some_and(|p| p.primary)).count() != 1 {
        return Err(ArmError::bad_request(
            "VirtualMachineMustHaveOnePrimaryNic",
            format!("Virtual machine {id} has several network interfaces and must mark exactly one primary."),
        ));
    }
    let mut vnet: Option<ResourceId> = None;
    for r in refs.iter() {
        check_kind(&r.id, Kind::NetworkInterface, &id)?;
        let nic = st.nics.get(&r.id).ok_or_else(|| missing_reference(&r.id, &id))?;
        check_same_region(&id, &vm.location, &nic.id, &nic.location)?;
        if let Some(other) = &nic.properties.virtual_machine
            && other.id != id
        {
            return Err(ArmError::bad_request(
                "NicInUse",
                format!("Network interface {} is already used by virtual machine {}.", r.id, other.id),
            ));
        }
        let v = vnet_of(nic);
        match (&vnet, v) {
            (Some(a), Some(b)) if *a != b => {
                return Err(ArmError::bad_request(
                    "NetworkInterfacesInDifferentVirtualNetworks",
                    format!("All network interfaces of virtual machine {id} must be in one virtual network."),
                ));
            }
            (None, v) => vnet = v,
            _ => {}
        }
    }
    vm.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    if let Some(old) = st.vms.get(&id).cloned() {
        detach(st, &old);
    }
    for r in &vm.properties.network_profile.network_interfaces {
        if let Some(nic) = st.nics.get_mut(&r.id) {
            nic.properties.virtual_machine = Some(SubResource::new(id.clone()));
        }
    }
    st.vms.insert(id, vm);
    Ok(vnet.into_iter().collect())
}

fn detach(st: &mut State, vm: &VirtualMachine) {
    for r in &vm.properties.network_profile.network_interfaces {
        if let Some(nic) = st.nics.get_mut(&r.id) {
            nic.properties.virtual_machine = None;
        }
    }
}

/// Deletes a VM; its NICs stay, detached.
pub(crate) fn delete_vm(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let vm = st.vms.remove(id).ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
    detach(st, &vm);
    Ok(BTreeSet::new())
}

/// Removes, at any depth and whatever their case, the VM properties Azure never returns:
/// passwords, custom and user data, unattend content (a secret is neither stored nor served).
fn strip_secrets(map: &mut serde_json::Map<String, serde_json::Value>) {
    const SECRETS: &[&str] = &["adminpassword", "customdata", "userdata", "additionalunattendcontent", "password"];
    map.retain(|k, _| !SECRETS.contains(&k.to_ascii_lowercase().as_str()));
    for v in map.values_mut() {
        match v {
            serde_json::Value::Object(m) => strip_secrets(m),
            serde_json::Value::Array(a) => {
                for m in a.iter_mut().filter_map(serde_json::Value::as_object_mut) {
                    strip_secrets(m);
                }
            }
            _ => {}
        }
    }
}
