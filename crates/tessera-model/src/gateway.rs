//! Virtual network gateways, local network gateways and connections (spec §6).

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};
use crate::network::AddressSpace;
use crate::prefix::IpNet;

/// `Microsoft.Network/virtualNetworkGateways`.
pub type VirtualNetworkGateway = Tracked<GatewayProperties>;
/// `Microsoft.Network/localNetworkGateways`.
pub type LocalNetworkGateway = Tracked<LocalGatewayProperties>;
/// `Microsoft.Network/connections`.
pub type Connection = Tracked<ConnectionProperties>;

crate::arm_enum! {
    /// `gatewayType`.
    #[derive(Default)]
    GatewayType {
        /// VPN (the default).
        #[default]
        Vpn = "Vpn",
        /// ExpressRoute.
        ExpressRoute = "ExpressRoute",
        /// Not a virtual network gateway.
        LocalGateway = "LocalGateway",
    }
}

crate::arm_enum! {
    /// `vpnType`.
    VpnType { RouteBased = "RouteBased", PolicyBased = "PolicyBased" }
}

crate::arm_enum! {
    /// `connectionType`.
    ConnectionType { IPsec = "IPsec", Vnet2Vnet = "Vnet2Vnet", ExpressRoute = "ExpressRoute", VPNClient = "VPNClient" }
}

/// `{"name": ..., "tier": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sku {
    /// e.g. `VpnGw1`, `Basic`, `Standard`.
    #[serde(default)]
    pub name: String,
    /// Tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// A gateway IP configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayIpConfigurationProperties {
    /// Must be the VNet's `GatewaySubnet` (GWY1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// The gateway's private address in GatewaySubnet; the engine assigns one when absent.
    #[serde(rename = "privateIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    /// The public IP address attached to it.
    #[serde(rename = "publicIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<SubResource>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// BGP settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpSettings {
    /// Autonomous system number.
    #[serde(default)]
    pub asn: u32,
    /// BGP peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_peering_address: Option<String>,
    /// What the client sent that Tessera does not model (`peerWeight`, `bgpPeeringAddresses`),
    /// returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a virtual network gateway.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayProperties {
    /// Vpn or ExpressRoute.
    #[serde(default = "default_gateway_type")]
    pub gateway_type: GatewayType,
    /// RouteBased or PolicyBased (VPN only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn_type: Option<VpnType>,
    /// SKU.
    #[serde(default)]
    pub sku: Sku,
    /// IP configurations (the GatewaySubnet).
    #[serde(default)]
    pub ip_configurations: Vec<Child<GatewayIpConfigurationProperties>>,
    /// BGP enabled.
    #[serde(default)]
    pub enable_bgp: bool,
    /// BGP settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_settings: Option<BgpSettings>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

fn default_gateway_type() -> GatewayType {
    GatewayType::Vpn
}

/// Properties of a local network gateway (an on-premises site).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalGatewayProperties {
    /// Site prefixes routed statically.
    #[serde(default)]
    pub local_network_address_space: AddressSpace,
    /// The site's public address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ip_address: Option<String>,
    /// BGP settings of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_settings: Option<BgpSettings>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionProperties {
    /// IPsec (site to site), Vnet2Vnet or ExpressRoute.
    pub connection_type: ConnectionType,
    /// The Azure-side gateway.
    pub virtual_network_gateway1: SubResource,
    /// The other VNet's gateway (Vnet2Vnet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_network_gateway2: Option<SubResource>,
    /// The on-premises site (IPsec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_network_gateway2: Option<SubResource>,
    /// Learn routes by BGP.
    #[serde(default)]
    pub enable_bgp: bool,
    /// Tessera extension: the prefixes the far side announces by BGP on this connection
    /// (the routes Azure would learn from the on-premises router or ExpressRoute circuit).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::prefix::cidr::list")]
    pub bgp_learned_prefixes: Vec<IpNet>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}
