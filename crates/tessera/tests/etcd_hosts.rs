//! Three hosts and two controllers on one etcd store (issue 18 point 4; needs root, as CI
//! runs): a 3-member etcd cluster on loopback, two `tessera serve --etcd`, and three `tessera
//! agent`s in host namespaces joined by an underlay bridge (VXLAN). h1 follows server A, h2
//! server B, h3 reaches both only through a proxy the test can cut. The VMs talk as the
//! peerings allow (P1, and P2: not transitive). Then:
//! - h3 cut off from every controller: its VMs keep forwarding with the programs held; a VM
//!   placed on it meanwhile is not run; when the proxy is back it catches up and runs it;
//! - server A killed (`kill -9`): h1 moves to B (its `--controller`) and runs what B is told;
//! - everything stopped (agents, servers, every etcd member) and started again: the same
//!   documents at the same revision, and the same VMs reaching the same VMs.

#![cfg(feature = "etcd")]

mod lab;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab::{Lab, TESSERA, within};
use serde_json::Value;
use tessera_store::etcd_cluster::Cluster;

const HOSTS: [(&str, Ipv4Addr); 3] =
    [("h1", Ipv4Addr::new(10, 98, 0, 1)), ("h2", Ipv4Addr::new(10, 98, 0, 2)), ("h3", Ipv4Addr::new(10, 98, 0, 3))];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port()
}

/// A TCP proxy on loopback to one controller that the test can cut (every connection closed,
/// new ones closed at once) and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (open, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (o, s, c) = (open.clone(), stop.clone(), conns.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                // Checked and registered under the lock `cut` takes: a connection accepted as the
                // proxy is cut is either refused or closed by the cut, never left open.
                let Ok(mut held) = c.lock() else { continue };
                if !o.load(Ordering::Relaxed) {
                    continue; // dropped: closed at once
                }
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(to) else { continue };
                let pipes = (client.try_clone(), server.try_clone());
                let (Ok(client2), Ok(server2)) = pipes else { continue };
                held.extend(client.try_clone());
                held.extend(server.try_clone());
                drop(held);
                std::thread::spawn(move || copy(client, server));
                std::thread::spawn(move || copy(server2, client2));
            }
        });
        Proxy { port, open, stop, conns }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn cut(&self) {
        let mut conns = self.conns.lock().expect("connections");
        self.open.store(false, Ordering::Relaxed);
        for c in conns.drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A `tessera serve --etcd` on a data directory and port of its own.
struct Controller {
    data: PathBuf,
    port: u16,
    process: Option<Child>,
}

impl Controller {
    fn start(&mut self, cluster: &Cluster) {
        std::fs::create_dir_all(&self.data).expect("data dir");
        let child = Command::new(TESSERA)
            .args(["serve", "--data-dir"])
            .arg(&self.data)
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--etcd", &cluster.clients.join(",")])
            .args(["--leader-lease", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tessera serve");
        self.process = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.credentials().exists() || TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tessera serve --etcd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }

    fn credentials(&self) -> PathBuf {
        self.data.join("credentials.json")
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `tessera apply` of YAML text through this controller.
    fn apply(&self, yaml: &str) {
        let file = self.data.join("apply.yaml");
        std::fs::write(&file, yaml).expect("topology file");
        let out = Command::new(TESSERA)
            .args(["apply", "-f"])
            .arg(&file)
            .arg("--credentials")
            .arg(self.credentials())
            .output()
            .expect("tessera apply");
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The feed's snapshot for a host: every document (with its etag) and the revision.
    fn snapshot(&self) -> (u64, Vec<Value>) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let s = tessera_agent::session::Session::sign_in(&self.credentials()).await.expect("sign in");
            let url = format!("{}/tessera/feed/h1?api-version=2024-05-01", s.endpoint);
            let v: Value =
                s.client.get(url).bearer_auth(&s.token).send().await.expect("feed").json().await.expect("json");
            let mut docs = v["documents"].as_array().cloned().unwrap_or_default();
            docs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
            (v["revision"].as_u64().expect("revision"), docs)
        })
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status an agent wrote: the VMs it runs and the revision it holds.
fn status(lab: &Lab, host: &str) -> (usize, u64) {
    let path = lab.data().join(format!("agent-{host}.json"));
    let v: Value = std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    (v["vms"].as_array().map_or(0, Vec::len), v["revision"].as_u64().unwrap_or(0))
}

/// Starts the three agents: h1 on A (then B), h2 on B (then A), h3 on the proxies only.
fn start_agents(lab: &mut Lab, a: &Controller, b: &Controller, proxies: &[Proxy; 2]) {
    // h3's credentials: A's principal and CA (one CA for every server), A's proxy as endpoint.
    let mut creds: Value =
        serde_json::from_slice(&std::fs::read(a.credentials()).expect("credentials")).expect("credentials JSON");
    creds["endpoint"] = Value::from(proxies[0].url());
    let h3_creds = lab.dir.path().join("h3-credentials.json");
    std::fs::write(&h3_creds, creds.to_string()).expect("h3 credentials");
    for (name, addr) in HOSTS {
        let mut args =
            vec!["--netns".to_string(), format!("tsr-e-{name}"), "--underlay".into(), format!("{addr}:4789")];
        for (peer, peer_addr) in HOSTS.iter().filter(|(p, _)| *p != name) {
            args.extend(["--peer".to_string(), format!("{peer}={peer_addr}")]);
        }
        let (credentials, other) = match name {
            "h1" => (a.credentials(), b.url()),
            "h2" => (b.credentials(), a.url()),
            _ => (h3_creds.clone(), proxies[1].url()),
        };
        args.extend(["--controller".to_string(), other]);
        lab.start_agent_on(name, &args, &credentials);
    }
}

/// Who reaches whom (hub and spokes; the spokes not each other).
fn reachability(lab: &Lab) -> Vec<(&'static str, &'static str, bool)> {
    let pairs = [
        ("e-hub", "10.31.0.4"),
        ("e-hub", "10.32.0.4"),
        ("e-spoke1", "10.30.0.4"),
        ("e-spoke2", "10.30.0.4"),
        ("e-spoke1", "10.32.0.4"),
        ("e-spoke2", "10.31.0.4"),
    ];
    pairs.into_iter().map(|(from, to)| (from, to, lab.ping(from, to))).collect()
}

const LATE_VM: &str = "\n  - { name: e-late, subnet: spoke2/default, ip: 10.32.0.5, host: h3 }";
const MOVED_VM: &str = "\n  - { name: e-moved, subnet: hub/default, ip: 10.30.0.5, host: h1 }";

#[test]
fn agents_on_three_hosts_follow_any_controller_ride_out_a_cut_and_a_restart() {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let etcd_dir = tempfile::tempdir().expect("etcd dir");
    let mut cluster = Cluster::start(etcd_dir.path());
    let mut a = Controller { data: lab.data(), port: free_port(), process: None };
    let mut b = Controller { data: lab.dir.path().join("b"), port: free_port(), process: None };
    a.start(&cluster);
    b.start(&cluster);
    let proxies = [Proxy::start(([127, 0, 0, 1], a.port).into()), Proxy::start(([127, 0, 0, 1], b.port).into())];

    lab.underlay("tsr-eul", "tsr-e-", &HOSTS);
    start_agents(&mut lab, &a, &b, &proxies);
    let topology =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/three-hosts.yaml"))
            .expect("topology");
    let with_vm = |extra: &str| topology.replacen("\npeerings:", &format!("{extra}\n\npeerings:"), 1);
    a.apply(&topology);
    for h in ["h1", "h2", "h3"] {
        lab.wait_for_vms(h, 1);
    }
    // P1 across three hosts, each agent on its own controller; P2: the spokes do not reach
    // each other through the hub.
    let expected = vec![
        ("e-hub", "10.31.0.4", true),
        ("e-hub", "10.32.0.4", true),
        ("e-spoke1", "10.30.0.4", true),
        ("e-spoke2", "10.30.0.4", true),
        ("e-spoke1", "10.32.0.4", false),
        ("e-spoke2", "10.31.0.4", false),
    ];
    assert_eq!(reachability(&lab), expected, "hub and spokes over three hosts");

    // h3 cut off from both controllers: its VMs forward with the programs held.
    for p in &proxies {
        p.cut();
    }
    let (_, held) = status(&lab, "h3");
    b.apply(&with_vm(LATE_VM));
    assert!(within(10, || status(&lab, "h1").1 > held), "h1 (on A) learns B's change");
    assert!(lab.ping("e-hub", "10.32.0.4"), "h3's VM still reached while it is cut off");
    assert!(lab.ping("e-spoke2", "10.30.0.4"), "h3's VM still reaches the hub while cut off");
    assert_eq!(status(&lab, "h3"), (1, held), "h3 cannot learn the new VM while cut off");
    // Back: it catches up from the revision it held.
    for p in &proxies {
        p.restore();
    }
    lab.wait_for_vms("h3", 2);
    assert!(lab.ping("e-hub", "10.32.0.5"), "the VM placed while h3 was cut off runs and is reached");

    // Server A killed: h1 moves to B and runs what B is told.
    a.kill();
    b.apply(&with_vm(&format!("{LATE_VM}{MOVED_VM}")));
    lab.wait_for_vms("h1", 2);
    assert!(lab.ping("e-spoke1", "10.30.0.5"), "h1's new VM, learned from B");
    a.start(&cluster);

    // Everything stopped and started again: the same documents, the same reachability.
    let before = b.snapshot();
    let expected = reachability(&lab);
    for p in &mut lab.processes {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(p.id()).expect("pid")),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = p.wait();
    }
    lab.processes.clear();
    a.kill();
    b.kill();
    cluster.restart();
    a.start(&cluster);
    b.start(&cluster);
    assert_eq!(a.snapshot(), before, "the state after a restart of everything is the state before");
    start_agents(&mut lab, &a, &b, &proxies);
    for (h, n) in [("h1", 2), ("h2", 1), ("h3", 2)] {
        lab.wait_for_vms(h, n);
    }
    assert_eq!(reachability(&lab), expected, "the same VMs reach the same VMs after the restart");
    drop(proxies);
    drop(cluster);
}
