//! What the web console asks beyond ARM's resources (issue 19): the caller's permissions at a
//! scope, the change long poll (woken only by changes the caller may read), the reachability
//! matrix of the VMs the caller may read, and the embedded page.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{AUTH, Api, NETWORK_CONTRIBUTOR, READER};

async fn get(api: &Api, token: &str, path: &str) -> (u16, Value) {
    api.call_as(token, &[], Method::GET, path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_say_what_each_caller_may_do_at_a_scope() {
    let api = Api::start().await;
    let t1 = api.creds.tenant_id.clone();
    let sub = api.sub();
    api.group("net").await;
    let (reader, rs) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &sub, READER, &reader).await;
    let (netc, ns) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &format!("{sub}/resourceGroups/net"), NETWORK_CONTRIBUTOR, &netc).await;
    let (nobody, nos) = api.principal(&t1, &[]).await;
    let reader = api.token_for(&reader, &rs, &t1).await.expect("reader");
    let netc = api.token_for(&netc, &ns, &t1).await.expect("netc");
    let nobody = api.token_for(&nobody, &nos, &t1).await.expect("nobody");
    let at = |scope: &str| format!("{scope}/providers/Microsoft.Authorization/permissions?{AUTH}");

    let (s, v) = get(&api, &reader, &at(&sub)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"], json!([{"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}]));
    // The Network Contributor's role is on its resource group, not above the subscription.
    let (s, v) = get(&api, &netc, &at(&sub)).await;
    assert_eq!((s, v["value"].clone()), (200, json!([])));
    let (s, v) = get(&api, &netc, &at(&format!("{sub}/resourceGroups/net"))).await;
    assert_eq!(s, 200, "{v}");
    let actions = v["value"][0]["actions"].as_array().cloned().unwrap_or_default();
    assert!(actions.contains(&json!("Microsoft.Network/*")), "{v}");
    let (s, v) = get(&api, &nobody, &at(&sub)).await;
    assert_eq!((s, v["value"].clone()), (200, json!([])));
    // A principal of another tenant learns nothing of this one's scopes.
    let (t2, _, admin_in_t2) = api.second_tenant().await;
    assert_ne!(t2, t1);
    let (s, v) = get(&api, &admin_in_t2, &at(&sub)).await;
    assert_eq!(s, 401, "{v}");
    // Only GET, and only with an api-version.
    let (s, _) = api.call_as(&reader, &[], Method::PUT, &at(&sub), Some(json!({}))).await;
    assert_eq!(s, 405);
    let r = api
        .client
        .get(api.url(&format!("{sub}/providers/Microsoft.Authorization/permissions")))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
    // Another provider's api-version is not Microsoft.Authorization's.
    let (s, v) = get(&api, &reader, &format!("{sub}/providers/Microsoft.Authorization/permissions")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidApiVersionParameter")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_poll_wakes_a_caller_only_for_what_it_may_read() {
    let api = Api::start().await;
    let t1 = api.creds.tenant_id.clone();
    let sub = api.sub();
    api.group("mine").await;
    api.group("theirs").await;
    let (who, secret) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &format!("{sub}/resourceGroups/mine"), READER, &who).await;
    let token = api.token_for(&who, &secret, &t1).await.expect("token");

    let (s, v) = get(&api, &token, "/tessera/changes").await;
    assert_eq!(s, 200, "{v}");
    let start = v["revision"].as_u64().expect("revision");

    // A change it may not read: the poll waits out its timeout and gives its revision back.
    let poll = {
        let (client, url, token) =
            (api.client.clone(), api.url(&format!("/tessera/changes?revision={start}&timeout=3")), token.clone());
        tokio::spawn(async move {
            let r = client.get(url).bearer_auth(token).send().await.expect("poll");
            r.json::<Value>().await.expect("json")
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.vnet("theirs", "hidden", "10.9.0.0/16").await;
    let v = poll.await.expect("joined");
    assert_eq!(v, json!({"revision": start, "changed": []}), "woken by a change it may not read");

    // A change it may read wakes it at once, naming only what it may read.
    let poll = {
        let (client, url, token) =
            (api.client.clone(), api.url(&format!("/tessera/changes?revision={start}&timeout=30")), token.clone());
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = client.get(url).bearer_auth(token).send().await.expect("poll");
            (r.json::<Value>().await.expect("json"), t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = api.vnet("mine", "seen", "10.8.0.0/16").await;
    let (v, waited) = poll.await.expect("joined");
    assert!(waited < Duration::from_secs(20), "not woken: {v}");
    let changed: Vec<String> = v["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert_eq!(changed, vec![seen["id"].as_str().expect("id").to_lowercase()], "{v}");
    assert!(v["revision"].as_u64().expect("revision") > start);

    // A revision ahead of the server (another server's, or from before a restart) is a resync.
    let (s, v) = get(&api, &token, "/tessera/changes?revision=999999&timeout=1").await;
    assert_eq!((s, v["resync"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = get(&api, &token, "/tessera/changes?revision=x").await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidRevision")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachability_covers_only_the_vms_a_caller_may_read() {
    let api = Api::start().await;
    let t1 = api.creds.tenant_id.clone();
    let sub = api.sub();
    api.group("a").await;
    let v = api.vnet("a", "va", "10.1.0.0/16").await;
    let subnet = format!("{}/subnets/default", v["id"].as_str().expect("id"));
    for (vm, group) in [("vm1", "a"), ("vm2", "a")] {
        let nic = api.net(group, &format!("networkInterfaces/{vm}-nic"));
        let (s, v) = api
            .call(
                Method::PUT,
                &nic,
                Some(json!({"location": "westeurope", "properties": {"ipConfigurations":
                    [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})),
            )
            .await;
        assert!(s < 300, "{v}");
        let path = format!(
            "{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}?api-version=2024-07-01"
        );
        let (s, v) = api
            .call(
                Method::PUT,
                &path,
                Some(json!({"location": "westeurope", "properties": {"networkProfile":
                    {"networkInterfaces": [{"id": nic}]}}})),
            )
            .await;
        assert!(s < 300, "{v}");
    }
    let (s, v) = get(&api, &api.token, "/tessera/reachability?protocol=Tcp&port=22").await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["vms"].as_array().expect("vms").iter().filter_map(|m| m["name"].as_str()).collect();
    assert_eq!(names, ["vm1", "vm2"]);
    assert_eq!(v["cells"], json!([{"from": 0, "to": 1, "reachable": true}, {"from": 1, "to": 0, "reachable": true}]));

    // One who may read neither VM sees an empty matrix (not everyone's).
    let (nobody, secret) = api.principal(&t1, &[]).await;
    let nobody = api.token_for(&nobody, &secret, &t1).await.expect("token");
    let (s, v) = get(&api, &nobody, "/tessera/reachability").await;
    assert_eq!((s, v["vms"].clone(), v["cells"].clone()), (200, json!([]), json!([])));
    // One VM readable: a matrix of one, no pair.
    let (one, secret) = api.principal(&t1, &[]).await;
    api.assign(
        &api.token,
        &format!("{sub}/resourceGroups/a/providers/Microsoft.Compute/virtualMachines/vm1"),
        READER,
        &one,
    )
    .await;
    let one = api.token_for(&one, &secret, &t1).await.expect("token");
    let (s, v) = get(&api, &one, "/tessera/reachability").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["vms"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["cells"], json!([]));

    for (query, code) in [("protocol=Gre", "InvalidProtocol"), ("port=0", "InvalidPort"), ("port=70000", "InvalidPort")]
    {
        let (s, v) = get(&api, &api.token, &format!("/tessera/reachability?{query}")).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some(code)), "{query}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_is_served_without_signing_in_and_names_only_its_bundle() {
    let api = Api::start().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = api.client.get(api.url(path)).send().await.expect("get");
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(h["content-type"].to_str().unwrap_or_default().starts_with(kind), "{path}: {h:?}");
        assert!(h["content-security-policy"].to_str().unwrap_or_default().contains("default-src 'self'"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        let body = r.text().await.expect("body");
        assert!(!body.is_empty(), "{path}");
        if kind == "text/html" {
            assert!(body.contains("/console/app.js") && body.contains("/console/app.css"), "{body}");
        }
    }
    let r = api.client.get(api.url("/console/../credentials.json")).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let r = api.client.get(api.url("/console/secret.txt")).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let r = api.client.post(api.url("/console/")).send().await.expect("post");
    assert_eq!(r.status(), 405);
}
