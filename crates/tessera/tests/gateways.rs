//! Gateways with real packets (issue 16; root): a spoke reaches a host behind a simulated
//! on-premises site through the hub's VPN gateway (gateway transit, GW1), over an IKEv2
//! tunnel (strongSwan) with the site's LAN learned by BGP (BIRD); without useRemoteGateways,
//! or with disableBgpRoutePropagation on the spoke's subnet (U5), it cannot.

mod lab;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use lab::{Lab, within};
use reqwest::Method;
use serde_json::{Value, json};

const GW: &str = "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/virtualNetworkGateways/hub-gw";
const SITE_HOST: &str = "192.168.50.10";

fn estate() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/gateway-transit.yaml")
}

fn values(lab: &Lab, action: &str) -> Vec<Value> {
    let (status, body) = lab.arm_json(Method::POST, &format!("{GW}/{action}"), None);
    assert!(matches!(status, 200 | 202), "{action}: {status} {body}");
    body["value"].as_array().cloned().unwrap_or_default()
}

fn learned_by_bgp(lab: &Lab) -> bool {
    values(lab, "getLearnedRoutes").iter().any(|r| r["network"] == "192.168.50.0/24" && r["origin"] == "EBgp")
}

fn spoke_link(lab: &Lab, use_remote_gateways: bool) -> u16 {
    let hub = "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/virtualNetworks/hub";
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": hub.replace("SUB", &sub(lab))},
        "allowVirtualNetworkAccess": true, "useRemoteGateways": use_remote_gateways}});
    let link = "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/virtualNetworks/spoke/virtualNetworkPeerings/spoke-to-hub";
    lab.arm_json(Method::PUT, link, Some(body)).0
}

fn sub(lab: &Lab) -> String {
    let creds: Value =
        serde_json::from_slice(&std::fs::read(lab.data().join("credentials.json")).expect("credentials"))
            .expect("credentials JSON");
    format!("/subscriptions/{}", creds["subscriptionId"].as_str().expect("subscription"))
}

#[test]
fn a_spoke_reaches_the_site_through_the_hubs_gateway_only_as_azure_allows() {
    let lab = Lab::up(&estate());
    // The tunnel comes up (IKE SA established) and the site's LAN is learned by BGP: it is not
    // in the site's address space (only its BGP address is).
    assert!(within(30, || learned_by_bgp(&lab)), "no BGP-learned route: {:?}", values(&lab, "getLearnedRoutes"));
    let peers = values(&lab, "getBgpPeerStatus");
    assert!(peers.iter().any(|p| p["neighbor"] == "10.255.50.1" && p["state"] == "Connected"), "{peers:?}");
    let (_, gw) = lab.arm_json(Method::GET, GW, None);
    let tunnels = gw["properties"]["tesseraInstance"]["tunnels"].as_array().cloned().unwrap_or_default();
    assert!(tunnels.iter().any(|t| t["state"] == "Connected"), "IKE SA not established: {gw}");
    let (_, conn) = lab.arm_json(
        Method::GET,
        "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/connections/hub-to-onprem",
        None,
    );
    assert_eq!(conn["properties"]["connectionStatus"], "Connected", "{conn}");
    // GW2: the gateway advertises the hub and the transit spoke to the site.
    let advertised: Vec<Value> = values(&lab, "getAdvertisedRoutes?peer=10.255.50.1");
    for p in ["10.0.0.0/16", "10.1.0.0/16"] {
        assert!(advertised.iter().any(|r| r["network"] == p), "{p} not advertised: {advertised:?}");
    }

    // GW1: the spoke reaches the host behind the site, ping and TCP, through the hub's gateway.
    lab.serve("onprem", 80);
    lab.sink("onprem", 81);
    assert!(within(10, || lab.ping("spoke-vm", SITE_HOST)), "spoke -> site through the hub's gateway");
    assert!(lab.tcp("spoke-vm", &format!("{SITE_HOST}:80")), "TCP from the spoke to the site");
    assert!(lab.tcp("hub-vm", &format!("{SITE_HOST}:80")), "TCP from the hub to the site");
    // $5: traffic to the hub's gateway crosses the peering and is metered as peering traffic.
    let before = lab.crossing_bytes("spoke", "hub");
    assert!(lab.bulk("spoke-vm", &format!("{SITE_HOST}:81"), 1 << 20), "1 MiB from the spoke to the site");
    assert!(
        within(5, || lab.crossing_bytes("spoke", "hub") >= before + (1 << 20)),
        "gateway-transit bytes not on the spoke -> hub peering counters ({} before, {} after)",
        before,
        lab.crossing_bytes("spoke", "hub")
    );

    // G1-G3: without useRemoteGateways the spoke has no route to the site.
    assert!(matches!(spoke_link(&lab, false), 200 | 201));
    assert!(within(10, || !lab.ping("spoke-vm", SITE_HOST)), "the spoke still reaches the site");
    assert!(lab.ping("hub-vm", SITE_HOST), "the hub still does");
    assert!(matches!(spoke_link(&lab, true), 200 | 201));
    assert!(within(15, || lab.ping("spoke-vm", SITE_HOST)), "transit back once useRemoteGateways is on");

    // U5: a route table with disableBgpRoutePropagation on the spoke's subnet removes them.
    let table = "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/routeTables/no-gateway-routes";
    let subnet = "SUB/resourceGroups/gw-rg/providers/Microsoft.Network/virtualNetworks/spoke/subnets/default";
    let body =
        json!({"properties": {"addressPrefix": "10.1.0.0/24", "routeTable": {"id": table.replace("SUB", &sub(&lab))}}});
    assert!(matches!(lab.arm_json(Method::PUT, subnet, Some(body)).0, 200 | 201));
    assert!(within(10, || !lab.ping("spoke-vm", SITE_HOST)), "routes propagated despite the route table");
    assert!(lab.ping("hub-vm", SITE_HOST), "the hub's subnet keeps them");

    // The agent (with the control plane) is killed and started again on the same store: the
    // gateway's tunnel and BGP session come back within seconds.
    let pid = up_pid(&lab);
    assert!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill").success());
    std::thread::sleep(Duration::from_millis(500));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("address").port();
    let out = std::process::Command::new(lab::TESSERA)
        .args(["up", "-f"])
        .arg(estate())
        .arg("--data-dir")
        .arg(lab.data())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .expect("tessera up again");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restarted = Instant::now();
    assert!(within(45, || lab.ping("hub-vm", SITE_HOST)), "the tunnel did not come back:\n{}", daemon_logs(&lab));
    println!("tunnel back {:.1} s after the agent's restart", restarted.elapsed().as_secs_f64());
    assert!(within(30, || learned_by_bgp(&lab)), "BGP did not come back");
}

/// The last lines of the gateway's and the site's daemon logs (for a failure's message).
fn daemon_logs(lab: &Lab) -> String {
    let mut out = String::new();
    let dirs = std::fs::read_dir(lab.data().join("agent-local.gateways")).into_iter().flatten().filter_map(Result::ok);
    for end in dirs.map(|d| d.path()) {
        for log in ["charon.log", "charon.err", "bird.err"] {
            let text = std::fs::read_to_string(end.join(log)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("== {}/{log}\n{}\n", end.display(), lines[lines.len().saturating_sub(25)..].join("\n"));
        }
        let run = |cmd: &mut std::process::Command| {
            cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
        };
        let vici = format!("unix://{}/charon.vici", end.display());
        out += &run(std::process::Command::new("swanctl").args(["--list-sas", "--uri", &vici]));
        out +=
            &run(std::process::Command::new("birdc").arg("-s").arg(end.join("bird.ctl")).args(["show", "protocols"]));
    }
    out
}

fn up_pid(lab: &Lab) -> u32 {
    let up: Value =
        serde_json::from_slice(&std::fs::read(lab.data().join("up.json")).expect("up.json")).expect("up.json is JSON");
    u32::try_from(up["pid"].as_u64().expect("pid")).expect("a pid")
}
