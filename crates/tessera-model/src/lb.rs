//! Internal load balancers (spec §2.3).

use serde::{Deserialize, Serialize};

use crate::envelope::{Child, ProvisioningState, SubResource, Tracked};

/// `Microsoft.Network/loadBalancers`, with its SKU beside `properties`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// The resource.
    #[serde(flatten)]
    pub resource: Tracked<LoadBalancerProperties>,
    /// `Basic` or `Standard` (default Basic, as ARM does).
    #[serde(default)]
    pub sku: LbSku,
}

crate::arm_enum! {
    /// Load balancer SKU names.
    LbSkuName { Basic = "Basic", Standard = "Standard", Gateway = "Gateway" }
}

/// `{"name": "Standard"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LbSku {
    /// SKU name.
    pub name: LbSkuName,
    /// `Regional` (the only tier offered), kept as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

impl Default for LbSku {
    fn default() -> Self {
        LbSku { name: LbSkuName::Basic, tier: None }
    }
}

/// Refuses, in a request, a load balancer of a kind Tessera cannot carry traffic for: a gateway
/// load balancer (SKU `Gateway`, tunnel interfaces to NVAs) or a cross-region one (tier
/// `Global`, whose backends are other load balancers). Stored documents are never checked again.
pub fn refuse_unoffered_sku(value: &serde_json::Value) -> Result<(), crate::ArmError> {
    let id = value.get("id").and_then(serde_json::Value::as_str).unwrap_or_default();
    if crate::ResourceId::parse(id).map(|i| i.kind()) != Ok(crate::Kind::LoadBalancer) {
        return Ok(());
    }
    let sku = &value["sku"];
    let name = sku["name"].as_str().unwrap_or("Basic");
    let tier = sku["tier"].as_str().unwrap_or("Regional");
    if name.eq_ignore_ascii_case("Gateway") || !tier.eq_ignore_ascii_case("Regional") {
        return Err(crate::ArmError::bad_request(
            "LoadBalancerSkuNotSupported",
            format!(
                "Load balancer {id} asks for SKU {name} in tier {tier}; Tessera offers internal load balancers \
                 of SKU Basic or Standard in the Regional tier."
            ),
        )
        .target(id));
    }
    Ok(())
}

/// A frontend IP configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendProperties {
    /// The frontend address.
    #[serde(rename = "privateIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub private_ip_address: Option<String>,
    /// The subnet of the frontend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// A public frontend's address (public load balancers are refused).
    #[serde(rename = "publicIPAddress", default, skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<SubResource>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Backend pools, each with `properties` or without.
fn pools<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Child<BackendPoolProperties>>, D::Error> {
    let mut raw: Vec<serde_json::Value> = serde::Deserialize::deserialize(d)?;
    for pool in &mut raw {
        if let Some(o) = pool.as_object_mut() {
            o.entry("properties").or_insert_with(|| serde_json::json!({}));
        }
    }
    raw.into_iter().map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom)).collect()
}

/// A backend pool (members are NIC IP configurations that name it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendPoolProperties {
    /// Read-only: member IP configurations.
    #[serde(rename = "backendIPConfigurations", default, skip_serializing_if = "Vec::is_empty")]
    pub backend_ip_configurations: Vec<SubResource>,
    /// What the client sent that Tessera does not model (`syncMode`, …), returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

crate::arm_enum! {
    /// Load-balancing rule protocol.
    LbProtocol { Tcp = "Tcp", Udp = "Udp", All = "All" }
}

/// A load-balancing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbRuleProperties {
    /// The frontend.
    #[serde(rename = "frontendIPConfiguration")]
    pub frontend_ip_configuration: SubResource,
    /// The backend pool.
    pub backend_address_pool: SubResource,
    /// The probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<SubResource>,
    /// Protocol.
    pub protocol: LbProtocol,
    /// Frontend port (0 with `All` = HA ports).
    pub frontend_port: u16,
    /// Backend port.
    pub backend_port: u16,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// A health probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeProperties {
    /// `Tcp`, `Http` or `Https`.
    pub protocol: String,
    /// Port probed.
    pub port: u16,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

/// Properties of a load balancer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerProperties {
    /// Frontends.
    #[serde(rename = "frontendIPConfigurations", default)]
    pub frontend_ip_configurations: Vec<Child<FrontendProperties>>,
    /// Backend pools (a pool sent without `properties`, as `az network lb create` sends
    /// it, has none to set).
    #[serde(default, deserialize_with = "pools")]
    pub backend_address_pools: Vec<Child<BackendPoolProperties>>,
    /// Rules.
    #[serde(default)]
    pub load_balancing_rules: Vec<Child<LbRuleProperties>>,
    /// Probes.
    #[serde(default)]
    pub probes: Vec<Child<ProbeProperties>>,
    /// Read-only provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<ProvisioningState>,
    /// What the client sent that Tessera does not model, returned as sent.
    #[serde(flatten, default, skip_serializing_if = "crate::unmodelled::Unmodelled::is_empty")]
    pub unmodelled: crate::unmodelled::Unmodelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `az network lb create` sends its backend pool as `{"name": "…"}` (issue 15, point 5).
    #[test]
    fn a_backend_pool_without_properties_is_read() {
        let p: LoadBalancerProperties = serde_json::from_value(serde_json::json!({
            "backendAddressPools": [{"name": "web"}, {"name": "api", "properties": {}}]
        }))
        .expect("pools without properties");
        let names: Vec<&str> = p.backend_address_pools.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["web", "api"]);
        assert!(p.backend_address_pools.iter().all(|b| b.properties == BackendPoolProperties::default()));
        let bad = serde_json::from_value::<LoadBalancerProperties>(serde_json::json!({
            "backendAddressPools": [{"name": "web", "properties": {"backendIPConfigurations": 7}}]
        }));
        assert!(bad.is_err(), "a pool with properties of the wrong shape is still refused");
    }
}
