//! Usage reports refused whole ($1-$7, issue 17): a report out of shape changes nothing in the
//! meter book (InvalidUsageReport, UsageReportTooLarge), nor does a counter that goes back
//! within a run (UsageCounterWentBack).

use std::path::Path;

use tessera_engine::load::{self, Format};
use tessera_engine::metering::{MAX_PAIRS, Meterbook, PairCount, Taken, UsageReport};
use tessera_engine::pricing::Direction;
use tessera_engine::{Engine, Limits};
use tessera_model::ResourceId;

/// 2026-12-05T10:00:00Z.
const T0: u64 = 1_796_464_800;

fn engine() -> Engine {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metering/topology.yaml");
    let text = std::fs::read_to_string(path).expect("topology");
    load::load(&text, Format::Yaml, Limits::default()).expect("valid")
}

fn vnet(name: &str) -> ResourceId {
    ResourceId::parse(&format!(
        "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/billing-rg/providers/Microsoft.Network/virtualNetworks/{name}"
    ))
    .expect("an id")
}

fn one(a: &str, b: &str, direction: Direction, bytes: u64) -> PairCount {
    PairCount { source: vnet(a), destination: vnet(b), direction, bytes, packets: bytes / 1000 }
}

fn both(a: &str, b: &str, bytes: u64) -> Vec<PairCount> {
    vec![one(a, b, Direction::Egress, bytes), one(a, b, Direction::Ingress, bytes)]
}

fn report(run: &str, sequence: u64, pairs: Vec<PairCount>) -> UsageReport {
    UsageReport { run: run.into(), sequence, pairs }
}

#[test]
fn a_counter_that_goes_back_within_a_run_is_refused_whole() {
    let e = engine();
    let mut book = Meterbook::default();
    book.take(&e, "h1", &report("r", 1, both("hub", "spoke-we", 5000)), T0).expect("counted");
    let before = book.clone();
    let mut back = both("hub", "spoke-we", 9000);
    back[1].bytes = 4000;
    let err = book.take(&e, "h1", &report("r", 2, back), T0 + 5).expect_err("refused");
    assert_eq!((err.status, err.code.as_str()), (409, "UsageCounterWentBack"));
    assert_eq!(book, before, "nothing counted, not even the pair that grew");
}

#[test]
fn reports_out_of_shape_are_refused_whole() {
    let e = engine();
    let mut book = Meterbook::default();
    let cases: Vec<(UsageReport, &str)> = vec![
        (report("", 1, both("hub", "spoke-we", 10)), "InvalidUsageReport"),
        (report("a/b", 1, both("hub", "spoke-we", 10)), "InvalidUsageReport"),
        (report(&"x".repeat(65), 1, both("hub", "spoke-we", 10)), "InvalidUsageReport"),
        (report("r", 0, both("hub", "spoke-we", 10)), "InvalidUsageReport"),
        // $6: traffic within one VNet is not peering traffic.
        (report("r", 1, both("hub", "hub", 10)), "InvalidUsageReport"),
        (report("r", 1, [both("hub", "spoke-we", 10), both("hub", "spoke-we", 20)].concat()), "InvalidUsageReport"),
        // Fewer bytes than packets: not a count of frames.
        (
            report("r", 1, vec![PairCount { packets: 2, ..one("hub", "spoke-we", Direction::Egress, 1) }]),
            "InvalidUsageReport",
        ),
        (
            report("r", 1, (0..=MAX_PAIRS).map(|i| one("hub", &format!("v{i}"), Direction::Egress, 100)).collect()),
            "UsageReportTooLarge",
        ),
    ];
    for (r, code) in cases {
        let err = book.take(&e, "h1", &r, T0).expect_err("refused");
        assert_eq!(err.code, code, "{:?}", r.run);
    }
    let not_a_vnet = ResourceId::parse(
        "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/billing-rg/providers/Microsoft.Network/networkSecurityGroups/n",
    )
    .expect("an id");
    let mut p = one("hub", "spoke-we", Direction::Egress, 10);
    p.destination = not_a_vnet;
    assert_eq!(book.take(&e, "h1", &report("r", 1, vec![p]), T0).expect_err("refused").code, "InvalidUsageReport");
    assert_eq!(book, Meterbook::default(), "a refused report leaves nothing");

    // VNets the engine does not know are not billed (nothing to price them with), but the run
    // goes on from those totals.
    let gone = vec![one("hub", "deleted", Direction::Egress, 500), one("hub", "spoke-we", Direction::Egress, 100)];
    let t = book.take(&e, "h1", &report("r", 1, gone), T0).expect("counted");
    let record = book.records.keys().next().expect("a record").clone();
    let minute = book.minutes.keys().next().expect("a minute").clone();
    assert_eq!(minute.hour, T0 / 60, "the per-minute series holds the minute");
    assert_eq!(t, Taken::Counted { records: vec![record], minutes: vec![minute], expired: vec![], unbilled: 500 });
    // A day later the minute has aged out of the per-minute series; the hourly record stays.
    let later = vec![one("hub", "spoke-we", Direction::Egress, 300)];
    let t = book.take(&e, "h1", &report("r", 2, later), T0 + 86_400 + 120).expect("counted");
    let Taken::Counted { expired, .. } = t else { panic!("counted") };
    assert_eq!(expired.len(), 1);
    assert_eq!(book.minutes.len(), 1);
    assert_eq!(book.records.len(), 2);
}
