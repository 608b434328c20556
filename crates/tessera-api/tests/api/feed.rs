//! The watch feed for host agents: a snapshot, then changes since a revision (long poll),
//! ports placed by the `tessera-host` tag, resumable across a restart.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

async fn feed(api: &Api, host: &str, query: &str) -> Value {
    let (s, v) = api.call(Method::GET, &format!("/tessera/feed/{host}?api-version=2024-05-01{query}"), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn names(v: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["name"].as_str().or(d.as_str()).map(str::to_string)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn port_nics(v: &Value) -> Vec<String> {
    v["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["nic"].as_str())
                .map(|n| n.rsplit('/').next().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_gives_a_snapshot_then_changes_and_resumes() {
    let api = Api::start().await;
    api.group("rg").await;
    let vnet = api.vnet("rg", "v", "10.0.0.0/16").await;
    let subnet = format!("{}/subnets/default", vnet["id"].as_str().expect("id"));
    for (nic, tags) in [("nic-a", json!({"tessera-host": "h1"})), ("nic-b", json!({}))] {
        let (s, v) = api
            .call(
                Method::PUT,
                &api.net("rg", &format!("networkInterfaces/{nic}")),
                Some(json!({"location": "westeurope", "tags": tags,
                "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let first = feed(&api, "h1", "").await;
    assert_eq!(first["snapshot"], true);
    assert_eq!(names(&first, "documents"), ["nic-a", "nic-b", "v"]);
    assert_eq!(port_nics(&first), ["nic-a"], "only the ports placed on h1");
    assert_eq!(port_nics(&feed(&api, "local", "").await), ["nic-b"], "untagged ports run on `local`");
    let r1 = first["revision"].as_u64().expect("revision");
    assert!(r1 >= 3);

    // A long poll at the current revision wakes on the next change and carries only it.
    let poll = {
        let client = api.client.clone();
        let url = api.url(&format!("/tessera/feed/h1?api-version=2024-05-01&revision={r1}&timeout=20"));
        let token = api.token.clone();
        tokio::spawn(async move {
            client.get(url).bearer_auth(token).send().await.expect("poll").json::<Value>().await.expect("json")
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!poll.is_finished(), "nothing changed yet: the poll waits");
    let (s, _) =
        api.call(Method::PUT, &api.net("rg", "networkSecurityGroups/n"), Some(json!({"location": "westeurope"}))).await;
    assert_eq!(s, 201);
    let change = poll.await.expect("poll task");
    assert_eq!(change["snapshot"], false);
    assert_eq!(names(&change, "documents"), ["n"]);
    let r2 = change["revision"].as_u64().expect("revision");
    assert!(r2 > r1);

    let (s, _) = api.call(Method::DELETE, &api.net("rg", "networkSecurityGroups/n"), None).await;
    assert_eq!(s, 202);
    let gone = feed(&api, "h1", &format!("&revision={r2}&timeout=5")).await;
    assert_eq!(names(&gone, "documents"), Vec::<String>::new());
    assert!(gone["deleted"][0].as_str().is_some_and(|d| d.ends_with("/networkSecurityGroups/n")), "{gone}");
    let r3 = gone["revision"].as_u64().expect("revision");

    // A revision the server never issued gets a snapshot.
    assert_eq!(feed(&api, "h1", &format!("&revision={}&timeout=1", r3 + 1000)).await["snapshot"], true);
    // Nothing new: the poll times out with an empty change set at the same revision.
    let idle = feed(&api, "h1", &format!("&revision={r3}&timeout=1")).await;
    assert_eq!((idle["snapshot"].as_bool(), idle["revision"].as_u64()), (Some(false), Some(r3)));
    assert_eq!(names(&idle, "documents"), Vec::<String>::new());

    // Revisions survive a restart: an agent at r3 resumes without a snapshot.
    let api = api.restart().await;
    let resumed = feed(&api, "h1", &format!("&revision={r3}&timeout=1")).await;
    assert_eq!((resumed["snapshot"].as_bool(), resumed["revision"].as_u64()), (Some(false), Some(r3)));
    // An older revision than the restarted log reaches is answered with a snapshot.
    assert_eq!(feed(&api, "h1", &format!("&revision={r1}&timeout=1")).await["snapshot"], true);
}
