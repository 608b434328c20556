//! Attempts to take over access control: rewriting another tenant's custom role, widening a
//! subscription-wide role from a resource group, assigning a role where it is not assignable,
//! and moving a subscription to another tenant as a Contributor (issue: trust, points 2–3).

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{AUTH, Api, CONTRIBUTOR, OWNER, READER, RES, guid};

fn role_path(scope: &str, id: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{id}?{AUTH}")
}

fn role_body(name: &str, scopes: &[&str], actions: &[&str]) -> Value {
    json!({"properties": {"roleName": name, "assignableScopes": scopes, "permissions": [{"actions": actions}]}})
}

/// A second tenant with a subscription whose Owner is a principal of that tenant: (tenant,
/// subscription, the Owner's token).
async fn second_tenant(api: &Api) -> (String, String, String) {
    let (t2, s2, admin2) = api.second_tenant().await;
    let (owner2, secret) = api.principal(&t2, &[]).await;
    api.assign(&admin2, &format!("/subscriptions/{s2}"), OWNER, &owner2).await;
    let token = api.token_for(&owner2, &secret, &t2).await.expect("owner2");
    (t2, s2, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_roles_cannot_be_hijacked_or_widened() {
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    api.group("net").await;
    let role = guid();
    let (s, v) = api
        .call(
            Method::PUT,
            &role_path(&sub, &role),
            Some(role_body("Peering Reader", &[&sub], &["Microsoft.Network/virtualNetworks/read"])),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let original = api.call(Method::GET, &role_path(&sub, &role), None).await.1;

    // Another tenant's Owner, through its own subscription's URL.
    let (_t2, s2, owner2) = second_tenant(&api).await;
    let theirs = format!("/subscriptions/{s2}");
    let (s, v) = api.call_as(&owner2, &[], Method::GET, &role_path(&theirs, &role), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("RoleDefinitionDoesNotExist")), "not even readable: {v}");
    let hijack = role_body("Peering Reader", &[&theirs], &["*"]);
    let (s, v) = api.call_as(&owner2, &[], Method::PUT, &role_path(&theirs, &role), Some(hijack)).await;
    assert!(s == 401 || s == 403, "another tenant's role is not changed: {s} {v}");
    let (s, v) = api.call_as(&owner2, &[], Method::DELETE, &role_path(&theirs, &role), None).await;
    assert_eq!(s, 204, "nothing of theirs to delete there: {v}");
    let (_, listed) = api
        .call_as(
            &owner2,
            &[],
            Method::GET,
            &format!("{theirs}/providers/Microsoft.Authorization/roleDefinitions?{AUTH}"),
            None,
        )
        .await;
    assert!(!listed.to_string().contains(&role), "their list does not show it: {listed}");

    // A resource group's Owner cannot widen (or delete) a subscription-wide role.
    let (rg_owner, secret) = api.principal(&t1, &[]).await;
    let net = format!("{sub}/resourceGroups/net");
    let (s, v) = api.try_assign(&api.token, &net, OWNER, &rg_owner).await;
    assert_eq!(s, 201, "{v}");
    let token = api.token_for(&rg_owner, &secret, &t1).await.expect("token");
    let widened = role_body("Peering Reader", &[&net], &["*"]);
    let (s, v) = api.call_as(&token, &[], Method::PUT, &role_path(&net, &role), Some(widened)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{v}");
    let (s, v) = api.call_as(&token, &[], Method::DELETE, &role_path(&net, &role), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{v}");
    assert_eq!(api.call(Method::GET, &role_path(&sub, &role), None).await.1, original, "the role is unchanged");

    // A role is assigned only where it is assignable: not another tenant's, not outside its scopes.
    let (s, v) = api.try_assign(&owner2, &theirs, &role, &rg_owner).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("RoleDefinitionDoesNotExist")), "{v}");
    let narrow = guid();
    let (s, v) =
        api.call(Method::PUT, &role_path(&net, &narrow), Some(role_body("Net Only", &[&net], &["*/read"]))).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = api.try_assign(&api.token, &sub, &narrow, &rg_owner).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("RoleDefinitionDoesNotExist")), "{v}");
    // Its creator (Owner of the group) may still change its own group's role.
    let (s, v) = api
        .call_as(&token, &[], Method::PUT, &role_path(&net, &narrow), Some(role_body("Net Only", &[&net], &["*"])))
        .await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_moves_tenant_only_by_a_root_owner_of_both() {
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    let (t2, _s2, _owner2) = second_tenant(&api).await;
    // A Contributor at the root scope, and an Owner of the subscription only.
    let (contributor, cs) = api.principal(&t1, &[&t2]).await;
    let (s, v) = api.try_assign(&api.token, "", CONTRIBUTOR, &contributor).await;
    assert_eq!(s, 201, "{v}");
    let contributor = api.token_for(&contributor, &cs, &t1).await.expect("token");
    let (sub_owner, os) = api.principal(&t1, &[&t2]).await;
    let (s, v) = api.try_assign(&api.token, &sub, OWNER, &sub_owner).await;
    assert_eq!(s, 201, "{v}");
    let sub_owner = api.token_for(&sub_owner, &os, &t1).await.expect("token");
    let path = format!("{sub}?{RES}");
    let move_to = |t: &str| json!({"tenantId": t, "displayName": "moved"});

    for (who, token) in [("root contributor", &contributor), ("subscription owner", &sub_owner)] {
        let (s, v) = api.call_as(token, &[], Method::PUT, &path, Some(move_to(&t2))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{who}: {v}");
    }
    let (s, v) = api
        .call_as(
            &contributor,
            &[],
            Method::PUT,
            &format!("/subscriptions/{}?{RES}", guid()),
            Some(json!({"tenantId": t1})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "a contributor creates none: {v}");
    let (s, v) = api.call_as(&contributor, &[], Method::PUT, &path, Some(json!({"displayName": "renamed"}))).await;
    assert_eq!(s, 403, "a contributor renames none: {v}");
    // The subscription's Owner may rename it (the tenant stays).
    let (s, v) = api.call_as(&sub_owner, &[], Method::PUT, &path, Some(json!({"displayName": "renamed"}))).await;
    assert_eq!(
        (s, v["tenantId"].as_str(), v["displayName"].as_str()),
        (200, Some(t1.as_str()), Some("renamed")),
        "{v}"
    );
    // The admin, an Owner at the root, is not (yet) a member of tenant 3: refused too.
    let t3 = guid();
    let (s, v) = api.call(Method::PUT, &path, Some(move_to(&t3))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{v}");
    // Nobody lost access: the admin still reads the subscription and its groups.
    let (s, v) = api.call(Method::GET, &path, None).await;
    assert_eq!((s, v["tenantId"].as_str()), (200, Some(t1.as_str())), "{v}");
    // A root Owner who is a member of both tenants may move it (the admin is a guest of t2).
    let (s, v) = api.call(Method::PUT, &path, Some(move_to(&t2))).await;
    assert_eq!((s, v["tenantId"].as_str()), (200, Some(t2.as_str())), "{v}");
}

#[tokio::test]
async fn only_an_operator_of_the_host_makes_it_simulate_a_site() {
    // A simulated site runs namespaces and daemons on a host (issue 16): the `tessera-simulate`
    // tag needs Tessera/hosts/write on that host, which a subscription's Owner does not have.
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    api.group("rg-site").await;
    let (owner, secret) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &sub, OWNER, &owner).await;
    let owner = api.token_for(&owner, &secret, &t1).await.expect("token");
    let site = api.net("rg-site", "localNetworkGateways/onprem");
    let body = |tags: Value| {
        json!({"location": "westeurope", "tags": tags, "properties": {
            "gatewayIpAddress": "203.0.113.10",
            "localNetworkAddressSpace": {"addressPrefixes": ["192.168.0.0/16"]}}})
    };
    for tags in [json!({"tessera-simulate": "true"}), json!({"Tessera-Simulate": "10.9.0.0/24", "tessera-host": "h2"})]
    {
        let (s, v) = api.call_as(&owner, &[], Method::PUT, &site, Some(body(tags.clone()))).await;
        assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{tags}: {v}");
        let (s, _) = api.call(Method::GET, &site, None).await;
        assert_eq!(s, 404, "nothing written");
    }
    let (s, v) = api.call_as(&owner, &[], Method::PUT, &site, Some(body(json!({"env": "lab"})))).await;
    assert_eq!(s, 201, "without the tag the owner writes the site: {v}");
    let patch = json!({"tags": {"tessera-simulate": "true"}});
    let (s, v) = api.call_as(&owner, &[], Method::PATCH, &site, Some(patch.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "PATCH: {v}");
    let (_, v) = api.call(Method::GET, &site, None).await;
    assert_eq!(v["tags"], json!({"env": "lab"}), "the tags stay");
    // The server's admin (an Owner at the root, which covers the hosts) may.
    let (s, v) = api.call(Method::PATCH, &site, Some(patch)).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn a_connections_key_is_read_and_replaced_only_with_its_rights() {
    // GetSharedKey needs connections/sharedKey/read (a Reader has it, as `*/read`), SetSharedKey
    // connections/sharedKey/write; another tenant's principal learns nothing.
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    api.group("rg-vpn").await;
    let put = |path: String, body: Value| {
        let api = &api;
        async move {
            let (s, v) = api.call(Method::PUT, &path, Some(body)).await;
            assert!(matches!(s, 200 | 201), "{path}: {s} {v}");
            v
        }
    };
    let vnet = put(
        api.net("rg-vpn", "virtualNetworks/hub"),
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
            "subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.0.255.0/27"}}]}}),
    )
    .await;
    let pip = put(
        api.net("rg-vpn", "publicIPAddresses/gw-ip"),
        json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {"publicIPAllocationMethod": "Static"}}),
    )
    .await;
    let gw = put(
        api.net("rg-vpn", "virtualNetworkGateways/gw"),
        json!({"location": "westeurope", "properties": {"gatewayType": "Vpn", "vpnType": "RouteBased",
            "sku": {"name": "VpnGw1", "tier": "VpnGw1"}, "ipConfigurations": [{"name": "default", "properties": {
            "subnet": {"id": format!("{}/subnets/GatewaySubnet", vnet["id"].as_str().expect("id"))},
            "publicIPAddress": {"id": pip["id"]}}}]}}),
    )
    .await;
    let site = put(
        api.net("rg-vpn", "localNetworkGateways/office"),
        json!({"location": "westeurope", "properties": {"gatewayIpAddress": "203.0.113.10",
            "localNetworkAddressSpace": {"addressPrefixes": ["192.168.0.0/16"]}}}),
    )
    .await;
    let conn = api.net("rg-vpn", "connections/to-office");
    put(
        conn.clone(),
        json!({"location": "westeurope", "properties": {"connectionType": "IPsec", "sharedKey": "first-key",
            "virtualNetworkGateway1": {"id": gw["id"]}, "localNetworkGateway2": {"id": site["id"]}}}),
    )
    .await;
    let key = format!("{conn}/sharedkey");

    let (reader, secret) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &sub, READER, &reader).await;
    let reader = api.token_for(&reader, &secret, &t1).await.expect("token");
    let (s, v) = api.call_as(&reader, &[], Method::GET, &key, None).await;
    assert_eq!((s, v["value"].as_str()), (200, Some("first-key")), "{v}");
    let (s, v) = api.call_as(&reader, &[], Method::PUT, &key, Some(json!({"value": "stolen"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{v}");
    let (_t2, _s2, owner2) = second_tenant(&api).await;
    let (s, v) = api.call_as(&owner2, &[], Method::GET, &key, None).await;
    assert!(matches!(s, 401 | 403), "another tenant reads no key: {s} {v}");
    assert!(v["value"].is_null(), "{v}");

    let (s, v) = api.call(Method::PUT, &key, Some(json!({"value": "second-key"}))).await;
    assert_eq!((s, v["value"].as_str()), (200, Some("second-key")), "{v}");
    let (_, c) = api.call(Method::GET, &conn, None).await;
    assert_eq!(c["properties"]["sharedKey"], "second-key", "the connection carries the new key");
    let (s, v) = api.call(Method::PUT, &key, Some(json!({"value": ""}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidSharedKey")), "{v}");
    let (s, v) = api.call(Method::PUT, &key, Some(json!({}))).await;
    assert_eq!(s, 400, "{v}");
    let (_, v) = api.call(Method::GET, &key, None).await;
    assert_eq!(v["value"], "second-key", "refused keys change nothing");
    let (s, _) = api.call(Method::DELETE, &key, None).await;
    assert_eq!(s, 405);
    let (s, v) = api.call(Method::GET, &api.net("rg-vpn", "connections/none/sharedkey"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("ResourceNotFound")), "{v}");
}
