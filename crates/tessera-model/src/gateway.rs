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
    /// Tessera extension, read-only: what the gateway's running instance reports (tunnels,
    /// BGP peers, learned and advertised routes). A client's value is ignored.
    #[serde(rename = "tesseraInstance", default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<GatewayInstance>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// What a gateway's instance (its namespace, IPsec and BGP daemons on a host) reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayInstance {
    /// The host it runs on.
    #[serde(default)]
    pub host: String,
    /// Each connection's tunnel.
    #[serde(default)]
    pub tunnels: Vec<TunnelStatus>,
    /// BGP sessions (`getBgpPeerStatus`).
    #[serde(default)]
    pub bgp_peers: Vec<BgpPeerStatus>,
    /// Routes learned from BGP peers (`getLearnedRoutes`).
    #[serde(default)]
    pub learned_routes: Vec<GatewayRoute>,
    /// Routes advertised to BGP peers (`getAdvertisedRoutes`).
    #[serde(default)]
    pub advertised_routes: Vec<GatewayRoute>,
}

/// The tunnel of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TunnelStatus {
    /// The connection.
    pub connection: crate::ResourceId,
    /// `Connected` (IKE SA established), `Connecting` or `NotConnected`.
    pub state: String,
}

/// One BGP session, in `BgpPeerStatus` shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpPeerStatus {
    /// The gateway's address.
    #[serde(default)]
    pub local_address: String,
    /// The peer's address.
    #[serde(default)]
    pub neighbor: String,
    /// The peer's ASN.
    #[serde(default)]
    pub asn: u32,
    /// `Unknown`, `Stopped`, `Idle`, `Connecting` or `Connected`.
    #[serde(default)]
    pub state: String,
    /// Routes received from the peer.
    #[serde(default)]
    pub routes_received: u64,
}

/// One route, in `GatewayRoute` shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRoute {
    /// The gateway's address.
    #[serde(default)]
    pub local_address: String,
    /// The prefix.
    pub network: IpNet,
    /// Its next hop.
    #[serde(default)]
    pub next_hop: String,
    /// The peer it was learned from (or advertised to).
    #[serde(default)]
    pub source_peer: String,
    /// `EBgp`, `IBgp`, `Network` or `Static`.
    #[serde(default)]
    pub origin: String,
    /// The AS path.
    #[serde(default)]
    pub as_path: String,
    /// Weight.
    #[serde(default)]
    pub weight: u32,
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
    /// The IPsec pre-shared key (IKEv2), returned as sent as Azure does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_key: Option<String>,
    /// Read-only: the tunnel's state as the gateway's instance reports it (`Unknown` until it
    /// runs, `Connecting`, `Connected`, `NotConnected`). A client's value is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_status: Option<String>,
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
