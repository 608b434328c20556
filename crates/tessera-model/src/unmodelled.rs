//! Properties a client sends that Tessera does not model (`enableDdosProtection`,
//! `privateEndpointNetworkPolicies`, a NIC's `dnsSettings`, …): kept as sent and returned as
//! sent, so a client's own checks of what it wrote pass. They change no decision; one that
//! names another resource is refused by the engine (`UnsupportedReference`), because that
//! reference could be neither authorized nor honoured.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The unmodelled properties of one properties object (flattened into it on the wire).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Unmodelled(pub Map<String, Value>);

impl Unmodelled {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value` unless the client sent it (Azure's defaults).
    pub fn default_to(&mut self, key: &str, value: Value) {
        self.0.entry(key.to_string()).or_insert(value);
    }

    /// The first resource reference inside, as (property path, id): an `id` string starting
    /// with `/subscriptions/` at any depth.
    pub fn first_reference(&self) -> Option<(String, String)> {
        fn walk(path: &str, v: &Value) -> Option<(String, String)> {
            match v {
                Value::Object(m) => m.iter().find_map(|(k, v)| match (k.as_str(), v) {
                    ("id", Value::String(s)) if s.to_ascii_lowercase().starts_with("/subscriptions/") => {
                        Some((path.to_string(), s.clone()))
                    }
                    _ => walk(&format!("{path}.{k}"), v),
                }),
                Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| walk(&format!("{path}[{i}]"), v)),
                _ => None,
            }
        }
        self.0.iter().find_map(|(k, v)| walk(k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_found_at_any_depth_and_plain_values_are_not() {
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "enableDdosProtection": false,
            "encryption": {"enabled": true, "enforcement": "AllowUnencrypted"},
            "delegations": [],
        }))
        .expect("map");
        assert_eq!(u.first_reference(), None);
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "natGateway": {"id": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/n"},
        }))
        .expect("map");
        assert_eq!(u.first_reference().map(|(p, _)| p), Some("natGateway".to_string()));
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "applicationSecurityGroups": [{"id": "/SUBSCRIPTIONS/x/resourceGroups/g/providers/Microsoft.Network/applicationSecurityGroups/a"}],
        }))
        .expect("map");
        assert_eq!(u.first_reference().map(|(p, _)| p), Some("applicationSecurityGroups[0]".to_string()));
    }
}
