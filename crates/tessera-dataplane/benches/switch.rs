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
    let flooder = tessera_engine::diag::resolve::resolve_nic(&engine, "flooder").expect("flooder");
    for flood in [false, true] {
        let name = if flood { "victim_new_flows_during_a_flood" } else { "victim_new_flows_alone" };
        g.bench_function(name, |b| b.iter_custom(|n| victim_new_flows(&engine, port, flood.then_some(&flooder), n)));
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

/// The time `n` new flows of the port `victim` take, with the port of `flooder` (if any)
/// opening new flows beyond its quota between every 64 of them.
fn victim_new_flows(
    engine: &Arc<Engine>,
    victim: tessera_dataplane::PortId,
    flooder: Option<&tessera_model::ResourceId>,
    n: u64,
) -> Duration {
    const QUOTA: usize = 1 << 20;
    let limits = FlowLimits { capacity: 4 * QUOTA, port_quota: QUOTA, ..FlowLimits::default() };
    let mut sw = Switch::new(engine.clone(), &engine.state().nics.keys().cloned().collect::<Vec<_>>(), limits);
    let flood_port = flooder.and_then(|f| sw.port_of(f));
    let mut flood_frame = udp_from([10, 0, 0, 5], 1, 1);
    let mut flooded: u64 = 0;
    let mut flood = |sw: &mut Switch, count: u64| {
        let Some(p) = flood_port else { return };
        for _ in 0..count {
            flooded += 1;
            let (sport, dport) = ((flooded & 0xffff) as u16, ((flooded >> 16) & 0xffff) as u16);
            flood_frame[34..36].copy_from_slice(&sport.to_be_bytes());
            flood_frame[36..38].copy_from_slice(&dport.to_be_bytes());
            black_box(sw.process(p, Direction::Outbound, &mut flood_frame));
        }
    };
    // The flooder fills its quota first (a flow and its reply each), then keeps flooding.
    flood(&mut sw, (QUOTA / 2) as u64);
    let mut frame = udp(1, 1);
    let mut spent = Duration::ZERO;
    let mut i = 0u64;
    while i < n {
        let batch = (n - i).min(64);
        let start = Instant::now();
        for k in i..i + batch {
            let (sport, dport) = ((k & 0xffff) as u16, ((k >> 16) & 0xffff) as u16 + 2);
            frame[34..36].copy_from_slice(&sport.to_be_bytes());
            frame[36..38].copy_from_slice(&dport.to_be_bytes());
            black_box(sw.process(victim, Direction::Outbound, &mut frame));
        }
        spent += start.elapsed();
        i += batch;
        flood(&mut sw, 64);
    }
    spent
}

criterion_group!(switch_benches, benches);
criterion_main!(switch_benches);
