//! `/metrics` scraped by a real Prometheus (Debian's package, installed by `.ci/run`; needs root
//! for the namespace VMs, as CI runs): the server's API requests and latency by operation, the
//! agent's bytes and packets per peering and direction, drops by reason, flow table and program
//! swaps — each queried back through Prometheus's own HTTP API.

mod lab;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use lab::Lab;
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// One instant query through Prometheus's HTTP API (plain HTTP/1.0 on loopback): the samples'
/// (labels, value).
fn query(prometheus: u16, q: &str) -> Vec<(Value, f64)> {
    let url = reqwest::Url::parse_with_params(&format!("http://127.0.0.1:{prometheus}/api/v1/query"), &[("query", q)])
        .expect("url");
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let answer = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", prometheus))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(s, "GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })()
    .unwrap_or_default();
    let body: Value = answer.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| (s["metric"].clone(), s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)))
        .collect()
}

/// The value of a query returning one sample, once Prometheus has one.
fn eventually(prometheus: u16, q: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let mut last = Vec::new();
    for _ in 0..60 {
        last = query(prometheus, q);
        if let [(_, v)] = last.as_slice()
            && ok(*v)
        {
            return *v;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never answered `{q}` as expected: {last:?}");
}

#[test]
fn a_real_prometheus_scrapes_the_server_and_the_agent() {
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(prometheus.exists(), "Prometheus is not installed: apt-get install prometheus (.ci/run does)");
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let (api, server_metrics, agent_metrics, prom) = (free_port(), free_port(), free_port(), free_port());
    lab.start_server_with(api, &["--metrics".into(), format!("127.0.0.1:{server_metrics}")]);
    lab.start_agent("local", &["--metrics".into(), format!("127.0.0.1:{agent_metrics}")]);
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/metering.yaml"));
    lab.wait_for_vms("local", 3);

    // Traffic across the a-b peering, and a packet the switch drops (no VM has the address).
    assert!(lab::within(10, || lab.ping("meter-a", "10.212.1.4")), "a reaches b");
    for _ in 0..3 {
        assert!(lab.ping("meter-a", "10.212.1.4"));
    }
    assert!(!lab.ping("meter-a", "10.212.1.99"), "nobody has 10.212.1.99");

    let config = lab.data().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n\
             \x20 - job_name: tessera-server\n    static_configs: [{{ targets: ['127.0.0.1:{server_metrics}'] }}]\n\
             \x20 - job_name: tessera-agent\n    static_configs: [{{ targets: ['127.0.0.1:{agent_metrics}'] }}]\n"
        ),
    )
    .expect("prometheus.yml");
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", lab.data().join("prometheus").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    lab.processes.push(child);

    // Both targets are up.
    for job in ["tessera-server", "tessera-agent"] {
        eventually(prom, &format!("up{{job=\"{job}\"}}"), |v| v == 1.0);
    }
    // The agent: bytes and packets per peering and direction.
    let a_to_b = "source_vnet=~\".*/virtualNetworks/a\",destination_vnet=~\".*/virtualNetworks/b\"";
    let bytes = eventually(prom, &format!("tessera_peering_bytes_total{{{a_to_b},direction=\"Egress\"}}"), |v| v > 0.0);
    let packets =
        eventually(prom, &format!("tessera_peering_packets_total{{{a_to_b},direction=\"Ingress\"}}"), |v| v >= 4.0);
    assert!(bytes >= packets * 64.0, "{bytes} bytes in {packets} packets");
    eventually(prom, "sum(tessera_dropped_packets_total)", |v| v >= 1.0);
    let reasons = query(prom, "tessera_dropped_packets_total");
    assert!(reasons.iter().all(|(m, _)| m["reason"].as_str().is_some_and(|r| !r.is_empty())), "{reasons:?}");
    eventually(prom, "tessera_program_swaps_total", |v| v >= 1.0);
    eventually(prom, "tessera_flows", |v| v >= 0.0);
    eventually(prom, "tessera_flow_evictions_total", |v| v == 0.0);
    eventually(prom, "tessera_slow_path_packets_total", |v| v >= 1.0);
    // The server: requests by operation and status, and their latency.
    eventually(prom, "sum(tessera_api_requests_total{operation=\"PUT resource\"})", |v| v >= 3.0);
    eventually(prom, "sum(tessera_api_requests_total{operation=\"GET feed\",code=\"200\"})", |v| v >= 1.0);
    eventually(prom, "sum(tessera_api_request_duration_seconds_count)", |v| v >= 3.0);
    let p99 = eventually(
        prom,
        "histogram_quantile(0.99, sum by (le) (tessera_api_request_duration_seconds_bucket))",
        f64::is_finite,
    );
    assert!(p99 > 0.0, "{p99}");
}
