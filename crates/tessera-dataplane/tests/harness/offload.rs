//! What the switch lets a kernel fast path carry (`Switch::offload`), and how the frames such a
//! path carried are counted (`Switch::account`): only plain local deliveries decided under the
//! current programs; rewrites, other hosts and drops stay with the switch.

use crate::TWO_VNETS;
use crate::lab::{Lab, Sent, delivered, example, v4, vnet_id};
use tessera_dataplane::counters::{Count, TrafficDirection};
use tessera_dataplane::wire::GATEWAY_MAC;

#[test]
fn a_delivered_flow_is_offered_with_the_switchs_mac_rewrite() {
    let mut lab = Lab::new(TWO_VNETS);
    let a = lab.ip("a-vm");
    let frame = lab.tcp("b-vm", a, 40000, 80, "S");
    // Nothing before the switch decided it.
    assert_eq!(lab.switch.offload(lab.port("b-vm"), &frame), None);
    let (to, out) = delivered(lab.send("b-vm", frame.clone()));
    let o = lab.switch.offload(lab.port("b-vm"), &out).expect("a plain delivery is offered");
    assert_eq!(o.to, to);
    assert_eq!(o.to, lab.port("a-vm"));
    assert_eq!(&o.macs[..6], &lab.mac("a-vm"));
    assert_eq!(&o.macs[6..], &GATEWAY_MAC);
    // The key is the flow at the port it leaves, as parsed from the frame.
    assert_eq!((o.key.port, o.key.sport, o.key.dport, o.key.proto), (lab.port("b-vm"), 40000, 80, 6));
    // The frames the switch writes carry exactly these addresses.
    assert_eq!(&out[..12], &o.macs);
}

#[test]
fn denied_and_stale_flows_are_not_offered() {
    let mut lab = Lab::new(TWO_VNETS);
    let a = lab.ip("a-vm");
    // a-nsg denies inbound TCP 22 (N2): dropped, not offered.
    let denied = lab.tcp("b-vm", a, 40001, 22, "S");
    assert!(matches!(lab.send("b-vm", denied.clone()), Sent::Drop(_)));
    assert_eq!(lab.switch.offload(lab.port("b-vm"), &denied), None);
    // a-nsg denies every outbound flow of a-vm.
    let out = lab.udp("a-vm", lab.ip("b-vm"), 5000, 53);
    assert!(matches!(lab.send("a-vm", out.clone()), Sent::Drop(_)));
    assert_eq!(lab.switch.offload(lab.port("a-vm"), &out), None);
    // An allowed flow is offered until new programs come; then it is not, until the switch
    // decided it again.
    let (_, web) = delivered(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "S")));
    assert!(lab.switch.offload(lab.port("b-vm"), &web).is_some());
    lab.swap(&TWO_VNETS.replace("destinationPorts: \"80\"", "destinationPorts: \"8080\""));
    assert_eq!(lab.switch.offload(lab.port("b-vm"), &web), None);
    assert!(matches!(lab.send("b-vm", lab.tcp("b-vm", a, 40000, 80, "A")), Sent::Drop(_)));
    assert_eq!(lab.switch.offload(lab.port("b-vm"), &web), None);
}

#[test]
fn load_balanced_flows_stay_with_the_switch() {
    let mut lab = Lab::new(&example("global-peering-ilb.yaml"));
    let frame = lab.tcp("west-vm", v4("10.10.0.101"), 40000, 80, "S");
    let (_, out) = delivered(lab.send("west-vm", frame.clone()));
    // The destination rewrite (NAT) is the switch's to do.
    assert_eq!(lab.switch.offload(lab.port("west-vm"), &frame), None);
    assert_eq!(lab.switch.offload(lab.port("west-vm"), &out), None);
}

#[test]
fn frames_carried_outside_the_switch_count_for_ports_and_the_peering_meter() {
    let mut lab = Lab::new(TWO_VNETS);
    let (b, a) = (lab.port("b-vm"), lab.port("a-vm"));
    let before = (lab.switch.counters().received(b), lab.switch.counters().delivered(a));
    let pair = |lab: &Lab, d| lab.switch.counters().between(&vnet_id(lab, "b"), &vnet_id(lab, "a"), d);
    let (egress, ingress) = (pair(&lab, TrafficDirection::Egress), pair(&lab, TrafficDirection::Ingress));
    lab.switch.account(b, a, Count { packets: 3, bytes: 4500 });
    assert_eq!(lab.switch.counters().received(b).bytes, before.0.bytes + 4500);
    assert_eq!(lab.switch.counters().delivered(a).packets, before.1.packets + 3);
    assert_eq!(pair(&lab, TrafficDirection::Egress).bytes, egress.bytes + 4500);
    assert_eq!(pair(&lab, TrafficDirection::Ingress).packets, ingress.packets + 3);
    // Within one VNet nothing crosses a peering.
    let mut same = Lab::new(&example("hub-spoke-nva.yaml"));
    let pairs = same.switch.counters().vnet_pairs().len();
    let (p, q) = (same.port("hub-vm"), same.port("hub-nva"));
    same.switch.account(p, q, Count { packets: 1, bytes: 100 });
    assert_eq!(same.switch.counters().vnet_pairs().len(), pairs);
}
