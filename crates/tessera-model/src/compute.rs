//! Network interfaces and virtual machines.

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};

/// `Microsoft.Network/networkInterfaces`.
pub type NetworkInterface = Tracked<NicProperties>;
/// `Microsoft.Network/networkInterfaces/ipConfigurations`.
pub type IpConfiguration = Child<IpConfigurationProperties>;
/// `Microsoft.Compute/virtualMachines`.
pub type VirtualMachine = Tracked<VmProperties>;

crate::arm_enum! {
    /// How a private IP is assigned.
    AllocationMethod { Static = "Static", Dynamic = "Dynamic" }
}

crate::arm_enum! {
    /// IP version of an IP configuration.
    IpVersion { IPv4 = "IPv4", IPv6 = "IPv6" }
}

/// Properties of a NIC IP configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpConfigurationProperties {
    /// The private address; assigned by the engine when `Dynamic` and absent.
    #[serde(rename = "privateIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    /// Static or Dynamic.
    #[serde(rename = "privateIPAllocationMethod", default, skip_serializing_if = "Option::is_none")]
    pub private_ip_allocation_method: Option<AllocationMethod>,
    /// IPv4 or IPv6.
    #[serde(rename = "privateIPAddressVersion", default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address_version: Option<IpVersion>,
    /// The subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// Primary configuration of the NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Load balancer backend pools this configuration belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_backend_address_pools: Vec<SubResource>,
    /// The public IP address attached to it.
    #[serde(rename = "publicIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<SubResource>,
    /// The application security groups it belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub application_security_groups: Vec<SubResource>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a NIC.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicProperties {
    /// IP configurations.
    #[serde(default)]
    pub ip_configurations: Vec<IpConfiguration>,
    /// NIC-level NSG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_security_group: Option<SubResource>,
    /// Whether the NIC may send and receive traffic not addressed to it (appliances).
    #[serde(rename = "enableIPForwarding", default)]
    pub enable_ip_forwarding: bool,
    /// Read-only MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Read-only: the VM using this NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<SubResource>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// A NIC reference in a VM's network profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmNicReference {
    /// The NIC.
    pub id: crate::id::ResourceId,
    /// `{"primary": bool}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<VmNicReferenceProperties>,
}

/// Properties of a VM's NIC reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmNicReferenceProperties {
    /// Primary NIC of the VM.
    #[serde(default)]
    pub primary: bool,
}

/// A VM's network profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// The VM's NICs.
    #[serde(default)]
    pub network_interfaces: Vec<VmNicReference>,
}

/// Properties of a VM (only what networking needs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProperties {
    /// NICs.
    #[serde(default)]
    pub network_profile: NetworkProfile,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}
