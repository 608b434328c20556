//! A flood of new flows on namespace VMs (root, as CI runs; issue 14): one VM sends UDP to a
//! new port with every datagram, as fast as it can, while another VM on the same host opens
//! 1,000 TCP connections. Every connection succeeds, and the flood is counted as quota drops
//! against the flooding VM's port only (the agent's counters file), with the kernel fast path
//! and with the switch carrying every frame.

mod lab;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use lab::{Lab, namespace};
use tessera_lab::Netns;

/// Flow entries one port may hold in these runs: small, so the flood reaches it at once.
const QUOTA: u64 = 4_000;

/// UDP datagrams from `vm` to a new destination port each, until `stop`; counts them.
fn flood(vm: &str, to: &str, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    let ns = namespace(vm);
    let to: std::net::Ipv4Addr = to.parse().expect("address");
    std::thread::spawn(move || {
        Netns::open(&ns).expect("namespace").enter().expect("enter");
        let s = UdpSocket::bind("0.0.0.0:0").expect("bind");
        let mut port: u16 = 1;
        while !stop.load(Ordering::Relaxed) {
            // Unanswered: the flood's flows are new ones, never replies.
            let _ = s.send_to(&[0u8; 18], (to, port));
            sent.fetch_add(1, Ordering::Relaxed);
            port = if port == u16::MAX { 1 } else { port + 1 };
        }
    })
}

/// One TCP connection from `vm` whose message comes back.
fn connection(ns: &Netns, to: SocketAddr, i: usize) -> bool {
    ns.run(|| {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(3)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
        let msg = format!("connection {i}");
        let mut back = vec![0u8; msg.len()];
        s.write_all(msg.as_bytes()).is_ok() && s.read_exact(&mut back).is_ok() && back == msg.as_bytes()
    })
    .expect("run in namespace")
}

/// The counters file's entry of a VM's port.
fn port_counters(counters: &serde_json::Value, vm: &str) -> serde_json::Value {
    counters["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["nic"].as_str().is_some_and(|n| n.to_ascii_lowercase().ends_with(&format!("/{vm}-nic"))))
        .cloned()
        .unwrap_or_else(|| panic!("no port of {vm} in {counters}"))
}

fn scenario(fast_path: bool) {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);
    let mut args = vec!["--flows-per-port".to_string(), QUOTA.to_string()];
    if !fast_path {
        args.push("--no-fast-path".into());
    }
    lab.start_agent("local", &args);
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/flood.yaml"));
    lab.wait_for_vms("local", 3);
    lab.serve("flood-s", 7000);
    assert!(lab.ping("flood-v", "10.215.0.6"), "the victim reaches the server before the flood");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = flood("flood-f", "10.215.0.6", stop.clone(), sent.clone());
    // The flood fills the flooder's quota before the victim starts.
    lab.eventually("the flood reaches its quota", || {
        let c = lab.counters("local");
        c["ports"].is_array() && port_counters(&c, "flood-f")["quotaDrops"].as_u64().unwrap_or(0) > 0
    });

    let victim = Netns::open(&namespace("flood-v")).expect("namespace");
    let to: SocketAddr = "10.215.0.6:7000".parse().expect("address");
    let failed: Vec<usize> = (0..1_000).filter(|i| !connection(&victim, to, *i)).collect();
    stop.store(true, Ordering::Relaxed);
    let _ = flooder.join();
    assert!(failed.is_empty(), "connections of the victim failed during the flood: {failed:?}");

    // The counters file is written every second.
    std::thread::sleep(Duration::from_millis(1500));
    let c = lab.counters("local");
    let (f, v, s) = (port_counters(&c, "flood-f"), port_counters(&c, "flood-v"), port_counters(&c, "flood-s"));
    let flooded = sent.load(Ordering::Relaxed);
    assert!(flooded > 10 * QUOTA, "the flood sent only {flooded} datagrams");
    assert!(f["quotaDrops"].as_u64().unwrap_or(0) > 0, "the flood counted against its port: {f}");
    assert!(f["flows"].as_u64().unwrap_or(u64::MAX) <= QUOTA, "the flooder holds at most its quota: {f}");
    for (vm, p) in [("flood-v", &v), ("flood-s", &s)] {
        assert_eq!(p["quotaDrops"].as_u64(), Some(0), "{vm} was refused nothing: {p}");
        assert_eq!(p["evictions"].as_u64(), Some(0), "{vm} lost no entry: {p}");
    }
    let drops: u64 = c["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["reason"] == "FlowQuotaExceeded")
        .filter_map(|d| d["packets"].as_u64())
        .sum();
    assert_eq!(drops, f["quotaDrops"].as_u64().unwrap_or(0), "every quota drop is the flooder's");
}

/// One test for both ways of forwarding: the two labs would use the same namespace names.
#[test]
fn a_flood_of_new_flows_leaves_another_vms_connections_untouched() {
    scenario(true);
    scenario(false);
}
