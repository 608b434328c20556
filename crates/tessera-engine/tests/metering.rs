//! Peering usage records from agents' reports ($1–$7, issue 17 point 1): each crossing billed
//! egress to the sender and ingress to the receiver, at the intra-region rate or each side's
//! zone rate; the crossing to a remote gateway billed as peering; reports counted once across
//! retries and agent restarts; what crossed lands in the hour its report arrived. The records
//! are compared with `tests/metering/expected.txt` (regenerate with `UPDATE_GOLDEN=1` and
//! review the diff).

use std::path::Path;

use tessera_engine::load::{self, Format};
use tessera_engine::metering::{GB, MAX_RUNS, Meterbook, PairCount, Taken, UsageReport};
use tessera_engine::pricing::{Direction, PriceSheet};
use tessera_engine::{Engine, Limits};
use tessera_model::ResourceId;

/// 2026-12-05T10:00:00Z.
const T0: u64 = 1_796_464_800;
const GIB: u64 = 1 << 30;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metering")
}

fn engine() -> Engine {
    let text = std::fs::read_to_string(dir().join("topology.yaml")).expect("topology");
    load::load(&text, Format::Yaml, Limits::default()).expect("valid")
}

fn vnet(name: &str) -> ResourceId {
    ResourceId::parse(&format!(
        "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/billing-rg/providers/Microsoft.Network/virtualNetworks/{name}"
    ))
    .expect("an id")
}

/// Both sides of `bytes` crossing from `a` to `b` as one host counts them (both VMs on it).
fn both(a: &str, b: &str, bytes: u64) -> Vec<PairCount> {
    [Direction::Egress, Direction::Ingress]
        .into_iter()
        .map(|direction| PairCount { source: vnet(a), destination: vnet(b), direction, bytes, packets: bytes / 1000 })
        .collect()
}

fn one(a: &str, b: &str, direction: Direction, bytes: u64) -> PairCount {
    PairCount { source: vnet(a), destination: vnet(b), direction, bytes, packets: bytes / 1000 }
}

fn report(run: &str, sequence: u64, pairs: Vec<PairCount>) -> UsageReport {
    UsageReport { run: run.into(), sequence, pairs }
}

/// The records, one line each, with their cost under Azure's prices.
fn render(book: &Meterbook) -> String {
    let sheet = PriceSheet::default();
    let mut out = String::from(
        "hour (UTC s)  billed      remote      direction  meter                              bytes        GB        cost USD\n",
    );
    for r in book.records.values() {
        out.push_str(&format!(
            "{:<13} {:<11} {:<11} {:<10} {:<34} {:>12} {:>9.4} {:>10.6}\n",
            r.key.hour * 3600,
            r.key.vnet.name(),
            r.key.remote.name(),
            format!("{:?}", r.key.direction),
            r.meter.name(),
            r.bytes,
            r.gb(),
            r.cost(&sheet).unwrap_or(f64::NAN),
        ));
    }
    out
}

fn records_changed(t: Taken) -> usize {
    match t {
        Taken::Counted { records, .. } => records.len(),
        Taken::Duplicate => 0,
    }
}

#[test]
fn usage_records_are_billed_per_side_and_zone_and_counted_once() {
    let e = engine();
    let mut book = Meterbook::default();
    // Host h1 carried 2 GiB from spoke-we to the hub's gateway (gateway transit, $5), 1 GiB
    // between the hub and each global spoke, and 1 GiB between the US Gov VNets.
    let mut pairs = both("spoke-we", "hub", 2 * GIB);
    pairs.extend(both("hub", "spoke-jp", GIB));
    pairs.extend(both("spoke-br", "hub", GIB));
    pairs.extend(both("spoke-us", "hub", GIB));
    pairs.extend(both("gov-a", "gov-b", GIB));
    let first = report("run-1", 1, pairs.clone());
    assert_eq!(records_changed(book.take(&e, "h1", &first, T0 + 10).expect("counted")), 10);
    // A retry of the same report (its answer was lost) counts nothing.
    let before = book.clone();
    assert_eq!(book.take(&e, "H1", &first, T0 + 20).expect("taken"), Taken::Duplicate);
    assert_eq!(book, before);

    // The next hour: 1 GiB more egress from spoke-we; what crossed lands in the hour it arrives.
    let mut later = pairs.clone();
    later[0].bytes += GIB;
    later[0].packets += 1000;
    book.take(&e, "h1", &report("run-1", 2, later.clone()), T0 + 3700).expect("counted");

    // A counter that goes back within a run is refused whole; nothing changes.
    let before = book.clone();
    let mut back = later.clone();
    back[2].bytes -= 1;
    back[0].bytes += GIB;
    let err = book.take(&e, "h1", &report("run-1", 3, back), T0 + 3750).expect_err("refused");
    assert_eq!((err.status, err.code.as_str()), (409, "UsageCounterWentBack"));
    assert_eq!(book, before);

    // The agent restarts: its new run counts from zero, 512 MiB so far.
    let restarted = vec![one("spoke-we", "hub", Direction::Egress, GIB / 2)];
    book.take(&e, "h1", &report("run-2", 1, restarted), T0 + 3800).expect("counted");
    // Then it sends what the ended run left on disk: 256 MiB after its last report.
    let mut tail = later.clone();
    tail[0].bytes += GIB / 4;
    book.take(&e, "h1", &report("run-1", 3, tail.clone()), T0 + 3900).expect("counted");
    // Sent again (the agent did not hear the answer): nothing more.
    assert_eq!(book.take(&e, "h1", &report("run-1", 3, tail), T0 + 3950).expect("taken"), Taken::Duplicate);

    // Another host counts its own side of a crossing between hosts: the receiver's ingress.
    let other = vec![one("spoke-jp", "hub", Direction::Ingress, GIB)];
    book.take(&e, "h2", &report("run-1", 1, other), T0 + 3960).expect("counted");

    let got = render(&book);
    let path = dir().join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).expect("write golden");
    }
    let want = std::fs::read_to_string(&path).expect("golden (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(got, want, "usage records differ from {}", path.display());

    // spoke-we's egress to the hub over both hours: 2 + 1 + 0.5 + 0.25 GiB, each byte once.
    let egress: u64 = book
        .records
        .values()
        .filter(|r| r.key.vnet == vnet("spoke-we") && r.key.direction == Direction::Egress)
        .map(|r| r.bytes)
        .sum();
    assert_eq!(egress, 2 * GIB + GIB + GIB / 2 + GIB / 4);
    // Every record names the billed VNet's link to the other one.
    assert!(book.records.values().all(|r| r.link.as_ref().is_some_and(|l| l.parent() == Some(r.key.vnet.clone()))));
    // The subscription's records of the first hour.
    let sub = "00000000-0000-4000-8000-000000000001";
    assert_eq!(book.records_of(sub, T0, T0 + 3600).count(), 10);
    assert_eq!(book.records_of("another", 0, u64::MAX).count(), 0);
    assert!((GB - 1_073_741_824.0).abs() < f64::EPSILON);
}

#[test]
fn a_host_remembers_its_recent_runs_only() {
    let e = engine();
    let mut book = Meterbook::default();
    for i in 0..(MAX_RUNS as u64 + 4) {
        let r = report(&format!("run-{i}"), 1, vec![one("hub", "spoke-we", Direction::Egress, 100)]);
        book.take(&e, "h1", &r, T0 + i).expect("counted");
    }
    let runs = &book.runs["h1"];
    assert_eq!(runs.len(), MAX_RUNS);
    assert_eq!(runs[0].run, "run-4", "the least recently reported runs are forgotten first");
    let total: u64 = book.records.values().map(|r| r.bytes).sum();
    assert_eq!(total, 100 * (MAX_RUNS as u64 + 4));
}
