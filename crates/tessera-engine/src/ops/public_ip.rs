//! Public IP addresses: validation (SKU and allocation, idle timeout), an address from the
//! server's public pool (`Limits::public_pool`), and the one IP configuration (of a NIC or a
//! gateway) each is attached to. `ipConfiguration` is derived from the configurations that
//! name the address, after every write that can change it ([`relink`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use tessera_model::compute::{AllocationMethod, IpVersion};
use tessera_model::envelope::{ProvisioningState, SubResource};
use tessera_model::public_ip::{PublicIpAddress, PublicIpSkuName};
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::common::*;
use crate::limits::Limits;
use crate::state::State;

/// The range of `idleTimeoutInMinutes`.
const IDLE_TIMEOUT_MINUTES: (u32, u32) = (4, 30);

/// Validates and stores a public IP address; a Static one gets its address now.
pub(crate) fn put(
    st: &mut State,
    limits: &Limits,
    mut pip: PublicIpAddress,
    seq: u64,
) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut pip.resource, 80)?;
    if !st.public_ips.contains_key(&id) {
        check_region_quota(
            "PublicIPCountLimitReached",
            "public IP addresses",
            limits.public_ips_per_subscription,
            st.public_ips.values().map(|p| &p.resource),
            &id,
            &pip.resource.location,
        )?;
    }
    let p = &mut pip.resource.properties;
    let standard = pip.sku.name == PublicIpSkuName::Standard;
    let version = *p.public_ip_address_version.get_or_insert(IpVersion::IPv4);
    let method = *p.public_ip_allocation_method.get_or_insert(if standard {
        AllocationMethod::Static
    } else {
        AllocationMethod::Dynamic
    });
    if standard && method == AllocationMethod::Dynamic {
        return Err(ArmError::bad_request(
            "StandardSkuPublicIPAddressesMustBeStatic",
            format!("Standard sku publicIp {id} must have AllocationMethod set to Static."),
        ));
    }
    if !standard && version == IpVersion::IPv6 && method == AllocationMethod::Static {
        return Err(ArmError::bad_request(
            "CannotSpecifyPublicIpAllocationMethodAsStaticForIpV6PublicIp",
            format!("Cannot specify publicIpAllocationMethod as Static for IPv6 PublicIp {id} of the Basic sku."),
        ));
    }
    let idle = *p.idle_timeout_in_minutes.get_or_insert(IDLE_TIMEOUT_MINUTES.0);
    if !(IDLE_TIMEOUT_MINUTES.0..=IDLE_TIMEOUT_MINUTES.1).contains(&idle) {
        return Err(ArmError::bad_request(
            "PublicIPIdleTimeoutIsOutOfRange",
            format!(
                "The idleTimeoutInMinutes {idle} of {id} must be between {} and {}.",
                IDLE_TIMEOUT_MINUTES.0, IDLE_TIMEOUT_MINUTES.1
            ),
        ));
    }
    let old = st.public_ips.get(&id);
    if let Some(o) = old
        && o.sku.name != pip.sku.name
    {
        return Err(ArmError::bad_request(
            "PublicIPAddressSkuCannotBeChanged",
            format!("The sku of public IP address {id} cannot be changed from {:?} to {:?}.", o.sku.name, pip.sku.name),
        ));
    }
    // Read-only: the address and the attachment stay as they are.
    let p = &mut pip.resource.properties;
    p.ip_address = old.and_then(|o| o.resource.properties.ip_address.clone());
    p.ip_configuration = old.and_then(|o| o.resource.properties.ip_configuration.clone());
    if p.ip_address
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|a| a.is_ipv4() != (version == IpVersion::IPv4))
    {
        return Err(ArmError::bad_request(
            "PublicIPAddressVersionCannotBeChanged",
            format!("The IP version of public IP address {id} cannot be changed while it holds an address."),
        ));
    }
    if p.ip_address.is_none() && (method == AllocationMethod::Static || p.ip_configuration.is_some()) {
        p.ip_address = Some(allocate(st, limits, &id, version)?.to_string());
    }
    if method == AllocationMethod::Dynamic && p.ip_configuration.is_none() {
        p.ip_address = None;
    }
    p.resource_guid =
        Some(old.and_then(|o| o.resource.properties.resource_guid.clone()).unwrap_or_else(|| guid(id.as_str(), seq)));
    p.provisioning_state = Some(ProvisioningState::Succeeded);
    st.public_ips.insert(id.clone(), pip);
    Ok(BTreeSet::from([id]))
}

/// Deletes a public IP address that is attached to nothing.
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    let pip =
        st.public_ips.get(id).ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
    if let Some(holder) = &pip.resource.properties.ip_configuration {
        return Err(ArmError::bad_request(
            "PublicIPAddressCannotBeDeleted",
            format!("Public IP address {id} can not be deleted since it is still allocated to resource {}.", holder.id),
        ));
    }
    st.public_ips.remove(id);
    Ok(BTreeSet::from([id.clone()]))
}

/// The first address of the pool of `version` that no public IP holds.
fn allocate(st: &State, limits: &Limits, id: &ResourceId, version: IpVersion) -> ArmResult<IpAddr> {
    let held: BTreeSet<IpAddr> =
        st.public_ips.values().filter_map(|p| p.resource.properties.ip_address.as_deref()?.parse().ok()).collect();
    for net in
        limits.public_pool.iter().filter(|n| matches!(n, tessera_model::IpNet::V4(_)) == (version == IpVersion::IPv4))
    {
        let size: u128 = match net {
            tessera_model::IpNet::V4(n) => 1u128 << (32 - n.prefix_len()),
            tessera_model::IpNet::V6(n) => 1u128 << (128 - n.prefix_len()).min(24),
        };
        // Not the network address, nor (IPv4) the broadcast address.
        let last = if matches!(net, tessera_model::IpNet::V4(_)) { size.saturating_sub(1) } else { size };
        if let Some(a) = (1..last).map(|k| tessera_model::prefix::nth_address(net, k)).find(|a| !held.contains(a)) {
            return Ok(a);
        }
    }
    Err(ArmError::with_status(
        409,
        "PublicIPAddressPoolExhausted",
        format!("The server's public {version:?} pool has no free address for {id}."),
    ))
}

/// The public IP addresses the IP configurations of `holder` (a NIC or a gateway) name, with
/// each configuration's id.
pub(crate) fn named_by(st: &State, holder: &ResourceId) -> Vec<(ResourceId, ResourceId)> {
    let mut out = Vec::new();
    if let Some(nic) = st.nics.get(holder) {
        let configs = nic.properties.ip_configurations.iter();
        out.extend(wanted(holder, configs.map(|c| (c.name.as_str(), c.properties.public_ip_address.as_ref()))));
    }
    if let Some(gw) = st.gateways.get(holder) {
        let configs = gw.properties.ip_configurations.iter();
        out.extend(wanted(holder, configs.map(|c| (c.name.as_str(), c.properties.public_ip_address.as_ref()))));
    }
    out
}

/// The public IP addresses a new version of `holder` names, by IP configuration: (configuration
/// id, public IP id) for each (name, publicIPAddress) of its configurations.
pub(crate) fn wanted<'a>(
    holder: &ResourceId,
    configs: impl Iterator<Item = (&'a str, Option<&'a tessera_model::envelope::SubResource>)>,
) -> Vec<(ResourceId, ResourceId)> {
    configs.filter_map(|(name, pip)| Some((holder.child("ipConfigurations", name), pip?.id.clone()))).collect()
}

/// Checks the public IP addresses a new version of `holder` names: each exists, in the
/// holder's region, and is attached to nothing else.
pub(crate) fn check_attach(
    st: &State,
    holder: &ResourceId,
    location: &str,
    wanted: &[(ResourceId, ResourceId)],
) -> ArmResult<()> {
    for (i, (config, pip_id)) in wanted.iter().enumerate() {
        check_kind(pip_id, Kind::PublicIpAddress, config)?;
        let pip = st.public_ips.get(pip_id).ok_or_else(|| missing_reference(pip_id, config))?;
        check_same_region(holder, location, pip_id, &pip.resource.location)?;
        let twice = wanted[..i].iter().any(|(_, other)| other == pip_id);
        let elsewhere = pip.resource.properties.ip_configuration.as_ref().is_some_and(|h| {
            let h_doc = crate::document_of(&h.id);
            h_doc != *holder
        });
        if twice || elsewhere {
            let by = pip.resource.properties.ip_configuration.as_ref().map_or(config.to_string(), |h| h.id.to_string());
            return Err(ArmError::bad_request(
                "PublicIPAddressInUse",
                format!(
                    "Resource {config} is referencing public IP address {pip_id} that is already allocated to resource {by}."
                ),
            ));
        }
    }
    Ok(())
}

/// Brings the `ipConfiguration` (and a Dynamic address) of `pips` in line with the
/// configurations that name them now; returns them (their documents changed).
pub(crate) fn relink(st: &mut State, limits: &Limits, pips: BTreeSet<ResourceId>) -> BTreeSet<ResourceId> {
    if pips.is_empty() {
        return pips;
    }
    let mut holders: Vec<(ResourceId, ResourceId)> = Vec::new();
    let ids: Vec<ResourceId> = st.nics.keys().chain(st.gateways.keys()).cloned().collect();
    for h in ids {
        holders.extend(named_by(st, &h));
    }
    for pip_id in &pips {
        let holder = holders.iter().find(|(_, p)| p == pip_id).map(|(c, _)| c.clone());
        let Some(pip) = st.public_ips.get(pip_id) else { continue };
        let dynamic = pip.resource.properties.public_ip_allocation_method == Some(AllocationMethod::Dynamic);
        let version = pip.resource.properties.public_ip_address_version.unwrap_or(IpVersion::IPv4);
        let needs = holder.is_some() && pip.resource.properties.ip_address.is_none();
        let address = if needs { allocate(st, limits, pip_id, version).ok().map(|a| a.to_string()) } else { None };
        let Some(pip) = st.public_ips.get_mut(pip_id) else { continue };
        let p = &mut pip.resource.properties;
        p.ip_configuration = holder.map(SubResource::new);
        if address.is_some() {
            p.ip_address = address;
        }
        if dynamic && p.ip_configuration.is_none() {
            p.ip_address = None;
        }
    }
    pips
}
