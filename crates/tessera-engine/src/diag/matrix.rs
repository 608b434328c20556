//! The reachability matrix: every VM to every other VM for one protocol and port, each failure
//! with its reason.

use serde::Serialize;
use tessera_model::ResourceId;

use super::trace::{Flow, trace};
use crate::Engine;
use crate::compile::security::Protocol;

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// Source VM name.
    pub from: String,
    /// Destination VM name.
    pub to: String,
    /// Whether the flow arrives.
    pub reachable: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Matrix {
    /// `Tcp`, `Udp` or `Icmp`.
    pub protocol: String,
    /// Destination port.
    pub port: u16,
    /// VM names in row/column order.
    pub vms: Vec<String>,
    /// Their ids, in the same order (names repeat across resource groups).
    #[serde(skip)]
    pub ids: Vec<ResourceId>,
    /// Cells, row by row (the diagonal left out).
    pub cells: Vec<Cell>,
}

/// Computes the matrix over `vms` (`None`: every VM; an empty list gives an empty matrix).
pub fn matrix(engine: &Engine, proto: Protocol, port: u16, vms: Option<&[ResourceId]>) -> Matrix {
    let st = engine.state();
    let chosen: Vec<ResourceId> = vms.map_or_else(|| st.vms.keys().cloned().collect(), <[ResourceId]>::to_vec);
    let programs: Vec<_> = chosen
        .iter()
        .filter_map(|vm| {
            let machine = st.vms.get(vm)?;
            let nic = st.primary_nic_of(machine)?;
            let p = engine.program(&nic.id)?;
            let ip = p.addresses.first().copied()?;
            Some((vm.clone(), p, ip))
        })
        .collect();
    let mut cells = Vec::with_capacity(programs.len() * programs.len());
    for (from, p, src) in &programs {
        for (to, _, dst) in &programs {
            if from == to {
                continue;
            }
            let t = trace(engine, p, Flow::new(proto, *src, 49152, *dst, port));
            cells.push(Cell {
                from: from.name().to_string(),
                to: to.name().to_string(),
                reachable: t.reachable,
                reason: t.reason(),
            });
        }
    }
    let protocol = match proto {
        Protocol::Tcp => "Tcp",
        Protocol::Udp => "Udp",
        Protocol::Icmp => "Icmp",
    };
    Matrix {
        protocol: protocol.into(),
        port,
        vms: programs.iter().map(|(id, _, _)| id.name().to_string()).collect(),
        ids: programs.into_iter().map(|(id, _, _)| id).collect(),
        cells,
    }
}
