//! POST actions answered by the engine: a NIC's `effectiveRouteTable` and
//! `effectiveNetworkSecurityGroups`, and Network Watcher's `nextHop`, `ipFlowVerify`,
//! `connectivityCheck` and `securityGroupView`, and a gateway's `getLearnedRoutes`,
//! `getAdvertisedRoutes` and `getBgpPeerStatus`. Azure answers them as long-running operations: 202 with a `Location`
//! whose GET returns the result (O9); so does Tessera, with the result ready at once.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tessera_engine::diag::{address, effective, topology, watcher};
use tessera_model::{ArmError, Kind, ResourceId};

use crate::http::{App, OpHeaders, Req, finish_operation};
use crate::identity::method_not_allowed;
use crate::operations::Operation;
use crate::route::Route;

fn params<T: DeserializeOwned>(req: &Req) -> Result<T, ArmError> {
    let body = req.json()?;
    serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ArmError::bad_request("InvalidRequestContent", format!("The request body is not valid: {e}")))
}

fn unknown_action(target: &ResourceId, action: &str) -> ArmError {
    ArmError::with_status(
        404,
        "NotFound",
        format!("The action '{action}' is not supported on resources of type '{}'.", target.kind().arm_type()),
    )
}

/// The resource ids a diagnostics body names (`targetResourceId`, `targetNicResourceId`,
/// `source.resourceId`, `destination.resourceId`, and any other `…resourceId` field).
fn named_resources(body: &serde_json::Value) -> Vec<ResourceId> {
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = body {
        for (k, v) in map {
            match v {
                serde_json::Value::String(s) if k.to_ascii_lowercase().ends_with("resourceid") => {
                    out.extend(ResourceId::parse(s).ok());
                }
                serde_json::Value::Object(_) => out.extend(named_resources(v)),
                _ => {}
            }
        }
    }
    out
}

/// The GET actions of a VNet: `CheckIPAddressAvailability?ipAddress=…` and `usages`.
async fn vnet_query(app: &App, req: &Req, vnet: &ResourceId, action: &str) -> Result<Response, ArmError> {
    req.authorize("Microsoft.Network/virtualNetworks/read", vnet.as_str())?;
    let core = app.core.read().await;
    core.check_scope(vnet.subscription(), Some(vnet.resource_group()))?;
    let engine = &core.engine;
    let body = match action.to_ascii_lowercase().as_str() {
        "checkipaddressavailability" => {
            let ip = req.query("ipAddress").ok_or_else(|| {
                ArmError::bad_request(
                    "MissingIpAddress",
                    "CheckIPAddressAvailability needs the query parameter ipAddress.",
                )
            })?;
            address::check_ip_address(engine, vnet, ip)?
        }
        "usages" => serde_json::json!({ "value": address::usages(engine, vnet)? }),
        _ => return Err(unknown_action(vnet, action)),
    };
    drop(core);
    Ok(crate::http::json_value(StatusCode::OK, &body))
}

/// A gateway's `getLearnedRoutes`, `getAdvertisedRoutes?peer=` and `getBgpPeerStatus[?peer=]`:
/// what its running instance last reported from its BGP daemon (empty while none runs), the
/// learned routes after the VNet's own prefixes (origin `Network`), as Azure lists them.
fn gateway_report(
    engine: &tessera_engine::Engine,
    gw: &ResourceId,
    action: &str,
    peer: Option<&str>,
) -> Result<serde_json::Value, ArmError> {
    let st = engine.state();
    let g =
        st.gateways.get(gw).ok_or_else(|| ArmError::resource_not_found(&gw.type_and_name(), gw.resource_group()))?;
    let instance = g.properties.instance.clone().unwrap_or_default();
    let local = g.properties.ip_configurations.first().and_then(|c| c.properties.private_ip_address.clone());
    let value = match action {
        "getlearnedroutes" => {
            let space = tessera_engine::state::gateway_vnet(g)
                .and_then(|v| st.address_space(&v).map(<[_]>::to_vec))
                .unwrap_or_default();
            let mut routes: Vec<serde_json::Value> = space
                .iter()
                .map(|p| {
                    serde_json::json!({"localAddress": local, "network": p.to_string(), "nextHop": null,
                        "sourcePeer": local, "origin": "Network", "asPath": "", "weight": 32768})
                })
                .collect();
            routes.extend(instance.learned_routes.iter().filter_map(|r| serde_json::to_value(r).ok()));
            routes
        }
        "getadvertisedroutes" => {
            let peer = peer.ok_or_else(|| {
                ArmError::bad_request("MissingPeer", "getAdvertisedRoutes needs the query parameter peer.")
            })?;
            let routes =
                instance.advertised_routes.iter().filter(|r| r.source_peer.is_empty() || r.source_peer == peer);
            routes.filter_map(|r| serde_json::to_value(r).ok()).collect()
        }
        _ => {
            let peers = instance.bgp_peers.iter().filter(|p| peer.is_none_or(|x| p.neighbor == x));
            peers.filter_map(|p| serde_json::to_value(p).ok()).collect()
        }
    };
    Ok(serde_json::json!({ "value": value }))
}

pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    let Route::Action { target, action } = &req.route else {
        return Err(method_not_allowed(req));
    };
    if req.method == Method::GET && target.kind() == Kind::VirtualNetwork {
        return vnet_query(app, req, target, action).await;
    }
    if target.kind() == Kind::Connection && action.eq_ignore_ascii_case("sharedkey") {
        return crate::shared_key::handle(app, req, target).await;
    }
    if req.method != Method::POST {
        return Err(method_not_allowed(req));
    }
    let a = action.to_ascii_lowercase();
    let kind = target.kind();
    // Diagnostics need read on what they look at: the NIC, or the watcher and every resource
    // the question names (its VM, NIC, destination VM). A resource the caller may not read gets
    // the same 403 whether it exists or not (`linked::readable`).
    req.authorize(&format!("{}/read", kind.arm_type()), target.as_str())?;
    if kind == Kind::NetworkWatcher
        && let Ok(body) = req.json()
    {
        for id in named_resources(&serde_json::Value::Object(body)) {
            crate::linked::readable(req, &id)?;
        }
    }
    let core = app.core.read().await;
    core.check_scope(target.subscription(), Some(target.resource_group()))?;
    let doc = core
        .doc(target)
        .ok_or_else(|| ArmError::resource_not_found(&target.type_and_name(), target.resource_group()))?;
    let location = doc.raw["location"].as_str().unwrap_or_default().to_string();
    let engine = &core.engine;
    if (kind, a.as_str()) == (Kind::NetworkWatcher, "topology") {
        // NetworkWatchers_GetTopology answers at once (200), not as an operation; the caller
        // must read the group it draws.
        let p: topology::TopologyParameters = params(req)?;
        if let Some(rg) = p.target_resource_group_name.as_deref() {
            req.authorize(
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                &format!("/subscriptions/{}/resourceGroups/{rg}", target.subscription()),
            )?;
            core.check_scope(target.subscription(), Some(rg))?;
        }
        let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let body = topology::topology(engine, target.subscription(), &p, &when)?;
        drop(core);
        return Ok(crate::http::json_value(StatusCode::OK, &body));
    }
    // A connectivity check's live probes are sent from the host that runs the source VM: real
    // traffic from a VM, so only for a caller with the check's own action (as Azure asks of
    // it; a Reader gets the walk of the programs alone).
    let may_probe =
        req.authorize("Microsoft.Network/networkWatchers/connectivityCheck/action", target.as_str()).is_ok();
    let live = match (kind, a.as_str()) {
        (Kind::NetworkWatcher, "connectivitycheck") if may_probe => watcher::probe_target(engine, &params(req)?)
            .ok()
            .map(|t| (tessera_engine::placement::host_of(engine, &t.nic), t)),
        _ => None,
    };
    let mut result: serde_json::Value = match (kind, a.as_str()) {
        (Kind::NetworkInterface, "effectiveroutetable") => {
            serde_json::to_value(effective::effective_route_table(engine, target)?).unwrap_or_default()
        }
        (Kind::NetworkInterface, "effectivenetworksecuritygroups") => {
            effective::effective_network_security_groups(engine, target)?
        }
        (Kind::NetworkWatcher, "nexthop") => watcher::next_hop(engine, &params(req)?)?,
        (Kind::NetworkWatcher, "ipflowverify") => watcher::ip_flow_verify(engine, &params(req)?)?,
        (Kind::NetworkWatcher, "connectivitycheck") => watcher::connectivity_check(engine, &params(req)?)?,
        (Kind::NetworkWatcher, "securitygroupview") => effective::security_group_view(engine, &params(req)?)?,
        (Kind::VirtualNetworkGateway, "getlearnedroutes" | "getadvertisedroutes" | "getbgppeerstatus") => {
            gateway_report(engine, target, &a, req.query("peer"))?
        }
        _ => return Err(unknown_action(target, action)),
    };
    drop(core);
    if let Some((host, probe)) = live {
        crate::probes::merge(&mut result, app.probes.probe(&host, probe).await);
    }
    let mut r = (StatusCode::ACCEPTED, "null").into_response();
    r.headers_mut().insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    let op = Operation { error: None, result: Some(Bytes::from(result.to_string())) };
    finish_operation(app, req, &mut r, (target.subscription(), target.namespace(), &location), op, OpHeaders::Result);
    Ok(r)
}
