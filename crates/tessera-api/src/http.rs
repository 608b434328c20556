//! The request pipeline: one handler for every path. It matches the route, checks the
//! api-version and the bearer token, reads the body (bounded), and hands the request to the
//! handler of its resource family. Every failure is an ARM error body; request ids are echoed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tessera_model::ArmError;
use tokio::sync::RwLock;

use crate::auth::{Access, Principal, TokenKeys};
use crate::commit::Committer;
use crate::core::Core;
use crate::operations::{Operation, OperationUrls, Operations};
use crate::route::{self, Route};
use crate::{actions, authorization, groups, identity, resources};

/// Settings of a running API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Seconds clients are told to wait before polling an operation (`Retry-After`).
    pub retry_after: u32,
    /// Items per page of a list.
    pub page_size: usize,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// How long issued tokens live, in seconds.
    pub token_lifetime_secs: u64,
    /// The clock skew tolerated when checking a token's expiry, in seconds.
    pub token_leeway_secs: u64,
    /// How long a client may take to send a request's headers (and its TLS handshake), in
    /// seconds; slower connections are closed.
    pub header_read_timeout_secs: u64,
    /// Most connections open at once (bounded further by the process's file limit).
    pub max_connections: usize,
    /// Failed sign-ins of one client id within a minute before it is locked.
    pub sign_in_failures: u32,
    /// How long a client id stays locked after too many failed sign-ins, in seconds.
    pub sign_in_lockout_secs: u64,
    /// The prices usage is billed at.
    pub prices: tessera_engine::pricing::PriceSheet,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            retry_after: 1,
            page_size: 100,
            max_body: 4 << 20,
            token_lifetime_secs: crate::auth::TOKEN_LIFETIME_SECS,
            token_leeway_secs: 30,
            header_read_timeout_secs: 10,
            max_connections: 4096,
            sign_in_failures: 5,
            sign_in_lockout_secs: 60,
            prices: tessera_engine::pricing::PriceSheet::default(),
        }
    }
}

/// The default tenant and subscription of this server.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The default tenant.
    pub(crate) tenant: String,
}

/// Shared state of the server.
pub(crate) struct App {
    pub(crate) core: Arc<RwLock<Core>>,
    pub(crate) committer: Committer,
    pub(crate) keys: TokenKeys,
    pub(crate) ops: Operations,
    pub(crate) settings: ApiSettings,
    pub(crate) identity: Identity,
    /// Failed sign-ins per client id (429 once too many).
    pub(crate) sign_ins: crate::signin::SignInGuard,
    /// Requests and their latency, when `/metrics` is served.
    pub(crate) metrics: Option<crate::metrics::ApiMetrics>,
    /// Live probes of connectivity checks, waiting for host agents.
    pub(crate) probes: crate::probes::ProbeBoard,
    /// The store, when other servers share it (each write first catches up with theirs).
    pub(crate) shared_store: Option<Arc<dyn tessera_store::Store>>,
    /// Engine limits (for reading the state again).
    pub(crate) limits: tessera_engine::Limits,
    /// The servers of this store and who leads them.
    pub(crate) cluster: Arc<crate::leader::Cluster>,
    /// The console's change-poll cursors.
    pub(crate) cursors: crate::console::Cursors,
}

impl App {
    /// Runs a write under the write lock, then waits (outside the lock) until what it staged is
    /// durable. Operations staged before a failure (a group deletion that stopped half-way)
    /// are committed too, and the failure is returned.
    pub(crate) async fn write<T>(&self, mut f: impl FnMut(&mut Core) -> Result<T, ArmError>) -> Result<T, ArmError> {
        // With a store other servers write too, a write that lost the race to another server's
        // is run again on the state read back (a few times), not refused.
        let attempts = if self.shared_store.is_some() { 16 } else { 1 };
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (result, receipt) = {
                let mut core = self.core.write().await;
                if let Some(why) = &core.halted {
                    return Err(ArmError::with_status(503, "ServiceUnavailable", why.clone()));
                }
                if let Some(store) = &self.shared_store {
                    let (store, limits) = (store.clone(), self.limits.clone());
                    tokio::task::block_in_place(|| self.committer.catch_up(&*store, &mut core, &limits))?;
                }
                let result = f(&mut core);
                let ops = core.take_pending();
                // A refusal (nothing staged) on a store other servers write: it must hold on the
                // latest state, which this server's watch may not have heard of yet (a NIC made
                // on another server a moment ago). Read the store's head; if it moved on, run
                // the write again on the state read back.
                if let (Err(_), true, Some(store)) = (&result, ops.is_empty(), &self.shared_store)
                    && attempt < attempts
                {
                    let (store, limits) = (store.clone(), self.limits.clone());
                    if tokio::task::block_in_place(|| self.committer.catch_up_now(&*store, &mut core, &limits))? {
                        continue;
                    }
                }
                let receipt = (!ops.is_empty()).then(|| self.committer.submit(ops));
                (result, receipt)
            };
            if let Some(r) = receipt
                && let Err(e) = r.wait().await
            {
                if e.status == 409 && e.code == "AnotherOperationInProgress" && attempt < attempts {
                    // Servers that collided do not collide again in step.
                    let pause = 2 + u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 8) * u64::from(attempt);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                    continue;
                }
                return Err(e);
            }
            return result;
        }
    }
}

/// One request, parsed.
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) route: Route,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// `https://host[:port]`, for URLs handed back.
    pub(crate) base: String,
    pub(crate) api_version: String,
    pub(crate) principal: Option<Principal>,
    /// Principals of the auxiliary tokens (`x-ms-authorization-auxiliary`), each validated.
    pub(crate) auxiliary: Vec<Principal>,
    /// Role assignments and subscription tenants as of the start of the request.
    pub(crate) access: Access,
}

impl Req {
    /// A query parameter, by case-insensitive name.
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A header as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a JSON object.
    pub(crate) fn json(&self) -> Result<serde_json::Map<String, Value>, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ArmError::bad_request("InvalidRequestContent", "The request content was null or empty."));
        }
        let v: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::bad_request("InvalidRequestFormat", format!("Cannot parse the request body as JSON: {e}"))
        })?;
        match v {
            Value::Object(map) => Ok(map),
            _ => Err(ArmError::bad_request("InvalidRequestContent", "The request content must be a JSON object.")),
        }
    }

    /// The signed-in principal (every ARM route requires one).
    pub(crate) fn principal(&self) -> Result<&Principal, ArmError> {
        self.principal.as_ref().ok_or_else(|| ArmError::with_status(401, "AuthenticationFailed", "Not signed in."))
    }

    /// Authorizes `action` on `scope` for the caller.
    pub(crate) fn authorize(&self, action: &str, scope: &str) -> Result<(), ArmError> {
        self.access.check(self.principal()?, action, scope)
    }

    /// Authorizes `action` for the caller on every one of `scopes`.
    pub(crate) fn authorize_all(&self, action: &str, scopes: &[String]) -> Result<(), ArmError> {
        scopes.iter().try_for_each(|s| self.authorize(action, s))
    }

    /// The URL of this request with other query parameters (for nextLink).
    pub(crate) fn url_with(&self, extra: &str) -> String {
        format!("{}{}?api-version={}{extra}", self.base, self.path, self.api_version)
    }

    /// Checks `If-Match` / `If-None-Match` against the current etag of the target document.
    pub(crate) fn check_preconditions(&self, current: Option<&str>) -> Result<(), ArmError> {
        let failed = |why: String| ArmError::with_status(412, "PreconditionFailed", why);
        if let Some(want) = self.header("if-match") {
            let ok = match current {
                Some(etag) => want.trim() == "*" || want.split(',').any(|w| w.trim() == etag),
                None => false,
            };
            if !ok {
                return Err(failed(format!(
                    "The condition If-Match: {want} is not met; the current etag is {}.",
                    current.unwrap_or("(none: the resource does not exist)")
                )));
            }
        }
        if let Some(want) = self.header("if-none-match")
            && let Some(etag) = current
            && (want.trim() == "*" || want.split(',').any(|w| w.trim() == etag))
        {
            return Err(failed(format!("The condition If-None-Match: {want} is not met: the resource exists.")));
        }
        Ok(())
    }
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

/// A JSON response from a value.
pub(crate) fn json_value(status: StatusCode, v: &Value) -> Response {
    json(status, v.to_string())
}

/// The ARM error response.
pub(crate) fn error_response(e: &ArmError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_value(status, &e.to_body());
    r.headers_mut().insert("x-ms-failure-cause", HeaderValue::from_static("gateway"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer authorization_uri=\"https://login.tessera.local\", error=\"invalid_token\"",
            ),
        );
    }
    r
}

fn set(r: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// Which operation headers a response carries (O2, O9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpHeaders {
    /// `Azure-AsyncOperation` only: PUT.
    Status,
    /// Both: DELETE.
    Both,
    /// `Location` only: POST actions.
    Result,
}

/// Records a finished operation and adds its headers and `Retry-After`.
pub(crate) fn finish_operation(
    app: &App,
    req: &Req,
    r: &mut Response,
    (sub, ns, location): (&str, &str, &str),
    op: Operation,
    headers: OpHeaders,
) {
    let id = app.ops.finish(sub, op, crate::auth::now());
    let urls = OperationUrls::new(&req.base, sub, ns, location, &id, &req.api_version);
    if headers != OpHeaders::Result {
        set(r, "azure-asyncoperation", &urls.status);
    }
    if headers != OpHeaders::Status {
        set(r, "location", &urls.result);
    }
    set(r, "retry-after", &app.settings.retry_after.to_string());
}

/// api-versions accepted, by provider namespace: the first and the newest (dates; `-preview`
/// forms of a date in the range too). Microsoft.Network's newest is what the current Python SDK
/// sends (arm-api.md); Microsoft.Compute's is what `az` 2.91 sends for `az vm show` (2026-04-01);
/// the others are their providers' published ranges.
const NAMESPACE_VERSIONS: &[(&str, &str, &str)] = &[
    ("Microsoft.Network", "2015-06-15", "2026-03-01"),
    ("Microsoft.Compute", "2015-06-15", "2026-04-01"),
    ("Microsoft.ClassicNetwork", "2014-01-01", "2017-11-15"),
    ("Microsoft.Authorization", "2015-07-01", "2022-05-01"),
    ("Microsoft.Resources", "2014-04-01", "2025-12-31"),
    ("Microsoft.Consumption", "2017-11-30", "2024-08-01"),
    ("Microsoft.Insights", "2016-03-01", "2024-02-01"),
];

/// Types and actions younger than their provider: the first api-version that has them.
const TYPE_SINCE: &[(&str, &str)] = &[
    ("Microsoft.Network/virtualNetworks/virtualNetworkPeerings", "2016-06-01"),
    ("Microsoft.Network/applicationSecurityGroups", "2017-09-01"),
    ("Microsoft.Network/networkWatchers", "2016-09-01"),
    ("Microsoft.Network/networkWatchers/connectivityCheck", "2017-06-01"),
    ("Microsoft.Network/networkInterfaces/effectiveRouteTable", "2016-09-01"),
    ("Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups", "2016-09-01"),
];

/// The date of a well-formed api-version (`YYYY-MM-DD`, optionally `-preview`).
fn version_date(v: &str) -> Option<&str> {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    let well_formed = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    well_formed.then_some(date)
}

/// The ARM type (or action) a route addresses, for its api-versions.
fn type_of(route: &Route) -> String {
    match route {
        Route::Resource(id) => id.kind().arm_type().to_string(),
        Route::Children { parent, segment } => format!("{}/{segment}", parent.kind().arm_type()),
        Route::Action { target, action } => format!("{}/{action}", target.kind().arm_type()),
        Route::ListInGroup { arm_type, .. } | Route::ListInSubscription { arm_type, .. } => arm_type.clone(),
        Route::LocationList { what, .. } => format!("Microsoft.Network/locations/{what}"),
        Route::RoleAssignment { .. } => "Microsoft.Authorization/roleAssignments".to_string(),
        Route::RoleDefinition { .. } => "Microsoft.Authorization/roleDefinitions".to_string(),
        Route::Permissions { .. } => "Microsoft.Authorization/permissions".to_string(),
        Route::UsageDetails { .. } => "Microsoft.Consumption/usageDetails".to_string(),
        Route::Metrics { .. } => "Microsoft.Insights/metrics".to_string(),
        _ => "Microsoft.Resources".to_string(),
    }
}

/// The api-versions `ty` has: its provider's range, from the version that introduced it.
fn versions_of(ty: &str) -> (&'static str, &'static str) {
    let ns = ty.split('/').next().unwrap_or_default();
    let (_, lo, hi) = NAMESPACE_VERSIONS.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(ns)).copied().unwrap_or((
        "",
        "2015-06-15",
        "2026-03-01",
    ));
    let since = TYPE_SINCE.iter().find(|(t, _)| t.eq_ignore_ascii_case(ty)).map_or(lo, |(_, s)| *s);
    (since, hi)
}

fn check_api_version(route: &Route, given: Option<&str>) -> Result<String, ArmError> {
    let needs = !matches!(
        route,
        Route::Metadata
            | Route::OpenIdConfiguration { .. }
            | Route::Token { .. }
            | Route::Operation { .. }
            | Route::Feed { .. }
            | Route::Principal { .. }
            | Route::Host { .. }
            | Route::HostUsage { .. }
            | Route::HostProbes { .. }
            | Route::Cluster
            | Route::Console { .. }
            | Route::Changes
            | Route::Reachability
    );
    let v = match given {
        None if needs => {
            return Err(ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        None => return Ok("2024-05-01".to_string()),
        Some(v) if !needs => return Ok(v.to_string()),
        Some(v) => v,
    };
    let ty = type_of(route);
    let (lo, hi) = versions_of(&ty);
    match version_date(v) {
        Some(date) if (lo..=hi).contains(&date) => Ok(v.to_string()),
        _ => Err(ArmError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{v}' is invalid for '{ty}'. The supported versions are dates from {lo} to {hi}."),
        )),
    }
}

/// The one handler.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, request: Request<Body>) -> Response {
    let client_request_id = request.headers().get("x-ms-client-request-id").cloned();
    // Requests are timed and labelled only when `/metrics` is served. Only the methods ARM has
    // make a label (any other would add a series per caller's whim).
    let measured = app.metrics.as_ref().map(|m| {
        let known = ["GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"].contains(&request.method().as_str());
        let operation = known
            .then(|| route::operation_family(request.method().as_str(), request.uri().path()))
            .flatten()
            .unwrap_or_else(|| "unmatched".to_string());
        (m, operation, std::time::Instant::now())
    });
    let mut response = match handle(&app, request).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    if let Some((m, operation, started)) = measured {
        m.observe(&operation, response.status().as_u16(), started.elapsed());
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    set(&mut response, "x-ms-request-id", &request_id);
    set(&mut response, "x-ms-correlation-request-id", &request_id);
    if let Some(v) = client_request_id {
        response.headers_mut().insert(HeaderName::from_static("x-ms-client-request-id"), v);
    }
    response
}

async fn handle(app: &App, request: Request<Body>) -> Result<Response, ArmError> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let route = route::parse(&path, parts.method == Method::GET || parts.method == Method::HEAD)?;
    let query: Vec<(String, String)> =
        parts.uri.query().and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
    let given = query.iter().find(|(k, _)| k.eq_ignore_ascii_case("api-version")).map(|(_, v)| v.as_str());
    let api_version = check_api_version(&route, given)?;
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string();
    let public = matches!(
        route,
        Route::Metadata | Route::OpenIdConfiguration { .. } | Route::Token { .. } | Route::Console { .. }
    );
    let (principal, auxiliary, access) = if public {
        (None, Vec::new(), Access::default())
    } else {
        let auth = parts.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        let principal = app.keys.authenticate(auth)?;
        let auxiliary = auxiliary_principals(&app.keys, &parts.headers)?;
        (Some(principal), auxiliary, app.core.read().await.access())
    };
    let body = read_body(body, app.settings.max_body).await?;
    let req = Req {
        method: parts.method,
        route,
        path,
        query,
        headers: parts.headers,
        body,
        base: format!("https://{host}"),
        api_version,
        principal,
        auxiliary,
        access,
    };
    match &req.route {
        Route::Metadata | Route::OpenIdConfiguration { .. } | Route::Token { .. } => identity::handle(app, &req).await,
        Route::Tenants | Route::Subscriptions | Route::Subscription { .. } => identity::handle(app, &req).await,
        Route::ResourceGroups { .. }
        | Route::ResourceGroup { .. }
        | Route::Locations { .. }
        | Route::Resources { .. } => groups::handle(app, &req).await,
        Route::LocationList { sub, location, what } => crate::locations::handle(app, &req, sub, location, what).await,
        Route::Operation { sub, id, result } => {
            // Any principal of the subscription's tenant may poll (the id is unguessable); a
            // token of another tenant may not.
            if !req.access.tenant_matches(req.principal()?, &format!("/subscriptions/{sub}")) {
                return Err(ArmError::with_status(
                    401,
                    "InvalidAuthenticationTokenTenant",
                    format!("The access token is not from the tenant of subscription '{sub}'."),
                ));
            }
            operation(app, sub, id, *result)
        }
        Route::Action { .. } => actions::handle(app, &req).await,
        Route::Feed { host } => crate::feed::handle(app, &req, host).await,
        Route::Host { name } => crate::feed::register(app, &req, name).await,
        Route::HostUsage { name } => crate::usage::report(app, &req, name).await,
        Route::HostProbes { name } => crate::probes::handle(app, &req, name).await,
        Route::Cluster => crate::leader::handle(app, &req).await,
        Route::UsageDetails { sub } => crate::usage::list(app, &req, sub).await,
        Route::Metrics { target, definitions } => crate::insights::handle(app, &req, target, *definitions).await,
        Route::RoleAssignment { .. } | Route::RoleDefinition { .. } | Route::Principal { .. } => {
            authorization::handle(app, &req).await
        }
        Route::Permissions { scope } => authorization::permissions(app, &req, scope).await,
        Route::Console { file } => crate::console::page(&req, file),
        Route::Changes => crate::console::changes(app, &req).await,
        Route::Reachability => crate::console::reachability(app, &req).await,
        Route::Resource(_) | Route::Children { .. } | Route::ListInGroup { .. } | Route::ListInSubscription { .. } => {
            resources::handle(app, &req).await
        }
    }
}

/// Most auxiliary tokens a request may carry (A5).
const MAX_AUXILIARY: usize = 3;

/// The principals of `x-ms-authorization-auxiliary: Bearer <t1>[, Bearer <t2>]…` (A5): at most
/// three, and every one must be valid (401 naming the bad one otherwise).
fn auxiliary_principals(keys: &TokenKeys, headers: &HeaderMap) -> Result<Vec<Principal>, ArmError> {
    let Some(value) = headers.get("x-ms-authorization-auxiliary") else { return Ok(Vec::new()) };
    let text = value.to_str().map_err(|_| {
        ArmError::with_status(401, "InvalidAuxiliaryTokens", "The auxiliary authorization header is not text.")
    })?;
    let tokens: Vec<&str> = text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    if tokens.len() > MAX_AUXILIARY {
        return Err(ArmError::bad_request(
            "TooManyAuxiliaryTokens",
            format!("The request has {} auxiliary tokens; at most {MAX_AUXILIARY} are allowed.", tokens.len()),
        ));
    }
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            keys.authenticate_bearer(t).map_err(|e| {
                ArmError::with_status(
                    401,
                    "InvalidAuxiliaryToken",
                    format!(
                        "The auxiliary token {} in 'x-ms-authorization-auxiliary' is not valid: {}",
                        i + 1,
                        e.message
                    ),
                )
            })
        })
        .collect()
}

/// Reads the body up to `max` bytes. A larger body is drained (up to a hard cap, so that the
/// client can read the answer instead of seeing its upload cut) and refused with 413.
async fn read_body(mut body: Body, max: usize) -> Result<Bytes, ArmError> {
    use http_body_util::BodyExt;
    let too_large = || {
        ArmError::with_status(
            413,
            "RequestEntityTooLarge",
            format!("The request body is larger than the limit of {max} bytes."),
        )
    };
    let cap = max.saturating_mul(16);
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ArmError::bad_request("InvalidRequestFormat", format!("The request body could not be read: {e}"))
        })?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > cap {
                return Err(too_large());
            }
            if seen <= max {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > max { Err(too_large()) } else { Ok(Bytes::from(kept)) }
}

fn operation(app: &App, sub: &str, id: &str, result: bool) -> Result<Response, ArmError> {
    let op = app
        .ops
        .get(sub, id, crate::auth::now())
        .ok_or_else(|| ArmError::with_status(404, "NotFound", format!("The operation '{id}' was not found.")))?;
    if !result {
        let body = match &op.error {
            None => serde_json::json!({ "status": "Succeeded" }),
            Some(e) => serde_json::json!({ "status": "Failed", "error": e }),
        };
        return Ok(json_value(StatusCode::OK, &body));
    }
    match (op.error, op.result) {
        (Some(e), _) => Err(e),
        (None, Some(bytes)) => Ok(json(StatusCode::OK, bytes)),
        (None, None) => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// A page of a list: `{"value": [...], "nextLink": ...}` from pre-serialized items.
pub(crate) fn page(app: &App, req: &Req, items: &[Bytes]) -> Result<Response, ArmError> {
    page_of(app, req, items.len(), |i| items[i].clone())
}

/// A page of a list of `len` items, rendering only the page's own (`render(i)`, serialized).
pub(crate) fn page_of(app: &App, req: &Req, len: usize, render: impl Fn(usize) -> Bytes) -> Result<Response, ArmError> {
    let skip: usize = match req.query("$skipToken") {
        None => 0,
        Some(t) => t
            .parse()
            .map_err(|_| ArmError::bad_request("InvalidSkipToken", format!("The $skipToken '{t}' is not valid.")))?,
    };
    let size = app.settings.page_size.max(1);
    let end = skip.saturating_add(size).min(len);
    let rendered: Vec<Bytes> = (skip.min(len)..end).map(render).collect();
    let mut out = Vec::with_capacity(64 + rendered.iter().map(Bytes::len).sum::<usize>());
    out.extend_from_slice(b"{\"value\":[");
    for (i, item) in rendered.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    if end < len {
        // The next page keeps what narrowed this one ($filter, $expand, …).
        let kept: Vec<(&str, &str)> = req
            .query
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("api-version") && !k.eq_ignore_ascii_case("$skipToken"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let kept = serde_urlencoded::to_string(&kept).unwrap_or_default();
        let kept = if kept.is_empty() { String::new() } else { format!("&{kept}") };
        let next = req.url_with(&format!("{kept}&$skipToken={end}"));
        out.extend_from_slice(format!(",\"nextLink\":{}", Value::String(next)).as_bytes());
    }
    out.push(b'}');
    Ok(json(StatusCode::OK, out))
}
