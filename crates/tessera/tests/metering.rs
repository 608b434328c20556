//! Peering metering against iperf3 (issue 17, needs root as CI runs): what the server bills for
//! a peering (read with `tessera usage`, from the agents' reports) equals what iperf3 moved
//! across it (the frames that arrived at the receiving VM), within 1 %, in both directions,
//! regional and global, with the kernel fast path and with the switch alone, through a
//! `kill -9` of the agent: the transfer before the kill is counted from what the agent left on
//! disk, once (a report later, nothing more is billed).

mod lab;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lab::{Lab, TESSERA, namespace};
use serde_json::Value;

/// Bytes per transfer.
const BYTES: u64 = 48 << 20;

/// (billed VNet, remote VNet, meter) -> bytes billed, from `tessera usage -o json`.
type Billed = BTreeMap<(String, String, String), u64>;

fn billed(lab: &Lab) -> Billed {
    let out = Command::new(TESSERA)
        .args(["usage", "-o", "json", "--credentials"])
        .arg(lab.data().join("credentials.json"))
        .output()
        .expect("tessera usage");
    assert!(out.status.success(), "tessera usage: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let name =
        |r: &Value, k: &str| r[k].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
    let mut map = Billed::new();
    for r in v["value"].as_array().into_iter().flatten() {
        let key = (
            name(r, "virtualNetwork"),
            name(r, "remoteVirtualNetwork"),
            r["meter"].as_str().unwrap_or_default().into(),
        );
        *map.entry(key).or_default() += r["bytes"].as_u64().unwrap_or(0);
    }
    map
}

fn get(b: &Billed, vnet: &str, remote: &str, meter: &str) -> u64 {
    b.get(&(vnet.into(), remote.into(), meter.into())).copied().unwrap_or(0)
}

/// Bytes received on a VM's `eth0` (frames as the meter counts them).
fn rx_bytes(vm: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", &namespace(vm), "cat", "/sys/class/net/eth0/statistics/rx_bytes"])
        .output()
        .expect("read rx_bytes");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a count")
}

/// Runs iperf3 from `client` to `server` (`reverse`: the server sends): the bytes it moved, as
/// the receiving VM's interface saw them arrive (frames with their headers, the meter's unit).
/// iperf3's own count is of payload it wrote or read before the test ended, not of what
/// crossed: its payload received must be within what arrived.
fn iperf(client: &str, server: &str, address: &str, reverse: bool) -> u64 {
    let receiver = if reverse { client } else { server };
    let mut srv = Command::new("ip")
        .args(["netns", "exec", &namespace(server), "iperf3", "-s", "-1", "-B", address])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(300));
    let before = rx_bytes(receiver);
    let mut args = vec!["netns".to_string(), "exec".into(), namespace(client), "iperf3".into(), "-c".into()];
    args.extend([address.to_string(), "-n".into(), BYTES.to_string(), "-J".into()]);
    if reverse {
        args.push("-R".into());
    }
    let out = Command::new("ip").args(&args).output().expect("iperf3 client");
    let _ = srv.wait();
    std::thread::sleep(Duration::from_millis(200));
    let arrived = rx_bytes(receiver) - before;
    let v: Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
    let received = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    println!(
        "iperf3: {} sent, {received} received, {} retransmits; {arrived} bytes arrived at {receiver}",
        v["end"]["sum_sent"]["bytes"], v["end"]["sum_sent"]["retransmits"]
    );
    assert!(received >= BYTES / 2 && received <= arrived, "iperf3 received {received}, {arrived} arrived: {v}");
    arrived
}

/// Waits until the billed bytes of (vnet, remote, meter) grew by at least `moved` since
/// `before`, then one report later, and returns the growth.
fn settled(lab: &Lab, before: &Billed, pair: (&str, &str, &str), moved: u64) -> u64 {
    let grown = || get(&billed(lab), pair.0, pair.1, pair.2) - get(before, pair.0, pair.1, pair.2);
    assert!(
        lab::within(30, || grown() >= moved),
        "{pair:?} never billed the {moved} bytes moved (billed {}); the agent's counters: {}",
        grown(),
        lab.counters("local")["vnetPairs"]
    );
    // A report later (agents report every 5 s) nothing more is added: counted once.
    std::thread::sleep(Duration::from_secs(6));
    grown()
}

fn within_one_percent(pair: (&str, &str, &str), billed: u64, moved: u64) {
    let ratio = billed as f64 / moved as f64;
    println!("{pair:?}: iperf3 moved {moved} bytes, billed {billed} ({ratio:.5})");
    assert!((0.99..=1.01).contains(&ratio), "{pair:?}: billed {billed} bytes for {moved} moved ({ratio:.5})");
}

fn scenario(fast_path: bool) {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let flags: Vec<String> = if fast_path { vec![] } else { vec!["--no-fast-path".into()] };
    lab.start_server(port);
    lab.start_agent("local", &flags);
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/metering.yaml"));
    lab.wait_for_vms("local", 3);
    assert!(lab::within(10, || lab.ping("meter-a", "10.212.1.4") && lab.ping("meter-a", "10.212.2.4")));

    // Regional, both ways: a -> b egress billed to a, ingress to b ($2, intra-region).
    for (reverse, from, to) in [(false, "a", "b"), (true, "b", "a")] {
        let before = billed(&lab);
        let moved = iperf("meter-a", "meter-b", "10.212.1.4", reverse);
        let egress = (from, to, "Egress data processed (Global)");
        within_one_percent(egress, settled(&lab, &before, egress, moved), moved);
        let ingress = (to, from, "Ingress data processed (Global)");
        within_one_percent(ingress, get(&billed(&lab), to, from, ingress.2) - get(&before, to, from, ingress.2), moved);
    }

    // Global, a -> g; then the agent is killed (-9) before it reports the transfer, and started
    // again: the ended run's totals, left on disk, are sent and counted once.
    let before = billed(&lab);
    let moved = iperf("meter-a", "meter-g", "10.212.2.4", false);
    std::thread::sleep(Duration::from_millis(1500));
    let agent = lab.processes.last_mut().expect("the agent");
    agent.kill().expect("kill -9 the agent");
    let _ = agent.wait();
    lab.processes.pop();
    lab.start_agent("local", &flags);
    lab.wait_for_vms("local", 3);
    let egress = ("a", "g", "Egress data processed (Zone 1)");
    within_one_percent(egress, settled(&lab, &before, egress, moved), moved);
    let ingress = ("g", "a", "Ingress data processed (Zone 2)");
    within_one_percent(ingress, get(&billed(&lab), "g", "a", ingress.2) - get(&before, "g", "a", ingress.2), moved);

    // Global, g -> a, by the restarted agent.
    assert!(lab::within(20, || lab.ping("meter-a", "10.212.2.4")), "the VMs are back");
    let before = billed(&lab);
    let moved = iperf("meter-a", "meter-g", "10.212.2.4", true);
    let egress = ("g", "a", "Egress data processed (Zone 2)");
    within_one_percent(egress, settled(&lab, &before, egress, moved), moved);
    let ingress = ("a", "g", "Ingress data processed (Zone 1)");
    within_one_percent(ingress, get(&billed(&lab), "a", "g", ingress.2) - get(&before, "a", "g", ingress.2), moved);
}

#[test]
fn billed_peering_bytes_equal_what_iperf3_moved() {
    scenario(true);
    scenario(false);
}
