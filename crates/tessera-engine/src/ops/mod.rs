//! Changes to the desired state. Each operation validates against the whole state first and
//! mutates only when every check passed, so a refusal leaves the state exactly as it was.

mod address;
pub(crate) mod asg;
pub(crate) mod common;
pub(crate) mod gateway;
mod lb;
mod nic;
mod nsg;
mod peering;
pub(crate) mod public_ip;
pub(crate) mod vnet;

use std::collections::BTreeSet;

use tessera_model::{ArmError, ArmResult, Kind, Resource, ResourceId};

pub use nsg::{AZURE_SERVICE_TAGS, SERVICE_TAGS, is_azure_service_tag, is_tag, parse_address, parse_port_range};
pub use vnet::GATEWAY_SUBNET;

use crate::limits::Limits;
use crate::state::State;

/// One change to the desired state.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Create or replace a resource.
    Put(Resource),
    /// Delete a resource by id.
    Delete(ResourceId),
    /// `PUT …/virtualNetworkPeerings/{name}?syncRemoteAddressSpace=true` (S4).
    SyncPeering(ResourceId),
    /// Delete a link and its partner in one action (the portal's behaviour, P3).
    DeletePeeringPair(ResourceId),
    /// What a gateway's running instance reports (tunnels, BGP peers, learned and advertised
    /// routes): learned routes become the gateway's routes (GW1, GWY3).
    ReportGateway {
        /// The gateway.
        id: ResourceId,
        /// The report.
        instance: tessera_model::gateway::GatewayInstance,
    },
    /// Move a VNet to another resource group and/or subscription (refused while peered, R6).
    MoveVnet {
        /// The VNet.
        id: ResourceId,
        /// The target subscription.
        subscription: String,
        /// The target resource group.
        resource_group: String,
    },
}

/// Applies one change; returns the VNets whose compiled programs must be rebuilt.
pub(crate) fn apply(st: &mut State, limits: &Limits, change: Change, seq: u64) -> ArmResult<BTreeSet<ResourceId>> {
    match change {
        Change::Put(r) => put(st, limits, r, seq),
        Change::Delete(id) => delete(st, limits, &id),
        Change::SyncPeering(id) => peering::sync(st, &id),
        Change::DeletePeeringPair(id) => peering::delete_pair(st, &id),
        Change::ReportGateway { id, instance } => gateway::report(st, &id, instance),
        Change::MoveVnet { id, subscription, resource_group } => {
            vnet::move_vnet(st, &id, &subscription, &resource_group)
        }
    }
}

/// The kind a resource's id must have.
fn expected_kind(r: &Resource) -> Option<Kind> {
    Some(match r {
        Resource::Subscription(_) => return None,
        Resource::VirtualNetwork(_) => Kind::VirtualNetwork,
        Resource::Subnet(_) => Kind::Subnet,
        Resource::Peering(_) => Kind::Peering,
        Resource::ClassicVirtualNetwork(_) => Kind::ClassicVirtualNetwork,
        Resource::NetworkSecurityGroup(_) => Kind::NetworkSecurityGroup,
        Resource::RouteTable(_) => Kind::RouteTable,
        Resource::NetworkInterface(_) => Kind::NetworkInterface,
        Resource::VirtualMachine(_) => Kind::VirtualMachine,
        Resource::VirtualNetworkGateway(_) => Kind::VirtualNetworkGateway,
        Resource::LocalNetworkGateway(_) => Kind::LocalNetworkGateway,
        Resource::Connection(_) => Kind::Connection,
        Resource::LoadBalancer(_) => Kind::LoadBalancer,
        Resource::PublicIpAddress(_) => Kind::PublicIpAddress,
        Resource::ApplicationSecurityGroup(_) => Kind::ApplicationSecurityGroup,
    })
}

fn put(st: &mut State, limits: &Limits, r: Resource, seq: u64) -> ArmResult<BTreeSet<ResourceId>> {
    if let (Some(kind), Some(id)) = (expected_kind(&r), r.id())
        && id.kind() != kind
    {
        return Err(ArmError::bad_request(
            "InvalidRequestContent",
            format!("The id {id} is not the id of a {}.", kind.arm_type()),
        ));
    }
    // Unmodelled properties are kept as sent, but one naming another resource could be neither
    // authorized (no join action is known for it) nor honoured.
    // A reference to a part of the resource itself (a load balancer's own frontend) is fine.
    let own = r.id().map(crate::document_of);
    for (at, u) in r.unmodelled() {
        for (path, id) in u.references() {
            let own_part = ResourceId::parse(&id).ok().map(|i| crate::document_of(&i)) == own && own.is_some();
            if !own_part {
                return Err(ArmError::bad_request(
                    "UnsupportedReference",
                    format!(
                        "{} references {id}, which Tessera cannot honour here; remove the property.",
                        if at.is_empty() { path } else { format!("{at}.{path}") }
                    ),
                ));
            }
        }
    }
    match r {
        Resource::Subscription(mut s) => {
            if s.subscription_id.trim().is_empty() {
                return Err(ArmError::bad_request("InvalidSubscriptionId", "A subscription needs a subscriptionId."));
            }
            s.id = format!("/subscriptions/{}", s.subscription_id);
            st.subscriptions.insert(s.subscription_id.to_ascii_lowercase(), s);
            Ok(BTreeSet::new())
        }
        Resource::VirtualNetwork(v) => vnet::put(st, limits, v, seq),
        Resource::Subnet(s) => vnet::put_subnet(st, limits, s),
        Resource::Peering(p) => peering::put(st, limits, p),
        Resource::ClassicVirtualNetwork(v) => vnet::put_classic(st, v),
        Resource::NetworkSecurityGroup(n) => nsg::put(st, limits, n, seq),
        Resource::RouteTable(t) => nsg::put_route_table(st, limits, t),
        Resource::NetworkInterface(n) => nic::put(st, limits, n),
        Resource::VirtualMachine(v) => nic::put_vm(st, v),
        Resource::VirtualNetworkGateway(g) => gateway::put(st, limits, g),
        Resource::LocalNetworkGateway(l) => gateway::put_local(st, l),
        Resource::Connection(c) => gateway::put_connection(st, c),
        Resource::LoadBalancer(l) => lb::put(st, l),
        Resource::PublicIpAddress(p) => public_ip::put(st, limits, p, seq),
        Resource::ApplicationSecurityGroup(a) => asg::put(st, limits, a, seq),
    }
}

fn delete(st: &mut State, limits: &Limits, id: &ResourceId) -> ArmResult<BTreeSet<ResourceId>> {
    match id.kind() {
        Kind::VirtualNetwork => vnet::delete(st, id),
        Kind::Subnet => vnet::delete_subnet(st, id),
        Kind::Peering => peering::delete(st, id),
        Kind::ClassicVirtualNetwork => vnet::delete_classic(st, id),
        Kind::NetworkSecurityGroup => nsg::delete(st, id),
        Kind::RouteTable => nsg::delete_route_table(st, id),
        Kind::NetworkInterface => nic::delete(st, limits, id),
        Kind::VirtualMachine => nic::delete_vm(st, id),
        Kind::VirtualNetworkGateway => gateway::delete(st, limits, id),
        Kind::LocalNetworkGateway => gateway::delete_local(st, id),
        Kind::Connection => gateway::delete_connection(st, id),
        Kind::LoadBalancer => lb::delete(st, id),
        Kind::PublicIpAddress => public_ip::delete(st, id),
        Kind::ApplicationSecurityGroup => asg::delete(st, id),
        _ => Err(ArmError::bad_request("UnsupportedResourceType", format!("Tessera cannot delete {id}."))),
    }
}
