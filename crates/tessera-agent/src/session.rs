//! A signed-in HTTPS client of `tessera serve`: reads the credentials file the server wrote,
//! trusts the server's CA, and gets a bearer token by client credentials (as `az login
//! --service-principal` does).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Session {
    /// Signs in with a credentials file: the one `tessera serve` writes (client id and secret),
    /// or one `tessera login` writes (a token, used while it is valid).
    pub async fn sign_in(credentials: &Path) -> Result<Session, ArmError> {
        Self::sign_in_at(credentials, None).await
    }

    /// Signs in with a credentials file at `endpoint` instead of the file's own (another
    /// server on the same shared store, trusting the same CA).
    pub async fn sign_in_at(credentials: &Path, endpoint: Option<&str>) -> Result<Session, ArmError> {
        let mut c = read_credentials(credentials)?;
        if let Some(e) = endpoint {
            c["endpoint"] = Value::from(e.trim_end_matches('/'));
        }
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let client = client(Path::new(&s("caCertificate")))?;
        if let Some(token) = c["accessToken"].as_str() {
            if c["expiresOn"].as_u64().unwrap_or(0) <= now() + 30 {
                return Err(ArmError::with_status(
                    401,
                    "ExpiredAuthenticationToken",
                    format!("the sign-in in {} has expired; run `tessera login` again", credentials.display()),
                ));
            }
            return Ok(Session {
                client,
                endpoint: s("endpoint"),
                token: token.to_string(),
                subscription: s("subscriptionId"),
            });
        }
        let (token, _) = token(&client, &s("endpoint"), &s("tenantId"), &s("clientId"), &s("clientSecret")).await?;
        Ok(Session { client, endpoint: s("endpoint"), token, subscription: s("subscriptionId") })
    }

    /// Signs in as a principal of a tenant at the server of `server_credentials` (its endpoint
    /// and CA); the session and when its token expires (seconds since the epoch).
    pub async fn sign_in_as(
        server_credentials: &Path,
        tenant: &str,
        client_id: &str,
        secret: &str,
    ) -> Result<(Session, String, u64), ArmError> {
        let text = std::fs::read_to_string(server_credentials).map_err(|e| {
            ArmError::bad_request(
                "CredentialsNotReadable",
                format!("cannot read {}: {e}", server_credentials.display()),
            )
        })?;
        let c: Value = serde_json::from_str(&text).map_err(unreachable)?;
        let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
        let ca = s("caCertificate");
        let client = client(Path::new(&ca))?;
        let (token, lifetime) = token(&client, &s("endpoint"), tenant, client_id, secret).await?;
        let session = Session { client, endpoint: s("endpoint"), token, subscription: String::new() };
        Ok((session, ca, now() + lifetime))
    }
}

/// The controllers an agent may talk to: the credentials file's server, then others on the
/// same shared store. A session goes to the one that last answered; when it stops answering
/// the next is tried, in turn.
#[derive(Debug)]
pub struct Controllers {
    credentials: PathBuf,
    others: Vec<String>,
    current: AtomicUsize,
}

impl Controllers {
    /// The credentials file's server and `others` (base URLs).
    pub fn new(credentials: PathBuf, others: Vec<String>) -> Arc<Controllers> {
        Arc::new(Controllers { credentials, others, current: AtomicUsize::new(0) })
    }

    /// How many there are (never none: the credentials file's server).
    fn count(&self) -> usize {
        self.others.len() + 1
    }

    /// Signs in at the controller that last answered, else at each other one in turn; the
    /// last error when none answers.
    pub async fn sign_in(&self) -> Result<Session, ArmError> {
        let start = self.current.load(Ordering::Acquire);
        let mut last = None;
        for step in 0..self.count() {
            let i = (start + step) % self.count();
            let endpoint = if i == 0 { None } else { Some(self.others[i - 1].as_str()) };
            match Session::sign_in_at(&self.credentials, endpoint).await {
                Ok(s) => {
                    self.current.store(i, Ordering::Release);
                    return Ok(s);
                }
                // A refused sign-in is the same everywhere (one store): no use trying others.
                Err(e) if e.status != 503 => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| unreachable("no controller")))
    }

    /// The session's controller stopped answering: the next sign-in starts at the next one.
    /// (Once per controller: a session of one another user already moved past is ignored.)
    pub fn failed(&self, session: &Session) {
        let at = self.current.load(Ordering::Acquire);
        let of_session =
            self.others.iter().position(|e| e.trim_end_matches('/') == session.endpoint).map_or(0, |i| i + 1);
        if of_session == at {
            let _ = self.current.compare_exchange(at, (at + 1) % self.count(), Ordering::AcqRel, Ordering::Acquire);
        }
    }
}

/// A credentials file as JSON.
fn read_credentials(path: &Path) -> Result<Value, ArmError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ArmError::bad_request(
            "CredentialsNotReadable",
            format!("cannot read {} ({e}); start `tessera serve` or pass --credentials", path.display()),
        )
    })?;
    serde_json::from_str(&text).map_err(unreachable)
}

/// Client credentials at the token endpoint: the token and its lifetime in seconds.
async fn token(
    client: &Client,
    endpoint: &str,
    tenant: &str,
    id: &str,
    secret: &str,
) -> Result<(String, u64), ArmError> {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "https://management.azure.com/.default"),
    ];
    let r =
        client.post(format!("{endpoint}/{tenant}/oauth2/v2.0/token")).form(&form).send().await.map_err(unreachable)?;
    let body: Value = r.json().await.map_err(unreachable)?;
    let token = body["access_token"]
        .as_str()
        .ok_or_else(|| ArmError::with_status(401, "SignInFailed", format!("the server refused the sign-in: {body}")))?
        .to_string();
    Ok((token, body["expires_in"].as_u64().unwrap_or(3600)))
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
