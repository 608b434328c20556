//! One enum over every resource a topology can hold, and loading ARM JSON into it.

use serde::Serialize;
use serde_json::Value;

use crate::account::Subscription;
use crate::compute::{NetworkInterface, VirtualMachine};
use crate::error::ArmError;
use crate::gateway::{Connection, LocalNetworkGateway, VirtualNetworkGateway};
use crate::id::{Kind, ResourceId};
use crate::lb::LoadBalancer;
use crate::network::{ClassicVirtualNetwork, Peering, Subnet, VirtualNetwork};
use crate::routing::RouteTable;
use crate::security::NetworkSecurityGroup;

/// Any resource Tessera models.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// A subscription and its tenant.
    Subscription(Subscription),
    /// A virtual network (its embedded peerings are ignored; peerings are their own resources).
    VirtualNetwork(VirtualNetwork),
    /// A subnet (id required).
    Subnet(Subnet),
    /// A peering link (id required).
    Peering(Peering),
    /// A classic virtual network.
    ClassicVirtualNetwork(ClassicVirtualNetwork),
    /// An NSG.
    NetworkSecurityGroup(NetworkSecurityGroup),
    /// A route table.
    RouteTable(RouteTable),
    /// A NIC.
    NetworkInterface(NetworkInterface),
    /// A VM.
    VirtualMachine(VirtualMachine),
    /// A virtual network gateway.
    VirtualNetworkGateway(VirtualNetworkGateway),
    /// A local network gateway.
    LocalNetworkGateway(LocalNetworkGateway),
    /// A gateway connection.
    Connection(Connection),
    /// A load balancer.
    LoadBalancer(LoadBalancer),
    /// A public IP address.
    PublicIpAddress(crate::public_ip::PublicIpAddress),
    /// An application security group.
    ApplicationSecurityGroup(crate::security::ApplicationSecurityGroup),
}

impl Resource {
    /// The properties a client sent that Tessera does not model, of the resource and of the
    /// children it embeds, each with where it is (`properties`, `properties.subnets[0].properties`).
    pub fn unmodelled(&self) -> Vec<(String, &crate::unmodelled::Unmodelled)> {
        fn each<'a, P>(
            out: &mut Vec<(String, &'a crate::unmodelled::Unmodelled)>,
            list: &'a [crate::envelope::Child<P>],
            name: &str,
            of: impl Fn(&'a P) -> &'a crate::unmodelled::Unmodelled,
        ) {
            for (i, c) in list.iter().enumerate() {
                out.push((format!("properties.{name}[{i}]"), &c.unmodelled));
                out.push((format!("properties.{name}[{i}].properties"), of(&c.properties)));
            }
        }
        let top = "properties".to_string();
        let mut out = Vec::new();
        match self {
            Resource::VirtualNetwork(v) => {
                out.push((top, &v.properties.unmodelled));
                each(&mut out, &v.properties.subnets, "subnets", |p| &p.unmodelled);
            }
            Resource::Subnet(s) => {
                out.push((String::new(), &s.unmodelled));
                out.push((top, &s.properties.unmodelled));
            }
            Resource::Peering(p) => {
                out.push((String::new(), &p.unmodelled));
                out.push((top, &p.properties.unmodelled));
            }
            Resource::PublicIpAddress(p) => out.push((top, &p.resource.properties.unmodelled)),
            Resource::ApplicationSecurityGroup(a) => out.push((top, &a.properties.unmodelled)),
            Resource::LoadBalancer(l) => {
                let p = &l.resource.properties;
                out.push((top, &p.unmodelled));
                each(&mut out, &p.frontend_ip_configurations, "frontendIPConfigurations", |p| &p.unmodelled);
                each(&mut out, &p.backend_address_pools, "backendAddressPools", |p| &p.unmodelled);
                each(&mut out, &p.load_balancing_rules, "loadBalancingRules", |p| &p.unmodelled);
                each(&mut out, &p.probes, "probes", |p| &p.unmodelled);
            }
            Resource::VirtualNetworkGateway(g) => {
                out.push((top, &g.properties.unmodelled));
                each(&mut out, &g.properties.ip_configurations, "ipConfigurations", |p| &p.unmodelled);
                out.extend(
                    g.properties.bgp_settings.as_ref().map(|b| ("properties.bgpSettings".into(), &b.unmodelled)),
                );
            }
            Resource::LocalNetworkGateway(l) => {
                out.push((top, &l.properties.unmodelled));
                out.extend(
                    l.properties.bgp_settings.as_ref().map(|b| ("properties.bgpSettings".into(), &b.unmodelled)),
                );
            }
            Resource::Connection(c) => out.push((top, &c.properties.unmodelled)),
            Resource::VirtualMachine(v) => out.push((top, &v.properties.unmodelled)),
            Resource::NetworkSecurityGroup(n) => {
                out.push((top, &n.properties.unmodelled));
                each(&mut out, &n.properties.security_rules, "securityRules", |p| &p.unmodelled);
            }
            Resource::RouteTable(t) => {
                out.push((top, &t.properties.unmodelled));
                each(&mut out, &t.properties.routes, "routes", |p| &p.unmodelled);
            }
            Resource::NetworkInterface(n) => {
                out.push((top, &n.properties.unmodelled));
                each(&mut out, &n.properties.ip_configurations, "ipConfigurations", |p| &p.unmodelled);
            }
            _ => {}
        }
        out
    }

    /// The resource id (subscriptions have none in the resource-group form).
    pub fn id(&self) -> Option<&ResourceId> {
        match self {
            Resource::Subscription(_) => None,
            Resource::VirtualNetwork(r) => Some(&r.id),
            Resource::Subnet(r) => r.id.as_ref(),
            Resource::Peering(r) => r.id.as_ref(),
            Resource::ClassicVirtualNetwork(r) => Some(&r.id),
            Resource::NetworkSecurityGroup(r) => Some(&r.id),
            Resource::RouteTable(r) => Some(&r.id),
            Resource::NetworkInterface(r) => Some(&r.id),
            Resource::VirtualMachine(r) => Some(&r.id),
            Resource::VirtualNetworkGateway(r) => Some(&r.id),
            Resource::LocalNetworkGateway(r) => Some(&r.id),
            Resource::Connection(r) => Some(&r.id),
            Resource::LoadBalancer(r) => Some(&r.resource.id),
            Resource::PublicIpAddress(r) => Some(&r.resource.id),
            Resource::ApplicationSecurityGroup(r) => Some(&r.id),
        }
    }

    /// Order in which a topology is applied so that references resolve: subscriptions, NSGs,
    /// route tables and sites first, then VNets, gateways, NICs, VMs, peerings and connections.
    pub fn apply_rank(&self) -> u8 {
        match self {
            Resource::Subscription(_) => 0,
            // Security rules name application security groups: those come first.
            Resource::ApplicationSecurityGroup(_) => 1,
            Resource::NetworkSecurityGroup(_)
            | Resource::RouteTable(_)
            | Resource::LocalNetworkGateway(_)
            | Resource::PublicIpAddress(_) => 2,
            Resource::VirtualNetwork(_) | Resource::ClassicVirtualNetwork(_) => 3,
            Resource::Subnet(_) => 4,
            Resource::VirtualNetworkGateway(_) | Resource::LoadBalancer(_) => 5,
            Resource::NetworkInterface(_) => 6,
            Resource::VirtualMachine(_) => 7,
            Resource::Peering(_) => 8,
            Resource::Connection(_) => 9,
        }
    }
}

fn invalid(msg: String) -> ArmError {
    ArmError::bad_request("InvalidRequestContent", msg)
}

fn typed<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, ArmError> {
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text.split_once(crate::prefix::BAD_PREFIX) {
            Some((_, rest)) => {
                let value = rest.split(" at line ").next().unwrap_or(rest);
                ArmError::bad_request(
                    "InvalidAddressPrefixFormat",
                    format!("Address prefix {value} of resource {what} is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24."),
                )
                .target(what)
            }
            None => invalid(format!("{what}: {text}")),
        }
    })
}

/// Parses one resource from its ARM JSON (as `GET` returns it). A virtual network yields itself
/// plus one [`Resource::Peering`] per embedded peering.
pub fn from_arm_json(value: Value) -> Result<Vec<Resource>, ArmError> {
    let id_text = value.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
    if value.get("subscriptionId").is_some() && id_text.matches('/').count() <= 2 {
        return Ok(vec![Resource::Subscription(typed(value, "subscription")?)]);
    }
    let id = ResourceId::parse(&id_text).map_err(|e| invalid(e.to_string()))?;
    let what = id.to_string();
    let one = |r: Resource| Ok(vec![r]);
    match id.kind() {
        Kind::VirtualNetwork => {
            let mut vnet: VirtualNetwork = typed(value, &what)?;
            let mut out = Vec::new();
            for mut p in std::mem::take(&mut vnet.properties.virtual_network_peerings) {
                if p.id.is_none() {
                    p.id = Some(vnet.id.child("virtualNetworkPeerings", &p.name));
                }
                out.push(Resource::Peering(p));
            }
            out.insert(0, Resource::VirtualNetwork(vnet));
            Ok(out)
        }
        Kind::Subnet => one(Resource::Subnet(typed(value, &what)?)),
        Kind::Peering => one(Resource::Peering(typed(value, &what)?)),
        Kind::ClassicVirtualNetwork => one(Resource::ClassicVirtualNetwork(typed(value, &what)?)),
        Kind::NetworkSecurityGroup => one(Resource::NetworkSecurityGroup(typed(value, &what)?)),
        Kind::RouteTable => one(Resource::RouteTable(typed(value, &what)?)),
        Kind::NetworkInterface => one(Resource::NetworkInterface(typed(value, &what)?)),
        Kind::VirtualMachine => one(Resource::VirtualMachine(typed(value, &what)?)),
        Kind::VirtualNetworkGateway => one(Resource::VirtualNetworkGateway(typed(value, &what)?)),
        Kind::LocalNetworkGateway => one(Resource::LocalNetworkGateway(typed(value, &what)?)),
        Kind::Connection => one(Resource::Connection(typed(value, &what)?)),
        Kind::LoadBalancer => one(Resource::LoadBalancer(typed(value, &what)?)),
        Kind::PublicIpAddress => one(Resource::PublicIpAddress(typed(value, &what)?)),
        Kind::ApplicationSecurityGroup => one(Resource::ApplicationSecurityGroup(typed(value, &what)?)),
        _ => Err(ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!("Resource type of '{what}' is not supported by Tessera."),
        )),
    }
}

/// Parses a topology in ARM JSON: an array of resources, or `{"resources": [...]}`, or
/// `{"value": [...]}` as list calls return.
pub fn from_arm_document(text: &str) -> Result<Vec<Resource>, ArmError> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| ArmError::bad_request("InvalidRequestFormat", format!("Cannot parse the JSON document: {e}")))?;
    let items = match doc {
        Value::Array(items) => items,
        Value::Object(mut map) => match map.remove("resources").or_else(|| map.remove("value")) {
            Some(Value::Array(items)) => items,
            _ => vec![Value::Object(map)],
        },
        _ => {
            return Err(invalid("a topology is an array of resources or {\"resources\": [...]}".into()));
        }
    };
    let mut out = Vec::new();
    for item in items {
        out.extend(from_arm_json(item)?);
    }
    Ok(out)
}
