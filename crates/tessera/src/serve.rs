//! `tessera serve`: the API server in the foreground until Ctrl-C or SIGTERM, with a host
//! agent in the same process when `--agent` names a host (one machine: DESIGN.md); and
//! `tessera agent`, an agent of its own for another host.

use std::process::ExitCode;

use tessera_agent::AgentConfig;
use tessera_agent::metrics::AgentMetrics;
use tessera_model::ArmError;
use tokio::sync::watch;

fn failed(e: impl std::fmt::Display) -> ArmError {
    ArmError::with_status(500, "ServeFailed", e.to_string())
}

/// The log filter when `RUST_LOG` sets none: Tessera's own events from `info`, everything
/// else's warnings.
const DEFAULT_LOG: &str = "warn,tessera=info,tessera_api=info,tessera_agent=info,tessera_store=info";

/// Installs the one log subscriber of `serve` and `agent`: to stderr, its level from
/// `RUST_LOG` (e.g. `RUST_LOG=tessera_agent=debug`), else [`DEFAULT_LOG`]. Once per process.
pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// What the in-process agent runs behind its ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vms {
    /// Namespace VMs on TAP ports (root).
    Namespaces,
    /// TAP ports only.
    None,
    /// Userspace VMs (no root).
    Userspace,
}

pub(crate) fn run(
    mut config: tessera_api::ServeConfig,
    agent: Option<(String, Vms)>,
    forwarding: crate::Forwarding,
) -> Result<ExitCode, ArmError> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(failed)?;
    // The in-process agent's switch is served with the API's metrics.
    let agent_metrics = (config.metrics.is_some() && agent.is_some()).then(AgentMetrics::new);
    if let Some(m) = &agent_metrics {
        config.collectors.push(tessera_api::metrics::SharedCollector(std::sync::Arc::new(m.clone())));
    }
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let server = tessera_api::start(config).await.map_err(failed)?;
        if let Some(m) = &server.metrics {
            crate::emit!("tessera: metrics for Prometheus on http://{}/metrics", m.addr);
        }
        let c = &server.credentials;
        crate::emit!("tessera: serving the ARM API on {}", c.endpoint);
        crate::emit!("  data directory   {}", data_dir.display());
        crate::emit!("  CA certificate   {}", c.ca_certificate.display());
        crate::emit!("  tenant           {}", c.tenant_id);
        crate::emit!("  subscription     {}", c.subscription_id);
        crate::emit!("  client id        {}", c.client_id);
        crate::emit!("  client secret    in {}", data_dir.join("credentials.json").display());
        crate::emit!("  web console      {}/console/ (sign in with the tenant, client id and secret)", c.endpoint);
        crate::emit!("");
        crate::emit!("Use it with az:");
        crate::emit!("  export REQUESTS_CA_BUNDLE={}", c.ca_certificate.display());
        crate::emit!(
            "  az cloud register -n Tessera --endpoint-resource-manager {}/ && az cloud set -n Tessera",
            c.endpoint
        );
        crate::emit!("  az config set core.instance_discovery=false");
        crate::emit!("  az login --service-principal -u {} -p <secret> --tenant {}", c.client_id, c.tenant_id);
        let (stop, stopped) = watch::channel(false);
        let agent = agent.map(|(host, vms)| {
            let config = AgentConfig {
                credentials: data_dir.join("credentials.json"),
                controllers: Vec::new(),
                status: data_dir.join(format!("agent-{host}.json")),
                host,
                underlay: None,
                namespace_vms: vms == Vms::Namespaces,
                userspace_vms: vms == Vms::Userspace,
                netns: None,
                peers: Vec::new(),
                kernel_fast_path: forwarding.kernel_fast_path(),
                workers: forwarding.workers(),
                flow_limits: forwarding.flow_limits(),
                metrics: agent_metrics,
            };
            crate::emit!("  host agent       {} (status in {})", config.host, config.status.display());
            spawn_agent(config, stopped)
        });
        tokio::select! {
            r = server.wait() => r.map_err(failed)?,
            _ = shutdown() => crate::emit!("tessera: stopping"),
        }
        let _ = stop.send(true);
        if let Some(a) = agent {
            let _ = a.join();
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs an agent of its own until interrupted; its switch's counters on `metrics` if given.
pub(crate) fn agent(metrics: Option<std::net::SocketAddr>, mut config: AgentConfig) -> Result<ExitCode, ArmError> {
    init_logging();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
    let listener = match metrics {
        Some(at) => {
            let m = AgentMetrics::new();
            config.metrics = Some(m.clone());
            let collectors = [tessera_api::metrics::SharedCollector(std::sync::Arc::new(m))];
            let server = runtime.block_on(tessera_api::metrics::serve(at, &collectors)).map_err(failed)?;
            crate::emit!("tessera: metrics for Prometheus on http://{}/metrics", server.addr);
            Some(server)
        }
        None => None,
    };
    let (stop, stopped) = watch::channel(false);
    crate::emit!("tessera: agent of host {} following {}", config.host, config.credentials.display());
    let handle = spawn_agent(config, stopped);
    runtime.block_on(shutdown());
    drop(listener);
    let _ = stop.send(true);
    let _ = handle.join();
    Ok(ExitCode::SUCCESS)
}

/// The agent on a thread of its own (its namespace work blocks).
fn spawn_agent(config: AgentConfig, stopped: watch::Receiver<bool>) -> std::thread::JoinHandle<()> {
    let config_host = config.host.clone();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return tracing::error!("the agent cannot start: {e}"),
        };
        if let Err(e) = rt.block_on(tessera_agent::run(config, stopped)) {
            tracing::error!(host = %config_host, "the agent stopped: {e}");
        }
    })
}

/// Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
