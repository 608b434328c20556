//! What a gateway's running instance reports (issue 16): learned routes become
//! VirtualNetworkGateway routes (GWY3), and an instance moved to another host starts from nothing
//! (refusals of reports: `tests/refusals/gateways.rs`).

use tessera_engine::diag::resolve;
use tessera_engine::load::{self, Format};
use tessera_engine::{Change, Engine, Limits};
use tessera_model::gateway::{BgpPeerStatus, GatewayInstance, GatewayRoute};
use tessera_model::{HOST_TAG, IpNet, Resource, ResourceId};

const HUB: &str = r#"
location: westeurope
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - { name: default, prefix: 10.0.0.0/24 }
      - { name: GatewaySubnet, prefix: 10.0.255.0/27 }
gateways:
  - { name: hub-gw, vnet: hub, type: Vpn, sku: VpnGw1, asn: 65515, publicIp: true }
sites:
  - { name: onprem, addressSpace: [10.255.50.1/32], gatewayIp: 203.0.113.10, asn: 65050, bgpPeeringAddress: 10.255.50.1 }
connections:
  - { name: hub-to-onprem, gateway: hub-gw, site: onprem, bgp: true, sharedKey: k }
vms:
  - { name: hub-vm, subnet: hub/default, ip: 10.0.0.4 }
"#;

fn engine() -> Engine {
    load::load(HUB, Format::Yaml, Limits::default()).expect("valid topology")
}

fn gateway(e: &Engine) -> ResourceId {
    e.state().gateways.keys().next().expect("the gateway").clone()
}

fn learned(network: &str) -> GatewayRoute {
    GatewayRoute {
        local_address: "10.0.255.4".into(),
        network: network.parse().expect("a prefix"),
        next_hop: "10.255.50.1".into(),
        source_peer: "10.255.50.1".into(),
        origin: "EBgp".into(),
        as_path: "65050".into(),
        weight: 32768,
    }
}

fn report(routes: Vec<GatewayRoute>) -> GatewayInstance {
    GatewayInstance {
        host: "local".into(),
        bgp_peers: vec![BgpPeerStatus {
            local_address: "10.0.255.4".into(),
            neighbor: "10.255.50.1".into(),
            asn: 65050,
            state: "Connected".into(),
            routes_received: routes.len() as u64,
        }],
        learned_routes: routes,
        ..Default::default()
    }
}

/// The hub VM's gateway routes (prefix, active).
fn gateway_routes(e: &Engine) -> Vec<(IpNet, bool)> {
    let nic = resolve::resolve_nic(e, "hub-vm").expect("nic");
    let p = e.program(&nic).expect("program");
    let routes = p.subnet.routes.routes.iter().filter(|r| format!("{:?}", r.source) == "VirtualNetworkGateway");
    routes.map(|r| (r.prefix, r.active)).collect()
}

#[test]
fn learned_routes_become_gateway_routes() {
    let mut e = engine();
    let id = gateway(&e);
    assert!(!gateway_routes(&e).iter().any(|(p, _)| p.to_string() == "192.168.50.0/24"));
    e.apply(Change::ReportGateway { id, instance: report(vec![learned("192.168.50.0/24")]) }).expect("taken");
    assert!(
        gateway_routes(&e).contains(&("192.168.50.0/24".parse().expect("a prefix"), true)),
        "{:?}",
        gateway_routes(&e)
    );
}

#[test]
fn an_instance_moved_to_another_host_reports_afresh() {
    let mut e = engine();
    let id = gateway(&e);
    e.apply(Change::ReportGateway { id: id.clone(), instance: report(vec![learned("192.168.50.0/24")]) })
        .expect("taken");
    // The same document again keeps what the instance reported.
    let mut gw = e.state().gateways[&id].clone();
    e.apply(Change::Put(Resource::VirtualNetworkGateway(gw.clone()))).expect("put");
    assert!(e.state().gateways[&id].properties.instance.is_some(), "kept on the same host");
    // Placed on another host: the old host's routes go with it.
    gw.tags.insert(HOST_TAG.into(), "h2".into());
    e.apply(Change::Put(Resource::VirtualNetworkGateway(gw))).expect("moved");
    assert!(e.state().gateways[&id].properties.instance.is_none());
    assert!(!gateway_routes(&e).iter().any(|(p, _)| p.to_string() == "192.168.50.0/24"), "{:?}", gateway_routes(&e));
}
