//! Application security groups: a name for a set of NIC IP configurations, taken by security
//! rules as a source or destination. Their members are the IP configurations that name them,
//! all in one VNet (as Azure requires); a group still named cannot be deleted.

use std::collections::BTreeSet;

use tessera_model::envelope::ProvisioningState;
use tessera_model::security::ApplicationSecurityGroup;
use tessera_model::{ArmError, ArmResult, ResourceId};

use super::common::*;
use crate::state::State;

/// Validates and stores an application security group.
pub(crate) fn put(
    st: &mut State,
    limits: &crate::limits::Limits,
    mut asg: ApplicationSecurityGroup,
    seq: u64,
) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut asg, 80)?;
    if !st.asgs.contains_key(&id) {
        check_region_quota(
            "ApplicationSecurityGroupCountLimitReached",
            "application security groups",
            limits.asgs_per_subscription,
            st.asgs.values(),
            &id,
            &asg.location,
        )?;
    }
    let old = st.asgs.get(&id);
    asg.properties.resource_guid =
        Some(old.and_then(|o| o.properties.resource_guid.clone()).unwrap_or_else(|| guid(id.as_str(), seq)));
    asg.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    st.asgs.insert(id.clone(), asg);
    Ok(BTreeSet::from([id]))
}

/// Deletes a group no IP configuration or security rule names.
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if !st.asgs.contains_key(id) {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    let by_nic = st.nics.values().find(|n| {
        n.properties
            .ip_configurations
            .iter()
            .any(|c| c.properties.application_security_groups.iter().any(|a| a.id == *id))
    });
    let by_rule = st.nsgs.values().find(|n| {
        n.properties.security_rules.iter().any(|r| {
            let p = &r.properties;
            p.source_application_security_groups
                .iter()
                .chain(&p.destination_application_security_groups)
                .any(|a| a.id == *id)
        })
    });
    if let Some(user) = by_nic.map(|n| &n.id).or(by_rule.map(|n| &n.id)) {
        return Err(ArmError::bad_request(
            "ApplicationSecurityGroupInUse",
            format!("Application security group {id} is used by {user} and cannot be deleted."),
        ));
    }
    st.asgs.remove(id);
    Ok(BTreeSet::from([id.clone()]))
}

/// The VNet of the IP configurations already in each group `ids` names (other than those of
/// `nic`): a NIC joining must be in it.
pub(crate) fn check_members(
    st: &State,
    nic: &ResourceId,
    vnet: &ResourceId,
    location: &str,
    ids: &[ResourceId],
) -> ArmResult<()> {
    for asg in ids {
        check_kind(asg, tessera_model::Kind::ApplicationSecurityGroup, nic)?;
        let a = st.asgs.get(asg).ok_or_else(|| missing_reference(asg, nic))?;
        check_same_region(nic, location, &a.id, &a.location)?;
        let elsewhere = st.nics.values().filter(|n| n.id != *nic).find_map(|n| {
            let member = n
                .properties
                .ip_configurations
                .iter()
                .any(|c| c.properties.application_security_groups.iter().any(|g| g.id == *asg));
            let their = n.properties.ip_configurations.first()?.properties.subnet.as_ref()?.id.parent()?;
            (member && their != *vnet).then_some(their)
        });
        if let Some(other) = elsewhere {
            return Err(ArmError::bad_request(
                "ApplicationSecurityGroupMembersInDifferentVnets",
                format!(
                    "Network interface {nic} in {vnet} cannot join application security group {asg}: its members are in {other}, and all must be in one virtual network."
                ),
            ));
        }
    }
    Ok(())
}

/// The groups a NIC's IP configurations name.
pub(crate) fn of_nic(nic: &tessera_model::compute::NetworkInterface) -> Vec<ResourceId> {
    let mut out: Vec<ResourceId> = nic
        .properties
        .ip_configurations
        .iter()
        .flat_map(|c| c.properties.application_security_groups.iter().map(|a| a.id.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The VNets whose programs hold a security rule naming one of `ids` (their members changed).
pub(crate) fn users(st: &State, ids: &[ResourceId]) -> BTreeSet<ResourceId> {
    if ids.is_empty() {
        return BTreeSet::new();
    }
    st.nsgs
        .values()
        .filter(|n| {
            n.properties.security_rules.iter().any(|r| {
                let p = &r.properties;
                p.source_application_security_groups
                    .iter()
                    .chain(&p.destination_application_security_groups)
                    .any(|a| ids.contains(&a.id))
            })
        })
        .flat_map(|n| super::nsg::users_of_nsg(st, &n.id))
        .collect()
}
