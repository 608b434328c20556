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
