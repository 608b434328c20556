//! `tessera cost` (issue 17 point 3): a traffic matrix priced on an example topology, as a table
//! and as JSON, and bad input refused with a clear error.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn path(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel).display().to_string()
}

fn cost(args: &[&str]) -> Output {
    let mut all = vec!["cost".to_string(), "-f".into(), path("examples/hub-spoke-nva.yaml")];
    all.extend(args.iter().map(|a| a.to_string()));
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(&all).output().expect("run tessera cost")
}

#[test]
fn a_traffic_matrix_is_priced_and_compared_with_direct_peerings() {
    let traffic = path("examples/traffic-hub-spoke.yaml");
    let out = cost(&["--traffic", &traffic, "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    // 1,250 GB spoke to spoke through the hub's appliance (two crossings, $6) and 100 GB spoke to
    // hub, each crossing 0.01 egress + 0.01 ingress ($2, $3).
    assert_eq!(r["currency"], "USD");
    assert_eq!((r["total"].as_f64().expect("total") * 100.0).round(), 5200.0, "{r}");
    assert_eq!((r["directPeeringTotal"].as_f64().expect("direct") * 100.0).round(), 2700.0, "{r}");
    assert_eq!(r["flows"][0]["path"], serde_json::json!(["spoke1", "hub", "spoke2"]));
    let table = cost(&["--traffic", &traffic]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("spoke1 > hub > spoke2") && text.contains("total 52.00 USD a month"), "{text}");

    // Bad input: exit 2, an ARM-style code on stderr, nothing on stdout.
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "flows: [{from: spoke1-vm, to: spoke2-vm, gbPerMonth: 1, extra: 1}]").expect("write");
    let sheet = dir.path().join("prices.yaml");
    std::fs::write(&sheet, "currency: USD").expect("write");
    for (args, code) in [
        (vec!["--traffic".to_string(), bad.display().to_string()], "InvalidTrafficMatrix"),
        (
            vec!["--traffic".into(), traffic.clone(), "--prices".into(), sheet.display().to_string()],
            "InvalidPriceSheet",
        ),
        (vec!["--traffic".into(), "/nonexistent/traffic.yaml".into()], "FileNotReadable"),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cost(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(code), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
