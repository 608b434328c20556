//! End to end with real packets (needs root, as CI runs): `tessera up` starts the control plane
//! and a host agent, the agent makes a namespace VM behind a TAP port for every VM of
//! `tests/lab/estate.yaml`, and the kernels of those VMs talk through the switch — ping
//! (`tessera exec … -- ping`) and TCP (sockets opened inside the namespaces).
//!
//! Rules: P1/P2 (peered VNets act as one), P3 (nothing while only one link exists), R3 (not
//! transitive), U4 (service chaining through an appliance whose kernel forwards), N1/N2 (an NSG
//! blocks between peered VNets), LB1 (Basic ILB frontend unreachable over global peering),
//! overlapping address spaces of VNets that are not peered stay apart.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tessera_lab::Netns;

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

/// A lab brought up in a temporary directory and always brought down, even when a check fails.
struct Lab {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
}

impl Lab {
    fn up(topology: &Path) -> Lab {
        assert!(
            tessera_lab::privileged(),
            "namespace VMs need root: run these tests as root (CI does); the switch itself is tested without root by \
             tessera-dataplane's harness"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let lab = Lab { dir, stop: Arc::new(AtomicBool::new(false)) };
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

    fn data(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    /// `tessera exec VM -- ping -c 1 ADDRESS` succeeds (up to three tries, one second each).
    fn ping(&self, vm: &str, to: &str) -> bool {
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
    fn ping_ttl(&self, vm: &str, to: &str) -> Option<u32> {
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

    /// An echo server inside a VM, running until the lab goes down.
    fn serve(&self, vm: &str, port: u16) {
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
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let mut buf = [0u8; 64];
                        if let Ok(n) = s.read(&mut buf) {
                            let _ = s.write_all(&buf[..n]);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        started.recv_timeout(Duration::from_secs(5)).expect("server started");
    }

    /// A TCP connection from a VM that gets its bytes echoed back.
    fn tcp(&self, vm: &str, to: &str) -> bool {
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

    /// An ARM call with the lab's credentials.
    fn arm(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> u16 {
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

    /// Waits until `check` holds (programs reach the agent through the feed), up to 10 s.
    fn eventually(&self, what: &str, check: impl Fn() -> bool) {
        for _ in 0..20 {
            if check() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("never happened: {what}");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = Command::new(TESSERA).arg("down").arg("--data-dir").arg(self.data()).output();
    }
}

fn namespace(vm: &str) -> String {
    format!("{}{vm}", tessera_lab::PREFIX)
}

fn estate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/estate.yaml")
}

#[test]
fn namespace_vms_talk_exactly_as_the_topology_allows() {
    let lab = Lab::up(&estate());

    // P1/P2: across regional peering, both ways.
    assert!(lab.ping("hub-vm", "10.1.0.4"), "hub -> spoke1 over peering");
    assert!(lab.ping("spoke1-vm", "10.0.0.4"), "spoke1 -> hub over peering");
    for vm in ["spoke1-vm", "spoke2-vm", "web1"] {
        lab.serve(vm, 80);
    }
    lab.serve("spoke2-vm", 3389);
    lab.serve("spoke3-vm", 80);
    assert!(lab.tcp("hub-vm", "10.1.0.4:80"), "TCP across peering");

    // U4: spoke1 -> spoke2 through the appliance, whose kernel forwards (one hop: TTL 63).
    assert!(lab.tcp("spoke1-vm", "10.2.0.4:80"), "TCP through the NVA");
    assert_eq!(lab.ping_ttl("spoke1-vm", "10.2.0.4"), Some(63), "the reply crossed the appliance");

    // N1/N2: spoke2's NSG denies TCP 3389 inbound, even from a peered VNet.
    assert!(!lab.tcp("hub-vm", "10.2.0.4:3389"), "NSG deny between peered VNets");
    assert!(lab.tcp("hub-vm", "10.2.0.4:80"), "the same VM on an allowed port");

    // R3: spoke3 has no route through the hub; peering is not transitive.
    assert!(lab.tcp("hub-vm", "10.3.0.4:80"), "hub reaches spoke3");
    assert!(!lab.ping("spoke3-vm", "10.1.0.4"), "spoke3 -> spoke1 is not transitive");
    assert!(!lab.tcp("spoke1-vm", "10.3.0.4:80"), "spoke1 -> spoke3 is not transitive");

    // P3: lone -> hub is Initiated (one link): nothing passes.
    assert!(!lab.ping("lone-vm", "10.0.0.4"), "one link only");
    assert!(!lab.ping("hub-vm", "10.7.0.4"), "one link only, the other way");

    // LB1: over global peering the Standard ILB frontend works, the Basic one does not.
    assert!(lab.tcp("hub-vm", "10.10.0.101:80"), "Standard ILB over global peering");
    assert!(!lab.tcp("hub-vm", "10.10.0.100:80"), "Basic ILB over global peering");
    assert!(lab.tcp("hub-vm", "10.10.0.4:80"), "the backend itself over global peering");
    assert!(lab.tcp("neighbour-vm", "10.10.0.100:80"), "Basic ILB over regional peering");
    assert!(lab.tcp("neighbour-vm", "10.10.0.101:80"), "Standard ILB over regional peering");

    // Same address space, not peered: isolated.
    assert!(!lab.ping("iso-a-vm", "10.9.0.5"), "iso-a cannot reach iso-b's address");
    assert!(!lab.ping("iso-b-vm", "10.9.0.4"), "iso-b cannot reach iso-a's address");
    assert!(!lab.ping("hub-vm", "10.9.0.4"), "nobody else reaches them");

    // P3 again: once the link back exists the peering is Connected and packets pass; deleting
    // it stops them.
    let sub = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/lab-rg/providers/Microsoft.Network";
    let link = format!("{sub}/virtualNetworks/hub/virtualNetworkPeerings/hub-to-lone");
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": format!("{sub}/virtualNetworks/lone")},
                                     "allowVirtualNetworkAccess": true}});
    assert!(matches!(lab.arm(reqwest::Method::PUT, &link, Some(body)), 200 | 201));
    lab.eventually("lone -> hub after the second link", || lab.ping("lone-vm", "10.0.0.4"));
    assert!(lab.ping("hub-vm", "10.7.0.4"), "and back");
    assert!(matches!(lab.arm(reqwest::Method::DELETE, &link, None), 200 | 202 | 204));
    lab.eventually("nothing once a link is deleted", || !lab.ping("lone-vm", "10.0.0.4"));
}
