//! Network security groups and route tables: rule validation (N1, U1–U4, limits) and commit.

use std::collections::BTreeSet;

use tessera_model::envelope::ProvisioningState;
use tessera_model::prefix::{self, IpNet};
use tessera_model::routing::{RouteNextHopType, RouteTable};
use tessera_model::security::{NetworkSecurityGroup, SecurityRule, default_rules};
use tessera_model::{ArmError, ArmResult, ResourceId};

use super::common::*;
use crate::limits::Limits;
use crate::state::State;

/// The service tags Tessera expands in NSG rules.
pub const SERVICE_TAGS: &[&str] = &["VirtualNetwork", "AzureLoadBalancer", "Internet"];

/// Validates and stores an NSG.
pub(crate) fn put(
    st: &mut State,
    limits: &Limits,
    mut nsg: NetworkSecurityGroup,
    seq: u64,
) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut nsg, 80)?;
    let old = st.nsgs.get(&id);
    if old.is_none() {
        check_region_quota(
            "NetworkSecurityGroupCountLimitReached",
            "network security groups",
            limits.nsgs_per_subscription,
            st.nsgs.values(),
            &id,
            &nsg.location,
        )?;
    }
    if nsg.properties.security_rules.len() > limits.rules_per_nsg {
        return Err(limit(
            "SecurityRuleCountLimitReached",
            format!("A security group cannot have more than {} security rules.", limits.rules_per_nsg),
            &id,
        ));
    }
    check_unique_names(&id, "security rules", nsg.properties.security_rules.iter().map(|r| r.name.as_str()))?;
    for i in 0..nsg.properties.security_rules.len() {
        let (before, rest) = nsg.properties.security_rules.split_at_mut(i);
        check_rule(&id, &mut rest[0], before, limits)?;
    }
    for r in &nsg.properties.security_rules {
        let rid = id.child("securityRules", &r.name);
        let p = &r.properties;
        for asg in p.source_application_security_groups.iter().chain(&p.destination_application_security_groups) {
            check_kind(&asg.id, tessera_model::Kind::ApplicationSecurityGroup, &rid)?;
            let a = st.asgs.get(&asg.id).ok_or_else(|| missing_reference(&asg.id, &rid))?;
            check_same_region(&id, &nsg.location, &a.id, &a.location)?;
        }
    }
    nsg.properties.default_security_rules = default_rules(&id);
    nsg.properties.resource_guid = Some(super::common::keep_guid(
        old.and_then(|o| o.properties.resource_guid.as_deref()),
        nsg.properties.resource_guid.as_deref(),
        id.key(),
        seq,
    ));
    nsg.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    let dirty = users_of_nsg(st, &id);
    st.nsgs.insert(id, nsg);
    Ok(dirty)
}

/// Deletes an NSG that nothing uses.
pub(crate) fn delete(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if !st.nsgs.contains_key(id) {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    let mut users: Vec<String> = st
        .vnets
        .values()
        .flat_map(|v| v.properties.subnets.iter())
        .filter(|s| s.properties.network_security_group.as_ref().is_some_and(|n| n.id == *id))
        .filter_map(|s| s.id.as_ref().map(ToString::to_string))
        .collect();
    users.extend(
        st.nics
            .values()
            .filter(|n| n.properties.network_security_group.as_ref().is_some_and(|n| n.id == *id))
            .map(|n| n.id.to_string()),
    );
    if !users.is_empty() {
        return Err(ArmError::bad_request(
            "InUseNetworkSecurityGroupCannotBeDeleted",
            format!(
                "Network security group {id} cannot be deleted because it is in use by the following resources: {}. In order to delete the Network security group, remove the association with the resource(s). To learn how to do this, see aka.ms/deletensg.",
                users.join(", ")
            ),
        ));
    }
    st.nsgs.remove(id);
    Ok(BTreeSet::new())
}

/// The VNets whose subnets or NICs use an NSG.
pub(crate) fn users_of_nsg(st: &State, id: &ResourceId) -> BTreeSet<ResourceId> {
    let mut out: BTreeSet<ResourceId> = st
        .vnets
        .values()
        .filter(|v| {
            v.properties
                .subnets
                .iter()
                .any(|s| s.properties.network_security_group.as_ref().is_some_and(|n| n.id == *id))
        })
        .map(|v| v.id.clone())
        .collect();
    for nic in st.nics.values() {
        if nic.properties.network_security_group.as_ref().is_some_and(|n| n.id == *id)
            && let Some(v) = crate::state::State::primary_ip_config(nic)
                .and_then(|c| c.properties.subnet.as_ref())
                .and_then(|s| s.id.parent())
        {
            out.insert(v);
        }
    }
    out
}

fn rule_error(code: &str, message: String, rule: &ResourceId) -> ArmError {
    ArmError::bad_request(code, message).target(rule.as_str())
}

fn check_rule(nsg: &ResourceId, rule: &mut SecurityRule, before: &[SecurityRule], limits: &Limits) -> ArmResult<()> {
    let rid = nsg.child("securityRules", &rule.name);
    check_name(&rid, 80)?;
    rule.id = Some(rid.clone());
    rule.kind = Some("Microsoft.Network/networkSecurityGroups/securityRules".into());
    let p = &mut rule.properties;
    p.provisioning_state = Some(ProvisioningState::Succeeded);
    if !(100..=4096).contains(&p.priority) {
        return Err(rule_error(
            "SecurityRuleInvalidPriority",
            format!("Security rule has invalid Priority. Value provided: {} Allowed range 100-4096.", p.priority),
            &rid,
        ));
    }
    if let Some(d) = &p.description
        && d.chars().count() > 140
    {
        return Err(rule_error(
            "SecurityRuleDescriptionTooLong",
            format!("The description of security rule {} is longer than 140 characters.", rule.name),
            &rid,
        ));
    }
    if let Some(other) =
        before.iter().find(|o| o.properties.priority == p.priority && o.properties.direction == p.direction)
    {
        return Err(rule_error(
            "SecurityRuleConflict",
            format!(
                "Security rule {} conflicts with rule {}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
                rule.name, other.name
            ),
            &rid,
        ));
    }
    for (one, many) in [
        (&p.source_port_range, &p.source_port_ranges),
        (&p.destination_port_range, &p.destination_port_ranges),
        (&p.source_address_prefix, &p.source_address_prefixes),
        (&p.destination_address_prefix, &p.destination_address_prefixes),
    ] {
        if one.is_some() && !many.is_empty() {
            return Err(rule_error(
                "SecurityRuleParameterContainsUnsupportedValue",
                format!(
                    "Security rule {} sets both the single and the plural form of a port range or address prefix.",
                    rule.name
                ),
                &rid,
            ));
        }
    }
    for ports in [p.source_ports(), p.destination_ports()] {
        if ports.is_empty() {
            return Err(rule_error(
                "SecurityRuleInvalidPortRange",
                "Security rule has invalid Port range. Value provided: null.".into(),
                &rid,
            ));
        }
        for r in &ports {
            parse_port_range(r).ok_or_else(|| {
                rule_error(
                    "SecurityRuleInvalidPortRange",
                    format!("Security rule has invalid Port range. Value provided: {r}. Value should be an integer OR integer range with '-' delimiter. Valid range 0-65535."),
                    &rid,
                )
            })?;
        }
    }
    for (side, asgs) in [
        (p.sources(), &p.source_application_security_groups),
        (p.destinations(), &p.destination_application_security_groups),
    ] {
        if !asgs.is_empty() {
            // Application security groups stand for the prefixes of their side.
            if !side.is_empty() {
                return Err(rule_error(
                    "SecurityRuleParameterContainsUnsupportedValue",
                    format!(
                        "Security rule {} names both address prefixes and application security groups on one side.",
                        rule.name
                    ),
                    &rid,
                ));
            }
            continue;
        }
        if side.is_empty() {
            return Err(rule_error(
                "SecurityRuleInvalidAddressPrefix",
                "Security rule has invalid Address prefix. Value provided: null.".into(),
                &rid,
            ));
        }
        if side.len() > limits.prefixes_per_rule_side {
            return Err(limit(
                "SecurityRuleAddressPrefixCountLimitReached",
                format!(
                    "Security rule {} has more than {} addresses on one side.",
                    rule.name, limits.prefixes_per_rule_side
                ),
                &rid,
            ));
        }
        let tags = side.iter().filter(|s| is_tag(s)).count();
        if tags > 0 && side.len() > 1 {
            return Err(rule_error(
                "SecurityRuleParameterContainsUnsupportedValue",
                format!(
                    "Security rule {} mixes a service tag or '*' with other addresses; a rule side takes one tag or a list of addresses.",
                    rule.name
                ),
                &rid,
            ));
        }
        for a in &side {
            if is_tag(a) {
                continue;
            }
            parse_address(a).ok_or_else(|| {
                rule_error(
                    "SecurityRuleInvalidAddressPrefix",
                    format!("Security rule has invalid Address prefix. Value provided: {a}."),
                    &rid,
                )
            })?;
        }
    }
    Ok(())
}

/// `*`, one of [`SERVICE_TAGS`], or the service tag of an Azure service (see
/// [`is_azure_service_tag`]).
pub fn is_tag(s: &str) -> bool {
    s == "*" || SERVICE_TAGS.iter().any(|t| t.eq_ignore_ascii_case(s)) || is_azure_service_tag(s)
}

/// The service tags of Azure services Tessera does not host (Azure's published tags, the
/// common ones): accepted in rules as Azure accepts them, optionally by region
/// (`Storage.WestEurope`), and matching no address of Tessera's networks.
pub const AZURE_SERVICE_TAGS: &[&str] = &[
    "ActionGroup",
    "ApiManagement",
    "AppService",
    "AppServiceManagement",
    "AzureActiveDirectory",
    "AzureBackup",
    "AzureBastion",
    "AzureCloud",
    "AzureConnectors",
    "AzureContainerRegistry",
    "AzureCosmosDB",
    "AzureDataLake",
    "AzureEventGrid",
    "AzureFrontDoor.Backend",
    "AzureFrontDoor.Frontend",
    "AzureKeyVault",
    "AzureMonitor",
    "AzurePlatformDNS",
    "AzurePlatformIMDS",
    "AzurePlatformLKM",
    "AzureResourceManager",
    "AzureSiteRecovery",
    "AzureTrafficManager",
    "BatchNodeManagement",
    "CognitiveServicesManagement",
    "DataFactory",
    "EventHub",
    "GatewayManager",
    "GuestAndHybridManagement",
    "HDInsight",
    "MicrosoftContainerRegistry",
    "PowerBI",
    "ServiceBus",
    "ServiceFabric",
    "Sql",
    "SqlManagement",
    "Storage",
    "StorageSyncService",
    "WindowsVirtualDesktop",
];

/// Whether `s` is one of [`AZURE_SERVICE_TAGS`], or one with a known region after a dot.
pub fn is_azure_service_tag(s: &str) -> bool {
    let known = |t: &str| AZURE_SERVICE_TAGS.iter().any(|k| k.eq_ignore_ascii_case(t));
    known(s)
        || s.rsplit_once('.').is_some_and(|(tag, region)| known(tag) && tessera_model::location::find(region).is_some())
}

/// `*`, `80` or `1000-2000` to an inclusive range.
pub fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let s = s.trim();
    if s == "*" {
        return Some((0, 65535));
    }
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
        None => {
            let v = s.parse::<u16>().ok()?;
            (v, v)
        }
    };
    (a <= b).then_some((a, b))
}

/// An IP or a canonical CIDR.
pub fn parse_address(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Some(IpNet::from(ip));
    }
    let net: IpNet = s.parse().ok()?;
    (net.trunc() == net).then_some(net)
}

/// Validates and stores a route table.
pub(crate) fn put_route_table(
    st: &mut State,
    limits: &Limits,
    mut table: RouteTable,
) -> ArmResult<BTreeSet<ResourceId>> {
    let id = normalize_tracked(st, &mut table, 80)?;
    if !st.route_tables.contains_key(&id) {
        check_region_quota(
            "RouteTableCountLimitReached",
            "route tables",
            limits.route_tables_per_subscription,
            st.route_tables.values(),
            &id,
            &table.location,
        )?;
    }
    if table.properties.routes.len() > limits.routes_per_table {
        return Err(limit(
            "RouteCountLimitReached",
            format!("A route table cannot have more than {} routes.", limits.routes_per_table),
            &id,
        ));
    }
    check_unique_names(&id, "routes", table.properties.routes.iter().map(|r| r.name.as_str()))?;
    let mut seen: Vec<(String, IpNet)> = Vec::new();
    for r in &mut table.properties.routes {
        let rid = id.child("routes", &r.name);
        check_name(&rid, 80)?;
        r.id = Some(rid.clone());
        r.kind = Some("Microsoft.Network/routeTables/routes".into());
        r.properties.provisioning_state = Some(ProvisioningState::Succeeded);
        let text = r.properties.address_prefix.trim().to_string();
        if !text.contains(['.', ':']) {
            return Err(ArmError::bad_request(
                "ServiceTagRoutesNotSupported",
                format!(
                    "Route {} uses service tag {text} as its address prefix; Tessera models CIDR prefixes only.",
                    r.name
                ),
            )
            .target(rid.as_str()));
        }
        let net = prefix::parse_cidr(&text, rid.as_str())?;
        if let Some((other, _)) = seen.iter().find(|(_, n)| *n == net) {
            return Err(ArmError::bad_request(
                "RouteConflict",
                format!("Route {} conflicts with route {other}: both have address prefix {net}.", r.name),
            )
            .target(rid.as_str()));
        }
        seen.push((r.name.clone(), net));
        let hop = r.properties.next_hop_ip_address.as_deref().map(str::trim).filter(|s| !s.is_empty());
        match (r.properties.next_hop_type, hop) {
            (RouteNextHopType::VirtualAppliance, None) => {
                return Err(ArmError::bad_request(
                    "InvalidNextHopIpAddress",
                    format!(
                        "NextHopIpAddress cannot be Null or Empty in route {} when NextHopType is VirtualAppliance.",
                        r.name
                    ),
                )
                .target(rid.as_str()));
            }
            (RouteNextHopType::VirtualAppliance, Some(ip)) => {
                ip.parse::<std::net::IpAddr>().map_err(|_| {
                    ArmError::bad_request(
                        "InvalidNextHopIpAddress",
                        format!("Next hop IP address {ip} of route {} is not a valid IP address.", r.name),
                    )
                    .target(rid.as_str())
                })?;
            }
            (t, Some(_)) => {
                return Err(ArmError::bad_request(
                    "NextHopIpAddressNotAllowed",
                    format!(
                        "Route {} has next hop type {t}; a next hop IP address is allowed only with VirtualAppliance.",
                        r.name
                    ),
                )
                .target(rid.as_str()));
            }
            (_, None) => r.properties.next_hop_ip_address = None,
        }
    }
    // GWY2 for tables already on a GatewaySubnet.
    for v in st.vnets.values() {
        for s in &v.properties.subnets {
            if s.name.eq_ignore_ascii_case(super::vnet::GATEWAY_SUBNET)
                && s.properties.route_table.as_ref().is_some_and(|t| t.id == id)
            {
                super::vnet::check_gateway_subnet_table(&table, &v.id.child("subnets", &s.name))?;
            }
        }
    }
    table.properties.provisioning_state = Some(ProvisioningState::Succeeded);
    let dirty: BTreeSet<ResourceId> = st
        .vnets
        .values()
        .filter(|v| v.properties.subnets.iter().any(|s| s.properties.route_table.as_ref().is_some_and(|t| t.id == id)))
        .map(|v| v.id.clone())
        .collect();
    st.route_tables.insert(id, table);
    Ok(dirty)
}

/// Deletes a route table that no subnet uses.
pub(crate) fn delete_route_table(st: &mut State, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    if !st.route_tables.contains_key(id) {
        return Err(ArmError::resource_not_found(&id.type_and_name(), id.resource_group()));
    }
    let used = st
        .vnets
        .values()
        .flat_map(|v| v.properties.subnets.iter())
        .any(|s| s.properties.route_table.as_ref().is_some_and(|t| t.id == *id));
    if used {
        return Err(ArmError::bad_request(
            "InUseRouteTableCannotBeDeleted",
            format!("Route table {} is in use and cannot be deleted.", id.name()),
        ));
    }
    st.route_tables.remove(id);
    Ok(BTreeSet::new())
}
