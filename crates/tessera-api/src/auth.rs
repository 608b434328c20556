//! Sign-in: service principals with client secrets, the token endpoint that issues signed
//! bearer tokens (JWT, HS256 with a key kept in the store), their validation on every request,
//! and the one authorization decision every handler goes through.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::digest;
use serde::{Deserialize, Serialize};
use tessera_model::ArmError;

/// Audiences a management token may carry (what `az` and the SDKs ask for).
pub const AUDIENCES: &[&str] = &[
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

/// How long an issued token lives.
pub const TOKEN_LIFETIME_SECS: u64 = 3600;

/// A service principal (an application with a client secret) of a tenant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// The application (client) id.
    pub client_id: String,
    /// The home tenant.
    pub tenant_id: String,
    /// Display name.
    pub display_name: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

impl ServicePrincipal {
    /// Whether `secret` is this principal's secret.
    pub fn check_secret(&self, secret: &str) -> bool {
        // Digests are compared, never secrets: timing reveals nothing about the secret itself.
        sha256_hex(secret) == self.secret_sha256
    }
}

/// Hex SHA-256.
pub fn sha256_hex(text: &str) -> String {
    digest::digest(&digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The claims of a Tessera access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Audience.
    pub aud: String,
    /// Issuer: `https://sts.tessera.local/{tenant}/`.
    pub iss: String,
    /// Tenant.
    pub tid: String,
    /// Object id of the principal (its client id).
    pub oid: String,
    /// Application id.
    pub appid: String,
    /// Subject.
    pub sub: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expiry.
    pub exp: u64,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Application (client) id.
    pub client_id: String,
    /// The tenant the token was issued in.
    pub tenant_id: String,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The issuer string of a tenant.
pub fn issuer(tenant: &str) -> String {
    format!("https://sts.tessera.local/{tenant}/")
}

/// Signs and checks tokens with one key.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from a secret.
    pub fn new(secret: &[u8]) -> Self {
        TokenKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    /// Issues a token for a principal and audience.
    pub fn issue(&self, sp: &ServicePrincipal, audience: &str) -> Result<String, ArmError> {
        let t = now();
        let claims = Claims {
            aud: audience.to_string(),
            iss: issuer(&sp.tenant_id),
            tid: sp.tenant_id.clone(),
            oid: sp.client_id.clone(),
            appid: sp.client_id.clone(),
            sub: sp.client_id.clone(),
            iat: t,
            nbf: t,
            exp: t + TOKEN_LIFETIME_SECS,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ArmError::with_status(500, "InternalServerError", format!("cannot sign a token: {e}")))
    }

    /// Checks the `Authorization` header: a bearer token we signed, for a management audience,
    /// not expired, issued by the tenant it names.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, ArmError> {
        let Some(header) = header else {
            return Err(ArmError::with_status(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ArmError::with_status(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                )
            })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(AUDIENCES);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "The token is expired".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "The audience is invalid".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "The signature is invalid".to_string(),
                other => format!("The token is not valid: {other:?}"),
            };
            ArmError::with_status(401, "InvalidAuthenticationToken", format!("The access token is invalid. {why}."))
        })?;
        let c = data.claims;
        if c.iss != issuer(&c.tid) {
            return Err(ArmError::with_status(
                401,
                "InvalidAuthenticationTokenTenant",
                format!("The access token is from the wrong issuer '{}'.", c.iss),
            ));
        }
        Ok(Principal { client_id: c.appid, tenant_id: c.tid })
    }
}

/// The one authorization decision: may `principal` perform `action` (e.g.
/// `Microsoft.Network/virtualNetworks/write`) on `scope` (a resource id, resource group or
/// subscription)? Every handler asks it. Until role assignments exist every signed-in principal
/// may do everything; role-based access plugs in here.
pub fn authorize(principal: &Principal, action: &str, scope: &str) -> Result<(), ArmError> {
    let _ = (principal, action, scope);
    Ok(())
}
