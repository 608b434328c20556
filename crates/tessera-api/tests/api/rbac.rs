//! Role-based access and cross-tenant peering (spec §2.4, A1–A5): built-in roles decide each
//! operation, role assignments through the Microsoft.Authorization API, a token of another
//! tenant is refused, and a peering link needs `peer/action` on the remote VNet — from an
//! auxiliary token when the remote VNet is in another tenant (403 `LinkedAuthorizationFailed`
//! in both of ARM's shapes otherwise).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{AUTH, Api, NETWORK_CONTRIBUTOR, READER, guid};

fn vnet_body(prefix: &str) -> Value {
    json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [prefix]}}})
}

/// An operation and its expected status as owner, reader, network contributor on `other`, and a
/// principal without a role.
type Row = (&'static str, Method, String, Option<Value>, [u16; 4]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_roles_decide_each_operation() {
    let api = Api::start().await;
    let tenant = api.creds.tenant_id.clone();
    api.group("net").await;
    api.group("other").await;
    api.vnet("net", "v1", "10.1.0.0/16").await;
    api.vnet("other", "v2", "10.2.0.0/16").await;
    let sub = api.sub();
    let mut tokens = Vec::new();
    for role in [Some((READER, sub.clone())), Some((NETWORK_CONTRIBUTOR, format!("{sub}/resourceGroups/other"))), None]
    {
        let (id, secret) = api.principal(&tenant, &[]).await;
        if let Some((role, scope)) = role {
            api.assign(&api.token, &scope, role, &id).await;
        }
        tokens.push(api.token_for(&id, &secret, &tenant).await.expect("token"));
    }
    let (reader, netc, nobody) = (&tokens[0], &tokens[1], &tokens[2]);
    let owner = &api.token;
    let v1 = api.net("net", "virtualNetworks/v1");
    let assignment = format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{}?{AUTH}", guid());
    let grant = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
                                      "principalId": api.creds.client_id}});
    // (what, method, path, body, status as owner, reader, network contributor on `other`, nobody)
    let rows: Vec<Row> = vec![
        ("read a VNet", Method::GET, v1.clone(), None, [200, 200, 403, 403]),
        ("list a group's VNets", Method::GET, api.net("other", "virtualNetworks"), None, [200, 200, 200, 403]),
        (
            "write a VNet in net",
            Method::PUT,
            api.net("net", "virtualNetworks/w"),
            Some(vnet_body("10.3.0.0/16")),
            [201, 403, 403, 403],
        ),
        (
            "write a VNet in other",
            Method::PUT,
            api.net("other", "virtualNetworks/x"),
            Some(vnet_body("10.4.0.0/16")),
            [201, 403, 201, 403],
        ),
        ("delete a VNet in net", Method::DELETE, api.net("net", "virtualNetworks/none"), None, [204, 403, 403, 403]),
        ("read a subnet", Method::GET, format!("{v1}/subnets/default"), None, [200, 200, 403, 403]),
        ("assign a role", Method::PUT, assignment, Some(grant), [201, 403, 403, 403]),
        (
            "list role definitions",
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleDefinitions?{AUTH}"),
            None,
            [200, 200, 403, 403],
        ),
        (
            "list role assignments",
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleAssignments?{AUTH}"),
            None,
            [200, 200, 403, 403],
        ),
    ];
    for (what, method, path, body, expected) in rows {
        let mut got = [0u16; 4];
        for (i, t) in [owner, reader, netc, nobody].into_iter().enumerate() {
            // A write that succeeded once would answer 200 the second time: each caller gets a
            // fresh target where the row writes.
            let path = if method == Method::PUT && i > 0 && path.contains("virtualNetworks/") {
                path.replace("virtualNetworks/w", "virtualNetworks/w2")
                    .replace("virtualNetworks/x", &format!("virtualNetworks/x{i}"))
            } else {
                path.clone()
            };
            let (s, v) = api.call_as(t, &[], method.clone(), &path, body.clone()).await;
            if s == 403 {
                assert_eq!(v["error"]["code"], "AuthorizationFailed", "{what}: {v}");
            }
            got[i] = s;
        }
        assert_eq!(got, expected, "{what} as owner, reader, network contributor on 'other', nobody");
    }
    // The network contributor of `other` writes there (A1), including its own second VNet.
    let (s, v) = api
        .call_as(netc, &[], Method::PUT, &api.net("other", "virtualNetworks/mine"), Some(vnet_body("10.5.0.0/16")))
        .await;
    assert_eq!(s, 201, "{v}");
    // Subscriptions are listed to those who hold a role in them, and no one else.
    for (t, count) in [(owner, 1), (reader, 1), (netc, 1), (nobody, 0)] {
        let (s, v) = api.call_as(t, &[], Method::GET, "/subscriptions?api-version=2022-12-01", None).await;
        assert_eq!(s, 200);
        assert_eq!(v["value"].as_array().map(Vec::len), Some(count), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_tenant_peering_needs_peer_action_through_an_auxiliary_token() {
    let api = Api::start().await;
    let t1 = api.creds.tenant_id.clone();
    let (t2, s2, admin2) = api.second_tenant().await;
    let remote_rg = format!("/subscriptions/{s2}/resourceGroups/remote");
    let (s, v) = api
        .call_as(
            &admin2,
            &[],
            Method::PUT,
            &format!("{remote_rg}?api-version=2022-12-01"),
            Some(json!({"location": "westeurope"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let vb = format!("{remote_rg}/providers/Microsoft.Network/virtualNetworks/vb");
    let (s, v) = api.call_as(&admin2, &[], Method::PUT, &vb, Some(vnet_body("10.20.0.0/16"))).await;
    assert_eq!(s, 201, "{v}");
    api.group("net").await;
    api.group("other").await;
    api.vnet("net", "va", "10.1.0.0/16").await;
    api.vnet("other", "vo", "10.2.0.0/16").await;
    let net_rg = format!("{}/resourceGroups/net", api.sub());

    // x: network contributor on both sides, a guest of t2. y: the same at home, nothing remote.
    let (x, xs) = api.principal(&t1, &[&t2]).await;
    let (y, ys) = api.principal(&t1, &[&t2]).await;
    for who in [&x, &y] {
        api.assign(&api.token, &net_rg, NETWORK_CONTRIBUTOR, who).await;
    }
    api.assign(&admin2, &remote_rg, NETWORK_CONTRIBUTOR, &x).await;
    let (x1, x2) = (api.token_for(&x, &xs, &t1).await.expect("x"), api.token_for(&x, &xs, &t2).await.expect("x in t2"));
    let (y1, y2) = (api.token_for(&y, &ys, &t1).await.expect("y"), api.token_for(&y, &ys, &t2).await.expect("y in t2"));

    let link = api.net("net", "virtualNetworks/va/virtualNetworkPeerings/va-to-vb");
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": vb}, "allowVirtualNetworkAccess": true}});
    // A4 (b): no token of the remote tenant.
    let (s, v) = api.call_as(&x1, &[], Method::PUT, &link, Some(body.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("LinkedAuthorizationFailed")), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap_or_default().contains("not authorized to access linked subscription"),
        "{v}"
    );
    // A5: an auxiliary token that is not valid is a 401; more than three is refused.
    let (s, v) = api.call_as(&x1, &["not-a-token"], Method::PUT, &link, Some(body.clone())).await;
    assert_eq!(s, 401, "{v}");
    let (s, _) = api.call_as(&x1, &[&x2, &x2, &x2, &x2], Method::PUT, &link, Some(body.clone())).await;
    assert_eq!(s, 400);
    // A4 (a): y's remote-tenant token holds no peer/action on vb.
    let (s, v) = api.call_as(&y1, &[&y2], Method::PUT, &link, Some(body.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("LinkedAuthorizationFailed")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap_or_default().contains("peer/action"), "{v}");
    // A5: with x's token of the remote tenant the link is made.
    let (s, v) = api.call_as(&x1, &[&x2], Method::PUT, &link, Some(body.clone())).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["properties"]["peeringState"], "Initiated");
    // A4 (a) within one tenant: no rights on the remote VNet of another resource group.
    let local = api.net("net", "virtualNetworks/va/virtualNetworkPeerings/va-to-vo");
    let to_vo = json!({"properties": {"remoteVirtualNetwork": {"id": api.net("other", "virtualNetworks/vo")}}});
    let (s, v) = api.call_as(&x1, &[], Method::PUT, &local, Some(to_vo.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("LinkedAuthorizationFailed")), "{v}");
    // The admin (Owner at the root) may.
    let (s, v) = api.call(Method::PUT, &local, Some(to_vo)).await;
    assert_eq!(s, 201, "{v}");
    // A token of the home tenant does not open the remote tenant's subscription.
    let (s, v) = api.call_as(&x1, &[], Method::GET, &vb, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("InvalidAuthenticationTokenTenant")), "{v}");
    let (s, _) = api.call_as(&x2, &[], Method::GET, &vb, None).await;
    assert_eq!(s, 200);
    // A principal signs in only to its home and the tenants it is a guest in.
    let (z, zs) = api.principal(&t1, &[]).await;
    assert!(api.token_for(&z, &zs, &t2).await.is_none());
    // /tenants lists the caller's tenants.
    let (_, v) = api.call_as(&x1, &[], Method::GET, "/tenants?api-version=2022-12-01", None).await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(2), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_expired_forged_or_of_no_principal_get_401() {
    let api = Api::start_with(tempfile::tempdir().expect("dir"), |c| {
        c.settings.token_lifetime_secs = 1;
        c.settings.token_leeway_secs = 0;
    })
    .await;
    let path = format!("{}/resourcegroups?api-version=2022-12-01", api.sub());
    let token = api.token.clone();
    // A changed signature, and a payload changed to name another tenant: the signature fails.
    let mut forged = token.clone();
    let last = forged.pop().map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
    forged.push(last);
    let parts: Vec<&str> = token.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).expect("payload")).expect("claims");
    claims["tid"] = json!(guid());
    claims["iss"] = json!(format!("https://sts.tessera.local/{}/", claims["tid"].as_str().expect("tid")));
    let other_tenant = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    for (what, t) in [("signature", forged.as_str()), ("tenant", other_tenant.as_str()), ("garbage", "a.b.c")] {
        let (s, v) = api.call_as(t, &[], Method::GET, &path, None).await;
        assert_eq!(s, 401, "{what}: {v}");
    }
    let (s, _) = api.call_as(&token, &[], Method::GET, &path, None).await;
    assert_eq!(s, 200, "the token itself is fine while fresh");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let (s, v) = api.call_as(&token, &[], Method::GET, &path, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("ExpiredAuthenticationToken")), "{v}");
}

/// Fuzzed `Authorization` and `x-ms-authorization-auxiliary` headers (random bytes, and real
/// tokens cut, flipped and re-joined) get a 4xx, never a 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_tokens_and_headers_never_get_a_5xx() {
    let api = Api::start().await;
    let url = api.url(&format!("{}/resourcegroups?api-version=2022-12-01", api.sub()));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let token = api.token.clone();
    let alphabet: Vec<char> =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ,\"{}".chars().collect();
    for round in 0..300 {
        let n = usize::try_from(next() % 400).unwrap_or(0);
        let candidate: String = match round % 4 {
            0 => (0..n).map(|_| alphabet[usize::try_from(next()).unwrap_or(0) % alphabet.len()]).collect(),
            1 => {
                let mut t: Vec<char> = token.chars().collect();
                let len = t.len();
                for _ in 0..1 + next() % 4 {
                    let i = usize::try_from(next()).unwrap_or(0) % len;
                    t[i] = alphabet[usize::try_from(next()).unwrap_or(0) % alphabet.len()];
                }
                t.into_iter().collect()
            }
            2 => token.chars().take(n.min(token.len())).collect(),
            _ => {
                let parts: Vec<&str> = token.split('.').collect();
                let pick = |k: u64| parts[usize::try_from(k).unwrap_or(0) % parts.len()];
                format!("{}.{}.{}", pick(next()), pick(next()), pick(next()))
            }
        };
        let (header, aux) = if round % 2 == 0 {
            (format!("Bearer {candidate}"), None)
        } else {
            (format!("Bearer {token}"), Some(candidate))
        };
        let mut req = api.client.get(&url).header("authorization", header);
        if let Some(a) = aux {
            req = req.header("x-ms-authorization-auxiliary", format!("Bearer {a}"));
        }
        let r = req.send().await.expect("request");
        let s = r.status().as_u16();
        assert!(s < 500, "round {round}: {s} {}", r.text().await.unwrap_or_default());
    }
}

/// A token signed with the right key but for another audience is refused (401), and a role
/// assigned at a resource's scope covers that resource only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_audience_and_resource_scope() {
    let mut api = Api::start().await;
    api.group("net").await;
    api.vnet("net", "a", "10.1.0.0/16").await;
    api.vnet("net", "b", "10.2.0.0/16").await;
    let tenant = api.creds.tenant_id.clone();
    let (id, secret) = api.principal(&tenant, &[]).await;
    let a = api.net("net", "virtualNetworks/a");
    api.assign(&api.token, &a, READER, &id).await;
    let t = api.token_for(&id, &secret, &tenant).await.expect("token");
    assert_eq!(api.call_as(&t, &[], Method::GET, &a, None).await.0, 200, "read at the VNet's own scope");
    assert_eq!(api.call_as(&t, &[], Method::GET, &api.net("net", "virtualNetworks/b"), None).await.0, 403);
    assert_eq!(api.call_as(&t, &[], Method::GET, &format!("{a}/subnets/default"), None).await.0, 200, "and below it");

    // The master key, read from the store while the server is down, signs a token for the
    // Graph audience: the signature is right, the audience is not.
    if let Some(s) = api.server.take() {
        s.shutdown().await.expect("shutdown");
    }
    let key = {
        use tessera_store::Store;
        let store = tessera_store::RedbStore::open(&api.dir.path().join("store.redb")).expect("store");
        store.get("meta/signing-key").expect("read").expect("a key").value
    };
    let api = Api::start_in(api.dir).await;
    let sp = tessera_api::auth::ServicePrincipal {
        client_id: api.creds.client_id.clone(),
        tenant_id: tenant.clone(),
        display_name: "admin".into(),
        secret_sha256: String::new(),
        guest_tenants: Vec::new(),
    };
    let keys = tessera_api::auth::TokenKeys::new(&key);
    let right = keys.issue(&sp, &tenant, "https://management.azure.com/").expect("sign");
    let wrong = keys.issue(&sp, &tenant, "https://graph.microsoft.com/").expect("sign");
    let path = format!("{}/resourcegroups?api-version=2022-12-01", api.sub());
    assert_eq!(api.call_as(&right, &[], Method::GET, &path, None).await.0, 200, "the same key and the right audience");
    let (s, v) = api.call_as(&wrong, &[], Method::GET, &path, None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")), "{v}");
}

/// A custom role (A2's action list, with a notAction) assigned at a resource group: its
/// holder reads and peers there, but may not write VNets, and only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_role_permits_exactly_its_actions() {
    let api = Api::start().await;
    api.group("net").await;
    api.vnet("net", "a", "10.1.0.0/16").await;
    api.vnet("net", "b", "10.2.0.0/16").await;
    let role = guid();
    let scope = format!("{}/resourceGroups/net", api.sub());
    let (s, v) = api
        .call(
            Method::PUT,
            &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{role}?{AUTH}"),
            Some(json!({"properties": {"roleName": "Peering Operator", "assignableScopes": [scope],
                "permissions": [{"actions": ["Microsoft.Network/virtualNetworks/*"],
                                 "notActions": ["Microsoft.Network/virtualNetworks/write", "Microsoft.Network/virtualNetworks/delete"]}]}})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (id, secret) = api.principal(&api.creds.tenant_id, &[]).await;
    api.assign(&api.token, &scope, &role, &id).await;
    let t = api.token_for(&id, &secret, &api.creds.tenant_id).await.expect("token");
    let a = api.net("net", "virtualNetworks/a");
    assert_eq!(api.call_as(&t, &[], Method::GET, &a, None).await.0, 200);
    let (s, v) = api.call_as(&t, &[], Method::PUT, &a, Some(vnet_body("10.1.0.0/16"))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "notActions: {v}");
    let link = json!({"properties": {"remoteVirtualNetwork": {"id": api.net("net", "virtualNetworks/b")}}});
    let (s, v) = api.call_as(&t, &[], Method::PUT, &format!("{a}/virtualNetworkPeerings/a-to-b"), Some(link)).await;
    assert_eq!(s, 201, "peerings/write and peer/action: {v}");
    // The role is in use: it cannot be deleted; a built-in role can never be.
    let (s, v) = api
        .call(Method::DELETE, &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{role}?{AUTH}"), None)
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("RoleDefinitionHasAssignments")), "{v}");
    let (s, v) = api
        .call(
            Method::DELETE,
            &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{READER}?{AUTH}"),
            None,
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("RoleDefinitionCannotBeDeleted")), "{v}");
    // Listed by name at the scope.
    let (s, v) = api
        .call(Method::GET, &format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?{AUTH}&$filter=roleName eq 'Peering Operator'"), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1), "{v}");
}

/// Repeated failed sign-ins lock the client id for a while: 429 with `Retry-After`, even with
/// the right secret, then sign-in works again; other client ids are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failed_sign_ins_are_throttled() {
    let dir = tempfile::tempdir().expect("dir");
    let api = Api::start_with(dir, |c| {
        c.settings.sign_in_failures = 3;
        c.settings.sign_in_lockout_secs = 2;
    })
    .await;
    let tenant = api.creds.tenant_id.clone();
    let (id, secret) = api.principal(&tenant, &[]).await;
    let sign_in = |secret: String| {
        let form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", id.clone()),
            ("client_secret", secret),
            ("scope", "https://management.azure.com/.default".to_string()),
        ];
        let request = api.client.post(api.url(&format!("/{tenant}/oauth2/v2.0/token"))).form(&form);
        async move {
            let r = request.send().await.expect("token request");
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            (r.status().as_u16(), retry)
        }
    };
    for _ in 0..3 {
        assert_eq!(sign_in("wrong-secret-guess".into()).await.0, 401);
    }
    let (status, retry) = sign_in(secret.clone()).await;
    assert_eq!(status, 429, "locked, even with the right secret");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    // Another client id signs in meanwhile.
    assert!(api.token_for(&api.creds.client_id, &api.creds.client_secret, &tenant).await.is_some());
    tokio::time::sleep(std::time::Duration::from_secs(retry)).await;
    assert_eq!(sign_in(secret).await.0, 200, "after the lock");
}
