//! The etcd backend (issue 18) on a real 3-member etcd cluster that the test starts on loopback
//! ports (Debian's `etcd`, installed by `.ci/run`) and stops when it ends: the conformance
//! suite every backend passes; two stores on one namespace (two servers) see each other's
//! commits and never lose an update between them; a member killed, writes go on.

#![cfg(feature = "etcd")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tessera_store::etcd_cluster::Cluster;
use tessera_store::{EtcdStore, Expect, Op, Store, StoreError, conformance};

#[test]
fn etcd_backend_conforms_and_survives_a_member() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path());
    let n = AtomicUsize::new(0);
    conformance::run(&|retention| {
        let ns = format!("conformance-{}", n.fetch_add(1, Ordering::Relaxed));
        Arc::new(EtcdStore::connect(&cluster.clients, &ns, retention).expect("connect"))
    });

    // Two servers on one namespace: each sees the other's commits, and compare-and-set between
    // them loses no update.
    let a: Arc<dyn Store> = Arc::new(EtcdStore::connect(&cluster.clients, "shared", 1000).expect("a"));
    let b: Arc<dyn Store> = Arc::new(EtcdStore::connect(&cluster.clients, "shared", 1000).expect("b"));
    let mut woken = b.subscribe();
    let rev = a.commit(&[Op::put("k", b"1".to_vec())]).expect("commit");
    assert_eq!(b.get("k").expect("get").map(|e| (e.value, e.revision)), Some((b"1".to_vec(), rev)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while *woken.borrow_and_update() < rev {
        assert!(Instant::now() < deadline, "the other server's subscriber never woke");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stale = b.commit(&[Op::Put { key: "k".into(), value: b"x".to_vec(), expect: Expect::At(rev - 1) }]);
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
    std::thread::scope(|s| {
        for store in [&a, &b] {
            s.spawn(move || {
                for _ in 0..25 {
                    loop {
                        let e = store.get("n").expect("get");
                        let n = e.as_ref().map_or(0, |e| u64::from_le_bytes(e.value[..8].try_into().expect("8")));
                        let expect = e.map_or(Expect::Absent, |e| Expect::At(e.revision));
                        let op = Op::Put { key: "n".into(), value: (n + 1).to_le_bytes().to_vec(), expect };
                        match store.commit(&[op]) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    let n = a.get("n").expect("get").expect("n");
    assert_eq!(u64::from_le_bytes(n.value[..8].try_into().expect("8")), 50);

    // One member killed: the other two keep a quorum and writes go on.
    let mut cluster = cluster;
    let mut dead = cluster.members.remove(0);
    dead.kill().expect("kill a member");
    let _ = dead.wait();
    let before = a.revision().expect("revision");
    let mut written = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while written < 20 {
        assert!(Instant::now() < deadline, "writes did not go on with a member down ({written} of 20)");
        if a.commit(&[Op::put(format!("after/{written}"), b"x".to_vec())]).is_ok() {
            written += 1;
        }
    }
    assert_eq!(a.revision().expect("revision"), before + 20);
    assert_eq!(b.list("after/").expect("list").0.len(), 20);
}
