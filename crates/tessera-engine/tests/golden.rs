//! Golden tests: each directory under `tests/golden/` holds a topology (`topology.yaml` or
//! `topology.json`, or a `topology` path in `script.json`), an optional `script.json` with
//! steps (changes) and queries, and `expected.json` with every answer. Regenerate all expected
//! files with `UPDATE_GOLDEN=1 cargo test -p tessera-engine --test golden` and review the diff.
//! The rule each scenario demonstrates is in its `README` line and in ARCHITECTURE.md.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::{effective, matrix, resolve, watcher};
use tessera_engine::load::{self, Format};
use tessera_engine::{Change, Engine, Limits};
use tessera_model::envelope::SubResource;
use tessera_model::network::{AddressSpace, Peering, PeeringProperties};
use tessera_model::{ArmError, Kind, Resource, ResourceId};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn err_json(e: &ArmError) -> Value {
    json!({ "status": e.status, "error": e })
}

fn vnet_id(engine: &Engine, name: &str) -> Result<ResourceId, ArmError> {
    resolve::resolve(engine, Kind::VirtualNetwork, name)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn step(engine: &mut Engine, s: &Value) -> Result<(), ArmError> {
    let op = str_of(s, "op");
    let link = |engine: &Engine| -> Result<ResourceId, ArmError> {
        Ok(vnet_id(engine, str_of(s, "vnet"))?.child("virtualNetworkPeerings", str_of(s, "name")))
    };
    let done = match op {
        "deletePeering" => engine.apply(Change::Delete(link(engine)?)),
        "deletePeeringPair" => engine.apply(Change::DeletePeeringPair(link(engine)?)),
        "syncPeering" => engine.apply(Change::SyncPeering(link(engine)?)),
        "putPeering" => {
            let id = link(engine)?;
            let remote = vnet_id(engine, str_of(s, "remote"))?;
            let mut props: PeeringProperties =
                serde_json::from_value(s.get("properties").cloned().unwrap_or(json!({})))
                    .map_err(|e| ArmError::bad_request("InvalidRequestContent", e.to_string()))?;
            props.remote_virtual_network = Some(SubResource::new(remote));
            let p = Peering {
                unmodelled: Default::default(),
                id: Some(id.clone()),
                name: id.name().to_string(),
                kind: None,
                etag: None,
                properties: props,
            };
            engine.apply(Change::Put(Resource::Peering(p)))
        }
        "setPeering" => {
            let id = link(engine)?;
            let mut p = engine.state().peering(&id).cloned().ok_or_else(|| ArmError::not_found(id.as_str()))?;
            let mut props = serde_json::to_value(&p.properties).unwrap_or_default();
            if let (Some(dst), Some(src)) = (props.as_object_mut(), s.get("properties").and_then(Value::as_object)) {
                for (k, v) in src {
                    dst.insert(k.clone(), v.clone());
                }
            }
            p.properties = serde_json::from_value(props)
                .map_err(|e| ArmError::bad_request("InvalidRequestContent", e.to_string()))?;
            engine.apply(Change::Put(Resource::Peering(p)))
        }
        "setAddressSpace" => {
            let id = vnet_id(engine, str_of(s, "vnet"))?;
            let mut v = engine.state().vnet(&id).cloned().ok_or_else(|| ArmError::not_found(id.as_str()))?;
            let prefixes = s.get("prefixes").cloned().unwrap_or(json!([]));
            v.properties.address_space = AddressSpace::of(
                serde_json::from_value(prefixes)
                    .map_err(|e| ArmError::bad_request("InvalidRequestContent", e.to_string()))?,
            );
            engine.apply(Change::Put(Resource::VirtualNetwork(v)))
        }
        "deleteVnet" => {
            let id = vnet_id(engine, str_of(s, "vnet"))?;
            engine.apply(Change::Delete(id))
        }
        "put" => {
            let resources = tessera_model::resource::from_arm_json(s.get("resource").cloned().unwrap_or_default())?;
            for r in resources {
                engine.apply(Change::Put(r))?;
            }
            return Ok(());
        }
        "delete" => {
            let id = ResourceId::parse(str_of(s, "id"))
                .map_err(|e| ArmError::bad_request("InvalidResourceId", e.to_string()))?;
            engine.apply(Change::Delete(id))
        }
        other => panic!("unknown step op {other}"),
    };
    done.map(drop)
}

fn proto(v: &Value) -> Protocol {
    Protocol::parse(v.get("protocol").and_then(Value::as_str).unwrap_or("Tcp")).expect("protocol")
}

fn query(engine: &Engine, q: &Value) -> Result<Value, ArmError> {
    match str_of(q, "q") {
        "routes" => effective::effective_route_table(engine, &resolve::resolve_nic(engine, str_of(q, "nic"))?)
            .map(|r| serde_json::to_value(r).unwrap_or_default()),
        "rules" => {
            effective::effective_network_security_groups(engine, &resolve::resolve_nic(engine, str_of(q, "nic"))?)
        }
        "nextHop" => {
            let vm = resolve::resolve(engine, Kind::VirtualMachine, str_of(q, "vm"))?;
            let src = match q.get("from").and_then(Value::as_str) {
                Some(s) => s.to_string(),
                None => watcher::vm_address(engine, &vm)?.to_string(),
            };
            watcher::next_hop(
                engine,
                &watcher::NextHopParameters {
                    target_resource_id: vm,
                    source_ip_address: src,
                    destination_ip_address: str_of(q, "to").into(),
                    target_nic_resource_id: None,
                },
            )
        }
        "flow" => {
            let vm = resolve::resolve(engine, Kind::VirtualMachine, str_of(q, "vm"))?;
            let mut params = q.clone();
            if let Some(o) = params.as_object_mut() {
                o.insert("targetResourceId".into(), json!(vm.to_string()));
            }
            let p: watcher::IpFlowParameters = serde_json::from_value(params)
                .map_err(|e| ArmError::bad_request("InvalidRequestContent", e.to_string()))?;
            watcher::ip_flow_verify(engine, &p)
        }
        "check" => {
            let from = resolve::resolve(engine, Kind::VirtualMachine, str_of(q, "from"))?;
            let to = str_of(q, "to");
            let mut destination = watcher::ConnectivityDestination {
                port: q.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()),
                ..Default::default()
            };
            if to.parse::<std::net::IpAddr>().is_ok() {
                destination.address = Some(to.into());
            } else {
                destination.resource_id = Some(resolve::resolve(engine, Kind::VirtualMachine, to)?);
            }
            watcher::connectivity_check(
                engine,
                &watcher::ConnectivityParameters {
                    source: watcher::ConnectivitySource { resource_id: from, port: None },
                    destination,
                    protocol: q.get("protocol").and_then(Value::as_str).map(str::to_string),
                },
            )
        }
        "matrix" => {
            let port = q.get("port").and_then(Value::as_u64).and_then(|p| u16::try_from(p).ok()).unwrap_or(22);
            Ok(serde_json::to_value(matrix::matrix(engine, proto(q), port, None)).unwrap_or_default())
        }
        "peerings" => Ok(peerings(engine)),
        other => panic!("unknown query {other}"),
    }
}

/// Every link with its lifecycle fields.
fn peerings(engine: &Engine) -> Value {
    let mut out = serde_json::Map::new();
    for v in engine.state().vnets.values() {
        for p in &v.properties.virtual_network_peerings {
            let pp = &p.properties;
            out.insert(
                format!("{}/{}", v.name, p.name),
                json!({
                    "peeringState": pp.peering_state,
                    "peeringSyncLevel": pp.peering_sync_level,
                    "remoteAddressSpace": pp.remote_address_space,
                    "remoteVirtualNetworkAddressSpace": pp.remote_virtual_network_address_space,
                    "resourceGuid": pp.resource_guid,
                    "remoteGateways": pp.remote_gateways,
                }),
            );
        }
    }
    Value::Object(out)
}

fn default_queries(engine: &Engine) -> Vec<Value> {
    let mut qs = vec![json!({"q": "peerings"})];
    for nic in engine.state().nics.values() {
        qs.push(json!({"q": "routes", "nic": nic.id.to_string()}));
        qs.push(json!({"q": "rules", "nic": nic.id.to_string()}));
    }
    qs.push(json!({"q": "matrix", "port": 22}));
    qs
}

fn run_scenario(dir: &Path) -> Value {
    let script: Value = std::fs::read_to_string(dir.join("script.json"))
        .map(|t| serde_json::from_str(&t).expect("script.json is JSON"))
        .unwrap_or(json!({}));
    let topo_path = match script.get("topology").and_then(Value::as_str) {
        Some(p) => workspace_root().join(p),
        None if dir.join("topology.json").exists() => dir.join("topology.json"),
        None => dir.join("topology.yaml"),
    };
    let text = std::fs::read_to_string(&topo_path).unwrap_or_else(|e| panic!("{}: {e}", topo_path.display()));
    let format = Format::detect(&topo_path.to_string_lossy(), &text);
    let mut engine = match load::load(&text, format, Limits::default()) {
        Ok(e) => e,
        Err(e) => return json!({ "load": err_json(&e) }),
    };
    let mut steps = Vec::new();
    for s in script.get("steps").and_then(Value::as_array).into_iter().flatten() {
        let before = format!("{:?}", engine.state().vnets);
        let r = step(&mut engine, s);
        if r.is_err() {
            // A refusal leaves the state untouched.
            assert_eq!(
                before,
                format!("{:?}", engine.state().vnets),
                "{}: refused step {s} changed the state",
                dir.display()
            );
        }
        steps.push(match r {
            Ok(()) => json!({ "step": s, "result": "ok" }),
            Err(e) => json!({ "step": s, "result": err_json(&e) }),
        });
    }
    let queries: Vec<Value> = match script.get("queries").and_then(Value::as_array) {
        Some(q) => q.clone(),
        None => default_queries(&engine),
    };
    let results: Vec<Value> = queries
        .iter()
        .map(|q| {
            let r = query(&engine, q).unwrap_or_else(|e| err_json(&e));
            json!({ "query": q, "answer": r })
        })
        .collect();
    json!({ "load": "ok", "steps": steps, "results": results })
}

#[test]
fn golden_scenarios() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no golden scenarios");
    let mut failures = Vec::new();
    for dir in &dirs {
        let got = run_scenario(dir);
        let expected_path = dir.join("expected.json");
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        if update {
            std::fs::write(&expected_path, &text).expect("write expected");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(want) if want == text => {}
            Ok(want) => {
                let first = want.lines().zip(text.lines()).position(|(a, b)| a != b).unwrap_or(0);
                failures.push(format!(
                    "{}: differs from expected.json at line {}:\n  expected: {}\n  got:      {}",
                    dir.display(),
                    first + 1,
                    want.lines().nth(first).unwrap_or(""),
                    text.lines().nth(first).unwrap_or("")
                ));
            }
            Err(_) => failures.push(format!("{}: no expected.json (run with UPDATE_GOLDEN=1)", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{} golden scenario(s) failed:\n{}", failures.len(), failures.join("\n"));
}
