//! Builds the benchmark estate (a hub with 1,000 spokes, 100,000 NICs, NSGs of 100 rules),
//! then reports the time to validate and load it, the time of a full compile and the peak
//! resident memory of the process. Run: `cargo run --release -p tessera-engine --example scale`.

use std::time::Instant;

use tessera_engine::synth::HubAndSpokes;
use tessera_engine::{Change, Engine, Limits};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let shape = HubAndSpokes { spokes: 1000, nics_per_spoke: 100, hub_nics: 0, nsgs: 10, rules_per_nsg: 100 };
    let t = Instant::now();
    let resources = shape.resources();
    let n = resources.len();
    let mut engine = Engine::new(Limits::unlimited());
    for r in resources {
        engine.apply_deferred(Change::Put(r)).expect("the synthetic estate is valid");
    }
    let load = t.elapsed();
    let t = Instant::now();
    engine.compile_all();
    let compile = t.elapsed();
    println!(
        "resources: {n}, NIC programs: {}, subnet programs: {}",
        engine.compiled().nics.len(),
        engine.compiled().subnets.len()
    );
    println!("validate and load: {:.2} s", load.as_secs_f64());
    println!("full compile: {:.3} s", compile.as_secs_f64());
    println!("peak RSS: {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));
}
