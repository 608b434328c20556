//! What a traffic matrix costs on the example topologies ($1–$7, issue 17 point 3): every
//! peering crossing billed on both sides, again at each crossing through an appliance, a
//! crossing to a remote gateway billed as peering, global peering at each side's zone rate.

use std::path::Path;

use tessera_engine::diag::cost::{CostReport, TrafficMatrix, cost};
use tessera_engine::load::{self, Format};
use tessera_engine::pricing::PriceSheet;
use tessera_engine::{Engine, Limits};

fn example(name: &str) -> Engine {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    load::load(&std::fs::read_to_string(path).expect("example"), Format::Yaml, Limits::default()).expect("valid")
}

fn report(engine: &Engine, flows: &str) -> CostReport {
    let matrix: TrafficMatrix = serde_yaml_ng::from_str(flows).expect("a traffic matrix");
    cost(engine, &PriceSheet::default(), &matrix).expect("priced")
}

fn cents(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

#[test]
fn through_a_hub_appliance_a_flow_pays_every_crossing() {
    // $6: spoke1 -> hub NVA -> spoke2 crosses two peerings; each crossing is billed egress on
    // the sender and ingress on the receiver ($2) at the intra-region rate ($3): 1,000 GB cost
    // 4 x 10 = 40 USD, where a direct spoke1-spoke2 peering would cost 20.
    let e = example("hub-spoke-nva.yaml");
    let r = report(&e, "flows:\n  - { from: spoke1-vm, to: spoke2-vm, gbPerMonth: 1000 }\n");
    let f = &r.flows[0];
    assert!(f.reachable, "{f:?}");
    assert_eq!(f.path, ["spoke1", "hub", "spoke2"]);
    assert_eq!(f.peering_crossings, 2);
    assert_eq!(f.charges.len(), 4);
    assert_eq!(cents(f.cost), 4000);
    assert_eq!(f.direct_peering_cost.map(cents), Some(2000));
    assert_eq!((cents(r.total), cents(r.direct_peering_total)), (4000, 2000));
    let meters: Vec<(&str, i64, i64)> =
        r.meters.iter().map(|m| (m.meter.as_str(), m.gb.round() as i64, cents(m.cost))).collect();
    assert_eq!(
        meters,
        [("Egress data processed (Global)", 2000, 2000), ("Ingress data processed (Global)", 2000, 2000)]
    );
    // $1, $6: within one VNet nothing is billed.
    let r = report(&e, "flows:\n  - { from: spoke1-vm, to: spoke1-vm, gbPerMonth: 1000 }\n");
    assert_eq!((r.flows[0].peering_crossings, cents(r.total)), (0, 0));
}

#[test]
fn the_crossing_to_a_remote_gateway_is_peering_traffic() {
    // $5: spoke1 reaches on-premises through the hub's gateway (gateway transit): the spoke ->
    // hub crossing is billed as peering; what leaves through the tunnel is not peering.
    let e = example("gateway-transit.yaml");
    let r = report(&e, "flows:\n  - { from: spoke1-vm, to: 192.168.1.4, gbPerMonth: 500 }\n");
    let f = &r.flows[0];
    assert!(f.reachable, "{f:?}");
    assert_eq!(f.path, ["spoke1", "hub"]);
    assert_eq!(f.peering_crossings, 1);
    assert_eq!(cents(f.cost), 1000, "500 GB x (0.01 egress + 0.01 ingress)");
    assert_eq!(f.direct_peering_cost, None, "on-premises is in no VNet");
    assert_eq!(f.charges[0].vnet.name(), "spoke1");
    assert_eq!(f.charges[1].vnet.name(), "hub");
    // An unreachable flow (spoke3 does not use the hub's gateway) costs nothing.
    let r = report(&e, "flows:\n  - { from: spoke3-vm, to: 192.168.1.4, gbPerMonth: 500 }\n");
    assert!(!r.flows[0].reachable);
    assert_eq!(cents(r.total), 0);
}

#[test]
fn global_peering_bills_each_side_at_its_zone() {
    // $3, $4: web (East US, Zone 1) to west (West Europe, Zone 1): 0.035 each way; the regional
    // neighbour at the intra-region rate.
    let e = example("global-peering-ilb.yaml");
    let r = report(
        &e,
        "flows:\n  - { from: web1, to: west-vm, gbPerMonth: 100 }\n  - { from: web1, to: neighbour-vm, gbPerMonth: 100, port: 80 }\n",
    );
    assert_eq!(
        r.flows[0].charges.iter().map(|c| c.meter_name.as_str()).collect::<Vec<_>>(),
        ["Egress data processed (Zone 1)", "Ingress data processed (Zone 1)"]
    );
    assert_eq!(cents(r.flows[0].cost), 700);
    assert_eq!(cents(r.flows[1].cost), 200);
    // A sheet of other prices changes the answer, not the meters.
    let sheet = PriceSheet::parse(
        "{currency: EUR, intraRegion: {ingress: 0.02, egress: 0.02}, zone1: {ingress: 0.05, egress: 0.04}, \
         zone2: {ingress: 0.1, egress: 0.1}, zone3: {ingress: 0.2, egress: 0.2}, usGov: {ingress: 0.05, egress: 0.05}}",
    )
    .expect("a sheet");
    let matrix: TrafficMatrix =
        serde_yaml_ng::from_str("flows:\n  - { from: web1, to: west-vm, gbPerMonth: 100 }\n").expect("matrix");
    let r = cost(&e, &sheet, &matrix).expect("priced");
    assert_eq!((r.currency.as_str(), cents(r.total)), ("EUR", 900));
}

#[test]
fn a_bad_matrix_is_refused_with_a_clear_error() {
    let e = example("hub-spoke-nva.yaml");
    let bad: TrafficMatrix =
        serde_yaml_ng::from_str("flows:\n  - { from: spoke1-vm, to: spoke2-vm, gbPerMonth: -5 }\n").expect("parses");
    assert_eq!(cost(&e, &PriceSheet::default(), &bad).expect_err("negative").code, "InvalidTrafficMatrix");
    let unknown: TrafficMatrix =
        serde_yaml_ng::from_str("flows:\n  - { from: nobody, to: spoke2-vm, gbPerMonth: 5 }\n").expect("parses");
    assert!(cost(&e, &PriceSheet::default(), &unknown).is_err());
    assert!(serde_yaml_ng::from_str::<TrafficMatrix>("flows:\n  - { from: a, to: b, gb: 5 }\n").is_err());
}
