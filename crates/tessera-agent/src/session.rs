//! A signed-in HTTPS client of `tessera serve`: reads the credentials file the server wrote,
//! trusts the server's CA, and gets a bearer token by client credentials (as `az login
//! --service-principal` does).

use std::path::Path;
use std::sync::Arc;

use reqwest::Client;
use serde_json::Value;
use tessera_model::ArmError;

/// A signed-in client.
#[derive(Debug, Clone)]
pub struct Session {
    /// The HTTPS client (trusting the server's CA).
    pub client: Client,
    /// The server's base URL.
    pub endpoint: String,
    /// The bearer token.
    pub token: String,
    /// The default subscription.
    pub subscription: String,
}

/// The error of a server that cannot be reached or answers nonsense.
pub fn unreachable(e: impl std::fmt::Display) -> ArmError {
    ArmError::with_status(503, "ServerUnreachable", e.to_string())
}

impl Session {
    /// Signs in with a credentials file (`<data dir>/credentials.json`).
    pub async fn sign_in(credentials: &Path) -> Result<Session, ArmError> {
        let text = std::fs::read_to_string(credentials).map_err(|e| {
            ArmError::bad_request(
                "CredentialsNotReadable",
                format!("cannot read {} ({e}); start `tessera serve` or pass --credentials", credentials.display()),
            )
        })?;
        let c: Value = serde_json::from_str(&text).map_err(unreachable)?;
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let client = client(Path::new(&s("caCertificate")))?;
        let endpoint = s("endpoint");
        let form = [
            ("grant_type", "client_credentials".to_string()),
            ("client_id", s("clientId")),
            ("client_secret", s("clientSecret")),
            ("scope", "https://management.azure.com/.default".to_string()),
        ];
        let r = client
            .post(format!("{endpoint}/{}/oauth2/v2.0/token", s("tenantId")))
            .form(&form)
            .send()
            .await
            .map_err(unreachable)?;
        let body: Value = r.json().await.map_err(unreachable)?;
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| {
                ArmError::with_status(401, "SignInFailed", format!("the server refused the sign-in: {body}"))
            })?
            .to_string();
        Ok(Session { client, endpoint, token, subscription: s("subscriptionId") })
    }
}

fn client(ca: &Path) -> Result<Client, ArmError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(unreachable)? {
        roots.add(cert.map_err(unreachable)?).map_err(unreachable)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(unreachable)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Client::builder().use_preconfigured_tls(tls).build().map_err(unreachable)
}
