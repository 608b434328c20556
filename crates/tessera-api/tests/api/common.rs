//! A server on a free loopback port with a fresh data directory, and a signed-in client.

use std::sync::Arc;

use reqwest::{Client, Method, Response};
use serde_json::{Value, json};
use tessera_api::{Credentials, RunningServer, ServeConfig, StoreKind};

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
        let mut out = Vec::new();
        let mut url =
            self.url(&format!("{}/providers/Microsoft.Network/virtualNetworks?api-version=2024-05-01", self.sub()));
        loop {
            let page: Value =
                self.client.get(&url).bearer_auth(&self.token).send().await.expect("list").json().await.expect("json");
            out.extend(page["value"].as_array().cloned().unwrap_or_default());
            match page["nextLink"].as_str() {
                Some(next) => url = next.to_string(),
                None => break,
            }
        }
        out
    }
}
