//! The authorization matrix: every family of API operations, run as the owner, a Reader of the
//! subscription, a Network Contributor of another resource group, a principal without a role,
//! and a principal of another tenant (a guest here without a role) with and without an
//! auxiliary token of this tenant — each status checked. The coverage test fails when a family
//! the router serves (`tessera_api::OPERATION_FAMILIES`) has no row.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{AUTH, Api, NETWORK_CONTRIBUTOR, READER, RES, guid, nic_body};

/// Who calls, in the order each row runs them (the owner last, so that what others may not do
/// is refused before the owner changes anything).
const CALLERS: [&str; 6] = ["nobody", "foreign", "foreign+aux", "reader", "netc(other)", "owner"];

/// One operation and its expected statuses, in [`CALLERS`] order.
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    form: bool,
    expected: [u16; 6],
}

fn row(method: Method, path: String, body: Option<Value>, expected: [u16; 6]) -> Row {
    Row { method, path, body, form: false, expected }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_family_as_every_kind_of_caller() {
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    // Fixtures, made by the owner.
    api.group("net").await;
    api.group("other").await;
    let v1 = api.vnet("net", "v1", "10.1.0.0/16").await;
    api.vnet("other", "v2", "10.2.0.0/16").await;
    let subnet = format!("{}/subnets/default", v1["id"].as_str().expect("id"));
    let nic = api.net("net", "networkInterfaces/nic1");
    let (s, v) = api.call(Method::PUT, &nic, Some(nic_body(&subnet))).await;
    assert_eq!(s, 201, "{v}");
    let r = api
        .send(Method::PUT, &api.net("net", "networkSecurityGroups/probe"), Some(br#"{"location":"westeurope"}"#))
        .await;
    let operation = r.headers()["azure-asyncoperation"].to_str().expect("header").to_string();
    let operation = operation.trim_start_matches(&api.creds.endpoint).to_string();

    // The callers.
    let (t2, s2) = (guid(), guid());
    let (s, v) = api
        .call(Method::PUT, &format!("/subscriptions/{s2}?{RES}"), Some(json!({"tenantId": t2, "displayName": "t2"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for (role, scope) in [
        (None, String::new()),
        (Some(READER), sub.clone()),
        (Some(NETWORK_CONTRIBUTOR), format!("{sub}/resourceGroups/other")),
    ] {
        let (id, secret) = api.principal(&t1, &[]).await;
        let assignment = match role {
            Some(r) => Some(api.assign(&api.token, &scope, r, &id).await),
            None => None,
        };
        tokens.push(api.token_for(&id, &secret, &t1).await.expect("token"));
        ids.push((id, assignment));
    }
    let (foreign, fs) = api.principal(&t2, &[&t1]).await;
    let foreign_home = api.token_for(&foreign, &fs, &t2).await.expect("foreign token");
    let foreign_here = api.token_for(&foreign, &fs, &t1).await.expect("foreign as a guest");
    let reader_assignment = ids[1].1.clone().expect("reader's assignment");
    let throwaway = api.principal(&t1, &[]).await.0;
    let custom = guid();
    let made_sub = guid();

    let rows = vec![
        row(Method::GET, "/metadata/endpoints".into(), None, [200; 6]),
        row(Method::GET, format!("/{t1}/v2.0/.well-known/openid-configuration"), None, [200; 6]),
        Row {
            method: Method::POST,
            path: format!("/{t1}/oauth2/v2.0/token"),
            body: None,
            form: true,
            expected: [200; 6],
        },
        row(Method::GET, format!("/tenants?{RES}"), None, [200; 6]),
        row(Method::GET, format!("/subscriptions?{RES}"), None, [200; 6]),
        row(Method::GET, format!("{sub}?{RES}"), None, [403, 401, 401, 200, 403, 200]),
        row(
            Method::PUT,
            format!("/subscriptions/{made_sub}?{RES}"),
            Some(json!({"tenantId": t1})),
            [403, 403, 403, 403, 403, 201],
        ),
        // A Network Contributor of `other` lists the groups and resources it may read (ARM's
        // lists filter by role; the tests of console.rs check what each sees).
        row(Method::GET, format!("{sub}/resourcegroups?{RES}"), None, [403, 401, 401, 200, 200, 200]),
        row(Method::GET, format!("{sub}/resourcegroups/net?{RES}"), None, [403, 401, 401, 200, 403, 200]),
        row(Method::GET, format!("{sub}/locations?{RES}"), None, [403, 401, 401, 200, 403, 200]),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Network/locations/westeurope/usages"),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(Method::GET, format!("{sub}/resources?{RES}"), None, [403, 401, 401, 200, 200, 200]),
        row(Method::GET, format!("{sub}/resourcegroups/net/resources?{RES}"), None, [403, 401, 401, 200, 403, 200]),
        row(Method::HEAD, format!("{sub}/resourcegroups/net?{RES}"), None, [403, 401, 401, 204, 403, 204]),
        row(
            Method::PUT,
            format!("{sub}/resourcegroups/made?{RES}"),
            Some(json!({"location": "westeurope"})),
            [403, 401, 401, 403, 403, 201],
        ),
        row(
            Method::PATCH,
            format!("{sub}/resourcegroups/net?{RES}"),
            Some(json!({"tags": {"a": "b"}})),
            [403, 401, 401, 403, 403, 200],
        ),
        row(Method::DELETE, format!("{sub}/resourcegroups/made?{RES}"), None, [403, 401, 401, 403, 403, 202]),
        row(Method::GET, operation, None, [200, 401, 401, 200, 200, 200]),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Network/virtualNetworks"),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Consumption/usageDetails?api-version=2023-05-01"),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::GET,
            format!("{}/providers/Microsoft.Insights/metrics?api-version=2018-01-01", v1["id"].as_str().expect("id")),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::GET,
            format!(
                "{}/providers/Microsoft.Insights/metricDefinitions?api-version=2018-01-01",
                v1["id"].as_str().expect("id")
            ),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(Method::GET, api.net("other", "virtualNetworks"), None, [403, 401, 401, 200, 200, 200]),
        row(Method::GET, api.net("net", "virtualNetworks/v1"), None, [403, 401, 401, 200, 403, 200]),
        row(Method::HEAD, api.net("net", "virtualNetworks/v1"), None, [403, 401, 401, 204, 403, 204]),
        row(
            Method::GET,
            format!("{}/CheckIPAddressAvailability?ipAddress=10.1.0.9", api.net("net", "virtualNetworks/v1")),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::PUT,
            api.net("other", "virtualNetworks/w"),
            Some(json!({"location": "westeurope", "properties":
            {"addressSpace": {"addressPrefixes": ["10.3.0.0/16"]}}})),
            [403, 401, 401, 403, 201, 200],
        ),
        row(
            Method::PATCH,
            api.net("other", "virtualNetworks/v2"),
            Some(json!({"tags": {"k": "v"}})),
            [403, 401, 401, 403, 200, 200],
        ),
        row(Method::DELETE, api.net("other", "virtualNetworks/w"), None, [403, 401, 401, 403, 202, 204]),
        row(
            Method::GET,
            format!("{}/subnets/default", api.net("net", "virtualNetworks/v1")),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::PUT,
            format!("{}/subnets/s2", api.net("other", "virtualNetworks/v2")),
            Some(json!({"properties": {"addressPrefix": "10.2.9.0/24"}})),
            [403, 401, 401, 403, 201, 200],
        ),
        // A4: the contributor of `other` may write the link but holds no peer/action on v1.
        row(
            Method::PUT,
            format!("{}/virtualNetworkPeerings/v2-to-v1", api.net("other", "virtualNetworks/v2")),
            Some(json!({"properties": {"remoteVirtualNetwork": {"id": api.net("net", "virtualNetworks/v1")}}})),
            [403, 401, 401, 403, 403, 201],
        ),
        row(
            Method::DELETE,
            format!("{}/subnets/s2", api.net("other", "virtualNetworks/v2")),
            None,
            [403, 401, 401, 403, 202, 204],
        ),
        row(
            Method::GET,
            format!("{}/subnets", api.net("net", "virtualNetworks/v1")),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(Method::POST, format!("{nic}/effectiveRouteTable"), Some(json!({})), [403, 401, 401, 202, 403, 202]),
        row(Method::GET, "/tessera/feed/local?timeout=0".into(), None, [403, 403, 403, 403, 403, 200]),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{reader_assignment}?{AUTH}"),
            None,
            [403, 401, 401, 200, 403, 200],
        ),
        row(
            Method::PUT,
            format!("{sub}/resourceGroups/other/providers/Microsoft.Authorization/roleAssignments/{}?{AUTH}", guid()),
            Some(
                json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
                                       "principalId": throwaway}}),
            ),
            [403, 401, 401, 403, 403, 201],
        ),
        row(
            Method::DELETE,
            format!("{sub}/providers/Microsoft.Authorization/roleAssignments/{reader_assignment}?{AUTH}"),
            None,
            [403, 401, 401, 403, 403, 200],
        ),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleAssignments?{AUTH}"),
            None,
            [403, 401, 401, 403, 403, 200],
        ),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{READER}?{AUTH}"),
            None,
            [403, 401, 401, 403, 403, 200],
        ),
        row(
            Method::PUT,
            format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{custom}?{AUTH}"),
            Some(
                json!({"properties": {"roleName": "Peering Operator", "permissions": [{"actions": ["Microsoft.Network/virtualNetworks/peer/action"]}]}}),
            ),
            [403, 401, 401, 403, 403, 201],
        ),
        row(
            Method::DELETE,
            format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{custom}?{AUTH}"),
            None,
            [403, 401, 401, 403, 403, 200],
        ),
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/roleDefinitions?{AUTH}"),
            None,
            [403, 401, 401, 403, 403, 200],
        ),
        row(Method::GET, format!("/tessera/principals/{throwaway}"), None, [403, 403, 403, 403, 403, 200]),
        row(
            Method::PUT,
            "/tessera/hosts/h9".into(),
            Some(json!({"underlay": "10.99.0.9"})),
            [403, 403, 403, 403, 403, 200],
        ),
        row(
            Method::POST,
            "/tessera/hosts/h9".into(),
            Some(
                json!({"gateway": format!("{sub}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworkGateways/none"),
                        "instance": {"host": "h9"}}),
            ),
            [403, 403, 403, 403, 403, 404],
        ),
        row(Method::GET, "/tessera/hosts/h9/probes?timeout=0".into(), None, [403, 403, 403, 403, 403, 200]),
        // Which server leads: for administrators of the whole server (a subscription's Reader
        // has no right at `/`).
        row(Method::GET, "/tessera/cluster".into(), None, [403, 403, 403, 403, 403, 200]),
        // The console's: a caller's own permissions (within its tenant), the page (public), the
        // change poll and the reachability matrix (each answers only about what the caller may
        // read, so every signed-in caller gets 200).
        row(
            Method::GET,
            format!("{sub}/providers/Microsoft.Authorization/permissions?{AUTH}"),
            None,
            [200, 401, 401, 200, 200, 200],
        ),
        row(Method::GET, "/console/".into(), None, [200; 6]),
        row(Method::GET, "/tessera/changes".into(), None, [200; 6]),
        row(Method::GET, "/tessera/reachability".into(), None, [200; 6]),
        row(
            Method::POST,
            "/tessera/hosts/h9/probes".into(),
            Some(json!({"results": [{"id": "x", "probesSent": 1, "probesFailed": 0, "latenciesMs": [1.0]}]})),
            [403, 403, 403, 403, 403, 200],
        ),
        row(
            Method::POST,
            "/tessera/hosts/h9/usage".into(),
            Some(json!({"run": "r", "sequence": 1, "pairs": []})),
            [403, 403, 403, 403, 403, 200],
        ),
        row(
            Method::PUT,
            format!("/tessera/principals/{}", guid()),
            Some(json!({"tenantId": t1})),
            [403, 403, 403, 403, 403, 201],
        ),
    ];

    // Rows run in order: once the reader's assignment is deleted, the reader's later rows expect
    // 403. Coverage first, so that a missing family fails even when a status is wrong.
    let covered: Vec<String> =
        rows.iter().filter_map(|r| tessera_api::operation_family(r.method.as_str(), &r.path)).collect();
    let missing: Vec<&&str> =
        tessera_api::OPERATION_FAMILIES.iter().filter(|f| !covered.iter().any(|c| c == **f)).collect();
    assert!(missing.is_empty(), "operation families without a row in the matrix: {missing:?}");

    let callers: [(&str, Vec<&str>); 6] = [
        (tokens[0].as_str(), vec![]),
        (foreign_home.as_str(), vec![]),
        (foreign_home.as_str(), vec![foreign_here.as_str()]),
        (tokens[1].as_str(), vec![]),
        (tokens[2].as_str(), vec![]),
        (api.token.as_str(), vec![]),
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let mut got = [0u16; 6];
        for (i, (token, aux)) in callers.iter().enumerate() {
            got[i] = if r.form {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", api.creds.client_id.as_str()),
                    ("client_secret", api.creds.client_secret.as_str()),
                    ("scope", "https://management.azure.com/.default"),
                ];
                api.client.post(api.url(&r.path)).form(&form).send().await.expect("token").status().as_u16()
            } else {
                api.call_as(token, aux, r.method.clone(), &r.path, r.body.clone()).await.0
            };
        }
        if got != r.expected {
            failures.push(format!("{} {}: got {got:?}, expected {:?}", r.method, r.path, r.expected));
        }
    }
    assert!(failures.is_empty(), "callers {CALLERS:?}:\n{}", failures.join("\n"));
}
