//! Bad input gets a 4xx ARM error, never a 5xx, and leaves the state unchanged.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::Api;

async fn refused(api: &Api, method: Method, path: &str, body: Option<&[u8]>) -> (u16, String) {
    let before = api.everything().await;
    let r = api.send(method, path, body).await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!((400..500).contains(&status), "{path}: expected a 4xx, got {status} {v}");
    let code = v["error"]["code"].as_str().unwrap_or_else(|| panic!("{path}: no ARM error body: {v}")).to_string();
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "a message: {v}");
    assert_eq!(api.everything().await, before, "{path}: a refused request changed the state");
    (status, code)
}

/// (what, method, path, body, expected status, expected code or "" for any).
type Case = (&'static str, Method, String, Option<Vec<u8>>, u16, &'static str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_arm_errors_and_changes_nothing() {
    let api = Api::start().await;
    api.group("rg").await;
    api.vnet("rg", "hub", "10.0.0.0/16").await;
    let vnet = api.net("rg", "virtualNetworks/other");
    let ok_body =
        |prefix: &str| json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [prefix]}}});

    let cases: Vec<Case> = vec![
        ("malformed JSON", Method::PUT, vnet.clone(), Some(b"{\"location\": ".to_vec()), 400, "InvalidRequestFormat"),
        ("not an object", Method::PUT, vnet.clone(), Some(b"[1,2]".to_vec()), 400, "InvalidRequestContent"),
        ("empty body", Method::PUT, vnet.clone(), Some(Vec::new()), 400, "InvalidRequestContent"),
        (
            "wrong type",
            Method::PUT,
            vnet.clone(),
            Some(json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": "10.9.0.0/16"}}}).to_string().into_bytes()),
            400,
            "InvalidRequestContent",
        ),
        ("wrong type in a subscription", Method::PUT, format!("/subscriptions/{}?api-version=2022-12-01", uuid::Uuid::new_v4()),
            Some(json!({"tenantId": 5, "displayName": "typo"}).to_string().into_bytes()), 400, "InvalidRequestContent"),
        ("bad CIDR", Method::PUT, vnet.clone(), Some(ok_body("10.9.0.0/33").to_string().into_bytes()), 400, "InvalidAddressPrefixFormat"),
        ("no location", Method::PUT, vnet.clone(), Some(json!({"properties": {}}).to_string().into_bytes()), 400, "LocationRequired"),
        ("unknown region", Method::PUT, vnet.clone(), Some(json!({"location": "mars", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}}).to_string().into_bytes()), 400, "LocationNotAvailableForResourceType"),
        ("overlapping peering", Method::PUT, format!("{}/virtualNetworkPeerings/p", api.net("rg", "virtualNetworks/hub")),
            Some(json!({"properties": {"remoteVirtualNetwork": {"id": format!("{}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/hub", api.sub())}}}).to_string().into_bytes()), 400, ""),
        ("unknown api-version", Method::PUT, format!("{vnet}?api-version=2099-01-01"), Some(ok_body("10.9.0.0/16").to_string().into_bytes()), 400, "InvalidApiVersionParameter"),
        ("garbled api-version", Method::GET, format!("{vnet}?api-version=yesterday"), None, 400, "InvalidApiVersionParameter"),
        ("api-version older than the type", Method::PUT, format!("{}/virtualNetworkPeerings/p?api-version=2016-03-30", api.net("rg", "virtualNetworks/hub")),
            Some(json!({"properties": {"remoteVirtualNetwork": {"id": vnet}}}).to_string().into_bytes()), 400, "InvalidApiVersionParameter"),
        ("an api-version newer than Compute's on a VM", Method::PUT, format!("{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm?api-version=2026-06-01", api.sub()),
            Some(b"{}".to_vec()), 400, "InvalidApiVersionParameter"),
        ("missing api-version", Method::GET, format!("{vnet}?api-version="), None, 400, "InvalidApiVersionParameter"),
        ("missing resource group", Method::PUT, api.net("nope", "virtualNetworks/x"), Some(ok_body("10.9.0.0/16").to_string().into_bytes()), 404, "ResourceGroupNotFound"),
        ("missing subscription", Method::PUT, "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/x".into(), Some(ok_body("10.9.0.0/16").to_string().into_bytes()), 404, "SubscriptionNotFound"),
        ("oversized body", Method::PUT, vnet.clone(), Some(vec![b' '; 2 << 20]), 413, "RequestEntityTooLarge"),
        ("unknown type", Method::PUT, api.net("rg", "frobnicators/x"), Some(ok_body("10.9.0.0/16").to_string().into_bytes()), 400, "InvalidResourceType"),
        ("unknown namespace", Method::PUT, format!("{}/resourceGroups/rg/providers/Contoso.Widgets/widgets/x", api.sub()), Some(b"{}".to_vec()), 400, "NoRegisteredProviderFound"),
        ("unknown child type", Method::PUT, format!("{}/gizmos/g", api.net("rg", "virtualNetworks/hub")), Some(b"{}".to_vec()), 400, "InvalidResourceType"),
        ("read-only child", Method::PUT, format!("{}/defaultSecurityRules/AllowVnetInBound", api.net("rg", "networkSecurityGroups/n")), Some(b"{}".to_vec()), 405, "MethodNotAllowed"),
        ("bad id in a reference", Method::PUT, format!("{}/virtualNetworkPeerings/p2", api.net("rg", "virtualNetworks/hub")),
            Some(json!({"properties": {"remoteVirtualNetwork": {"id": "not/an/id"}}}).to_string().into_bytes()), 400, "InvalidRequestContent"),
        ("bad skip token", Method::GET, format!("{}?api-version=2024-05-01&$skipToken=abc", api.net("rg", "virtualNetworks")), None, 400, "InvalidSkipToken"),
        ("unsupported action", Method::POST, format!("{}/frobnicate", api.net("rg", "virtualNetworks/hub")), Some(b"{}".to_vec()), 404, "NotFound"),
        ("unknown path", Method::GET, "/definitely/not/arm".into(), None, 404, "NotFound"),
    ];
    for (what, method, path, body, status, code) in cases {
        let (got_status, got_code) = refused(&api, method, &path, body.as_deref()).await;
        assert_eq!(got_status, status, "{what}: status ({got_code})");
        if !code.is_empty() {
            assert_eq!(got_code, code, "{what}: code");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_token_get_401() {
    let api = Api::start().await;
    let url = api.url(&format!("{}/resourcegroups?api-version=2022-12-01", api.sub()));
    for auth in [None, Some("Bearer"), Some("Bearer not.a.token"), Some("Basic dXNlcjpwYXNz")] {
        let mut req = api.client.get(&url);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.expect("request");
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let v: Value = r.json().await.expect("json");
        assert!(v["error"]["code"].as_str().is_some_and(|c| c.contains("Authentication")), "{v}");
    }
    // A token with a forged signature.
    let mut parts: Vec<String> = api.token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].chars().rev().collect();
    let r = api.client.get(&url).bearer_auth(parts.join(".")).send().await.expect("request");
    assert_eq!(r.status().as_u16(), 401);
    // The token endpoint refuses a wrong secret with an OAuth error.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", api.creds.client_id.as_str()),
        ("client_secret", "wrong"),
        ("scope", "https://management.azure.com/.default"),
    ];
    let r = api
        .client
        .post(api.url(&format!("/{}/oauth2/v2.0/token", api.creds.tenant_id)))
        .form(&form)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.json::<Value>().await.expect("json")["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconditions_and_idempotent_deletes() {
    let api = Api::start().await;
    api.group("rg").await;
    let v = api.vnet("rg", "a", "10.0.0.0/16").await;
    let path = api.net("rg", "virtualNetworks/a");
    let url = api.url(&format!("{path}?api-version=2024-05-01"));
    let body = json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
    // If-None-Match: * on an existing resource.
    let r = api
        .client
        .put(&url)
        .bearer_auth(&api.token)
        .header("if-none-match", "*")
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 412);
    // If-Match with the current etag passes; with a stale one fails.
    let etag = v["etag"].as_str().expect("etag").to_string();
    let r =
        api.client.put(&url).bearer_auth(&api.token).header("if-match", &etag).json(&body).send().await.expect("put");
    assert_eq!(r.status().as_u16(), 200);
    let r =
        api.client.delete(&url).bearer_auth(&api.token).header("if-match", "W/\"stale\"").send().await.expect("delete");
    assert_eq!(r.status().as_u16(), 412);
    // DELETE is idempotent: 202 the first time, 204 after.
    assert_eq!(api.send(Method::DELETE, &path, None).await.status().as_u16(), 202);
    assert_eq!(api.send(Method::DELETE, &path, None).await.status().as_u16(), 204);
    let (s, e) = api.call(Method::GET, &path, None).await;
    assert_eq!((s, e["error"]["code"].as_str()), (404, Some("ResourceNotFound")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_fields_sent_back_are_ignored() {
    let api = Api::start().await;
    api.group("rg").await;
    let a = api.vnet("rg", "a", "10.1.0.0/16").await;
    let b = api.vnet("rg", "b", "10.2.0.0/16").await;
    // arm-api.md §1, O8: values a client cannot set (even ones this API version does not know)
    // are ignored, never refused.
    let mut round_trip = a.clone();
    round_trip["properties"]["provisioningState"] = json!("Creating");
    round_trip["properties"]["subnets"][0]["properties"]["provisioningState"] = json!("Canceled");
    round_trip["etag"] = json!("W/\"whatever\"");
    let (s, v) = api.call(Method::PUT, &api.net("rg", "virtualNetworks/a"), Some(round_trip)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["properties"]["provisioningState"], "Succeeded");
    let link = json!({"properties": {"remoteVirtualNetwork": {"id": b["id"]}, "peeringState": "Connected",
        "peeringSyncLevel": "Garbage", "remoteAddressSpace": {"addressPrefixes": ["192.0.2.0/24"]}}});
    let (s, v) =
        api.call(Method::PUT, &api.net("rg", "virtualNetworks/a/virtualNetworkPeerings/to-b"), Some(link)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["properties"]["peeringState"], "Initiated", "the server owns the state");
    assert_eq!(v["properties"]["remoteAddressSpace"]["addressPrefixes"], json!(["10.2.0.0/16"]));
    // A skip token past the end (even near u64::MAX) is an empty page, not a failure.
    let (s, v) = api
        .call(
            Method::GET,
            &format!("{}?api-version=2024-05-01&$skipToken=18446744073709551614", api.net("rg", "virtualNetworks")),
            None,
        )
        .await;
    assert_eq!((s, v["value"].as_array().map(Vec::len)), (200, Some(0)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_the_same_etag_never_lose_an_update() {
    let api = Api::start().await;
    api.group("rg").await;
    let v = api.vnet("rg", "a", "10.0.0.0/16").await;
    let etag = v["etag"].as_str().expect("etag").to_string();
    let url = api.url(&format!("{}?api-version=2024-05-01", api.net("rg", "virtualNetworks/a")));
    // Eight writers read the same version and each sets its own tag with If-Match.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (client, url, token, etag) = (api.client.clone(), url.clone(), api.token.clone(), etag.clone());
        let body = json!({"location": "westeurope", "tags": {"writer": i.to_string()},
                          "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}});
        tasks.push(tokio::spawn(async move {
            let r = client.put(url).bearer_auth(token).header("if-match", etag).json(&body).send().await.expect("put");
            (i, r.status().as_u16())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, status) = t.await.expect("task");
        match status {
            200 => winners.push(i),
            412 => {}
            other => panic!("writer {i}: unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let (_, now) = api.call(Method::GET, &api.net("rg", "virtualNetworks/a"), None).await;
    assert_eq!(now["tags"]["writer"], winners[0].to_string(), "the winner's write is the one kept");
}
