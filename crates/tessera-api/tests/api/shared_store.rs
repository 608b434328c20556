//! Several servers on one etcd store (issue 18 point 2), on a 3-member etcd cluster the test
//! starts on loopback: what one writes the other reads; a write on a server that has not seen
//! the other's writes catches up first (a peering made half on each side is Connected); an
//! agent following one server is woken by a write made through the other; writes
//! sent to both at once all go through (one that lost the race is run again on the state read
//! back); a new server on the store has everything; one CA and one principal reach them all.

#![cfg(feature = "etcd")]

use reqwest::Method;
use serde_json::{Value, json};
use tessera_api::StoreKind;
use tessera_store::etcd_cluster::Cluster;

use crate::common::{Api, nic_body, vm_body};

async fn server(cluster: &Cluster) -> Api {
    let endpoints = cluster.clients.clone();
    Api::start_with(tempfile::tempdir().expect("dir"), move |c| {
        c.store = StoreKind::Etcd { endpoints, namespace: "tessera-shared".into() };
    })
    .await
}

/// GET as `api` until `check` holds (reads catch up with another server's writes as etcd's
/// watch reports them).
async fn eventually(api: &Api, path: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    for _ in 0..100 {
        let (s, v) = api.call(Method::GET, path, None).await;
        if check(s, &v) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never read as expected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_etcd_store_act_as_one() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path());
    let a = server(&cluster).await;
    let b = server(&cluster).await;

    // One CA for both (kept in the store): A's credentials file (its CA and principal) signs
    // in at B and is served there; B's token works at A (one signing key).
    let a_ca = std::fs::read_to_string(&a.creds.ca_certificate).expect("a's CA");
    assert_eq!(a_ca, std::fs::read_to_string(&b.creds.ca_certificate).expect("b's CA"), "one CA");
    assert_ne!(
        std::fs::read(a.dir.path().join("server.pem")).expect("a's cert"),
        std::fs::read(b.dir.path().join("server.pem")).expect("b's cert"),
        "each server has its own certificate"
    );
    let through_a = crate::common::client_for(&a.creds.ca_certificate);
    let c = &a.creds;
    let at_b = crate::common::fetch_token(&through_a, &b.creds.endpoint, &c.tenant_id, &c.client_id, &c.client_secret)
        .await
        .expect("A's principal signs in at B, trusting A's CA");
    let r = through_a
        .get(a.url(&format!("{}?api-version=2022-12-01", a.sub())))
        .bearer_auth(&at_b)
        .send()
        .await
        .expect("get at A");
    assert_eq!(r.status(), 200, "B's token is good at A");

    // A VNet whose document is over what etcd takes in one request: a clear refusal, nothing
    // half-written, and the servers go on.
    a.group("net").await;
    let subnets: Vec<Value> = (0..2500)
        .map(|i| json!({"name": format!("s{i}"), "properties": {"addressPrefix": format!("10.99.{}.{}/28", i / 16, (i % 16) * 16)}}))
        .collect();
    let huge = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.99.0.0/16"]}, "subnets": subnets}});
    let (s, v) = a.call(Method::PUT, &a.net("net", "virtualNetworks/huge"), Some(huge)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (413, Some("StoreRequestTooLarge")), "{v}");
    assert_eq!(a.call(Method::GET, &a.net("net", "virtualNetworks/huge"), None).await.0, 404);

    // An operation's status URL from A is answered by B too (behind a load balancer a client
    // polls whichever server it reaches); an id no server made is not found.
    let url = a.url(&format!("{}?api-version=2024-05-01", a.net("net", "networkSecurityGroups/polled")));
    let r = a.client.put(url).bearer_auth(&a.token).json(&json!({"location": "westeurope"})).send().await.expect("put");
    assert_eq!(r.status(), 201);
    let status_url =
        r.headers().get("azure-asyncoperation").and_then(|v| v.to_str().ok()).expect("status URL").to_string();
    let on_b = status_url.replacen(&a.creds.endpoint, &b.creds.endpoint, 1);
    let get = |url: String| {
        let (client, token) = (b.client.clone(), b.token.clone());
        async move {
            let r = client.get(url).bearer_auth(token).send().await.expect("poll");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default())
        }
    };
    assert_eq!(get(on_b.clone()).await, (200, json!({"status": "Succeeded"})), "{on_b}");
    let (id_end, rest) = on_b.split_once("?").expect("query");
    let forged = format!("{}{}?{rest}", &id_end[..id_end.len() - 1], if id_end.ends_with('0') { '1' } else { '0' });
    assert_eq!(get(forged).await.0, 404, "an operation no server made");

    // Written on a, read on b.
    a.group("net").await;
    let v1 = a.vnet("net", "v1", "10.1.0.0/16").await;
    let v1_id = v1["id"].as_str().expect("id").to_string();
    eventually(&b, &a.net("net", "virtualNetworks/v1"), |s, _| s == 200).await;

    // A POST action's result made on A is fetched at B too (kept in the store for the others).
    let nic = a.net("net", "networkInterfaces/polled");
    let body = json!({"location": "westeurope", "properties": {"ipConfigurations": [
        {"name": "ip", "properties": {"subnet": {"id": format!("{v1_id}/subnets/default")}}}]}});
    assert_eq!(a.call(Method::PUT, &nic, Some(body)).await.0, 201);
    let r = a
        .client
        .post(a.url(&format!("{nic}/effectiveRouteTable?api-version=2024-05-01")))
        .bearer_auth(&a.token)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 202);
    let location = r.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
    let (s, routes) = get(location.replacen(&a.creds.endpoint, &b.creds.endpoint, 1)).await;
    assert_eq!((s, &routes["value"][0]["nextHopType"]), (200, &json!("VnetLocal")), "{routes}");

    // A peering made half on each server: b's write catches up with a's VNet, a's with b's link.
    let v2 = b.vnet("net", "v2", "10.2.0.0/16").await;
    let v2_id = v2["id"].as_str().expect("id").to_string();
    let link = |remote: &str| json!({"properties": {"remoteVirtualNetwork": {"id": remote}}});
    let (s, v) = b.call(Method::PUT, &format!("{v2_id}/virtualNetworkPeerings/to-v1"), Some(link(&v1_id))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = a.call(Method::PUT, &format!("{v1_id}/virtualNetworkPeerings/to-v2"), Some(link(&v2_id))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["properties"]["peeringState"], "Connected", "a saw b's link before it wrote: {v}");
    eventually(&b, &format!("{v2_id}/virtualNetworkPeerings/to-v1"), |_, v| {
        v["properties"]["peeringState"] == "Connected"
    })
    .await;

    // An agent following B is woken by a write made through A (B reads the state again and
    // records what changed in the log its poll waits on), not by its long poll's timeout; it
    // gets the changed documents only, not a snapshot of everything.
    let (_, snapshot) = b.call(Method::GET, "/tessera/feed/local", None).await;
    let at = snapshot["revision"].as_u64().expect("revision");
    let poll = {
        let (client, token) = (b.client.clone(), b.token.clone());
        let url = b.url(&format!("/tessera/feed/local?revision={at}&timeout=30"));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let body: Value =
                client.get(url).bearer_auth(token).send().await.expect("poll").json().await.expect("json");
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let fed = a.net("net", "networkSecurityGroups/fed");
    assert_eq!(a.call(Method::PUT, &fed, Some(json!({"location": "westeurope"}))).await.0, 201);
    let (took, body) = poll.await.expect("poll");
    assert!(took < std::time::Duration::from_secs(20), "the poll timed out instead of waking: {took:?}");
    assert!(body["revision"].as_u64() > Some(at), "{body}");
    let ids: Vec<&str> = body["documents"].as_array().into_iter().flatten().filter_map(|d| d["id"].as_str()).collect();
    assert!(ids.iter().any(|id| id.eq_ignore_ascii_case(&fed)), "the new NSG reaches B's agent: {ids:?}");
    assert_eq!(body["snapshot"], false, "a change, not a snapshot: {ids:?}");
    assert!(!ids.iter().any(|id| id.eq_ignore_ascii_case(&v1_id)), "v1 did not change: {ids:?}");

    // Writes to both at once: each acknowledged write is kept.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = if i % 2 == 0 { &a } else { &b };
        let path = a.net("net", &format!("networkSecurityGroups/nsg{i}"));
        let (client, token, url) =
            (api.client.clone(), api.token.clone(), api.url(&format!("{path}?api-version=2024-05-01")));
        tasks.push(tokio::spawn(async move {
            let r = client.put(url).bearer_auth(token).json(&json!({"location": "westeurope"})).send().await;
            (path, r.map_or(0, |r| r.status().as_u16()))
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("a write"));
    }
    println!("concurrent writes on two servers: {results:?}");
    let acknowledged: Vec<&String> = results.iter().filter(|(_, s)| *s == 200 || *s == 201).map(|(p, _)| p).collect();
    // A write that lost the race to the other server's is run again on the state read back.
    assert_eq!(acknowledged.len(), 20, "every write goes through: {results:?}");
    // A new server on the store has every acknowledged write.
    let c = server(&cluster).await;
    for path in acknowledged {
        let (s, _) = c.call(Method::GET, path, None).await;
        assert_eq!(s, 200, "{path} was acknowledged and lost");
    }
    let (s, v) = c.call(Method::GET, &format!("{v1_id}/virtualNetworkPeerings/to-v2"), None).await;
    assert_eq!((s, &v["properties"]["peeringState"]), (200, &json!("Connected")));
}

async fn quick_server(cluster: &Cluster) -> Api {
    let endpoints = cluster.clients.clone();
    Api::start_with(tempfile::tempdir().expect("dir"), move |c| {
        c.store = StoreKind::Etcd { endpoints, namespace: "tessera-leader".into() };
        // Longer than `eventually` waits: a takeover it sees came from the leader resigning.
        c.cluster.lease = std::time::Duration::from_secs(10);
        c.cluster.compact_every = std::time::Duration::from_millis(200);
        c.cluster.keep_revisions = 5;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_leads_and_another_takes_over_when_it_stops() {
    // Alone on its embedded store, a server is its own leader.
    let alone = Api::start().await;
    let (s, v) = alone.call(Method::GET, "/tessera/cluster", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["store"].as_str(), v["isLeader"].as_bool()), (Some("redb"), Some(true)), "{v}");
    assert_eq!(v["leader"], v["server"], "{v}");
    // The feed revision it has reached moves with every change.
    let before = v["feedRevision"].as_u64().expect("feedRevision");
    alone.group("moved").await;
    let v = alone.call(Method::GET, "/tessera/cluster", None).await.1;
    assert_eq!(v["feedRevision"].as_u64(), Some(before), "a group is not in the feed: {v}");
    alone.vnet("moved", "v", "10.9.0.0/16").await;
    let v = alone.call(Method::GET, "/tessera/cluster", None).await.1;
    assert!(v["feedRevision"].as_u64() > Some(before), "a VNet moves the feed: {v}");

    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path());
    let a = quick_server(&cluster).await;
    let b = quick_server(&cluster).await;
    for i in 0..20 {
        a.group(&format!("g{i}")).await;
    }
    // Both see one leader; only it does the leader's work (etcd's history compacted).
    let (mut va, mut vb) = (Value::Null, Value::Null);
    for _ in 0..200 {
        va = a.call(Method::GET, "/tessera/cluster", None).await.1;
        vb = b.call(Method::GET, "/tessera/cluster", None).await.1;
        let agreed = va["leader"].is_string() && va["leader"] == vb["leader"];
        let leader = if va["isLeader"] == true { &va } else { &vb };
        if agreed && leader["lastCompaction"]["etcdRevision"].as_i64() > Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(va["store"], "etcd", "{va}");
    assert!(va["leader"].is_string() && va["leader"] == vb["leader"], "two views of who leads: {va} {vb}");
    assert_ne!(va["isLeader"], vb["isLeader"], "exactly one leads: {va} {vb}");
    let (leader, follower, lv) = if va["isLeader"] == true { (a, b, va) } else { (b, a, vb) };
    let fv = follower.call(Method::GET, "/tessera/cluster", None).await.1;
    assert_eq!(lv["leader"], lv["server"], "{lv}");
    assert!(lv["lastCompaction"]["etcdRevision"].as_i64() > Some(0), "the leader compacted nothing: {lv}");
    assert_eq!(fv["compactions"], 0, "a follower did the leader's work: {fv}");

    // The leader stops: the follower takes over in a later term, without waiting for the
    // lease to expire (the leader resigned on its way out), and does the work.
    let term = lv["term"].as_i64().expect("term");
    leader.server.expect("running").shutdown().await.expect("shutdown");
    let took = std::time::Instant::now();
    let now = eventually(&follower, "/tessera/cluster", |_, v| v["isLeader"] == true && v["compactions"] != 0).await;
    assert!(now["term"].as_i64().expect("term") > term, "{now} after term {term}");
    assert_eq!(now["leader"], fv["server"], "{now}");
    println!("the follower took over in {:?}", took.elapsed());
}

async fn put(api: &Api, path: String, body: Value) {
    let (s, v) = api.call(Method::PUT, &path, Some(body)).await;
    assert!(matches!(s, 200 | 201), "PUT {path}: {s} {v}");
}

/// The feed's snapshot of a server: its revision and every document with its etag.
async fn snapshot(api: &Api) -> (u64, Vec<Value>) {
    let (s, v) = api.call(Method::GET, "/tessera/feed/local", None).await;
    assert_eq!(s, 200, "{v}");
    let mut docs = v["documents"].as_array().cloned().unwrap_or_default();
    docs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    (v["revision"].as_u64().expect("revision"), docs)
}

/// Writes made through either server, each on state the other wrote (peerings half on each,
/// a NIC on one and its VM on the other, a VNet deleted under a link, an address space
/// changed, NSGs attached): each server takes the other's writes from the change log one by
/// one, and ends with exactly the documents (etags, link states, a NIC's VM) that a new server
/// reading the whole store has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_taking_each_others_writes_hold_what_a_full_read_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path());
    let a = server(&cluster).await;
    let b = server(&cluster).await;
    let net = |rest: &str| a.net("net", rest);
    let vnet = |space: &str| {
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [space]},
               "subnets": [{"name": "default", "properties": {"addressPrefix": space}}]}})
    };
    let link =
        |to: &str| json!({"properties": {"remoteVirtualNetwork": {"id": net(&format!("virtualNetworks/{to}"))}}});
    a.group("net").await;
    for i in 0..5u32 {
        let api = if i % 2 == 0 { &a } else { &b };
        put(api, net(&format!("virtualNetworks/v{i}")), vnet(&format!("10.{i}.0.0/16"))).await;
    }
    put(&b, net("networkSecurityGroups/n1"), json!({"location": "westeurope"})).await;
    let mut with_nsg = vnet("10.4.0.0/16");
    with_nsg["properties"]["subnets"][0]["properties"]["networkSecurityGroup"] =
        json!({"id": net("networkSecurityGroups/n1")});
    put(&a, net("virtualNetworks/v4"), with_nsg).await;
    put(&a, net("virtualNetworks/v0/virtualNetworkPeerings/to-v1"), link("v1")).await;
    put(&b, net("virtualNetworks/v1/virtualNetworkPeerings/to-v0"), link("v0")).await;
    put(&b, net("virtualNetworks/v1/virtualNetworkPeerings/to-v2"), link("v2")).await;
    put(&a, net("virtualNetworks/v2/virtualNetworkPeerings/to-v1"), link("v1")).await;
    put(&a, net("virtualNetworks/v0/virtualNetworkPeerings/to-v3"), link("v3")).await;
    let nic = net("networkInterfaces/nic0");
    put(
        &b,
        nic.clone(),
        json!({"location": "westeurope", "properties": {"ipConfigurations": [
        {"name": "ip", "properties": {"subnet": {"id": net("virtualNetworks/v0/subnets/default")}}}]}}),
    )
    .await;
    let vm = format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines/vm0", a.sub());
    put(
        &a,
        vm.clone(),
        json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}}),
    )
    .await;
    let (_, n) = b.call(Method::GET, &nic, None).await;
    assert!(n["properties"]["virtualMachine"]["id"].is_string(), "B sees the VM A gave its NIC: {n}");
    // Deleted under a link: v1's link to v2 turns Disconnected, on both servers.
    assert!(matches!(a.call(Method::DELETE, &net("virtualNetworks/v2"), None).await.0, 200 | 202));
    let (_, l) = b.call(Method::GET, &net("virtualNetworks/v1/virtualNetworkPeerings/to-v2"), None).await;
    assert_eq!(l["properties"]["peeringState"], "Disconnected", "{l}");
    assert!(matches!(b.call(Method::DELETE, &vm, None).await.0, 200 | 202));
    put(&b, net("virtualNetworks/v3"), vnet("10.3.0.0/16")).await;
    put(&a, net("networkSecurityGroups/n2"), json!({"location": "westeurope", "tags": {"k": "v"}})).await;
    // A burst on both at once (writes losing races, batches staged on a state another server's
    // write then replaced): every acknowledged write is kept, on both.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let api = if i % 2 == 0 { &a } else { &b };
        let path = if i % 3 == 0 {
            net(&format!("virtualNetworks/v{}/virtualNetworkPeerings/to-v4", i % 2))
        } else {
            net(&format!("networkSecurityGroups/burst{i}"))
        };
        let body = if i % 3 == 0 { link("v4") } else { json!({"location": "westeurope"}) };
        let (client, token, url) =
            (api.client.clone(), api.token.clone(), api.url(&format!("{path}?api-version=2024-05-01")));
        tasks.push(tokio::spawn(async move {
            let r = client.put(url).bearer_auth(token).json(&body).send().await;
            (path, r.map_or(0, |r| r.status().as_u16()))
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (path, status) = t.await.expect("a write");
        if matches!(status, 200 | 201) {
            acknowledged.push(path);
        }
    }
    assert!(acknowledged.len() >= 50, "most writes go through: {}", acknowledged.len());

    // Both agree with a server that reads everything.
    let (mut sa, mut sb) = (snapshot(&a).await, snapshot(&b).await);
    for _ in 0..100 {
        if sa == sb {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        (sa, sb) = (snapshot(&a).await, snapshot(&b).await);
    }
    let c = server(&cluster).await;
    let sc = snapshot(&c).await;
    assert_eq!(sa.0, sc.0, "A's feed revision");
    assert_eq!(sb.0, sc.0, "B's feed revision");
    assert_eq!(sa.1.len(), sc.1.len());
    for (x, z) in sa.1.iter().zip(&sc.1) {
        assert_eq!(x, z, "A holds what a full read holds");
    }
    for (y, z) in sb.1.iter().zip(&sc.1) {
        assert_eq!(y, z, "B holds what a full read holds");
    }
    for path in acknowledged {
        assert_eq!(c.call(Method::GET, &path, None).await.0, 200, "{path} was acknowledged and lost");
    }
}

/// Each document's etag, by lower-case id.
type Etags = std::collections::BTreeMap<String, String>;

/// Follows `api`'s feed as an agent does until `stop`, keeping what it held after each answer.
async fn follow_feed(api: &Api, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<(u64, Etags)> {
    let (mut held, mut revision, mut seen) = (Etags::new(), None::<u64>, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let mut path = "/tessera/feed/local?timeout=1".to_string();
        if let Some(r) = revision {
            path.push_str(&format!("&revision={r}"));
        }
        let (s, v) = api.call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{v}");
        if v["snapshot"] == true {
            held.clear();
        }
        for d in v["documents"].as_array().expect("documents") {
            let id = d["id"].as_str().expect("id").to_ascii_lowercase();
            held.insert(id, d["etag"].as_str().expect("etag").to_string());
        }
        for id in v["deleted"].as_array().expect("deleted") {
            held.remove(&id.as_str().expect("id").to_ascii_lowercase());
        }
        let r = v["revision"].as_u64().expect("revision");
        revision = Some(r);
        seen.push((r, held.clone()));
    }
    seen
}

/// The documents' etags at every feed revision the store's change log holds.
fn stored_history(cluster: &Cluster) -> std::collections::BTreeMap<u64, Etags> {
    use tessera_store::Store;
    let store = tessera_store::EtcdStore::connect(&cluster.clients, "tessera-shared", 100_000).expect("connect");
    let events = store.changes_since(0).expect("the whole change log");
    let (mut state, mut history) = (Etags::new(), std::collections::BTreeMap::from([(0, Etags::new())]));
    for commit in events.chunk_by(|x, y| x.revision == y.revision) {
        let mut fed = None;
        for e in commit {
            if let Some(id) = e.key.strip_prefix("doc/") {
                match &e.value {
                    Some(v) => {
                        let record: Value = serde_json::from_slice(v).expect("a record");
                        state.insert(id.to_string(), record["etag"].as_str().expect("etag").to_string());
                    }
                    None => drop(state.remove(id)),
                }
            } else if e.key == "meta/feed-revision" {
                let value = e.value.as_deref().expect("a feed revision is never deleted");
                fed = Some(std::str::from_utf8(value).expect("utf-8").parse::<u64>().expect("a number"));
            }
        }
        if let Some(r) = fed {
            assert!(history.insert(r, state.clone()).is_none(), "feed revision {r} stored twice");
        }
    }
    history
}

/// Agents are only ever fed what the store holds: writes racing on two servers (commits that
/// lose the race are retracted and run again) while an agent follows one of them; every state
/// the agent held, at every revision it was given, is the state the store's change log has at
/// that feed revision (a change staged in memory is fed only once it is durable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_fed_only_what_the_store_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path());
    let a = std::sync::Arc::new(server(&cluster).await);
    let b = server(&cluster).await;
    let net = |rest: &str| a.net("net", rest);
    a.group("net").await;
    for (i, api) in [&*a, &b, &*a].into_iter().enumerate() {
        put(
            api,
            net(&format!("virtualNetworks/v{i}")),
            json!({"location": "westeurope",
            "properties": {"addressSpace": {"addressPrefixes": [format!("10.{i}.0.0/16")]}}}),
        )
        .await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = tokio::spawn({
        let (a, stop) = (a.clone(), stop.clone());
        async move { follow_feed(&a, stop).await }
    });
    // Links and NSGs written through both servers at once, several on the same documents.
    let mut tasks = Vec::new();
    for i in 0..120 {
        let api = if i % 2 == 0 { &*a } else { &b };
        let (path, body) = match (i / 2) % 4 {
            0 => (
                net(&format!("virtualNetworks/v{}/virtualNetworkPeerings/to-v2", i % 2)),
                json!({"properties": {"remoteVirtualNetwork": {"id": net("virtualNetworks/v2")},
                       "allowForwardedTraffic": (i / 8) % 2 == 0}}),
            ),
            1 => (net("networkSecurityGroups/shared"), json!({"location": "westeurope", "tags": {"i": i.to_string()}})),
            _ => (net(&format!("networkSecurityGroups/n{i}")), json!({"location": "westeurope"})),
        };
        let (client, token, url) =
            (api.client.clone(), api.token.clone(), api.url(&format!("{path}?api-version=2024-05-01")));
        tasks.push(tokio::spawn(async move { client.put(url).bearer_auth(token).json(&body).send().await.is_ok() }));
        if i % 8 == 7 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    for t in tasks {
        assert!(t.await.expect("a write"), "a write was answered");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let seen = follower.await.expect("the follower");
    let history = stored_history(&cluster);
    let revisions: std::collections::BTreeSet<u64> = seen.iter().map(|(r, _)| *r).collect();
    assert!(revisions.len() >= 3, "the agent was fed changes as they came: {revisions:?}");
    for (revision, held) in &seen {
        let stored = history.get(revision).unwrap_or_else(|| panic!("revision {revision} was fed, never stored"));
        assert_eq!(held, stored, "what the agent held at feed revision {revision} is what the store held");
    }
    let last = seen.last().expect("an answer");
    assert_eq!(Some(last.0), history.keys().next_back().copied(), "the agent ends at the store's last revision");
}

/// A write is checked against the latest state even when this server's watch has not yet
/// heard of another server's write: 20 times a NIC made on B and at once a VM on A taking it
/// (a refusal on a state the store has moved beyond is run again on the state read back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_naming_what_another_server_just_made_is_accepted() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path());
    let a = server(&cluster).await;
    let b = server(&cluster).await;
    a.group("net").await;
    let v = a.vnet("net", "v", "10.7.0.0/16").await;
    let subnet = format!("{}/subnets/default", v["id"].as_str().expect("id"));
    for i in 0..20 {
        let nic = a.net("net", &format!("networkInterfaces/nic{i}"));
        put(&b, nic.clone(), nic_body(&subnet)).await;
        let vm = format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines/vm{i}", a.sub());
        put(&a, vm, vm_body(&nic)).await;
    }
}
