//! Linked authorization, as ARM does it: a write that references another resource needs, besides
//! the right to write its own target, a right on every resource it references — the join action
//! of a subnet, NSG, route table, backend pool, NIC or public IP, `peer/action` on a peering's
//! remote VNet (A2, A4) — decided for the caller, or across tenants for the caller's auxiliary
//! token of the referenced subscription's tenant (A5). Else 403 `LinkedAuthorizationFailed` and
//! nothing is written.
//!
//! [`LINK_RULES`] names every writable field that references another resource; [`BACK_REFERENCES`]
//! the read-only fields the server fills with ids of others (a client's value is ignored). The
//! coverage test walks every document kind and fails on an id-bearing field in neither list.
//!
//! The same deciding rules answer the diagnostics' question about resources named in a request
//! body ([`readable`]): absent and forbidden get the same 403, so a caller learns nothing about
//! another tenant's resources.

use serde_json::{Map, Value};
use tessera_model::{ArmError, DEFAULT_HOST, HOST_TAG, Kind, ResourceId, SIMULATE_TAG};

use crate::http::Req;

/// The right a reference needs on the resource it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkRight {
    /// A fixed action (a join action).
    Action(&'static str),
    /// `peer/action` on a VNet, Resource Manager or classic by the referenced id (A2).
    Peer,
    /// Write on the referenced resource: attaching to it changes what it does, and Azure names
    /// no join action for it (a connection's gateways).
    Write,
}

/// A writable field that references another resource.
#[derive(Debug, Clone, Copy)]
pub struct LinkRule {
    /// The ARM type of the document (or child) written.
    pub owner: &'static str,
    /// The field, from the document's root: `.`-separated, `[]` after an array.
    pub path: &'static str,
    /// What the caller needs on the referenced resource.
    pub right: LinkRight,
}

const SUBNET_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/virtualNetworks/subnets/join/action");
const NSG_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/networkSecurityGroups/join/action");
const ROUTE_TABLE_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/routeTables/join/action");
const POOL_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/loadBalancers/backendAddressPools/join/action");
const NIC_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/networkInterfaces/join/action");
const PUBLIC_IP_JOIN: LinkRight = LinkRight::Action("Microsoft.Network/publicIPAddresses/join/action");
const ASG_JOIN_IP: LinkRight =
    LinkRight::Action("Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action");
const ASG_JOIN_RULE: LinkRight =
    LinkRight::Action("Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action");

const fn rule(owner: &'static str, path: &'static str, right: LinkRight) -> LinkRule {
    LinkRule { owner, path, right }
}

/// Every writable field that references another resource, by the type written.
pub const LINK_RULES: &[LinkRule] = &[
    rule("Microsoft.Network/virtualNetworks", "properties.subnets[].properties.networkSecurityGroup", NSG_JOIN),
    rule("Microsoft.Network/virtualNetworks", "properties.subnets[].properties.routeTable", ROUTE_TABLE_JOIN),
    rule("Microsoft.Network/virtualNetworks/subnets", "properties.networkSecurityGroup", NSG_JOIN),
    rule("Microsoft.Network/virtualNetworks/subnets", "properties.routeTable", ROUTE_TABLE_JOIN),
    rule(
        "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
        "properties.remoteVirtualNetwork",
        LinkRight::Peer,
    ),
    rule("Microsoft.Network/networkInterfaces", "properties.networkSecurityGroup", NSG_JOIN),
    rule("Microsoft.Network/networkInterfaces", "properties.ipConfigurations[].properties.subnet", SUBNET_JOIN),
    rule(
        "Microsoft.Network/networkInterfaces",
        "properties.ipConfigurations[].properties.loadBalancerBackendAddressPools[]",
        POOL_JOIN,
    ),
    rule(
        "Microsoft.Network/networkInterfaces",
        "properties.ipConfigurations[].properties.publicIPAddress",
        PUBLIC_IP_JOIN,
    ),
    rule(
        "Microsoft.Network/networkInterfaces",
        "properties.ipConfigurations[].properties.applicationSecurityGroups[]",
        ASG_JOIN_IP,
    ),
    rule(
        "Microsoft.Network/networkSecurityGroups",
        "properties.securityRules[].properties.sourceApplicationSecurityGroups[]",
        ASG_JOIN_RULE,
    ),
    rule(
        "Microsoft.Network/networkSecurityGroups",
        "properties.securityRules[].properties.destinationApplicationSecurityGroups[]",
        ASG_JOIN_RULE,
    ),
    rule(
        "Microsoft.Network/networkSecurityGroups/securityRules",
        "properties.sourceApplicationSecurityGroups[]",
        ASG_JOIN_RULE,
    ),
    rule(
        "Microsoft.Network/networkSecurityGroups/securityRules",
        "properties.destinationApplicationSecurityGroups[]",
        ASG_JOIN_RULE,
    ),
    rule("Microsoft.Compute/virtualMachines", "properties.networkProfile.networkInterfaces[]", NIC_JOIN),
    rule("Microsoft.Network/virtualNetworkGateways", "properties.ipConfigurations[].properties.subnet", SUBNET_JOIN),
    rule(
        "Microsoft.Network/virtualNetworkGateways",
        "properties.ipConfigurations[].properties.publicIPAddress",
        PUBLIC_IP_JOIN,
    ),
    rule("Microsoft.Network/loadBalancers", "properties.frontendIPConfigurations[].properties.subnet", SUBNET_JOIN),
    rule(
        "Microsoft.Network/loadBalancers",
        "properties.frontendIPConfigurations[].properties.publicIPAddress",
        PUBLIC_IP_JOIN,
    ),
    rule("Microsoft.Network/connections", "properties.virtualNetworkGateway1", LinkRight::Write),
    rule("Microsoft.Network/connections", "properties.virtualNetworkGateway2", LinkRight::Write),
    rule("Microsoft.Network/connections", "properties.localNetworkGateway2", LinkRight::Write),
];

/// Read-only fields holding ids of other resources (filled by the server or left out, never
/// taken from a request): (type, path). References to a document's own parts (a load balancer
/// rule's frontend) are neither links nor back-references.
pub const BACK_REFERENCES: &[(&str, &str)] = &[
    ("Microsoft.Network/publicIPAddresses", "properties.ipConfiguration"),
    ("Microsoft.Network/virtualNetworks", "properties.subnets[].properties.ipConfigurations[]"),
    ("Microsoft.Network/virtualNetworks/subnets", "properties.ipConfigurations[]"),
    ("Microsoft.Network/virtualNetworks", "properties.virtualNetworkPeerings[].properties.remoteVirtualNetwork"),
    ("Microsoft.Network/virtualNetworks", "properties.virtualNetworkPeerings[].properties.remoteGateways[]"),
    ("Microsoft.Network/networkSecurityGroups", "properties.subnets[]"),
    ("Microsoft.Network/networkSecurityGroups", "properties.networkInterfaces[]"),
    ("Microsoft.Network/routeTables", "properties.subnets[]"),
    ("Microsoft.Network/networkInterfaces", "properties.virtualMachine"),
    ("Microsoft.Network/loadBalancers", "properties.backendAddressPools[].properties.backendIPConfigurations[]"),
];

/// Removes the read-only back-references of a request body for a resource of type `owner`:
/// a client's value is ignored (arm-api.md §1), never stored as if the server had filled it.
pub(crate) fn strip_back_references(owner: &str, body: &mut Map<String, Value>) {
    fn remove(v: &mut Value, segments: &[&str]) {
        let Some((first, rest)) = segments.split_first() else { return };
        let name = first.strip_suffix("[]").unwrap_or(first);
        let Some(map) = v.as_object_mut() else { return };
        if rest.is_empty() {
            map.remove(name);
            return;
        }
        match map.get_mut(name) {
            Some(Value::Array(items)) if first.ends_with("[]") => items.iter_mut().for_each(|i| remove(i, rest)),
            Some(child) if !first.ends_with("[]") => remove(child, rest),
            _ => {}
        }
    }
    let mut doc = Value::Object(std::mem::take(body));
    for (_, path) in BACK_REFERENCES.iter().filter(|(t, _)| t.eq_ignore_ascii_case(owner)) {
        remove(&mut doc, &path.split('.').collect::<Vec<_>>());
    }
    if let Value::Object(map) = doc {
        *body = map;
    }
}

/// The values at `path` in `doc` (arrays marked `[]` are walked).
fn values_at<'a>(doc: &'a Map<String, Value>, path: &str) -> Vec<&'a Value> {
    let mut segments = path.split('.').map(|s| match s.strip_suffix("[]") {
        Some(name) => (name, true),
        None => (s, false),
    });
    let step = |v: &'a Value, array: bool| -> Vec<&'a Value> {
        if array { v.as_array().map(|a| a.iter().collect()).unwrap_or_default() } else { vec![v] }
    };
    let Some((first, array)) = segments.next() else { return Vec::new() };
    let mut here: Vec<&Value> = doc.get(first).map(|v| step(v, array)).unwrap_or_default();
    for (name, array) in segments {
        here = here.into_iter().filter_map(|v| v.get(name)).flat_map(|v| step(v, array)).collect();
    }
    here
}

/// The references a request body for a resource of type `owner` makes: (referenced id, the
/// right it needs). Ids that do not parse are left to the model, which refuses them.
pub fn references(owner: &str, body: &Map<String, Value>) -> Vec<(ResourceId, LinkRight)> {
    let mut out = Vec::new();
    // A body may name one resource many times (a large VNet's subnets, one NSG each): each is
    // decided once, in the order first named.
    let mut seen = std::collections::HashSet::new();
    for r in LINK_RULES.iter().filter(|r| r.owner.eq_ignore_ascii_case(owner)) {
        for v in values_at(body, r.path) {
            if let Some(id) = v.get("id").and_then(Value::as_str).and_then(|s| ResourceId::parse(s).ok())
                && seen.insert((id.clone(), r.right))
            {
                out.push((id, r.right));
            }
        }
    }
    out
}

/// Every path in `doc` that holds `{"id": ...}` naming a resource outside the document (array
/// positions written `[]`), for the coverage test.
pub fn id_paths(doc: &Value) -> Vec<String> {
    fn walk(v: &Value, path: &str, own: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if !path.is_empty()
                    && let Some(id) = map.get("id").and_then(Value::as_str)
                    && !id.to_ascii_lowercase().starts_with(own)
                    && !out.iter().any(|p| p == path)
                {
                    out.push(path.to_string());
                }
                for (k, child) in map {
                    let next = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    walk(child, &next, own, out);
                }
            }
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), own, out);
                }
            }
            _ => {}
        }
    }
    let own = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
    let mut out = Vec::new();
    walk(doc, "", &format!("{own}/"), &mut out);
    out
}

/// The action a right names for the referenced resource.
fn action_of(right: LinkRight, target: &ResourceId) -> String {
    match right {
        LinkRight::Action(a) => a.to_string(),
        LinkRight::Peer if target.namespace().eq_ignore_ascii_case("Microsoft.ClassicNetwork") => {
            "Microsoft.ClassicNetwork/virtualNetworks/peer/action".to_string()
        }
        LinkRight::Peer => "Microsoft.Network/virtualNetworks/peer/action".to_string(),
        LinkRight::Write => format!("{}/write", target.kind().arm_type()),
    }
}

/// Checks every reference of a write of `owner` (an ARM type) at `scope` whose body is `body`.
pub(crate) fn authorize_references(req: &Req, owner: &str, body: &Map<String, Value>) -> Result<(), ArmError> {
    let caller = req.principal()?;
    let write = format!("{owner}/write");
    let scope = req.path.as_str();
    for (target, right) in references(owner, body) {
        let action = action_of(right, &target);
        let who = match req.access.decider(caller, &req.auxiliary, target.as_str()) {
            Some(p) => p,
            None => {
                return Err(ArmError::with_status(
                    403,
                    "LinkedAuthorizationFailed",
                    format!(
                        "The client '{c}' with object id '{c}' has permission to perform action '{action}' on scope \
                         '{scope}'; however, the current tenant '{}' is not authorized to access linked subscription \
                         '{}'.",
                        caller.tenant_id,
                        target.subscription(),
                        c = caller.client_id
                    ),
                ));
            }
        };
        if !req.access.rbac.allows(&who.client_id, &action, target.as_str()) {
            return Err(ArmError::with_status(
                403,
                "LinkedAuthorizationFailed",
                format!(
                    "The client '{c}' with object id '{c}' has permission to perform action '{write}' on scope \
                     '{scope}'; however, it does not have permission to perform action(s) '{action}' on the linked \
                     scope(s) '{target}' (respectively) or the linked scope(s) are invalid.",
                    c = who.client_id
                ),
            ));
        }
    }
    Ok(())
}

/// A local network gateway tagged `tessera-simulate` makes the agent of its host run a site
/// (namespaces, strongSwan and BIRD): an operator's decision, so the tag needs
/// `Tessera/hosts/write` on that host (its `tessera-host` tag, else the default host), the right
/// an agent's own reports need. `tags` are the tags the write leaves on the resource.
pub(crate) fn authorize_simulation(req: &Req, kind: Kind, tags: Option<&Value>) -> Result<(), ArmError> {
    let Some(tags) = tags.and_then(Value::as_object).filter(|_| kind == Kind::LocalNetworkGateway) else {
        return Ok(());
    };
    let tag = |name: &str| tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str());
    if tag(SIMULATE_TAG).is_none() {
        return Ok(());
    }
    req.authorize("Tessera/hosts/write", &format!("/tessera/hosts/{}", tag(HOST_TAG).unwrap_or(DEFAULT_HOST)))
}

/// Whether the caller may read `id`, named in a diagnostics request body. Another tenant's
/// resource (without an auxiliary token of it), a resource without a right on it, and a
/// resource that does not exist in a scope the caller cannot read all get the same 403.
pub(crate) fn readable(req: &Req, id: &ResourceId) -> Result<(), ArmError> {
    let caller = req.principal()?;
    let action = format!("{}/read", id.kind().arm_type());
    let allowed = req
        .access
        .decider(caller, &req.auxiliary, id.as_str())
        .is_some_and(|who| req.access.rbac.allows(&who.client_id, &action, id.as_str()));
    if allowed {
        return Ok(());
    }
    Err(ArmError::with_status(
        403,
        "AuthorizationFailed",
        format!(
            "The client '{c}' with object id '{c}' does not have authorization to perform action '{action}' over \
             scope '{id}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            c = caller.client_id
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_follow_the_rules_and_skip_what_does_not_parse() {
        let subnet = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
        let pool =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/loadBalancers/l/backendAddressPools/p";
        let body = json!({"properties": {"ipConfigurations": [
            {"properties": {"subnet": {"id": subnet}, "loadBalancerBackendAddressPools": [{"id": pool}, {"id": "nonsense"}]}},
            {"properties": {"subnet": {"id": subnet}}}
        ]}});
        let body = body.as_object().expect("object");
        let refs = references("Microsoft.Network/networkInterfaces", body);
        let got: Vec<(String, LinkRight)> = refs.iter().map(|(id, r)| (id.as_str().to_string(), *r)).collect();
        assert_eq!(got, vec![(subnet.to_string(), SUBNET_JOIN), (pool.to_string(), POOL_JOIN)]);
        assert!(references("Microsoft.Network/routeTables", body).is_empty());
    }

    #[test]
    fn id_paths_name_foreign_ids_only() {
        let own = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/loadBalancers/l";
        let doc = json!({"id": own, "properties": {
            "frontendIPConfigurations": [{"id": format!("{own}/frontendIPConfigurations/f"),
                "properties": {"subnet": {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a"}}}],
            "loadBalancingRules": [{"properties": {"probe": {"id": format!("{own}/probes/p")}}}]}});
        assert_eq!(id_paths(&doc), vec!["properties.frontendIPConfigurations[].properties.subnet".to_string()]);
    }

    #[test]
    fn back_references_are_dropped_from_requests() {
        let foreign =
            json!({"id": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/a"});
        let mut body = json!({"location": "westeurope", "properties": {"subnets": [foreign], "securityRules": []}});
        let map = body.as_object_mut().expect("object");
        strip_back_references("Microsoft.Network/networkSecurityGroups", map);
        assert_eq!(body, json!({"location": "westeurope", "properties": {"securityRules": []}}));
        let mut nested = json!({"properties": {"subnets": [{"name": "s", "properties": {"ipConfigurations": [foreign], "addressPrefix": "10.0.0.0/24"}}]}});
        strip_back_references("Microsoft.Network/virtualNetworks", nested.as_object_mut().expect("object"));
        assert_eq!(
            nested,
            json!({"properties": {"subnets": [{"name": "s", "properties": {"addressPrefix": "10.0.0.0/24"}}]}})
        );
    }

    #[test]
    fn the_right_names_the_referenced_kind() {
        let classic =
            ResourceId::parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.ClassicNetwork/virtualNetworks/c")
                .expect("id");
        assert_eq!(action_of(LinkRight::Peer, &classic), "Microsoft.ClassicNetwork/virtualNetworks/peer/action");
        let gw =
            ResourceId::parse("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworkGateways/w")
                .expect("id");
        assert_eq!(action_of(LinkRight::Write, &gw), "Microsoft.Network/virtualNetworkGateways/write");
    }
}
