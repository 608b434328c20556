//! The host agent: follows the controller's watch feed, builds the engine from the documents,
//! swaps the programs into the switch, and owns the I/O — a TAP port per NIC placed on this
//! host (with a namespace VM behind it when asked, on a veth pair whose flows the kernel fast
//! path carries once the switch decided them) and the VXLAN underlay to other hosts. When
//! the controller is away the switch keeps forwarding with the programs it has, and the feed
//! resumes from the revision held when the controller returns.

pub mod datapath;

pub use tessera_dataplane::FlowLimits;
pub use tessera_dataplane::switch::{DEFAULT_FLOWS, DEFAULT_PORT_FLOWS};
pub mod fabric;
pub mod fastpath;
pub mod feed;
pub mod gateway;
pub mod gateway_config;
pub mod metering;
pub mod metrics;
pub mod offload;
pub mod probes;
pub mod session;
#[allow(unsafe_code)]
pub mod tap;
pub mod userspace;
pub mod uvm;
pub mod vms;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use tessera_model::ArmError;
use tokio::sync::watch;

use crate::feed::Follower;
use crate::session::Controllers;

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's credentials file.
    pub credentials: PathBuf,
    /// Other controllers on the same shared store (base URLs), tried in turn when the one
    /// talked to stops answering.
    pub controllers: Vec<String>,
    /// This host's name (ports placed by the `tessera-host` tag).
    pub host: String,
    /// Where to bind the VXLAN underlay socket (none: a host of its own).
    pub underlay: Option<SocketAddr>,
    /// Where to write the status (the VMs running and the revision held).
    pub status: PathBuf,
    /// Whether to start a namespace VM behind each port.
    pub namespace_vms: bool,
    /// Run the ports as userspace VMs instead of TAP devices (no root needed); `tessera exec`
    /// reaches them through `<status>.sock`.
    pub userspace_vms: bool,
    /// The host's own network namespace (several hosts on one machine): its TAPs and its
    /// underlay socket live there, while the agent talks to the controller from where it runs.
    pub netns: Option<String>,
    /// The other hosts' names and underlay addresses.
    pub peers: Vec<(String, IpAddr)>,
    /// Let the kernel carry flows the switch decided (eBPF, see [`fastpath`]) when it can.
    pub kernel_fast_path: bool,
    /// The switch's flow table: size, per-port quota, idle timeouts.
    pub flow_limits: tessera_dataplane::FlowLimits,
    /// Forwarding workers (threads, and queues per TAP).
    pub workers: usize,
    /// Where the switch's counters are read for `/metrics`, if anywhere.
    pub metrics: Option<metrics::AgentMetrics>,
}

/// Runs the agent until `stop` turns true; then removes everything it made.
pub async fn run(config: AgentConfig, mut stop: watch::Receiver<bool>) -> Result<(), ArmError> {
    let host_ns = match &config.netns {
        Some(name) => Some(
            tessera_lab::Netns::open(name).map_err(|e| ArmError::bad_request("HostNamespaceMissing", e.to_string()))?,
        ),
        None => None,
    };
    let underlay = match (config.underlay, &host_ns) {
        (Some(a), Some(ns)) => Some(
            ns.run(|| UdpSocket::bind(a))
                .map_err(|e| ArmError::with_status(500, "UnderlayBindFailed", e.to_string()))?,
        ),
        (Some(a), None) => Some(UdpSocket::bind(a)),
        (None, _) => None,
    }
    .transpose()
    .map_err(|e| io_error("UnderlayBindFailed", e))?;
    let (programs, flows) = if config.kernel_fast_path && config.namespace_vms && !config.userspace_vms {
        match fastpath::load() {
            Ok((p, f)) => (Some(p), Some(f)),
            Err(e) => {
                tracing::warn!("no kernel fast path, the switch carries every frame: {e}");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let forwarder = if config.userspace_vms {
        Forwarder::User(
            userspace::start(&config.status.with_extension("sock"), underlay)
                .map_err(|e| io_error("ExecSocketFailed", e))?,
        )
    } else {
        Forwarder::Kernel(
            datapath::start(config.workers, underlay, flows, config.flow_limits)
                .map_err(|e| io_error("DatapathFailed", e))?,
        )
    };
    let controllers = Controllers::new(config.credentials.clone(), config.controllers.clone());
    // Live probes of connectivity checks, sent from the namespace VMs.
    let prober = (config.namespace_vms && !config.userspace_vms)
        .then(|| tokio::spawn(probes::follow(controllers.clone(), config.host.clone(), stop.clone())));
    // Peering usage: recorded every second with the counters, reported every few seconds.
    let (finish, finished) = watch::channel(false);
    let usage = match &forwarder {
        Forwarder::Kernel(d) => {
            if let Some(m) = &config.metrics {
                m.attach(d.probe());
            }
            let log = metering::UsageLog::open(&config.status);
            counters_file(d.probe(), config.status.with_extension("counters.json"), stop.clone(), log.clone());
            let reporter = metering::report(controllers.clone(), config.host.clone(), log.clone(), finished);
            Some((log, tokio::spawn(reporter)))
        }
        Forwarder::User(_) => None,
    };
    let mut vms = vms::Vms::new(
        config.namespace_vms,
        config.status.clone(),
        &config.host,
        host_ns,
        config.peers.clone(),
        programs,
        config.workers,
    );
    let mut follower: Option<Follower> = None;
    let mut backoff = Duration::from_millis(200);
    while !*stop.borrow() {
        let f = match follower.as_mut() {
            Some(f) => f,
            None => match controllers.sign_in().await {
                Ok(s) => {
                    let f = Follower::new(s, &config.host);
                    // Other hosts learn where this one is from the controller's feed.
                    if let Some(addr) = config.underlay
                        && let Err(e) = f.register(addr.ip()).await
                    {
                        tracing::warn!("cannot register the underlay address: {e}");
                    }
                    follower.insert(f)
                }
                Err(_) => {
                    wait(&mut stop, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        // Gateway daemons are read every two seconds; their changes go to the controller.
        let tick = if vms.has_daemons() { Duration::from_secs(2) } else { Duration::from_secs(3600) };
        let polled = tokio::select! {
            r = f.poll(25) => r,
            _ = stop.changed() => break,
            _ = tokio::time::sleep(tick) => {
                for (gw, instance) in vms.gateway_reports() {
                    if let Err(e) = f.report_gateway(&gw, &instance).await {
                        tracing::warn!("cannot report gateway {}: {e}", gw.name());
                    }
                }
                continue;
            }
        };
        match polled {
            Ok(Some(desired)) => {
                backoff = Duration::from_millis(200);
                match &forwarder {
                    Forwarder::Kernel(datapath) => {
                        datapath.send(vms.reconcile(&desired));
                        vms.write_status(desired.revision);
                    }
                    Forwarder::User(fabric) => {
                        let running = vms::userspace_vms(&desired);
                        let remotes = vms.remotes(&desired.engine, &desired.hosts);
                        fabric.send(userspace::Request::Update(desired.engine.clone(), desired.ports.clone(), remotes));
                        vms::write_status(&config.status, &config.host, desired.revision, "userspace", running);
                    }
                }
            }
            Ok(None) => backoff = Duration::from_millis(200),
            Err(e) if e.status == 401 => {
                // The token expired or the server made a new key: sign in again, keep the revision.
                if let Ok(s) = controllers.sign_in().await {
                    f.set_session(s);
                } else {
                    wait(&mut stop, backoff).await;
                }
            }
            Err(e) => {
                tracing::info!("controller unreachable, forwarding with the programs held: {e}");
                if e.status == 503 {
                    // Another controller on the same store goes on from the revision held.
                    controllers.failed(f.session());
                    if let Ok(s) = controllers.sign_in().await {
                        let moved = s.endpoint != f.session().endpoint;
                        if moved {
                            tracing::info!(controller = %s.endpoint, "following another controller");
                        }
                        f.set_session(s);
                        if moved {
                            continue;
                        }
                    }
                }
                wait(&mut stop, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    if let (Some((log, reporter)), Forwarder::Kernel(d)) = (usage, &forwarder) {
        // The last totals are sent before the switch goes (what is not sent is sent next time).
        if let Some(snapshot) = d.counters() {
            log.record(metering::pairs(&snapshot.vnet_pairs));
        }
        let _ = finish.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), reporter).await;
    }
    if let Some(p) = prober {
        p.abort();
    }
    match forwarder {
        Forwarder::Kernel(d) => d.stop(),
        Forwarder::User(f) => f.stop(),
    }
    vms.clear();
    Ok(())
}

/// Who carries the host's frames.
enum Forwarder {
    /// The forwarding thread with TAP ports (and VXLAN).
    Kernel(datapath::Handle),
    /// Userspace VMs on a fabric.
    User(userspace::Handle),
}

/// Writes the switch's counters to `path` (JSON) every second until `stop` turns true.
/// Each time, the VNet pairs' running totals go to the usage log.
fn counters_file(probe: datapath::Probe, path: PathBuf, stop: watch::Receiver<bool>, usage: metering::UsageLog) {
    let spawned = std::thread::Builder::new().name("tessera-counters".into()).spawn(move || {
        let mut last: Option<datapath::Snapshot> = None;
        while !*stop.borrow() {
            std::thread::sleep(Duration::from_secs(1));
            let Some(snapshot) = probe.counters() else { break };
            vms::write_json(&path, &snapshot.to_json());
            usage.record(metering::pairs(&snapshot.vnet_pairs));
            if let Some(before) = &last {
                log_bursts(before, &snapshot);
            }
            last = Some(snapshot);
        }
        let _ = std::fs::remove_file(&path);
    });
    if let Err(e) = spawned {
        tracing::warn!("no counters file: {e}");
    }
}

/// Frames dropped for one reason within a second that make a log line.
const DROP_BURST: u64 = 1000;

/// Logs what changed badly in the last second: a burst of drops of one reason, a port refused
/// new flows at its quota or evicted. Never a line per packet.
fn log_bursts(before: &datapath::Snapshot, now: &datapath::Snapshot) {
    for (reason, n) in &now.drops {
        let was = before.drops.iter().find(|(r, _)| r == reason).map_or(0, |(_, n)| *n);
        if n.saturating_sub(was) >= DROP_BURST {
            tracing::warn!(reason = %reason, dropped = n - was, "a burst of dropped frames in the last second");
        }
    }
    for p in &now.ports {
        let was = before.ports.iter().find(|q| q.nic == p.nic);
        let (quota, evicted) = was.map_or((p.quota_drops, p.evictions), |q| {
            (p.quota_drops.saturating_sub(q.quota_drops), p.evictions.saturating_sub(q.evictions))
        });
        if quota > 0 {
            tracing::warn!(nic = %p.nic, refused = quota, flows = p.flows, "a port at its flow quota: new flows refused");
        }
        if evicted > 0 {
            tracing::info!(nic = %p.nic, evicted, "flow entries evicted for other ports' flows");
        }
    }
}

async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) {
    let _ = tokio::time::timeout(d, stop.changed()).await;
}

fn io_error(code: &str, e: std::io::Error) -> ArmError {
    ArmError::with_status(500, code, e.to_string())
}
