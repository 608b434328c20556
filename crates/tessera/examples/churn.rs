//! Peering churn at scale (issue 18): how long from an acknowledged peering change until every
//! agent runs programs that include it.
//!
//! The estate: a hub VNet and `--spokes` spoke VNets of `--vms`/spokes userspace VMs each,
//! every spoke peered both ways with the hub, the spokes' VMs spread over three agents
//! (`tessera agent --userspace`, VXLAN on loopback addresses). With `--etcd` a 3-member etcd
//! cluster on loopback and two `tessera serve --etcd` (h1 and h3 follow A, h2 follows B; the
//! writes go to A, or with `--both` alternate between A and B); without, one `tessera serve` on the embedded store (the
//! single-machine figure). Then `--rate` link changes a second for `--seconds`, spoke after
//! spoke: each round changes one link of each spoke (its link deleted, the hub's, the hub's made
//! again, its own: four rounds bring the peering back to Connected). After each acknowledged change the
//! server's `feedRevision` (`GET /tessera/cluster`) is read: the change is in it or before it.
//! The agents' status files are read every 2 ms for the revision they hold; a change's latency
//! is from its acknowledgement to the moment the last agent held that revision.
//!
//! ```sh
//! cargo build --release -p tessera --features etcd --examples --bins
//! target/release/examples/churn --etcd --vms 10000 --rate 100 --seconds 30
//! target/release/examples/churn --etcd --both --vms 10000 --rate 100 --seconds 30
//! target/release/examples/churn --vms 10000 --rate 100 --seconds 30
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_agent::session::Session;
use tessera_store::etcd_cluster::Cluster;

type Error = Box<dyn std::error::Error + Send + Sync>;

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
const NET: &str = "2024-05-01";

/// The revisions an agent went through, and when it first held each.
type Held = Vec<(u64, Instant)>;

/// Processes killed when the run ends, however it ends.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Options {
    etcd: bool,
    both: bool,
    vms: usize,
    spokes: usize,
    rate: u64,
    seconds: u64,
}

fn options() -> Result<Options, Error> {
    let mut o = Options { etcd: false, both: false, vms: 10_000, spokes: 100, rate: 100, seconds: 30 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--etcd" => o.etcd = true,
            "--both" => o.both = true,
            "--vms" => o.vms = value()?.parse()?,
            "--spokes" => o.spokes = value()?.parse()?,
            "--rate" => o.rate = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    if o.spokes == 0 || o.spokes > 250 || o.vms / o.spokes > 1000 || o.rate == 0 {
        return Err("1..=250 spokes of at most 1,000 VMs each, a rate above 0".into());
    }
    Ok(o)
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `tessera serve` on `data` (on the cluster when there is one); its session once it answers.
async fn serve(bin: &Path, data: &Path, cluster: Option<&Cluster>, children: &mut Children) -> Result<Session, Error> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--data-dir"]).arg(data).args(["--listen", &format!("127.0.0.1:{port}")]);
    if let Some(c) = cluster {
        cmd.args(["--etcd", &c.clients.join(",")]);
    }
    children.0.push(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(s) = Session::sign_in(&data.join("credentials.json")).await {
            return Ok(s);
        }
        if Instant::now() > deadline {
            return Err("tessera serve did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put(s: &Session, path: &str, body: &Value) -> Result<u16, Error> {
    let url = format!("{}{path}?api-version={NET}", s.endpoint);
    let r = s.client.put(url).bearer_auth(&s.token).json(body).send().await?;
    Ok(r.status().as_u16())
}

async fn delete(s: &Session, path: &str) -> Result<u16, Error> {
    let url = format!("{}{path}?api-version={NET}", s.endpoint);
    Ok(s.client.delete(url).bearer_auth(&s.token).send().await?.status().as_u16())
}

async fn feed_revision(s: &Session) -> Result<u64, Error> {
    let url = format!("{}/tessera/cluster", s.endpoint);
    let v: Value = s.client.get(url).bearer_auth(&s.token).send().await?.json().await?;
    v["feedRevision"].as_u64().ok_or_else(|| format!("no feedRevision: {v}").into())
}

/// Runs `calls` with at most `width` at once; fails on the first refused one.
async fn in_parallel(s: &Session, calls: Vec<(String, Value)>, width: usize) -> Result<(), Error> {
    let mut set = tokio::task::JoinSet::new();
    for (path, body) in calls {
        while set.len() >= width {
            expect_created(set.join_next().await.ok_or("no task")??)?;
        }
        let s = s.clone();
        set.spawn(async move { put(&s, &path, &body).await.map(|code| (code, path)) });
    }
    while let Some(r) = set.join_next().await {
        expect_created(r?)?;
    }
    Ok(())
}

fn expect_created(r: Result<(u16, String), Error>) -> Result<(), Error> {
    let (code, path) = r?;
    if !matches!(code, 200 | 201) {
        return Err(format!("PUT {path}: {code}").into());
    }
    Ok(())
}

/// The estate: hub, spokes, NICs and VMs (spoke k's VMs on host k mod 3), both links of every
/// spoke's peering with the hub.
async fn build(s: &Session, o: &Options) -> Result<(), Error> {
    let sub = format!("/subscriptions/{}", s.subscription);
    let rg = format!("{sub}/resourceGroups/churn");
    let url = format!("{}{rg}?api-version=2022-12-01", s.endpoint);
    s.client.put(url).bearer_auth(&s.token).json(&json!({"location": "westeurope"})).send().await?;
    let net = format!("{rg}/providers/Microsoft.Network");
    let vnet = |name: &str, prefix: &str| {
        (
            format!("{net}/virtualNetworks/{name}"),
            json!({"location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [prefix]},
                   "subnets": [{"name": "default", "properties": {"addressPrefix": prefix}}]}}),
        )
    };
    let mut vnets = vec![vnet("hub", "10.0.0.0/16")];
    vnets.extend((1..=o.spokes).map(|k| vnet(&format!("spoke{k}"), &format!("10.{k}.0.0/16"))));
    in_parallel(s, vnets, 32).await?;
    let per_spoke = o.vms / o.spokes;
    let mut nics = Vec::new();
    let mut vms = Vec::new();
    for k in 1..=o.spokes {
        let subnet = format!("{net}/virtualNetworks/spoke{k}/subnets/default");
        for j in 0..per_spoke {
            let nic = format!("{net}/networkInterfaces/s{k}-n{j}");
            let ip = format!("10.{k}.{}.{}", j / 250, j % 250 + 4);
            nics.push((
                nic.clone(),
                json!({"location": "westeurope", "properties": {"ipConfigurations": [{"name": "ip", "properties": {
                    "subnet": {"id": subnet}, "privateIPAllocationMethod": "Static", "privateIPAddress": ip}}]}}),
            ));
            vms.push((
                format!("{rg}/providers/Microsoft.Compute/virtualMachines/s{k}-vm{j}"),
                json!({"location": "westeurope", "tags": {"tessera-host": HOSTS[k % 3]},
                       "properties": {"networkProfile": {"networkInterfaces": [{"id": nic}]}}}),
            ));
        }
    }
    in_parallel(s, nics, 32).await?;
    in_parallel(s, vms, 32).await?;
    let links =
        (1..=o.spokes).flat_map(|k| [link(&net, "hub", &format!("spoke{k}")), link(&net, &format!("spoke{k}"), "hub")]);
    in_parallel(s, links.collect(), 32).await
}

/// A peering link from VNet `from` to `to`: its path and body.
fn link(net: &str, from: &str, to: &str) -> (String, Value) {
    (
        format!("{net}/virtualNetworks/{from}/virtualNetworkPeerings/to-{to}"),
        json!({"properties": {"remoteVirtualNetwork": {"id": format!("{net}/virtualNetworks/{to}")},
               "allowVirtualNetworkAccess": true}}),
    )
}

/// The revision an agent's status file says it holds (`revision` sorts before `vms`, so the
/// first bytes of the file have it).
fn held(path: &Path) -> Option<u64> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    let rest = &text[text.find("\"revision\":")? + 11..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

fn running(path: &Path) -> usize {
    let v: Value = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    v["vms"].as_array().map_or(0, Vec::len)
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let o = options()?;
    let bin = std::env::current_exe()?.parent().and_then(Path::parent).ok_or("no target dir")?.join("tessera");
    let dir = tempfile::tempdir()?;
    let cluster = if o.etcd { Some(Cluster::start(&dir.path().join("etcd"))) } else { None };
    let mut children = Children::default();
    let started = Instant::now();
    let a = serve(&bin, &dir.path().join("a"), cluster.as_ref(), &mut children).await?;
    let b = match &cluster {
        Some(c) => serve(&bin, &dir.path().join("b"), Some(c), &mut children).await?,
        None => a.clone(),
    };
    build(&a, &o).await?;
    let built = started.elapsed();
    println!("estate: {} VMs in {} spokes, built through the API in {built:.1?}", o.vms, o.spokes);

    // The agents: h1 and h3 on A, h2 on B (all on A without etcd).
    let octet = 2 + free_port()? % 250;
    let mut statuses: Vec<PathBuf> = Vec::new();
    let mut agents = Vec::new();
    for (i, host) in HOSTS.iter().enumerate() {
        let (creds, other) = if i == 1 && o.etcd { (dir.path().join("b"), "a") } else { (dir.path().join("a"), "b") };
        let status = dir.path().join(format!("agent-{host}.json"));
        let mut cmd = Command::new(&bin);
        cmd.args(["agent", "--userspace", "--host", host, "--underlay", &format!("127.{octet}.0.{}:4789", i + 1)])
            .arg("--credentials")
            .arg(creds.join("credentials.json"))
            .arg("--status")
            .arg(&status);
        if o.etcd {
            let other: Value =
                serde_json::from_slice(&std::fs::read(dir.path().join(other).join("credentials.json"))?)?;
            cmd.args(["--controller", other["endpoint"].as_str().unwrap_or_default()]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        agents.push(child.id());
        children.0.push(child);
        statuses.push(status);
    }
    let per_host: Vec<usize> =
        (0..3).map(|h| (1..=o.spokes).filter(|k| k % 3 == h).count() * (o.vms / o.spokes)).collect();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(600);
    while (0..3).any(|i| running(&statuses[i]) != per_host[i]) {
        if Instant::now() > deadline {
            return Err("the agents never ran their VMs".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("agents running {per_host:?} VMs after {:.1?}", t.elapsed());
    let now = feed_revision(&a).await?;
    while statuses.iter().any(|s| held(s) < Some(now)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The watcher: when each agent first held each revision.
    let seen: Arc<Mutex<Vec<Held>>> = Arc::new(Mutex::new(vec![Vec::new(); 3]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (seen, stop, statuses) = (seen.clone(), stop.clone(), statuses.clone());
        std::thread::spawn(move || {
            let mut last = [0u64; 3];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, s) in statuses.iter().enumerate() {
                    if let Some(r) = held(s).filter(|r| *r > last[i]) {
                        last[i] = r;
                        if let Ok(mut seen) = seen.lock() {
                            seen[i].push((r, Instant::now()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // The churn, through A (or alternately A and B).
    let sub = format!("/subscriptions/{}", a.subscription);
    let net = format!("{sub}/resourceGroups/churn/providers/Microsoft.Network");
    let total = o.rate * o.seconds;
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = t0 + Duration::from_micros(i * 1_000_000 / o.rate);
        tokio::time::sleep_until(at.into()).await;
        let k = (i as usize % o.spokes) + 1;
        let round = i as usize / o.spokes;
        let s = if o.both && i % 2 == 1 { b.clone() } else { a.clone() };
        // A spoke's round: its link deleted, the hub's (now Disconnected) deleted, the hub's
        // made again (Initiated), its own made again (both Connected).
        let spoke = format!("spoke{k}");
        let (path, body) =
            if matches!(round % 4, 0 | 3) { link(&net, &spoke, "hub") } else { link(&net, "hub", &spoke) };
        set.spawn(async move {
            let code = if round % 4 < 2 { delete(&s, &path).await } else { put(&s, &path, &body).await };
            let acked = Instant::now();
            let code = code.unwrap_or(0);
            let revision = feed_revision(&s).await.unwrap_or(u64::MAX);
            (code, acked, revision)
        });
    }
    let mut changes = Vec::new();
    while let Some(r) = set.join_next().await {
        changes.push(r?);
    }
    let sent_for = t0.elapsed();
    let last = changes.iter().map(|c| c.2).filter(|r| *r != u64::MAX).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while statuses.iter().any(|s| held(s) < Some(last)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watcher.join();
    let seen = seen.lock().map_err(|_| "watcher")?.clone();

    let mut codes = std::collections::BTreeMap::new();
    for c in &changes {
        *codes.entry(c.0).or_insert(0usize) += 1;
    }
    println!("answers: {codes:?}");
    let refused = changes.iter().filter(|c| !matches!(c.0, 200..=202)).count();
    let mut latencies = Vec::new();
    let mut never = 0;
    for (_, acked, revision) in changes.iter().filter(|c| matches!(c.0, 200..=202)) {
        let at: Option<Vec<Instant>> =
            seen.iter().map(|agent| agent.iter().find(|(r, _)| r >= revision).map(|(_, t)| *t)).collect();
        match at.and_then(|times| times.into_iter().max()) {
            Some(t) => latencies.push(t.saturating_duration_since(*acked)),
            None => never += 1,
        }
    }
    latencies.sort();
    let rss: Vec<u64> = agents.iter().map(|pid| peak_rss_kib(*pid) / 1024).collect();
    println!(
        "store: {}; {} changes in {sent_for:.1?} ({:.0}/s), {refused} refused, {never} never programmed",
        match (o.etcd, o.both) {
            (true, true) => "etcd (3 members), 2 servers, writes to both",
            (true, false) => "etcd (3 members), 2 servers, writes to A",
            _ => "embedded (redb), 1 server",
        },
        changes.len(),
        changes.len() as f64 / sent_for.as_secs_f64()
    );
    println!(
        "acknowledged -> every agent programmed: p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, max {:.1?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "agents' peak RSS: {rss:?} MiB; revisions each agent went through: {:?}",
        seen.iter().map(Vec::len).collect::<Vec<_>>()
    );
    Ok(())
}
