//! Internal load balancers: frontends, pools, rules, probes.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tessera_model::envelope::ProvisioningState;
use tessera_model::lb::LoadBalancer;
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::address::{allocate, check_static};
use super::common::*;
use crate::state::State;

/// Validates and stores a load balancer.
pub(crate) fn put(st: &mut State, mut lb: LoadBalancer) -> ArmResult<BTreeSet<ResourceId>> {
    let r = &mut lb.resource;
    let id = normalize_tracked(st, r, 80)?;
    let p = &mut r.properties;
    if let Some(f) = p.frontend_ip_configurations.iter().find(|f| f.properties.public_ip_address.is_some()) {
        return Err(ArmError::bad_request(
            "PublicLoadBalancerNotSupported",
            format!(
                "Frontend {} of load balancer {id} has a public IP address: Tessera serves internal load balancers only.",
                f.name
            ),
        ));
    }
    if p.frontend_ip_configurations.is_empty() {
        return Err(ArmError::bad_request(
            "LoadBalancerFrontendRequired",
            format!("Load balancer {id} needs a frontend IP configuration."),
        ));
    }
    check_unique_names(
        &id,
        "frontend IP configurations",
        p.frontend_ip_configurations.iter().map(|f| f.name.as_str()),
    )?;
    check_unique_names(&id, "backend pools", p.backend_address_pools.iter().map(|f| f.name.as_str()))?;
    check_unique_names(&id, "load-balancing rules", p.load_balancing_rules.iter().map(|f| f.name.as_str()))?;
    check_unique_names(&id, "probes", p.probes.iter().map(|f| f.name.as_str()))?;
    let mut dirty = BTreeSet::new();
    let mut taken: Vec<IpAddr> = Vec::new();
    for f in &mut p.frontend_ip_configurations {
        let fid = id.child("frontendIPConfigurations", &f.name);
        check_name(&fid, 80)?;
        f.id = Some(fid.clone());
        let sid = f.properties.subnet.as_ref().map(|s| s.id.clone()).ok_or_else(|| {
            ArmError::bad_request(
                "SubnetRequired",
                format!("Frontend {fid} of internal load balancer {id} must reference a subnet."),
            )
        })?;
        check_kind(&sid, Kind::Subnet, &fid)?;
        let (v, subnet) = st.subnet(&sid).ok_or_else(|| missing_reference(&sid, &fid))?;
        check_same_region(&id, &r.location, &v.id, &v.location)?;
        let prefixes = subnet.properties.prefixes();
        let ip = match f.properties.private_ip_address.as_deref() {
            Some(text) => {
                let ip: IpAddr = text.parse().map_err(|_| {
                    ArmError::bad_request("InvalidPrivateIPAddress", format!("{text} is not an IP address."))
                })?;
                check_static(st, &sid, &prefixes, ip, &fid, &id)?;
                ip
            }
            None => allocate(st, &sid, &prefixes, &id, &taken)?,
        };
        taken.push(ip);
        f.properties.private_ip_address = Some(ip.to_string());
        dirty.insert(v.id.clone());
    }
    for pool in &mut p.backend_address_pools {
        pool.id = Some(id.child("backendAddressPools", &pool.name));
    }
    for probe in &mut p.probes {
        probe.id = Some(id.child("probes", &probe.name));
    }
    let names = |list: Vec<&str>, target: &ResourceId| list.iter().any(|n| n.eq_ignore_ascii_case(target.name()));
    for rule in &mut p.load_balancing_rules {
        let rid = id.child("loadBalancingRules", &rule.name);
        rule.id = Some(rid.clone());
        let rp = &rule.properties;
        let fronts: Vec<&str> = p.frontend_ip_configurations.iter().map(|f| f.name.as_str()).collect();
        let pools: Vec<&str> = p.backend_address_pools.iter().map(|f| f.name.as_str()).collect();
        let probes: Vec<&str> = p.probes.iter().map(|f| f.name.as_str()).collect();
        if !names(fronts, &rp.frontend_ip_configuration.id) {
            return Err(missing_reference(&rp.frontend_ip_configuration.id, &rid));
        }
        if !names(pools, &rp.backend_address_pool.id) {
            return Err(missing_reference(&rp.backend_address_pool.id, &rid));
        }
        if let Some(probe) = &rp.probe
            && !names(probes, &probe.id)
        {
            return Err(missing_reference(&probe.id, &rid));
        }
    }
    p.provisioning_state = Some(ProvisioningState::Succeeded);
    if let Some(old) = st.load_balancers.get(&id).cloned() {
        st.index_lb(&old, false);
    }
    st.index_lb(&lb, true);
    st.load_balancers.insert(id, lb);
    Ok(dirty)
}

/// Deletes a load balancer whose pools no NIC uses.
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let lb = st
        .load_balancers
        .get(id)
        .ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?
        .clone();
    let member = st.nics.values().find(|n| {
        n.properties.ip_configurations.iter().any(|c| {
            c.properties.load_balancer_backend_address_pools.iter().any(|p| p.id.parent().as_ref() == Some(id))
        })
    });
    if let Some(nic) = member {
        return Err(ArmError::bad_request(
            "InUseLoadBalancerCannotBeDeleted",
            format!("Load balancer {id} has network interface {} in a backend pool and cannot be deleted.", nic.id),
        ));
    }
    st.index_lb(&lb, false);
    st.load_balancers.remove(id);
    Ok(lb
        .resource
        .properties
        .frontend_ip_configurations
        .iter()
        .filter_map(|f| f.properties.subnet.as_ref()?.id.parent())
        .collect())
}
