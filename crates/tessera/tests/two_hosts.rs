//! End to end across two hosts on one machine (needs root, as CI runs): `tessera serve`, and
//! two `tessera agent`s, each in a host namespace of its own, joined by an underlay bridge;
//! VMs on different hosts talk over VXLAN — ping, TCP, bulk TCP (TSO super-frames cut into
//! segments before they leave the host), across regional and global peering, with the
//! receiving host's NSG deciding and nothing while only one link exists (P1, P3, G1, N1).
//! h1 runs with `--no-fast-path` (the switch carries every frame), h2 with the kernel fast
//! path inside its host namespace, which carries a peering between two of its own VMs.

mod lab;

use std::net::Ipv4Addr;
use std::path::Path;

use lab::Lab;

#[test]
fn vms_on_two_hosts_talk_over_vxlan_as_the_topology_allows() {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);

    // The underlay: a bridge and one host namespace per agent.
    let hosts = [("h1", Ipv4Addr::new(10, 99, 0, 1)), ("h2", Ipv4Addr::new(10, 99, 0, 2))];
    lab.underlay("tsr-ul", "tsr-host-", &hosts);
    for (i, (name, addr)) in hosts.iter().enumerate() {
        let (peer, peer_addr) = hosts[1 - i];
        let mut args = vec![
            "--netns".to_string(),
            format!("tsr-host-{name}"),
            "--underlay".to_string(),
            format!("{addr}:4789"),
            "--peer".to_string(),
            format!("{peer}={peer_addr}"),
        ];
        if *name == "h1" {
            args.push("--no-fast-path".to_string());
        }
        lab.start_agent(name, &args);
    }
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/two-hosts.yaml"));
    lab.wait_for_vms("h1", 1);
    lab.wait_for_vms("h2", 4);

    // P1: regional peering across hosts, both ways; TCP and bulk TCP (TSO segmented for VXLAN).
    assert!(lab.ping("hub-vm", "10.1.0.4"), "h1 -> h2 over regional peering");
    assert!(lab.ping("spoke-vm", "10.0.0.4"), "h2 -> h1");
    lab.serve("spoke-vm", 80);
    lab.serve("spoke-vm", 3389);
    lab.sink("spoke-vm", 9000);
    lab.serve("far-vm", 80);
    assert!(lab.tcp("hub-vm", "10.1.0.4:80"), "TCP across hosts");
    assert!(lab.bulk("hub-vm", "10.1.0.4:9000", 8 << 20), "8 MB across hosts arrive whole");
    // N1: the receiving host's NSG denies.
    assert!(!lab.tcp("hub-vm", "10.1.0.4:3389"), "NSG deny across hosts");
    // G1: global peering across hosts.
    assert!(lab.ping("hub-vm", "10.20.0.4"), "global peering across hosts");
    assert!(lab.tcp("hub-vm", "10.20.0.4:80"), "TCP over global peering across hosts");
    // P3: one link only.
    assert!(!lab.ping("lone-vm", "10.0.0.4"), "one link only, across hosts");
    assert!(!lab.ping("hub-vm", "10.7.0.4"), "one link only, the other way");
    // A peering within h2: its kernel carries the flow (both directions), h1's carries nothing.
    assert!(lab.ping("spoke-vm", "10.5.0.4"), "peered VMs on one host");
    lab.serve("near-vm", 80);
    assert!(lab.tcp("spoke-vm", "10.5.0.4:80"), "TCP between peered VMs on one host");
    let offloaded = |host: &str| lab.counters(host)["offloadedFlows"].as_u64();
    lab.eventually("h2's kernel carries the echo flow both ways", || {
        assert!(lab.ping("spoke-vm", "10.5.0.4"));
        offloaded("h2").is_some_and(|n| n >= 2)
    });
    assert_eq!(offloaded("h1"), Some(0), "h1 runs without the fast path");
}
