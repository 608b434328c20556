//! Two forwarding workers (needs root, as CI runs): every TAP has a queue per worker and the
//! kernel spreads the flows over them. Connections between peered VMs work whichever worker
//! carries them, replies pass an NSG that refuses new inbound connections (N4), that NSG still
//! refuses them (N2), and both workers carry frames. Runs with the kernel fast path and with
//! the switch carrying every frame.

mod lab;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use lab::{Lab, namespace};
use tessera_lab::Netns;

/// Connects from `vm` to `to` and has `n` 64-byte messages echoed.
fn echoed(vm: &str, to: SocketAddr, n: usize) -> bool {
    let ns = Netns::open(&namespace(vm)).expect("namespace");
    ns.run(|| {
        let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(2)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.set_nodelay(true);
        (0..n).all(|i| {
            let msg = [u8::try_from(i % 251).unwrap_or(0); 64];
            let mut back = [0u8; 64];
            s.write_all(&msg).is_ok() && s.read_exact(&mut back).is_ok() && back == msg
        })
    })
    .expect("run in namespace")
}

fn scenario(fast_path: bool) {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);
    let mut args = vec!["--workers".to_string(), "2".to_string()];
    if !fast_path {
        args.push("--no-fast-path".into());
    }
    lab.start_agent("local", &args);
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/workers.yaml"));
    lab.wait_for_vms("local", 2);
    lab.echo_stream("workers-b", 7000);
    lab.echo_stream("workers-a", 7000);
    lab.sink("workers-b", 9000);

    // Connections from a: each its own source port, so the kernel spreads them over the queues.
    let to_b: SocketAddr = "10.212.1.4:7000".parse().expect("addr");
    for i in 0..24 {
        assert!(echoed("workers-a", to_b, 20), "connection {i} from a to b (fast path: {fast_path})");
    }
    assert!(lab.ping("workers-a", "10.212.1.4"), "ping from a to b");
    assert!(lab.bulk("workers-a", "10.212.1.4:9000", 8 << 20), "8 MB from a to b arrive whole");

    // a's NSG refuses connections from the virtual network: b cannot open one, nor ping.
    let to_a: SocketAddr = "10.212.0.4:7000".parse().expect("addr");
    assert!(!echoed("workers-b", to_a, 1), "b cannot connect to a (N2)");
    assert!(!lab.ping("workers-b", "10.212.0.4"), "b cannot ping a");

    let counters = lab.counters("local");
    let frames: Vec<u64> =
        counters["workerFrames"].as_array().into_iter().flatten().filter_map(serde_json::Value::as_u64).collect();
    assert_eq!(frames.len(), 2, "two workers: {counters}");
    assert!(frames.iter().all(|n| *n > 0), "both workers carried frames: {counters}");
}

#[test]
fn two_workers_share_the_switch_and_keep_its_rules() {
    scenario(true);
    scenario(false);
}
