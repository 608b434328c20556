//! Public IP addresses (`Microsoft.Network/publicIPAddresses`): Basic or Standard, Static or
//! Dynamic, IPv4 or IPv6, an address from the server's public pool, attached to one NIC IP
//! configuration or gateway IP configuration at a time.

use serde::{Deserialize, Serialize};

use crate::compute::{AllocationMethod, IpVersion};
use crate::envelope::{ProvisioningState, SubResource, Tracked};

/// `Microsoft.Network/publicIPAddresses`, with its SKU beside `properties`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddress {
    /// The resource.
    #[serde(flatten)]
    pub resource: Tracked<PublicIpProperties>,
    /// `Basic` or `Standard` (Basic when absent, as ARM does).
    #[serde(default)]
    pub sku: PublicIpSku,
}

crate::arm_enum! {
    /// Public IP SKU names.
    PublicIpSkuName { Basic = "Basic", Standard = "Standard" }
}

/// `{"name": "Standard", "tier": "Regional"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicIpSku {
    /// SKU name.
    pub name: PublicIpSkuName,
    /// `Regional` (or `Global`), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

impl Default for PublicIpSku {
    fn default() -> Self {
        PublicIpSku { name: PublicIpSkuName::Basic, tier: None }
    }
}

/// Properties of a public IP address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpProperties {
    /// Static (allocated when created) or Dynamic (allocated while attached).
    #[serde(rename = "publicIPAllocationMethod", default, skip_serializing_if = "Option::is_none")]
    pub public_ip_allocation_method: Option<AllocationMethod>,
    /// IPv4 or IPv6.
    #[serde(rename = "publicIPAddressVersion", default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address_version: Option<IpVersion>,
    /// Read-only: the address, from the server's public pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// TCP idle timeout, 4 to 30 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_in_minutes: Option<u32>,
    /// Read-only: the IP configuration it is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_configuration: Option<SubResource>,
    /// Read-only GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_guid: Option<String>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}
