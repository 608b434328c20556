//! What Azure clients that nobody here wrote need from the sign-in (issue 15, point 4):
//! msal-node and Ansible ask for a token scoped to the server's own endpoint, and msal-node
//! compares the openid-configuration's issuer with the authority it was given.

use reqwest::Method;
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

/// Issue 15, point 2: what a client sends that Tessera does not model is returned as sent, with
/// Azure's defaults where the client left them out, through a restart; a reference to a
/// resource Tessera does not serve is refused and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_tessera_does_not_model_are_kept_as_sent_through_a_restart() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    let vnet = api.net("rg", "virtualNetworks/kept");
    let body = json!({"location": "westeurope", "properties": {
        "addressSpace": {"addressPrefixes": ["10.60.0.0/16"]},
        "enableDdosProtection": false,
        "encryption": {"enabled": true, "enforcement": "AllowUnencrypted"},
        "flowTimeoutInMinutes": 10,
        "subnets": [
            {"name": "plain", "properties": {"addressPrefix": "10.60.0.0/24"}},
            {"name": "tuned", "properties": {"addressPrefix": "10.60.1.0/24",
                "privateEndpointNetworkPolicies": "Enabled",
                "serviceEndpoints": [{"service": "Microsoft.Storage", "locations": ["westeurope"]}]}},
        ],
    }});
    let (status, v) = api.call(Method::PUT, &format!("{vnet}?api-version=2024-05-01"), Some(body)).await;
    assert!(status == 200 || status == 201, "{v}");
    let nic = api.net("rg", "networkInterfaces/kept-nic");
    let subnet_id = format!("{vnet}/subnets/plain");
    let nic_body = json!({"location": "westeurope", "properties": {"ipConfigurations": [
        {"name": "ip", "properties": {"subnet": {"id": subnet_id}, "privateIPAllocationMethod": "Dynamic"}}]}});
    let (status, v) = api.call(Method::PUT, &format!("{nic}?api-version=2024-05-01"), Some(nic_body)).await;
    assert!(status == 200 || status == 201, "{v}");

    let check = |v: &Value, n: &Value| {
        let p = &v["properties"];
        assert_eq!(p["encryption"], json!({"enabled": true, "enforcement": "AllowUnencrypted"}), "{v}");
        assert_eq!(p["flowTimeoutInMinutes"], 10);
        assert_eq!(p["enableDdosProtection"], false);
        let subnet = |name: &str| {
            p["subnets"].as_array().and_then(|a| a.iter().find(|s| s["name"] == name)).cloned().expect("subnet")
        };
        let (plain, tuned) = (subnet("plain"), subnet("tuned"));
        // Azure's defaults where the client sent nothing; the client's values where it did.
        assert_eq!(plain["properties"]["privateEndpointNetworkPolicies"], "Disabled");
        assert_eq!(plain["properties"]["privateLinkServiceNetworkPolicies"], "Enabled");
        assert_eq!(plain["properties"]["delegations"], json!([]));
        assert_eq!(tuned["properties"]["privateEndpointNetworkPolicies"], "Enabled");
        assert_eq!(
            tuned["properties"]["serviceEndpoints"],
            json!([{"service": "Microsoft.Storage", "locations": ["westeurope"]}])
        );
        // A NIC always has dnsSettings (clients read it unguarded).
        assert_eq!(n["properties"]["dnsSettings"], json!({"dnsServers": [], "appliedDnsServers": []}), "{n}");
        assert_eq!(n["properties"]["enableAcceleratedNetworking"], false);
    };
    let get = |path: String| {
        let api = &api;
        async move { api.call(Method::GET, &format!("{path}?api-version=2024-05-01"), None).await.1 }
    };
    check(&get(vnet.clone()).await, &get(nic.clone()).await);

    // A reference to a resource Tessera does not serve: refused, nothing written.
    let mut with_nat = get(vnet.clone()).await;
    with_nat["properties"]["subnets"][0]["properties"]["natGateway"] =
        json!({"id": format!("{}/resourceGroups/rg/providers/Microsoft.Network/natGateways/n", api.sub())});
    let (status, err) = api.call(Method::PUT, &format!("{vnet}?api-version=2024-05-01"), Some(with_nat)).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("UnsupportedReference")), "{err}");

    let api = api.restart().await;
    let v = api.call(Method::GET, &format!("{vnet}?api-version=2024-05-01"), None).await.1;
    let n = api.call(Method::GET, &format!("{nic}?api-version=2024-05-01"), None).await.1;
    check(&v, &n);
    assert!(v["properties"]["subnets"][0]["properties"].get("natGateway").is_none());
}

/// Issue 15, point 3: what Ansible and `az resource list` call — the resources of a group and
/// of a subscription in the generic shape, and the subscription's locations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_of_a_group_and_a_subscription_and_the_locations_are_listed() {
    let api = Api::start().await;
    api.group("one").await;
    api.group("two").await;
    api.group("empty").await;
    let a = api.vnet("one", "a", "10.70.0.0/16").await;
    let b = api.vnet("two", "b", "10.71.0.0/16").await;
    let ids = |v: &[Value]| {
        let mut out: Vec<String> = v.iter().filter_map(|r| r["id"].as_str().map(str::to_string)).collect();
        out.sort();
        out
    };
    let sub = api.sub();
    let in_one = api.list_all(&api.token, &format!("{sub}/resourceGroups/one/resources?api-version=2021-04-01")).await;
    assert_eq!(ids(&in_one), vec![a["id"].as_str().expect("id").to_string()]);
    let item = &in_one[0];
    assert_eq!(item["type"], "Microsoft.Network/virtualNetworks");
    assert_eq!((item["name"].as_str(), item["location"].as_str()), (Some("a"), Some("westeurope")));
    assert!(item.get("properties").is_none(), "the generic shape: {item}");
    let everything = api.list_all(&api.token, &format!("{sub}/resources?api-version=2021-04-01")).await;
    for v in [&a, &b] {
        assert!(ids(&everything).contains(&v["id"].as_str().expect("id").to_string()));
    }
    let none = api.list_all(&api.token, &format!("{sub}/resourceGroups/empty/resources?api-version=2021-04-01")).await;
    assert!(none.is_empty(), "an empty group lists nothing (and is not a 404): {none:?}");
    let (status, err) =
        api.call(Method::GET, &format!("{sub}/resourceGroups/absent/resources?api-version=2021-04-01"), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("ResourceGroupNotFound")));

    // Resources_CheckExistence.
    let a_path = a["id"].as_str().expect("id").to_string();
    let head = |path: String| {
        let api = &api;
        async move { api.send(Method::HEAD, &format!("{path}?api-version=2024-05-01"), None).await.status().as_u16() }
    };
    assert_eq!(head(a_path.clone()).await, 204);
    assert_eq!(head(a_path.replace("virtualNetworks/a", "virtualNetworks/absent")).await, 404);

    let locations = api.list_all(&api.token, &format!("{sub}/locations?api-version=2022-12-01")).await;
    let west = locations.iter().find(|l| l["name"] == "westeurope").expect("westeurope");
    assert_eq!(west["displayName"], "West Europe");
    assert_eq!(west["id"], format!("{sub}/locations/westeurope"));
}

/// Issue 15, point 3: `az network vnet check-ip-address` and `az network vnet list-available-ips`
/// (CheckIPAddressAvailability), and `usages`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_is_checked_for_availability_and_subnet_usage_is_counted() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    let v = api.vnet("rg", "addr", "10.80.0.0/16").await;
    let vnet = v["id"].as_str().expect("id").to_string();
    let subnet = v["properties"]["subnets"][0]["id"].as_str().expect("a subnet").to_string();
    let prefix = v["properties"]["subnets"][0]["properties"]["addressPrefix"].as_str().expect("prefix").to_string();
    assert_eq!(prefix, "10.80.0.0/24", "the helper's subnet");
    let nic = api.net("rg", "networkInterfaces/holder");
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{nic}?api-version=2024-05-01"),
            Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {
                "subnet": {"id": subnet}, "privateIPAllocationMethod": "Static", "privateIPAddress": "10.80.0.4"}}]}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let check = |ip: &str| {
        let (api, vnet, ip) = (&api, vnet.clone(), ip.to_string());
        async move {
            api.call(
                Method::GET,
                &format!("{vnet}/CheckIPAddressAvailability?ipAddress={ip}&api-version=2024-05-01"),
                None,
            )
            .await
        }
    };
    let (status, taken) = check("10.80.0.4").await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["available"], false);
    assert_eq!(taken["isPlatformReserved"], false);
    assert_eq!(
        taken["availableIPAddresses"],
        json!(["10.80.0.5", "10.80.0.6", "10.80.0.7", "10.80.0.8", "10.80.0.9"]),
        "the free addresses after it"
    );
    let (_, reserved) = check("10.80.0.1").await;
    assert_eq!((reserved["available"].as_bool(), reserved["isPlatformReserved"].as_bool()), (Some(false), Some(true)));
    assert_eq!(reserved["availableIPAddresses"][0], "10.80.0.5", "skips the reserved and the used");
    let (_, free) = check("10.80.0.200").await;
    assert_eq!(free["available"], true);
    let (status, outside) = check("10.99.0.1").await;
    assert_eq!((status, outside["error"]["code"].as_str()), (400, Some("PrivateIPAddressNotInAnySubnet")));
    let (status, bad) = check("not-an-address").await;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("InvalidIPAddress")));

    let (status, usages) = api.call(Method::GET, &format!("{vnet}/usages?api-version=2024-05-01"), None).await;
    assert_eq!(status, 200, "{usages}");
    let u = &usages["value"][0];
    assert_eq!((u["currentValue"].as_u64(), u["limit"].as_u64()), (Some(1), Some(251)), "{u}");
    assert_eq!(u["id"], subnet);
}

/// Issue 15, point 1: a public IP address through the API — allocated from the server's pool,
/// attached to a NIC (its `ipConfiguration` says so), not deletable while attached, and kept
/// through a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_ip_address_is_allocated_attached_and_kept() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    let v = api.vnet("rg", "pub", "10.90.0.0/16").await;
    let subnet = v["properties"]["subnets"][0]["id"].as_str().expect("subnet").to_string();
    let pip = api.net("rg", "publicIPAddresses/web-ip");
    let q = "?api-version=2024-05-01";
    let (status, created) = api
        .call(Method::PUT, &format!("{pip}{q}"), Some(json!({"location": "westeurope", "sku": {"name": "Standard"}})))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["properties"]["publicIPAllocationMethod"], "Static");
    assert_eq!(created["properties"]["ipAddress"], "198.18.0.1");
    assert_eq!(created["sku"]["name"], "Standard");
    let nic = api.net("rg", "networkInterfaces/web-nic");
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{nic}{q}"),
            Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {
                "subnet": {"id": subnet}, "publicIPAddress": {"id": pip}}}]}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    assert_eq!(body["properties"]["ipConfigurations"][0]["properties"]["publicIPAddress"]["id"], json!(pip));
    let (_, got) = api.call(Method::GET, &format!("{pip}{q}"), None).await;
    assert_eq!(got["properties"]["ipConfiguration"]["id"], json!(format!("{nic}/ipConfigurations/ip")), "{got}");
    let (status, err) = api.call(Method::DELETE, &format!("{pip}{q}"), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("PublicIPAddressCannotBeDeleted")), "{err}");
    // A client's ipConfiguration (read-only) is ignored, not stored.
    let (status, _) = api
        .call(
            Method::PUT,
            &format!("{pip}{q}"),
            Some(json!({"location": "westeurope", "sku": {"name": "Standard"},
                "properties": {"ipConfiguration": {"id": format!("{nic}/ipConfigurations/other")}}})),
        )
        .await;
    assert_eq!(status, 200);
    let api = api.restart().await;
    let (_, got) = api.call(Method::GET, &format!("{pip}{q}"), None).await;
    assert_eq!(got["properties"]["ipAddress"], "198.18.0.1");
    assert_eq!(got["properties"]["ipConfiguration"]["id"], json!(format!("{nic}/ipConfigurations/ip")), "{got}");
    let (status, _) = api.call(Method::DELETE, &format!("{nic}{q}"), None).await;
    assert!((200..300).contains(&status));
    let (status, _) = api.call(Method::DELETE, &format!("{pip}{q}"), None).await;
    assert!((200..300).contains(&status), "deletable once detached");
}

/// Issue 15, point 2, for the other types: a load balancer's and a VM's unmodelled properties
/// are kept; a VM's administrator password (write-only in Azure) is neither returned nor kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_and_vm_properties_are_kept_but_never_a_password() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    let v = api.vnet("rg", "lbv", "10.91.0.0/16").await;
    let subnet = v["properties"]["subnets"][0]["id"].as_str().expect("subnet").to_string();
    let q = "?api-version=2024-05-01";
    let lb = api.net("rg", "loadBalancers/ilb");
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{lb}{q}"),
            Some(json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {
                "frontendIPConfigurations": [{"name": "fe", "properties": {"subnet": {"id": subnet},
                    "privateIPAddressVersion": "IPv4"}}],
                "backendAddressPools": [{"name": "pool"}],
                "probes": [{"name": "p", "properties": {"protocol": "Tcp", "port": 80, "intervalInSeconds": 5, "numberOfProbes": 2}}],
                "loadBalancingRules": [{"name": "r", "properties": {
                    "frontendIPConfiguration": {"id": format!("{lb}/frontendIPConfigurations/fe")},
                    "backendAddressPool": {"id": format!("{lb}/backendAddressPools/pool")},
                    "protocol": "Tcp", "frontendPort": 80, "backendPort": 80,
                    "enableFloatingIP": false, "idleTimeoutInMinutes": 4, "loadDistribution": "Default"}}]}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let (_, got) = api.call(Method::GET, &format!("{lb}{q}"), None).await;
    let p = &got["properties"];
    assert_eq!(p["probes"][0]["properties"]["intervalInSeconds"], 5, "{got}");
    assert_eq!(p["loadBalancingRules"][0]["properties"]["loadDistribution"], "Default");
    assert_eq!(p["frontendIPConfigurations"][0]["properties"]["privateIPAddressVersion"], "IPv4");

    let nic = api.net("rg", "networkInterfaces/vm-nic");
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{nic}{q}"),
            Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let vm = format!("{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", api.sub());
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{vm}?api-version=2024-07-01"),
            Some(json!({"location": "westeurope", "properties": {
                "hardwareProfile": {"vmSize": "Standard_B1s"},
                "osProfile": {"computerName": "vm1", "adminUsername": "azureuser", "AdminPassword": "S3cret!pass",
                    "customData": "Q3VzdG9tU2VjcmV0"},
                "userData": "VXNlclNlY3JldA==",
                "networkProfile": {"networkInterfaces": [{"id": nic}]}}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    assert!(!body.to_string().contains("S3cret"), "the password is not answered: {body}");
    let (_, got) = api.call(Method::GET, &format!("{vm}?api-version=2024-07-01"), None).await;
    assert_eq!(got["properties"]["hardwareProfile"]["vmSize"], "Standard_B1s", "{got}");
    assert_eq!(got["properties"]["osProfile"]["adminUsername"], "azureuser");
    assert!(!got.to_string().contains("S3cret"), "nor served: {got}");
    let store = std::fs::read(api.dir.path().join("store.redb")).expect("the store");
    assert!(store.windows(9).any(|w| w == b"azureuser"), "the VM's document is in the store as text");
    for secret in [&b"S3cret!pass"[..], b"Q3VzdG9tU2VjcmV0", b"VXNlclNlY3JldA=="] {
        assert!(!store.windows(secret.len()).any(|w| w == secret), "no secret is stored");
    }
    assert!(!got.to_string().contains("VXNlclNlY3JldA") && !got.to_string().contains("Q3VzdG9t"), "{got}");
}

/// Issue 15, point 3: application security groups, and a rule that takes one as its source,
/// in flow decisions (ipFlowVerify): a member is allowed, a non-member of the same subnet is
/// not; a NIC that joins the group later is allowed from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_from_an_application_security_group_admits_its_members_only() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    let q = "?api-version=2024-05-01";
    let web = api.net("rg", "applicationSecurityGroups/web");
    let (status, created) = api.call(Method::PUT, &format!("{web}{q}"), Some(json!({"location": "westeurope"}))).await;
    assert_eq!(status, 201, "{created}");
    let nsg = api.net("rg", "networkSecurityGroups/server-nsg");
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{nsg}{q}"),
            Some(json!({"location": "westeurope", "properties": {"securityRules": [
                {"name": "from-web", "properties": {"priority": 100, "direction": "Inbound", "access": "Allow",
                    "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443",
                    "sourceApplicationSecurityGroups": [{"id": web}], "destinationAddressPrefix": "*"}},
                {"name": "deny-vnet", "properties": {"priority": 200, "direction": "Inbound", "access": "Deny",
                    "protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*",
                    "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "*"}}]}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["properties"]["securityRules"][0]["properties"]["sourceApplicationSecurityGroups"][0]["id"],
        json!(web)
    );
    let v = api.vnet("rg", "asgv", "10.92.0.0/16").await;
    let subnet = v["properties"]["subnets"][0]["id"].as_str().expect("subnet").to_string();
    let nic = |name: &str, ip: &str, extra: serde_json::Value| {
        let (api, subnet, name, ip) = (&api, subnet.clone(), name.to_string(), ip.to_string());
        async move {
            let mut config =
                json!({"subnet": {"id": subnet}, "privateIPAllocationMethod": "Static", "privateIPAddress": ip});
            if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
                c.extend(e.clone());
            }
            let path = api.net("rg", &format!("networkInterfaces/{name}"));
            let (status, body) = api
                .call(
                    Method::PUT,
                    &format!("{path}?api-version=2024-05-01"),
                    Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": config}]}})),
                )
                .await;
            assert!(status == 200 || status == 201, "{body}");
            path
        }
    };
    let server_nic = nic("server-nic", "10.92.0.10", json!({})).await;
    let (status, _) = api
        .call(
            Method::PUT,
            &format!("{server_nic}{q}"),
            Some(json!({"location": "westeurope", "properties": {"networkSecurityGroup": {"id": nsg},
                "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet},
                    "privateIPAllocationMethod": "Static", "privateIPAddress": "10.92.0.10"}}]}})),
        )
        .await;
    assert_eq!(status, 200);
    nic("member-nic", "10.92.0.20", json!({"applicationSecurityGroups": [{"id": web}]})).await;
    nic("outsider-nic", "10.92.0.30", json!({})).await;
    let vm = format!("{}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/server", api.sub());
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("{vm}?api-version=2024-07-01"),
            Some(json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": server_nic}]}}})),
        )
        .await;
    assert!(status == 200 || status == 201, "{body}");
    let watcher = api.net("rg", "networkWatchers/nw");
    let (status, _) = api.call(Method::PUT, &format!("{watcher}{q}"), Some(json!({"location": "westeurope"}))).await;
    assert!(status == 200 || status == 201);
    let verify = |remote: &str| {
        let (api, watcher, vm, remote) = (&api, watcher.clone(), vm.clone(), remote.to_string());
        async move {
            let body = json!({"targetResourceId": vm, "direction": "Inbound", "protocol": "TCP", "localPort": "443",
                "remotePort": "50000", "localIPAddress": "10.92.0.10", "remoteIPAddress": remote});
            let r = api
                .send(
                    Method::POST,
                    &format!("{watcher}/ipFlowVerify?api-version=2024-05-01"),
                    Some(body.to_string().as_bytes()),
                )
                .await;
            assert_eq!(r.status().as_u16(), 202);
            let url = r.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
            let v: Value =
                api.client.get(&url).bearer_auth(&api.token).send().await.expect("result").json().await.expect("json");
            (
                v["access"].as_str().unwrap_or_default().to_string(),
                v["ruleName"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    assert_eq!(verify("10.92.0.20").await, ("Allow".into(), "securityRules/from-web".into()), "a member");
    assert_eq!(verify("10.92.0.30").await, ("Deny".into(), "securityRules/deny-vnet".into()), "not a member");
    // The outsider joins the group: allowed from then on.
    nic("outsider-nic", "10.92.0.30", json!({"applicationSecurityGroups": [{"id": web}]})).await;
    assert_eq!(verify("10.92.0.30").await.0, "Allow");
    let (status, err) = api.call(Method::DELETE, &format!("{web}{q}"), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("ApplicationSecurityGroupInUse")), "{err}");

    // A restart right after: the group, its members and the rule decide as before.
    let api = api.restart().await;
    let r = api
        .send(
            Method::POST,
            &format!("{watcher}/ipFlowVerify?api-version=2024-05-01"),
            Some(
                json!({"targetResourceId": vm, "direction": "Inbound", "protocol": "TCP", "localPort": "443",
                    "remotePort": "50000", "localIPAddress": "10.92.0.10", "remoteIPAddress": "10.92.0.30"})
                .to_string()
                .as_bytes(),
            ),
        )
        .await;
    let url = r.headers().get("location").and_then(|v| v.to_str().ok()).expect("Location").to_string();
    let v: Value =
        api.client.get(&url).bearer_auth(&api.token).send().await.expect("result").json().await.expect("json");
    assert_eq!((v["access"].as_str(), v["ruleName"].as_str()), (Some("Allow"), Some("securityRules/from-web")), "{v}");
    let (status, _) = api.call(Method::GET, &format!("{web}{q}"), None).await;
    assert_eq!(status, 200);
}

/// Issue 15, point 3: what a region offers (endpoint services, delegations) and the
/// subscription's usages there, counted from what exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regions_endpoint_services_delegations_and_usages_are_listed() {
    let api = Api::start().await;
    api.group("rg").await;
    api.vnet("rg", "u1", "10.93.0.0/16").await;
    api.vnet("rg", "u2", "10.94.0.0/16").await;
    let base = format!("{}/providers/Microsoft.Network/locations", api.sub());
    let list = |what: &str, loc: &str| format!("{base}/{loc}/{what}?api-version=2024-05-01");
    let services = api.list_all(&api.token, &list("virtualNetworkAvailableEndpointServices", "westeurope")).await;
    assert!(services.iter().any(|s| s["name"] == "Microsoft.Storage"), "{services:?}");
    let delegations = api.list_all(&api.token, &list("availableDelegations", "westeurope")).await;
    let web = delegations.iter().find(|d| d["serviceName"] == "Microsoft.Web/serverFarms").expect("a delegation");
    assert_eq!(web["type"], "Microsoft.Network/availableDelegations");
    let usages = api.list_all(&api.token, &list("usages", "westeurope")).await;
    let vnets = usages.iter().find(|u| u["name"]["value"] == "VirtualNetworks").expect("VNet usage");
    assert_eq!((vnets["currentValue"].as_u64(), vnets["limit"].as_u64()), (Some(2), Some(1000)), "{vnets}");
    let elsewhere = api.list_all(&api.token, &list("usages", "eastus")).await;
    let there = elsewhere.iter().find(|u| u["name"]["value"] == "VirtualNetworks").expect("VNet usage");
    assert_eq!(there["currentValue"], 0, "counted per region");
    let (status, err) = api.call(reqwest::Method::GET, &list("usages", "atlantis"), None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("LocationNotAvailableForResourceType")), "{err}");
}

/// Issue 15, point 3: Network Watcher's `topology` of a resource group — its resources and
/// how they relate, answered at once; another group's resources are not in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_of_a_group_names_its_resources_and_their_associations() {
    use serde_json::json;
    let api = Api::start().await;
    api.group("rg").await;
    api.group("other").await;
    let v = api.vnet("rg", "topo", "10.95.0.0/16").await;
    api.vnet("other", "elsewhere", "10.96.0.0/16").await;
    let subnet = v["properties"]["subnets"][0]["id"].as_str().expect("subnet").to_string();
    let nic = api.net("rg", "networkInterfaces/topo-nic");
    let (status, _) = api
        .call(
            Method::PUT,
            &format!("{nic}?api-version=2024-05-01"),
            Some(json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}})),
        )
        .await;
    assert_eq!(status, 201);
    let watcher = api.net("rg", "networkWatchers/nw");
    api.call(Method::PUT, &format!("{watcher}?api-version=2024-05-01"), Some(json!({"location": "westeurope"}))).await;
    let (status, t) = api
        .call(
            Method::POST,
            &format!("{watcher}/topology?api-version=2024-05-01"),
            Some(json!({"targetResourceGroupName": "rg"})),
        )
        .await;
    assert_eq!(status, 200, "{t}");
    let resources = t["resources"].as_array().expect("resources");
    let node = |id: &str| {
        resources
            .iter()
            .find(|r| r["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
            .unwrap_or_else(|| panic!("{id} in {t}"))
    };
    let vnet = node(v["id"].as_str().expect("id"));
    assert_eq!(vnet["associations"][0]["associationType"], "Contains");
    assert!(vnet["associations"][0]["resourceId"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&subnet)));
    let n = node(&nic);
    assert!(n["associations"].as_array().expect("links").iter().any(|a| a["associationType"] == "Associated"
        && a["resourceId"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(&subnet))));
    assert!(!t.to_string().contains("elsewhere"), "another group's resources are not drawn");
    let (status, err) = api
        .call(
            Method::POST,
            &format!("{watcher}/topology?api-version=2024-05-01"),
            Some(json!({"targetResourceGroupName": "absent"})),
        )
        .await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("ResourceGroupNotFound")));
}
