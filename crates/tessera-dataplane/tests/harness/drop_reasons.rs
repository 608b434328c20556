//! Every reason the switch drops a frame for, each produced by a frame through the switch: a
//! reason without a case fails `every_drop_reason_has_a_case`.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use tessera_dataplane::aging::Timeouts;
use tessera_dataplane::{Direction, DropReason, FlowLimits, Outcome};
use tessera_engine::Limits;
use tessera_engine::load::{self, Format};

use crate::lab::{Lab, Sent, engine, example, v4};

/// Three VNets, a peered to b and to c (neither link allows forwarded traffic); NSGs on a NIC
/// and a subnet; a route table with a None route and appliance routes (to an appliance without
/// IP forwarding, to an address no NIC holds).
const ALL: &str = r#"
location: westeurope
vnets:
  - name: a
    addressSpace: [10.1.0.0/16]
    subnets:
      - { name: app, prefix: 10.1.0.0/24 }
      - { name: locked, prefix: 10.1.1.0/24, nsg: locked-nsg }
      - { name: udr, prefix: 10.1.2.0/24, routeTable: udr-rt }
      - { name: nva, prefix: 10.1.3.0/24 }
  - { name: b, addressSpace: [10.2.0.0/16], subnets: [{ name: default, prefix: 10.2.0.0/24 }] }
  - { name: c, addressSpace: [10.3.0.0/16], subnets: [{ name: default, prefix: 10.3.0.0/24 }] }
  - name: sp
    addressSpace: [10.4.0.0/16]
    subnets:
      - { name: s1, prefix: 10.4.1.0/24 }
      - { name: s2, prefix: 10.4.2.0/24 }
  - { name: tp, addressSpace: [10.5.0.0/16], subnets: [{ name: t1, prefix: 10.5.1.0/24 }] }
nsgs:
  - name: no-ssh-out
    rules: [{ name: deny-ssh-out, priority: 100, direction: Outbound, access: Deny, protocol: Tcp, destinationPorts: "22" }]
  - name: locked-nsg
    rules: [{ name: deny-rdp, priority: 100, direction: Inbound, access: Deny, protocol: Tcp, destinationPorts: "3389" }]
routeTables:
  - name: udr-rt
    routes:
      - { name: blackhole, prefix: 10.1.8.0/24, nextHop: None }
      - { name: via-nva-off, prefix: 10.1.4.0/24, nextHop: VirtualAppliance, nextHopIp: 10.1.3.4 }
      - { name: via-nobody, prefix: 10.1.5.0/24, nextHop: VirtualAppliance, nextHopIp: 10.1.3.99 }
vms:
  - { name: app-vm, subnet: a/app, ip: 10.1.0.4 }
  - { name: guarded-vm, subnet: a/app, ip: 10.1.0.5, nsg: no-ssh-out }
  - { name: locked-vm, subnet: a/locked, ip: 10.1.1.4 }
  - { name: udr-vm, subnet: a/udr, ip: 10.1.2.4 }
  - { name: nva-off, subnet: a/nva, ip: 10.1.3.4 }
  - { name: nva-on, subnet: a/nva, ip: 10.1.3.5, ipForwarding: true }
  - { name: b-vm, subnet: b/default, ip: 10.2.0.4 }
  - { name: c-vm, subnet: c/default, ip: 10.3.0.4 }
  - { name: s1-vm, subnet: sp/s1, ip: 10.4.1.4 }
  - { name: s2-vm, subnet: sp/s2, ip: 10.4.2.4 }
  - { name: t1-vm, subnet: tp/t1, ip: 10.5.1.4 }
peerings:
  - { from: a, to: b, reverse: {} }
  - { from: a, to: c, reverse: {} }
  - { from: sp, to: tp, localSubnets: [s1], remoteSubnets: [t1], reverse: { localSubnets: [t1], remoteSubnets: [s1] } }
"#;

fn reason(sent: Sent) -> Option<DropReason> {
    match sent {
        Sent::Drop(r) => Some(r),
        _ => None,
    }
}

/// A TCP SYN from `vm` to `dst`, port `port`, on a switch of topology `yaml`.
fn syn(lab: &mut Lab, vm: &str, dst: &str, port: u16) -> Option<DropReason> {
    reason(lab.send(vm, lab.tcp(vm, v4(dst), 40000, port, "S")))
}

/// The topology restored from its snapshot with b's link to a left Initiated: a still routes
/// to b, but the link back is not Connected (only a snapshot can hold that: P1-P3).
fn link_back_initiated() -> Lab {
    let mut doc = load::export(&engine(ALL));
    for r in doc["resources"].as_array_mut().into_iter().flatten() {
        if r["type"] == "Microsoft.Network/virtualNetworks" && r["name"] == "b" {
            for l in r["properties"]["virtualNetworkPeerings"].as_array_mut().into_iter().flatten() {
                l["properties"]["peeringState"] = Value::from("Initiated");
            }
        }
    }
    let e = load::load(&doc.to_string(), Format::Json, Limits::default()).expect("the snapshot restores");
    Lab::of(Arc::new(e), FlowLimits::default())
}

fn case(r: DropReason) -> Option<DropReason> {
    let all = || Lab::new(ALL);
    match r {
        DropReason::Unparsable => reason(all().send("app-vm", vec![0u8; 10])),
        DropReason::UnsupportedProtocol => {
            let mut lab = all();
            let mut frame = lab.udp("app-vm", v4("10.1.0.5"), 1, 2);
            frame[23] = 47; // GRE
            reason(lab.send("app-vm", frame))
        }
        DropReason::SpoofedSource => {
            let mut lab = all();
            let frame = lab.tcp_from("app-vm", v4("10.1.0.99"), v4("10.1.0.5"), 1, 2, "S");
            reason(lab.send("app-vm", frame))
        }
        DropReason::UnknownPort => {
            let mut lab = all();
            let mut frame = lab.tcp("app-vm", v4("10.1.0.5"), 1, 2, "S");
            match lab.switch.process(9_999, Direction::Outbound, &mut frame) {
                Outcome::Drop(r) => Some(r),
                _ => None,
            }
        }
        DropReason::NoRoute => syn(&mut all(), "udr-vm", "10.1.8.4", 22),
        DropReason::NsgDeniedOutbound => syn(&mut all(), "guarded-vm", "10.1.0.4", 22),
        DropReason::NsgDeniedInbound => syn(&mut all(), "app-vm", "10.1.1.4", 3389),
        DropReason::PeeringNotConnected => syn(&mut link_back_initiated(), "app-vm", "10.2.0.4", 22),
        DropReason::ForwardedTrafficNotAllowed => {
            // The appliance forwards b's packet into c, whose link to a refuses forwarded traffic.
            let mut lab = all();
            let frame = lab.tcp_from("nva-on", v4("10.2.0.4"), v4("10.3.0.4"), 1, 22, "S");
            reason(lab.send("nva-on", frame))
        }
        // SP5: s2 is not among the peered subnets.
        DropReason::SubnetNotPeered => syn(&mut all(), "s2-vm", "10.5.1.4", 22),
        DropReason::NoSuchHost => syn(&mut all(), "app-vm", "10.1.0.99", 22),
        DropReason::ApplianceForwardingDisabled => syn(&mut all(), "udr-vm", "10.1.4.4", 22),
        DropReason::ApplianceUnreachable => syn(&mut all(), "udr-vm", "10.1.5.4", 22),
        DropReason::BasicLoadBalancerOverGlobalPeering => {
            syn(&mut Lab::new(&example("global-peering-ilb.yaml")), "west-vm", "10.10.0.100", 80)
        }
        // The Standard frontend has a rule for port 80 only.
        DropReason::NoLoadBalancerBackend => {
            syn(&mut Lab::new(&example("global-peering-ilb.yaml")), "west-vm", "10.10.0.101", 443)
        }
        DropReason::Internet => syn(&mut all(), "app-vm", "8.8.8.8", 443),
        DropReason::Gateway => syn(&mut Lab::new(&example("gateway-transit.yaml")), "spoke1-vm", "192.168.1.1", 22),
        DropReason::DestinationNotOnThisHost => {
            let mut lab = Lab::on_host(engine(ALL), &["app-vm"], &[]);
            syn(&mut lab, "app-vm", "10.2.0.4", 22)
        }
        DropReason::FlowTableFull => {
            // One entry: the first flow takes it (its reply has no room), the second has none.
            let mut lab = Lab::with_capacity(ALL, 1);
            assert_eq!(syn(&mut lab, "app-vm", "10.1.0.5", 22), None);
            syn(&mut lab, "app-vm", "10.1.0.5", 23)
        }
        DropReason::FlowQuotaExceeded => {
            let mut lab =
                Lab::with_limits(ALL, FlowLimits { capacity: 100, port_quota: 2, timeouts: Timeouts::default() });
            assert_eq!(syn(&mut lab, "app-vm", "10.1.0.5", 22), None);
            syn(&mut lab, "app-vm", "10.1.0.5", 23)
        }
    }
}

#[test]
fn every_drop_reason_has_a_case() {
    let mut covered = BTreeSet::new();
    for r in DropReason::ALL {
        assert_eq!(case(*r), Some(*r), "the case of {r:?}");
        covered.insert(*r);
    }
    assert_eq!(covered.len(), DropReason::ALL.len(), "DropReason::ALL lists a reason twice");
}

/// Each engine cause is the drop reason the switch counts, typed all the way (no string
/// between them); causes the switch cannot tell apart share a reason.
#[test]
fn every_forwarding_cause_maps_to_a_drop_reason_of_the_switch() {
    use tessera_engine::forward::Cause;
    // Every cause the switch can meet keeps its own reason, but the peering ones the switch
    // counts together and those only a multi-step walk sees.
    let reasons: BTreeSet<DropReason> = Cause::ALL.iter().map(|c| DropReason::from(*c)).collect();
    assert_eq!(reasons.len(), 12, "{reasons:?}");
    assert_eq!(DropReason::from(Cause::NsgDeniedInbound), DropReason::NsgDeniedInbound);
    assert_eq!(DropReason::from(Cause::NsgDeniedOutbound), DropReason::NsgDeniedOutbound);
    assert_eq!(DropReason::from(Cause::ForwardedTrafficNotAllowed), DropReason::ForwardedTrafficNotAllowed);
}
