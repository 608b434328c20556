//! What the web console asks beyond ARM's resources (issue 19): the caller's permissions at a
//! scope, the change long poll (woken only by changes the caller may read), the reachability
//! matrix of the VMs the caller may read, and the embedded page.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{AUTH, Api, NETWORK_CONTRIBUTOR, READER, nic_body, vm_body};

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
    // The scope must exist.
    let (s, v) = get(&api, &reader, &at(&format!("/subscriptions/{}", crate::common::guid()))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("SubscriptionNotFound")), "{v}");
    let (s, v) = get(&api, &reader, &at(&format!("{sub}/resourceGroups/none"))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("ResourceGroupNotFound")), "{v}");
    let (s, v) = get(&api, &reader, &at("/foo")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidScope")), "{v}");
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

/// Polls `/tessera/changes` with `cursor` in the background: (answer, seconds waited).
fn poll(api: &Api, token: &str, cursor: &str, timeout: u64) -> tokio::task::JoinHandle<(Value, Duration)> {
    let url = api.url(&format!("/tessera/changes?cursor={cursor}&timeout={timeout}"));
    let (client, token) = (api.client.clone(), token.to_string());
    tokio::spawn(async move {
        let t = std::time::Instant::now();
        let r = client.get(url).bearer_auth(token).send().await.expect("poll");
        (r.json::<Value>().await.expect("json"), t.elapsed())
    })
}

fn cursor_of(v: &Value) -> String {
    v["cursor"].as_str().expect("a cursor").to_string()
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
    // A principal of another tenant, with no role here.
    let (_, _, foreign) = api.second_tenant().await;

    let (s, v) = get(&api, &token, "/tessera/changes").await;
    assert_eq!(s, 200, "{v}");
    let start = cursor_of(&v);
    let (s, v) = get(&api, &foreign, "/tessera/changes").await;
    assert_eq!(s, 200, "{v}");
    let foreign_start = cursor_of(&v);

    // Changes it may not read: the poll waits out its timeout, naming nothing.
    let hidden = poll(&api, &token, &start, 3);
    let stranger = poll(&api, &foreign, &foreign_start, 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    api.vnet("theirs", "hidden", "10.9.0.0/16").await;
    api.vnet("theirs", "hidden2", "10.10.0.0/16").await;
    assert!(t.elapsed() < Duration::from_secs(2), "the writes took too long for the test to mean anything");
    for (task, who) in [(hidden, "the group's reader"), (stranger, "another tenant's principal")] {
        let (v, waited) = task.await.expect("joined");
        assert_eq!(v["changed"], json!([]), "{who} was told of a change it may not read: {v}");
        assert!(v.get("resync").is_none(), "{who}: {v}");
        assert!(waited >= Duration::from_millis(2500), "{who} was woken early ({waited:?}): {v}");
    }

    // A change it may read wakes it at once, naming only what it may read. The cursor handed
    // back after the timeout (opaque) carries on from there.
    let (s, v) = get(&api, &token, &format!("/tessera/changes?cursor={start}&timeout=0")).await;
    assert_eq!((s, v["changed"].clone()), (200, json!([])), "{v}");
    let next = cursor_of(&v);
    let woken = poll(&api, &token, &next, 30);
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.vnet("theirs", "hidden3", "10.11.0.0/16").await;
    let seen = api.vnet("mine", "seen", "10.8.0.0/16").await;
    let (v, waited) = woken.await.expect("joined");
    assert!(waited < Duration::from_secs(20), "not woken: {v}");
    let changed: Vec<String> = v["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_lowercase())
        .collect();
    assert_eq!(changed, vec![seen["id"].as_str().expect("id").to_lowercase()], "{v}");
    assert_ne!(cursor_of(&v), next);

    // Cursors are the caller's own: another principal's, or one made up, is a resync or refused.
    let (s, v) = get(&api, &foreign, &format!("/tessera/changes?cursor={}&timeout=1", cursor_of(&v))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["changed"], json!([]), "{v}");
    let (s, v) = get(&api, &token, "/tessera/changes?cursor=ffffffffffffffff&timeout=1").await;
    assert_eq!((s, v["changed"].clone()), (200, json!([])), "{v}");
    for bad in ["x", "12345", "zzzzzzzzzzzzzzzz"] {
        let (s, v) = get(&api, &token, &format!("/tessera/changes?cursor={bad}")).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidCursor")), "{bad}");
    }
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
        let (s, v) = api.call(Method::PUT, &nic, Some(nic_body(&subnet))).await;
        assert!(s < 300, "{v}");
        let path = format!(
            "{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}?api-version=2024-07-01"
        );
        let (s, v) = api.call(Method::PUT, &path, Some(vm_body(&nic))).await;
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
    let (_, _, foreign) = api.second_tenant().await;
    let (s, v) = get(&api, &foreign, "/tessera/reachability").await;
    assert_eq!((s, v["vms"].clone()), (200, json!([])), "another tenant's principal");
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
    for path in ["/console/%2e%2e%2fcredentials.json", "/console/..%2Fca.pem", "/console/%2e%2e"] {
        let r = api.client.get(api.url(path)).send().await.expect("get");
        assert_eq!(r.status(), 404, "{path}");
        let v: Value = r.json().await.expect("an ARM error");
        assert_eq!(v["error"]["code"], "NotFound", "{path}");
    }
    let r = api.client.get(api.url("/console/secret.txt")).send().await.expect("get");
    assert_eq!(r.status(), 404);
    let r = api.client.post(api.url("/console/")).send().await.expect("post");
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_with_roles_on_some_groups_lists_those_groups_and_their_resources() {
    let api = Api::start().await;
    let t1 = api.creds.tenant_id.clone();
    let sub = api.sub();
    for rg in ["mine", "theirs"] {
        api.group(rg).await;
    }
    api.vnet("mine", "v1", "10.1.0.0/16").await;
    api.vnet("theirs", "v2", "10.2.0.0/16").await;
    let (who, secret) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &format!("{sub}/resourceGroups/mine"), NETWORK_CONTRIBUTOR, &who).await;
    let token = api.token_for(&who, &secret, &t1).await.expect("token");
    let names = |items: Vec<Value>| -> Vec<String> {
        let mut n: Vec<String> = items.iter().filter_map(|i| i["name"].as_str().map(str::to_string)).collect();
        n.sort();
        n
    };
    let groups = api.list_all(&token, &format!("{sub}/resourcegroups?api-version=2022-12-01")).await;
    assert_eq!(names(groups), ["mine"]);
    let resources = api.list_all(&token, &format!("{sub}/resources?api-version=2022-12-01")).await;
    assert_eq!(names(resources), ["v1"]);
    // The owner lists everything; a principal without a role anywhere in it is refused.
    let groups = api.list_all(&api.token, &format!("{sub}/resourcegroups?api-version=2022-12-01")).await;
    assert_eq!(names(groups), ["mine", "theirs"]);
    let (nobody, secret) = api.principal(&t1, &[]).await;
    let nobody = api.token_for(&nobody, &secret, &t1).await.expect("token");
    for path in
        [format!("{sub}/resourcegroups?api-version=2022-12-01"), format!("{sub}/resources?api-version=2022-12-01")]
    {
        let (s, v) = get(&api, &nobody, &path).await;
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{path}");
    }
}
