//! The server restarts on whatever it acknowledged: random sequences of API calls (VNets and
//! their address spaces, peering links, syncs, deletes, NICs with an NSG) over HTTPS, then a
//! restart on the same store. The server starts, every document and every NIC's effective routes
//! are the same after as before, and no NIC ever has two Active routes for one prefix (S1, S4,
//! S5, R2, P3). The engine's `tests/restart.rs` runs many more sequences without HTTP.

use std::collections::BTreeSet;

use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

#[derive(Debug, Clone)]
enum Call {
    Vnet(usize, Vec<u8>),
    DeleteVnet(usize),
    Link(usize, usize),
    DeleteLink(usize, usize),
    Sync(usize, usize),
    Nic(usize, usize, bool),
    DeleteNic(usize),
}

fn call() -> impl Strategy<Value = Call> {
    let v = 0..3usize;
    prop_oneof![
        3 => (v.clone(), proptest::collection::vec(0..5u8, 1..3)).prop_map(|(i, p)| Call::Vnet(i, p)),
        1 => v.clone().prop_map(Call::DeleteVnet),
        3 => (v.clone(), v.clone()).prop_map(|(a, b)| Call::Link(a, b)),
        1 => (v.clone(), v.clone()).prop_map(|(a, b)| Call::DeleteLink(a, b)),
        2 => (v.clone(), v.clone()).prop_map(|(a, b)| Call::Sync(a, b)),
        2 => (0..3usize, v.clone(), any::<bool>()).prop_map(|(k, i, n)| Call::Nic(k, i, n)),
        1 => (0..3usize).prop_map(Call::DeleteNic),
    ]
}

async fn run(api: &Api, c: &Call) {
    let vnet = |i: usize| api.net("rp", &format!("virtualNetworks/v{i}"));
    let link = |a: usize, b: usize| format!("{}/virtualNetworkPeerings/to-v{b}", vnet(a));
    let link_body =
        |b: usize| json!({"properties": {"remoteVirtualNetwork": {"id": vnet(b)}, "allowVirtualNetworkAccess": true}});
    // Refusals are part of the sequence: whatever was acknowledged must restore.
    match c {
        Call::Vnet(i, prefixes) => {
            let space: Vec<String> = prefixes.iter().map(|p| format!("10.{p}.0.0/16")).collect();
            // An existing VNet keeps its subnet (its NICs stay valid).
            let (s, old) = api.call(Method::GET, &vnet(*i), None).await;
            let subnet = if s == 200 {
                old["properties"]["subnets"][0]["properties"]["addressPrefix"].clone()
            } else {
                json!(format!("10.{}.0.0/24", prefixes[0]))
            };
            let body = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": space},
                "subnets": [{"name": "default", "properties": {"addressPrefix": subnet}}]}});
            api.call(Method::PUT, &vnet(*i), Some(body)).await;
        }
        Call::DeleteVnet(i) => {
            api.call(Method::DELETE, &vnet(*i), None).await;
        }
        Call::Link(a, b) => {
            api.call(Method::PUT, &link(*a, *b), Some(link_body(*b))).await;
        }
        Call::DeleteLink(a, b) => {
            api.call(Method::DELETE, &link(*a, *b), None).await;
        }
        Call::Sync(a, b) => {
            api.call(
                Method::PUT,
                &format!("{}?syncRemoteAddressSpace=true&api-version=2024-05-01", link(*a, *b)),
                Some(link_body(*b)),
            )
            .await;
        }
        Call::Nic(k, i, nsg) => {
            let mut props = json!({"ipConfigurations": [{"name": "ip", "properties": {
                "subnet": {"id": format!("{}/subnets/default", vnet(*i))}}}]});
            if *nsg {
                props["networkSecurityGroup"] = json!({"id": api.net("rp", "networkSecurityGroups/nsg")});
            }
            let body = json!({"location": "westeurope", "properties": props});
            api.call(Method::PUT, &api.net("rp", &format!("networkInterfaces/n{k}")), Some(body)).await;
        }
        Call::DeleteNic(k) => {
            api.call(Method::DELETE, &api.net("rp", &format!("networkInterfaces/n{k}")), None).await;
        }
    }
}

/// Every document of the group, and every NIC's effective routes.
async fn observe(api: &Api) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut docs = Vec::new();
    for t in ["virtualNetworks", "networkInterfaces", "networkSecurityGroups"] {
        docs.extend(api.list_all(&api.token, &format!("{}?api-version=2024-05-01", api.net("rp", t))).await);
    }
    let mut routes = Vec::new();
    for d in docs.iter().filter(|d| d["type"] == "Microsoft.Network/networkInterfaces") {
        let id = d["id"].as_str().expect("id").to_string();
        let r = api.send(Method::POST, &format!("{id}/effectiveRouteTable"), None).await;
        let table = match r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string) {
            Some(url) => {
                api.client.get(url).bearer_auth(&api.token).send().await.expect("result").json().await.expect("json")
            }
            None => r.json().await.unwrap_or(Value::Null),
        };
        routes.push((id, table));
    }
    (docs, routes)
}

fn one_active_route_per_prefix(routes: &[(String, Value)]) -> Result<(), String> {
    for (nic, table) in routes {
        let mut seen = BTreeSet::new();
        for r in table["value"].as_array().into_iter().flatten().filter(|r| r["state"] == "Active") {
            if !seen.insert(r["addressPrefix"].to_string()) {
                return Err(format!("{nic} has two Active routes for {}", r["addressPrefix"]));
            }
        }
    }
    Ok(())
}

async fn sequence(calls: Vec<Call>) -> Result<(), String> {
    let api = Api::start().await;
    api.group("rp").await;
    let nsg = json!({"location": "westeurope", "properties": {"securityRules": [{"name": "deny-rdp", "properties": {
        "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp", "sourceAddressPrefix": "*",
        "sourcePortRange": "*", "destinationAddressPrefix": "*", "destinationPortRange": "3389"}}]}});
    api.call(Method::PUT, &api.net("rp", "networkSecurityGroups/nsg"), Some(nsg)).await;
    for c in &calls {
        run(&api, c).await;
        one_active_route_per_prefix(&observe(&api).await.1).map_err(|e| format!("after {c:?}: {e}"))?;
    }
    let before = observe(&api).await;
    let api = api.restart().await;
    let after = observe(&api).await;
    if after != before {
        return Err(format!("the restart changed the state:\nbefore {before:?}\nafter {after:?}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn the_server_restarts_on_any_sequence_it_acknowledged(calls in proptest::collection::vec(call(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        if let Err(e) = runtime.block_on(sequence(calls)) {
            prop_assert!(false, "{}", e);
        }
    }
}
