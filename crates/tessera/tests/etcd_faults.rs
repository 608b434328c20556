//! Faults of several servers on one etcd store (issue 18), as processes: two `tessera serve
//! --etcd` on a 3-member cluster the test starts on loopback. A thousand writes go to both at
//! once while the leader is killed (`kill -9`) part-way, and later an etcd member: the other
//! server takes over as leader and does the leader's work, every write either server
//! acknowledged is there afterwards, and every peering link agrees with its partner. Then the
//! other server stops too, and a new one on the same store serves exactly what it served, and
//! stops when asked.

#![cfg(feature = "etcd")]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_agent::session::Session;
use tessera_store::etcd_cluster::Cluster;

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");
const RG: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/net";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// Starts `tessera serve` on the cluster with its own data directory; its session.
async fn serve(data: &Path, cluster: &Cluster) -> (Server, Session) {
    let port = free_port();
    let child = Command::new(TESSERA)
        .args(["serve", "--data-dir"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--etcd", &cluster.clients.join(",")])
        .args(["--leader-lease", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tessera serve");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && let Ok(s) = Session::sign_in(&data.join("credentials.json")).await
        {
            return (server, s);
        }
        assert!(Instant::now() < deadline, "tessera serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One call: the status (0 when the server did not answer) and the body.
async fn call(s: &Session, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}?api-version=2024-05-01", s.endpoint);
    let mut req = s.client.request(method, url).bearer_auth(&s.token).timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req.json(&b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or_default())
        }
        Err(_) => (0, Value::Null),
    }
}

/// Every VNet's links: (link id, state, remote id).
async fn links(s: &Session) -> Vec<(String, String, String)> {
    let (_, v) =
        call(s, reqwest::Method::GET, &format!("{RG}/providers/Microsoft.Network/virtualNetworks"), None).await;
    let mut out = Vec::new();
    let mut page = v;
    loop {
        for vnet in page["value"].as_array().cloned().unwrap_or_default() {
            for l in vnet["properties"]["virtualNetworkPeerings"].as_array().cloned().unwrap_or_default() {
                out.push((
                    l["id"].as_str().unwrap_or_default().to_ascii_lowercase(),
                    l["properties"]["peeringState"].as_str().unwrap_or_default().to_string(),
                    l["properties"]["remoteVirtualNetwork"]["id"].as_str().unwrap_or_default().to_ascii_lowercase(),
                ));
            }
        }
        let Some(next) = page["nextLink"].as_str().map(str::to_string) else { break };
        page = s.client.get(next).bearer_auth(&s.token).send().await.expect("page").json().await.expect("json");
    }
    out.sort();
    out
}

/// The names of the resource group's NSGs (all pages).
async fn nsgs(s: &Session) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let (_, mut page) =
        call(s, reqwest::Method::GET, &format!("{RG}/providers/Microsoft.Network/networkSecurityGroups"), None).await;
    loop {
        for n in page["value"].as_array().cloned().unwrap_or_default() {
            out.insert(n["name"].as_str().unwrap_or_default().to_string());
        }
        let Some(next) = page["nextLink"].as_str().map(str::to_string) else { break };
        page = s.client.get(next).bearer_auth(&s.token).send().await.expect("page").json().await.expect("json");
    }
    out
}

/// A server's view of who leads (`GET /tessera/cluster`).
async fn cluster_view(s: &Session) -> Value {
    let (status, v) = call(s, reqwest::Method::GET, "/tessera/cluster", None).await;
    assert_eq!(status, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_killed_during_a_thousand_writes_loses_none_it_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let mut cluster = Cluster::start(&dir.path().join("etcd"));
    let (x, sx) = serve(&dir.path().join("a"), &cluster).await;
    let (y, sy) = serve(&dir.path().join("b"), &cluster).await;
    // A is the leader, B the follower.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (vx, vy) = loop {
        let (vx, vy) = (cluster_view(&sx).await, cluster_view(&sy).await);
        if vx["leader"].is_string() && vx["leader"] == vy["leader"] {
            break (vx, vy);
        }
        assert!(Instant::now() < deadline, "no leader agreed on: {vx} {vy}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(vx["isLeader"], vy["isLeader"], "{vx} {vy}");
    let ((a, sa), (b_server, sb), term) =
        if vx["isLeader"] == true { ((x, sx), (y, sy), &vx["term"]) } else { ((y, sy), (x, sx), &vy["term"]) };
    let term = term.as_i64().expect("term");
    let (s, v) = call(&sb, reqwest::Method::PUT, RG, Some(json!({"location": "westeurope"}))).await;
    assert!(matches!(s, 200 | 201), "{v}");

    // 1,000 writes, alternating servers, 32 at a time: NSGs, and VNets with both links of a
    // peering (each link on the other server from its VNet).
    let (sa, sb) = (Arc::new(sa), Arc::new(sb));
    let mut a = Some(a);
    let mut outcomes: Vec<(String, u16, bool, String, usize)> = Vec::new();
    let mut in_flight = tokio::task::JoinSet::new();
    for i in 0..1000usize {
        if i == 300 {
            // kill -9 of the leader part-way; its writes in flight are acknowledged or not.
            drop(a.take());
        }
        if i == 600 {
            // kill -9 of an etcd member: the other two keep a quorum and writes go on.
            let _ = cluster.members[0].kill();
            let _ = cluster.members[0].wait();
        }
        let server = if i % 2 == 0 { sa.clone() } else { sb.clone() };
        let (path, body) = match i % 10 {
            0..=5 => (
                format!("{RG}/providers/Microsoft.Network/networkSecurityGroups/nsg{i}"),
                json!({"location": "westeurope"}),
            ),
            6 | 7 => {
                let pair = i / 10;
                let side = i % 10 - 6;
                let space = format!("10.{}.{pair}.0/24", 100 + side);
                (
                    format!("{RG}/providers/Microsoft.Network/virtualNetworks/p{pair}-{side}"),
                    json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [space]}}}),
                )
            }
            n => {
                let pair = i / 10;
                let (from, to) = if n == 8 { (0, 1) } else { (1, 0) };
                (
                    format!(
                        "{RG}/providers/Microsoft.Network/virtualNetworks/p{pair}-{from}/virtualNetworkPeerings/to-{to}"
                    ),
                    json!({"properties": {"remoteVirtualNetwork": {"id": format!("{RG}/providers/Microsoft.Network/virtualNetworks/p{pair}-{to}")}}}),
                )
            }
        };
        let to_b = i % 2 == 1;
        in_flight.spawn(async move {
            let (s, v) = call(&server, reqwest::Method::PUT, &path, Some(body)).await;
            (path, s, to_b, v["error"]["code"].as_str().unwrap_or_default().to_string(), i)
        });
        while in_flight.len() >= 32 {
            if let Some(Ok(done)) = in_flight.join_next().await {
                outcomes.push(done);
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        outcomes.extend(done.ok());
    }
    let acknowledged: Vec<String> = outcomes.iter().filter(|o| matches!(o.1, 200 | 201)).map(|o| o.0.clone()).collect();
    // B answered every write it was sent: acknowledged, or refused for what it asked (a link
    // sent before its VNet was written), never unanswered or failed.
    let mut refused: Vec<(u16, String)> =
        outcomes.iter().filter(|o| o.2 && !matches!(o.1, 200 | 201)).map(|o| (o.1, o.3.clone())).collect();
    refused.sort();
    refused.dedup();
    assert!(refused.iter().all(|(s, _)| (400..500).contains(s)), "B's refusals: {refused:?}");
    let by_b = outcomes.iter().filter(|o| o.2 && matches!(o.1, 200 | 201)).count();
    assert!(by_b >= 400, "B kept serving: {by_b} of its 500 writes acknowledged ({refused:?})");
    println!("{} writes acknowledged ({by_b} by B); B refused {refused:?}", acknowledged.len());
    // Writes went on after the etcd member died: every NSG sent to B from then on is there.
    let after_member: Vec<u16> =
        outcomes.iter().filter(|o| o.4 >= 600 && o.2 && o.0.contains("networkSecurityGroups")).map(|o| o.1).collect();
    assert_eq!(after_member.len(), 120);
    assert!(after_member.iter().all(|s| matches!(s, 200 | 201)), "after an etcd member died: {after_member:?}");

    // B took over as leader, in a later term, and does the leader's work.
    let deadline = Instant::now() + Duration::from_secs(15);
    let vb = loop {
        let v = cluster_view(&sb).await;
        if v["isLeader"] == true && v["compactions"].as_u64() > Some(0) {
            break v;
        }
        assert!(Instant::now() < deadline, "B did not take over from the killed leader: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(vb["term"].as_i64().expect("term") > term, "{vb} after term {term}");

    // Every acknowledged write is there, read from B.
    for path in &acknowledged {
        let (s, v) = call(&sb, reqwest::Method::GET, path, None).await;
        assert_eq!(s, 200, "{path} was acknowledged and is gone: {v}");
    }
    // Every link agrees with its partner: Connected when the partner exists, Initiated when not.
    let all = links(&sb).await;
    for (id, state, remote) in &all {
        let partner = all.iter().find(|(pid, _, _)| pid.starts_with(&format!("{remote}/virtualnetworkpeerings/")));
        let want = if partner.is_some() { "Connected" } else { "Initiated" };
        assert_eq!(state, want, "{id}: {state} while its partner is {partner:?}");
    }

    // Everything restarted: B stops, C starts on the store and serves the same state.
    let (names, peerings) = (nsgs(&sb).await, all);
    drop(b_server);
    let (mut c, sc) = serve(&dir.path().join("c"), &cluster).await;
    assert_eq!(nsgs(&sc).await, names);
    assert_eq!(links(&sc).await, peerings);

    // A server on etcd stops when asked (SIGTERM), its follower of the others with it.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(c.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "tessera serve --etcd did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
