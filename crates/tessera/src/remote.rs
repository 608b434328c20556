//! Talking to a running `tessera serve`: sign in with the credentials file it wrote, send a
//! topology through the ARM API (`apply`), fetch the state back, and call the ARM diagnostics.

use std::path::Path;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use tessera_agent::session::{Session, unreachable as failed};
use tessera_engine::{Engine, Limits, load};
use tessera_model::{ArmError, Kind, Resource, ResourceId};

/// The api-version this client speaks.
const NETWORK_API: &str = "2024-05-01";
const COMPUTE_API: &str = "2024-07-01";
const CLASSIC_API: &str = "2016-11-01";
const RESOURCES_API: &str = "2022-12-01";

/// Top-level types fetched to rebuild the state.
const TYPES: &[&str] = &[
    "Microsoft.Network/networkSecurityGroups",
    "Microsoft.Network/routeTables",
    "Microsoft.Network/localNetworkGateways",
    "Microsoft.Network/virtualNetworks",
    "Microsoft.Network/virtualNetworkGateways",
    "Microsoft.Network/loadBalancers",
    "Microsoft.Network/networkInterfaces",
    "Microsoft.Compute/virtualMachines",
    "Microsoft.Network/connections",
];

/// A signed-in client.
pub(crate) struct Remote {
    client: Client,
    endpoint: String,
    token: String,
    /// The default subscription.
    pub(crate) subscription: String,
}

fn api_version(path: &str) -> &'static str {
    let path = path.to_ascii_lowercase();
    if path.contains("/providers/microsoft.compute/") {
        COMPUTE_API
    } else if path.contains("/providers/microsoft.classicnetwork/") {
        CLASSIC_API
    } else {
        NETWORK_API
    }
}

impl Remote {
    /// Signs in with a credentials file (`<data dir>/credentials.json`).
    pub(crate) async fn connect(credentials: &Path) -> Result<Remote, ArmError> {
        let s = Session::sign_in(credentials).await?;
        Ok(Remote { client: s.client, endpoint: s.endpoint, token: s.token, subscription: s.subscription })
    }

    /// One ARM call; an ARM error body becomes the error.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value, Option<String>), ArmError> {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            if path.contains("api-version=") {
                format!("{}{path}", self.endpoint)
            } else {
                let sep = if path.contains('?') { '&' } else { '?' };
                format!("{}{path}{sep}api-version={}", self.endpoint, api_version(path))
            }
        };
        let mut req = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.map_err(failed)?;
        let status = r.status().as_u16();
        let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = r.text().await.map_err(failed)?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status >= 400 {
            let mut e: ArmError = serde_json::from_value(value["error"].clone())
                .unwrap_or_else(|_| ArmError::with_status(status, "UnexpectedResponse", text.clone()));
            e.status = status;
            return Err(e);
        }
        Ok((status, value, location))
    }

    /// A POST action answered through its `Location` (or at once).
    pub(crate) async fn action(&self, target: &str, action: &str, body: &Value) -> Result<Value, ArmError> {
        let (status, value, location) = self.call(Method::POST, &format!("{target}/{action}"), Some(body)).await?;
        match (status, location) {
            (202, Some(loc)) => Ok(self.call(Method::GET, &loc, None).await?.1),
            _ => Ok(value),
        }
    }

    /// Every item of a list, following `nextLink`.
    pub(crate) async fn list(&self, path: &str) -> Result<Vec<Value>, ArmError> {
        let mut out = Vec::new();
        let mut next = path.to_string();
        loop {
            let (_, page, _) = self.call(Method::GET, &next, None).await?;
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["nextLink"].as_str() {
                Some(link) => next = link.to_string(),
                None => return Ok(out),
            }
        }
    }

    /// The server's state, rebuilt into a local engine (for name resolution and the matrix).
    pub(crate) async fn engine(&self) -> Result<Engine, ArmError> {
        let subscriptions = self.list("/subscriptions").await?;
        let mut resources: Vec<Resource> = Vec::new();
        for s in &subscriptions {
            let id = s["subscriptionId"].as_str().unwrap_or_default();
            resources.extend(tessera_model::resource::from_arm_json(json!({
                "id": format!("/subscriptions/{id}"), "subscriptionId": id,
                "tenantId": s["tenantId"], "displayName": s["displayName"]}))?);
            for t in TYPES {
                for doc in self.list(&format!("/subscriptions/{id}/providers/{t}")).await? {
                    resources.extend(tessera_model::resource::from_arm_json(doc)?);
                }
            }
        }
        load::restore(resources, 0, Limits::default())
    }

    /// Sends a topology file through the API, in dependency order; resource groups are made as
    /// needed. Returns how many resources were written.
    pub(crate) async fn apply(&self, mut resources: Vec<Resource>) -> Result<usize, ArmError> {
        resources.sort_by_key(Resource::apply_rank);
        let mut groups: Vec<(String, String)> = Vec::new();
        let mut written = 0;
        // A file exported from another server (or from Azure) names subscriptions this one may
        // not have: they are made in the caller's tenant, unless the file declares them.
        let declared: Vec<String> = resources
            .iter()
            .filter_map(|r| match r {
                Resource::Subscription(s) => Some(s.subscription_id.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let mut named: Vec<String> =
            resources.iter().filter_map(|r| Some(r.id()?.subscription().to_ascii_lowercase())).collect();
        named.sort();
        named.dedup();
        let mut tenant: Option<String> = None;
        for sub in named.iter().filter(|s| !declared.contains(s)) {
            let path = format!("/subscriptions/{sub}?api-version={RESOURCES_API}");
            if self.call(Method::GET, &path, None).await.is_ok() {
                continue;
            }
            if tenant.is_none() {
                let own = format!("/subscriptions/{}?api-version={RESOURCES_API}", self.subscription);
                tenant = self.call(Method::GET, &own, None).await?.1["tenantId"].as_str().map(str::to_string);
            }
            let body = json!({"displayName": sub, "tenantId": tenant});
            self.call(Method::PUT, &path, Some(&body)).await?;
            written += 1;
        }
        for r in &resources {
            if let Resource::Subscription(s) = r {
                let body = json!({"displayName": s.display_name, "tenantId": s.tenant_id});
                self.call(
                    Method::PUT,
                    &format!("/subscriptions/{}?api-version={RESOURCES_API}", s.subscription_id),
                    Some(&body),
                )
                .await?;
                written += 1;
                continue;
            }
            let Some(id) = r.id() else { continue };
            let key = (id.subscription().to_ascii_lowercase(), id.resource_group().to_ascii_lowercase());
            if !groups.contains(&key) {
                let location = location_of(r).unwrap_or_else(|| "westeurope".to_string());
                let path = format!(
                    "/subscriptions/{}/resourcegroups/{}?api-version={RESOURCES_API}",
                    id.subscription(),
                    id.resource_group()
                );
                if self.call(Method::GET, &path, None).await.is_err() {
                    self.call(Method::PUT, &path, Some(&json!({"location": location}))).await?;
                }
                groups.push(key);
            }
            let mut body = serde_json::to_value(r).map_err(failed)?;
            if id.kind() == Kind::VirtualNetwork
                && let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut)
            {
                props.remove("virtualNetworkPeerings");
            }
            self.call(Method::PUT, id.as_str(), Some(&body)).await?;
            written += 1;
        }
        Ok(written)
    }

    /// The network watcher of a region, made (with its group) when missing, as Azure does.
    pub(crate) async fn watcher(&self, location: &str) -> Result<String, ArmError> {
        let rg = format!("/subscriptions/{}/resourcegroups/NetworkWatcherRG", self.subscription);
        if self.call(Method::GET, &format!("{rg}?api-version={RESOURCES_API}"), None).await.is_err() {
            self.call(Method::PUT, &format!("{rg}?api-version={RESOURCES_API}"), Some(&json!({"location": location})))
                .await?;
        }
        let id = format!(
            "/subscriptions/{}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_{location}",
            self.subscription
        );
        if self.call(Method::GET, &id, None).await.is_err() {
            self.call(Method::PUT, &id, Some(&json!({"location": location}))).await?;
        }
        Ok(id)
    }
}

fn location_of(r: &Resource) -> Option<String> {
    serde_json::to_value(r).ok()?.get("location")?.as_str().map(str::to_string)
}

/// The region of the VM (or NIC) `id` in a rebuilt engine.
pub(crate) fn region(engine: &Engine, id: &ResourceId) -> String {
    let st = engine.state();
    st.vms
        .get(id)
        .map(|v| v.location.clone())
        .or_else(|| st.nics.get(id).map(|n| n.location.clone()))
        .unwrap_or_else(|| "westeurope".into())
}
