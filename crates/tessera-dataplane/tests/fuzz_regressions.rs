//! Replays every input kept in `fuzz/regressions/<target>/` (inputs a fuzzer crashed on, and
//! seed frames) through the same entry points the fuzz targets call.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no inputs in {}", dir.display());
    out
}

#[test]
fn parse_regressions_stay_fixed() {
    for (name, data) in inputs("parse") {
        let outcome = std::panic::catch_unwind(|| tessera_dataplane::fuzzing::parse(&data));
        assert!(outcome.is_ok(), "parse input {name} fails again");
    }
}

#[test]
fn process_regressions_stay_fixed() {
    for (name, data) in inputs("process") {
        let outcome = std::panic::catch_unwind(|| {
            let mut switch = tessera_dataplane::fuzzing::switch();
            tessera_dataplane::fuzzing::process(&mut switch, &data);
        });
        assert!(outcome.is_ok(), "process input {name} fails again");
    }
}
