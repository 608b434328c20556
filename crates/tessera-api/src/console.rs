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

static MATRIX_SLOT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Most VMs a reachability matrix covers (each pair is a trace; a larger estate uses the CLI's
/// `matrix -f` on an export).
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

/// Change-poll cursors: the feed revision under a keyed permutation per principal, so that a
/// caller hands it back without reading (or subtracting) the server's count of writes from it.
/// The key comes from the store's signing secret: every server on a shared store reads them.
pub(crate) struct Cursors(ring::hmac::Key);

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors")
    }
}

/// Rounds of the Feistel network over the revision's two 32-bit halves.
const ROUNDS: u8 = 4;

impl Cursors {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Cursors(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[b"tessera-change-cursor:", secret].concat()))
    }

    fn round(&self, who: &str, i: u8, half: u32) -> u32 {
        let mut m = Vec::with_capacity(who.len() + 5);
        m.extend_from_slice(who.as_bytes());
        m.push(i);
        m.extend_from_slice(&half.to_be_bytes());
        let tag = ring::hmac::sign(&self.0, &m);
        let t = tag.as_ref();
        u32::from_be_bytes([t[0], t[1], t[2], t[3]])
    }

    /// The cursor of `revision` for principal `who` (16 hex digits).
    pub(crate) fn seal(&self, who: &str, revision: u64) -> String {
        let (mut l, mut r) = ((revision >> 32) as u32, revision as u32);
        for i in 0..ROUNDS {
            (l, r) = (r, l ^ self.round(who, i, r));
        }
        format!("{:016x}", (u64::from(l) << 32) | u64::from(r))
    }

    /// The revision a cursor of `who` stands for (`None`: not a cursor's shape).
    pub(crate) fn open(&self, who: &str, cursor: &str) -> Option<u64> {
        if cursor.len() != 16 {
            return None;
        }
        let v = u64::from_str_radix(cursor, 16).ok()?;
        let (mut l, mut r) = ((v >> 32) as u32, v as u32);
        for i in (0..ROUNDS).rev() {
            (l, r) = (r ^ self.round(who, i, l), l);
        }
        Some((u64::from(l) << 32) | u64::from(r))
    }
}

/// `GET /tessera/changes[?cursor=C&timeout=S]`: without a cursor, where to start from; with
/// one, waits (up to `timeout` seconds, 25 by default, 60 at most) for a durable change after it
/// to a resource the caller may read — with its roles as they are at each change — and answers
/// the ids that changed and a new cursor. Changes the caller may not read are never named, and
/// cursors are opaque (see [`Cursors`]): nothing says how much else changed. `resync` tells a
/// caller its cursor is one this server cannot follow from (too old for the log, or ahead of
/// it after a restart): read everything again.
pub(crate) async fn changes(app: &App, req: &Req) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    let caller = req.principal()?;
    let who = caller.client_id.to_ascii_lowercase();
    let wait = long_poll_wait(req, Duration::from_secs(25), Duration::from_secs(60))?;
    let answer = |revision: u64, changed: Vec<String>, resync: bool| {
        let mut body = json!({"cursor": app.cursors.seal(&who, revision), "changed": changed});
        if resync {
            body["resync"] = json!(true);
        }
        Ok(json_value(StatusCode::OK, &body))
    };
    let mut rx = app.core.read().await.feed.subscribe();
    let Some(cursor) = req.query("cursor") else {
        return answer(app.core.read().await.feed.durable_revision(), Vec::new(), false);
    };
    let mut checked = app.cursors.open(&who, cursor).ok_or_else(|| {
        ArmError::bad_request("InvalidCursor", format!("The cursor '{cursor}' is not one this server gave."))
    })?;
    let deadline = Instant::now() + wait;
    loop {
        rx.borrow_and_update();
        {
            let core = app.core.read().await;
            let durable = core.feed.durable_revision();
            if durable < checked {
                return answer(durable, Vec::new(), true);
            }
            if durable > checked {
                let Some(ids) = core.feed.changed_ids(checked, durable) else {
                    return answer(durable, Vec::new(), true);
                };
                // Roles as they are now: one revoked during the wait no longer counts.
                let access = core.access();
                let visible: Vec<String> = ids
                    .iter()
                    .filter(|id| access.check(caller, &format!("{}/read", id.kind().arm_type()), id.as_str()).is_ok())
                    .map(|id| id.as_str().to_string())
                    .collect();
                if !visible.is_empty() {
                    return answer(durable, visible, false);
                }
                // Nothing readable up to here: the next wake (or poll) looks only beyond.
                checked = durable;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tokio::time::timeout(left, rx.changed()).await.is_err() {
            return answer(checked, Vec::new(), false);
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
    // One matrix at a time (each pair is a trace, under the state's read lock), computed off
    // the async workers.
    let _slot =
        MATRIX_SLOT.acquire().await.map_err(|_| ArmError::with_status(503, "ServiceUnavailable", "shutting down"))?;
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
    let m = tokio::task::block_in_place(|| matrix(&core.engine, proto, port, Some(&vms)));
    drop(core);
    // The engine's cells are row by row with the diagonal left out: as indexes into `vms`.
    let n = m.ids.len();
    let pairs = (0..n).flat_map(|from| (0..n).filter(move |to| *to != from).map(move |to| (from, to)));
    let cells: Vec<_> =
        pairs.zip(&m.cells).map(|((from, to), c)| json!({"from": from, "to": to, "reachable": c.reachable})).collect();
    let vms: Vec<_> = m.ids.iter().map(|id| json!({"id": id.as_str(), "name": id.name()})).collect();
    Ok(json_value(StatusCode::OK, &json!({"protocol": m.protocol, "port": m.port, "vms": vms, "cells": cells})))
}

#[cfg(test)]
mod tests {
    use super::Cursors;

    #[test]
    fn a_cursor_opens_to_its_revision_for_its_principal_only() {
        let c = Cursors::new(b"secret");
        for revision in [0, 1, 2, 41, 1 << 40, u64::MAX] {
            let sealed = c.seal("alice", revision);
            assert_eq!(sealed.len(), 16);
            assert_eq!(c.open("alice", &sealed), Some(revision));
            assert_ne!(c.open("bob", &sealed), Some(revision), "{revision}");
            assert_ne!(Cursors::new(b"other").open("alice", &sealed), Some(revision));
        }
        // Consecutive revisions give cursors that do not count up.
        let (a, b) = (c.seal("alice", 100), c.seal("alice", 101));
        let diff = u64::from_str_radix(&b, 16).unwrap_or(0).wrapping_sub(u64::from_str_radix(&a, 16).unwrap_or(0));
        assert_ne!(diff, 1);
        assert_eq!(c.open("alice", "xyz"), None);
        assert_eq!(c.open("alice", "zzzzzzzzzzzzzzzz"), None);
    }
}
