//! Switch benchmarks (per core): cached flows of 64-byte UDP frames over 100,000 active flows
//! with an NSG of 1,000 rules and 10,000 routes; a new flow on every packet; and swapping in
//! the programs of a hub with 1,000 spokes. Results and the command are in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use tessera_dataplane::switch::PREFETCH_BATCH;
use tessera_dataplane::wire::GATEWAY_MAC;
use tessera_dataplane::{Direction, FlowLimits, Outcome, Switch};
use tessera_engine::load::{self, Format};
use tessera_engine::synth::HubAndSpokes;
use tessera_engine::{Change, Engine, Limits};

/// Two VNets peered; the server's subnet NSG has 1,000 rules that do not match the client, and
/// the client's subnet learns 10,000 BGP prefixes through the hub gateway.
fn estate() -> String {
    let mut rules = String::new();
    for i in 0..1000 {
        rules.push_str(&format!(
            "      - {{ name: r{i}, priority: {}, direction: Inbound, access: Deny, protocol: Tcp, source: 172.{}.{}.0/24, destinationPorts: \"{}\" }}\n",
            100 + i,
            16 + (i / 256) % 16,
            i % 256,
            1000 + i
        ));
    }
    let prefixes: Vec<String> =
        (0..10_000u32).map(|i| format!("100.{}.{}.0/24", 64 + (i >> 8) % 64, i & 0xff)).collect();
    format!(
        r#"
vnets:
  - name: hub
    addressSpace: [10.0.0.0/16]
    subnets:
      - {{ name: default, prefix: 10.0.0.0/24 }}
      - {{ name: GatewaySubnet, prefix: 10.0.255.0/27 }}
  - name: app
    addressSpace: [10.1.0.0/16]
    subnets: [{{ name: s, prefix: 10.1.0.0/24, nsg: big }}]
nsgs:
  - name: big
    rules:
{rules}
gateways:
  - {{ name: gw, vnet: hub, type: Vpn }}
sites:
  - {{ name: site, addressSpace: [192.168.0.0/16] }}
connections:
  - {{ name: c, gateway: gw, site: site, bgpLearnedPrefixes: [{}] }}
vms:
  - {{ name: client, subnet: hub/default, ip: 10.0.0.4 }}
  - {{ name: flooder, subnet: hub/default, ip: 10.0.0.5 }}
  - {{ name: server, subnet: app/s, ip: 10.1.0.4 }}
peerings:
  - {{ from: hub, to: app, allowGatewayTransit: true, reverse: {{ useRemoteGateways: true }} }}
"#,
        prefixes.join(", ")
    )
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    udp_from([10, 0, 0, 4], sport, dport)
}

fn udp_from(src: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([0; 6], GATEWAY_MAC).ipv4(src, [10, 1, 0, 4], 64).udp(sport, dport);
    let payload = [0u8; 18];
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, &payload).expect("frame");
    out
}

fn switch(engine: &Arc<Engine>, flows: usize) -> Switch {
    let nics: Vec<_> = engine.state().nics.keys().cloned().collect();
    Switch::new(engine.clone(), &nics, FlowLimits::new(flows))
}

fn benches(c: &mut Criterion) {
    let engine = Arc::new(load::load(&estate(), Format::Yaml, Limits::default()).expect("estate"));
    let client = tessera_engine::diag::resolve::resolve_nic(&engine, "client").expect("client");
    let routes = engine.program(&client).expect("program").subnet.routes.routes.len();
    assert!(routes > 10_000, "only {routes} routes");

    // Cached flows: 100,000 active flows, frames cycled round-robin.
    let mut sw = switch(&engine, 1 << 20);
    let port = sw.port_of(&client).expect("port");
    let mut frames: Vec<Vec<u8>> = (0..100_000u32)
        .map(|i| udp(1024 + u16::try_from(i % 50_000).unwrap_or(0), 5000 + u16::try_from(i / 50_000).unwrap_or(0)))
        .collect();
    for f in &mut frames {
        assert!(matches!(sw.process(port, Direction::Outbound, f), Outcome::Deliver(_)));
    }
    let mut g = c.benchmark_group("switch");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("cached_udp64_100k_flows_1000_rules_10k_routes", |b| {
        b.iter(|| {
            // As the agent does: a batch is touched, then processed.
            for batch in frames.chunks_mut(PREFETCH_BATCH) {
                sw.prefetch(port, batch.iter().map(Vec::as_slice));
                for f in batch.iter_mut() {
                    black_box(sw.process(port, Direction::Outbound, f));
                }
            }
        })
    });

    // A new flow on every packet.
    g.throughput(Throughput::Elements(1));
    g.bench_function("new_flow_per_packet", |b| {
        b.iter_custom(|n| {
            let mut sw = switch(&engine, usize::try_from(n).unwrap_or(usize::MAX).saturating_mul(3).max(1024));
            // A new flow is delivered (decided by the engine, not dropped).
            assert!(matches!(sw.process(port, Direction::Outbound, &mut udp(65535, 65535)), Outcome::Deliver(_)));
            let mut frame = udp(1, 1);
            // The loop is timed as a whole: two clock reads per packet would add ~2 % of noise.
            let start = Instant::now();
            for i in 0..n {
                let (sport, dport) =
                    (u16::try_from(i & 0xffff).unwrap_or(0), u16::try_from((i >> 16) & 0xffff).unwrap_or(0));
                frame[34..36].copy_from_slice(&sport.to_be_bytes());
                frame[36..38].copy_from_slice(&dport.to_be_bytes());
                black_box(sw.process(port, Direction::Outbound, &mut frame));
            }
            start.elapsed()
        })
    });
    // Fair tables: the victim's new flows with another port of the host flooding new flows at
    // its quota, against the victim alone. Only the victim's frames are timed (64 at a time);
    // the flood's frames go between the batches.
    for (name, neighbour, flood) in [
        ("victim_new_flows_alone", false, 0),
        ("victim_new_flows_beside_a_quiet_neighbour_at_its_quota", true, 0),
        ("victim_new_flows_during_a_flood", true, 256),
    ] {
        let mut bench = VictimBench::new(&engine, port, neighbour, flood);
        g.bench_function(name, |b| b.iter_custom(|n| bench.run(n)));
        if flood > 0 {
            let c = bench.sw.counters();
            let flooder = bench.flooder.expect("flooder");
            assert!(c.quota_drops(flooder) > 0, "the flood reached its quota");
            assert_eq!(c.quota_drops(port), 0, "the victim was never refused");
        }
    }
    g.finish();

    // Swapping in the programs of a hub with 1,000 spokes (one NIC per spoke on this switch).
    let shape = HubAndSpokes { spokes: 1000, nics_per_spoke: 1, hub_nics: 10, nsgs: 10, rules_per_nsg: 100 };
    let mut big = Engine::new(Limits::unlimited());
    for r in shape.resources() {
        big.apply_deferred(Change::Put(r)).expect("valid estate");
    }
    big.compile_all();
    let big = Arc::new(big);
    let nics: Vec<_> = big.state().nics.keys().cloned().collect();
    let mut sw = Switch::new(big.clone(), &nics, FlowLimits::new(1 << 16));
    let mut g = c.benchmark_group("switch");
    g.bench_function("swap_programs_hub_1000_spokes_1010_ports", |b| b.iter(|| sw.swap(big.clone())));
    g.finish();
}

/// A victim port opening new TCP flows on a host where another port floods new flows at its
/// quota (or does not). Each victim flow is a SYN (timed: the new-flow decision) and a RST
/// (untimed: it removes the flow, so the victim's share stays constant however long criterion
/// runs); between every 64 the clock moves on a second and the flooder opens new flows until it
/// is refused at its quota again, as a flood that never stops does.
struct VictimBench {
    sw: Switch,
    victim: tessera_dataplane::PortId,
    flooder: Option<tessera_dataplane::PortId>,
    /// Frames the flooder sends beyond its quota between two batches of the victim (0: a
    /// neighbour that holds its quota of flows but sends nothing new).
    flood_frames: u64,
    now: u64,
    opened: u64,
    flooded: u64,
}

/// The flooder's quota in the victim benchmark: a table of 8 MiB, beyond the caches.
const FLOOD_QUOTA: usize = 1 << 17;

impl VictimBench {
    fn new(engine: &Arc<Engine>, victim: tessera_dataplane::PortId, neighbour: bool, flood_frames: u64) -> Self {
        let limits = FlowLimits { capacity: 4 * FLOOD_QUOTA, port_quota: FLOOD_QUOTA, ..FlowLimits::default() };
        let nics: Vec<_> = engine.state().nics.keys().cloned().collect();
        let sw = Switch::new(engine.clone(), &nics, limits);
        let flooder = if neighbour {
            let nic = tessera_engine::diag::resolve::resolve_nic(engine, "flooder").expect("flooder");
            sw.port_of(&nic)
        } else {
            None
        };
        let mut b = VictimBench { sw, victim, flooder, flood_frames, now: 0, opened: 0, flooded: 0 };
        b.flood();
        b
    }

    /// New flows of the neighbour until its quota refuses one, then `flood_frames` more.
    fn flood(&mut self) {
        let Some(p) = self.flooder else { return };
        let mut frame = tcp_from([10, 0, 0, 5], 1, 1, "A");
        let mut beyond = 0;
        while beyond <= self.flood_frames {
            self.flooded += 1;
            let (sport, dport) = ((self.flooded & 0xffff) as u16, ((self.flooded >> 16) & 0xffff) as u16 + 1);
            frame[34..36].copy_from_slice(&sport.to_be_bytes());
            frame[36..38].copy_from_slice(&dport.to_be_bytes());
            if let Outcome::Drop(tessera_dataplane::DropReason::FlowQuotaExceeded) =
                self.sw.process(p, Direction::Outbound, &mut frame)
            {
                beyond += 1;
            }
        }
    }

    /// The time `n` new victim flows take.
    fn run(&mut self, n: u64) -> Duration {
        let mut syns = vec![tcp_from([10, 0, 0, 4], 1, 1, "S"); 64];
        let mut rst = tcp_from([10, 0, 0, 4], 1, 1, "R");
        let mut spent = Duration::ZERO;
        let mut done = 0;
        while done < n {
            let batch = (n - done).min(64);
            let first = self.opened;
            for (k, f) in (first..first + batch).zip(syns.iter_mut()) {
                let (sport, dport) = ((k & 0xffff) as u16, ((k >> 16) & 0xffff) as u16 + 1);
                f[34..36].copy_from_slice(&sport.to_be_bytes());
                f[36..38].copy_from_slice(&dport.to_be_bytes());
            }
            let frames = &mut syns[..usize::try_from(batch).unwrap_or(0)];
            let start = Instant::now();
            // As the agent does: the entries of a group of frames loaded together first.
            for group in frames.chunks_mut(PREFETCH_BATCH) {
                self.sw.prefetch(self.victim, group.iter().map(Vec::as_slice));
                for f in group.iter_mut() {
                    black_box(self.sw.process(self.victim, Direction::Outbound, f));
                }
            }
            spent += start.elapsed();
            for k in first..first + batch {
                let (sport, dport) = ((k & 0xffff) as u16, ((k >> 16) & 0xffff) as u16 + 1);
                rst[34..36].copy_from_slice(&sport.to_be_bytes());
                rst[36..38].copy_from_slice(&dport.to_be_bytes());
                black_box(self.sw.process(self.victim, Direction::Outbound, &mut rst));
            }
            self.opened += batch;
            done += batch;
            self.now += 1;
            self.sw.advance(Duration::from_secs(self.now));
            self.flood();
        }
        spent
    }
}

fn tcp_from(src: [u8; 4], sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([0; 6], GATEWAY_MAC).ipv4(src, [10, 1, 0, 4], 64).tcp(sport, dport, 1, 64240);
    let b = if flags.contains('S') { b.syn() } else { b };
    let b = if flags.contains('A') { b.ack(1) } else { b };
    let b = if flags.contains('R') { b.rst() } else { b };
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).expect("frame");
    out
}

criterion_group!(switch_benches, benches);
criterion_main!(switch_benches);
