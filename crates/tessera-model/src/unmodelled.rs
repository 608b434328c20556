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

    /// Every resource reference inside, as (property path, id): any string — a value, an
    /// array item or a key, under any name — that names something under `/subscriptions/`.
    pub fn references(&self) -> Vec<(String, String)> {
        fn is_id(s: &str) -> bool {
            s.trim().get(..15).is_some_and(|p| p.eq_ignore_ascii_case("/subscriptions/"))
        }
        fn walk(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
            match v {
                Value::String(s) if is_id(s) => out.push((path.to_string(), s.trim().to_string())),
                Value::Object(m) => {
                    for (k, v) in m {
                        if is_id(k) {
                            out.push((path.to_string(), k.trim().to_string()));
                        }
                        walk(&format!("{path}.{k}"), v, out);
                    }
                }
                Value::Array(a) => {
                    for (i, v) in a.iter().enumerate() {
                        walk(&format!("{path}[{i}]"), v, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            if is_id(k) {
                out.push((String::new(), k.trim().to_string()));
            }
            walk(k, v, &mut out);
        }
        out
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
        assert_eq!(u.references(), Vec::new());
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "natGateway": {"id": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/n"},
        }))
        .expect("map");
        assert_eq!(u.references().into_iter().map(|(p, _)| p).collect::<Vec<_>>(), ["natGateway.id"]);
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "applicationSecurityGroups": [{"id": "/SUBSCRIPTIONS/x/resourceGroups/g/providers/Microsoft.Network/applicationSecurityGroups/a"}],
        }))
        .expect("map");
        assert_eq!(u.references().into_iter().map(|(p, _)| p).collect::<Vec<_>>(), ["applicationSecurityGroups[0].id"]);
        // Under any name, in arrays of strings, with spaces around, and as keys.
        let u: Unmodelled = serde_json::from_value(serde_json::json!({
            "diskResourceId": " /subscriptions/x/resourceGroups/g/providers/Microsoft.Compute/disks/d",
            "ids": ["/Subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/n"],
            "byId": {"/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/natGateways/m": true},
            "note": "not /subscriptions/ at the start",
        }))
        .expect("map");
        assert_eq!(u.references().len(), 3, "{:?}", u.references());
    }
}
