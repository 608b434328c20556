//! What the server acknowledged survives a restart, history included (Disconnected links).

use reqwest::Method;
use serde_json::json;

use crate::common::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_state_survives_a_restart() {
    let api = Api::start().await;
    api.group("rg").await;
    let a = api.vnet("rg", "a", "10.1.0.0/16").await;
    let b = api.vnet("rg", "b", "10.2.0.0/16").await;
    for (local, remote) in [("a", &b), ("b", &a)] {
        let (s, v) = api
            .call(
                Method::PUT,
                &api.net("rg", &format!("virtualNetworks/{local}/virtualNetworkPeerings/to-other")),
                Some(json!({"properties": {"remoteVirtualNetwork": {"id": remote["id"]}, "allowVirtualNetworkAccess": true}})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, _) =
        api.call(Method::DELETE, &api.net("rg", "virtualNetworks/b/virtualNetworkPeerings/to-other"), None).await;
    assert_eq!(s, 202);
    let before = api.everything().await;
    assert_eq!(before.len(), 2);

    let api = api.restart().await;
    let after = api.everything().await;
    assert_eq!(after, before, "the same documents, etags included");
    let (_, link) =
        api.call(Method::GET, &api.net("rg", "virtualNetworks/a/virtualNetworkPeerings/to-other"), None).await;
    assert_eq!(link["properties"]["peeringState"], "Disconnected");
    // The restarted server keeps validating against the restored state (P4).
    let (s, e) = api
        .call(
            Method::PUT,
            &api.net("rg", "virtualNetworks/b/virtualNetworkPeerings/to-other"),
            Some(json!({"properties": {"remoteVirtualNetwork": {"id": a["id"]}}})),
        )
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("RemotePeeringIsDisconnected")));
}

/// The four calls of the trust issue: peer two VNets, delete one, restart. The server starts
/// on the link left Disconnected (it is never validated again as a new request); so it does on
/// two spokes of one hub grown into the same prefix (S1, P3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_restarts_on_what_it_acknowledged() {
    let api = Api::start().await;
    api.group("net").await;
    for (name, prefix) in
        [("hub", "10.0.0.0/16"), ("s1", "10.1.0.0/16"), ("s2", "10.2.0.0/16"), ("gone", "10.3.0.0/16")]
    {
        api.vnet("net", name, prefix).await;
    }
    let link = |from: &str, to: &str| {
        (
            format!("{}/virtualNetworkPeerings/{from}-{to}", api.net("net", &format!("virtualNetworks/{from}"))),
            json!({"properties": {"remoteVirtualNetwork": {"id": api.net("net", &format!("virtualNetworks/{to}"))},
                                  "allowVirtualNetworkAccess": true}}),
        )
    };
    for (a, b) in [("hub", "gone"), ("gone", "hub"), ("hub", "s1"), ("s1", "hub"), ("hub", "s2"), ("s2", "hub")] {
        let (path, body) = link(a, b);
        let (s, v) = api.call(Method::PUT, &path, Some(body)).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, _) = api.call(Method::DELETE, &api.net("net", "virtualNetworks/gone"), None).await;
    assert_eq!(s, 202);
    for spoke in ["s1", "s2"] {
        let n = &spoke[1..];
        let body = json!({"location": "westeurope", "properties": {
            "addressSpace": {"addressPrefixes": [format!("10.{n}.0.0/16"), "10.9.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": format!("10.{n}.0.0/24")}}]}});
        let (s, v) = api.call(Method::PUT, &api.net("net", &format!("virtualNetworks/{spoke}")), Some(body)).await;
        assert_eq!(s, 200, "{v}");
    }
    let before = api.everything().await;
    let hub_to_gone = link("hub", "gone").0;
    let api = api.restart().await;
    assert_eq!(api.everything().await, before, "the same documents after the restart");
    let (s, v) = api.call(Method::GET, &hub_to_gone, None).await;
    assert_eq!((s, v["properties"]["peeringState"].as_str()), (200, Some("Disconnected")), "{v}");
}

/// The data directory is its owner's only, and a store file that is not a store (here empty,
/// as a full disk or a careless copy leaves it) stops the start: no new admin, no new
/// credentials written over the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_private_and_a_broken_store_is_never_a_new_install() {
    use std::os::unix::fs::PermissionsExt;
    let api = Api::start().await;
    let dir = api.dir.path().to_path_buf();
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the data directory");
    for file in ["store.redb", "credentials.json", "server.key"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let Api { server, dir: tmp, .. } = api;
    server.expect("running").shutdown().await.expect("shutdown");
    let credentials = std::fs::read(dir.join("credentials.json")).expect("credentials");
    std::fs::write(dir.join("store.redb"), b"").expect("empty the store");
    let mut config = tessera_api::ServeConfig::new(&dir);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let err = tessera_api::start(config).await.expect_err("refuses to start");
    assert!(err.to_string().contains("not a Tessera store"), "{err}");
    assert_eq!(std::fs::read(dir.join("credentials.json")).expect("credentials"), credentials, "kept");
    assert_eq!(std::fs::metadata(dir.join("store.redb")).expect("store").len(), 0, "left as found");
    drop(tmp);
}
