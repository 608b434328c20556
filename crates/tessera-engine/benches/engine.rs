//! Engine benchmarks on the estate: a hub with 1,000 spokes, 100,000 NICs and NSGs of
//! 100 rules. Full compile, one peering added and removed incrementally, one NIC's effective
//! routes, and a 100 x 100 reachability matrix. Results and the command are in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::{effective, matrix};
use tessera_engine::synth::{self, HubAndSpokes};
use tessera_engine::{Change, Compiled, Engine, Limits};
use tessera_model::{Kind, Resource, ResourceId};

fn estate() -> Engine {
    let shape = HubAndSpokes { spokes: 1000, nics_per_spoke: 100, hub_nics: 10, nsgs: 10, rules_per_nsg: 100 };
    let mut engine = Engine::new(Limits::unlimited());
    for r in shape.resources() {
        engine.apply_deferred(Change::Put(r)).expect("valid estate");
    }
    // A spare spoke that the incremental benchmark peers and unpeers.
    let spare = synth::vnet("spare", "10.250.0.0/20".parse().expect("prefix"), None);
    engine.apply_deferred(Change::Put(Resource::VirtualNetwork(spare))).expect("valid spare");
    engine.compile_all();
    engine
}

fn nic(name: &str) -> ResourceId {
    ResourceId::top(tessera_model::account::DEFAULT_SUBSCRIPTION, "scale-rg", Kind::NetworkInterface, name)
}

fn benches(c: &mut Criterion) {
    let mut engine = estate();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("full_compile_1000_spokes_100k_nics", |b| b.iter(|| black_box(Compiled::full(engine.state()))));
    g.finish();

    let mut g = c.benchmark_group("engine");
    let hub = synth::hub_id();
    let spare =
        ResourceId::top(tessera_model::account::DEFAULT_SUBSCRIPTION, "scale-rg", Kind::VirtualNetwork, "spare");
    g.bench_function("peering_pair_add_then_remove", |b| {
        b.iter(|| {
            engine.apply(Change::Put(Resource::Peering(synth::link(&spare, &hub)))).expect("spare to hub");
            engine.apply(Change::Put(Resource::Peering(synth::link(&hub, &spare)))).expect("hub to spare");
            let id = hub.child("virtualNetworkPeerings", "to-spare");
            engine.apply(Change::DeletePeeringPair(id)).expect("delete pair");
        })
    });
    let hub_nic = nic("hub-vm0-nic");
    let spoke_nic = nic("spoke7-vm3-nic");
    g.bench_function("effective_routes_hub_nic_1000_peerings", |b| {
        b.iter(|| black_box(serde_json::to_vec(&effective::effective_route_table(&engine, &hub_nic).expect("routes"))))
    });
    g.bench_function("effective_routes_spoke_nic", |b| {
        b.iter(|| {
            black_box(serde_json::to_vec(&effective::effective_route_table(&engine, &spoke_nic).expect("routes")))
        })
    });
    let mut vms: Vec<ResourceId> = (0..10).map(|i| nic_vm(&format!("hub-vm{i}"))).collect();
    for s in 0..9 {
        for v in 0..10 {
            vms.push(nic_vm(&format!("spoke{s}-vm{v}")));
        }
    }
    assert_eq!(vms.len(), 100);
    g.bench_function("matrix_100x100_tcp22", |b| {
        b.iter(|| black_box(matrix::matrix(&engine, Protocol::Tcp, 22, Some(&vms))))
    });
    g.finish();
}

fn nic_vm(name: &str) -> ResourceId {
    ResourceId::top(tessera_model::account::DEFAULT_SUBSCRIPTION, "scale-rg", Kind::VirtualMachine, name)
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
