//! The watch feed host agents follow: `GET /tessera/feed/{host}?revision=R&timeout=S`.
//!
//! The engine compiles the same documents into the same programs wherever it runs (DESIGN.md:
//! one compiler), so the feed carries the documents a host's ports are compiled from, plus the
//! list of its ports: a full snapshot first (or whenever the asked revision is too old or
//! unknown), then the documents changed since the revision the agent holds. A request at the
//! current revision waits (long poll) up to `timeout` seconds for the next change. Revisions are
//! kept in the store, so an agent resumes across server restarts.
//!
//! A port (NIC) runs on the host its VM's `tessera-host` tag names (else the NIC's own tag,
//! else `local`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};
use tessera_engine::Engine;
use tessera_model::{ArmError, ResourceId};
use tokio::sync::watch;

use crate::http::{App, Req, json};
use crate::identity::method_not_allowed;

/// The store key of the feed revision.
pub(crate) const REVISION_KEY: &str = "meta/feed-revision";
/// Changes kept for resuming agents.
const KEEP: usize = 100_000;
/// Longest wait of one request.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The change log: (revision, document, its new bytes or `None` when deleted).
#[derive(Debug)]
pub(crate) struct FeedLog {
    revision: u64,
    entries: VecDeque<(u64, ResourceId, Option<Bytes>)>,
    notify: watch::Sender<u64>,
}

impl Default for FeedLog {
    fn default() -> Self {
        Self::starting_at(0)
    }
}

impl FeedLog {
    /// An empty log at a stored revision.
    pub(crate) fn starting_at(revision: u64) -> Self {
        FeedLog { revision, entries: VecDeque::new(), notify: watch::channel(revision).0 }
    }

    /// Records the documents one change altered; returns the new revision.
    pub(crate) fn record(&mut self, changed: Vec<(ResourceId, Option<Bytes>)>) -> u64 {
        self.revision += 1;
        for (id, doc) in changed {
            self.entries.push_back((self.revision, id, doc));
        }
        while self.entries.len() > KEEP {
            self.entries.pop_front();
        }
        self.notify.send_replace(self.revision);
        self.revision
    }

    /// The revision of the last change.
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// Records, at `revision` (a later one another server stored), the documents changed since
    /// this log's revision; a log that cannot reach there starts again at `revision` (agents
    /// behind it get a snapshot).
    pub(crate) fn record_at(&mut self, revision: u64, changed: Vec<(ResourceId, Option<Bytes>)>) {
        if revision < self.revision || (revision == self.revision && !changed.is_empty()) {
            self.entries.clear();
        } else {
            self.entries.extend(changed.into_iter().map(|(id, doc)| (revision, id, doc)));
            while self.entries.len() > KEEP {
                self.entries.pop_front();
            }
        }
        self.revision = revision;
        self.notify.send_replace(self.revision);
    }

    /// Wakes on every new revision.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// The documents changed after `since`, or `None` when the log no longer reaches back.
    fn since(&self, since: u64) -> Option<BTreeMap<ResourceId, Option<Bytes>>> {
        if since > self.revision {
            return None;
        }
        let oldest = self.entries.front().map_or(self.revision + 1, |e| e.0);
        if since + 1 < oldest && since < self.revision {
            return None;
        }
        let mut out = BTreeMap::new();
        for (rev, id, doc) in &self.entries {
            if *rev > since {
                out.insert(id.clone(), doc.clone());
            }
        }
        Some(out)
    }
}

fn ports(engine: &Engine, host: &str) -> Vec<Value> {
    let mut out: Vec<Value> = engine
        .compiled()
        .nics
        .values()
        .filter(|p| tessera_engine::placement::host_of(engine, &p.nic).eq_ignore_ascii_case(host))
        .map(|p| {
            json!({"nic": p.nic.as_str(), "vm": p.vm.as_ref().map(ResourceId::as_str),
                   "gateway": p.gateway.as_ref().map(ResourceId::as_str),
                   "subnet": p.subnet.subnet.as_str(), "vnet": p.subnet.vnet.as_str(),
                   "addresses": p.addresses, "ipForwarding": p.ip_forwarding})
        })
        .collect();
    out.sort_by(|a, b| a["nic"].as_str().cmp(&b["nic"].as_str()));
    out
}

/// `POST /tessera/hosts/{host}` with `{"gateway": ID, "instance": {…}}`: the agent running a
/// gateway's instance reports its tunnels, BGP peers and routes; only the host the gateway is
/// placed on may. Stored (and fed) only when it changed.
async fn report_gateway(app: &App, req: &Req, host: &str) -> Result<Response, ArmError> {
    req.authorize("Tessera/hosts/write", &format!("/tessera/hosts/{host}"))?;
    let body = req.json()?;
    let id = body
        .get("gateway")
        .and_then(Value::as_str)
        .and_then(|s| ResourceId::parse(s).ok())
        .filter(|id| id.kind() == tessera_model::Kind::VirtualNetworkGateway)
        .ok_or_else(|| ArmError::bad_request("InvalidGateway", "'gateway' must be a virtual network gateway's id."))?;
    let instance: tessera_model::gateway::GatewayInstance =
        serde_json::from_value(body.get("instance").cloned().unwrap_or_default()).map_err(|e| {
            ArmError::bad_request("InvalidRequestContent", format!("'instance' is not a gateway report: {e}"))
        })?;
    app.write(|core| {
        let gw = core
            .engine
            .state()
            .gateways
            .get(&id)
            .ok_or_else(|| ArmError::resource_not_found(&id.type_and_name(), id.resource_group()))?;
        let placed = tessera_engine::compile::instance_id(gw)
            .map(|i| tessera_engine::placement::host_of(&core.engine, &i))
            .unwrap_or_default();
        if !placed.eq_ignore_ascii_case(host) || !instance.host.eq_ignore_ascii_case(host) {
            return Err(ArmError::with_status(
                409,
                "GatewayNotPlacedOnHost",
                format!("Gateway {id} runs on host '{placed}', not on '{host}'."),
            ));
        }
        if gw.properties.instance.as_ref() == Some(&instance) {
            return Ok(());
        }
        core.apply(vec![tessera_engine::Change::ReportGateway { id: id.clone(), instance: instance.clone() }])?;
        Ok(())
    })
    .await?;
    Ok(json(StatusCode::OK, json!({"gateway": id.as_str()}).to_string()))
}

/// `PUT /tessera/hosts/{host}` with `{"underlay": "ADDRESS"}`: a host agent says where the
/// others reach it (VXLAN); the feed lists every host's address. `POST`: a gateway report.
pub(crate) async fn register(app: &App, req: &Req, host: &str) -> Result<Response, ArmError> {
    if req.method == Method::POST {
        return report_gateway(app, req, host).await;
    }
    if req.method != Method::PUT {
        return Err(method_not_allowed(req));
    }
    req.authorize("Tessera/hosts/write", &format!("/tessera/hosts/{host}"))?;
    let body = req.json()?;
    let underlay = body
        .get("underlay")
        .and_then(Value::as_str)
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
        .ok_or_else(|| ArmError::bad_request("InvalidUnderlayAddress", "'underlay' must be an IP address."))?
        .to_string();
    check_host(host)?;
    app.write(|core| {
        core.put_host(host, &underlay);
        Ok(())
    })
    .await?;
    Ok(json(StatusCode::OK, json!({"host": host.to_ascii_lowercase(), "underlay": underlay}).to_string()))
}

/// A host name as agents register it: 1 to 63 characters.
pub(crate) fn check_host(host: &str) -> Result<(), ArmError> {
    if host.is_empty() || host.len() > 63 {
        return Err(ArmError::bad_request("InvalidHostName", format!("The host name '{host}' is not valid.")));
    }
    Ok(())
}

/// How long a long poll waits: its `timeout` query parameter in seconds (else `default`), at
/// most `max`.
pub(crate) fn long_poll_wait(req: &Req, default: Duration, max: Duration) -> Result<Duration, ArmError> {
    match req.query("timeout") {
        None => Ok(default),
        Some(t) => Ok(Duration::from_secs(t.parse().map_err(|_| {
            ArmError::bad_request("InvalidTimeout", format!("The timeout '{t}' is not a number of seconds."))
        })?)
        .min(max)),
    }
}

pub(crate) async fn handle(app: &App, req: &Req, host: &str) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    req.authorize("Tessera/feed/read", &format!("/tessera/feed/{host}"))?;
    let since: Option<u64> =
        match req.query("revision") {
            None => None,
            Some(r) => Some(r.parse().map_err(|_| {
                ArmError::bad_request("InvalidRevision", format!("The revision '{r}' is not a number."))
            })?),
        };
    let wait = long_poll_wait(req, Duration::from_secs(30), MAX_WAIT)?;
    if let Some(since) = since {
        let mut rx = app.core.read().await.feed.subscribe();
        if *rx.borrow_and_update() == since {
            let _ = tokio::time::timeout(wait, rx.changed()).await;
        }
    }
    let core = app.core.read().await;
    let revision = core.feed.revision;
    let changes = since.and_then(|s| core.feed.since(s));
    let (snapshot, documents, deleted): (bool, Vec<Bytes>, Vec<String>) = match changes {
        Some(changed) => {
            let mut docs = Vec::new();
            let mut gone = Vec::new();
            for (id, doc) in changed {
                match doc {
                    Some(bytes) => docs.push(bytes),
                    None => gone.push(id.as_str().to_string()),
                }
            }
            (false, docs, gone)
        }
        None => {
            let mut all: Vec<(&ResourceId, &Bytes)> = core.docs.iter().map(|(id, d)| (id, &d.bytes)).collect();
            all.sort_by(|a, b| a.0.key().cmp(b.0.key()));
            (true, all.into_iter().map(|(_, b)| b.clone()).collect(), Vec::new())
        }
    };
    let subscriptions: Vec<Value> =
        core.engine.state().subscriptions.values().map(|s| serde_json::to_value(s).unwrap_or_default()).collect();
    let head = json!({"host": host, "revision": revision, "snapshot": snapshot, "deleted": deleted,
                      "subscriptions": subscriptions, "ports": ports(&core.engine, host),
                      "hosts": core.hosts});
    drop(core);
    // The documents are spliced in pre-serialized.
    let mut body = head.to_string();
    body.pop();
    body.push_str(",\"documents\":[");
    for (i, d) in documents.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(std::str::from_utf8(d).unwrap_or("null"));
    }
    body.push_str("]}");
    Ok(json(StatusCode::OK, body))
}
