//! Sign-in: service principals with client secrets (a home tenant, and guest in others), the
//! token endpoint that issues signed bearer tokens (JWT, HS256 with a key per tenant derived from
//! a master key kept in the store), their validation on every request (audience, issuer, expiry,
//! signature of the tenant the token names), and the one authorization decision every handler
//! goes through ([`Access::check`]: the token's tenant must own the subscription, and a role
//! assignment must permit the action at the scope — spec §2.4).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

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
    /// Tenants the principal is a guest in (it may sign in there too).
    #[serde(default)]
    pub guest_tenants: Vec<String>,
}

impl ServicePrincipal {
    /// Whether `secret` is this principal's secret.
    pub fn check_secret(&self, secret: &str) -> bool {
        // Digests are compared, never secrets: timing reveals nothing about the secret itself.
        sha256_hex(secret) == self.secret_sha256
    }

    /// Whether the principal may sign in to `tenant` (its home, or as a guest).
    pub fn member_of(&self, tenant: &str) -> bool {
        self.tenant_id.eq_ignore_ascii_case(tenant) || self.guest_tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant))
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

/// Seconds since the epoch, now (the API layer's clock; the engine and the meter book read
/// none).
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The issuer string of a tenant.
pub fn issuer(tenant: &str) -> String {
    format!("https://sts.tessera.local/{tenant}/")
}

/// Signs and checks tokens: one HS256 key per tenant, derived from a master key, so a token of
/// one tenant never verifies as another's.
#[derive(Clone)]
pub struct TokenKeys {
    master: Vec<u8>,
    /// How long issued tokens live, and the clock skew tolerated when checking expiry.
    lifetime: u64,
    leeway: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

fn unauthenticated(code: &str, message: impl Into<String>) -> ArmError {
    ArmError::with_status(401, code, message)
}

impl TokenKeys {
    /// Keys from a master secret.
    pub fn new(secret: &[u8]) -> Self {
        TokenKeys { master: secret.to_vec(), lifetime: TOKEN_LIFETIME_SECS, leeway: 30 }
    }

    /// The same keys issuing tokens of another lifetime and tolerating another clock skew.
    pub fn with_lifetime(mut self, lifetime_secs: u64, leeway_secs: u64) -> Self {
        self.lifetime = lifetime_secs;
        self.leeway = leeway_secs;
        self
    }

    /// The lifetime of issued tokens.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    fn tenant_key(&self, tenant: &str) -> Vec<u8> {
        let mut material = self.master.clone();
        material.extend_from_slice(b"/tenant/");
        material.extend_from_slice(tenant.to_ascii_lowercase().as_bytes());
        digest::digest(&digest::SHA256, &material).as_ref().to_vec()
    }

    /// Issues a token for a principal in a tenant (its home or one it is a guest in).
    pub fn issue(&self, sp: &ServicePrincipal, tenant: &str, audience: &str) -> Result<String, ArmError> {
        let t = now();
        let tenant = tenant.to_ascii_lowercase();
        let claims = Claims {
            aud: audience.to_string(),
            iss: issuer(&tenant),
            tid: tenant.clone(),
            oid: sp.client_id.clone(),
            appid: sp.client_id.clone(),
            sub: sp.client_id.clone(),
            iat: t,
            nbf: t,
            exp: t + self.lifetime,
        };
        let key = EncodingKey::from_secret(&self.tenant_key(&tenant));
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|e| ArmError::with_status(500, "InternalServerError", format!("cannot sign a token: {e}")))
    }

    /// Checks the `Authorization` header: a bearer token we signed, for a management audience,
    /// not expired, issued by the tenant it names.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, ArmError> {
        let Some(header) = header else {
            return Err(unauthenticated(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        };
        self.authenticate_bearer(header).map_err(|e| {
            if e.code == "AuthenticationFailed" {
                unauthenticated(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                )
            } else {
                e
            }
        })
    }

    /// Checks one `Bearer <token>` value.
    pub fn authenticate_bearer(&self, value: &str) -> Result<Principal, ArmError> {
        let token = value
            .trim()
            .strip_prefix("Bearer ")
            .or_else(|| value.trim().strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated("AuthenticationFailed", "The bearer token is missing."))?;
        let invalid =
            |why: &str| unauthenticated("InvalidAuthenticationToken", format!("The access token is invalid. {why}."));
        // The tenant the token names picks the key; a token altered to name another tenant
        // then fails its signature.
        let payload = token.split('.').nth(1).ok_or_else(|| invalid("It is not a JWT"))?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| invalid("Its payload is not base64url"))?;
        let peek: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid("Its payload is not JSON"))?;
        let tid = peek.get("tid").and_then(serde_json::Value::as_str).ok_or_else(|| invalid("It names no tenant"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(AUDIENCES);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = self.leeway;
        let key = DecodingKey::from_secret(&self.tenant_key(tid));
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "The token is expired".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "The audience is invalid".to_string(),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "The signature is invalid".to_string(),
                other => format!("The token is not valid: {other:?}"),
            };
            unauthenticated(
                if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) {
                    "ExpiredAuthenticationToken"
                } else {
                    "InvalidAuthenticationToken"
                },
                format!("The access token is invalid. {why}."),
            )
        })?;
        let c = data.claims;
        if c.iss != issuer(&c.tid) {
            return Err(unauthenticated(
                "InvalidAuthenticationTokenTenant",
                format!("The access token is from the wrong issuer '{}'.", c.iss),
            ));
        }
        Ok(Principal { client_id: c.appid, tenant_id: c.tid })
    }
}

/// What an authorization decision needs: the role assignments and definitions, and which
/// tenant owns each subscription. One snapshot per request.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Roles and assignments.
    pub rbac: Arc<crate::rbac::Rbac>,
    /// Subscription (lowercase) to tenant (lowercase).
    pub tenants: Arc<HashMap<String, String>>,
}

/// The subscription a scope lies in.
pub fn subscription_of(scope: &str) -> Option<&str> {
    let mut parts = scope.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") && !sub.is_empty() => Some(sub),
        _ => None,
    }
}

impl Access {
    /// The tenant owning a subscription, if it exists.
    pub fn tenant_of(&self, sub: &str) -> Option<&str> {
        self.tenants.get(&sub.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether the principal's token is for the tenant owning the scope's subscription (scopes
    /// outside a subscription, and subscriptions that do not exist, are left to the handler).
    pub fn tenant_matches(&self, principal: &Principal, scope: &str) -> bool {
        subscription_of(scope)
            .and_then(|s| self.tenant_of(s))
            .is_none_or(|t| t.eq_ignore_ascii_case(&principal.tenant_id))
    }

    /// Who decides on `scope` for a caller with auxiliary tokens (A5): the caller when the
    /// scope's subscription belongs to the caller's tenant (or is unknown), else the caller's
    /// auxiliary principal of that tenant — `None` when it has none.
    pub fn decider<'a>(&self, caller: &'a Principal, auxiliary: &'a [Principal], scope: &str) -> Option<&'a Principal> {
        match subscription_of(scope).and_then(|s| self.tenant_of(s)) {
            Some(t) if !t.eq_ignore_ascii_case(&caller.tenant_id) => {
                auxiliary.iter().find(|p| p.tenant_id.eq_ignore_ascii_case(t))
            }
            _ => Some(caller),
        }
    }

    /// The one authorization decision: may `principal` perform `action` (e.g.
    /// `Microsoft.Network/virtualNetworks/write`) on `scope` (a resource id, resource group,
    /// subscription, or `/`)? 401 when its token is from another tenant than the
    /// subscription's; 403 `AuthorizationFailed` when no role assignment permits it.
    pub fn check(&self, principal: &Principal, action: &str, scope: &str) -> Result<(), ArmError> {
        self.check_tenant(principal, scope)?;
        if self.rbac.allows(&principal.client_id, action, scope) {
            return Ok(());
        }
        Err(ArmError::with_status(
            403,
            "AuthorizationFailed",
            format!(
                "The client '{c}' with object id '{c}' does not have authorization to perform action '{action}' \
                 over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your \
                 credentials.",
                c = principal.client_id
            ),
        ))
    }

    /// 401 when `principal`'s token is from another tenant than the subscription of `scope`.
    pub fn check_tenant(&self, principal: &Principal, scope: &str) -> Result<(), ArmError> {
        if let Some(sub) = subscription_of(scope)
            && let Some(tenant) = self.tenant_of(sub)
            && !tenant.eq_ignore_ascii_case(&principal.tenant_id)
        {
            return Err(unauthenticated(
                "InvalidAuthenticationTokenTenant",
                format!(
                    "The access token is from the wrong issuer '{}'. It must match the tenant '{}' associated \
                     with this subscription. Please use the authority (URL) '{}' to get the token.",
                    issuer(&principal.tenant_id),
                    issuer(tenant),
                    format_args!("https://login.tessera.local/{tenant}")
                ),
            ));
        }
        Ok(())
    }
}
