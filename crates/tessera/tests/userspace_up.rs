//! `tessera up --userspace` (what `tessera up` does without root): the agent runs userspace VMs
//! instead of namespaces, and `tessera exec` runs ping, curl and nc inside them through the
//! agent — the one-host scenarios of `tests/lab/estate.yaml` (P1, P3, R3, U4, N1, LB1,
//! isolation), no privileges used.

mod lab;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use lab::{Lab, TESSERA};

#[test]
fn userspace_vms_behind_tessera_up_talk_as_the_topology_allows() {
    let lab = Lab::unprivileged(tempfile::tempdir().expect("temp dir"));
    let ping = |vm: &str, to: &str| lab.exec(vm, &["ping", "-c", "3", to]).0;
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let estate = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/estate.yaml");
    let out = Command::new(TESSERA)
        .args(["up", "--userspace", "-f"])
        .arg(&estate)
        .arg("--data-dir")
        .arg(lab.data())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .expect("tessera up");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("10 VMs running") && text.contains("userspace"), "{text}");

    assert!(ping("hub-vm", "10.1.0.4"), "P1: hub -> spoke1");
    assert!(ping("spoke1-vm", "10.2.0.4"), "U4: spoke1 -> spoke2 through the appliance");
    assert!(lab.exec("hub-vm", &["nc", "10.1.0.4", "7"]).0, "TCP echo across peering");
    assert!(!ping("spoke3-vm", "10.1.0.4"), "R3: not transitive");
    assert!(!ping("lone-vm", "10.0.0.4"), "P3: one link only");
    assert!(lab.exec("hub-vm", &["nc", "10.2.0.4", "22"]).0, "the spoke VM echoes on 22");
    assert!(!lab.exec("hub-vm", &["nc", "10.2.0.4", "3389"]).0, "N1: NSG deny (3389)");
    let (ok, body) = lab.exec("hub-vm", &["curl", "http://10.10.0.101/"]);
    assert!(ok && body.contains("200 OK") && body.contains("web1"), "LB1: Standard ILB over global peering: {body}");
    assert!(!lab.exec("hub-vm", &["curl", "http://10.10.0.100/"]).0, "LB1: Basic ILB over global peering");
    assert!(lab.exec("neighbour-vm", &["curl", "http://10.10.0.100/"]).0, "LB1: Basic ILB over regional peering");
    assert!(!ping("iso-a-vm", "10.9.0.5"), "isolated");
    let (ok, text) = lab.exec("hub-vm", &["traceroute", "10.1.0.4"]);
    assert!(!ok && text.contains("a userspace VM runs"), "unknown commands are explained: {text}");
}
