//! Two labs on one machine (root, as CI runs): `tessera down` of one removes its own VMs and
//! state only — the other lab's VMs go on running and answer — and keeps its logs.

mod lab;

use std::path::Path;
use std::process::Command;

use lab::{Lab, TESSERA, namespace};

fn topology(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/lab").join(name)
}

fn namespace_exists(vm: &str) -> bool {
    tessera_lab::namespaces().contains(&namespace(vm))
}

#[test]
fn down_of_one_lab_leaves_another_running() {
    let first = Lab::up(&topology("workers.yaml"));
    let second = Lab::up(&topology("other-lab.yaml"));
    assert!(second.ping("other-a", "10.213.0.5"), "the second lab works before");
    assert!(namespace_exists("workers-a") && namespace_exists("other-a"));

    let out = Command::new(TESSERA).arg("down").arg("--data-dir").arg(first.data()).output().expect("down");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!namespace_exists("workers-a") && !namespace_exists("workers-b"), "the first lab's VMs are gone");
    assert!(namespace_exists("other-a") && namespace_exists("other-b"), "the second lab's VMs are left");
    assert!(second.ping("other-a", "10.213.0.5"), "and still carry packets");
    let kept: Vec<String> = std::fs::read_dir(first.data())
        .expect("the data directory stays")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(kept, vec!["serve.log".to_string()], "only the logs are kept");
    assert!(std::fs::metadata(first.data().join("serve.log")).expect("log").len() > 0);
}
