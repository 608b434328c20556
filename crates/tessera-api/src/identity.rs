//! Cloud metadata, the sign-in endpoints (openid-configuration and the client-credentials token
//! endpoint, arm-api.md §10), tenants and subscriptions.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tessera_model::ArmError;

use crate::auth::AUDIENCES;
use crate::http::{App, Req, json_value};
use crate::route::Route;

pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    match (&req.route, &req.method) {
        (Route::Metadata, &Method::GET) => Ok(json_value(StatusCode::OK, &metadata(&req.base))),
        (Route::OpenIdConfiguration { tenant }, &Method::GET) => {
            Ok(json_value(StatusCode::OK, &openid(&req.base, tenant)))
        }
        (Route::Token { tenant }, &Method::POST) => Ok(token(app, req, tenant).await),
        (Route::Tenants, &Method::GET) => {
            // Every principal may list the tenants it belongs to: its home and those it is a
            // guest in (no role needed, as in Azure).
            let caller = req.principal()?;
            let core = app.core.read().await;
            let mut tenants: Vec<String> = match core.principals.get(&caller.client_id.to_ascii_lowercase()) {
                Some(sp) => std::iter::once(sp.tenant_id.clone()).chain(sp.guest_tenants.iter().cloned()).collect(),
                None => vec![caller.tenant_id.clone()],
            };
            for t in &mut tenants {
                *t = t.to_ascii_lowercase();
            }
            tenants.sort();
            tenants.dedup();
            let value: Vec<Value> = tenants
                .iter()
                .map(|t| {
                    json!({"id": format!("/tenants/{t}"), "tenantId": t, "tenantCategory": "Home",
                                "displayName": format!("Tessera tenant {t}")})
                })
                .collect();
            Ok(json_value(StatusCode::OK, &json!({ "value": value })))
        }
        (Route::Subscriptions, &Method::GET) => {
            // Only the subscriptions of the token's tenant in which the caller holds a role.
            let caller = req.principal()?;
            let core = app.core.read().await;
            let value: Vec<Value> = core
                .engine
                .state()
                .subscriptions
                .values()
                .filter(|s| s.tenant_id.eq_ignore_ascii_case(&caller.tenant_id))
                .filter(|s| core.rbac.sees(&caller.client_id, &format!("/subscriptions/{}", s.subscription_id)))
                .map(subscription_body)
                .collect();
            Ok(json_value(StatusCode::OK, &json!({ "value": value })))
        }
        (Route::Subscription { sub }, &Method::GET) => {
            req.authorize("Microsoft.Resources/subscriptions/read", &format!("/subscriptions/{sub}"))?;
            let core = app.core.read().await;
            let s = core
                .engine
                .state()
                .subscriptions
                .get(&sub.to_ascii_lowercase())
                .ok_or_else(|| subscription_not_found(sub))?;
            Ok(json_value(StatusCode::OK, &subscription_body(s)))
        }
        (Route::Subscription { sub }, &Method::PUT) => put_subscription(app, req, sub).await,
        _ => Err(method_not_allowed(req)),
    }
}

/// Tessera extension: `PUT /subscriptions/{id}` with `{"displayName", "tenantId"}` creates a
/// subscription (Azure makes them through billing; a local cloud needs another way) or renames
/// one. Creating one takes an Owner at the root scope (`/`) signed in to the server's own
/// tenant; renaming one takes an Owner of the subscription; moving one to another tenant takes
/// a root-scope Owner who is a member of both tenants. A Contributor can do none of these.
async fn put_subscription(app: &App, req: &Req, sub: &str) -> Result<Response, ArmError> {
    let scope = format!("/subscriptions/{sub}");
    req.authorize("Microsoft.Resources/subscriptions/write", &scope)?;
    let caller = req.principal()?.clone();
    if uuid::Uuid::parse_str(sub).is_err() {
        return Err(ArmError::bad_request(
            "InvalidSubscriptionId",
            format!("The subscription id '{sub}' is not a GUID."),
        ));
    }
    let body = req.json()?;
    let field = |k: &str| -> Result<Option<String>, ArmError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(_) => Err(ArmError::bad_request("InvalidRequestContent", format!("'{k}' must be a string."))),
        }
    };
    let (given_tenant, given_name) = (field("tenantId")?, field("displayName")?);
    if let Some(t) = &given_tenant
        && uuid::Uuid::parse_str(t).is_err()
    {
        return Err(ArmError::bad_request("InvalidTenantId", format!("The tenant id '{t}' is not a GUID.")));
    }
    let forbidden = |why: &str| {
        ArmError::with_status(
            403,
            "AuthorizationFailed",
            format!("The client '{}' with object id '{}' {why}", caller.client_id, caller.client_id),
        )
    };
    let owner_at =
        |scope: &str| req.access.rbac.allows(&caller.client_id, "Microsoft.Authorization/roleAssignments/write", scope);
    let root_owner =
        owner_at("/") && req.access.rbac.allows(&caller.client_id, "Microsoft.Resources/subscriptions/write", "/");
    let (created, body) = app
        .write(|core| {
            let key = sub.to_ascii_lowercase();
            let existing = core.engine.state().subscriptions.get(&key).cloned();
            let tenant = given_tenant
                .clone()
                .or_else(|| existing.as_ref().map(|e| e.tenant_id.clone()))
                .unwrap_or_else(|| app.identity.tenant.clone())
                .to_ascii_lowercase();
            match &existing {
                None => {
                    if !root_owner || !caller.tenant_id.eq_ignore_ascii_case(&app.identity.tenant) {
                        return Err(forbidden("may not create subscriptions: that takes an Owner at the root scope '/'."));
                    }
                }
                Some(e) => {
                    if !owner_at(&scope) {
                        return Err(forbidden(&format!("may not change subscription '{sub}': that takes its Owner.")));
                    }
                    if !e.tenant_id.eq_ignore_ascii_case(&tenant) {
                        let member = |t: &str| core.principals.get(&caller.client_id.to_ascii_lowercase()).is_some_and(|p| p.member_of(t));
                        if !root_owner || !member(&e.tenant_id) || !member(&tenant) {
                            return Err(forbidden(&format!(
                                "may not move subscription '{sub}' to tenant '{tenant}': that takes an Owner at the root \
                                 scope '/' who is a member of both tenants."
                            )));
                        }
                    }
                }
            }
            let name = given_name
                .clone()
                .or_else(|| existing.as_ref().map(|e| e.display_name.clone()))
                .unwrap_or_else(|| sub.to_string());
            let subscription = tessera_model::account::Subscription::new(&key, &tenant, &name);
            let body = subscription_body(&subscription);
            core.put_subscription(subscription)?;
            Ok((existing.is_none(), body))
        })
        .await?;
    Ok(json_value(if created { StatusCode::CREATED } else { StatusCode::OK }, &body))
}

/// 405 in ARM's shape.
pub(crate) fn method_not_allowed(req: &Req) -> ArmError {
    ArmError::with_status(
        405,
        "MethodNotAllowed",
        format!("The method {} is not allowed on '{}'.", req.method, req.path),
    )
}

/// 404 `SubscriptionNotFound`.
pub(crate) fn subscription_not_found(sub: &str) -> ArmError {
    ArmError::with_status(404, "SubscriptionNotFound", format!("The subscription '{sub}' could not be found."))
}

fn subscription_body(s: &tessera_model::account::Subscription) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.subscription_id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.subscription_id,
        "tenantId": s.tenant_id,
        "displayName": s.display_name,
        "state": s.state,
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "Tessera", "spendingLimit": "Off"},
    })
}

/// `GET /metadata/endpoints`: what `az cloud register --endpoint-resource-manager` reads.
fn metadata(base: &str) -> Value {
    json!({
        "name": "Tessera",
        "galleryEndpoint": format!("{base}/"),
        "graphEndpoint": format!("{base}/"),
        "portalEndpoint": format!("{base}/"),
        "resourceManager": format!("{base}/"),
        "authentication": {
            "loginEndpoint": format!("{base}/"),
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "media": format!("{base}/"),
        "graphAudience": format!("{base}/"),
        "graph": format!("{base}/"),
        "batch": format!("{base}/"),
        "sqlManagement": format!("{base}/"),
        "vmImageAliasDoc": format!("{base}/"),
        "suffixes": {"storage": "core.tessera.local", "keyVaultDns": "vault.tessera.local", "acrLoginServer": "cr.tessera.local"},
    })
}

fn openid(base: &str, tenant: &str) -> Value {
    json!({
        // On this server's own host, as identity libraries check (msal-node compares it with
        // the authority it was given); tokens name their issuer in their `iss` claim.
        "issuer": format!("{base}/{tenant}/v2.0"),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["HS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "tessera.local",
    })
}

/// The audience of a token asked for with `scope`: Azure Resource Manager's, named as Azure
/// names it, or as this server's own endpoint (`https://HOST:PORT/.default`, which msal-node
/// and Ansible ask for when pointed at it) — a token for this server either way, so it carries
/// Resource Manager's audience. None for any other resource.
fn audience_of(scope: &str, base: &str) -> Option<&'static str> {
    let first = scope.split_whitespace().next().unwrap_or_default();
    let resource = first.strip_suffix("/.default").or_else(|| first.strip_suffix(".default")).unwrap_or(first);
    let resource = resource.trim_end_matches('/');
    if resource.eq_ignore_ascii_case(base.trim_end_matches('/')) {
        return Some(AUDIENCES[2]);
    }
    AUDIENCES.iter().copied().find(|a| a.trim_end_matches('/') == resource)
}

/// An OAuth error body (not an ARM one: the token endpoint speaks OAuth 2).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_value(status, &json!({"error": error, "error_description": description, "error_codes": []}))
}

/// 429 with `Retry-After` (whole seconds, rounded up) for a locked client id.
fn too_many_sign_ins(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut r = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        &format!("Too many failed sign-ins with this client id; retry in {secs} s."),
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&secs.to_string()) {
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    r
}

async fn token(app: &App, req: &Req, tenant: &str) -> Response {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&req.body).unwrap_or_default();
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if field("grant_type") != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Only client_credentials is supported.");
    }
    let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id and client_secret are required.");
    };
    let scope = field("scope").or_else(|| field("resource")).unwrap_or("https://management.azure.com/.default");
    let Some(audience) = audience_of(scope, &req.base) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", &format!("The scope '{scope}' is not valid."));
    };
    let now = std::time::Instant::now();
    if let Some(wait) = app.sign_ins.locked(client_id, now) {
        return too_many_sign_ins(wait);
    }
    let core = app.core.read().await;
    let sp = core.principals.get(&client_id.to_ascii_lowercase());
    let Some(sp) = sp.filter(|sp| sp.check_secret(secret)) else {
        if let Some(wait) = app.sign_ins.failed(client_id, now) {
            tracing::warn!(client_id, "too many failed sign-ins: the client id is locked for {}s", wait.as_secs());
        }
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Invalid client secret or client id.");
    };
    app.sign_ins.succeeded(client_id);
    if !sp.member_of(tenant) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!("Application '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    match app.keys.issue(sp, tenant, audience) {
        Ok(token) => json_value(
            StatusCode::OK,
            &json!({"token_type": "Bearer", "expires_in": app.keys.lifetime(),
                    "ext_expires_in": app.keys.lifetime(), "access_token": token}),
        ),
        Err(e) => crate::http::error_response(&e),
    }
}
