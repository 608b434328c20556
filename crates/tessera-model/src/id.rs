//! Typed Azure Resource Manager resource identifiers.
//!
//! An ARM id such as
//! `/subscriptions/S/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub/subnets/a`
//! is parsed once into a [`ResourceId`]. ARM compares ids case-insensitively, so equality,
//! ordering and hashing use a lower-cased key while the original spelling is kept for display.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The resource types Tessera knows, with their ARM type strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `Microsoft.Network/virtualNetworks`
    VirtualNetwork,
    /// `Microsoft.Network/virtualNetworks/subnets`
    Subnet,
    /// `Microsoft.Network/virtualNetworks/virtualNetworkPeerings`
    Peering,
    /// `Microsoft.ClassicNetwork/virtualNetworks`
    ClassicVirtualNetwork,
    /// `Microsoft.Network/networkSecurityGroups`
    NetworkSecurityGroup,
    /// `Microsoft.Network/networkSecurityGroups/securityRules`
    SecurityRule,
    /// `Microsoft.Network/routeTables`
    RouteTable,
    /// `Microsoft.Network/routeTables/routes`
    Route,
    /// `Microsoft.Network/networkInterfaces`
    NetworkInterface,
    /// `Microsoft.Network/networkInterfaces/ipConfigurations`
    IpConfiguration,
    /// `Microsoft.Compute/virtualMachines`
    VirtualMachine,
    /// `Microsoft.Network/virtualNetworkGateways`
    VirtualNetworkGateway,
    /// `Microsoft.Network/localNetworkGateways`
    LocalNetworkGateway,
    /// `Microsoft.Network/connections`
    Connection,
    /// `Microsoft.Network/loadBalancers`
    LoadBalancer,
    /// `Microsoft.Network/publicIPAddresses`
    PublicIpAddress,
    /// `Microsoft.Network/applicationSecurityGroups`
    ApplicationSecurityGroup,
    /// `Microsoft.Network/loadBalancers/frontendIPConfigurations`
    FrontendIpConfiguration,
    /// `Microsoft.Network/loadBalancers/backendAddressPools`
    BackendAddressPool,
    /// `Microsoft.Network/loadBalancers/loadBalancingRules`
    LoadBalancingRule,
    /// `Microsoft.Network/loadBalancers/probes`
    Probe,
    /// `Microsoft.Network/networkWatchers`
    NetworkWatcher,
    /// Any other type: kept verbatim, never interpreted.
    Other,
}

const KINDS: &[(Kind, &str)] = &[
    (Kind::VirtualNetwork, "Microsoft.Network/virtualNetworks"),
    (Kind::Subnet, "Microsoft.Network/virtualNetworks/subnets"),
    (Kind::Peering, "Microsoft.Network/virtualNetworks/virtualNetworkPeerings"),
    (Kind::ClassicVirtualNetwork, "Microsoft.ClassicNetwork/virtualNetworks"),
    (Kind::NetworkSecurityGroup, "Microsoft.Network/networkSecurityGroups"),
    (Kind::SecurityRule, "Microsoft.Network/networkSecurityGroups/securityRules"),
    (Kind::RouteTable, "Microsoft.Network/routeTables"),
    (Kind::Route, "Microsoft.Network/routeTables/routes"),
    (Kind::NetworkInterface, "Microsoft.Network/networkInterfaces"),
    (Kind::IpConfiguration, "Microsoft.Network/networkInterfaces/ipConfigurations"),
    (Kind::VirtualMachine, "Microsoft.Compute/virtualMachines"),
    (Kind::VirtualNetworkGateway, "Microsoft.Network/virtualNetworkGateways"),
    (Kind::LocalNetworkGateway, "Microsoft.Network/localNetworkGateways"),
    (Kind::Connection, "Microsoft.Network/connections"),
    (Kind::LoadBalancer, "Microsoft.Network/loadBalancers"),
    (Kind::PublicIpAddress, "Microsoft.Network/publicIPAddresses"),
    (Kind::ApplicationSecurityGroup, "Microsoft.Network/applicationSecurityGroups"),
    (Kind::FrontendIpConfiguration, "Microsoft.Network/loadBalancers/frontendIPConfigurations"),
    (Kind::BackendAddressPool, "Microsoft.Network/loadBalancers/backendAddressPools"),
    (Kind::LoadBalancingRule, "Microsoft.Network/loadBalancers/loadBalancingRules"),
    (Kind::Probe, "Microsoft.Network/loadBalancers/probes"),
    (Kind::NetworkWatcher, "Microsoft.Network/networkWatchers"),
];

impl Kind {
    /// The ARM `type` string, e.g. `Microsoft.Network/virtualNetworks`.
    pub fn arm_type(self) -> &'static str {
        KINDS.iter().find(|(k, _)| *k == self).map_or("", |(_, t)| t)
    }

    /// Looks a type string up, case-insensitively.
    pub fn from_arm_type(s: &str) -> Kind {
        KINDS.iter().find(|(_, t)| t.eq_ignore_ascii_case(s)).map_or(Kind::Other, |(k, _)| *k)
    }
}

/// Why a string is not a resource id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not a valid resource id: {reason}")]
pub struct IdError {
    /// The text that failed to parse.
    pub id: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// A parsed ARM resource id, compared case-insensitively. Cloning is cheap (shared).
#[derive(Clone)]
pub struct ResourceId(Arc<IdParts>);

struct IdParts {
    text: String,
    key: String,
    /// A hash of `key`, computed once: ids key many hash maps on hot paths.
    digest: u64,
    subscription: String,
    resource_group: String,
    namespace: String,
    /// (type segment, name) pairs after the namespace: `[("virtualNetworks","hub"),("subnets","a")]`.
    segments: Vec<(String, String)>,
    kind: Kind,
}

impl ResourceId {
    /// Parses an id of a resource in a resource group.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let err = |reason| IdError { id: s.to_string(), reason };
        let trimmed = s.trim_end_matches('/');
        let parts: Vec<&str> = trimmed.split('/').collect();
        if parts.len() < 9 || !parts[0].is_empty() {
            return Err(err("expected /subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}"));
        }
        if !parts[1].eq_ignore_ascii_case("subscriptions")
            || !parts[3].eq_ignore_ascii_case("resourceGroups")
            || !parts[5].eq_ignore_ascii_case("providers")
        {
            return Err(err("expected /subscriptions/{sub}/resourceGroups/{rg}/providers/..."));
        }
        if parts.iter().skip(1).any(|p| p.is_empty()) {
            return Err(err("empty segment"));
        }
        let rest = &parts[7..];
        if !rest.len().is_multiple_of(2) {
            return Err(err("a resource type without a name"));
        }
        let segments: Vec<(String, String)> = rest.chunks(2).map(|c| (c[0].to_string(), c[1].to_string())).collect();
        let type_string =
            std::iter::once(parts[6]).chain(segments.iter().map(|(t, _)| t.as_str())).collect::<Vec<_>>().join("/");
        let key = trimmed.to_ascii_lowercase();
        Ok(ResourceId(Arc::new(IdParts {
            digest: digest(&key),
            key,
            text: trimmed.to_string(),
            subscription: parts[2].to_string(),
            resource_group: parts[4].to_string(),
            namespace: parts[6].to_string(),
            kind: Kind::from_arm_type(&type_string),
            segments,
        })))
    }

    /// Builds the id of a top-level resource.
    pub fn top(subscription: &str, resource_group: &str, kind: Kind, name: &str) -> Self {
        let arm_type = kind.arm_type();
        let (namespace, type_segment) = arm_type.split_once('/').unwrap_or((arm_type, ""));
        let text = format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{arm_type}/{name}");
        let key = text.to_ascii_lowercase();
        ResourceId(Arc::new(IdParts {
            digest: digest(&key),
            key,
            text,
            subscription: subscription.to_string(),
            resource_group: resource_group.to_string(),
            namespace: namespace.to_string(),
            segments: vec![(type_segment.to_string(), name.to_string())],
            kind,
        }))
    }

    /// The id of a child: `self/{type_segment}/{name}`. Never fails; an invalid name (empty,
    /// or with a `/`) is left for name validation to refuse.
    pub fn child(&self, type_segment: &str, name: &str) -> Self {
        let text = format!("{}/{type_segment}/{name}", self.0.text);
        let mut segments = self.0.segments.clone();
        segments.push((type_segment.to_string(), name.to_string()));
        let type_string = std::iter::once(self.0.namespace.as_str())
            .chain(segments.iter().map(|(t, _)| t.as_str()))
            .collect::<Vec<_>>()
            .join("/");
        let key = text.to_ascii_lowercase();
        ResourceId(Arc::new(IdParts {
            digest: digest(&key),
            key,
            text,
            subscription: self.0.subscription.clone(),
            resource_group: self.0.resource_group.clone(),
            namespace: self.0.namespace.clone(),
            kind: Kind::from_arm_type(&type_string),
            segments,
        }))
    }

    /// The parent resource of a child id (`None` for a top-level resource).
    pub fn parent(&self) -> Option<Self> {
        if self.0.segments.len() < 2 {
            return None;
        }
        let cut = self.0.text.rfind('/')?;
        let cut = self.0.text[..cut].rfind('/')?;
        Self::parse(&self.0.text[..cut]).ok()
    }

    /// The resource kind.
    pub fn kind(&self) -> Kind {
        self.0.kind
    }
    /// The last name segment.
    pub fn name(&self) -> &str {
        self.0.segments.last().map_or("", |(_, n)| n.as_str())
    }
    /// The subscription id segment.
    pub fn subscription(&self) -> &str {
        &self.0.subscription
    }
    /// The resource group segment.
    pub fn resource_group(&self) -> &str {
        &self.0.resource_group
    }
    /// The provider namespace, e.g. `Microsoft.Network`.
    pub fn namespace(&self) -> &str {
        &self.0.namespace
    }
    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0.text
    }
    /// A stable 64-bit digest of the id (FNV-1a of its lower-cased key): the same in every
    /// process and version, for names derived from an id.
    pub fn digest(&self) -> u64 {
        self.0.digest
    }
    /// The lower-cased comparison key.
    pub fn key(&self) -> &str {
        &self.0.key
    }
    /// `Microsoft.Network/virtualNetworks/hub` style short form used in ARM messages.
    pub fn type_and_name(&self) -> String {
        format!("{}/{}", self.0.kind.arm_type(), self.name())
    }
}

impl PartialEq for ResourceId {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.digest == other.0.digest && self.0.key == other.0.key)
    }
}
impl Eq for ResourceId {}
/// FNV-1a over the lower-cased key.
fn digest(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Hash for ResourceId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.digest);
    }
}
impl PartialOrd for ResourceId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ResourceId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.key.cmp(&other.0.key)
    }
}
impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}
impl fmt::Debug for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceId({})", self.0.text)
    }
}
impl std::str::FromStr for ResourceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
impl Serialize for ResourceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.text)
    }
}
impl<'de> Deserialize<'de> for ResourceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResourceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_child_ids_and_compares_case_insensitively() {
        let a = ResourceId::parse(
            "/subscriptions/S1/resourceGroups/RG/providers/Microsoft.Network/virtualNetworks/Hub/subnets/Default",
        )
        .expect("valid id");
        let b = ResourceId::parse(
            "/SUBSCRIPTIONS/s1/resourcegroups/rg/PROVIDERS/microsoft.network/VIRTUALNETWORKS/hub/SUBNETS/default",
        )
        .expect("valid id");
        assert_eq!(a, b);
        assert_eq!(a.kind(), Kind::Subnet);
        assert_eq!(a.name(), "Default");
        assert_eq!(a.parent().expect("parent").name(), "Hub");
        assert_eq!(a.parent().expect("parent").kind(), Kind::VirtualNetwork);
        assert_eq!(a.to_string(), a.as_str());
    }

    #[test]
    fn built_ids_equal_parsed_ids() {
        let vnet = ResourceId::top("s", "rg", Kind::VirtualNetwork, "hub");
        let parsed =
            ResourceId::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub")
                .expect("valid id");
        assert_eq!(vnet, parsed);
        assert_eq!(vnet.kind(), Kind::VirtualNetwork);
        let link = vnet.child("virtualNetworkPeerings", "to-spoke");
        assert_eq!(link.kind(), Kind::Peering);
        assert_eq!(link.name(), "to-spoke");
        assert_eq!(link.parent(), Some(vnet.clone()));
        assert_eq!(ResourceId::parse(link.as_str()).expect("valid"), link);
        let unnamed = vnet.child("subnets", "");
        assert_eq!(unnamed.name(), "");
        assert_eq!(unnamed.parent(), Some(vnet));
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "/subscriptions/s",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks",
            "subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/x",
            "/subscriptions//resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/x",
        ] {
            assert!(ResourceId::parse(bad).is_err(), "{bad}");
        }
    }
}
