//! A site-to-site VPN without BGP (issue 16; root): the local network gateway's address space
//! becomes a static VirtualNetworkGateway route (GWY3 without BGP) and the tunnel carries ping
//! and TCP to the host behind the simulated site.

mod lab;

use std::path::PathBuf;

use lab::{Lab, within};
use reqwest::Method;
use serde_json::Value;

const CONNECTION: &str = "SUB/resourceGroups/static-rg/providers/Microsoft.Network/connections/branch-to-office";
const GATEWAY: &str = "SUB/resourceGroups/static-rg/providers/Microsoft.Network/virtualNetworkGateways/branch-gw";

#[test]
fn static_site_prefixes_work_without_bgp() {
    let lab = Lab::up(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/static-site.yaml"));
    let status = || lab.arm_json(Method::GET, CONNECTION, None).1["properties"]["connectionStatus"].clone();
    assert!(within(30, || status() == "Connected"), "the tunnel is not up: {}", status());
    lab.serve("office", 80);
    assert!(within(10, || lab.ping("branch-vm", "192.168.60.10")), "branch -> office over the tunnel");
    assert!(lab.tcp("branch-vm", "192.168.60.10:80"), "TCP to the office");
    // No BGP: the gateway has no session and learned nothing; the site's space is its route.
    let (_, peers) = lab.arm_json(Method::POST, &format!("{GATEWAY}/getBgpPeerStatus"), None);
    assert_eq!(peers["value"], Value::Array(Vec::new()), "{peers}");
    let (_, learned) = lab.arm_json(Method::POST, &format!("{GATEWAY}/getLearnedRoutes"), None);
    let learned = learned["value"].as_array().cloned().unwrap_or_default();
    assert!(learned.iter().all(|r| r["origin"] != "EBgp"), "{learned:?}");
    let out = std::process::Command::new(lab::TESSERA)
        .args(["routes", "--credentials"])
        .arg(lab.data().join("credentials.json"))
        .args(["--nic", "branch-vm"])
        .output()
        .expect("tessera routes");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.contains("192.168.60.0/24") && l.contains("VirtualNetworkGateway")),
        "the site's space is not a gateway route:\n{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
