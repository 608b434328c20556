//! What Azure clients that nobody here wrote need from the sign-in (issue 15, point 4):
//! msal-node and Ansible ask for a token scoped to the server's own endpoint, and msal-node
//! compares the openid-configuration's issuer with the authority it was given.

use serde_json::Value;

use crate::common::Api;

async fn token_for(api: &Api, scope: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", api.creds.client_id.as_str()),
        ("client_secret", api.creds.client_secret.as_str()),
        ("scope", scope),
    ];
    let r = api
        .client
        .post(api.url(&format!("/{}/oauth2/v2.0/token", api.creds.tenant_id)))
        .form(&form)
        .send()
        .await
        .expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.expect("token body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_scoped_to_the_servers_own_endpoint_works_and_others_are_refused() {
    let api = Api::start().await;
    let endpoint = api.creds.endpoint.trim_end_matches('/').to_string();
    for scope in [
        format!("{endpoint}/.default"),
        format!("{endpoint}//.default"),
        "https://management.azure.com/.default".into(),
    ] {
        let (status, body) = token_for(&api, &scope).await;
        assert_eq!(status, 200, "{scope}: {body}");
        let token = body["access_token"].as_str().expect("a token");
        let r = api
            .client
            .get(api.url(&format!("{}/resourcegroups?api-version=2021-04-01", api.sub())))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 200, "{scope}: the token works");
    }
    for scope in
        ["https://graph.microsoft.com/.default", "https://evil.example:1/.default", "https://vault.azure.net/.default"]
    {
        let (status, body) = token_for(&api, scope).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{scope}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openid_issuer_is_on_the_servers_own_host() {
    let api = Api::start().await;
    let t = &api.creds.tenant_id;
    let v: Value = api
        .client
        .get(api.url(&format!("/{t}/v2.0/.well-known/openid-configuration")))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let endpoint = api.creds.endpoint.trim_end_matches('/');
    assert_eq!(v["issuer"], format!("{endpoint}/{t}/v2.0"));
    assert_eq!(v["token_endpoint"], format!("{endpoint}/{t}/oauth2/v2.0/token"));
}
