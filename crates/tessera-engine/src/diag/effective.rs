//! The NIC actions `effectiveRouteTable` (§3.5, O9) and `effectiveNetworkSecurityGroups` (N10, O9),
//! answered with Azure's response bodies.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use tessera_model::prefix::IpNet;
use tessera_model::security::{NetworkSecurityGroup, RuleProtocol};
use tessera_model::{ArmError, ArmResult, ResourceId};

use crate::Engine;
use crate::compile::NicProgram;
use crate::compile::routes::{EffectiveRoute, RouteSource};
use crate::compile::security::{CompiledNsg, CompiledRule, TagContext};

/// The compiled program of a NIC, or ARM's 404.
pub fn nic_program(engine: &Engine, nic: &ResourceId) -> ArmResult<std::sync::Arc<NicProgram>> {
    if !engine.state().nics.contains_key(nic) {
        return Err(ArmError::resource_not_found(&nic.type_and_name(), nic.resource_group()));
    }
    engine.program(nic).ok_or_else(|| {
        ArmError::bad_request(
            "NetworkInterfaceNotAttachedToSubnet",
            format!("Network interface {nic} has no usable subnet."),
        )
    })
}

/// One entry of `EffectiveRouteListResult` (O9: no `name` key on system routes).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveRouteEntry {
    /// UDR name (User routes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The subnet route table's `disableBgpRoutePropagation`.
    pub disable_bgp_route_propagation: bool,
    /// `Default`, `User` or `VirtualNetworkGateway`.
    pub source: &'static str,
    /// `Active` or `Invalid`.
    pub state: &'static str,
    /// Always false.
    pub has_bgp_override: bool,
    /// One prefix.
    pub address_prefix: [IpNet; 1],
    /// Next hop type.
    pub next_hop_type: &'static str,
    /// Next hop addresses.
    pub next_hop_ip_address: Vec<std::net::IpAddr>,
    /// Always empty.
    pub destination_service_tags: Vec<String>,
    /// Always empty.
    pub tag_map: BTreeMap<String, Vec<String>>,
}

/// `EffectiveRouteListResult`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveRouteList {
    /// The routes.
    pub value: Vec<EffectiveRouteEntry>,
}

fn route_entry(r: &EffectiveRoute, disable_bgp: bool) -> EffectiveRouteEntry {
    EffectiveRouteEntry {
        name: r.name.clone(),
        disable_bgp_route_propagation: disable_bgp,
        source: match r.source {
            RouteSource::Default => "Default",
            RouteSource::User => "User",
            RouteSource::VirtualNetworkGateway => "VirtualNetworkGateway",
        },
        state: if r.active { "Active" } else { "Invalid" },
        has_bgp_override: false,
        address_prefix: [r.prefix],
        next_hop_type: r.next_hop.as_str(),
        next_hop_ip_address: r.next_hop_ips.clone(),
        destination_service_tags: Vec::new(),
        tag_map: BTreeMap::new(),
    }
}

/// `POST …/networkInterfaces/{nic}/effectiveRouteTable` → `{"value": [...]}`.
pub fn effective_route_table(engine: &Engine, nic: &ResourceId) -> ArmResult<EffectiveRouteList> {
    let p = nic_program(engine, nic)?;
    let st = engine.state();
    let disable_bgp = st
        .subnet(&p.subnet.subnet)
        .and_then(|(_, s)| s.properties.route_table.as_ref())
        .and_then(|t| st.route_tables.get(&t.id))
        .is_some_and(|t| t.properties.disable_bgp_route_propagation);
    Ok(EffectiveRouteList { value: p.subnet.routes.routes.iter().map(|r| route_entry(r, disable_bgp)).collect() })
}

fn prefixes(v: &[IpNet]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

fn ports_json(ranges: &[(u16, u16)]) -> Vec<String> {
    ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect()
}

/// One side of a rule: (singular, plural, expansion).
fn side_json(written: &[String], tags: &TagContext) -> (Value, Value, Option<Vec<String>>) {
    match written {
        [one] if one == "*" => (json!("0.0.0.0/0"), json!(["0.0.0.0/0", "0.0.0.0/0"]), None),
        [one] if crate::ops::is_tag(one) => {
            let expanded = tags.expand(one).map(|v| prefixes(&v));
            (json!(one), json!([one]), expanded)
        }
        [one] => (json!(one), json!([one]), None),
        many => (Value::Null, json!(many), None),
    }
}

fn rule_json(r: &CompiledRule, tags: &TagContext, nsg: Option<&NetworkSecurityGroup>) -> Value {
    let plain = r.name.rsplit('/').next().unwrap_or_default();
    let list = nsg.map(|n| if r.default { &n.properties.default_security_rules } else { &n.properties.security_rules });
    let Some(rule) = list.and_then(|l| l.iter().find(|x| x.name == plain)) else { return Value::Null };
    let p = &rule.properties;
    let protocol = match p.protocol {
        RuleProtocol::Any => "All",
        other => other.as_str(),
    };
    let (src, srcs, src_exp) = side_json(&p.sources(), tags);
    let (dst, dsts, dst_exp) = side_json(&p.destinations(), tags);
    let sports = ports_json(&r.src_ports);
    let dports = ports_json(&r.dst_ports);
    let mut v = json!({
        "name": r.name,
        "protocol": protocol,
        "sourcePortRange": if sports.len() == 1 { json!(sports[0]) } else { Value::Null },
        "destinationPortRange": if dports.len() == 1 { json!(dports[0]) } else { Value::Null },
        "sourcePortRanges": sports,
        "destinationPortRanges": dports,
        "sourceAddressPrefix": src,
        "destinationAddressPrefix": dst,
        "sourceAddressPrefixes": srcs,
        "destinationAddressPrefixes": dsts,
        "access": p.access.as_str(),
        "priority": p.priority,
        "direction": p.direction.as_str(),
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(e) = src_exp {
            obj.insert("expandedSourceAddressPrefix".into(), json!(e));
        }
        if let Some(e) = dst_exp {
            obj.insert("expandedDestinationAddressPrefix".into(), json!(e));
        }
        obj.retain(|_, v| !v.is_null());
    }
    v
}

fn nsg_json(engine: &Engine, nsg: &CompiledNsg, association: Value) -> Value {
    let source = engine.state().nsgs.get(&nsg.id);
    let rules: Vec<Value> = nsg
        .inbound
        .iter()
        .chain(nsg.outbound.iter())
        .map(|r| rule_json(r, &nsg.tags, source))
        .filter(|v| !v.is_null())
        .collect();
    let tag_map: serde_json::Map<String, Value> =
        nsg.tags.tag_map().into_iter().map(|(k, v)| (k, json!(prefixes(&v)))).collect();
    json!({
        "networkSecurityGroup": { "id": nsg.id.to_string() },
        "association": association,
        "effectiveSecurityRules": rules,
        "tagMap": tag_map,
    })
}

/// `POST …/networkInterfaces/{nic}/effectiveNetworkSecurityGroups` → `{"value": [...]}`.
pub fn effective_network_security_groups(engine: &Engine, nic: &ResourceId) -> ArmResult<Value> {
    let p = nic_program(engine, nic)?;
    let mut value = Vec::new();
    if let Some(n) = &p.nsg {
        value.push(nsg_json(engine, n, json!({ "networkInterface": { "id": nic.to_string() } })));
    }
    if let Some(n) = &p.subnet.nsg {
        value.push(nsg_json(engine, n, json!({ "subnet": { "id": p.subnet.subnet.to_string() } })));
    }
    Ok(json!({ "value": value }))
}

/// `SecurityGroupViewParameters`: the VM whose NICs to show.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupViewParameters {
    /// The VM.
    pub target_resource_id: ResourceId,
}

/// The rules an NSG holds, as the documents its `securityRules` (or `defaultSecurityRules`) list.
fn rule_documents(engine: &Engine, nsg: &CompiledNsg, default: bool) -> Value {
    let rules = engine.state().nsgs.get(&nsg.id).map(|n| {
        if default { n.properties.default_security_rules.clone() } else { n.properties.security_rules.clone() }
    });
    serde_json::to_value(rules.unwrap_or_default()).unwrap_or_else(|_| json!([]))
}

/// Network Watcher's `securityGroupView` (N10): for every NIC of the VM, the rules of the NSGs on
/// the NIC and on its subnet, the default rules, and the effective rules of both.
pub fn security_group_view(engine: &Engine, p: &SecurityGroupViewParameters) -> ArmResult<Value> {
    let vm = &p.target_resource_id;
    let machine = engine
        .state()
        .vms
        .get(vm)
        .ok_or_else(|| ArmError::resource_not_found(&vm.type_and_name(), vm.resource_group()))?
        .clone();
    let mut interfaces = Vec::new();
    for nic in &machine.properties.network_profile.network_interfaces {
        let program = nic_program(engine, &nic.id)?;
        let mut associations = serde_json::Map::new();
        if let Some(n) = &program.nsg {
            associations.insert(
                "networkInterfaceAssociation".into(),
                json!({ "id": nic.id.to_string(), "securityRules": rule_documents(engine, n, false) }),
            );
        }
        if let Some(n) = &program.subnet.nsg {
            associations.insert(
                "subnetAssociation".into(),
                json!({ "id": program.subnet.subnet.to_string(), "securityRules": rule_documents(engine, n, false) }),
            );
        }
        if let Some(n) = program.nsg.as_ref().or(program.subnet.nsg.as_ref()) {
            associations.insert("defaultSecurityRules".into(), rule_documents(engine, n, true));
        }
        let effective: Vec<Value> = effective_network_security_groups(engine, &nic.id)?["value"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|group| group["effectiveSecurityRules"].as_array().cloned().unwrap_or_default())
            .collect();
        associations.insert("effectiveSecurityRules".into(), json!(effective));
        interfaces.push(json!({ "id": nic.id.to_string(), "securityRuleAssociations": associations }));
    }
    Ok(json!({ "networkInterfaces": interfaces }))
}
