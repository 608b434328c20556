//! Both topology formats load into the same model: every example, exported to ARM JSON and
//! loaded again, answers every diagnostic identically.

use std::path::Path;

use tessera_engine::compile::security::Protocol;
use tessera_engine::diag::{effective, matrix};
use tessera_engine::load::{self, Format};
use tessera_engine::{Engine, Limits};

fn answers(engine: &Engine) -> String {
    let mut out = String::new();
    for nic in engine.state().nics.keys() {
        let routes =
            effective::effective_route_table(engine, nic).map(|r| serde_json::to_string(&r).unwrap_or_default());
        let rules = effective::effective_network_security_groups(engine, nic).map(|r| r.to_string());
        out.push_str(&format!("{nic}\n{routes:?}\n{rules:?}\n"));
    }
    for port in [22, 80, 3389] {
        out.push_str(&format!("{:?}\n", matrix::matrix(engine, Protocol::Tcp, port, None)));
    }
    out
}

#[test]
fn yaml_and_arm_json_load_into_the_same_model() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let Ok(from_yaml) = load::load(&text, Format::Yaml, Limits::default()) else { continue };
        let json = serde_json::to_string_pretty(&load::export(&from_yaml)).expect("json");
        let from_json = load::load(&json, Format::Json, Limits::default())
            .unwrap_or_else(|e| panic!("{}: the export does not load: {e}", path.display()));
        assert_eq!(answers(&from_yaml), answers(&from_json), "{}", path.display());
        // The export of the reloaded model is the same document (peering state included).
        assert_eq!(load::export(&from_json), load::export(&from_yaml), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} examples checked");
}

#[test]
fn arm_json_accepts_an_array_and_the_value_wrapper() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hub-spoke-nva.yaml"))
        .expect("example");
    let engine = load::load(&text, Format::Yaml, Limits::default()).expect("valid");
    let doc = load::export(&engine);
    let array = doc["resources"].clone();
    let wrapped = serde_json::json!({ "value": array.clone() });
    for text in [array.to_string(), wrapped.to_string()] {
        let again = load::load(&text, Format::Json, Limits::default()).expect("loads");
        assert_eq!(answers(&again), answers(&engine));
    }
}
