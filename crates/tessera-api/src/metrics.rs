//! `/metrics` in the Prometheus (OpenMetrics) text format, on a plain-HTTP listener of its own
//! (`serve --metrics ADDR`, `agent --metrics ADDR`; off by default): the API's requests and
//! their latency by operation family, and whatever collectors the process adds (a host agent's
//! switch counters, read at each scrape). Its labels name resources of every tenant, so it is
//! an operator's endpoint: bind it where only the operator's Prometheus reaches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request: its operation family (`GET resource`, `PUT child resource`, …).
type Operation = Vec<(&'static str, String)>;

/// The API's own metrics.
#[derive(Debug, Clone)]
pub(crate) struct ApiMetrics {
    requests: Family<Operation, Counter>,
    latency: Family<Operation, Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16))),
        }
    }
}

impl ApiMetrics {
    /// Counts one answered request.
    pub(crate) fn observe(&self, operation: &str, status: u16, took: Duration) {
        let labels = vec![("operation", operation.to_string()), ("code", status.to_string())];
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&vec![("operation", operation.to_string())]).observe(took.as_secs_f64());
    }

    /// Registers them.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "tessera_api_requests",
            "API requests answered, by operation and status",
            self.requests.clone(),
        );
        registry.register(
            "tessera_api_request_duration_seconds",
            "Time to answer an API request, by operation",
            self.latency.clone(),
        );
    }
}

/// A collector shared with its owner (a host agent fills it in after it starts).
#[derive(Debug, Clone)]
pub struct SharedCollector(pub Arc<dyn Collector>);

impl Collector for SharedCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// A registry of the API's metrics (when given) and the collectors.
pub(crate) fn registry(api: Option<&ApiMetrics>, collectors: &[SharedCollector]) -> Registry {
    let mut registry = Registry::default();
    if let Some(m) = api {
        m.register(&mut registry);
    }
    for c in collectors {
        registry.register_collector(Box::new(c.clone()));
    }
    registry
}

/// A running `/metrics` listener.
#[derive(Debug)]
pub struct MetricsServer {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scrape(registry: Arc<Registry>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves `GET /metrics` on `addr` (plain HTTP) on the current runtime.
async fn serve_registry(addr: SocketAddr, registry: Registry) -> std::io::Result<MetricsServer> {
    let registry = Arc::new(registry);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let router = axum::Router::new().route("/metrics", axum::routing::get(move || scrape(registry.clone())));
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the metrics listener stopped: {e}");
        }
    });
    Ok(MetricsServer { addr, task })
}

/// Serves the collectors alone (a host agent of its own) on `addr`.
pub async fn serve(addr: SocketAddr, collectors: &[SharedCollector]) -> std::io::Result<MetricsServer> {
    serve_registry(addr, registry(None, collectors)).await
}

/// Serves the API's metrics and the collectors on `addr`.
pub(crate) async fn serve_api(
    addr: SocketAddr,
    api: &ApiMetrics,
    collectors: &[SharedCollector],
) -> std::io::Result<MetricsServer> {
    serve_registry(addr, registry(Some(api), collectors)).await
}
