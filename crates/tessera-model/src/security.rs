//! Network security groups and their rules (spec §4).

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};

/// `Microsoft.Network/networkSecurityGroups`.
pub type NetworkSecurityGroup = Tracked<NsgProperties>;
/// `Microsoft.Network/networkSecurityGroups/securityRules`.
pub type SecurityRule = Child<SecurityRuleProperties>;

crate::arm_enum! {
    /// Rule direction.
    Direction { Inbound = "Inbound", Outbound = "Outbound" }
}

crate::arm_enum! {
    /// Rule access.
    Access { Allow = "Allow", Deny = "Deny" }
}

crate::arm_enum! {
    /// Rule protocol (`*` is any).
    RuleProtocol {
        /// TCP.
        Tcp = "Tcp",
        /// UDP.
        Udp = "Udp",
        /// ICMP.
        Icmp = "Icmp",
        /// IPsec ESP.
        Esp = "Esp",
        /// IPsec AH.
        Ah = "Ah",
        /// Any protocol.
        Any = "*",
    }
}

/// Properties of a security rule (N1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityRuleProperties {
    /// At most 140 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Protocol.
    pub protocol: RuleProtocol,
    /// Single source port range (`*`, `80`, `1000-2000`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_port_range: Option<String>,
    /// Several source port ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_port_ranges: Vec<String>,
    /// Single destination port range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port_range: Option<String>,
    /// Several destination port ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_port_ranges: Vec<String>,
    /// Single source prefix, IP, service tag or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address_prefix: Option<String>,
    /// Several source prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_address_prefixes: Vec<String>,
    /// Single destination prefix, IP, service tag or `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_address_prefix: Option<String>,
    /// Several destination prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_address_prefixes: Vec<String>,
    /// Application security groups as the source (instead of prefixes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_application_security_groups: Vec<SubResource>,
    /// Application security groups as the destination (instead of prefixes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_application_security_groups: Vec<SubResource>,
    /// Allow or deny.
    pub access: Access,
    /// 100..=4096 for user rules; lower runs first.
    pub priority: u32,
    /// Direction.
    pub direction: Direction,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

impl SecurityRuleProperties {
    /// Source port ranges as written (the singular field first).
    pub fn source_ports(&self) -> Vec<String> {
        merge(&self.source_port_range, &self.source_port_ranges)
    }
    /// Destination port ranges as written.
    pub fn destination_ports(&self) -> Vec<String> {
        merge(&self.destination_port_range, &self.destination_port_ranges)
    }
    /// Source address prefixes as written.
    pub fn sources(&self) -> Vec<String> {
        merge(&self.source_address_prefix, &self.source_address_prefixes)
    }
    /// Destination address prefixes as written.
    pub fn destinations(&self) -> Vec<String> {
        merge(&self.destination_address_prefix, &self.destination_address_prefixes)
    }
}

fn merge(one: &Option<String>, many: &[String]) -> Vec<String> {
    one.iter().chain(many.iter()).cloned().collect()
}

/// Properties of an NSG.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NsgProperties {
    /// User rules.
    #[serde(default)]
    pub security_rules: Vec<SecurityRule>,
    /// Read-only: the six default rules (N2).
    #[serde(default)]
    pub default_security_rules: Vec<SecurityRule>,
    /// Read-only: associated subnets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubResource>,
    /// Read-only: associated NICs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<SubResource>,
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

/// The six default rules of every NSG (N2), in ARM order: name, priority, direction, source,
/// destination, access, description.
pub const DEFAULT_RULES: &[(&str, u32, Direction, &str, &str, Access, &str)] = &[
    (
        "AllowVnetInBound",
        65000,
        Direction::Inbound,
        "VirtualNetwork",
        "VirtualNetwork",
        Access::Allow,
        "Allow inbound traffic from all VMs in VNET",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        65001,
        Direction::Inbound,
        "AzureLoadBalancer",
        "*",
        Access::Allow,
        "Allow inbound traffic from azure load balancer",
    ),
    ("DenyAllInBound", 65500, Direction::Inbound, "*", "*", Access::Deny, "Deny all inbound traffic"),
    (
        "AllowVnetOutBound",
        65000,
        Direction::Outbound,
        "VirtualNetwork",
        "VirtualNetwork",
        Access::Allow,
        "Allow outbound traffic from all VMs to all VMs in VNET",
    ),
    (
        "AllowInternetOutBound",
        65001,
        Direction::Outbound,
        "*",
        "Internet",
        Access::Allow,
        "Allow outbound traffic from all VMs to Internet",
    ),
    ("DenyAllOutBound", 65500, Direction::Outbound, "*", "*", Access::Deny, "Deny all outbound traffic"),
];

/// Builds the default rules of an NSG as ARM child resources.
pub fn default_rules(nsg: &crate::id::ResourceId) -> Vec<SecurityRule> {
    DEFAULT_RULES
        .iter()
        .map(|(name, priority, direction, src, dst, access, description)| SecurityRule {
            id: Some(nsg.child("defaultSecurityRules", name)),
            name: (*name).to_string(),
            kind: Some("Microsoft.Network/networkSecurityGroups/defaultSecurityRules".into()),
            etag: None,
            properties: SecurityRuleProperties {
                source_application_security_groups: Vec::new(),
                destination_application_security_groups: Vec::new(),
                unmodelled: Default::default(),
                description: Some((*description).to_string()),
                protocol: RuleProtocol::Any,
                source_port_range: Some("*".into()),
                source_port_ranges: Vec::new(),
                destination_port_range: Some("*".into()),
                destination_port_ranges: Vec::new(),
                source_address_prefix: Some((*src).to_string()),
                source_address_prefixes: Vec::new(),
                destination_address_prefix: Some((*dst).to_string()),
                destination_address_prefixes: Vec::new(),
                access: *access,
                priority: *priority,
                direction: *direction,
                provisioning_state: Some(ProvisioningState::Succeeded),
            },
            unmodelled: Default::default(),
        })
        .collect()
}

/// `Microsoft.Network/applicationSecurityGroups`: a named set of NIC IP configurations that
/// security rules take as a source or a destination.
pub type ApplicationSecurityGroup = Tracked<AsgProperties>;

/// Properties of an application security group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsgProperties {
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
