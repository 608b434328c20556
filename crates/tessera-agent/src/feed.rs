//! Following the controller's watch feed (`GET /tessera/feed/{host}`): a snapshot, then the
//! documents changed since the revision held (long poll). The engine is built from the
//! documents (the one compiler, DESIGN.md), so the agent's programs are the server's: in full
//! from a snapshot, then each change put into it as stored (`load::replace_documents`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tessera_engine::{Engine, Limits, load};
use tessera_model::{ArmError, Resource, ResourceId};

use crate::session::{Session, unreachable};

/// What the controller wants this host to run.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The feed revision it reflects.
    pub revision: u64,
    /// The engine built from every document.
    pub engine: Arc<Engine>,
    /// The NICs whose ports run on this host, in order.
    pub ports: Vec<ResourceId>,
    /// Every registered host's underlay address.
    pub hosts: Vec<(String, std::net::IpAddr)>,
}

/// The state of one host's feed.
#[derive(Debug)]
pub struct Follower {
    session: Session,
    host: String,
    revision: Option<u64>,
    /// The documents held, each parsed once when it arrives.
    documents: BTreeMap<ResourceId, Vec<Resource>>,
    /// The engine built from them and the subscriptions it was built with: a change is put
    /// into a copy of it (`load::replace_documents`), not built from every document again.
    built: Option<(Arc<Engine>, Value)>,
}

impl Follower {
    /// A follower of `host`'s feed that has seen nothing yet.
    pub fn new(session: Session, host: &str) -> Self {
        Follower { session, host: host.to_string(), revision: None, documents: BTreeMap::new(), built: None }
    }

    /// The revision held.
    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    /// The session it follows with.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Replaces the session (after signing in again).
    pub fn set_session(&mut self, session: Session) {
        self.session = session;
    }

    /// One request of the feed: waits up to `wait_s` seconds for a change past the revision
    /// held. `None` when nothing changed.
    pub async fn poll(&mut self, wait_s: u64) -> Result<Option<Desired>, ArmError> {
        let mut url =
            format!("{}/tessera/feed/{}?api-version=2024-05-01&timeout={wait_s}", self.session.endpoint, self.host);
        if let Some(r) = self.revision {
            url.push_str(&format!("&revision={r}"));
        }
        let r = self.session.client.get(url).bearer_auth(&self.session.token).send().await.map_err(unreachable)?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.map_err(unreachable)?;
        if status != 200 {
            let mut e: ArmError = serde_json::from_value(body["error"].clone())
                .unwrap_or_else(|_| ArmError::with_status(status, "FeedFailed", body.to_string()));
            e.status = status;
            return Err(e);
        }
        let revision = body["revision"].as_u64().unwrap_or(0);
        let snapshot = body["snapshot"].as_bool().unwrap_or(true);
        if !snapshot && Some(revision) == self.revision {
            return Ok(None);
        }
        let built =
            self.apply(body, snapshot).and_then(|(body, changed)| Ok((self.build(&body, snapshot, changed)?, body)));
        let (engine, body) = match built {
            Ok((e, body)) => (e, body),
            Err(e) => {
                // Asked for again from the same revision: the held programs go on meanwhile.
                tracing::error!(revision, code = %e.code, "the feed's documents do not load: {}", e.message);
                return Err(e);
            }
        };
        self.revision = Some(revision);
        // Placed from the documents (durable), not from the server's state in memory.
        let ports: Vec<ResourceId> =
            tessera_engine::placement::ports_on(&engine, &self.host).into_iter().map(|p| p.nic.clone()).collect();
        let hosts = body["hosts"]
            .as_object()
            .map(|m| m.iter().filter_map(|(h, a)| Some((h.clone(), a.as_str()?.parse().ok()?))).collect::<Vec<_>>())
            .unwrap_or_default();
        Ok(Some(Desired { revision, engine, ports, hosts }))
    }

    /// Registers this host's underlay address with the controller (`PUT /tessera/hosts/{host}`).
    pub async fn register(&self, underlay: std::net::IpAddr) -> Result<(), ArmError> {
        let url = format!("{}/tessera/hosts/{}", self.session.endpoint, self.host);
        let r = self
            .session
            .client
            .put(url)
            .bearer_auth(&self.session.token)
            .json(&serde_json::json!({"underlay": underlay.to_string()}))
            .send()
            .await
            .map_err(unreachable)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(ArmError::with_status(
                r.status().as_u16(),
                "HostRegistrationFailed",
                r.text().await.unwrap_or_default(),
            ))
        }
    }

    /// Reports what a gateway's instance runs (`POST /tessera/hosts/{host}`).
    pub async fn report_gateway(
        &self,
        gw: &ResourceId,
        instance: &tessera_model::gateway::GatewayInstance,
    ) -> Result<(), ArmError> {
        let url = format!("{}/tessera/hosts/{}", self.session.endpoint, self.host);
        let body = serde_json::json!({"gateway": gw.as_str(), "instance": instance});
        let r = self
            .session
            .client
            .post(url)
            .bearer_auth(&self.session.token)
            .json(&body)
            .send()
            .await
            .map_err(unreachable)?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(ArmError::with_status(r.status().as_u16(), "GatewayReportFailed", r.text().await.unwrap_or_default()))
        }
    }

    /// Takes the documents of a feed answer into those held (a document that does not parse
    /// fails the answer, asked for again from the same revision); the rest of the answer.
    /// The answer without its documents, and the ids of the documents changed.
    fn apply(&mut self, mut body: Value, snapshot: bool) -> Result<(Value, Vec<ResourceId>), ArmError> {
        if snapshot {
            self.documents.clear();
        }
        let mut changed = Vec::new();
        for d in body["deleted"].as_array().into_iter().flatten() {
            if let Some(id) = d.as_str().and_then(|s| ResourceId::parse(s).ok()) {
                self.documents.remove(&id);
                changed.push(id);
            }
        }
        if let Some(Value::Array(docs)) = body.get_mut("documents").map(Value::take) {
            for d in docs {
                if let Some(id) = d["id"].as_str().and_then(|s| ResourceId::parse(s).ok()) {
                    self.documents.insert(id.clone(), tessera_model::resource::from_arm_json(d)?);
                    changed.push(id);
                }
            }
        }
        Ok((body, changed))
    }

    /// The engine of the documents held: the one built before with the `changed` documents put
    /// back as they are now, or (first, after a snapshot, or when the subscriptions changed)
    /// built from every document.
    fn build(&mut self, body: &Value, snapshot: bool, mut changed: Vec<ResourceId>) -> Result<Arc<Engine>, ArmError> {
        changed.sort();
        changed.dedup();
        let subscriptions = body["subscriptions"].clone();
        if let Some((engine, held)) = self.built.as_mut()
            && !snapshot
            && *held == subscriptions
        {
            let docs = changed
                .into_iter()
                .map(|id| {
                    let resources = self.documents.get(&id).cloned().unwrap_or_default();
                    (id, resources)
                })
                .collect();
            load::replace_documents(Arc::make_mut(engine), docs, 0);
            return Ok(engine.clone());
        }
        let engine = Arc::new(self.build_all(body)?);
        self.built = Some((engine.clone(), subscriptions));
        Ok(engine)
    }

    fn build_all(&self, body: &Value) -> Result<Engine, ArmError> {
        let mut resources = Vec::new();
        for s in body["subscriptions"].as_array().into_iter().flatten() {
            resources.extend(tessera_model::resource::from_arm_json(s.clone())?);
        }
        resources.extend(self.documents.values().flatten().cloned());
        load::restore(resources, 0, Limits::default())
    }
}
