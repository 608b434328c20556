//! A load generator for the API on loopback: GET throughput on one VNet, and durable peering
//! PUT throughput (each PUT flips a flag on a link, so every request is a committed change).
//!
//! ```sh
//! cargo run --release -p tessera-api --example loadgen -- <credentials.json> get 10 32
//! cargo run --release -p tessera-api --example loadgen -- <credentials.json> put 10 32
//! ```
//! Arguments: the server's credentials file, the mode, seconds, concurrent clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn client(ca: &str) -> Result<Client, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Client::builder().use_preconfigured_tls(tls).pool_max_idle_per_host(256).build()?)
}

async fn put(c: &Client, token: &str, url: &str, body: &Value) -> Result<u16, Error> {
    Ok(c.put(url).bearer_auth(token).json(body).send().await?.status().as_u16())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let [_, creds, mode, secs, conc] = args.as_slice() else {
        return Err("usage: loadgen <credentials.json> get|put <seconds> <concurrency>".into());
    };
    let creds: Value = serde_json::from_str(&std::fs::read_to_string(creds)?)?;
    let s = |k: &str| creds[k].as_str().unwrap_or_default().to_string();
    let (endpoint, sub) = (s("endpoint"), s("subscriptionId"));
    let c = client(&s("caCertificate"))?;
    let form = [
        ("grant_type", "client_credentials".to_string()),
        ("client_id", s("clientId")),
        ("client_secret", s("clientSecret")),
        ("scope", "https://management.azure.com/.default".to_string()),
    ];
    let tok: Value =
        c.post(format!("{endpoint}/{}/oauth2/v2.0/token", s("tenantId"))).form(&form).send().await?.json().await?;
    let token = tok["access_token"].as_str().ok_or("no token")?.to_string();
    let seconds: u64 = secs.parse()?;
    let concurrency: usize = conc.parse()?;

    let rg = format!("{endpoint}/subscriptions/{sub}/resourcegroups/bench?api-version=2022-12-01");
    put(&c, &token, &rg, &json!({"location": "westeurope"})).await?;
    let net = format!("{endpoint}/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.Network");
    let vnet = |i: usize| json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [format!("10.{}.{}.0/24", i / 256, i % 256)]}}});
    let status = put(&c, &token, &format!("{net}/virtualNetworks/hub?api-version=2024-05-01"), &vnet(0)).await?;
    if status >= 300 {
        return Err(format!("creating the hub answered {status}").into());
    }
    let hub_id = format!("/subscriptions/{sub}/resourceGroups/bench/providers/Microsoft.Network/virtualNetworks/hub");
    if mode == "put" {
        for i in 1..=concurrency {
            put(&c, &token, &format!("{net}/virtualNetworks/spoke{i}?api-version=2024-05-01"), &vnet(i)).await?;
        }
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 1..=concurrency {
        let (c, token, net, hub_id, mode) = (c.clone(), token.clone(), net.clone(), hub_id.clone(), mode.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut flip = false;
            let get_url = format!("{net}/virtualNetworks/hub?api-version=2024-05-01");
            let put_url = format!("{net}/virtualNetworks/hub/virtualNetworkPeerings/to-spoke{worker}?api-version=2024-05-01");
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = if mode == "get" {
                    c.get(&get_url).bearer_auth(&token).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                } else {
                    flip = !flip;
                    let remote = hub_id.replace("/hub", &format!("/spoke{worker}"));
                    let body = json!({"properties": {"remoteVirtualNetwork": {"id": remote}, "allowVirtualNetworkAccess": true, "allowForwardedTraffic": flip}});
                    c.put(&put_url).bearer_auth(&token).json(&body).send().await.map(|r| r.status().is_success()).unwrap_or(false)
                };
                lat.push(t.elapsed());
                if !ok {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    all.sort();
    let q = |p: f64| all.get(((all.len() as f64 - 1.0) * p) as usize).copied().unwrap_or_default();
    println!(
        "{mode}: {} requests in {seconds} s = {:.0}/s, errors {errors}, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (concurrency {concurrency})",
        all.len(),
        all.len() as f64 / seconds as f64,
        q(0.50).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}
