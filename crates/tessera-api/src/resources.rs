//! Network resources: GET, PUT, PATCH (tags), DELETE and lists of every top-level type the
//! engine models, of their child resources (addressed on their own or embedded in the parent)
//! and of network watchers. PUT and DELETE answer as ARM long-running operations (§5).

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tessera_engine::{Change, document_of};
use tessera_model::{ArmError, Kind, ResourceId};

use crate::core::{CHILD_COLLECTIONS, Core};
use crate::http::{App, OpHeaders, Req, finish_operation, json, page};
use crate::identity::method_not_allowed;
use crate::operations::Operation;
use crate::route::Route;

/// Top-level types whose documents the engine owns.
const ENGINE_TYPES: &[Kind] = &[
    Kind::VirtualNetwork,
    Kind::ClassicVirtualNetwork,
    Kind::NetworkSecurityGroup,
    Kind::RouteTable,
    Kind::NetworkInterface,
    Kind::VirtualMachine,
    Kind::VirtualNetworkGateway,
    Kind::LocalNetworkGateway,
    Kind::Connection,
    Kind::LoadBalancer,
    Kind::PublicIpAddress,
    Kind::ApplicationSecurityGroup,
];

/// Child collections that can be written on their own, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChildWrite {
    /// The engine validates the child itself (subnets, peering links).
    Engine,
    /// The parent is rewritten with the child replaced (security rules, routes, backend pools).
    Parent,
    /// Read-only (default rules, NIC IP configurations, the other load balancer parts).
    ReadOnly,
}

fn child_write(parent: Kind, collection: &str) -> ChildWrite {
    match (parent, collection) {
        (Kind::VirtualNetwork, "subnets" | "virtualNetworkPeerings") => ChildWrite::Engine,
        (Kind::NetworkSecurityGroup, "securityRules")
        | (Kind::RouteTable, "routes")
        | (Kind::LoadBalancer, "backendAddressPools") => ChildWrite::Parent,
        _ => ChildWrite::ReadOnly,
    }
}

fn invalid_type(id_type: &str, ns: &str, api_version: &str) -> ArmError {
    ArmError::bad_request(
        "InvalidResourceType",
        format!(
            "The resource type '{id_type}' could not be found in the namespace '{ns}' for api version '{api_version}'."
        ),
    )
}

fn known_namespace(ns: &str) -> Result<(), ArmError> {
    let known = ["Microsoft.Network", "Microsoft.Compute", "Microsoft.ClassicNetwork"];
    if known.iter().any(|k| k.eq_ignore_ascii_case(ns)) {
        Ok(())
    } else {
        Err(ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!("No registered resource provider found for the namespace '{ns}'."),
        ))
    }
}

/// The canonical name of a child collection segment.
fn collection(segment: &str) -> Option<&'static str> {
    CHILD_COLLECTIONS.iter().copied().find(|c| c.eq_ignore_ascii_case(segment))
}

fn top_not_found(id: &ResourceId) -> ArmError {
    ArmError::resource_not_found(&id.type_and_name(), id.resource_group())
}

/// Refuses ids of types Tessera does not serve; returns the child collection for a child id.
fn check_type(id: &ResourceId, req: &Req) -> Result<Option<&'static str>, ArmError> {
    known_namespace(id.namespace())?;
    let top = document_of(id);
    let top_ok = ENGINE_TYPES.contains(&top.kind()) || top.kind() == Kind::NetworkWatcher;
    if !top_ok {
        return Err(invalid_type(&top.type_and_name(), id.namespace(), &req.api_version));
    }
    if id.parent().is_none() {
        return Ok(None);
    }
    if id.parent().and_then(|p| p.parent()).is_some() {
        return Err(invalid_type(&id.type_and_name(), id.namespace(), &req.api_version));
    }
    let segment = id.as_str().rsplit('/').nth(1).unwrap_or_default();
    collection(segment).map(Some).ok_or_else(|| invalid_type(&id.type_and_name(), id.namespace(), &req.api_version))
}

/// The subscription and resource group of `id` must exist.
fn check_scope(core: &Core, id: &ResourceId) -> Result<(), ArmError> {
    core.check_scope(id.subscription(), Some(id.resource_group()))
}

/// The child `name` in `collection` of a stamped parent document.
fn find_child(parent: &Value, collection: &str, name: &str) -> Option<Value> {
    parent["properties"][collection]
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
        .cloned()
}

fn location_of(core: &Core, id: &ResourceId) -> String {
    core.doc(&document_of(id)).and_then(|d| d.raw["location"].as_str().map(str::to_string)).unwrap_or_default()
}

pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    match &req.route {
        Route::Resource(id) => {
            let coll = check_type(id, req)?;
            match (&req.method, coll) {
                (&Method::GET, _) => get(app, req, id, coll).await,
                // Resources_CheckExistence: 204 when it exists, 404 (no body) when not.
                (&Method::HEAD, None) => {
                    let found = get(app, req, id, None).await;
                    match found {
                        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
                        Err(e) if e.status == 404 => Ok(StatusCode::NOT_FOUND.into_response()),
                        Err(e) => Err(e),
                    }
                }
                (&Method::PUT, None) => put_top(app, req, id).await,
                (&Method::PUT, Some(c)) => put_child(app, req, id, c).await,
                (&Method::PATCH, None) => patch_tags(app, req, id).await,
                (&Method::DELETE, None) => delete_top(app, req, id).await,
                (&Method::DELETE, Some(c)) => delete_child(app, req, id, c).await,
                _ => Err(method_not_allowed(req)),
            }
        }
        Route::Children { parent, segment } if req.method == Method::GET => {
            check_type(parent, req)?;
            let coll = collection(segment).ok_or_else(|| {
                invalid_type(&format!("{}/{segment}", parent.kind().arm_type()), parent.namespace(), &req.api_version)
            })?;
            req.authorize(&format!("{}/read", parent.kind().arm_type()), parent.as_str())?;
            let core = app.core.read().await;
            check_scope(&core, parent)?;
            let doc = core.doc(parent).ok_or_else(|| top_not_found(parent))?;
            let stamped = doc.stamped();
            drop(core);
            let items: Vec<Bytes> = stamped["properties"][coll]
                .as_array()
                .map(|a| a.iter().map(|v| Bytes::from(v.to_string())).collect())
                .unwrap_or_default();
            page(app, req, &items)
        }
        Route::ListInGroup { sub, arm_type, .. } | Route::ListInSubscription { sub, arm_type }
            if req.method == Method::GET =>
        {
            let ns = arm_type.split('/').next().unwrap_or_default();
            known_namespace(ns)?;
            let kind = Kind::from_arm_type(arm_type);
            if !(ENGINE_TYPES.contains(&kind) || kind == Kind::NetworkWatcher) {
                return Err(invalid_type(arm_type, ns, &req.api_version));
            }
            let rg = match &req.route {
                Route::ListInGroup { rg, .. } => Some(rg.as_str()),
                _ => None,
            };
            let scope = match rg {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                None => format!("/subscriptions/{sub}"),
            };
            req.authorize(&format!("{}/read", kind.arm_type()), &scope)?;
            let core = app.core.read().await;
            core.check_scope(sub, rg)?;
            let items: Vec<Bytes> = core
                .docs_in(sub, rg)
                .into_iter()
                .filter(|(id, _)| id.kind() == kind)
                .map(|(_, d)| d.bytes.clone())
                .collect();
            drop(core);
            page(app, req, &items)
        }
        _ => Err(method_not_allowed(req)),
    }
}

async fn get(app: &App, req: &Req, id: &ResourceId, coll: Option<&str>) -> Result<Response, ArmError> {
    req.authorize(&format!("{}/read", document_of(id).kind().arm_type()), id.as_str())?;
    let core = app.core.read().await;
    check_scope(&core, id)?;
    match coll {
        None => {
            let doc = core.doc(id).ok_or_else(|| top_not_found(id))?;
            Ok(with_etag(json(StatusCode::OK, doc.bytes.clone()), &doc.etag))
        }
        Some(c) => {
            let parent = document_of(id);
            let doc = core.doc(&parent).ok_or_else(|| top_not_found(&parent))?;
            let child = find_child(&doc.stamped(), c, id.name()).ok_or_else(|| ArmError::not_found(id.as_str()))?;
            Ok(with_etag(json(StatusCode::OK, child.to_string()), &doc.etag))
        }
    }
}

fn with_etag(mut r: Response, etag: &str) -> Response {
    if let Ok(v) = axum::http::HeaderValue::from_str(etag) {
        r.headers_mut().insert(axum::http::header::ETAG, v);
    }
    r
}

/// Server-owned fields of a peering link that clients round-trip from GET (O8): ignored.
const LINK_READ_ONLY: &[&str] = &[
    "peeringState",
    "peeringSyncLevel",
    "remoteAddressSpace",
    "remoteVirtualNetworkAddressSpace",
    "localAddressSpace",
    "localVirtualNetworkAddressSpace",
    "remoteGateways",
    "remoteBgpCommunities",
    "remoteVirtualNetworkEncryption",
    "routeServiceVips",
];

/// Drops read-only fields a client may send back (arm-api.md §1: ignore, never reject):
/// `provisioningState` and `etag` everywhere, a link's server-owned fields.
fn strip_read_only(body: &mut Map<String, Value>, link: bool) {
    body.remove("etag");
    let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) else { return };
    props.remove("provisioningState");
    if link {
        for field in LINK_READ_ONLY {
            props.remove(*field);
        }
    }
    for name in CHILD_COLLECTIONS {
        let is_link = *name == "virtualNetworkPeerings";
        if let Some(items) = props.get_mut(*name).and_then(Value::as_array_mut) {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                strip_read_only(item, is_link);
            }
        }
    }
}

/// The request body with the URL's identity (O8: the URL wins over body `id`, `name`, `type`).
fn body_for(req: &Req, id: &ResourceId, kind_type: &str) -> Result<Map<String, Value>, ArmError> {
    let mut body = req.json()?;
    body.insert("id".into(), json!(id.as_str()));
    body.insert("name".into(), json!(id.name()));
    body.insert("type".into(), json!(kind_type));
    match body.get("properties") {
        None | Some(Value::Null) => {
            body.insert("properties".into(), json!({}));
        }
        Some(Value::Object(_)) => {}
        Some(_) => return Err(ArmError::bad_request("InvalidRequestContent", "properties must be an object.")),
    }
    strip_read_only(&mut body, id.kind() == Kind::Peering);
    crate::linked::strip_back_references(kind_type, &mut body);
    Ok(body)
}

fn parse_resource(value: Value) -> Result<tessera_model::Resource, ArmError> {
    tessera_model::lb::refuse_unoffered_sku(&value)?;
    tessera_model::resource::from_arm_json(value)?
        .into_iter()
        .next()
        .ok_or_else(|| ArmError::bad_request("InvalidRequestContent", "The request names no resource."))
}

fn created_status(created: bool) -> StatusCode {
    if created { StatusCode::CREATED } else { StatusCode::OK }
}

async fn put_top(app: &App, req: &Req, id: &ResourceId) -> Result<Response, ArmError> {
    req.authorize(&format!("{}/write", id.kind().arm_type()), id.as_str())?;
    let mut body = body_for(req, id, id.kind().arm_type())?;
    match body.get("location") {
        Some(Value::String(l)) if !l.trim().is_empty() => {}
        _ => {
            return Err(ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            ));
        }
    }
    if id.kind() == Kind::NetworkWatcher {
        let location = body["location"].as_str().unwrap_or_default().to_string();
        let location = tessera_model::location::require(&location, id.as_str())?.name;
        let tags = body.get("tags").cloned().unwrap_or(json!({}));
        if !tags.as_object().is_some_and(|t| t.values().all(Value::is_string)) {
            return Err(ArmError::bad_request("InvalidRequestContent", "tags must be an object of strings."));
        }
        let raw = json!({"id": id.as_str(), "name": id.name(), "type": Kind::NetworkWatcher.arm_type(),
                         "location": location, "tags": tags, "properties": {"provisioningState": "Succeeded"}});
        let (created, bytes) = app
            .write(|core| {
                check_scope(core, id)?;
                req.check_preconditions(core.aux.get(id).map(|d| d.etag.as_str()))?;
                let created = core.put_aux(id, raw.clone());
                Ok((created, core.aux.get(id).map(|d| d.bytes.clone()).unwrap_or_default()))
            })
            .await?;
        // Network watchers are created synchronously (networkWatcher.json).
        return Ok(json(created_status(created), bytes));
    }
    if id.kind() == Kind::VirtualNetwork
        && let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut)
    {
        // O8: links are never created, changed or deleted through the VNet's embedded list.
        props.remove("virtualNetworkPeerings");
    }
    crate::linked::authorize_references(req, id.kind().arm_type(), &body)?;
    crate::linked::authorize_simulation(req, id.kind(), body.get("tags"))?;
    let resource = parse_resource(Value::Object(body))?;
    let (created, bytes, location) = app
        .write(|core| {
            check_scope(core, id)?;
            let existing = core.doc(id).map(|d| d.etag.clone());
            req.check_preconditions(existing.as_deref())?;
            core.apply(vec![Change::Put(resource.clone())])?;
            let doc = core.doc(id).ok_or_else(|| top_not_found(id))?;
            Ok((existing.is_none(), doc.bytes.clone(), location_of(core, id)))
        })
        .await?;
    let mut r = json(created_status(created), bytes);
    done(app, req, &mut r, id, &location, OpHeaders::Status);
    Ok(r)
}

async fn patch_tags(app: &App, req: &Req, id: &ResourceId) -> Result<Response, ArmError> {
    req.authorize(&format!("{}/write", id.kind().arm_type()), id.as_str())?;
    let body = req.json()?;
    // A PATCH without `tags` keeps them; with `tags` it replaces the set (ARM's updateTags).
    let tags = body.get("tags").cloned();
    if tags.as_ref().is_some_and(|t| !t.as_object().is_some_and(|t| t.values().all(Value::is_string))) {
        return Err(ArmError::bad_request("InvalidRequestContent", "tags must be an object of strings."));
    }
    crate::linked::authorize_simulation(req, id.kind(), tags.as_ref())?;
    let bytes = app
        .write(|core| {
            check_scope(core, id)?;
            let doc = core.doc(id).ok_or_else(|| top_not_found(id))?;
            req.check_preconditions(Some(&doc.etag))?;
            let mut raw = (*doc.raw).clone();
            if let Some(tags) = tags.clone() {
                raw["tags"] = tags;
            }
            if id.kind() == Kind::NetworkWatcher {
                core.put_aux(id, raw);
            } else {
                core.apply(vec![Change::Put(parse_resource(raw)?)])?;
            }
            Ok(core.doc(id).map(|d| d.bytes.clone()).unwrap_or_default())
        })
        .await?;
    Ok(json(StatusCode::OK, bytes))
}

async fn delete_top(app: &App, req: &Req, id: &ResourceId) -> Result<Response, ArmError> {
    req.authorize(&format!("{}/delete", id.kind().arm_type()), id.as_str())?;
    let deleted = app
        .write(|core| {
            check_scope(core, id)?;
            let Some(doc) = core.doc(id) else { return Ok(None) };
            req.check_preconditions(Some(&doc.etag))?;
            let location = location_of(core, id);
            if id.kind() == Kind::NetworkWatcher {
                core.delete_aux(id);
            } else {
                core.apply(vec![Change::Delete(id.clone())])?;
            }
            Ok(Some(location))
        })
        .await?;
    accepted_delete(app, req, id, deleted)
}

/// Adds the headers of a finished operation on `id` (in `location`) to a response.
fn done(app: &App, req: &Req, r: &mut Response, id: &ResourceId, location: &str, headers: OpHeaders) {
    let op = Operation { error: None, result: None };
    finish_operation(app, req, r, (id.subscription(), id.namespace(), location), op, headers);
}

/// 202 with both operation URLs once deleted; 204 when there was nothing to delete.
fn accepted_delete(app: &App, req: &Req, id: &ResourceId, deleted: Option<String>) -> Result<Response, ArmError> {
    let Some(location) = deleted else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut r = StatusCode::ACCEPTED.into_response();
    done(app, req, &mut r, id, &location, OpHeaders::Both);
    Ok(r)
}

/// The parent document with `child` put into (or, when `None`, removed from) `collection`.
fn rewrite_parent(raw: &Value, collection: &str, name: &str, child: Option<Value>) -> Value {
    let mut parent = raw.clone();
    let items = parent["properties"][collection].as_array().cloned().unwrap_or_default();
    let mut items: Vec<Value> =
        items.into_iter().filter(|c| !c["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))).collect();
    items.extend(child);
    parent["properties"][collection] = Value::Array(items);
    parent
}

async fn put_child(app: &App, req: &Req, id: &ResourceId, coll: &str) -> Result<Response, ArmError> {
    let parent = document_of(id);
    let how = child_write(parent.kind(), coll);
    if how == ChildWrite::ReadOnly {
        return Err(method_not_allowed(req));
    }
    let child_type = format!("{}/{coll}", parent.kind().arm_type());
    req.authorize(&format!("{child_type}/write"), id.as_str())?;
    let body = body_for(req, id, &child_type)?;
    crate::linked::authorize_references(req, &child_type, &body)?;
    let sync = req.query("syncRemoteAddressSpace").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let (created, child, location) = app
        .write(|core| {
            check_scope(core, id)?;
            let doc = core.doc(&parent).ok_or_else(|| top_not_found(&parent))?;
            req.check_preconditions(Some(&doc.etag))?;
            let existed = find_child(&doc.raw, coll, id.name()).is_some();
            let changes = match how {
                ChildWrite::Engine => {
                    let mut changes = vec![Change::Put(parse_resource(Value::Object(body.clone()))?)];
                    if sync && id.kind() == Kind::Peering && existed {
                        changes.push(Change::SyncPeering(id.clone()));
                    }
                    changes
                }
                _ => {
                    let item = json!({"id": id.as_str(), "name": id.name(), "type": child_type,
                                      "properties": body.get("properties").cloned().unwrap_or(json!({}))});
                    vec![Change::Put(parse_resource(rewrite_parent(&doc.raw, coll, id.name(), Some(item)))?)]
                }
            };
            core.apply(changes)?;
            let doc = core.doc(&parent).ok_or_else(|| top_not_found(&parent))?;
            let child = find_child(&doc.stamped(), coll, id.name()).ok_or_else(|| ArmError::not_found(id.as_str()))?;
            Ok((!existed, child, location_of(core, id)))
        })
        .await?;
    let mut r = json(created_status(created), child.to_string());
    done(app, req, &mut r, id, &location, OpHeaders::Status);
    Ok(r)
}

async fn delete_child(app: &App, req: &Req, id: &ResourceId, coll: &str) -> Result<Response, ArmError> {
    let parent = document_of(id);
    let how = child_write(parent.kind(), coll);
    if how == ChildWrite::ReadOnly {
        return Err(method_not_allowed(req));
    }
    req.authorize(&format!("{}/{coll}/delete", parent.kind().arm_type()), id.as_str())?;
    let deleted = app
        .write(|core| {
            check_scope(core, id)?;
            let Some(doc) = core.doc(&parent) else { return Ok(None) };
            if find_child(&doc.raw, coll, id.name()).is_none() {
                return Ok(None);
            }
            req.check_preconditions(Some(&doc.etag))?;
            let change = match how {
                ChildWrite::Engine => Change::Delete(id.clone()),
                _ => Change::Put(parse_resource(rewrite_parent(&doc.raw, coll, id.name(), None))?),
            };
            let location = location_of(core, id);
            core.apply(vec![change])?;
            Ok(Some(location))
        })
        .await?;
    accepted_delete(app, req, id, deleted)
}
