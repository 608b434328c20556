//! Long-running operation shapes (arm-api.md §5, O2, O9).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_delete_and_post_answer_as_long_running_operations() {
    let api = Api::start().await;
    api.group("rg").await;
    let path = api.net("rg", "virtualNetworks/a");
    let body = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
    let r = api.send(Method::PUT, &path, Some(body.to_string().as_bytes())).await;
    assert_eq!(r.status().as_u16(), 201, "created");
    let status_url = header(&r, "azure-asyncoperation").expect("Azure-AsyncOperation on PUT");
    assert!(header(&r, "location").is_none(), "a PUT carries no Location (O2)");
    assert_eq!(header(&r, "retry-after").as_deref(), Some("0"));
    assert!(header(&r, "x-ms-request-id").is_some());
    assert!(status_url.contains("api-version="), "clients use the URL verbatim");
    let s: Value =
        api.client.get(&status_url).bearer_auth(&api.token).send().await.expect("poll").json().await.expect("json");
    assert_eq!(s["status"], "Succeeded");
    // Updating answers 200.
    assert_eq!(api.send(Method::PUT, &path, Some(body.to_string().as_bytes())).await.status().as_u16(), 200);

    // POST actions: 202, body null, Location only; the Location gives the result (O9).
    api.call(
        Method::PUT,
        &api.net("rg", "networkInterfaces/nic"),
        Some(json!({"location": "westeurope", "properties": {
        "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": format!("{}/subnets/default", path)}}}]}})),
    )
    .await;
    let (s, _) = api
        .call(
            Method::PUT,
            &format!("{path}/subnets/default"),
            Some(json!({"properties": {"addressPrefix": "10.0.0.0/24"}})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, nic) = api
        .call(
            Method::PUT,
            &api.net("rg", "networkInterfaces/nic"),
            Some(json!({"location": "westeurope", "properties": {
        "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": format!("{}/subnets/default", path)}}}]}})),
        )
        .await;
    assert_eq!(s, 201, "{nic}");
    let r =
        api.send(Method::POST, &format!("{}/effectiveRouteTable", api.net("rg", "networkInterfaces/nic")), None).await;
    assert_eq!(r.status().as_u16(), 202);
    assert!(header(&r, "azure-asyncoperation").is_none());
    let result_url = header(&r, "location").expect("Location on POST");
    assert_eq!(r.text().await.expect("body"), "null");
    let routes: Value =
        api.client.get(&result_url).bearer_auth(&api.token).send().await.expect("result").json().await.expect("json");
    let first = &routes["value"][0];
    assert_eq!(first["addressPrefix"], json!(["10.0.0.0/16"]));
    assert_eq!(first["nextHopType"], "VnetLocal");

    // DELETE: 202 with both URLs; the Location answers 204 once done.
    let r = api.send(Method::DELETE, &api.net("rg", "networkInterfaces/nic"), None).await;
    assert_eq!(r.status().as_u16(), 202);
    assert!(header(&r, "azure-asyncoperation").is_some());
    let location = header(&r, "location").expect("Location on DELETE");
    let done = api.client.get(&location).bearer_auth(&api.token).send().await.expect("result");
    assert_eq!(done.status().as_u16(), 204);
    // An unknown operation is a 404, not a 5xx.
    let missing = api.url(&format!(
        "{}/providers/Microsoft.Network/locations/westeurope/operations/none?api-version=2024-05-01",
        api.sub()
    ));
    assert_eq!(api.client.get(&missing).bearer_auth(&api.token).send().await.expect("poll").status().as_u16(), 404);
}

/// A PATCH without `tags` keeps them; with `tags` it replaces the set — for a resource and a
/// resource group (ARM's updateTags).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_keeps_tags_it_does_not_name() {
    let api = Api::start().await;
    api.group("net").await;
    let vnet = api.net("net", "virtualNetworks/v");
    let group = format!("{}/resourcegroups/net?api-version=2022-12-01", api.sub());
    let body = json!({"location": "westeurope", "tags": {"team": "net"},
        "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}});
    let (s, v) = api.call(Method::PUT, &vnet, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api.call(Method::PATCH, &group, Some(json!({"tags": {"cost": "1"}}))).await;
    assert_eq!((s, &v["tags"]), (200, &json!({"cost": "1"})), "{v}");
    for path in [vnet.as_str(), group.as_str()] {
        let (s, v) = api.call(Method::PATCH, path, Some(json!({}))).await;
        assert_eq!(s, 200, "{v}");
        assert!(v["tags"].as_object().is_some_and(|t| !t.is_empty()), "{path}: tags kept: {v}");
        let (s, v) = api.call(Method::PATCH, path, Some(json!({"tags": {"only": "this"}}))).await;
        assert_eq!((s, &v["tags"]), (200, &json!({"only": "this"})), "{path}: {v}");
    }
}

/// A VM's write rewrites the NICs it takes or lets go: GET shows the NIC's `virtualMachine`
/// while the VM holds it, and not after (and so does the store, which agents are fed from).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nic_shows_the_vm_that_holds_it() {
    let api = Api::start().await;
    api.group("net").await;
    let v = api.vnet("net", "v", "10.1.0.0/16").await;
    let nic = api.net("net", "networkInterfaces/n");
    let subnet = format!("{}/subnets/default", v["id"].as_str().expect("id"));
    let body = json!({"location": "westeurope", "properties": {"ipConfigurations": [
        {"name": "ip", "properties": {"subnet": {"id": subnet}}}]}});
    assert_eq!(api.call(Method::PUT, &nic, Some(body)).await.0, 201);
    let vm = format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines/vm", api.sub());
    let body =
        json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}});
    let (s, v) = api.call(Method::PUT, &vm, Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let (_, n) = api.call(Method::GET, &nic, None).await;
    assert_eq!(
        n["properties"]["virtualMachine"]["id"].as_str().map(str::to_ascii_lowercase),
        Some(vm.to_ascii_lowercase()),
        "{n}"
    );
    let api = api.restart().await;
    let (_, n) = api.call(Method::GET, &nic, None).await;
    assert!(n["properties"]["virtualMachine"].is_object(), "after a restart: {n}");
    assert_eq!(api.call(Method::DELETE, &vm, None).await.0, 202);
    let (_, n) = api.call(Method::GET, &nic, None).await;
    assert!(n["properties"].get("virtualMachine").is_none(), "{n}");
}

/// Each type answers the api-versions it has: a VNet from Microsoft.Network's first, a peering
/// only from the version that introduced peering, a VM within Microsoft.Compute's range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_follow_each_type() {
    let api = Api::start().await;
    api.group("net").await;
    api.vnet("net", "v", "10.1.0.0/16").await;
    let vnets = api.net("net", "virtualNetworks");
    let links = format!("{vnets}/v/virtualNetworkPeerings");
    let vms = format!("{}/resourceGroups/net/providers/Microsoft.Compute/virtualMachines", api.sub());
    for (path, version, status) in [
        (&vnets, "2015-06-15", 200),
        (&links, "2016-03-30", 400),
        (&links, "2016-06-01", 200),
        (&links, "2023-11-01", 200),
        (&vms, "2024-07-01", 200),
        // The newest Compute version `az` 2.91 sends for `az vm show`, and one past it.
        (&vms, "2026-04-01", 200),
        (&vms, "2026-06-01", 400),
    ] {
        let (s, v) = api.call(Method::GET, &format!("{path}?api-version={version}"), None).await;
        assert_eq!(s, status, "{path} at {version}: {v}");
    }
}
