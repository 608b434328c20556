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

/// Waits until `pred` holds of the two views, or fails with `what`.
fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !pred() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_leader_at_a_time_and_a_follower_takes_over() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path());
    let ttl = Duration::from_secs(2);
    let a = EtcdStore::connect(&cluster.clients, "elect", 1000).expect("a");
    let b = EtcdStore::connect(&cluster.clients, "elect", 1000).expect("b");
    let c = EtcdStore::connect(&cluster.clients, "elect", 1000).expect("c");
    let ra = a.campaign("a", ttl);
    let rb = b.campaign("b", ttl);
    wait_until("nobody was elected", || {
        let (x, y) = (ra.borrow().clone(), rb.borrow().clone());
        x.mine != y.mine && x.holder.is_some() && x.holder == y.holder
    });
    let (first, mut rest) = if ra.borrow().mine { (ra, vec![("b", b, rb)]) } else { (rb, vec![("a", a, ra)]) };
    let first_term = first.borrow().term;
    assert!(first_term > 0);

    // History: compacted on etcd while the store's own log and reads are untouched.
    let store = &rest[0].1;
    for i in 0..40 {
        store.commit(&[Op::put(format!("k/{}", i % 4), vec![u8::try_from(i).expect("small")])]).expect("commit");
    }
    let at = store.revision().expect("revision");
    let compacted = store.compact_history(5).expect("compaction");
    assert!(compacted.is_some(), "forty versions and nothing to compact");
    assert_eq!(store.list("k/").expect("list").0.len(), 4);
    assert_eq!(store.changes_since(at - 10).expect("the store's log").len(), 10);
    assert_eq!(store.compact_history(5).expect("again"), None, "compacted twice to one revision");

    // The leader steps down (its server stops listening): the follower takes over at once,
    // in a later term, and the two never both lead.
    drop(first);
    let (_, follower, rf) = rest.remove(0);
    wait_until("the follower did not take over", || rf.borrow().mine);
    let second_term = rf.borrow().term;
    assert!(second_term > first_term, "{second_term} after {first_term}");

    // A leader that dies without a word (its client gone): its lease expires and a third
    // candidate takes over.
    let rc = c.campaign("c", ttl);
    wait_until("c did not see b lead", || rc.borrow().holder.is_some() && !rc.borrow().mine);
    let died = Instant::now();
    drop(follower);
    wait_until("c did not take over from a dead leader", || rc.borrow().mine);
    assert!(died.elapsed() >= Duration::from_millis(500), "took over before the lease could expire");
    assert!(rc.borrow().term > second_term);
    drop(rf);
}

/// A state larger than one gRPC answer (4 MiB): 2,500 values of 3 KiB (7.3 MiB) list whole,
/// and their change log reads whole, from this store and from a new one (a server restarting
/// on a large store). A value of 600 kB (the most etcd takes with its log entry) lists too.
#[test]
fn a_state_larger_than_one_answer_lists_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path());
    let store = EtcdStore::connect(&cluster.clients, "large", 100_000).expect("connect");
    let value = |i: usize| format!("{i:06}").repeat(512).into_bytes();
    for chunk in (0..2500).collect::<Vec<_>>().chunks(50) {
        let ops: Vec<Op> = chunk.iter().map(|i| Op::put(format!("doc/{i:06}"), value(*i))).collect();
        store.commit(&ops).expect("commit");
    }
    store
        .commit(&[Op::put("doc/zz-big", vec![b'b'; 600_000])])
        .expect("a 600 kB value (written twice: the key and its log entry)");
    let again = EtcdStore::connect(&cluster.clients, "large", 100_000).expect("reconnect");
    for s in [&store, &again] {
        let (items, revision) = s.list("doc/").expect("a large list");
        assert_eq!(items.len(), 2501);
        assert!(
            items.iter().take(2500).enumerate().all(|(i, e)| e.key == format!("doc/{i:06}") && e.value == value(i))
        );
        assert_eq!(items[2500].value.len(), 600_000);
        let events = s.changes_since(0).expect("a large change log");
        assert_eq!(events.len(), 2501, "one event per key");
        assert_eq!(events.last().map(|e| e.revision), Some(revision));
    }
}
