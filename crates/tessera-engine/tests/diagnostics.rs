//! Diagnostics refuse bad requests with ARM errors (never a panic) and change nothing:
//! NW1 `nextHop`, NW2 `ipFlowVerify`, NW3 `connectivityCheck`, and name resolution.

use std::path::Path;

use tessera_engine::diag::{effective, resolve, watcher};
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};
use tessera_model::security::Direction;
use tessera_model::{ArmError, Kind, ResourceId};

fn hub_spoke() -> Engine {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hub-spoke-nva.yaml"))
        .expect("example");
    load::load(&text, Format::Yaml, Limits::default()).expect("valid example")
}

fn vm(e: &Engine, name: &str) -> ResourceId {
    resolve::resolve(e, Kind::VirtualMachine, name).expect("vm")
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, ArmError>, code: &str, status: u16) {
    match r {
        Ok(v) => panic!("expected {status} {code}, got {v:?}"),
        Err(e) => assert_eq!((e.code.as_str(), e.status), (code, status), "{e}"),
    }
}

fn hop(e: &Engine, vm_name: &str, src: &str, dst: &str, nic: Option<ResourceId>) -> watcher::NextHopParameters {
    watcher::NextHopParameters {
        target_resource_id: vm(e, vm_name),
        source_ip_address: src.into(),
        destination_ip_address: dst.into(),
        target_nic_resource_id: nic,
    }
}

fn flow(e: &Engine, protocol: &str, local: &str, local_port: &str) -> watcher::IpFlowParameters {
    watcher::IpFlowParameters {
        target_resource_id: vm(e, "spoke2-vm"),
        direction: Direction::Inbound,
        protocol: protocol.into(),
        local_port: local_port.into(),
        remote_port: "50000".into(),
        local_ip_address: local.into(),
        remote_ip_address: "10.1.0.4".into(),
        target_nic_resource_id: None,
    }
}

#[test]
fn next_hop_refusals() {
    let e = hub_spoke();
    let before = format!("{:?}", e.state());
    refused(watcher::next_hop(&e, &hop(&e, "spoke1-vm", "10.9.9.9", "10.2.0.4", None)), "InvalidSourceIPAddress", 400);
    refused(watcher::next_hop(&e, &hop(&e, "spoke1-vm", "not-an-ip", "10.2.0.4", None)), "InvalidIPAddress", 400);
    refused(watcher::next_hop(&e, &hop(&e, "spoke1-vm", "10.1.0.4", "10.2.0", None)), "InvalidIPAddress", 400);
    let other_nic = resolve::resolve_nic(&e, "hub-vm").expect("nic");
    refused(
        watcher::next_hop(&e, &hop(&e, "spoke1-vm", "10.1.0.4", "10.2.0.4", Some(other_nic))),
        "NetworkInterfaceNotAttachedToVirtualMachine",
        400,
    );
    let mut missing = hop(&e, "spoke1-vm", "10.1.0.4", "10.2.0.4", None);
    missing.target_resource_id =
        ResourceId::top(missing.target_resource_id.subscription(), "network-rg", Kind::VirtualMachine, "ghost");
    refused(watcher::next_hop(&e, &missing), "ResourceNotFound", 404);
    assert_eq!(before, format!("{:?}", e.state()));
}

#[test]
fn ip_flow_verify_refusals() {
    let e = hub_spoke();
    refused(watcher::ip_flow_verify(&e, &flow(&e, "ICMP", "10.2.0.4", "22")), "InvalidProtocol", 400);
    refused(watcher::ip_flow_verify(&e, &flow(&e, "TCP", "10.2.0.4", "http")), "InvalidPort", 400);
    refused(watcher::ip_flow_verify(&e, &flow(&e, "TCP", "10.2.0.4", "70000")), "InvalidPort", 400);
    refused(watcher::ip_flow_verify(&e, &flow(&e, "TCP", "10.2.0.5", "22")), "InvalidSourceIPAddress", 400);
    // `*` is accepted as a port.
    let answer = watcher::ip_flow_verify(&e, &flow(&e, "TCP", "10.2.0.4", "*")).expect("star port");
    assert_eq!(answer["access"], "Allow");
}

#[test]
fn connectivity_check_refusals() {
    let e = hub_spoke();
    let source = |id: ResourceId| watcher::ConnectivitySource { resource_id: id, port: None };
    let nic = resolve::resolve_nic(&e, "spoke1-vm").expect("nic");
    let to = |address: Option<&str>| watcher::ConnectivityDestination {
        resource_id: None,
        address: address.map(str::to_string),
        port: Some(22),
    };
    let params = |src: ResourceId, dst, protocol: &str| watcher::ConnectivityParameters {
        source: source(src),
        destination: dst,
        protocol: Some(protocol.into()),
    };
    refused(watcher::connectivity_check(&e, &params(nic, to(Some("10.2.0.4")), "Tcp")), "InvalidSource", 400);
    refused(watcher::connectivity_check(&e, &params(vm(&e, "spoke1-vm"), to(None), "Tcp")), "InvalidDestination", 400);
    refused(
        watcher::connectivity_check(&e, &params(vm(&e, "spoke1-vm"), to(Some("10.2.0.4")), "Gopher")),
        "InvalidProtocol",
        400,
    );
    refused(
        watcher::connectivity_check(&e, &params(vm(&e, "spoke1-vm"), to(Some("nowhere")), "Tcp")),
        "InvalidIPAddress",
        400,
    );
}

#[test]
fn name_resolution_refusals() {
    let e = hub_spoke();
    refused(resolve::resolve(&e, Kind::VirtualMachine, "ghost"), "ResourceNotFound", 404);
    refused(resolve::resolve(&e, Kind::VirtualMachine, "/subscriptions/x"), "InvalidResourceId", 400);
    refused(resolve::resolve_nic(&e, "ghost"), "ResourceNotFound", 404);
    let vnet = resolve::resolve(&e, Kind::VirtualNetwork, "hub").expect("vnet");
    refused(resolve::resolve_nic(&e, vnet.as_str()), "InvalidResourceId", 400);
    refused(effective::effective_route_table(&e, &vnet.child("subnets", "x")), "ResourceNotFound", 404);
    // Two VMs with one name in two resource groups: the short name is ambiguous.
    let text = "vnets:\n  - { name: a, addressSpace: [10.0.0.0/16], subnets: [{ name: s, prefix: 10.0.0.0/24 }] }\n\
                vms:\n  - { name: twin, subnet: a/s }\n  - { name: twin, subnet: a/s, resourceGroup: other }\n";
    let e = load::load(text, Format::Yaml, Limits::default()).expect("valid");
    refused(resolve::resolve(&e, Kind::VirtualMachine, "twin"), "AmbiguousResourceName", 400);
}
