//! No downtime (needs root, as CI runs): a TCP stream between two peered namespace VMs keeps
//! its connection, every message echoed in order, while 100 other peering links are created
//! and deleted, the NSG of the stream's own subnet changes (unrelated rules), and the
//! controller is killed and restarted; afterwards the agent has caught up with a change made
//! after the restart. The longest gap between two echoes is printed; `scripts/bench-downtime`
//! records it in BENCHMARKS.md (times are measured in benchmarks, not asserted in tests).

mod lab;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lab::{Lab, namespace};
use reqwest::Method;
use serde_json::json;
use tessera_lab::Netns;

const SUB: &str =
    "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/churn-rg/providers/Microsoft.Network";

/// What the stream saw.
#[derive(Debug)]
struct Stream {
    echoed: u64,
    longest_gap: Duration,
    error: Option<String>,
}

/// A client in `vm` sending a numbered 64-byte message every 2 ms and reading each echo.
fn stream(vm: &str, to: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Stream> {
    let ns = namespace(vm);
    std::thread::spawn(move || {
        Netns::open(&ns).expect("namespace").enter().expect("enter");
        let mut out = Stream { echoed: 0, longest_gap: Duration::ZERO, error: None };
        let mut s = match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(format!("connect: {e}"));
                return out;
            }
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut last = Instant::now();
        let mut seq: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut msg = [0u8; 64];
            msg[..8].copy_from_slice(&seq.to_be_bytes());
            let mut back = [0u8; 64];
            if let Err(e) = s.write_all(&msg).and_then(|()| s.read_exact(&mut back)) {
                out.error = Some(format!("message {seq}: {e}"));
                return out;
            }
            if back != msg {
                out.error = Some(format!("message {seq} came back changed"));
                return out;
            }
            let now = Instant::now();
            out.longest_gap = out.longest_gap.max(now - last);
            last = now;
            out.echoed += 1;
            seq += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    })
}

fn link(from: &str, to: &str) -> String {
    format!("{SUB}/virtualNetworks/{from}/virtualNetworkPeerings/{from}-to-{to}")
}

fn peer(lab: &Lab, from: &str, to: &str) {
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": format!("{SUB}/virtualNetworks/{to}")},
                                     "allowVirtualNetworkAccess": true}});
    let status = lab.arm(Method::PUT, &link(from, to), Some(body));
    assert!(matches!(status, 200 | 201), "PUT {from}-to-{to}: {status}");
}

fn unpeer(lab: &Lab, from: &str, to: &str) {
    let status = lab.arm(Method::DELETE, &link(from, to), None);
    assert!(matches!(status, 200 | 202 | 204), "DELETE {from}-to-{to}: {status}");
}

fn nsg_rules(lab: &Lab, ports: &[u16]) {
    let rules: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"name": format!("deny-{p}"), "properties": {"priority": 100 + i, "direction": "Inbound",
                   "access": "Deny", "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
                   "destinationAddressPrefix": "*", "destinationPortRange": p.to_string()}})
        })
        .collect();
    let body = json!({"location": "westeurope", "properties": {"securityRules": rules}});
    let status = lab.arm(Method::PUT, &format!("{SUB}/networkSecurityGroups/hub-nsg"), Some(body));
    assert!(matches!(status, 200 | 201), "PUT hub-nsg: {status}");
}

#[test]
fn a_stream_survives_peering_churn_nsg_changes_and_a_controller_restart() {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);
    lab.start_agent("local", &[]);
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/churn.yaml"));
    lab.wait_for_vms("local", 3);
    lab.echo_stream("spoke-vm", 7000);
    let stop = Arc::new(AtomicBool::new(false));
    let client = stream("hub-vm", "10.1.0.4:7000".parse().expect("addr"), stop.clone());
    std::thread::sleep(Duration::from_millis(300));

    // 100 links among the x VNets created, then deleted (50 peerings made and unmade), with the
    // hub subnet's NSG changing on the way.
    let pairs: Vec<(String, String)> =
        (0..5).flat_map(|i| (i + 1..10).map(move |j| (format!("x{i}"), format!("x{j}")))).take(50).collect();
    for (n, (a, b)) in pairs.iter().enumerate() {
        peer(&lab, a, b);
        peer(&lab, b, a);
        if n % 10 == 0 {
            nsg_rules(&lab, &[3389, 22, u16::try_from(1000 + n).expect("port")]);
        }
    }
    for (a, b) in &pairs {
        unpeer(&lab, a, b);
        unpeer(&lab, b, a);
    }

    // The controller dies and comes back on the same store; the agent keeps forwarding.
    let mut server = lab.processes.remove(0);
    server.kill().expect("kill -9 the controller");
    let _ = server.wait();
    std::thread::sleep(Duration::from_secs(1));
    lab.start_server(port);
    // A change after the restart reaches the agent: lone is peered and becomes reachable.
    peer(&lab, "lone", "hub");
    peer(&lab, "hub", "lone");
    lab.eventually("the agent caught up after the restart", || lab.ping("lone-vm", "10.0.0.4"));
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    let s = client.join().expect("stream thread");
    eprintln!("stream: {} messages echoed, longest gap between echoes {:?}", s.echoed, s.longest_gap);
    assert_eq!(s.error, None, "the stream broke");
    assert!(s.echoed > 100, "the stream ran: {s:?}");
}
