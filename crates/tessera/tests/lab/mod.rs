//! Shared by the end-to-end tests: a lab of namespace VMs (brought up by `tessera up`, or by
//! hand for several hosts), and checks from inside the VMs — ping through `tessera exec`, TCP
//! from sockets opened inside the namespaces. Everything is removed when the guard drops, even
//! when a check fails.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_lab::Netns;

pub const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// A lab brought up in a temporary directory and always brought down, even when a check fails.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub stop: Arc<AtomicBool>,
    /// Processes to kill and namespaces and bridges to remove at the end (hand-made hosts).
    pub processes: Vec<std::process::Child>,
    pub hosts: Vec<Netns>,
    pub bridge: Option<tessera_lab::Bridge>,
}

impl Lab {
    /// A lab with nothing running yet, for userspace VMs (no privileges needed).
    pub fn unprivileged(dir: tempfile::TempDir) -> Lab {
        Lab { dir, stop: Arc::new(AtomicBool::new(false)), processes: Vec::new(), hosts: Vec::new(), bridge: None }
    }

    /// `tessera exec VM -- ARGS…`: whether it succeeded, and what it printed.
    pub fn exec(&self, vm: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(TESSERA)
            .arg("exec")
            .arg("--data-dir")
            .arg(self.data())
            .arg(vm)
            .arg("--")
            .args(args)
            .output()
            .expect("tessera exec");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    }

    /// A lab with nothing running yet.
    pub fn empty(dir: tempfile::TempDir) -> Lab {
        assert!(
            tessera_lab::privileged(),
            "namespace VMs need root: run these tests as root (CI does); the switch itself is tested without root \
             by tessera-dataplane's harness"
        );
        Lab { dir, stop: Arc::new(AtomicBool::new(false)), processes: Vec::new(), hosts: Vec::new(), bridge: None }
    }

    pub fn up(topology: &Path) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let lab = Lab::empty(dir);
        let out = Command::new(TESSERA)
            .args(["up", "-f"])
            .arg(topology)
            .arg("--data-dir")
            .arg(lab.data())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .output()
            .expect("run tessera up");
        assert!(
            out.status.success(),
            "tessera up failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    /// `tessera exec VM -- ping -c 1 ADDRESS` succeeds (up to three tries, one second each).
    pub fn ping(&self, vm: &str, to: &str) -> bool {
        let out = Command::new(TESSERA)
            .arg("exec")
            .arg("--data-dir")
            .arg(self.data())
            .args([vm, "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "-w", "2", to])
            .output()
            .expect("run tessera exec");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() || text.contains("packet loss"),
            "ping did not run: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.success()
    }

    /// The TTL of a ping's reply (to see a hop through an appliance).
    pub fn ping_ttl(&self, vm: &str, to: &str) -> Option<u32> {
        let out = Command::new(TESSERA)
            .arg("exec")
            .arg("--data-dir")
            .arg(self.data())
            .args([vm, "--", "ping", "-c", "1", "-W", "1", to])
            .output()
            .expect("run tessera exec");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ttl = text.split("ttl=").nth(1)?.split_whitespace().next()?;
        ttl.parse().ok()
    }

    /// A TCP server inside a VM, until the lab goes down: each connection goes to `handle` on a
    /// thread of its own.
    pub fn server(&self, vm: &str, port: u16, handle: fn(TcpStream)) {
        let ns = namespace(vm);
        let stop = self.stop.clone();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            Netns::open(&ns).expect("namespace").enter().expect("enter");
            let l = TcpListener::bind(("0.0.0.0", port)).expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            let _ = ready.send(());
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let _ = s.set_nonblocking(false);
                        std::thread::spawn(move || handle(s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        started.recv_timeout(Duration::from_secs(5)).expect("server started");
    }

    /// Echoes the first read of each connection.
    pub fn serve(&self, vm: &str, port: u16) {
        self.server(vm, port, |mut s| {
            let mut buf = [0u8; 64];
            if let Ok(n) = s.read(&mut buf) {
                let _ = s.write_all(&buf[..n]);
            }
        });
    }

    /// Reads until the client stops sending, then answers with the number of bytes read (8
    /// bytes, big-endian).
    pub fn sink(&self, vm: &str, port: u16) {
        self.server(vm, port, |mut s| {
            let mut buf = vec![0u8; 65536];
            let mut total: u64 = 0;
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            let _ = s.write_all(&total.to_be_bytes());
        });
    }

    /// Echoes every byte of each connection until it closes.
    pub fn echo_stream(&self, vm: &str, port: u16) {
        self.server(vm, port, |mut s| {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }

    /// A TCP connection from a VM that gets its bytes echoed back.
    pub fn tcp(&self, vm: &str, to: &str) -> bool {
        let ns = Netns::open(&namespace(vm)).expect("namespace");
        let to: SocketAddr = to.parse().expect("address");
        ns.run(|| {
            let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 5];
            s.write_all(b"hello").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"hello"
        })
        .expect("run in namespace")
    }

    /// Sends `bytes` over TCP from a VM to a sink; true when the sink counted all of them.
    pub fn bulk(&self, vm: &str, to: &str, bytes: usize) -> bool {
        let ns = Netns::open(&namespace(vm)).expect("namespace");
        let to: SocketAddr = to.parse().expect("address");
        ns.run(|| {
            let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(1)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
            let chunk = vec![0x5au8; 65536];
            let mut sent = 0;
            while sent < bytes {
                let n = chunk.len().min(bytes - sent);
                if s.write_all(&chunk[..n]).is_err() {
                    return false;
                }
                sent += n;
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut count = [0u8; 8];
            s.read_exact(&mut count).is_ok() && u64::from_be_bytes(count) == bytes as u64
        })
        .expect("run in namespace")
    }

    /// Starts `tessera serve` on the lab's data directory (no agent); waits for its credentials.
    pub fn start_server(&mut self, port: u16) {
        self.start_server_with(port, &[]);
    }

    /// `start_server` with extra arguments.
    pub fn start_server_with(&mut self, port: u16, extra: &[String]) {
        let data = self.data();
        std::fs::create_dir_all(&data).expect("data dir");
        let serve = Command::new(TESSERA)
            .args(["serve", "--data-dir"])
            .arg(&data)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start tessera serve");
        self.processes.push(serve);
        let credentials = data.join("credentials.json");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !credentials.exists() || TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The underlay of hand-made hosts: a bridge `bridge` and a namespace `{ns}{name}` per host
    /// (jumbo frames), each on the bridge at its address; removed with the lab.
    pub fn underlay(&mut self, bridge: &str, ns: &str, hosts: &[(&str, std::net::Ipv4Addr)]) {
        let b = tessera_lab::Bridge::create(bridge).expect("bridge");
        for (i, (name, addr)) in hosts.iter().enumerate() {
            let host = Netns::create(&format!("{ns}{name}")).expect("host namespace");
            let cfg = tessera_lab::VmInterface {
                name: "ul0".into(),
                mac: [0x02, 0, 0, addr.octets()[1], 0, u8::try_from(i + 1).expect("small")],
                addresses: vec![(std::net::IpAddr::V4(*addr), 24)],
                gateway: None,
                mtu: Some(9000),
                forwarding: false,
            };
            b.attach(&host, &format!("{bridge}-{name}"), &cfg).expect("attach host");
            self.hosts.push(host);
        }
        self.bridge = Some(b);
    }

    /// Starts `tessera agent --host HOST` with extra arguments; its status goes to
    /// `agent-HOST.json` in the data directory.
    pub fn start_agent(&mut self, host: &str, extra: &[String]) {
        self.start_agent_on(host, extra, &self.data().join("credentials.json"));
    }

    /// `start_agent` signing in with another credentials file.
    pub fn start_agent_on(&mut self, host: &str, extra: &[String], credentials: &Path) {
        let data = self.data();
        let agent = Command::new(TESSERA)
            .args(["agent", "--host", host])
            .args(extra)
            .arg("--credentials")
            .arg(credentials)
            .arg("--status")
            .arg(data.join(format!("agent-{host}.json")))
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start an agent");
        self.processes.push(agent);
    }

    /// `tessera apply -f FILE` against the lab's server.
    pub fn apply(&self, topology: &Path) {
        let out = Command::new(TESSERA)
            .args(["apply", "-f"])
            .arg(topology)
            .arg("--credentials")
            .arg(self.data().join("credentials.json"))
            .output()
            .expect("tessera apply");
        assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Waits until the agent of `host` runs `count` VMs.
    pub fn wait_for_vms(&self, host: &str, count: usize) {
        let status = self.data().join(format!("agent-{host}.json"));
        let running = || {
            std::fs::read_to_string(&status)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["vms"].as_array().map(Vec::len))
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while running() != count {
            assert!(std::time::Instant::now() < deadline, "{host} never ran {count} VMs");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An ARM call with the lab's credentials.
    /// An ARM call with the lab's credentials (`SUB` in the path is the default subscription):
    /// the status and the body.
    pub fn arm_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let creds: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.data().join("credentials.json")).expect("credentials"))
                .expect("credentials JSON");
        let sub = format!("/subscriptions/{}", creds["subscriptionId"].as_str().expect("subscription"));
        let path = path.replace("SUB", &sub);
        rt.block_on(async {
            let s =
                tessera_agent::session::Session::sign_in(&self.data().join("credentials.json")).await.expect("sign in");
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = format!("{}{path}{sep}api-version=2024-05-01", s.endpoint);
            let mut req = s.client.request(method, url).bearer_auth(&s.token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.expect("call");
            let status = r.status().as_u16();
            let location = r.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
            let mut body: serde_json::Value = r.json().await.unwrap_or_default();
            // A long-running action's result is at its Location.
            if status == 202
                && let Some(loc) = location
            {
                let r = s.client.get(loc).bearer_auth(&s.token).send().await.expect("result");
                body = r.json().await.unwrap_or_default();
            }
            (status, body)
        })
    }

    pub fn arm(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let s =
                tessera_agent::session::Session::sign_in(&self.data().join("credentials.json")).await.expect("sign in");
            let url = format!("{}{path}?api-version=2024-05-01", s.endpoint);
            let mut req = s.client.request(method, url).bearer_auth(&s.token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            req.send().await.expect("call").status().as_u16()
        })
    }

    /// The counters file of the agent of `host` (`Null` until it is written).
    pub fn counters(&self, host: &str) -> serde_json::Value {
        let path = self.data().join(format!("agent-{host}.counters.json"));
        std::fs::read_to_string(path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
    }

    /// Bytes the local agent's switch counted from VNet `from` to VNet `to` (names), egress:
    /// the peering meter's input.
    pub fn crossing_bytes(&self, from: &str, to: &str) -> u64 {
        let counters = self.counters("local");
        let pairs = counters["vnetPairs"].as_array().cloned().unwrap_or_default();
        let ends = |p: &serde_json::Value, field: &str, name: &str| {
            p[field].as_str().is_some_and(|s| s.ends_with(&format!("/{name}")))
        };
        pairs
            .iter()
            .filter(|p| ends(p, "source", from) && ends(p, "destination", to) && p["direction"] == "Egress")
            .map(|p| p["bytes"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Waits until `check` holds (programs reach the agent through the feed), up to 10 s.
    pub fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        for _ in 0..20 {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("never happened: {what}");
    }
}

/// Whether `check` holds within `secs` seconds (tried every half second).
pub fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for p in &mut self.processes {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(p.id()).unwrap_or(0)),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = p.wait();
        }
        let _ = Command::new(TESSERA).arg("down").arg("--data-dir").arg(self.data()).output();
        self.hosts.clear();
        self.bridge = None;
    }
}

pub fn namespace(vm: &str) -> String {
    tessera_agent::vms::namespace_of(vm)
}
