//! Two hosts of userspace VMs, no privileges needed: `tessera serve` and two `tessera agent
//! --userspace` on loopback addresses of their own, carrying VM traffic to each other in VXLAN
//! — the two-host scenarios of `tests/lab/two-hosts.yaml` (P1, P3, G1, N1) checked from inside
//! the VMs with `tessera exec`. The agents are not told of each other: each registers its
//! underlay address with the controller and learns the other's from the watch feed.

mod lab;

use std::path::Path;

use lab::Lab;

#[test]
fn userspace_vms_on_two_hosts_talk_over_vxlan() {
    let mut lab = Lab::unprivileged(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);
    // Two loopback addresses as the hosts' underlay; a random third octet keeps parallel runs apart.
    let octet = 2 + port % 250;
    let hosts = [("h1", format!("127.{octet}.0.1")), ("h2", format!("127.{octet}.0.2"))];
    for (name, addr) in &hosts {
        lab.start_agent(name, &["--userspace".to_string(), "--underlay".to_string(), format!("{addr}:4789")]);
    }
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/two-hosts.yaml"));
    lab.wait_for_vms("h1", 1);
    lab.wait_for_vms("h2", 4);

    let ping = |vm: &str, to: &str| lab.exec(vm, &["ping", to]).0;
    assert!(ping("hub-vm", "10.1.0.4"), "P1: h1 -> h2 over regional peering");
    assert!(ping("spoke-vm", "10.0.0.4"), "P1: h2 -> h1");
    assert!(lab.exec("hub-vm", &["nc", "10.1.0.4", "7"]).0, "TCP echo across hosts");
    let (ok, body) = lab.exec("hub-vm", &["curl", "http://10.20.0.4/"]);
    assert!(ok && body.contains("far-vm"), "G1: HTTP over global peering across hosts: {body}");
    assert!(lab.exec("hub-vm", &["nc", "10.1.0.4", "22"]).0, "the spoke VM echoes on 22");
    assert!(!lab.exec("hub-vm", &["nc", "10.1.0.4", "3389"]).0, "N1: the receiving host's NSG denies 3389");
    assert!(!ping("lone-vm", "10.0.0.4"), "P3: one link only");
    assert!(!ping("hub-vm", "10.7.0.4"), "P3: one link only, the other way");
    assert!(ping("spoke-vm", "10.5.0.4"), "P1: peered VMs on one host");
}
