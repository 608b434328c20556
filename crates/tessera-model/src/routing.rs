//! Route tables and user-defined routes (spec §3.2).

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};

/// `Microsoft.Network/routeTables`.
pub type RouteTable = Tracked<RouteTableProperties>;
/// `Microsoft.Network/routeTables/routes`.
pub type Route = Child<RouteProperties>;

crate::arm_enum! {
    /// Next hop types of a user-defined route (U1). Peering and service-endpoint next hops are
    /// not among them (U2).
    RouteNextHopType {
        /// The VNet's (VPN) gateway.
        VirtualNetworkGateway = "VirtualNetworkGateway",
        /// Within the VNet.
        VnetLocal = "VnetLocal",
        /// The internet.
        Internet = "Internet",
        /// An appliance at `nextHopIpAddress`.
        VirtualAppliance = "VirtualAppliance",
        /// Drop.
        None = "None",
    }
}

/// Properties of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteProperties {
    /// A CIDR or a service tag.
    pub address_prefix: String,
    /// Next hop type.
    pub next_hop_type: RouteNextHopType,
    /// Only for `VirtualAppliance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_ip_address: Option<String>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a route table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTableProperties {
    /// Routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// When true, associated subnets get no gateway routes (U5).
    #[serde(default)]
    pub disable_bgp_route_propagation: bool,
    /// Read-only: associated subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubResource>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}
