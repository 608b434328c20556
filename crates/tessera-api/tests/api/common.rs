//! A server on a free loopback port with a fresh data directory, and a signed-in client.

use std::sync::Arc;

use reqwest::{Client, Method, Response};
use serde_json::{Value, json};
use tessera_api::{Credentials, RunningServer, ServeConfig, StoreKind};

/// Built-in roles (Azure's GUIDs).
pub(crate) const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
pub(crate) const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
pub(crate) const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
pub(crate) const NETWORK_CONTRIBUTOR: &str = "4d97b98b-1d4f-4787-a291-c67834d212e7";
/// The api-versions of Microsoft.Authorization and Microsoft.Resources calls.
pub(crate) const AUTH: &str = "api-version=2022-04-01";
pub(crate) const RES: &str = "api-version=2022-12-01";

pub(crate) fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The body of a NIC in westeurope with one IP configuration on `subnet`.
pub(crate) fn nic_body(subnet: &str) -> Value {
    json!({"location": "westeurope", "properties": {"ipConfigurations":
        [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})
}

/// The body of a VM in westeurope on `nic`.
pub(crate) fn vm_body(nic: &str) -> Value {
    json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}})
}

pub(crate) struct Api {
    pub(crate) server: Option<RunningServer>,
    pub(crate) client: Client,
    pub(crate) token: String,
    pub(crate) creds: Credentials,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn client_for(ca: &std::path::Path) -> Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("ca file") {
        roots.add(cert.expect("ca cert")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::builder().use_preconfigured_tls(tls).build().expect("client")
}

/// Client credentials at the token endpoint; the access token, if the endpoint gives one.
pub(crate) async fn fetch_token(
    client: &Client,
    endpoint: &str,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> Option<String> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", "https://management.azure.com/.default"),
    ];
    let v: Value = client
        .post(format!("{endpoint}/{tenant}/oauth2/v2.0/token"))
        .form(&form)
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token body");
    v["access_token"].as_str().map(str::to_string)
}

impl Api {
    pub(crate) async fn start() -> Api {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir).await
    }

    pub(crate) async fn start_in(dir: tempfile::TempDir) -> Api {
        Self::start_with(dir, |_| {}).await
    }

    /// A server with its configuration adjusted by `adjust`.
    pub(crate) async fn start_with(dir: tempfile::TempDir, adjust: impl FnOnce(&mut ServeConfig)) -> Api {
        let mut config = ServeConfig::new(dir.path());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.store = StoreKind::Redb;
        config.settings.retry_after = 0;
        config.settings.page_size = 2;
        config.settings.max_body = 1 << 20;
        adjust(&mut config);
        let server = tessera_api::start(config).await.expect("server starts");
        let creds = server.credentials.clone();
        let client = client_for(&creds.ca_certificate);
        let token = fetch_token(&client, &creds.endpoint, &creds.tenant_id, &creds.client_id, &creds.client_secret)
            .await
            .expect("access token");
        Api { server: Some(server), client, token, creds, dir }
    }

    /// A token for a principal in a tenant (None when the token endpoint refuses).
    pub(crate) async fn token_for(&self, client_id: &str, secret: &str, tenant: &str) -> Option<String> {
        fetch_token(&self.client, &self.creds.endpoint, tenant, client_id, secret).await
    }

    /// One ARM call with a given token and auxiliary tokens.
    pub(crate) async fn call_as(
        &self,
        token: &str,
        aux: &[&str],
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if path.contains("api-version=") {
            self.url(path)
        } else {
            self.url(&format!("{path}{sep}api-version=2024-05-01"))
        };
        let mut req = self.client.request(method, url).bearer_auth(token);
        if !aux.is_empty() {
            let value = aux.iter().map(|t| format!("Bearer {t}")).collect::<Vec<_>>().join(", ");
            req = req.header("x-ms-authorization-auxiliary", value);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Stops the server and starts a new one on the same data directory.
    pub(crate) async fn restart(mut self) -> Api {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("shutdown");
        }
        Api::start_in(self.dir).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.creds.endpoint)
    }

    pub(crate) fn sub(&self) -> String {
        format!("/subscriptions/{}", self.creds.subscription_id)
    }

    pub(crate) fn net(&self, rg: &str, rest: &str) -> String {
        format!("{}/resourceGroups/{rg}/providers/Microsoft.Network/{rest}", self.sub())
    }

    pub(crate) async fn send(&self, method: Method, path: &str, body: Option<&[u8]>) -> Response {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if path.contains("api-version=") {
            self.url(path)
        } else {
            self.url(&format!("{path}{sep}api-version=2024-05-01"))
        };
        let mut req = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_vec());
        }
        req.send().await.expect("request")
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = self.send(method, path, bytes.as_deref()).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes a principal (home tenant, guest tenants) through the admin's token; its id and secret.
    pub(crate) async fn principal(&self, tenant: &str, guests: &[&str]) -> (String, String) {
        let (id, secret) = (guid(), format!("secret-{}", guid()));
        let body = json!({"tenantId": tenant, "displayName": "test", "guestTenants": guests, "secret": secret});
        let (s, v) = self.call(Method::PUT, &format!("/tessera/principals/{id}"), Some(body)).await;
        assert_eq!(s, 201, "{v}");
        (id, secret)
    }

    /// Assigns `role` to `who` at `scope` with `token`: the answer.
    pub(crate) async fn try_assign(&self, token: &str, scope: &str, role: &str, who: &str) -> (u16, Value) {
        let body = json!({"properties": {
            "roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
            "principalId": who}});
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{}?{AUTH}", guid());
        self.call_as(token, &[], Method::PUT, &path, Some(body)).await
    }

    /// Assigns `role` to `who` at `scope` with `token`, which must succeed: the assignment's name.
    pub(crate) async fn assign(&self, token: &str, scope: &str, role: &str, who: &str) -> String {
        let (s, v) = self.try_assign(token, scope, role, who).await;
        assert_eq!(s, 201, "assignment: {v}");
        v["name"].as_str().expect("name").to_string()
    }

    /// A second tenant with a subscription, the admin a guest in it (as an Azure admin would set
    /// it up): (tenant, subscription, the admin's token in that tenant).
    pub(crate) async fn second_tenant(&self) -> (String, String, String) {
        let (t2, s2) = (guid(), guid());
        let body = json!({"tenantId": t2, "displayName": "second"});
        let (s, v) = self.call(Method::PUT, &format!("/subscriptions/{s2}?{RES}"), Some(body)).await;
        assert_eq!(s, 201, "{v}");
        let admin = json!({"tenantId": self.creds.tenant_id, "guestTenants": [t2]});
        let (s, v) =
            self.call(Method::PUT, &format!("/tessera/principals/{}", self.creds.client_id), Some(admin)).await;
        assert_eq!(s, 200, "{v}");
        let token = self.token_for(&self.creds.client_id, &self.creds.client_secret, &t2).await.expect("admin in t2");
        (t2, s2, token)
    }

    /// Every item of a list (all pages), read with `token`.
    pub(crate) async fn list_all(&self, token: &str, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut url = self.url(path);
        loop {
            let page: Value =
                self.client.get(&url).bearer_auth(token).send().await.expect("list").json().await.expect("json");
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        out
    }

    pub(crate) async fn group(&self, rg: &str) {
        let (s, _) = self
            .call(
                Method::PUT,
                &format!("{}/resourcegroups/{rg}?api-version=2022-12-01", self.sub()),
                Some(json!({"location": "westeurope"})),
            )
            .await;
        assert!(s == 200 || s == 201, "group create: {s}");
    }

    pub(crate) async fn vnet(&self, rg: &str, name: &str, prefix: &str) -> Value {
        let body = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [prefix]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": prefix.replace("/16", "/24")}}]}});
        let (s, v) = self.call(Method::PUT, &self.net(rg, &format!("virtualNetworks/{name}")), Some(body)).await;
        assert!(s == 200 || s == 201, "vnet create: {s} {v}");
        v
    }

    /// Every VNet document of the subscription (all pages), for before/after comparisons.
    pub(crate) async fn everything(&self) -> Vec<Value> {
        let path = format!("{}/providers/Microsoft.Network/virtualNetworks?api-version=2024-05-01", self.sub());
        self.list_all(&self.token, &path).await
    }
}
