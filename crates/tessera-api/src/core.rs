//! The server's state: the engine, every document as clients see it (with its etag), resource
//! groups, API-only resources (network watchers) and principals, all kept in the store.
//!
//! Every write goes through [`Core::apply`] under the server's write lock: the engine validates
//! the change against the whole state, the documents it names are rendered, and the ones that
//! changed are staged as store operations. The server hands the staged operations of each
//! request to the committer (`commit.rs`), which writes them durably (several requests per
//! transaction when they queue up) before the request is answered. A refusal stages nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tessera_engine::metering::{Taken, UsageKey, UsageRecord, UsageReport};
use tessera_engine::{Change, Engine, Limits, load};
use tessera_model::{ArmError, Kind, Resource, ResourceId};
use tessera_store::{Op, Store, StoreError};

use crate::auth::{Access, ServicePrincipal};
use crate::rbac::{Rbac, RoleAssignment, RoleDefinition};

/// The layout version of the records this build writes (next to the store's own schema).
pub(crate) const RECORD_VERSION: u64 = 1;

/// Embedded child collections: each item carries its parent document's etag (O5).
pub(crate) const CHILD_COLLECTIONS: &[&str] = &[
    "subnets",
    "virtualNetworkPeerings",
    "securityRules",
    "defaultSecurityRules",
    "routes",
    "ipConfigurations",
    "frontendIPConfigurations",
    "backendAddressPools",
    "loadBalancingRules",
    "probes",
];

/// A document as clients see it.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    /// `W/"<guid>"`, changed on every change of the document.
    pub(crate) etag: String,
    /// The document without etags (for change detection).
    pub(crate) raw: Arc<Value>,
    /// The serialized document with etags (what GET returns).
    pub(crate) bytes: Bytes,
}

impl Doc {
    /// The document with etags, as a value.
    pub(crate) fn stamped(&self) -> Value {
        stamp((*self.raw).clone(), &self.etag)
    }
}

/// A fresh weak etag.
pub(crate) fn new_etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

/// Sets the etag on a document and on every embedded child.
pub(crate) fn stamp(mut doc: Value, etag: &str) -> Value {
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("etag".into(), json!(etag));
        if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
            for name in CHILD_COLLECTIONS {
                if let Some(items) = props.get_mut(*name).and_then(Value::as_array_mut) {
                    for item in items.iter_mut().filter_map(Value::as_object_mut) {
                        item.insert("etag".into(), json!(etag));
                    }
                }
            }
        }
    }
    doc
}

fn record(etag: &str, doc: &Value) -> Vec<u8> {
    json!({ "v": RECORD_VERSION, "etag": etag, "doc": doc }).to_string().into_bytes()
}

/// The store key of an engine document.
fn doc_key(id: &ResourceId) -> String {
    format!("doc/{}", id.key())
}

/// The store key of a resource group.
pub(crate) fn group_key(sub: &str, rg: &str) -> String {
    format!("rg/{}/{}", sub.to_ascii_lowercase(), rg.to_ascii_lowercase())
}

/// The store key of an API-only resource.
fn aux_key(id: &ResourceId) -> String {
    format!("aux/{}", id.key())
}

pub(crate) const SEQUENCE_KEY: &str = "meta/sequence";
/// The prefix of principal records.
pub(crate) const PRINCIPAL_PREFIX: &str = "principal/";
/// The prefix of host agents' registrations.
pub(crate) const HOST_PREFIX: &str = "host/";
/// The prefix of usage records (an hour of one meter of one peering link).
pub(crate) const USAGE_RECORD_PREFIX: &str = "usage/hour/";
/// The prefix of the per-minute series (the last day, for metrics).
pub(crate) const USAGE_MINUTE_PREFIX: &str = "usage/minute/";
/// The prefix of the runs each host reported usage for.
pub(crate) const USAGE_RUNS_PREFIX: &str = "usage/runs/";
/// The prefix of custom role definitions.
const DEFINITION_PREFIX: &str = "rbac/definition/";
/// The prefix of role assignments.
const ASSIGNMENT_PREFIX: &str = "rbac/assignment/";

/// The engine document `id` names, rendered (without etags).
pub(crate) fn render(engine: &Engine, id: &ResourceId) -> Option<Value> {
    let st = engine.state();
    let v = match id.kind() {
        Kind::VirtualNetwork => serde_json::to_value(st.vnets.get(id)?),
        Kind::ClassicVirtualNetwork => serde_json::to_value(st.classic_vnets.get(id)?),
        Kind::NetworkSecurityGroup => serde_json::to_value(st.nsgs.get(id)?),
        Kind::RouteTable => serde_json::to_value(st.route_tables.get(id)?),
        Kind::NetworkInterface => serde_json::to_value(st.nics.get(id)?),
        Kind::VirtualMachine => serde_json::to_value(st.vms.get(id)?),
        Kind::VirtualNetworkGateway => serde_json::to_value(st.gateways.get(id)?),
        Kind::LocalNetworkGateway => serde_json::to_value(st.local_gateways.get(id)?),
        Kind::Connection => serde_json::to_value(st.connections.get(id)?),
        Kind::LoadBalancer => serde_json::to_value(st.load_balancers.get(id)?),
        Kind::PublicIpAddress => serde_json::to_value(st.public_ips.get(id)?),
        Kind::ApplicationSecurityGroup => serde_json::to_value(st.asgs.get(id)?),
        _ => return None,
    };
    v.ok()
}

/// A resource group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) body: Value,
}

/// Everything the server serves.
#[derive(Debug, Default)]
pub(crate) struct Core {
    pub(crate) engine: Engine,
    pub(crate) docs: HashMap<ResourceId, Doc>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) aux: BTreeMap<ResourceId, Doc>,
    pub(crate) principals: BTreeMap<String, ServicePrincipal>,
    /// Role definitions and assignments (copy on write: requests hold snapshots).
    pub(crate) rbac: Arc<Rbac>,
    /// Host agents' underlay addresses, by host name (registered by the agents).
    pub(crate) hosts: BTreeMap<String, String>,
    /// Which tenant owns each subscription (lowercase ids), kept with the subscriptions.
    pub(crate) sub_tenants: Arc<HashMap<String, String>>,
    /// Store operations staged by the current request, not yet handed to the committer.
    pending: Vec<Op>,
    /// The change log host agents follow.
    pub(crate) feed: crate::feed::FeedLog,
    /// Why writes are stopped: a commit failed and the state could not be read back.
    pub(crate) halted: Option<String>,
    /// Peering usage: the runs agents reported and the hourly records.
    pub(crate) meterbook: tessera_engine::metering::Meterbook,
}

/// A store failure as an ARM error.
pub(crate) fn store_error(e: StoreError) -> ArmError {
    match e {
        StoreError::Conflict { .. } => ArmError::with_status(
            409,
            "AnotherOperationInProgress",
            "Another operation on this or a dependent resource is in progress. Retry the request.",
        ),
        StoreError::Backend(m) if m.contains("request is too large") => ArmError::with_status(
            413,
            "StoreRequestTooLarge",
            "The change is larger than the store takes in one transaction (etcd's --max-request-bytes, 1.5 MiB by \
             default; each document is written twice, with its change-log entry). Split it, or raise the limit.",
        ),
        other => {
            tracing::error!(error = %other, "the store failed");
            ArmError::with_status(500, "InternalServerError", format!("The store failed: {other}"))
        }
    }
}

pub(crate) fn parse_record(bytes: &[u8]) -> Result<(String, Value), ArmError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        tracing::error!(error = %e, "a stored record is corrupt");
        ArmError::with_status(500, "InternalServerError", format!("a stored record is corrupt: {e}"))
    })?;
    let version = v.get("v").and_then(Value::as_u64).unwrap_or(0);
    if version > RECORD_VERSION {
        return Err(ArmError::with_status(
            500,
            "InternalServerError",
            format!("a stored record has version {version}; this build reads up to {RECORD_VERSION}"),
        ));
    }
    let etag = v.get("etag").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok((etag, v.get("doc").cloned().unwrap_or(Value::Null)))
}

fn corrupt(what: &str, e: &serde_json::Error) -> ArmError {
    tracing::error!(error = %e, "{what} in the store is corrupt");
    ArmError::with_status(500, "InternalServerError", format!("{what} in the store is corrupt: {e}"))
}

/// The store key of a usage record: its hour first, so records list in time order.
fn usage_key(k: &UsageKey) -> String {
    format!("{USAGE_RECORD_PREFIX}{:010}/{}|{}|{:?}", k.hour, k.vnet.key(), k.remote.key(), k.direction)
}

/// The store key of a minute of the per-minute series.
fn minute_key(k: &UsageKey) -> String {
    format!("{USAGE_MINUTE_PREFIX}{:010}/{}|{}|{:?}", k.hour, k.vnet.key(), k.remote.key(), k.direction)
}

pub(crate) fn doc_from(etag: String, raw: Value) -> Doc {
    let bytes = Bytes::from(stamp(raw.clone(), &etag).to_string());
    Doc { etag, raw: Arc::new(raw), bytes }
}

impl Core {
    /// Loads everything from the store.
    pub(crate) fn load(store: &dyn Store, limits: Limits) -> Result<Core, ArmError> {
        let list = |prefix: &str| store.list(prefix).map(|(items, _)| items).map_err(store_error);
        let mut resources: Vec<Resource> = Vec::new();
        for e in list("sub/")? {
            let (_, doc) = parse_record(&e.value)?;
            resources.extend(tessera_model::resource::from_arm_json(doc)?);
        }
        let mut etags = HashMap::new();
        for e in list("doc/")? {
            let (etag, doc) = parse_record(&e.value)?;
            resources.extend(tessera_model::resource::from_arm_json(doc.clone())?);
            if let Some(id) = doc.get("id").and_then(Value::as_str).and_then(|s| ResourceId::parse(s).ok()) {
                etags.insert(id, etag);
            }
        }
        let sequence = store.get(SEQUENCE_KEY).map_err(store_error)?;
        let seq = sequence.as_ref().and_then(|e| serde_json::from_slice::<u64>(&e.value).ok()).unwrap_or(0);
        let engine = load::restore(resources, seq, limits)?;
        let feed_revision = store
            .get(crate::feed::REVISION_KEY)
            .map_err(store_error)?
            .and_then(|e| serde_json::from_slice::<u64>(&e.value).ok())
            .unwrap_or(0);
        let mut core = Core { engine, feed: crate::feed::FeedLog::starting_at(feed_revision), ..Core::default() };
        for (id, etag) in etags {
            // The document is rendered from the engine, so what GET shows is what it computes.
            if let Some(raw) = render(&core.engine, &id) {
                core.docs.insert(id, doc_from(etag, raw));
            }
        }
        for e in list("rg/")? {
            let (_, body) = parse_record(&e.value)?;
            core.groups.insert(e.key.trim_start_matches("rg/").to_string(), Group { body });
        }
        for e in list("aux/")? {
            let (etag, raw) = parse_record(&e.value)?;
            if let Some(id) = raw.get("id").and_then(Value::as_str).and_then(|s| ResourceId::parse(s).ok()) {
                core.aux.insert(id, doc_from(etag, raw));
            }
        }
        for e in list(PRINCIPAL_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            if let Ok(sp) = serde_json::from_value::<ServicePrincipal>(body) {
                core.principals.insert(sp.client_id.to_ascii_lowercase(), sp);
            }
        }
        let mut rbac = Rbac::with_builtins();
        for e in list(DEFINITION_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            if let Ok(d) = serde_json::from_value::<RoleDefinition>(body) {
                rbac.definitions.insert(d.name.to_ascii_lowercase(), d);
            }
        }
        for e in list(ASSIGNMENT_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            if let Ok(a) = serde_json::from_value::<RoleAssignment>(body) {
                rbac.assign(a);
            }
        }
        core.rbac = Arc::new(rbac);
        core.refresh_tenants();
        for e in list(HOST_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            if let Some(addr) = body.get("underlay").and_then(Value::as_str) {
                core.hosts.insert(e.key.trim_start_matches(HOST_PREFIX).to_string(), addr.to_string());
            }
        }
        for e in list(USAGE_RUNS_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            let runs = serde_json::from_value(body).map_err(|e| corrupt("usage runs", &e))?;
            core.meterbook.runs.insert(e.key.trim_start_matches(USAGE_RUNS_PREFIX).to_string(), runs);
        }
        for e in list(USAGE_RECORD_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            let r: UsageRecord = serde_json::from_value(body).map_err(|e| corrupt("a usage record", &e))?;
            core.meterbook.records.insert(r.key.clone(), r);
        }
        for e in list(USAGE_MINUTE_PREFIX)? {
            let (_, body) = parse_record(&e.value)?;
            let (key, bytes, packets): (UsageKey, u64, u64) =
                serde_json::from_value(body).map_err(|e| corrupt("a usage minute", &e))?;
            core.meterbook.minutes.insert(key, (bytes, packets));
        }
        Ok(core)
    }

    /// Counts a host's usage report received at `now` (seconds since the epoch); stages the
    /// host's runs and the records it changed.
    pub(crate) fn take_usage(&mut self, host: &str, report: &UsageReport, now: u64) -> Result<Taken, ArmError> {
        let taken = self.meterbook.take(&self.engine, host, report, now)?;
        if let Taken::Counted { records, minutes, expired, .. } = &taken {
            let host = host.to_ascii_lowercase();
            let runs = serde_json::to_value(self.meterbook.runs.get(&host)).unwrap_or_default();
            self.pending.push(Op::put(format!("{USAGE_RUNS_PREFIX}{host}"), record("", &runs)));
            for key in records {
                if let Some(r) = self.meterbook.records.get(key) {
                    let body = serde_json::to_value(r).unwrap_or_default();
                    self.pending.push(Op::put(usage_key(key), record("", &body)));
                }
            }
            for key in minutes {
                if let Some(m) = self.meterbook.minutes.get(key) {
                    self.pending.push(Op::put(minute_key(key), record("", &json!([key, m.0, m.1]))));
                }
            }
            for key in expired {
                self.pending.push(Op::delete(minute_key(key)));
            }
        }
        Ok(taken)
    }

    /// The operations staged since the last call.
    pub(crate) fn take_pending(&mut self) -> Vec<Op> {
        std::mem::take(&mut self.pending)
    }

    /// Applies changes: validated by the engine, then every document they changed staged for
    /// the store. All or nothing: when a later change is refused after an earlier one was
    /// applied, the engine is put back as it was. Returns the documents that changed.
    pub(crate) fn apply(&mut self, changes: Vec<Change>) -> Result<Vec<ResourceId>, ArmError> {
        let saved = (changes.len() > 1).then(|| self.engine.clone());
        let mut named = std::collections::BTreeSet::new();
        for change in changes {
            match self.engine.apply(change) {
                Ok(ids) => named.extend(ids),
                Err(e) => {
                    if let Some(engine) = saved {
                        self.engine = engine;
                    }
                    return Err(e);
                }
            }
        }
        let mut entries: Vec<(ResourceId, Option<Bytes>, Option<Bytes>)> = Vec::new();
        for id in named {
            let old = self.docs.get(&id);
            let before = old.map(|d| d.bytes.clone());
            match render(&self.engine, &id) {
                Some(raw) => {
                    if old.is_some_and(|d| *d.raw == raw) {
                        continue;
                    }
                    let etag = new_etag();
                    self.pending.push(Op::put(doc_key(&id), record(&etag, &raw)));
                    let doc = doc_from(etag, raw);
                    self.docs.insert(id.clone(), doc.clone());
                    entries.push((id, Some(doc.bytes), before));
                }
                None => {
                    if old.is_none() {
                        continue;
                    }
                    self.pending.push(Op::delete(doc_key(&id)));
                    self.docs.remove(&id);
                    entries.push((id, None, before));
                }
            }
        }
        let changed: Vec<ResourceId> = entries.iter().map(|e| e.0.clone()).collect();
        if !changed.is_empty() {
            self.pending.push(Op::put(SEQUENCE_KEY, self.engine.sequence().to_string().into_bytes()));
            let revision = self.feed.record(entries);
            self.pending.push(Op::put(crate::feed::REVISION_KEY, revision.to_string().into_bytes()));
        }
        Ok(changed)
    }

    /// After the state another server wrote was read into `self`: the feed log of `before`
    /// goes on, with the documents that changed recorded at the stored revision, so that agents
    /// following this server resume without a snapshot.
    pub(crate) fn carry_feed(&mut self, before: &mut Core) {
        let stored = self.feed.revision();
        let mut changed: Vec<(ResourceId, Option<Bytes>)> = Vec::new();
        for (id, doc) in &self.docs {
            if before.docs.get(id).is_none_or(|d| d.etag != doc.etag) {
                changed.push((id.clone(), Some(doc.bytes.clone())));
            }
        }
        changed.extend(before.docs.keys().filter(|id| !self.docs.contains_key(*id)).map(|id| (id.clone(), None)));
        self.feed = std::mem::take(&mut before.feed);
        self.feed.record_at(stored, changed);
    }

    /// Creates or replaces a subscription (an engine resource kept under `sub/`).
    pub(crate) fn put_subscription(&mut self, sub: tessera_model::account::Subscription) -> Result<(), ArmError> {
        let key = format!("sub/{}", sub.subscription_id.to_ascii_lowercase());
        let doc = serde_json::to_value(&sub).unwrap_or_default();
        self.engine.apply(Change::Put(Resource::Subscription(sub)))?;
        self.pending.push(Op::put(key, record("", &doc)));
        self.refresh_tenants();
        Ok(())
    }

    fn refresh_tenants(&mut self) {
        let map = self
            .engine
            .state()
            .subscriptions
            .values()
            .map(|s| (s.subscription_id.to_ascii_lowercase(), s.tenant_id.to_ascii_lowercase()))
            .collect();
        self.sub_tenants = Arc::new(map);
    }

    /// What an authorization decision needs, as of now.
    pub(crate) fn access(&self) -> Access {
        Access { rbac: self.rbac.clone(), tenants: self.sub_tenants.clone() }
    }

    /// Registers a host agent's underlay address; agents following the feed learn it at the
    /// next revision. Whether it changed.
    pub(crate) fn put_host(&mut self, name: &str, underlay: &str) -> bool {
        let name = name.to_ascii_lowercase();
        if self.hosts.get(&name).is_some_and(|a| a == underlay) {
            return false;
        }
        self.pending.push(Op::put(format!("{HOST_PREFIX}{name}"), record("", &json!({"underlay": underlay}))));
        self.hosts.insert(name, underlay.to_string());
        let revision = self.feed.record(Vec::new());
        self.pending.push(Op::put(crate::feed::REVISION_KEY, revision.to_string().into_bytes()));
        true
    }

    /// Stores a role assignment.
    pub(crate) fn put_assignment(&mut self, a: RoleAssignment) {
        let body = serde_json::to_value(&a).unwrap_or_default();
        self.pending.push(Op::put(format!("{ASSIGNMENT_PREFIX}{}", a.name.to_ascii_lowercase()), record("", &body)));
        Arc::make_mut(&mut self.rbac).assign(a);
    }

    /// Removes a role assignment; the removed one.
    pub(crate) fn delete_assignment(&mut self, name: &str) -> Option<RoleAssignment> {
        let gone = Arc::make_mut(&mut self.rbac).unassign(name)?;
        self.pending.push(Op::delete(format!("{ASSIGNMENT_PREFIX}{}", name.to_ascii_lowercase())));
        Some(gone)
    }

    /// Stores a custom role definition.
    pub(crate) fn put_definition(&mut self, d: RoleDefinition) {
        let body = serde_json::to_value(&d).unwrap_or_default();
        self.pending.push(Op::put(format!("{DEFINITION_PREFIX}{}", d.name.to_ascii_lowercase()), record("", &body)));
        Arc::make_mut(&mut self.rbac).definitions.insert(d.name.to_ascii_lowercase(), d);
    }

    /// Removes a custom role definition; the removed one.
    pub(crate) fn delete_definition(&mut self, name: &str) -> Option<RoleDefinition> {
        let gone = Arc::make_mut(&mut self.rbac).definitions.remove(&name.to_ascii_lowercase())?;
        self.pending.push(Op::delete(format!("{DEFINITION_PREFIX}{}", name.to_ascii_lowercase())));
        Some(gone)
    }

    /// Creates or replaces a resource group; returns whether it is new.
    pub(crate) fn put_group(&mut self, sub: &str, rg: &str, body: Value) -> bool {
        let key = group_key(sub, rg);
        self.pending.push(Op::put(key.clone(), record("", &body)));
        self.groups.insert(key.trim_start_matches("rg/").to_string(), Group { body }).is_none()
    }

    /// Removes a resource group's record.
    pub(crate) fn delete_group(&mut self, sub: &str, rg: &str) {
        let key = group_key(sub, rg);
        self.pending.push(Op::delete(key.clone()));
        self.groups.remove(key.trim_start_matches("rg/"));
    }

    /// The resource group, if it exists.
    pub(crate) fn group(&self, sub: &str, rg: &str) -> Option<&Group> {
        self.groups.get(group_key(sub, rg).trim_start_matches("rg/"))
    }

    /// The subscription (and the resource group, when named) must exist: 404
    /// `SubscriptionNotFound` or `ResourceGroupNotFound` otherwise.
    pub(crate) fn check_scope(&self, sub: &str, rg: Option<&str>) -> Result<(), ArmError> {
        if !self.engine.state().subscriptions.contains_key(&sub.to_ascii_lowercase()) {
            return Err(crate::identity::subscription_not_found(sub));
        }
        match rg {
            Some(rg) if self.group(sub, rg).is_none() => Err(crate::groups::group_not_found(rg)),
            _ => Ok(()),
        }
    }

    /// Every document (engine and API-only) of a subscription, or of one of its resource
    /// groups, ordered by id.
    pub(crate) fn docs_in(&self, sub: &str, rg: Option<&str>) -> Vec<(&ResourceId, &Doc)> {
        let mut found: Vec<(&ResourceId, &Doc)> = self
            .docs
            .iter()
            .chain(self.aux.iter())
            .filter(|(id, _)| {
                id.subscription().eq_ignore_ascii_case(sub)
                    && rg.is_none_or(|rg| id.resource_group().eq_ignore_ascii_case(rg))
            })
            .collect();
        found.sort_by(|a, b| a.0.key().cmp(b.0.key()));
        found
    }

    /// Creates or replaces an API-only resource; returns whether it is new.
    pub(crate) fn put_aux(&mut self, id: &ResourceId, raw: Value) -> bool {
        let old = self.aux.get(id);
        if old.is_some_and(|d| *d.raw == raw) {
            return false;
        }
        let created = old.is_none();
        let etag = new_etag();
        self.pending.push(Op::put(aux_key(id), record(&etag, &raw)));
        self.aux.insert(id.clone(), doc_from(etag, raw));
        created
    }

    /// Deletes an API-only resource; returns whether it existed.
    pub(crate) fn delete_aux(&mut self, id: &ResourceId) -> bool {
        if self.aux.remove(id).is_none() {
            return false;
        }
        self.pending.push(Op::delete(aux_key(id)));
        true
    }

    /// Stores a service principal.
    pub(crate) fn put_principal(&mut self, sp: ServicePrincipal) {
        let body = serde_json::to_value(&sp).unwrap_or_default();
        self.pending
            .push(Op::put(format!("{PRINCIPAL_PREFIX}{}", sp.client_id.to_ascii_lowercase()), record("", &body)));
        self.principals.insert(sp.client_id.to_ascii_lowercase(), sp);
    }

    /// The document holding `id` (a top-level engine document or an API-only resource).
    pub(crate) fn doc(&self, id: &ResourceId) -> Option<&Doc> {
        self.docs.get(id).or_else(|| self.aux.get(id))
    }
}
