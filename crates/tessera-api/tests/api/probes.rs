//! Live probes of connectivity checks through the API (issue 17 point 5), with a stand-in
//! agent that follows `/tessera/hosts/local/probes` and answers what it is told to: the answer
//! carries the probes beside the walk of the programs, a disagreement becomes an issue, a
//! Reader's check sends no probe, a UDP check is not probed, and an answer that counts more
//! failures than probes is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, READER};

/// A connectivity check as `token`, its operation followed to the result.
async fn check(api: &Api, token: &str, watcher: &str, body: Value) -> Value {
    let url = api.url(&format!("{watcher}/connectivityCheck?api-version=2024-05-01"));
    let r = api.client.post(url).bearer_auth(token).json(&body).send().await.expect("check");
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["location"].to_str().expect("location").to_string();
    api.client.get(location).bearer_auth(token).send().await.expect("result").json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_are_sent_by_the_following_agent_and_disagreements_reported() {
    let api = Api::start().await;
    api.group("net").await;
    let vnet = api.vnet("net", "v1", "10.1.0.0/16").await;
    let subnet = format!("{}/subnets/default", vnet["id"].as_str().expect("id"));
    for name in ["a", "b"] {
        let nic = api.net("net", &format!("networkInterfaces/{name}-nic"));
        let body = json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}});
        assert_eq!(api.call(Method::PUT, &nic, Some(body)).await.0, 201);
        let vm = format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines/{name}", api.sub());
        let body =
            json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}});
        let (s, v) = api.call(Method::PUT, &format!("{vm}?api-version=2024-07-01"), Some(body)).await;
        assert!(s == 200 || s == 201, "{v}");
    }
    let watcher = api.net("net", "networkWatchers/nw");
    assert!(matches!(api.call(Method::PUT, &watcher, Some(json!({"location": "westeurope"}))).await.0, 200 | 201));
    let vm = |n: &str| format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines/{n}", api.sub());
    let question = |proto: &str| json!({"source": {"resourceId": vm("a")}, "destination": {"resourceId": vm("b"), "port": 22}, "protocol": proto});

    // Without an agent following, the walk of the programs alone.
    let v = check(&api, &api.token, &watcher, question("Tcp")).await;
    assert_eq!((v["connectionStatus"].as_str(), v["probesSent"].as_u64()), (Some("Reachable"), Some(0)), "{v}");

    // A stand-in agent: answers every probe, all failed while `broken`.
    let broken = Arc::new(AtomicBool::new(true));
    let asked = Arc::new(AtomicUsize::new(0));
    let agent = {
        let (client, token, base) = (api.client.clone(), api.token.clone(), api.url("/tessera/hosts/local/probes"));
        let (broken, asked) = (broken.clone(), asked.clone());
        tokio::spawn(async move {
            loop {
                let Ok(r) = client.get(format!("{base}?timeout=2")).bearer_auth(&token).send().await else { continue };
                let body: Value = r.json().await.unwrap_or_default();
                for p in body["probes"].as_array().cloned().unwrap_or_default() {
                    asked.fetch_add(1, Ordering::SeqCst);
                    let result = if broken.load(Ordering::SeqCst) {
                        json!({"id": p["id"], "probesSent": 3, "probesFailed": 3, "latenciesMs": []})
                    } else {
                        json!({"id": p["id"], "probesSent": 3, "probesFailed": 0, "latenciesMs": [1.0, 2.0, 3.0]})
                    };
                    let _ = client.post(&base).bearer_auth(&token).json(&json!({"results": [result]})).send().await;
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let v = check(&api, &api.token, &watcher, question("Tcp")).await;
    assert_eq!(v["connectionStatus"], "Unreachable", "{v}");
    assert_eq!(v["logicalConnectionStatus"], "Reachable", "{v}");
    assert_eq!((v["probesSent"].as_u64(), v["probesFailed"].as_u64()), (Some(3), Some(3)));
    let issues = v["hops"][0]["issues"].as_array().cloned().unwrap_or_default();
    assert!(
        issues.iter().any(|i| i["type"] == "Platform"
            && i["context"].as_array().into_iter().flatten().any(|c| c["key"] == "disagreement")),
        "the disagreement is an issue: {v}"
    );
    broken.store(false, Ordering::SeqCst);
    let v = check(&api, &api.token, &watcher, question("Tcp")).await;
    assert_eq!((v["connectionStatus"].as_str(), v["avgLatencyInMs"].as_u64()), (Some("Reachable"), Some(2)), "{v}");
    assert_eq!((v["minLatencyInMs"].as_u64(), v["maxLatencyInMs"].as_u64()), (Some(1), Some(3)));
    assert!(v["hops"][0]["issues"].as_array().is_some_and(Vec::is_empty), "{v}");

    // A Reader sees the walk but sends no probe; a UDP check sends none either.
    let before = asked.load(Ordering::SeqCst);
    let (reader, secret) = api.principal(&api.creds.tenant_id, &[]).await;
    api.assign(&api.token, &api.sub(), READER, &reader).await;
    let reader_token = api.token_for(&reader, &secret, &api.creds.tenant_id).await.expect("token");
    let v = check(&api, &reader_token, &watcher, question("Tcp")).await;
    assert_eq!((v["connectionStatus"].as_str(), v["probesSent"].as_u64()), (Some("Reachable"), Some(0)), "{v}");
    let v = check(&api, &api.token, &watcher, question("Udp")).await;
    assert_eq!(v["probesSent"].as_u64(), Some(0), "{v}");
    assert_eq!(asked.load(Ordering::SeqCst), before, "no probe was asked of the agent");

    // An answer out of shape is refused.
    let bad = json!({"results": [{"id": "x", "probesSent": 1, "probesFailed": 5, "latenciesMs": []}]});
    let (s, v) = api.call(Method::POST, "/tessera/hosts/local/probes", Some(bad)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidRequestContent")), "{v}");
    agent.abort();
}
