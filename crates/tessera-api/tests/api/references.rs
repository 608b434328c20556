//! The authorization matrix's column for references: for every writable field that references
//! another resource (`tessera_api::linked::LINK_RULES`), a write by a principal without the
//! right on the referenced resource — a Network Contributor of another resource group of the
//! same tenant, another tenant's principal without and with an auxiliary token of this tenant —
//! gets 403 `LinkedAuthorizationFailed` and changes nothing. Then the same writes succeed once
//! the right is granted (so the refusals were the reference check). The coverage test fails
//! when a rule has no row, or a document holds a reference in a field no rule or back-reference
//! names. Diagnostics answer a foreign resource the same whether it exists or not.

use reqwest::Method;
use serde_json::{Value, json};
use tessera_api::linked::{BACK_REFERENCES, LINK_RULES};

use crate::common::{AUTH, Api, CONTRIBUTOR, RES, guid};

async fn ok(api: &Api, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = api.call_as(token, &[], method.clone(), path, Some(body)).await;
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

/// One write that references a resource of the owner's group: the rule it exercises, the
/// resource written (relative to the attacker's `…/providers/`), and its body.
struct Row {
    owner: &'static str,
    path: &'static str,
    target: String,
    body: Value,
}

/// The owner's estate in resource group `owned`; returns its ids by short name.
async fn estate(api: &Api) -> std::collections::BTreeMap<&'static str, String> {
    let t = &api.token;
    api.group("owned").await;
    let va = api.net("owned", "virtualNetworks/va");
    ok(
        api,
        t,
        Method::PUT,
        &va,
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}},
                        {"name": "GatewaySubnet", "properties": {"addressPrefix": "10.1.255.0/27"}}]}}),
    )
    .await;
    // A second VNet whose GatewaySubnet has no gateway yet.
    let vb = api.net("owned", "virtualNetworks/vb");
    ok(
        api,
        t,
        Method::PUT,
        &vb,
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]},
            "subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.2.255.0/27"}}]}}),
    )
    .await;
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("va", va.clone());
    ids.insert("free-gateway-subnet", format!("{vb}/subnets/GatewaySubnet"));
    ids.insert("subnet", format!("{va}/subnets/default"));
    for (name, kind) in [("nsg", "networkSecurityGroups/nsg"), ("rt", "routeTables/rt")] {
        let id = api.net("owned", kind);
        ok(api, t, Method::PUT, &id, json!({"location": "westeurope"})).await;
        ids.insert(name, id);
    }
    let lb = api.net("owned", "loadBalancers/lb");
    ok(
        api,
        t,
        Method::PUT,
        &lb,
        json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {
            "frontendIPConfigurations": [{"name": "fe", "properties": {"subnet": {"id": ids["subnet"]}}}],
            "backendAddressPools": [{"name": "pool", "properties": {}}]}}),
    )
    .await;
    ids.insert("pool", format!("{lb}/backendAddressPools/pool"));
    let nic = api.net("owned", "networkInterfaces/nic-a");
    ok(
        api,
        t,
        Method::PUT,
        &nic,
        json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": ids["subnet"]}}}]}}),
    )
    .await;
    ids.insert("nic", nic);
    let gw = api.net("owned", "virtualNetworkGateways/gw");
    ok(
        api,
        t,
        Method::PUT,
        &gw,
        json!({"location": "westeurope", "properties": {"gatewayType": "Vpn", "vpnType": "RouteBased",
            "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{va}/subnets/GatewaySubnet")}}}]}}),
    )
    .await;
    ids.insert("gw", gw);
    let asg = api.net("owned", "applicationSecurityGroups/asg");
    ok(api, t, Method::PUT, &asg, json!({"location": "westeurope"})).await;
    ids.insert("asg", asg);
    for (name, sku) in [("pip-nic", "Basic"), ("pip-gw", "Standard")] {
        let id = api.net("owned", &format!("publicIPAddresses/{name}"));
        ok(api, t, Method::PUT, &id, json!({"location": "westeurope", "sku": {"name": sku}})).await;
        ids.insert(name, id);
    }
    let lng = api.net("owned", "localNetworkGateways/site");
    ok(
        api,
        t,
        Method::PUT,
        &lng,
        json!({"location": "westeurope", "properties": {"gatewayIpAddress": "203.0.113.10",
            "localNetworkAddressSpace": {"addressPrefixes": ["192.168.0.0/16"]}}}),
    )
    .await;
    ids.insert("lng", lng);
    ids
}

/// The writes, each into `base` (an attacker's `…/resourceGroups/{rg}/providers`), whose own
/// VNet `vm` (10.5.0.0/16, subnet `default`) and gateway `own-gw` exist there.
fn rows(ids: &std::collections::BTreeMap<&'static str, String>, base: &str, n: usize) -> Vec<Row> {
    let own_subnet = format!("{base}/Microsoft.Network/virtualNetworks/vm/subnets/default");
    let own_gw = format!("{base}/Microsoft.Network/virtualNetworkGateways/own-gw");
    let net = |rest: &str| format!("{base}/Microsoft.Network/{rest}");
    let nic_with = |ipconfig: Value, extra: Value| {
        let mut props = json!({"ipConfigurations": [{"name": "ip", "properties": ipconfig}]});
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"location": "westeurope", "properties": props})
    };
    let vnet_with = |subnet_props: Value| {
        let mut props = json!({"addressPrefix": format!("10.{}.0.0/24", 60 + n)});
        if let (Some(p), Some(e)) = (props.as_object_mut(), subnet_props.as_object()) {
            p.extend(e.clone());
        }
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [format!("10.{}.0.0/16", 60 + n)]},
            "subnets": [{"name": "s", "properties": props}]}})
    };
    vec![
        Row {
            owner: "Microsoft.Network/virtualNetworks",
            path: "properties.subnets[].properties.networkSecurityGroup",
            target: net("virtualNetworks/v-nsg"),
            body: vnet_with(json!({"networkSecurityGroup": {"id": ids["nsg"]}})),
        },
        Row {
            owner: "Microsoft.Network/virtualNetworks",
            path: "properties.subnets[].properties.routeTable",
            target: net("virtualNetworks/v-rt"),
            body: {
                let mut b = vnet_with(json!({"routeTable": {"id": ids["rt"]}}));
                b["properties"]["addressSpace"]["addressPrefixes"][0] = json!(format!("10.{}.0.0/16", 70 + n));
                b["properties"]["subnets"][0]["properties"]["addressPrefix"] = json!(format!("10.{}.0.0/24", 70 + n));
                b
            },
        },
        Row {
            owner: "Microsoft.Network/virtualNetworks/subnets",
            path: "properties.networkSecurityGroup",
            target: net("virtualNetworks/vm/subnets/s-nsg"),
            body: json!({"properties": {"addressPrefix": "10.5.1.0/24", "networkSecurityGroup": {"id": ids["nsg"]}}}),
        },
        Row {
            owner: "Microsoft.Network/virtualNetworks/subnets",
            path: "properties.routeTable",
            target: net("virtualNetworks/vm/subnets/s-rt"),
            body: json!({"properties": {"addressPrefix": "10.5.2.0/24", "routeTable": {"id": ids["rt"]}}}),
        },
        Row {
            owner: "Microsoft.Network/virtualNetworks/virtualNetworkPeerings",
            path: "properties.remoteVirtualNetwork",
            target: net("virtualNetworks/vm/virtualNetworkPeerings/to-va"),
            body: json!({"properties": {"remoteVirtualNetwork": {"id": ids["va"]}}}),
        },
        Row {
            owner: "Microsoft.Network/networkInterfaces",
            path: "properties.networkSecurityGroup",
            target: net("networkInterfaces/nic-nsg"),
            body: nic_with(json!({"subnet": {"id": own_subnet}}), json!({"networkSecurityGroup": {"id": ids["nsg"]}})),
        },
        Row {
            owner: "Microsoft.Network/networkInterfaces",
            path: "properties.ipConfigurations[].properties.subnet",
            target: net("networkInterfaces/nic-subnet"),
            body: nic_with(json!({"subnet": {"id": ids["subnet"]}}), json!({})),
        },
        Row {
            owner: "Microsoft.Network/networkInterfaces",
            path: "properties.ipConfigurations[].properties.loadBalancerBackendAddressPools[]",
            target: net("networkInterfaces/nic-pool"),
            body: nic_with(
                json!({"subnet": {"id": own_subnet}, "loadBalancerBackendAddressPools": [{"id": ids["pool"]}]}),
                json!({}),
            ),
        },
        Row {
            owner: "Microsoft.Network/networkInterfaces",
            path: "properties.ipConfigurations[].properties.publicIPAddress",
            target: net("networkInterfaces/nic-pip"),
            body: nic_with(json!({"subnet": {"id": own_subnet}, "publicIPAddress": {"id": ids["pip-nic"]}}), json!({})),
        },
        Row {
            owner: "Microsoft.Network/virtualNetworkGateways",
            path: "properties.ipConfigurations[].properties.publicIPAddress",
            target: net("virtualNetworkGateways/gw-with-their-ip"),
            body: json!({"location": "westeurope", "properties": {"gatewayType": "Vpn", "vpnType": "RouteBased",
                "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
                "ipConfigurations": [{"name": "default", "properties": {
                    "subnet": {"id": net("virtualNetworks/vm-gw/subnets/GatewaySubnet")},
                    "publicIPAddress": {"id": ids["pip-gw"]}}}]}}),
        },
        Row {
            owner: "Microsoft.Network/networkInterfaces",
            path: "properties.ipConfigurations[].properties.applicationSecurityGroups[]",
            target: net("networkInterfaces/nic-asg"),
            body: nic_with(
                json!({"subnet": {"id": own_subnet}, "applicationSecurityGroups": [{"id": ids["asg"]}]}),
                json!({}),
            ),
        },
        Row {
            owner: "Microsoft.Network/networkSecurityGroups",
            path: "properties.securityRules[].properties.sourceApplicationSecurityGroups[]",
            target: net("networkSecurityGroups/nsg-asg-source"),
            body: json!({"location": "westeurope", "properties": {"securityRules": [asg_rule("sourceApplicationSecurityGroups", &ids["asg"])]}}),
        },
        Row {
            owner: "Microsoft.Network/networkSecurityGroups",
            path: "properties.securityRules[].properties.destinationApplicationSecurityGroups[]",
            target: net("networkSecurityGroups/nsg-asg-destination"),
            body: json!({"location": "westeurope", "properties": {"securityRules": [asg_rule("destinationApplicationSecurityGroups", &ids["asg"])]}}),
        },
        Row {
            owner: "Microsoft.Network/networkSecurityGroups/securityRules",
            path: "properties.sourceApplicationSecurityGroups[]",
            target: net("networkSecurityGroups/own-nsg/securityRules/from-their-asg"),
            body: json!({"properties": asg_rule("sourceApplicationSecurityGroups", &ids["asg"])["properties"]}),
        },
        Row {
            owner: "Microsoft.Network/networkSecurityGroups/securityRules",
            path: "properties.destinationApplicationSecurityGroups[]",
            target: net("networkSecurityGroups/own-nsg/securityRules/to-their-asg"),
            body: json!({"properties": asg_rule("destinationApplicationSecurityGroups", &ids["asg"])["properties"]}),
        },
        Row {
            owner: "Microsoft.Compute/virtualMachines",
            path: "properties.networkProfile.networkInterfaces[]",
            target: format!("{base}/Microsoft.Compute/virtualMachines/vm-takes-nic"),
            body: json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": ids["nic"]}]}}}),
        },
        Row {
            owner: "Microsoft.Network/virtualNetworkGateways",
            path: "properties.ipConfigurations[].properties.subnet",
            target: net("virtualNetworkGateways/gw-in-their-subnet"),
            body: json!({"location": "westeurope", "properties": {"gatewayType": "Vpn", "vpnType": "RouteBased",
                "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
                "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": ids["free-gateway-subnet"]}}}]}}),
        },
        Row {
            owner: "Microsoft.Network/loadBalancers",
            path: "properties.frontendIPConfigurations[].properties.subnet",
            target: net("loadBalancers/lb-in-their-subnet"),
            body: json!({"location": "westeurope", "sku": {"name": "Standard"}, "properties": {
                "frontendIPConfigurations": [{"name": "fe", "properties": {"subnet": {"id": ids["subnet"]}}}]}}),
        },
        Row {
            owner: "Microsoft.Network/connections",
            path: "properties.virtualNetworkGateway1",
            target: net("connections/c-gw1"),
            body: json!({"location": "westeurope", "properties": {"connectionType": "Vnet2Vnet",
                "virtualNetworkGateway1": {"id": ids["gw"]}, "virtualNetworkGateway2": {"id": own_gw}, "sharedKey": "k"}}),
        },
        Row {
            owner: "Microsoft.Network/connections",
            path: "properties.virtualNetworkGateway2",
            target: net("connections/c-gw2"),
            body: json!({"location": "westeurope", "properties": {"connectionType": "Vnet2Vnet",
                "virtualNetworkGateway1": {"id": own_gw}, "virtualNetworkGateway2": {"id": ids["gw"]}, "sharedKey": "k"}}),
        },
        Row {
            owner: "Microsoft.Network/connections",
            path: "properties.localNetworkGateway2",
            target: net("connections/c-lng"),
            body: json!({"location": "westeurope", "properties": {"connectionType": "IPsec",
                "virtualNetworkGateway1": {"id": own_gw}, "localNetworkGateway2": {"id": ids["lng"]}, "sharedKey": "k"}}),
        },
    ]
}

/// A security rule whose `side` (`sourceApplicationSecurityGroups` or the destination's) is
/// the group `asg`, the other side any address.
fn asg_rule(side: &str, asg: &str) -> Value {
    let source = side.starts_with("source");
    let mut props = json!({"priority": if source { 100 } else { 110 }, "direction": "Inbound", "access": "Allow",
        "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "443"});
    let other = if source { "destinationAddressPrefix" } else { "sourceAddressPrefix" };
    props[side] = json!([{"id": asg}]);
    props[other] = json!("*");
    json!({"name": "r", "properties": props})
}

/// The attacker's own VNet and gateway in its group (`base` as in [`rows`]).
async fn attacker_estate(api: &Api, token: &str, base: &str) {
    // An NSG of its own, for rules written one by one.
    ok(
        api,
        token,
        Method::PUT,
        &format!("{base}/Microsoft.Network/networkSecurityGroups/own-nsg"),
        json!({"location": "westeurope"}),
    )
    .await;
    // A VNet whose GatewaySubnet waits for a gateway (the public IP row's).
    ok(
        api,
        token,
        Method::PUT,
        &format!("{base}/Microsoft.Network/virtualNetworks/vm-gw"),
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.6.0.0/16"]},
            "subnets": [{"name": "GatewaySubnet", "properties": {"addressPrefix": "10.6.255.0/27"}}]}}),
    )
    .await;
    let vm = format!("{base}/Microsoft.Network/virtualNetworks/vm");
    ok(
        api,
        token,
        Method::PUT,
        &vm,
        json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": ["10.5.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.5.0.0/24"}},
                        {"name": "GatewaySubnet", "properties": {"addressPrefix": "10.5.255.0/27"}}]}}),
    )
    .await;
    ok(
        api,
        token,
        Method::PUT,
        &format!("{base}/Microsoft.Network/virtualNetworkGateways/own-gw"),
        json!({"location": "westeurope", "properties": {"gatewayType": "Vpn", "vpnType": "RouteBased",
            "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{vm}/subnets/GatewaySubnet")}}}]}}),
    )
    .await;
}

/// Every document of a resource group, as the admin reads it.
async fn documents(api: &Api, sub: &str, rg: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for kind in [
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/routeTables",
        "Microsoft.Network/networkInterfaces",
        "Microsoft.Compute/virtualMachines",
        "Microsoft.Network/virtualNetworkGateways",
        "Microsoft.Network/localNetworkGateways",
        "Microsoft.Network/connections",
        "Microsoft.Network/loadBalancers",
        "Microsoft.Network/publicIPAddresses",
        "Microsoft.Network/applicationSecurityGroups",
    ] {
        let path = format!("{sub}/resourceGroups/{rg}/providers/{kind}?api-version=2024-05-01");
        out.extend(api.list_all(&api.token, &path).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_needs_the_right_on_every_resource_it_references() {
    let api = Api::start().await;
    let (t1, sub) = (api.creds.tenant_id.clone(), api.sub());
    let ids = estate(&api).await;
    // The attackers: a Contributor of group `mine` (same tenant), and a principal of tenant 2,
    // Contributor of a group of its own subscription and a guest here without a role.
    api.group("mine").await;
    let (netc, netc_secret) = api.principal(&t1, &[]).await;
    api.assign(&api.token, &format!("{sub}/resourceGroups/mine"), CONTRIBUTOR, &netc).await;
    let netc_token = api.token_for(&netc, &netc_secret, &t1).await.expect("token");
    let (t2, s2, admin2) = api.second_tenant().await;
    let theirs = format!("/subscriptions/{s2}/resourceGroups/theirs");
    ok(&api, &admin2, Method::PUT, &format!("{theirs}?{RES}"), json!({"location": "westeurope"})).await;
    let (foreign, foreign_secret) = api.principal(&t2, &[&t1]).await;
    api.assign(&admin2, &theirs, CONTRIBUTOR, &foreign).await;
    let foreign_home = api.token_for(&foreign, &foreign_secret, &t2).await.expect("token");
    let foreign_here = api.token_for(&foreign, &foreign_secret, &t1).await.expect("guest token");

    let mine = format!("{sub}/resourceGroups/mine/providers");
    let their_base = format!("{theirs}/providers");
    attacker_estate(&api, &netc_token, &mine).await;
    attacker_estate(&api, &foreign_home, &their_base).await;
    let attackers: [(&str, &str, Vec<&str>, usize); 3] = [
        ("contributor(other group)", mine.as_str(), vec![], 0),
        ("foreign", their_base.as_str(), vec![], 1),
        ("foreign+aux", their_base.as_str(), vec![foreign_here.as_str()], 2),
    ];

    // Coverage: every rule has a row, but for a public load balancer's frontend, refused as such.
    let all_rows = rows(&ids, &mine, 0);
    let public_frontend = "properties.frontendIPConfigurations[].properties.publicIPAddress";
    for rule in LINK_RULES {
        let served = rule.path != public_frontend;
        let has_row = all_rows.iter().any(|r| r.owner == rule.owner && r.path == rule.path);
        assert!(has_row || !served, "no row for the reference {} {}", rule.owner, rule.path);
    }
    // …and public load balancers are indeed refused (when they are served, their rule needs a row).
    let (s, v) = api
        .call(
            Method::PUT,
            &api.net("owned", "loadBalancers/public"),
            Some(json!({"location": "westeurope", "properties": {"frontendIPConfigurations": [
                {"name": "fe", "properties": {"publicIPAddress": {"id": ids["pip-nic"]}}}]}})),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("PublicLoadBalancerNotSupported")), "{v}");

    let before = documents(&api, &sub, "owned").await;
    let mut failures = Vec::new();
    for (who, base, aux, n) in &attackers {
        let token = if *n == 0 { netc_token.as_str() } else { foreign_home.as_str() };
        for r in rows(&ids, base, *n) {
            let (s, v) = api.call_as(token, aux, Method::PUT, &r.target, Some(r.body.clone())).await;
            if (s, v["error"]["code"].as_str()) != (403, Some("LinkedAuthorizationFailed")) {
                failures.push(format!("{who}: {} {}: {s} {v}", r.owner, r.path));
            }
            let admin = if *n == 0 { api.token.as_str() } else { admin2.as_str() };
            let (s, _) = api.call_as(admin, &[], Method::GET, &r.target, None).await;
            if s != 404 {
                failures.push(format!("{who}: {} was written ({s})", r.target));
            }
        }
    }
    assert!(failures.is_empty(), "refusals expected:\n{}", failures.join("\n"));
    assert_eq!(documents(&api, &sub, "owned").await, before, "the owner's resources are unchanged");

    // Diagnostics: a foreign VM that exists and one that does not get the same answer.
    let watcher = format!("{their_base}/Microsoft.Network/networkWatchers/nw");
    ok(&api, &foreign_home, Method::PUT, &watcher, json!({"location": "westeurope"})).await;
    let vm_path = |name: &str| format!("{sub}/resourceGroups/owned/providers/Microsoft.Compute/virtualMachines/{name}");
    let nic_d = api.net("owned", "networkInterfaces/nic-d");
    ok(
        &api,
        &api.token,
        Method::PUT,
        &nic_d,
        json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": ids["subnet"]}}}]}}),
    )
    .await;
    ok(
        &api,
        &api.token,
        Method::PUT,
        &vm_path("owned-vm"),
        json!({"location": "westeurope", "properties": {"networkProfile": {"networkInterfaces": [{"id": nic_d}]}}}),
    )
    .await;
    let probe = |vm: String| json!({"source": {"resourceId": vm}, "destination": {"address": "10.1.0.9", "port": 22}});
    let (s1, v1) = api
        .call_as(
            &foreign_home,
            &[],
            Method::POST,
            &format!("{watcher}/connectivityCheck"),
            Some(probe(vm_path("owned-vm"))),
        )
        .await;
    let (s2_, v2) = api
        .call_as(
            &foreign_home,
            &[],
            Method::POST,
            &format!("{watcher}/connectivityCheck"),
            Some(probe(vm_path("absent"))),
        )
        .await;
    assert_eq!((s1, v1["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{v1}");
    let scrub =
        |v: &Value| v["error"]["message"].as_str().unwrap_or_default().replace("owned-vm", "X").replace("absent", "X");
    assert_eq!((s1, scrub(&v1)), (s2_, scrub(&v2)), "existing and absent look the same");
    let (s, v) = api
        .call_as(
            &foreign_home,
            &[],
            Method::POST,
            &format!("{watcher}/connectivityCheck"),
            Some(json!({"source": {"resourceId": format!("{their_base}/Microsoft.Compute/virtualMachines/x")},
                        "destination": {"resourceId": vm_path("owned-vm"), "port": 22}})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("AuthorizationFailed")),
        "a destination is checked too: {v}"
    );

    // With the rights granted on the owner's group, the same writes go through (the same-tenant
    // contributor directly, the foreign principal through its auxiliary token).
    let joiner = guid();
    let actions = [
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Network/networkSecurityGroups/join/action",
        "Microsoft.Network/routeTables/join/action",
        "Microsoft.Network/loadBalancers/backendAddressPools/join/action",
        "Microsoft.Network/networkInterfaces/join/action",
        "Microsoft.Network/virtualNetworks/peer/action",
        "Microsoft.Network/virtualNetworkGateways/write",
        "Microsoft.Network/localNetworkGateways/write",
        "Microsoft.Network/publicIPAddresses/join/action",
        "Microsoft.Network/applicationSecurityGroups/joinIpConfiguration/action",
        "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action",
    ];
    let owned_scope = format!("{sub}/resourceGroups/owned");
    ok(
        &api,
        &api.token,
        Method::PUT,
        &format!("{sub}/providers/Microsoft.Authorization/roleDefinitions/{joiner}?{AUTH}"),
        json!({"properties": {"roleName": "Joiner", "assignableScopes": [owned_scope],
            "permissions": [{"actions": actions}]}}),
    )
    .await;
    api.assign(&api.token, &owned_scope, &joiner, &netc).await;
    let granted: Vec<Row> = rows(&ids, &mine, 0);
    let mut failures = Vec::new();
    for r in &granted {
        let (s, v) = api.call_as(&netc_token, &[], Method::PUT, &r.target, Some(r.body.clone())).await;
        if !(200..300).contains(&s) {
            failures.push(format!("granted: {} {}: {s} {v}", r.owner, r.path));
        }
        if r.owner == "Microsoft.Compute/virtualMachines" {
            // Free the NIC for the foreign principal's turn.
            let (s, v) = api.call(Method::DELETE, &r.target, None).await;
            assert!((200..300).contains(&s), "{v}");
        }
    }
    assert!(failures.is_empty(), "with the right granted:\n{}", failures.join("\n"));
    // The foreign principal's guest identity gets the role too: its auxiliary token now carries
    // the right (the peering row works cross-tenant; without the auxiliary token it still fails).
    api.assign(&api.token, &owned_scope, &joiner, &foreign).await;
    let peering =
        rows(&ids, &their_base, 2).into_iter().find(|r| r.owner.ends_with("virtualNetworkPeerings")).expect("row");
    let (s, v) = api.call_as(&foreign_home, &[], Method::PUT, &peering.target, Some(peering.body.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("LinkedAuthorizationFailed")), "{v}");
    let (s, v) = api.call_as(&foreign_home, &[&foreign_here], Method::PUT, &peering.target, Some(peering.body)).await;
    assert_eq!(s, 201, "{v}");

    // A back-reference a client sends is not a way to name another's resource: it is dropped.
    let nsg = format!("{mine}/Microsoft.Network/networkSecurityGroups/claims");
    let claim = json!({"location": "westeurope", "properties": {"subnets": [{"id": ids["subnet"]}],
        "networkInterfaces": [{"id": ids["nic"]}]}});
    let v = ok(&api, &netc_token, Method::PUT, &nsg, claim).await;
    assert!(!v.to_string().contains("/resourceGroups/owned/"), "the owner's resources are not claimed: {v}");

    // Coverage of the fields: every reference a document holds is a rule or a back-reference.
    let mut unknown = Vec::new();
    for rg in ["owned", "mine"] {
        for doc in documents(&api, &sub, rg).await {
            let ty = doc["type"].as_str().unwrap_or_default().to_string();
            for path in tessera_api::linked::id_paths(&doc) {
                let named = LINK_RULES.iter().any(|r| r.owner.eq_ignore_ascii_case(&ty) && r.path == path)
                    || BACK_REFERENCES.iter().any(|(t, p)| t.eq_ignore_ascii_case(&ty) && *p == path);
                if !named {
                    unknown.push(format!("{ty}: {path}"));
                }
            }
        }
    }
    assert!(unknown.is_empty(), "references no rule names: {unknown:?}");
}
