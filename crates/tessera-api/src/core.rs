//! The server's state: the engine, every document as clients see it (with its etag), resource
//! groups, API-only resources (network watchers) and principals, all kept in the store.
//!
//! Every write goes through [`Core::apply`] under the server's write lock: the engine validates
//! the change against the whole state, the documents it names are rendered, and the ones that
//! changed are committed to the store in one transaction, with compare-and-set on the revision
//! each was read at. A refusal writes nothing; a failed commit reloads the state from the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tessera_engine::{Change, Engine, Limits, load};
use tessera_model::{ArmError, Kind, Resource, ResourceId};
use tessera_store::{Expect, Op, Revision, Store, StoreError};

use crate::auth::ServicePrincipal;

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
    /// The store revision that last wrote it.
    pub(crate) revision: Revision,
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

const SEQUENCE_KEY: &str = "meta/sequence";

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
        _ => return None,
    };
    v.ok()
}

/// A resource group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) body: Value,
    pub(crate) revision: Revision,
}

/// Everything the server serves.
#[derive(Debug, Default)]
pub(crate) struct Core {
    pub(crate) engine: Engine,
    pub(crate) docs: HashMap<ResourceId, Doc>,
    pub(crate) groups: BTreeMap<String, Group>,
    pub(crate) aux: BTreeMap<ResourceId, Doc>,
    pub(crate) principals: BTreeMap<String, ServicePrincipal>,
    sequence_revision: Option<Revision>,
}

fn store_error(e: StoreError) -> ArmError {
    match e {
        StoreError::Conflict { .. } => ArmError::with_status(
            409,
            "AnotherOperationInProgress",
            "Another operation on this or a dependent resource is in progress. Retry the request.",
        ),
        other => ArmError::with_status(500, "InternalServerError", format!("The store failed: {other}")),
    }
}

fn parse_record(bytes: &[u8]) -> Result<(String, Value), ArmError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ArmError::with_status(500, "InternalServerError", format!("a stored record is corrupt: {e}")))?;
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

fn doc_from(etag: String, raw: Value, revision: Revision) -> Doc {
    let bytes = Bytes::from(stamp(raw.clone(), &etag).to_string());
    Doc { etag, raw: Arc::new(raw), bytes, revision }
}

impl Core {
    /// Loads everything from the store.
    pub(crate) fn load(store: &dyn Store, limits: Limits) -> Result<Core, ArmError> {
        let (subs, _) = store.list("sub/").map_err(store_error)?;
        let (records, _) = store.list("doc/").map_err(store_error)?;
        let mut resources: Vec<Resource> = Vec::new();
        for e in &subs {
            let (_, doc) = parse_record(&e.value)?;
            resources.extend(tessera_model::resource::from_arm_json(doc)?);
        }
        let mut docs = HashMap::new();
        for e in &records {
            let (etag, doc) = parse_record(&e.value)?;
            resources.extend(tessera_model::resource::from_arm_json(doc.clone())?);
            let id = doc.get("id").and_then(Value::as_str).and_then(|s| ResourceId::parse(s).ok());
            if let Some(id) = id {
                docs.insert(id, (etag, e.revision));
            }
        }
        let sequence = store.get(SEQUENCE_KEY).map_err(store_error)?;
        let seq = sequence.as_ref().and_then(|e| serde_json::from_slice::<u64>(&e.value).ok()).unwrap_or(0);
        let engine = load::restore(resources, seq, limits)?;
        let mut core = Core { engine, sequence_revision: sequence.map(|e| e.revision), ..Core::default() };
        for (id, (etag, revision)) in docs {
            // The document is rendered from the engine, so what GET shows is what it computes.
            if let Some(raw) = render(&core.engine, &id) {
                core.docs.insert(id, doc_from(etag, raw, revision));
            }
        }
        for e in store.list("rg/").map_err(store_error)?.0 {
            let (_, body) = parse_record(&e.value)?;
            core.groups.insert(e.key.trim_start_matches("rg/").to_string(), Group { body, revision: e.revision });
        }
        for e in store.list("aux/").map_err(store_error)?.0 {
            let (etag, raw) = parse_record(&e.value)?;
            if let Some(id) = raw.get("id").and_then(Value::as_str).and_then(|s| ResourceId::parse(s).ok()) {
                core.aux.insert(id, doc_from(etag, raw, e.revision));
            }
        }
        for e in store.list("principal/").map_err(store_error)?.0 {
            let (_, body) = parse_record(&e.value)?;
            if let Ok(sp) = serde_json::from_value::<ServicePrincipal>(body) {
                core.principals.insert(sp.client_id.to_ascii_lowercase(), sp);
            }
        }
        Ok(core)
    }

    /// Commits `ops`; on failure reloads from the store so memory never runs ahead of it.
    fn commit(&mut self, store: &dyn Store, ops: &[Op]) -> Result<Revision, ArmError> {
        match store.commit(ops) {
            Ok(rev) => Ok(rev),
            Err(e) => {
                if let Ok(fresh) = Core::load(store, self.engine.limits().clone()) {
                    *self = fresh;
                }
                Err(store_error(e))
            }
        }
    }

    /// Applies changes: validated by the engine, then every document they changed committed
    /// in one transaction. All or nothing: when a later change is refused after an earlier one
    /// was applied, the state is reloaded from the store. Returns the documents that changed.
    pub(crate) fn apply(&mut self, store: &dyn Store, changes: Vec<Change>) -> Result<Vec<ResourceId>, ArmError> {
        let mut named = std::collections::BTreeSet::new();
        for (i, change) in changes.into_iter().enumerate() {
            match self.engine.apply(change) {
                Ok(ids) => named.extend(ids),
                Err(e) => {
                    if i > 0 {
                        *self = Core::load(store, self.engine.limits().clone())?;
                    }
                    return Err(e);
                }
            }
        }
        let mut ops = Vec::new();
        let mut updates: Vec<(ResourceId, Option<(String, Value)>)> = Vec::new();
        for id in named {
            let old = self.docs.get(&id);
            match render(&self.engine, &id) {
                Some(raw) => {
                    if old.is_some_and(|d| *d.raw == raw) {
                        continue;
                    }
                    let etag = new_etag();
                    let expect = old.map_or(Expect::Absent, |d| Expect::At(d.revision));
                    ops.push(Op::Put { key: doc_key(&id), value: record(&etag, &raw), expect });
                    updates.push((id, Some((etag, raw))));
                }
                None => {
                    if let Some(d) = old {
                        ops.push(Op::Delete { key: doc_key(&id), expect: Expect::At(d.revision) });
                        updates.push((id, None));
                    }
                }
            }
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let seq = self.engine.sequence();
        ops.push(Op::Put {
            key: SEQUENCE_KEY.into(),
            value: seq.to_string().into_bytes(),
            expect: self.sequence_revision.map_or(Expect::Absent, Expect::At),
        });
        let rev = self.commit(store, &ops)?;
        self.sequence_revision = Some(rev);
        let mut changed = Vec::new();
        for (id, update) in updates {
            match update {
                Some((etag, raw)) => {
                    self.docs.insert(id.clone(), doc_from(etag, raw, rev));
                }
                None => {
                    self.docs.remove(&id);
                }
            }
            changed.push(id);
        }
        Ok(changed)
    }

    /// Creates or replaces a subscription (an engine resource kept under `sub/`).
    pub(crate) fn put_subscription(
        &mut self,
        store: &dyn Store,
        sub: tessera_model::account::Subscription,
    ) -> Result<(), ArmError> {
        let key = format!("sub/{}", sub.subscription_id.to_ascii_lowercase());
        let doc = serde_json::to_value(&sub).unwrap_or_default();
        self.engine.apply(Change::Put(Resource::Subscription(sub)))?;
        self.commit(store, &[Op::put(key, record("", &doc))])?;
        Ok(())
    }

    /// Creates or replaces a resource group; returns whether it is new.
    pub(crate) fn put_group(&mut self, store: &dyn Store, sub: &str, rg: &str, body: Value) -> Result<bool, ArmError> {
        let key = group_key(sub, rg);
        let old = self.groups.get(key.trim_start_matches("rg/")).map(|g| g.revision);
        let expect = old.map_or(Expect::Absent, Expect::At);
        let rev = self.commit(store, &[Op::Put { key: key.clone(), value: record("", &body), expect }])?;
        let created = old.is_none();
        self.groups.insert(key.trim_start_matches("rg/").to_string(), Group { body, revision: rev });
        Ok(created)
    }

    /// Removes a resource group's record.
    pub(crate) fn delete_group(&mut self, store: &dyn Store, sub: &str, rg: &str) -> Result<(), ArmError> {
        let key = group_key(sub, rg);
        self.commit(store, &[Op::delete(key.clone())])?;
        self.groups.remove(key.trim_start_matches("rg/"));
        Ok(())
    }

    /// The resource group, if it exists.
    pub(crate) fn group(&self, sub: &str, rg: &str) -> Option<&Group> {
        self.groups.get(group_key(sub, rg).trim_start_matches("rg/"))
    }

    /// Creates or replaces an API-only resource; returns whether it is new.
    pub(crate) fn put_aux(&mut self, store: &dyn Store, id: &ResourceId, raw: Value) -> Result<bool, ArmError> {
        let old = self.aux.get(id);
        if old.is_some_and(|d| *d.raw == raw) {
            return Ok(false);
        }
        let expect = old.map_or(Expect::Absent, |d| Expect::At(d.revision));
        let created = old.is_none();
        let _ = old;
        let etag = new_etag();
        let rev = self.commit(store, &[Op::Put { key: aux_key(id), value: record(&etag, &raw), expect }])?;
        self.aux.insert(id.clone(), doc_from(etag, raw, rev));
        Ok(created)
    }

    /// Deletes an API-only resource; returns whether it existed.
    pub(crate) fn delete_aux(&mut self, store: &dyn Store, id: &ResourceId) -> Result<bool, ArmError> {
        if !self.aux.contains_key(id) {
            return Ok(false);
        }
        self.commit(store, &[Op::delete(aux_key(id))])?;
        self.aux.remove(id);
        Ok(true)
    }

    /// Stores a service principal.
    pub(crate) fn put_principal(&mut self, store: &dyn Store, sp: ServicePrincipal) -> Result<(), ArmError> {
        let body = serde_json::to_value(&sp).unwrap_or_default();
        self.commit(store, &[Op::put(format!("principal/{}", sp.client_id.to_ascii_lowercase()), record("", &body))])?;
        self.principals.insert(sp.client_id.to_ascii_lowercase(), sp);
        Ok(())
    }

    /// The document holding `id` (a top-level engine document or an API-only resource).
    pub(crate) fn doc(&self, id: &ResourceId) -> Option<&Doc> {
        self.docs.get(id).or_else(|| self.aux.get(id))
    }
}
