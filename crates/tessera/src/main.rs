//! `tessera`: the command line. Offline diagnostics on a topology file (YAML or ARM JSON).

mod access;
mod check;
mod cost;
mod demo;
mod lab;
mod remote;
mod render;
mod serve;
mod target;
mod usage;

/// `println!` for the command's output: a closed stdout (`tessera … | head`) ends the program
/// quietly instead of panicking.
#[macro_export]
macro_rules! emit {
    ($($arg:tt)*) => {
        $crate::write_line(format_args!($($arg)*))
    };
}

/// Writes one line to stdout; exits quietly when the reader has gone away.
pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(2);
    }
}

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::Value;
use target::Target;
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::{matrix, resolve, watcher};
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};
use tessera_model::security::Direction;
use tessera_model::{ArmError, Kind};

/// Azure-style virtual networks and VNet peering on your own hosts.
#[derive(Parser, Debug)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Output {
    /// Readable tables.
    Table,
    /// Exactly the ARM response body.
    Json,
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Topology file: YAML (see README) or ARM JSON. Without it, ask the running server.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// The server's credentials file (written by `tessera serve`).
    #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
    credentials: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// How a host agent forwards frames.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct Forwarding {
    /// The switch carries every frame (no eBPF fast path in the kernel).
    #[arg(long)]
    no_fast_path: bool,
    /// Forwarding threads; each reads its own queue of every TAP, and a flow stays on one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Flow entries the host's switch holds in all.
    #[arg(long, default_value_t = tessera_agent::DEFAULT_FLOWS as u64,
          value_parser = clap::value_parser!(u64).range(16..=1 << 26))]
    flows: u64,
    /// Flow entries one port (NIC) may hold; its new flows beyond are refused and counted.
    #[arg(long, default_value_t = tessera_agent::DEFAULT_PORT_FLOWS as u64,
          value_parser = clap::value_parser!(u64).range(2..=1 << 26))]
    flows_per_port: u64,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            no_fast_path: false,
            workers: 1,
            flows: tessera_agent::DEFAULT_FLOWS as u64,
            flows_per_port: tessera_agent::DEFAULT_PORT_FLOWS as u64,
        }
    }
}

impl Forwarding {
    /// Whether the kernel fast path may carry flows.
    pub(crate) fn kernel_fast_path(self) -> bool {
        !self.no_fast_path
    }

    /// Worker threads.
    pub(crate) fn workers(self) -> usize {
        usize::from(self.workers)
    }

    /// The switch's flow table: its size and each port's quota.
    pub(crate) fn flow_limits(self) -> tessera_agent::FlowLimits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        tessera_agent::FlowLimits {
            capacity: size(self.flows),
            port_quota: size(self.flows_per_port.min(self.flows)),
            ..tessera_agent::FlowLimits::default()
        }
    }

    /// The same settings as command-line arguments.
    pub(crate) fn args(self) -> Vec<String> {
        let mut out = vec![
            "--workers".to_string(),
            self.workers.to_string(),
            "--flows".to_string(),
            self.flows.to_string(),
            "--flows-per-port".to_string(),
            self.flows_per_port.to_string(),
        ];
        if self.no_fast_path {
            out.push("--no-fast-path".into());
        }
        out
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DirArg {
    In,
    Out,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FlowProto {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum CheckProto {
    Tcp,
    Udp,
    Icmp,
    Http,
    Https,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a topology against every documented rule; explain the first refusal.
    ///
    /// Loads the file given with -f (YAML or ARM JSON; validate always needs one) as the server
    /// would apply it: every resource in dependency order, each checked against the rules of the
    /// behaviour spec (address spaces, peering, routes, NSGs, gateways, limits). Prints a summary
    /// of what the topology holds and exits 0, or prints the first refusal — its ARM error code,
    /// message and the resource it names — and exits 1. Nothing is sent to a server.
    #[command(long_about)]
    Validate {
        #[command(flatten)]
        common: Common,
    },
    /// Effective routes of a NIC (or of a VM's primary NIC).
    Routes {
        #[command(flatten)]
        common: Common,
        /// NIC or VM name, or a full resource id.
        #[arg(long)]
        nic: String,
    },
    /// Effective security rules of a NIC (or of a VM's primary NIC).
    Rules {
        #[command(flatten)]
        common: Common,
        /// NIC or VM name, or a full resource id.
        #[arg(long)]
        nic: String,
    },
    /// The next hop of a VM's traffic to an address.
    NextHop {
        #[command(flatten)]
        common: Common,
        /// VM name or id.
        #[arg(long)]
        vm: String,
        /// Destination address.
        #[arg(long)]
        to: IpAddr,
        /// Source address (default: the VM's primary address).
        #[arg(long)]
        from: Option<IpAddr>,
    },
    /// Whether NSGs allow a flow at a VM, and by which rule (IP flow verify).
    Flow {
        #[command(flatten)]
        common: Common,
        /// VM name or id.
        #[arg(long)]
        vm: String,
        /// Direction as seen by the VM.
        #[arg(long, value_enum)]
        direction: DirArg,
        /// Protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: FlowProto,
        /// Local address and port of the VM, e.g. 10.1.0.4:22.
        #[arg(long)]
        local: SocketAddr,
        /// Remote address and port.
        #[arg(long)]
        remote: SocketAddr,
    },
    /// Can a VM reach another VM or an address; if not, at which hop and why (connectivity check).
    Check {
        #[command(flatten)]
        common: Common,
        /// Source VM.
        #[arg(long)]
        from: String,
        /// Destination VM, IP, VM:PORT or IP:PORT.
        #[arg(long)]
        to: String,
        /// Protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: CheckProto,
        /// Also send real probes from the source VM through the switch (asks the running
        /// server, whose agent runs the VM): the probes' result and latency beside the walk of
        /// the programs, and their disagreement reported as an issue.
        #[arg(long)]
        live: bool,
    },
    /// Print a topology as ARM JSON (`{"resources": [...]}`, each resource as GET returns it).
    Export {
        /// Topology file: YAML (see README) or ARM JSON.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// Send a topology file to the running server through the ARM API.
    Apply {
        /// Topology file: YAML (see README) or ARM JSON.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Put every resource of the file into this subscription (an export from elsewhere);
        /// without it, subscriptions the file names are made when missing.
        #[arg(long)]
        subscription: Option<String>,
        /// The server's credentials file (written by `tessera serve`).
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
    },
    /// Run the ARM-compatible API (HTTPS) on a durable store in a data directory.
    Serve {
        /// Data directory: store, certificates, credentials.
        #[arg(long, default_value = ".tessera")]
        data_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Keep the state in memory only.
        #[arg(long)]
        memory: bool,
        /// Keep the state on an etcd cluster (client endpoints, `host:port,host:port,…`),
        /// shared with the other servers started on it.
        #[arg(long, value_delimiter = ',', conflicts_with = "memory")]
        etcd: Vec<String>,
        /// The prefix of this deployment's keys in etcd.
        #[arg(long, default_value = "tessera")]
        etcd_namespace: String,
        /// With --etcd: this server's name among the others (default: host name and address).
        #[arg(long)]
        server_name: Option<String>,
        /// With --etcd: seconds of the leader's lease (a dead leader is replaced within it).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=600))]
        leader_lease: u64,
        /// Seconds clients wait before polling an operation (`Retry-After`; 0 = the client's own interval).
        #[arg(long, default_value_t = 1)]
        retry_after: u32,
        /// Items per page of a list.
        #[arg(long, default_value_t = 100)]
        page_size: usize,
        /// Also run the agent of this host in the process (its ports become TAP devices).
        #[arg(long)]
        agent: Option<String>,
        /// With --agent: do not start a namespace VM behind each port.
        #[arg(long)]
        no_vms: bool,
        /// With --agent: userspace VMs instead of namespaces and TAP devices (no root needed).
        #[arg(long)]
        userspace: bool,
        /// With --agent: how it forwards.
        #[command(flatten)]
        forwarding: Forwarding,
        /// The prices peering usage is billed at (a price sheet as `tessera cost --prices`
        /// reads; default Azure's published prices).
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Serve metrics for Prometheus at http://ADDR/metrics (the API's requests, and the
        /// in-process agent's switch).
        #[arg(long)]
        metrics: Option<SocketAddr>,
        /// Networking limits other than Azure's defaults, as Azure raises some on request (a
        /// JSON object of the ones changed, e.g. `{"peeringsPerVnet": 1000}`).
        #[arg(long)]
        limits: Option<PathBuf>,
    },
    /// Run the host agent of a host of its own: follow the server's feed, forward its ports.
    Agent {
        /// This host's name (ports of VMs tagged `tessera-host=NAME`).
        #[arg(long)]
        host: String,
        /// The server's credentials file.
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
        /// Another controller on the same etcd store (https://HOST:PORT), tried in turn when
        /// the one talked to stops answering (repeat for each).
        #[arg(long = "controller", value_parser = parse_controller)]
        controllers: Vec<String>,
        /// The underlay address to bind for VXLAN to the other hosts.
        #[arg(long)]
        underlay: Option<SocketAddr>,
        /// Where to write the status file.
        #[arg(long, default_value = "agent.json")]
        status: PathBuf,
        /// Do not start a namespace VM behind each port.
        #[arg(long)]
        no_vms: bool,
        /// Run the host's ports and underlay inside this network namespace (several hosts on one machine).
        #[arg(long)]
        netns: Option<String>,
        /// Another host: NAME=UNDERLAY-ADDRESS (repeat for each).
        #[arg(long = "peer", value_parser = parse_peer)]
        peers: Vec<(String, IpAddr)>,
        /// Userspace VMs instead of TAP ports and namespaces (no root needed).
        #[arg(long)]
        userspace: bool,
        #[command(flatten)]
        forwarding: Forwarding,
        /// Serve the switch's counters for Prometheus at http://ADDR/metrics.
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Start the control plane and a host agent, apply a topology, and start its VMs (namespaces as root, else userspace).
    Up {
        /// Topology file: YAML (see README) or ARM JSON.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Data directory of the lab.
        #[arg(long, default_value = ".tessera")]
        data_dir: PathBuf,
        /// Address of the API.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// Userspace VMs instead of namespace VMs (the default without root).
        #[arg(long)]
        userspace: bool,
        #[command(flatten)]
        forwarding: Forwarding,
    },
    /// Hub and spoke with real packets, step by step (root): peering states, pings, an NSG, service chaining.
    Demo {
        /// Data directory of the demo's lab.
        #[arg(long, default_value = ".tessera-demo")]
        data_dir: PathBuf,
        /// Address of the API.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
    },
    /// Sign in as a service principal of a tenant; the token is kept in a file (like `az login`).
    Login {
        /// The principal's client id.
        #[arg(long)]
        client_id: String,
        /// Its secret.
        #[arg(long, env = "TESSERA_CLIENT_SECRET")]
        secret: String,
        /// The tenant to sign in to (its home, or one it is a guest in).
        #[arg(long)]
        tenant: String,
        /// The default subscription (else the first it can see).
        #[arg(long)]
        subscription: Option<String>,
        /// The server's credentials file (for its address and CA).
        #[arg(long, default_value = ".tessera/credentials.json")]
        server: PathBuf,
        /// Where to keep the sign-in (pass it as --credentials to other commands).
        #[arg(long, default_value = ".tessera/login.json")]
        out: PathBuf,
    },
    /// Service principals (Tessera's directory).
    Principal {
        #[command(subcommand)]
        command: PrincipalCommand,
    },
    /// Role assignments (Microsoft.Authorization).
    Role {
        #[command(subcommand)]
        command: RoleCommand,
    },
    /// Stop what `tessera up` started and remove its VMs (other labs go on; the logs stay).
    Down {
        /// Data directory of the lab.
        #[arg(long, default_value = ".tessera")]
        data_dir: PathBuf,
        /// Also remove every namespace and port any lab left on this machine.
        #[arg(long)]
        all: bool,
    },
    /// Run a command inside a VM started by `tessera up`.
    Exec {
        /// Data directory of the lab.
        #[arg(long, default_value = ".tessera")]
        data_dir: PathBuf,
        /// The VM.
        vm: String,
        /// The command and its arguments (after --).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// What a traffic matrix would cost a month on peerings (what-if): each flow walked as the
    /// data plane forwards it, every peering crossing billed on both sides, beside the same
    /// traffic on direct peerings.
    Cost {
        #[command(flatten)]
        common: Common,
        /// The traffic: YAML or JSON `flows: [{from: VM, to: VM or address, gbPerMonth: N,
        /// port: 443}]`.
        #[arg(long)]
        traffic: PathBuf,
        /// A price sheet replacing Azure's published prices (YAML or JSON: `currency`, and
        /// `{ingress, egress}` per GB for `intraRegion`, `zone1`, `zone2`, `zone3`, `usGov`, `china`).
        #[arg(long)]
        prices: Option<PathBuf>,
    },
    /// What the server metered on peerings, per link and meter, with the cost (Azure's usage
    /// details, summed).
    Usage {
        /// The server's credentials file (written by `tessera serve`).
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
        /// One subscription (default: every subscription the credentials see).
        #[arg(long)]
        subscription: Option<String>,
        /// Hours starting at or after this date or time (YYYY-MM-DD or RFC 3339, UTC); without
        /// --start and --end, the current month.
        #[arg(long)]
        start: Option<String>,
        /// Hours starting before this date or time.
        #[arg(long)]
        end: Option<String>,
        /// Output format.
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: usage::UsageFormat,
    },
    /// Reachability of every VM pair for one protocol and port.
    Matrix {
        #[command(flatten)]
        common: Common,
        /// Destination port.
        #[arg(long, default_value_t = 22)]
        port: u16,
        /// Protocol.
        #[arg(long, value_enum, default_value = "tcp")]
        proto: CheckProto,
    },
}

#[derive(Subcommand, Debug)]
enum PrincipalCommand {
    /// A new service principal with a new secret (shown once).
    Create {
        /// Its home tenant.
        #[arg(long)]
        tenant: String,
        /// A tenant it is also a guest in (repeat for each).
        #[arg(long = "guest-of")]
        guest_of: Vec<String>,
        /// Display name.
        #[arg(long, default_value = "tessera-principal")]
        name: String,
        /// Credentials of a caller allowed to make principals.
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum RoleCommand {
    /// Give a principal a role (Owner, Contributor, Reader, Network Contributor, a custom role's
    /// name, or a role definition GUID) at a scope.
    Assign {
        /// The principal's client id.
        #[arg(long)]
        principal: String,
        /// The role.
        #[arg(long)]
        role: String,
        /// The scope: /subscriptions/…, a resource group, or a resource id.
        #[arg(long)]
        scope: String,
        /// Credentials of a caller allowed to assign roles there.
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
    },
    /// The role assignments at, above and below a scope.
    List {
        /// The scope.
        #[arg(long)]
        scope: String,
        /// Credentials of the caller.
        #[arg(long, env = "TESSERA_CREDENTIALS", default_value = ".tessera/credentials.json")]
        credentials: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(t) = &e.target {
                eprintln!("  target: {t}");
            }
            ExitCode::from(2)
        }
    }
}

/// Every `/subscriptions/{id}` of a file's text with `to` as the id.
fn map_subscriptions(text: &str, to: &str) -> Result<String, ArmError> {
    if to.is_empty() || !to.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ArmError::bad_request("InvalidSubscriptionId", format!("'{to}' is not a subscription id.")));
    }
    const KEY: &str = "/subscriptions/";
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(found) = lower[at..].find(KEY) {
        let start = at + found + KEY.len();
        out.push_str(&text[at..start]);
        let end =
            text[start..].find(|c: char| c == '/' || c == '"' || c.is_whitespace()).map_or(text.len(), |e| start + e);
        out.push_str(to);
        at = end;
    }
    out.push_str(&text[at..]);
    Ok(out)
}

fn parse_peer(s: &str) -> Result<(String, IpAddr), String> {
    let (name, addr) = s.split_once('=').ok_or("expected NAME=ADDRESS")?;
    Ok((name.to_string(), addr.parse().map_err(|e| format!("{addr}: {e}"))?))
}

/// A controller's base URL: https, a host, no path.
fn parse_controller(s: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| format!("{s}: {e}"))?;
    if url.scheme() != "https" || url.host().is_none() || !url.path().trim_end_matches('/').is_empty() {
        return Err(format!("{s}: expected https://HOST:PORT"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn read(file: &std::path::Path) -> Result<String, ArmError> {
    std::fs::read_to_string(file)
        .map_err(|e| ArmError::bad_request("FileNotReadable", format!("cannot read {}: {e}", file.display())))
}

/// Reads `serve --limits`: Azure's defaults, with the limits a JSON object names changed; a name
/// that is not a limit, or a value that is not a count, is refused.
fn read_limits(file: &std::path::Path) -> Result<Limits, ArmError> {
    let bad = |m: String| ArmError::bad_request("InvalidLimits", format!("{}: {m}", file.display()));
    let given: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&read(file)?).map_err(|e| bad(format!("not a JSON object: {e}")))?;
    let mut all = serde_json::to_value(Limits::default()).map_err(|e| bad(e.to_string()))?;
    let names: Vec<String> =
        all.as_object().into_iter().flatten().filter(|(_, v)| v.is_u64()).map(|(k, _)| k.clone()).collect();
    for (k, v) in given {
        match all.get_mut(&k) {
            Some(slot) if slot.is_u64() && v.as_u64().is_some_and(|n| n > 0) => *slot = v,
            Some(slot) if slot.is_u64() => return Err(bad(format!("'{k}' must be a whole number above 0"))),
            _ => return Err(bad(format!("'{k}' is not a limit that can be set; those are {}", names.join(", ")))),
        }
    }
    serde_json::from_value(all).map_err(|e| bad(e.to_string()))
}

fn open_file(file: &std::path::Path) -> Result<Engine, ArmError> {
    let text = read(file)?;
    load::load(&text, Format::detect(&file.to_string_lossy(), &text), Limits::default())
}

fn required(common: &Common) -> Result<&std::path::Path, ArmError> {
    common.file.as_deref().ok_or_else(|| ArmError::bad_request("FileRequired", "this command needs -f FILE"))
}

fn print_json(v: &Value) {
    crate::emit!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub(crate) fn proto_of(p: CheckProto) -> (Protocol, &'static str, u16) {
    match p {
        CheckProto::Tcp => (Protocol::Tcp, "Tcp", 0),
        CheckProto::Udp => (Protocol::Udp, "Udp", 0),
        CheckProto::Icmp => (Protocol::Icmp, "Icmp", 0),
        CheckProto::Http => (Protocol::Tcp, "Http", 80),
        CheckProto::Https => (Protocol::Tcp, "Https", 443),
    }
}

fn run(command: Command) -> Result<ExitCode, ArmError> {
    match command {
        Command::Apply { file, subscription, credentials } => {
            let text = read(&file)?;
            let text = match &subscription {
                Some(to) => map_subscriptions(&text, to)?,
                None => text,
            };
            let resources = load::parse(&text, Format::detect(&file.to_string_lossy(), &text))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ArmError::with_status(500, "RuntimeFailed", e.to_string()))?;
            let written = rt.block_on(async {
                let remote = remote::Remote::connect(&credentials).await?;
                remote.apply(resources).await
            })?;
            crate::emit!("applied {written} resources from {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Up { file, data_dir, listen, userspace, forwarding } => {
            lab::up(&file, &data_dir, listen, userspace, forwarding)
        }
        Command::Down { data_dir, all } => lab::down(&data_dir, all),
        Command::Login { client_id, secret, tenant, subscription, server, out } => {
            access::login(&server, &tenant, &client_id, &secret, subscription.as_deref(), &out)
        }
        Command::Principal { command: PrincipalCommand::Create { tenant, guest_of, name, credentials } } => {
            access::create_principal(&credentials, &tenant, &guest_of, &name)
        }
        Command::Role { command: RoleCommand::Assign { principal, role, scope, credentials } } => {
            access::assign(&credentials, &principal, &role, &scope)
        }
        Command::Role { command: RoleCommand::List { scope, credentials } } => access::list(&credentials, &scope),
        Command::Demo { data_dir, listen } => demo::run(&data_dir, listen),
        Command::Exec { data_dir, vm, command } => lab::exec(&data_dir, &vm, &command),
        Command::Agent {
            host,
            credentials,
            controllers,
            underlay,
            status,
            no_vms,
            netns,
            peers,
            userspace,
            forwarding,
            metrics,
        } => serve::agent(
            metrics,
            tessera_agent::AgentConfig {
                credentials,
                controllers,
                host,
                underlay,
                status,
                namespace_vms: !no_vms && !userspace,
                userspace_vms: userspace,
                netns,
                peers,
                kernel_fast_path: forwarding.kernel_fast_path(),
                workers: forwarding.workers(),
                flow_limits: forwarding.flow_limits(),
                metrics: None,
            },
        ),
        Command::Serve {
            data_dir,
            listen,
            memory,
            etcd,
            etcd_namespace,
            server_name,
            leader_lease,
            retry_after,
            page_size,
            agent,
            no_vms,
            userspace,
            forwarding,
            prices,
            metrics,
            limits,
        } => {
            let mut config = tessera_api::ServeConfig::new(data_dir);
            config.metrics = metrics;
            if let Some(p) = &limits {
                config.limits = read_limits(p)?;
            }
            if let Some(p) = &prices {
                config.settings.prices = cost::read_prices(p)?;
            }
            config.listen = listen;
            config.cluster.name = server_name;
            config.cluster.lease = std::time::Duration::from_secs(leader_lease);
            config.store = match (memory, etcd.is_empty()) {
                (true, _) => tessera_api::StoreKind::Memory,
                (false, false) => tessera_api::StoreKind::Etcd { endpoints: etcd, namespace: etcd_namespace },
                (false, true) => tessera_api::StoreKind::Redb,
            };
            config.settings.retry_after = retry_after;
            config.settings.page_size = page_size;
            let vms = match (userspace, no_vms) {
                (true, _) => serve::Vms::Userspace,
                (false, true) => serve::Vms::None,
                (false, false) => serve::Vms::Namespaces,
            };
            serve::run(config, agent.map(|h| (h, vms)), forwarding)
        }
        Command::Validate { common } => {
            let file = required(&common)?;
            let text = read(file)?;
            let format = Format::detect(&file.to_string_lossy(), &text);
            match load::load(&text, format, Limits::default()) {
                Ok(engine) => {
                    let summary = render::summary(&engine);
                    match common.output {
                        Output::Json => print_json(&summary),
                        Output::Table => render::print_summary(&summary),
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    match common.output {
                        Output::Json => print_json(&e.to_body()),
                        Output::Table => {
                            crate::emit!("invalid: {}", e.code);
                            crate::emit!("  {}", e.message);
                            if let Some(t) = &e.target {
                                crate::emit!("  target: {t}");
                            }
                        }
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Routes { common, nic } => {
            let t = Target::open(common.file.as_deref(), &common.credentials)?;
            let id = resolve::resolve_nic(&t.engine, &nic)?;
            let body = t.routes(&id)?;
            match common.output {
                Output::Json => print_json(&body),
                Output::Table => render::routes(&body),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules { common, nic } => {
            let t = Target::open(common.file.as_deref(), &common.credentials)?;
            let id = resolve::resolve_nic(&t.engine, &nic)?;
            let body = t.rules(&id)?;
            match common.output {
                Output::Json => print_json(&body),
                Output::Table => render::rules(&body),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::NextHop { common, vm, to, from } => {
            let t = Target::open(common.file.as_deref(), &common.credentials)?;
            let vm = resolve::resolve(&t.engine, Kind::VirtualMachine, &vm)?;
            let src = match from {
                Some(ip) => ip,
                None => watcher::vm_address(&t.engine, &vm)?,
            };
            let params = watcher::NextHopParameters {
                target_resource_id: vm,
                source_ip_address: src.to_string(),
                destination_ip_address: to.to_string(),
                target_nic_resource_id: None,
            };
            let body = t.next_hop(&params)?;
            match common.output {
                Output::Json => print_json(&body),
                Output::Table => render::key_values(&body),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Flow { common, vm, direction, proto, local, remote } => {
            let t = Target::open(common.file.as_deref(), &common.credentials)?;
            let vm = resolve::resolve(&t.engine, Kind::VirtualMachine, &vm)?;
            let params = watcher::IpFlowParameters {
                target_resource_id: vm,
                direction: match direction {
                    DirArg::In => Direction::Inbound,
                    DirArg::Out => Direction::Outbound,
                },
                protocol: match proto {
                    FlowProto::Tcp => "TCP".into(),
                    FlowProto::Udp => "UDP".into(),
                },
                local_port: local.port().to_string(),
                remote_port: remote.port().to_string(),
                local_ip_address: local.ip().to_string(),
                remote_ip_address: remote.ip().to_string(),
                target_nic_resource_id: None,
            };
            let body = t.ip_flow_verify(&params)?;
            match common.output {
                Output::Json => print_json(&body),
                Output::Table => render::key_values(&body),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { common, from, to, proto, live } => check::run(
            check::Question {
                file: common.file.as_deref(),
                credentials: &common.credentials,
                json: common.output == Output::Json,
            },
            (&from, &to, proto),
            live,
        ),
        Command::Export { file } => {
            let engine = open_file(&file)?;
            print_json(&load::export(&engine));
            Ok(ExitCode::SUCCESS)
        }
        Command::Cost { common, traffic, prices } => cost::run(
            cost::Question {
                file: common.file.as_deref(),
                credentials: &common.credentials,
                json: common.output == Output::Json,
            },
            &traffic,
            prices.as_deref(),
        ),
        Command::Usage { credentials, subscription, start, end, output } => {
            usage::run(&credentials, subscription, start, end, output)
        }
        Command::Matrix { common, port, proto } => {
            let t = Target::open(common.file.as_deref(), &common.credentials)?;
            let (p, _, _) = proto_of(proto);
            let m = matrix::matrix(&t.engine, p, port, None);
            match common.output {
                Output::Json => print_json(&serde_json::to_value(&m).unwrap_or_default()),
                Output::Table => render::matrix(&m),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
