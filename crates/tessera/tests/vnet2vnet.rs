//! VNet-to-VNet connections with real packets (issue 16; root): two gateway instances hold an
//! IKEv2 tunnel and carry the VNets' traffic (GWY4); once the VNets are also peered, traffic
//! takes the peering (R10, SEL3, GWY5), as the switch's peering counters show.

mod lab;

use std::path::PathBuf;
use std::time::Duration;

use lab::{Lab, within};
use reqwest::Method;
use serde_json::{Value, json};

fn estate() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/vnet2vnet.yaml")
}

/// Bytes the east gateway's instance sent into its tunnel (strongSwan's `ipsec0` device).
fn tunnel_bytes() -> u64 {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", "tsr-gw-east-gw", "ip", "-s", "-j", "link", "show", "ipsec0"])
        .output()
        .expect("ip");
    let links: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    links[0]["stats64"]["tx"]["bytes"].as_u64().unwrap_or(0)
}

fn tunnel_state(lab: &Lab, connection: &str) -> String {
    let (_, c) = lab.arm_json(
        Method::GET,
        &format!("SUB/resourceGroups/v2v-rg/providers/Microsoft.Network/connections/{connection}"),
        None,
    );
    c["properties"]["connectionStatus"].as_str().unwrap_or_default().to_string()
}

fn link(lab: &Lab, from: &str, to: &str) {
    let creds: Value =
        serde_json::from_slice(&std::fs::read(lab.data().join("credentials.json")).expect("credentials"))
            .expect("credentials JSON");
    let remote = format!(
        "/subscriptions/{}/resourceGroups/v2v-rg/providers/Microsoft.Network/virtualNetworks/{to}",
        creds["subscriptionId"].as_str().expect("subscription")
    );
    let path = format!(
        "SUB/resourceGroups/v2v-rg/providers/Microsoft.Network/virtualNetworks/{from}/virtualNetworkPeerings/{from}-to-{to}"
    );
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": remote}, "allowVirtualNetworkAccess": true}});
    let (status, body) = lab.arm_json(Method::PUT, &path, Some(body));
    assert!(matches!(status, 200 | 201), "{status} {body}");
}

#[test]
fn a_vnet_to_vnet_tunnel_carries_traffic_until_a_peering_takes_it() {
    let lab = Lab::up(&estate());
    assert!(
        within(30, || tunnel_state(&lab, "east-to-west") == "Connected"
            && tunnel_state(&lab, "west-to-east") == "Connected"),
        "the gateways' tunnel is not up"
    );
    lab.serve("west-vm", 80);
    lab.sink("west-vm", 81);
    assert!(within(10, || lab.ping("east-vm", "10.20.0.4")), "east -> west through the tunnel");
    assert!(lab.tcp("east-vm", "10.20.0.4:80"), "TCP through the tunnel");
    let sent = tunnel_bytes();
    assert!(lab.bulk("east-vm", "10.20.0.4:81", 1 << 20), "1 MiB through the tunnel");
    assert!(
        tunnel_bytes() >= sent + (1 << 20),
        "the tunnel did not carry the MiB ({sent} before, {} after)",
        tunnel_bytes()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = lab.crossing_bytes("east", "west");
    assert_eq!(before, 0, "traffic through the tunnel is not peering traffic");

    // R10 / SEL3: peered as well, the VNets' traffic takes the peering.
    link(&lab, "east", "west");
    link(&lab, "west", "east");
    assert!(within(10, || lab.ping("east-vm", "10.20.0.4")), "east -> west over the peering");
    assert!(lab.tcp("east-vm", "10.20.0.4:80"), "TCP over the peering");
    let sent = tunnel_bytes();
    assert!(lab.bulk("east-vm", "10.20.0.4:81", 1 << 20), "1 MiB over the peering");
    assert!(
        within(5, || lab.crossing_bytes("east", "west") >= before + (1 << 20)),
        "the peering did not count the MiB"
    );
    assert!(
        tunnel_bytes() < sent + (1 << 18),
        "the tunnel still carried the traffic ({sent} before, {} after)",
        tunnel_bytes()
    );
    assert_eq!(tunnel_state(&lab, "east-to-west"), "Connected", "the tunnel stays up beside the peering");
}
