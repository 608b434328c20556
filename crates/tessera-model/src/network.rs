//! Virtual networks, subnets, peerings (spec §1.1) and classic virtual networks.

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};
use crate::prefix::IpNet;

/// `Microsoft.Network/virtualNetworks`.
pub type VirtualNetwork = Tracked<VirtualNetworkProperties>;
/// `Microsoft.Network/virtualNetworks/subnets`.
pub type Subnet = Child<SubnetProperties>;
/// `Microsoft.Network/virtualNetworks/virtualNetworkPeerings`.
pub type Peering = Child<PeeringProperties>;
/// `Microsoft.ClassicNetwork/virtualNetworks` (legacy deployment model).
pub type ClassicVirtualNetwork = Tracked<ClassicVirtualNetworkProperties>;

/// `{"addressPrefixes": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressSpace {
    /// CIDR prefixes.
    #[serde(default, deserialize_with = "crate::prefix::cidr::list")]
    pub address_prefixes: Vec<IpNet>,
}

impl AddressSpace {
    /// An address space of the given prefixes.
    pub fn of(prefixes: Vec<IpNet>) -> Self {
        AddressSpace { address_prefixes: prefixes }
    }
}

/// Virtual network encryption settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// Whether encryption is on.
    pub enabled: bool,
    /// `DropUnencrypted` or `AllowUnencrypted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<String>,
}

/// BGP communities of a virtual network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpCommunities {
    /// e.g. `12076:20022`.
    pub virtual_network_community: String,
    /// Read-only regional community.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_community: Option<String>,
}

/// DHCP options (DNS servers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpOptions {
    /// Custom DNS server addresses.
    #[serde(default)]
    pub dns_servers: Vec<String>,
}

/// Properties of a virtual network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetworkProperties {
    /// Address space.
    #[serde(default)]
    pub address_space: AddressSpace,
    /// Subnets (embedded children).
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// Peering links (embedded children; never changed through a VNet PUT).
    #[serde(default)]
    pub virtual_network_peerings: Vec<Peering>,
    /// DNS servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_options: Option<DhcpOptions>,
    /// Encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// BGP communities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_communities: Option<BgpCommunities>,
    /// The idle timeout of TCP flows between its VMs, 4 to 30 minutes (absent: 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_timeout_in_minutes: Option<u32>,
    /// Read-only GUID, stable for the life of the VNet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_guid: Option<String>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a subnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetProperties {
    /// The prefix (single).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::prefix::cidr::optional")]
    pub address_prefix: Option<IpNet>,
    /// Several prefixes (dual stack).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::prefix::cidr::list")]
    pub address_prefixes: Vec<IpNet>,
    /// Associated NSG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<SubResource>,
    /// Associated route table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_table: Option<SubResource>,
    /// Read-only: NIC IP configurations in this subnet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_configurations: Vec<SubResource>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

impl SubnetProperties {
    /// All prefixes of the subnet, whichever field holds them.
    pub fn prefixes(&self) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self.address_prefix.iter().copied().collect();
        for p in &self.address_prefixes {
            if !out.contains(p) {
                out.push(*p);
            }
        }
        out
    }
}

crate::arm_enum! {
    /// `peeringState` (spec §1.2).
    PeeringState {
        /// Only this link exists.
        Initiated = "Initiated",
        /// Both links exist.
        Connected = "Connected",
        /// The partner link or the remote VNet was deleted.
        Disconnected = "Disconnected",
    }
}

crate::arm_enum! {
    /// `peeringSyncLevel` (spec §1.3).
    PeeringSyncLevel {
        /// Both links carry the current spaces.
        FullyInSync = "FullyInSync",
        /// The remote link has not synced this VNet's current space.
        RemoteNotInSync = "RemoteNotInSync",
        /// This link has not synced the remote VNet's current space.
        LocalNotInSync = "LocalNotInSync",
        /// Both.
        LocalAndRemoteNotInSync = "LocalAndRemoteNotInSync",
    }
}

/// Properties of a peering link (spec §1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeeringProperties {
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// Read-only; equal on both links (the XOR of the two VNet GUIDs, azure-observed O5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_guid: Option<String>,
    /// Subnet peering: local subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_subnet_names: Vec<String>,
    /// Subnet peering: remote subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_subnet_names: Vec<String>,
    /// Read-only link state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peering_state: Option<PeeringState>,
    /// Read-only sync level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peering_sync_level: Option<PeeringSyncLevel>,
    /// The VNet this link points at.
    pub remote_virtual_network: Option<SubResource>,
    /// Whether the remote space joins the local `VirtualNetwork` tag (default true).
    #[serde(default = "yes")]
    pub allow_virtual_network_access: bool,
    /// Whether traffic not originating in the remote space may enter through this link.
    #[serde(default)]
    pub allow_forwarded_traffic: bool,
    /// Lets the peer use this VNet's gateway.
    #[serde(default)]
    pub allow_gateway_transit: bool,
    /// This VNet uses the peer's gateway.
    #[serde(default)]
    pub use_remote_gateways: bool,
    /// Accepted and echoed; does not bypass `RemoteVnetHasNoGateways`.
    #[serde(default)]
    pub do_not_verify_remote_gateways: bool,
    /// False means subnet peering.
    #[serde(default = "yes")]
    pub peer_complete_vnets: bool,
    /// Peers only IPv6 prefixes of the named subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_only_i_pv6_peering: Option<bool>,
    /// Read-only: the remote gateway in use (only while `useRemoteGateways`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_gateways: Vec<SubResource>,
    /// Read-only: remote prefixes as peered (as of the last sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address_space: Option<AddressSpace>,
    /// Read-only (subnet peering): local prefixes as peered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_address_space: Option<AddressSpace>,
    /// Read-only (subnet peering): local prefixes now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_virtual_network_address_space: Option<AddressSpace>,
    /// Read-only: the remote VNet's current space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_virtual_network_address_space: Option<AddressSpace>,
    /// Read-only: mirrors the remote VNet's encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_virtual_network_encryption: Option<Encryption>,
    /// Read-only: the remote VNet's BGP communities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_bgp_communities: Option<BgpCommunities>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

fn yes() -> bool {
    true
}

impl Default for PeeringProperties {
    fn default() -> Self {
        PeeringProperties {
            unmodelled: Default::default(),
            provisioning_state: None,
            resource_guid: None,
            local_subnet_names: Vec::new(),
            remote_subnet_names: Vec::new(),
            peering_state: None,
            peering_sync_level: None,
            remote_virtual_network: None,
            allow_virtual_network_access: true,
            allow_forwarded_traffic: false,
            allow_gateway_transit: false,
            use_remote_gateways: false,
            do_not_verify_remote_gateways: false,
            peer_complete_vnets: true,
            enable_only_i_pv6_peering: None,
            remote_gateways: Vec::new(),
            remote_address_space: None,
            local_address_space: None,
            local_virtual_network_address_space: None,
            remote_virtual_network_address_space: None,
            remote_virtual_network_encryption: None,
            remote_bgp_communities: None,
        }
    }
}

/// A subnet of a classic VNet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassicSubnet {
    /// Name.
    pub name: String,
    /// Prefix.
    #[serde(deserialize_with = "crate::prefix::cidr::one")]
    pub address_prefix: IpNet,
}

/// Properties of a classic virtual network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassicVirtualNetworkProperties {
    /// Address space.
    #[serde(default)]
    pub address_space: AddressSpace,
    /// Subnets.
    #[serde(default)]
    pub subnets: Vec<ClassicSubnet>,
    /// Whether a (classic) gateway exists; classic gateways cannot serve gateway transit (G4).
    #[serde(default)]
    pub has_gateway: bool,
}
