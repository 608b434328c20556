//! The host agent's metrics for Prometheus, read from its switch at each scrape: bytes and
//! packets per VNet pair and direction (the peering meter's input), drops by reason, the flow
//! table (entries, idle expiries, evictions, quota refusals), program swaps, and how packets
//! were decided (flow table and kernel fast path, or the engine).

use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::datapath::{Probe, Snapshot};

/// The agent's collector; its switch is attached once the agent runs.
#[derive(Clone, Default)]
pub struct AgentMetrics {
    probe: Arc<Mutex<Option<Probe>>>,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentMetrics")
    }
}

impl AgentMetrics {
    /// A collector with no switch yet (it reports nothing until one is attached).
    pub fn new() -> AgentMetrics {
        AgentMetrics::default()
    }

    /// Reads this switch from now on.
    pub(crate) fn attach(&self, probe: Probe) {
        *self.probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(probe);
    }

    fn snapshot(&self) -> Option<Snapshot> {
        let probe = self.probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        probe?.counters()
    }
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for AgentMetrics {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(s) = self.snapshot() else { return Ok(()) };
        for (name, help, bytes) in [
            ("tessera_peering_bytes", "Bytes (whole frames) that crossed from one VNet to another", true),
            ("tessera_peering_packets", "Packets that crossed from one VNet to another", false),
        ] {
            let family = ConstCounter::new(0u64).metric_type();
            let mut m = e.encode_descriptor(name, help, None, family)?;
            for (source, destination, direction, b, p) in &s.vnet_pairs {
                let direction = format!("{direction:?}");
                let labels = [
                    ("source_vnet", source.as_str()),
                    ("destination_vnet", destination.as_str()),
                    ("direction", direction.as_str()),
                ];
                ConstCounter::new(if bytes { *b } else { *p }).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let family = ConstCounter::new(0u64).metric_type();
            let mut m =
                e.encode_descriptor("tessera_dropped_packets", "Packets the switch dropped, by reason", None, family)?;
            for (reason, n) in &s.drops {
                ConstCounter::new(*n).encode(m.encode_family(&[("reason", reason.as_str())])?)?;
            }
        }
        let sum = |f: fn(&crate::datapath::PortFlows) -> u64| s.ports.iter().map(f).sum::<u64>();
        gauge(&mut e, "tessera_flows", "Flow entries the switch holds", s.flows as u64)?;
        counter(&mut e, "tessera_flows_expired", "Flow entries removed idle", s.expired)?;
        counter(&mut e, "tessera_flow_evictions", "Flow entries evicted for other ports' flows", sum(|p| p.evictions))?;
        counter(&mut e, "tessera_flow_quota_drops", "New flows refused at their port's quota", sum(|p| p.quota_drops))?;
        gauge(&mut e, "tessera_offloaded_flows", "Flows the kernel fast path carries", s.offloaded as u64)?;
        counter(&mut e, "tessera_program_swaps", "Programs swapped into the switch", s.swaps)?;
        gauge(&mut e, "tessera_program_generation", "The switch's program generation", s.generation)?;
        counter(
            &mut e,
            "tessera_fast_path_packets",
            "Packets decided from the flow table or carried by the kernel",
            s.fast_path,
        )?;
        counter(&mut e, "tessera_slow_path_packets", "Packets decided by the engine", s.slow_path)?;
        Ok(())
    }
}
