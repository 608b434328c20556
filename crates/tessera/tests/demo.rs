//! `tessera demo` end to end (needs root, as CI runs): every step behaves as the rules say
//! (its exit status), and the steps a newcomer reads are there.

use std::net::TcpListener;
use std::process::Command;

const TESSERA: &str = env!("CARGO_BIN_EXE_tessera");

struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(TESSERA).arg("down").arg("--data-dir").arg(&self.0).output();
    }
}

#[test]
fn the_demo_walks_through_hub_and_spoke_and_every_step_holds() {
    assert!(tessera_lab::privileged(), "the demo runs namespace VMs: run this test as root (CI does)");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("demo");
    let _down = Down(data.clone());
    let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let out = Command::new(TESSERA)
        .arg("demo")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run the demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "a step did not behave as the rules say:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains('✗'), "{text}");
    assert_eq!(text.matches('✓').count(), 6, "six checked steps:\n{text}");
    for expected in [
        "hub-to-spoke1    peeringState Initiated",
        "hub-to-spoke1    peeringState Connected",
        "ttl=63",
        "VNetPeering",
        "VirtualAppliance",
        "Connection status: Reachable",
    ] {
        assert!(text.contains(expected), "missing '{expected}' in:\n{text}");
    }
}
