//! What a traffic matrix would cost on a topology, before anything is deployed: each flow is
//! walked as the data plane would forward it (appliances, gateways, peerings), every peering it
//! crosses is billed on both sides ($2, $3), again at each crossing ($6: hub and spoke through
//! an appliance pays twice), a crossing to reach a remote gateway included ($5); beside it, the
//! same traffic on a direct peering between the source's and the destination's VNets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use super::resolve::resolve_nic;
use super::trace::{Flow, trace};
use crate::Engine;
use crate::compile::security::Protocol;
use crate::pricing::{Charge, PriceSheet, crossing};

/// One flow of a traffic matrix: from a VM (or NIC) to a VM, NIC or address, GB per month.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficFlow {
    /// Source VM or NIC.
    pub from: String,
    /// Destination VM or NIC, or an IP address (on-premises, a load balancer frontend).
    pub to: String,
    /// GB per month.
    pub gb_per_month: f64,
    /// TCP destination port (443 by default).
    #[serde(default = "https")]
    pub port: u16,
}

fn https() -> u16 {
    443
}

/// A traffic matrix file: `flows: [...]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficMatrix {
    /// The flows.
    pub flows: Vec<TrafficFlow>,
}

impl TrafficMatrix {
    /// Reads a matrix (YAML, or JSON).
    pub fn parse(text: &str) -> Result<TrafficMatrix, String> {
        serde_yaml_ng::from_str(text).map_err(|e| format!("not a traffic matrix: {e}"))
    }
}

/// What one flow costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowCost {
    /// Source, as given.
    pub from: String,
    /// Destination, as given.
    pub to: String,
    /// GB per month.
    pub gb_per_month: f64,
    /// Whether the flow arrives (an unreachable flow costs nothing).
    pub reachable: bool,
    /// The VNets the flow passes through, in order (names).
    pub path: Vec<String>,
    /// Peering crossings billed.
    pub peering_crossings: usize,
    /// Both sides of each crossing.
    pub charges: Vec<Charge>,
    /// The flow's monthly cost.
    pub cost: f64,
    /// The same traffic over a direct peering between the source's and the destination's VNets
    /// (0 within one VNet; None when the destination is not in a VNet).
    pub direct_peering_cost: Option<f64>,
}

/// One meter's total.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterTotal {
    /// The meter's name ($7).
    pub meter: String,
    /// GB per month.
    pub gb: f64,
    /// Cost per month.
    pub cost: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CostReport {
    /// The sheet's currency.
    pub currency: String,
    /// Each flow.
    pub flows: Vec<FlowCost>,
    /// By meter.
    pub meters: Vec<MeterTotal>,
    /// Monthly total.
    pub total: f64,
    /// Monthly total with every flow on a direct peering (flows to addresses outside VNets as
    /// they are).
    pub direct_peering_total: f64,
}

/// The VNet a hop's resource is in: a NIC's or a gateway instance's subnet, a gateway's VNet.
fn vnet_of(engine: &Engine, id: &ResourceId) -> Option<ResourceId> {
    if let Some(p) = engine.program(id) {
        return Some(p.subnet.vnet.clone());
    }
    match id.kind() {
        Kind::VirtualNetworkGateway => engine.state().gateways.get(id).and_then(crate::state::gateway_vnet),
        _ => None,
    }
}

fn region(engine: &Engine, vnet: &ResourceId) -> String {
    engine.state().vnets.get(vnet).map(|v| v.location.clone()).unwrap_or_default()
}

/// The charges of `gb` crossing from `a` to `b`.
fn bill(engine: &Engine, sheet: &PriceSheet, a: &ResourceId, b: &ResourceId, gb: f64) -> Vec<Charge> {
    crossing(sheet, (a, &region(engine, a)), (b, &region(engine, b)), gb)
}

fn sum(charges: &[Charge]) -> f64 {
    charges.iter().filter_map(|c| c.cost).sum()
}

fn invalid(message: String) -> ArmError {
    ArmError::bad_request("InvalidTrafficMatrix", message)
}

/// Prices one flow.
fn flow_cost(engine: &Engine, sheet: &PriceSheet, f: &TrafficFlow) -> ArmResult<FlowCost> {
    if !f.gb_per_month.is_finite() || f.gb_per_month < 0.0 {
        return Err(invalid(format!("gbPerMonth of {} -> {} is not a number of GB.", f.from, f.to)));
    }
    let src_nic = resolve_nic(engine, &f.from)?;
    let src = engine.program(&src_nic).ok_or_else(|| invalid(format!("{} has no program.", f.from)))?;
    let src_ip = *src.addresses.first().ok_or_else(|| invalid(format!("{} has no address.", f.from)))?;
    let (dst_ip, dst_vnet) = match f.to.parse::<std::net::IpAddr>() {
        Ok(ip) => (ip, None),
        Err(_) => {
            let nic = resolve_nic(engine, &f.to)?;
            let p = engine.program(&nic).ok_or_else(|| invalid(format!("{} has no program.", f.to)))?;
            (
                *p.addresses.first().ok_or_else(|| invalid(format!("{} has no address.", f.to)))?,
                Some(p.subnet.vnet.clone()),
            )
        }
    };
    let t = trace(engine, &src, Flow::new(Protocol::Tcp, src_ip, 49152, dst_ip, f.port));
    let mut path: Vec<ResourceId> = Vec::new();
    for hop in &t.hops {
        if let Some(v) = hop.resource.as_ref().and_then(|r| vnet_of(engine, r))
            && path.last() != Some(&v)
        {
            path.push(v);
        }
    }
    let gb = if t.reachable { f.gb_per_month } else { 0.0 };
    let mut charges = Vec::new();
    let mut peering_crossings = 0;
    for pair in path.windows(2) {
        // A change of VNet without a link between them is a gateway tunnel (VNet-to-VNet): not
        // peering traffic.
        if engine.state().link_to(&pair[0], &pair[1]).is_some() {
            peering_crossings += 1;
            charges.extend(bill(engine, sheet, &pair[0], &pair[1], gb));
        }
    }
    let direct = dst_vnet.map(|d| {
        if d == src.subnet.vnet { 0.0 } else { sum(&bill(engine, sheet, &src.subnet.vnet, &d, f.gb_per_month)) }
    });
    Ok(FlowCost {
        from: f.from.clone(),
        to: f.to.clone(),
        gb_per_month: f.gb_per_month,
        reachable: t.reachable,
        path: path.iter().map(|v| v.name().to_string()).collect(),
        peering_crossings,
        cost: sum(&charges),
        charges,
        direct_peering_cost: direct,
    })
}

/// Prices every flow of `matrix` on `engine`'s topology with `sheet`.
pub fn cost(engine: &Engine, sheet: &PriceSheet, matrix: &TrafficMatrix) -> ArmResult<CostReport> {
    let flows = matrix.flows.iter().map(|f| flow_cost(engine, sheet, f)).collect::<ArmResult<Vec<_>>>()?;
    let mut meters: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for c in flows.iter().flat_map(|f| &f.charges) {
        let m = meters.entry(c.meter_name.clone()).or_default();
        m.0 += c.gb;
        m.1 += c.cost.unwrap_or(0.0);
    }
    let total = flows.iter().map(|f| f.cost).sum();
    let direct_peering_total = flows.iter().map(|f| f.direct_peering_cost.unwrap_or(f.cost)).sum();
    Ok(CostReport {
        currency: sheet.currency.clone(),
        meters: meters.into_iter().map(|(meter, (gb, cost))| MeterTotal { meter, gb, cost }).collect(),
        flows,
        total,
        direct_peering_total,
    })
}
