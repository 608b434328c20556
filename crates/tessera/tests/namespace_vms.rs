//! End to end with real packets (needs root, as CI runs): `tessera up` starts the control plane
//! and a host agent, the agent makes a namespace VM behind a TAP port for every VM of
//! `tests/lab/estate.yaml`, and the kernels of those VMs talk through the switch — ping
//! (`tessera exec … -- ping`) and TCP (sockets opened inside the namespaces).
//!
//! Rules: P1/P2 (peered VNets act as one), P3 (nothing while only one link exists), R3 (not
//! transitive), U4 (service chaining through an appliance whose kernel forwards), N1/N2 (an NSG
//! blocks between peered VNets), LB1 (Basic ILB frontend unreachable over global peering),
//! overlapping address spaces of VNets that are not peered stay apart.

mod lab;

use std::path::{Path, PathBuf};

use lab::Lab;
use serde_json::json;

fn estate() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab/estate.yaml")
}

#[test]
fn namespace_vms_talk_exactly_as_the_topology_allows() {
    let lab = Lab::up(&estate());

    // P1/P2: across regional peering, both ways.
    assert!(lab.ping("hub-vm", "10.1.0.4"), "hub -> spoke1 over peering");
    assert!(lab.ping("spoke1-vm", "10.0.0.4"), "spoke1 -> hub over peering");
    for vm in ["spoke1-vm", "spoke2-vm", "web1"] {
        lab.serve(vm, 80);
    }
    lab.serve("spoke2-vm", 3389);
    lab.serve("spoke3-vm", 80);
    assert!(lab.tcp("hub-vm", "10.1.0.4:80"), "TCP across peering");

    // U4: spoke1 -> spoke2 through the appliance, whose kernel forwards (one hop: TTL 63).
    assert!(lab.tcp("spoke1-vm", "10.2.0.4:80"), "TCP through the NVA");
    assert_eq!(lab.ping_ttl("spoke1-vm", "10.2.0.4"), Some(63), "the reply crossed the appliance");

    // N1/N2: spoke2's NSG denies TCP 3389 inbound, even from a peered VNet.
    assert!(!lab.tcp("hub-vm", "10.2.0.4:3389"), "NSG deny between peered VNets");
    assert!(lab.tcp("hub-vm", "10.2.0.4:80"), "the same VM on an allowed port");

    // R3: spoke3 has no route through the hub; peering is not transitive.
    assert!(lab.tcp("hub-vm", "10.3.0.4:80"), "hub reaches spoke3");
    assert!(!lab.ping("spoke3-vm", "10.1.0.4"), "spoke3 -> spoke1 is not transitive");
    assert!(!lab.tcp("spoke1-vm", "10.3.0.4:80"), "spoke1 -> spoke3 is not transitive");

    // P3: lone -> hub is Initiated (one link): nothing passes.
    assert!(!lab.ping("lone-vm", "10.0.0.4"), "one link only");
    assert!(!lab.ping("hub-vm", "10.7.0.4"), "one link only, the other way");

    // LB1: over global peering the Standard ILB frontend works, the Basic one does not.
    assert!(lab.tcp("hub-vm", "10.10.0.101:80"), "Standard ILB over global peering");
    assert!(!lab.tcp("hub-vm", "10.10.0.100:80"), "Basic ILB over global peering");
    assert!(lab.tcp("hub-vm", "10.10.0.4:80"), "the backend itself over global peering");
    assert!(lab.tcp("neighbour-vm", "10.10.0.100:80"), "Basic ILB over regional peering");
    assert!(lab.tcp("neighbour-vm", "10.10.0.101:80"), "Standard ILB over regional peering");

    // Same address space, not peered: isolated.
    assert!(!lab.ping("iso-a-vm", "10.9.0.5"), "iso-a cannot reach iso-b's address");
    assert!(!lab.ping("iso-b-vm", "10.9.0.4"), "iso-b cannot reach iso-a's address");
    assert!(!lab.ping("hub-vm", "10.9.0.4"), "nobody else reaches them");

    // P3 again: once the link back exists the peering is Connected and packets pass; deleting
    // it stops them.
    let sub = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/lab-rg/providers/Microsoft.Network";
    let link = format!("{sub}/virtualNetworks/hub/virtualNetworkPeerings/hub-to-lone");
    let body = json!({"properties": {"remoteVirtualNetwork": {"id": format!("{sub}/virtualNetworks/lone")},
                                     "allowVirtualNetworkAccess": true}});
    assert!(matches!(lab.arm(reqwest::Method::PUT, &link, Some(body)), 200 | 201));
    lab.eventually("lone -> hub after the second link", || lab.ping("lone-vm", "10.0.0.4"));
    assert!(lab.ping("hub-vm", "10.7.0.4"), "and back");
    assert!(matches!(lab.arm(reqwest::Method::DELETE, &link, None), 200 | 202 | 204));
    lab.eventually("nothing once a link is deleted", || !lab.ping("lone-vm", "10.0.0.4"));
}
