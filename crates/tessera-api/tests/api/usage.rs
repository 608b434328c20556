//! Peering usage through the API (issue 17 points 1–2, $1–$7): agents' reports taken once
//! (retries and restarts), kept across a server restart, and read as Azure's usage details
//! at subscription scope with date filters, priced with the server's sheet; who may report and
//! who may read.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Api, READER};

const CONSUMPTION: &str = "api-version=2023-05-01";
const GIB: u64 = 1 << 30;

/// Two peered VNets in West Europe (hub, spoke) and one in Japan West (far), peered with the hub.
async fn peered(api: &Api) -> (String, String, String) {
    api.group("net").await;
    let hub = api.vnet("net", "hub", "10.0.0.0/16").await["id"].as_str().expect("id").to_string();
    let spoke = api.vnet("net", "spoke", "10.1.0.0/16").await["id"].as_str().expect("id").to_string();
    let body = json!({"location": "japanwest", "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]}}});
    let (s, v) = api.call(Method::PUT, &api.net("net", "virtualNetworks/far"), Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let far = v["id"].as_str().expect("id").to_string();
    for (a, b) in [(&hub, &spoke), (&spoke, &hub), (&hub, &far), (&far, &hub)] {
        let name = format!("to-{}", b.rsplit('/').next().expect("name"));
        let body = json!({"properties": {"remoteVirtualNetwork": {"id": b}}});
        let (s, v) = api.call(Method::PUT, &format!("{a}/virtualNetworkPeerings/{name}"), Some(body)).await;
        assert!(s == 200 || s == 201, "{v}");
    }
    (hub, spoke, far)
}

fn pair(source: &str, destination: &str, direction: &str, bytes: u64) -> Value {
    json!({"source": source, "destination": destination, "direction": direction, "bytes": bytes, "packets": bytes / 1500})
}

async fn report(api: &Api, token: &str, host: &str, body: Value) -> (u16, Value) {
    api.call_as(token, &[], Method::POST, &format!("/tessera/hosts/{host}/usage"), Some(body)).await
}

/// Every usage detail a query returns, all pages followed (the test server's pages are small).
async fn details(api: &Api, token: &str, query: &str) -> (u16, Value) {
    let path = format!("{}/providers/Microsoft.Consumption/usageDetails?{CONSUMPTION}{query}", api.sub());
    let (status, first) = api.call_as(token, &[], Method::GET, &path, None).await;
    if status != 200 {
        return (status, first);
    }
    let mut all = first["value"].as_array().cloned().unwrap_or_default();
    let mut next = first["nextLink"].as_str().map(str::to_string);
    while let Some(url) = next {
        let page: Value =
            api.client.get(&url).bearer_auth(token).send().await.expect("page").json().await.expect("json");
        all.extend(page["value"].as_array().cloned().unwrap_or_default());
        next = page["nextLink"].as_str().map(str::to_string);
    }
    (status, json!({ "value": all }))
}

/// (billed VNet name, meter, bytes, cost) of every usage detail.
fn summary(v: &Value) -> Vec<(String, String, u64, f64)> {
    let mut out: Vec<_> = v["value"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            let p = &d["properties"];
            let info: Value = serde_json::from_str(p["additionalInfo"].as_str().expect("expanded")).expect("json");
            (
                p["instanceName"].as_str().expect("name").to_string(),
                p["meterDetails"]["meterName"].as_str().expect("meter").to_string(),
                info["bytes"].as_u64().expect("bytes"),
                p["cost"].as_f64().expect("cost"),
            )
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_once_kept_and_served_as_usage_details() {
    let api = Api::start().await;
    let (hub, spoke, far) = peered(&api).await;
    let token = api.token.clone();
    // spoke -> hub, 2 GiB, both sides on this host; hub -> far, 1 GiB leaving this host.
    let first = json!({"run": "r1", "sequence": 1, "pairs": [
        pair(&spoke, &hub, "Egress", 2 * GIB), pair(&spoke, &hub, "Ingress", 2 * GIB),
        pair(&hub, &far, "Egress", GIB)]});
    let (s, v) = report(&api, &token, "h1", first.clone()).await;
    assert_eq!((s, &v["counted"]), (200, &json!(true)), "{v}");
    // The agent did not hear the answer and sends it again: counted once.
    let (s, v) = report(&api, &token, "h1", first).await;
    assert_eq!((s, &v["counted"]), (200, &json!(false)), "{v}");

    let expand = "&$expand=properties/meterDetails,properties/additionalInfo";
    let (s, v) = details(&api, &token, expand).await;
    assert_eq!(s, 200, "{v}");
    let want = vec![
        ("hub".to_string(), "Egress data processed (Zone 1)".to_string(), GIB, 0.035),
        ("hub".into(), "Ingress data processed (Global)".into(), 2 * GIB, 0.02),
        ("spoke".into(), "Egress data processed (Global)".into(), 2 * GIB, 0.02),
    ];
    let got = summary(&v);
    assert_eq!(got.len(), want.len(), "{v}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((&g.0, &g.1, g.2), (&w.0, &w.1, w.2));
        assert!((g.3 - w.3).abs() < 1e-9, "{g:?} vs {w:?}");
    }
    let d = &v["value"][0];
    assert_eq!(d["type"], "Microsoft.Consumption/usageDetails");
    assert_eq!(d["kind"], "legacy");
    assert_eq!(d["properties"]["billingCurrency"], "USD");
    assert_eq!(d["properties"]["meterDetails"]["meterCategory"], "Virtual Network");
    assert!(d["properties"]["additionalInfo"].as_str().expect("info").contains("to-far"), "{d}");
    // Without $expand, the details stay unexpanded.
    let (_, plain) = details(&api, &token, "").await;
    assert!(plain["value"][0]["properties"].get("meterDetails").is_none(), "{plain}");

    // A date range: the hour of today is in a range from yesterday to tomorrow, not in last year.
    let day = 86_400;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let date = |t: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string()
    };
    let range = |a: u64, b: u64| {
        format!("&$filter=properties/usageEnd ge '{}' and properties/usageEnd le '{}'", date(a), date(b))
    };
    let (_, v) = details(&api, &token, &range(now - day, now + day)).await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(3), "{v}");
    let (_, v) = details(&api, &token, &range(now - 400 * day, now - 300 * day)).await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(0), "{v}");
    let (_, v) = details(&api, &token, "&$filter=properties/instanceName eq 'spoke'").await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, v) = details(&api, &token, "&$filter=properties/usageEnd ge '2026-12-01' or properties/cost gt '1'").await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidFilter")), "{v}");
    // $top bounds the items (the range above, three items on pages of two, followed the
    // nextLink: paging keeps the filter).
    let (_, v) = details(&api, &token, &format!("{}&$top=1", range(now - day, now + day))).await;
    assert_eq!(v["value"].as_array().map(Vec::len), Some(1), "{v}");

    // A Reader of the subscription reads usage; neither it nor another tenant's admin reports.
    let (reader, secret) = api.principal(&api.creds.tenant_id, &[]).await;
    api.assign(&token, &api.sub(), READER, &reader).await;
    let reader_token = api.token_for(&reader, &secret, &api.creds.tenant_id).await.expect("token");
    let (s, v) = details(&api, &reader_token, "").await;
    assert_eq!((s, v["value"].as_array().map(Vec::len)), (200, Some(3)), "{v}");
    let more = json!({"run": "r1", "sequence": 2, "pairs": [pair(&spoke, &hub, "Egress", 10 * GIB)]});
    let (s, _) = report(&api, &reader_token, "h1", more.clone()).await;
    assert_eq!(s, 403);
    let (t2, _, _) = api.second_tenant().await;
    let (stranger, secret) = api.principal(&t2, &[]).await;
    let stranger_token = api.token_for(&stranger, &secret, &t2).await.expect("token");
    let (s, _) = report(&api, &stranger_token, "h1", more).await;
    assert_eq!(s, 403);
    let (s, _) = details(&api, &stranger_token, "").await;
    assert!(s == 401 || s == 403, "another tenant reads no usage: {s}");

    // Refused reports change nothing: a counter going back, a huge report, garbage.
    let back = json!({"run": "r1", "sequence": 2, "pairs": [pair(&spoke, &hub, "Egress", GIB)]});
    let (s, v) = report(&api, &token, "h1", back).await;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("UsageCounterWentBack")), "{v}");
    let huge: Vec<Value> = (0..5000).map(|i| pair(&spoke, &format!("{hub}{i}"), "Egress", 1)).collect();
    let (s, v) = report(&api, &token, "h1", json!({"run": "r1", "sequence": 3, "pairs": huge})).await;
    // The body limit stops it first here (a test server takes 1 MiB); MAX_PAIRS bounds the rest
    // (engine tests/metering.rs).
    assert_eq!(s, 413, "{v}");
    let (s, v) = report(&api, &token, "h1", json!({"run": "r1", "sequence": "x"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("InvalidUsageReport")), "{v}");
    let (_, after) = details(&api, &token, expand).await;
    assert_eq!(summary(&after).iter().map(|r| r.2).sum::<u64>(), 5 * GIB);

    // The agent restarted (a new run) and then sent its ended run's tail; the server restarts.
    let new_run = json!({"run": "r2", "sequence": 1, "pairs": [pair(&spoke, &hub, "Egress", GIB)]});
    assert_eq!(report(&api, &token, "h1", new_run).await.0, 200);
    let tail = json!({"run": "r1", "sequence": 5, "pairs": [pair(&spoke, &hub, "Egress", 2 * GIB + GIB / 2)]});
    assert_eq!(report(&api, &token, "h1", tail.clone()).await.0, 200);
    let api = api.restart().await;
    let (_, v) = details(&api, &api.token, expand).await;
    let spoke_egress: u64 =
        summary(&v).iter().filter(|r| r.0 == "spoke" && r.1.starts_with("Egress")).map(|r| r.2).sum();
    assert_eq!(spoke_egress, 2 * GIB + GIB + GIB / 2);
    // After the restart the server still knows what it counted: the tail again is a duplicate.
    let (s, v) = report(&api, &api.token, "h1", tail).await;
    assert_eq!((s, &v["counted"]), (200, &json!(false)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_bills_at_its_price_sheet() {
    let dir = tempfile::tempdir().expect("dir");
    let api = Api::start_with(dir, |c| {
        c.settings.prices.currency = "EUR".into();
        c.settings.prices.intra_region.egress = 0.5;
    })
    .await;
    let (hub, spoke, _) = peered(&api).await;
    let body = json!({"run": "r", "sequence": 1, "pairs": [pair(&spoke, &hub, "Egress", 4 * GIB)]});
    assert_eq!(report(&api, &api.token, "h1", body).await.0, 200);
    let (_, v) = details(&api, &api.token, "").await;
    let p = &v["value"][0]["properties"];
    assert_eq!(
        (p["billingCurrency"].as_str(), p["cost"].as_f64(), p["quantity"].as_f64()),
        (Some("EUR"), Some(2.0), Some(4.0))
    );
}

/// Total of every point of every series of one metric in an Azure Monitor answer.
fn metric_total(v: &Value, name: &str) -> f64 {
    v["value"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter(|m| m["name"]["value"] == name)
        .flat_map(|m| m["timeseries"].as_array().cloned().unwrap_or_default())
        .flat_map(|t| t["data"].as_array().cloned().unwrap_or_default())
        .map(|p| p["total"].as_f64().unwrap_or(0.0))
        .sum()
}

async fn metrics(api: &Api, target: &str, query: &str) -> (u16, Value) {
    let path = format!("{target}/providers/Microsoft.Insights/metrics?api-version=2018-01-01{query}");
    api.call(Method::GET, &path, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vnets_peering_bytes_are_served_as_azure_monitor_metrics() {
    let api = Api::start().await;
    let (hub, spoke, far) = peered(&api).await;
    let body = json!({"run": "r", "sequence": 1, "pairs": [
        pair(&spoke, &hub, "Egress", 3 * GIB), pair(&spoke, &hub, "Ingress", 3 * GIB),
        pair(&hub, &far, "Egress", GIB)]});
    assert_eq!(report(&api, &api.token, "h1", body).await.0, 200);
    // The last hour by minute (az's default): spoke sent 3 GiB, received nothing.
    let (s, v) = metrics(&api, &spoke, "").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["interval"], "PT1M");
    assert_eq!(metric_total(&v, "PeeringBytesOut"), (3 * GIB) as f64, "{v}");
    assert_eq!(metric_total(&v, "PeeringBytesIn"), 0.0);
    let points = v["value"][0]["timeseries"][0]["data"].as_array().map(Vec::len).unwrap_or(0);
    assert!((60..=61).contains(&points), "a point a minute for an hour: {points}");
    // Hourly, split by remote VNet: the hub received 3 GiB from spoke and sent 1 GiB to far.
    let (s, v) = metrics(&api, &hub, "&interval=PT1H&metricnames=PeeringBytesIn,PeeringBytesOut&aggregation=Total,Count&$filter=RemoteVirtualNetwork eq '*'").await;
    assert_eq!(s, 200, "{v}");
    let out =
        v["value"].as_array().expect("metrics").iter().find(|m| m["name"]["value"] == "PeeringBytesOut").expect("out");
    assert_eq!(out["timeseries"][0]["metadatavalues"][0]["value"], "far", "{out}");
    assert_eq!(metric_total(&v, "PeeringBytesIn"), (3 * GIB) as f64);
    assert_eq!(metric_total(&v, "PeeringBytesOut"), GIB as f64);
    // One remote only.
    let (_, v) = metrics(&api, &hub, "&interval=PT1H&$filter=RemoteVirtualNetwork eq 'spoke'").await;
    assert_eq!((metric_total(&v, "PeeringBytesIn"), metric_total(&v, "PeeringBytesOut")), ((3 * GIB) as f64, 0.0));
    // Definitions, and refusals: an unknown metric, grain, filter; a NIC has no metrics here.
    let (s, v) = api
        .call(
            Method::GET,
            &format!("{spoke}/providers/Microsoft.Insights/metricDefinitions?api-version=2018-01-01"),
            None,
        )
        .await;
    assert_eq!((s, v["value"].as_array().map(Vec::len)), (200, Some(4)), "{v}");
    for bad in [
        "&metricnames=CpuPercent",
        "&interval=PT2M",
        "&$filter=Region eq 'x'",
        "&timespan=yesterday",
        "&aggregation=Median",
    ] {
        let (s, v) = metrics(&api, &spoke, bad).await;
        assert_eq!((s, v["error"]["code"].as_str()), (400, Some("BadRequest")), "{bad}: {v}");
    }
    let (s, _) = metrics(
        &api,
        &format!("{}/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/none", api.sub()),
        "",
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_answer_is_bounded() {
    let api = Api::start().await;
    let (hub, _, _) = peered(&api).await;
    // Six remote VNets with traffic from the hub: six series per metric when split.
    let mut pairs = Vec::new();
    for i in 0..6 {
        let x = api.vnet("net", &format!("x{i}"), &format!("10.{}.0.0/16", 50 + i)).await;
        pairs.push(pair(&hub, x["id"].as_str().expect("id"), "Egress", 1 << 20));
    }
    assert_eq!(report(&api, &api.token, "h1", json!({"run": "r", "sequence": 1, "pairs": pairs})).await.0, 200);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs();
    let date = |t: u64| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string()
    };
    let span = format!("&timespan={}/{}", date(now - 9_990 * 60), date(now));
    let split = "&interval=PT1M&$filter=RemoteVirtualNetwork eq '*'";
    // 6 remotes x 9,990 minutes: one metric fits, two do not (over 100,000 points).
    let (s, v) = metrics(&api, &hub, &format!("{span}{split}&metricnames=PeeringBytesOut")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"][0]["timeseries"].as_array().map(Vec::len), Some(6));
    let (s, v) = metrics(&api, &hub, &format!("{span}{split}&metricnames=PeeringBytesOut,PeeringPacketsOut")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (400, Some("BadRequest")), "{v}");
}
