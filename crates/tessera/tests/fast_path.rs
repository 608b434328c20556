//! The kernel fast path (needs root, as CI runs): flows the switch decided as plain local
//! deliveries are carried by the tc programs between the VMs' veth pairs, counted for the
//! peering meter, and handed back to the switch whenever programs change — so an NSG rule that
//! denies a running connection stops it (N2) and lifting it lets it resume, exactly as with
//! the switch alone. The same scenario runs with `--no-fast-path`, where nothing is offloaded.

mod lab;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use lab::{Lab, namespace};
use reqwest::Method;
use serde_json::{Value, json};
use tessera_lab::Netns;

const SUB: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/fast-rg";

/// Packets metered from VNet `from` to VNet `to` (egress side).
fn metered(c: &Value, from: &str, to: &str) -> u64 {
    c["vnetPairs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["direction"] == "Egress"
                && p["source"].as_str().is_some_and(|s| s.ends_with(&format!("/virtualNetworks/{from}")))
                && p["destination"].as_str().is_some_and(|s| s.ends_with(&format!("/virtualNetworks/{to}")))
        })
        .map(|p| p["packets"].as_u64().unwrap_or(0))
        .sum()
}

/// Sends `n` 64-byte messages and reads each echo; false at the first that does not come back.
fn exchange(s: &mut TcpStream, n: usize) -> bool {
    (0..n).all(|i| {
        let msg = [u8::try_from(i % 251).unwrap_or(0); 64];
        let mut back = [0u8; 64];
        s.write_all(&msg).is_ok() && s.read_exact(&mut back).is_ok() && back == msg
    })
}

fn nsg(lab: &Lab, deny: bool) {
    let mut rules = vec![json!({"name": "allow-ssh", "properties": {"priority": 100, "direction": "Inbound",
        "access": "Allow", "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
        "destinationAddressPrefix": "*", "destinationPortRange": "22"}})];
    if deny {
        rules.push(json!({"name": "deny-echo", "properties": {"priority": 110, "direction": "Inbound",
            "access": "Deny", "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": "*", "destinationPortRange": "7000"}}));
    }
    let body = json!({"location": "westeurope", "properties": {"securityRules": rules}});
    let path = format!("{SUB}/providers/Microsoft.Network/networkSecurityGroups/b-nsg");
    let status = lab.arm(Method::PUT, &path, Some(body));
    assert!(matches!(status, 200 | 201), "PUT b-nsg: {status}");
}

fn scenario(fast_path: bool) {
    let mut lab = Lab::empty(tempfile::tempdir().expect("temp dir"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    lab.start_server(port);
    lab.start_agent("local", &(if fast_path { vec![] } else { vec!["--no-fast-path".to_string()] }));
    lab.apply(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/fast-path.yaml"));
    lab.wait_for_vms("local", 2);
    lab.echo_stream("fast-b", 7000);
    let to: SocketAddr = "10.211.1.4:7000".parse().expect("addr");
    let ns = Netns::open(&namespace("fast-a")).expect("namespace");
    let mut s = ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2))).expect("run").expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let _ = s.set_nodelay(true);
    assert!(exchange(&mut s, 50), "the connection across the peering works");

    // Both directions of the connection are offloaded (only with the fast path), and what the
    // kernel carried is metered like what the switch carried.
    let before = lab.counters("local");
    assert!(exchange(&mut s, 500));
    lab.eventually("the counters show the 500 messages", || metered(&lab.counters("local"), "a", "b") >= 550);
    let after = lab.counters("local");
    assert!(metered(&after, "b", "a") >= 550, "the echoes are metered: {after}");
    let offloaded = after["offloadedFlows"].as_u64().unwrap_or(0);
    let slow = after["slowPath"].as_u64().unwrap_or(0) - before["slowPath"].as_u64().unwrap_or(0);
    if fast_path {
        assert!(offloaded >= 2, "both directions are in the kernel: {after}");
        assert!(slow < 50, "the kernel carried the messages, not the switch ({slow} decided by the engine)");
    } else {
        assert_eq!(offloaded, 0, "nothing is offloaded with --no-fast-path: {after}");
    }

    // N2: a rule that denies the connection's port stops it, though the kernel carried it.
    let generation = after["generation"].as_u64().unwrap_or(0);
    nsg(&lab, true);
    lab.eventually("the agent has the new programs", || {
        lab.counters("local")["generation"].as_u64() > Some(generation)
    });
    s.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    assert!(!exchange(&mut s, 1), "a denied connection carries nothing");
    assert_eq!(lab.counters("local")["offloadedFlows"].as_u64(), Some(0), "nothing denied stays in the kernel");
    // Lifted again: TCP retransmits and the connection resumes.
    nsg(&lab, false);
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut back = [0u8; 64];
    assert!(s.read_exact(&mut back).is_ok(), "the held message arrives once the rule is gone");
    assert!(exchange(&mut s, 20), "and the connection goes on");
}

#[test]
fn the_kernel_carries_decided_flows_and_gives_them_back_when_programs_change() {
    scenario(true);
    scenario(false);
}
