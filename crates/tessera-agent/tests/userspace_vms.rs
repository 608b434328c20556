//! The namespace-VM scenarios again with userspace VMs (smoltcp stacks on the switch's ports),
//! without root: `tests/lab/estate.yaml`, checked from inside the VMs — ping, TCP echo, HTTP.
//! Rules: P1/P2, P3, R3, U4, N1/N2, LB1, overlapping VNets that are not peered stay apart; and
//! a thousand-VM estate in which every VM reaches the hub.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use tessera_agent::fabric::Fabric;
use tessera_agent::uvm::Service;
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn engine(text: &str) -> Arc<Engine> {
    Arc::new(load::load(text, Format::Yaml, Limits::default()).expect("estate loads"))
}

fn estate() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/estate.yaml")).expect("estate")
}

#[test]
fn userspace_vms_talk_exactly_as_the_topology_allows() {
    let text = estate();
    let mut f = Fabric::new(engine(&text));
    assert_eq!(f.len(), 10, "a VM per NIC");
    for vm in ["spoke1-vm", "spoke2-vm", "spoke3-vm"] {
        f.listen(vm, 80, Service::Echo);
    }
    f.listen("spoke2-vm", 3389, Service::Echo);
    f.listen("web1", 80, Service::Http);

    // P1/P2: regional peering, both ways, ping and TCP.
    assert!(f.ping("hub-vm", ip("10.1.0.4")), "hub -> spoke1");
    assert!(f.ping("spoke1-vm", ip("10.0.0.4")), "spoke1 -> hub");
    assert!(f.echo("hub-vm", ip("10.1.0.4"), 80), "TCP across peering");

    // U4: spoke1 -> spoke2 through the appliance, which forwards.
    assert!(f.echo("spoke1-vm", ip("10.2.0.4"), 80), "TCP through the NVA");
    assert!(f.vm("hub-nva").forwarded() > 0, "the appliance forwarded the packets");

    // N1/N2: an NSG deny between peered VNets.
    assert!(!f.echo("hub-vm", ip("10.2.0.4"), 3389), "NSG deny");
    assert!(f.echo("hub-vm", ip("10.2.0.4"), 80), "allowed port");

    // R3: not transitive.
    assert!(f.echo("hub-vm", ip("10.3.0.4"), 80), "hub reaches spoke3");
    assert!(!f.ping("spoke3-vm", ip("10.1.0.4")), "spoke3 -> spoke1");
    assert!(!f.echo("spoke1-vm", ip("10.3.0.4"), 80), "spoke1 -> spoke3");

    // P3: one link only.
    assert!(!f.ping("lone-vm", ip("10.0.0.4")), "one link only");
    assert!(!f.ping("hub-vm", ip("10.7.0.4")), "one link only, the other way");

    // LB1: over global peering the Standard frontend answers, the Basic one does not; over
    // regional peering both do.
    let standard = f.http_get("hub-vm", ip("10.10.0.101"), 80).unwrap_or_default();
    assert!(standard.starts_with("HTTP/1.1 200 OK") && standard.contains("web1"), "Standard ILB: {standard}");
    assert_eq!(f.http_get("hub-vm", ip("10.10.0.100"), 80), None, "Basic ILB over global peering");
    assert!(f.http_get("neighbour-vm", ip("10.10.0.100"), 80).is_some(), "Basic ILB over regional peering");

    // Same address space, not peered.
    assert!(!f.ping("iso-a-vm", ip("10.9.0.5")), "iso-a cannot reach iso-b");
    assert!(!f.ping("iso-b-vm", ip("10.9.0.4")), "iso-b cannot reach iso-a");
    assert!(!f.ping("hub-vm", ip("10.9.0.4")), "nobody else reaches them");

    // P3: the link back makes the peering Connected (new programs swapped in); removing it
    // stops traffic again.
    let both = text.replace("  - { from: lone, to: hub }", "  - { from: lone, to: hub, reverse: {} }");
    assert_ne!(both, text);
    f.swap(engine(&both));
    assert!(f.ping("lone-vm", ip("10.0.0.4")), "Connected: lone -> hub");
    assert!(f.ping("hub-vm", ip("10.7.0.4")), "and back");
    f.swap(engine(&text));
    assert!(!f.ping("lone-vm", ip("10.0.0.4")), "a link gone: nothing passes");
}

/// A hub and 10 spokes of 100 VMs each: every one of the 1,000 spoke VMs pings the hub VM at
/// once, and a VM of one spoke cannot reach another spoke (R3).
#[test]
fn a_thousand_userspace_vms_reach_the_hub() {
    let mut y = String::from("location: westeurope\nresourceGroup: scale-rg\nvnets:\n");
    y.push_str("  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: default, prefix: 10.0.0.0/24 }] }\n");
    for s in 1..=10 {
        y.push_str(&format!(
            "  - {{ name: s{s}, addressSpace: [10.{s}.0.0/16], subnets: [{{ name: default, prefix: 10.{s}.0.0/24 }}] }}\n"
        ));
    }
    y.push_str("vms:\n  - { name: hub-vm, subnet: hub/default, ip: 10.0.0.4 }\n");
    for s in 1..=10 {
        for v in 0..100 {
            y.push_str(&format!("  - {{ name: s{s}-vm{v}, subnet: s{s}/default, ip: 10.{s}.0.{} }}\n", v + 4));
        }
    }
    y.push_str("peerings:\n");
    for s in 1..=10 {
        y.push_str(&format!("  - {{ from: hub, to: s{s}, reverse: {{}} }}\n"));
    }
    let mut f = Fabric::new(engine(&y));
    assert_eq!(f.len(), 1001);
    let pairs: Vec<(String, Ipv4Addr)> =
        (1..=10).flat_map(|s| (0..100).map(move |v| (format!("s{s}-vm{v}"), ip("10.0.0.4")))).collect();
    let answered = f.ping_all(&pairs);
    assert_eq!(answered, 1000, "every spoke VM reaches the hub");
    assert!(!f.ping("s1-vm0", ip("10.2.0.4")), "spoke to spoke is not transitive");
}
