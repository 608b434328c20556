//! What the web console needs beyond the ARM API: its page and bundle (built from `console/`
//! by Vite and embedded here, so serving it needs no Node), a long poll that says when something
//! the caller may read changed, and the reachability matrix of the VMs the caller may read.
//!
//! The console signs in and reads through the ARM API like any client; these two endpoints
//! answer only about resources the caller may read.

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::matrix::matrix;
use tessera_model::{ArmError, ResourceId};

use crate::feed::long_poll_wait;
use crate::http::{App, Req, json_value};
use crate::identity::method_not_allowed;

static INDEX: &[u8] = include_bytes!("../console/index.html");
static APP_JS: &[u8] = include_bytes!("../console/app.js");
static APP_CSS: &[u8] = include_bytes!("../console/app.css");

/// The page and bundle allow nothing from elsewhere: scripts, styles and calls are this server's.
const POLICY: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Most VMs a reachability matrix covers (each pair is a trace; a larger estate asks per
/// subscription or uses the CLI's `matrix -f`).
pub(crate) const MAX_MATRIX_VMS: usize = 150;

/// `GET /console[/{file}]`.
pub(crate) fn page(req: &Req, file: &str) -> Result<Response, ArmError> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(method_not_allowed(req));
    }
    let (body, kind): (&'static [u8], &str) = match file {
        "" | "index.html" => (INDEX, "text/html; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => {
            return Err(ArmError::with_status(404, "NotFound", format!("The console has no file '{file}'.")));
        }
    };
    let mut r = (StatusCode::OK, if req.method == Method::HEAD { &[][..] } else { body }).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("text/plain")));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(r)
}

/// `GET /tessera/changes[?revision=R&timeout=S]`: without a revision, the current one (where
/// to start); with one, waits (up to `timeout` seconds, 25 by default, 60 at most) for a
/// durable change after it to a resource the caller may read, and answers the new revision
/// with the ids that changed. At the timeout the revision asked is given back (changes the
/// caller may not read are never named, nor move its revision on). `resync` tells a caller its
/// revision is one this server cannot follow from (too old, or of another server's log): read
/// everything again.
pub(crate) async fn changes(app: &App, req: &Req) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let caller = req.principal()?;
    let since: Option<u64> =
        match req.query("revision") {
            None => None,
            Some(r) => Some(r.parse().map_err(|_| {
                ArmError::bad_request("InvalidRevision", format!("The revision '{r}' is not a number."))
            })?),
        };
    let wait = long_poll_wait(req, Duration::from_secs(25), Duration::from_secs(60))?;
    let mut rx = app.core.read().await.feed.subscribe();
    let Some(since) = since else {
        let revision = app.core.read().await.feed.durable_revision();
        return Ok(json_value(StatusCode::OK, &json!({"revision": revision, "changed": []})));
    };
    let deadline = Instant::now() + wait;
    loop {
        rx.borrow_and_update();
        {
            let core = app.core.read().await;
            let durable = core.feed.durable_revision();
            if durable != since {
                let Some(changed) = core.feed.changed_ids(since, durable) else {
                    return Ok(json_value(
                        StatusCode::OK,
                        &json!({"revision": durable, "changed": [], "resync": true}),
                    ));
                };
                let visible: Vec<&str> = changed
                    .iter()
                    .filter(|id| {
                        req.access.check(caller, &format!("{}/read", id.kind().arm_type()), id.as_str()).is_ok()
                    })
                    .map(ResourceId::as_str)
                    .collect();
                if !visible.is_empty() {
                    return Ok(json_value(StatusCode::OK, &json!({"revision": durable, "changed": visible})));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
            return Ok(json_value(StatusCode::OK, &json!({"revision": since, "changed": []})));
        }
    }
}

/// `GET /tessera/reachability[?protocol=Tcp|Udp|Icmp&port=N]`: for every pair of VMs the caller
/// may read, whether the flow arrives (as the data plane decides it). Reasons are left out: a
/// path may cross resources the caller may not read; a connectivity check on one pair says why.
pub(crate) async fn reachability(app: &App, req: &Req) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let caller = req.principal()?;
    let proto = match req.query("protocol").unwrap_or("Tcp") {
        p if p.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        p if p.eq_ignore_ascii_case("udp") => Protocol::Udp,
        p if p.eq_ignore_ascii_case("icmp") => Protocol::Icmp,
        p => {
            return Err(ArmError::bad_request(
                "InvalidProtocol",
                format!("The protocol '{p}' is not one of Tcp, Udp, Icmp."),
            ));
        }
    };
    let port = match req.query("port") {
        None => 22,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
            ArmError::bad_request("InvalidPort", format!("The port '{p}' is not a number from 1 to 65535."))
        })?,
    };
    let core = app.core.read().await;
    let vms: Vec<ResourceId> = core
        .engine
        .state()
        .vms
        .keys()
        .filter(|vm| req.access.check(caller, "Microsoft.Compute/virtualMachines/read", vm.as_str()).is_ok())
        .cloned()
        .collect();
    if vms.len() > MAX_MATRIX_VMS {
        return Err(ArmError::bad_request(
            "TooManyVirtualMachines",
            format!(
                "You may read {} virtual machines; the reachability matrix covers at most {MAX_MATRIX_VMS}. \
                 Use `tessera matrix` on an export for a larger estate.",
                vms.len()
            ),
        ));
    }
    // An empty list would mean every VM to the engine.
    if vms.is_empty() {
        return Ok(json_value(
            StatusCode::OK,
            &json!({"protocol": format!("{proto:?}"), "port": port, "vms": [], "cells": []}),
        ));
    }
    let m = matrix(&core.engine, proto, port, &vms);
    drop(core);
    // The engine's cells are row by row with the diagonal left out: as indexes into `vms`.
    let n = m.ids.len();
    let pairs = (0..n).flat_map(|from| (0..n).filter(move |to| *to != from).map(move |to| (from, to)));
    let cells: Vec<_> =
        pairs.zip(&m.cells).map(|((from, to), c)| json!({"from": from, "to": to, "reachable": c.reachable})).collect();
    let vms: Vec<_> = m.ids.iter().map(|id| json!({"id": id.as_str(), "name": id.name()})).collect();
    Ok(json_value(StatusCode::OK, &json!({"protocol": m.protocol, "port": m.port, "vms": vms, "cells": cells})))
}
