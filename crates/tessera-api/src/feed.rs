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

/// The feed revision the store holds: staged changes are fed only once they are durable (a
/// commit that fails or loses the race to another server's is retracted, and agents must never
/// have run it). The committer moves it on; the feed waits on it.
#[derive(Debug, Clone)]
pub(crate) struct Durable(std::sync::Arc<watch::Sender<u64>>);

impl Durable {
    /// The committer has stored the change at `revision`.
    pub(crate) fn reached(&self, revision: u64) {
        self.0.send_if_modified(|d| {
            let later = revision > *d;
            if later {
                *d = revision;
            }
            later
        });
    }

    fn get(&self) -> u64 {
        *self.0.borrow()
    }
}

/// One document a change altered: its new bytes and those it had before (`None`: absent).
#[derive(Debug)]
struct Entry {
    revision: u64,
    id: ResourceId,
    doc: Option<Bytes>,
    before: Option<Bytes>,
}

/// The change log, and how far of it is durable.
#[derive(Debug)]
pub(crate) struct FeedLog {
    revision: u64,
    entries: VecDeque<Entry>,
    durable: Durable,
}

impl Default for FeedLog {
    fn default() -> Self {
        Self::starting_at(0)
    }
}

/// What the feed gives an agent: documents at the durable revision.
enum Answer {
    /// The documents changed after the revision asked (`None`: deleted).
    Changes(BTreeMap<ResourceId, Option<Bytes>>),
    /// Every document, as of the durable revision.
    Snapshot(Vec<Bytes>),
}

impl FeedLog {
    /// An empty log at a stored revision.
    pub(crate) fn starting_at(revision: u64) -> Self {
        FeedLog {
            revision,
            entries: VecDeque::new(),
            durable: Durable(std::sync::Arc::new(watch::channel(revision).0)),
        }
    }

    /// Records the documents one change altered (with the bytes each had before); returns the
    /// new revision. It is fed once the committer says it is [`Durable::reached`].
    pub(crate) fn record(&mut self, changed: Vec<(ResourceId, Option<Bytes>, Option<Bytes>)>) -> u64 {
        self.revision += 1;
        let revision = self.revision;
        self.keep(changed.into_iter().map(|(id, doc, before)| Entry { revision, id, doc, before }));
        self.revision
    }

    /// Appends entries, forgetting the oldest beyond what is kept for resuming agents.
    fn keep(&mut self, entries: impl Iterator<Item = Entry>) {
        self.entries.extend(entries);
        while self.entries.len() > KEEP {
            self.entries.pop_front();
        }
    }

    /// The revision of the last change (staged, maybe not yet durable).
    pub(crate) fn revision(&self) -> u64 {
        self.revision
    }

    /// The revision of the last durable change.
    pub(crate) fn durable_revision(&self) -> u64 {
        self.durable.get()
    }

    /// The handle the committer moves the durable revision on with.
    pub(crate) fn durable(&self) -> Durable {
        self.durable.clone()
    }

    /// Forgets the changes not yet durable (their commits will be refused: the state is being
    /// read back from the store).
    pub(crate) fn retract(&mut self) {
        let durable = self.durable.get();
        if self.revision > durable {
            self.entries.retain(|e| e.revision <= durable);
            self.revision = durable;
        }
    }

    /// Records, at `revision` (read from the store, so durable; a later one another server
    /// stored), the documents changed since this log's revision; a log that cannot reach there
    /// starts again at `revision` (agents behind it get a snapshot). Changes not yet durable are
    /// retracted first: at the durable revision itself nothing changed for agents (what is read
    /// back there puts memory back to what they were fed).
    pub(crate) fn record_at(&mut self, revision: u64, changed: Vec<(ResourceId, Option<Bytes>)>) {
        self.retract();
        if revision < self.revision {
            self.entries.clear();
        } else if revision > self.revision {
            self.keep(changed.into_iter().map(|(id, doc)| Entry { revision, id, doc, before: None }));
        }
        self.revision = revision;
        self.durable.0.send_replace(revision);
    }

    /// Wakes on every new durable revision.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.0.subscribe()
    }

    /// What an agent holding `since` is given, up to the durable revision `durable`: the
    /// documents changed after `since`, or every document (`docs`, the state in memory, with
    /// what changes not yet durable altered put back) when the log no longer reaches back.
    fn answer<'a>(
        &'a self,
        since: Option<u64>,
        durable: u64,
        docs: impl Iterator<Item = (&'a ResourceId, &'a Bytes)>,
    ) -> Answer {
        if let Some(changes) = since.and_then(|s| self.since(s, durable)) {
            return Answer::Changes(changes);
        }
        // The earliest change after `durable` of each document holds its durable bytes.
        let mut put_back: BTreeMap<&ResourceId, Option<&Bytes>> = BTreeMap::new();
        for e in self.entries.iter().rev().take_while(|e| e.revision > durable) {
            put_back.insert(&e.id, e.before.as_ref());
        }
        let mut all: Vec<(&ResourceId, &Bytes)> = docs
            .filter(|(id, _)| !put_back.contains_key(id))
            .chain(put_back.iter().filter_map(|(id, b)| Some((*id, (*b)?))))
            .collect();
        all.sort_by(|a, b| a.0.key().cmp(b.0.key()));
        Answer::Snapshot(all.into_iter().map(|(_, b)| b.clone()).collect())
    }

    /// The ids of the documents changed after `since` up to `durable`, or `None` when the log
    /// no longer reaches back.
    pub(crate) fn changed_ids(&self, since: u64, durable: u64) -> Option<Vec<ResourceId>> {
        self.since(since, durable).map(|m| m.into_keys().collect())
    }

    /// The documents changed after `since` up to `durable`, or `None` when the log no longer
    /// reaches back (or `since` is one this log never fed).
    fn since(&self, since: u64, durable: u64) -> Option<BTreeMap<ResourceId, Option<Bytes>>> {
        if since > durable {
            return None;
        }
        let oldest = self.entries.front().map_or(self.revision + 1, |e| e.revision);
        if since + 1 < oldest && since < durable {
            return None;
        }
        let mut out = BTreeMap::new();
        for e in self.entries.iter().filter(|e| e.revision > since && e.revision <= durable) {
            out.insert(e.id.clone(), e.doc.clone());
        }
        Some(out)
    }
}

/// The ports the state in memory places on `host` (for people reading the feed; agents place
/// ports from the documents they were given, which are durable).
fn ports(engine: &Engine, host: &str) -> Vec<Value> {
    tessera_engine::placement::ports_on(engine, host)
        .into_iter()
        .map(|p| {
            json!({"nic": p.nic.as_str(), "vm": p.vm.as_ref().map(ResourceId::as_str),
                   "gateway": p.gateway.as_ref().map(ResourceId::as_str),
                   "subnet": p.subnet.subnet.as_str(), "vnet": p.subnet.vnet.as_str(),
                   "addresses": p.addresses, "ipForwarding": p.ip_forwarding})
        })
        .collect()
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
    // Durable changes only (the committer moves this on without the state's lock: read once).
    let revision = core.feed.durable_revision();
    let (snapshot, documents, deleted): (bool, Vec<Bytes>, Vec<String>) =
        match core.feed.answer(since, revision, core.docs.iter().map(|(id, d)| (id, &d.bytes))) {
            Answer::Changes(changed) => {
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
            Answer::Snapshot(all) => (true, all, Vec::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nsg(name: &str) -> ResourceId {
        ResourceId::parse(&format!(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/{name}"
        ))
        .expect("an id")
    }

    fn snapshot(log: &FeedLog, docs: &[(ResourceId, Bytes)]) -> Vec<Bytes> {
        match log.answer(None, log.durable_revision(), docs.iter().map(|(id, b)| (id, b))) {
            Answer::Snapshot(all) => all,
            Answer::Changes(_) => panic!("a snapshot was asked for"),
        }
    }

    #[test]
    fn only_durable_changes_are_fed_and_a_snapshot_is_the_durable_state() {
        let (a, b) = (nsg("a"), nsg("b"));
        let mut log = FeedLog::starting_at(10);
        let durable = log.durable();
        // Two changes staged: `a` created, then `b` changed and `a` deleted.
        assert_eq!(log.record(vec![(a.clone(), Some(Bytes::from("a1")), None)]), 11);
        assert_eq!(
            log.record(vec![
                (b.clone(), Some(Bytes::from("b2")), Some(Bytes::from("b1"))),
                (a.clone(), None, Some(Bytes::from("a1")))
            ]),
            12
        );
        let in_memory = vec![(b.clone(), Bytes::from("b2"))];
        // Nothing durable yet: an agent at 10 is given nothing, a new one the state at 10.
        assert_eq!(log.since(10, log.durable_revision()).expect("reaches").len(), 0);
        assert_eq!(snapshot(&log, &in_memory), [Bytes::from("b1")]);
        durable.reached(11);
        let at_11 = log.since(10, log.durable_revision()).expect("reaches");
        assert_eq!(at_11.get(&a), Some(&Some(Bytes::from("a1"))));
        assert!(!at_11.contains_key(&b), "b's change is not durable");
        let mut state = snapshot(&log, &in_memory);
        state.sort();
        assert_eq!(state, [Bytes::from("a1"), Bytes::from("b1")]);
        // The commit of 12 fails: it is retracted, never fed; a later revision read back is.
        log.retract();
        assert_eq!(log.revision(), 11);
        assert!(log.entries.iter().all(|e| e.revision <= 11), "12 was retracted");
        log.record_at(13, vec![(b.clone(), Some(Bytes::from("b3")))]);
        assert_eq!(log.durable_revision(), 13);
        let at_13 = log.since(11, 13).expect("reaches");
        assert_eq!(at_13.into_iter().collect::<Vec<_>>(), [(b, Some(Bytes::from("b3")))]);
    }
}
