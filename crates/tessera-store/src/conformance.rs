//! The conformance suite every backend runs: one function per property, each given a fresh store
//! made by the backend's factory (which takes the change-log retention to use).
//!
//! A backend's test calls [`run`] with its factory; the suite panics with the name of the first
//! property that fails.

use std::sync::Arc;

use crate::{Expect, Op, Revision, Store, StoreError};

/// Makes a fresh, empty store keeping the given number of revisions of change log.
pub type Factory<'a> = &'a dyn Fn(u64) -> Arc<dyn Store>;

/// One property of the suite.
pub type Property = fn(Factory<'_>);

/// Every property, by name.
pub const PROPERTIES: &[(&str, Property)] = &[
    ("empty store", empty_store),
    ("put then get", put_then_get),
    ("one revision per transaction", one_revision_per_transaction),
    ("list by prefix", list_by_prefix),
    ("compare-and-set", compare_and_set),
    ("failed precondition writes nothing", failed_precondition_writes_nothing),
    ("delete", delete),
    ("change log", change_log),
    ("compaction", compaction),
    ("subscribe", subscribe),
    ("no lost update under contention", no_lost_update),
];

/// Runs every property against fresh stores from `factory`.
pub fn run(factory: Factory<'_>) {
    for (name, property) in PROPERTIES {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| property(factory)));
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            panic!("store conformance: property {name:?} failed: {why}");
        }
    }
}

fn ok<T>(r: crate::StoreResult<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected store error: {e}"),
    }
}

fn value(s: &dyn Store, key: &str) -> Option<Vec<u8>> {
    ok(s.get(key)).map(|e| e.value)
}

fn empty_store(f: Factory<'_>) {
    let s = f(100);
    assert_eq!(ok(s.revision()), 0);
    assert_eq!(ok(s.get("a")), None);
    assert_eq!(ok(s.list("")).0, vec![]);
    assert_eq!(ok(s.changes_since(0)), vec![]);
    assert_eq!(ok(s.commit(&[])), 0, "an empty transaction writes nothing");
}

fn put_then_get(f: Factory<'_>) {
    let s = f(100);
    let rev = ok(s.commit(&[Op::put("a", b"1".to_vec())]));
    assert_eq!(rev, 1);
    let e = ok(s.get("a")).expect("the key was written");
    assert_eq!((e.key.as_str(), e.value.as_slice(), e.revision), ("a", &b"1"[..], 1));
    ok(s.commit(&[Op::put("a", b"2".to_vec())]));
    assert_eq!(value(&*s, "a"), Some(b"2".to_vec()));
    assert_eq!(ok(s.get("a")).map(|e| e.revision), Some(2));
    assert_eq!(ok(s.get("A")), None, "keys are exact byte strings");
}

fn one_revision_per_transaction(f: Factory<'_>) {
    let s = f(100);
    let rev = ok(s.commit(&[Op::put("a", b"1".to_vec()), Op::put("b", b"2".to_vec())]));
    assert_eq!(rev, 1);
    assert_eq!(ok(s.get("a")).map(|e| e.revision), Some(1));
    assert_eq!(ok(s.get("b")).map(|e| e.revision), Some(1));
    assert_eq!(ok(s.commit(&[Op::put("c", b"3".to_vec())])), 2);
    assert_eq!(ok(s.revision()), 2);
    assert_eq!(ok(s.get("a")).map(|e| e.revision), Some(1), "untouched keys keep their revision");
}

fn list_by_prefix(f: Factory<'_>) {
    let s = f(100);
    let keys = ["res/b", "res/a", "res/a/child", "rg/x", "res0", "re"];
    let ops: Vec<Op> = keys.iter().map(|k| Op::put(*k, k.as_bytes().to_vec())).collect();
    ok(s.commit(&ops));
    let (items, rev) = ok(s.list("res/"));
    let got: Vec<&str> = items.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(got, ["res/a", "res/a/child", "res/b"], "prefix match, key order");
    assert_eq!(rev, 1);
    assert_eq!(ok(s.list("")).0.len(), keys.len());
    assert_eq!(ok(s.list("zzz")).0, vec![]);
}

fn compare_and_set(f: Factory<'_>) {
    let s = f(100);
    ok(s.commit(&[Op::Put { key: "a".into(), value: b"1".to_vec(), expect: Expect::Absent }]));
    let again = s.commit(&[Op::Put { key: "a".into(), value: b"x".to_vec(), expect: Expect::Absent }]);
    assert!(matches!(again, Err(StoreError::Conflict { found: Some(1), .. })), "{again:?}");
    let stale = s.commit(&[Op::Put { key: "a".into(), value: b"x".to_vec(), expect: Expect::At(7) }]);
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
    ok(s.commit(&[Op::Put { key: "a".into(), value: b"2".to_vec(), expect: Expect::At(1) }]));
    assert_eq!(value(&*s, "a"), Some(b"2".to_vec()));
    let missing = s.commit(&[Op::Delete { key: "zz".into(), expect: Expect::At(1) }]);
    assert!(matches!(missing, Err(StoreError::Conflict { found: None, .. })), "{missing:?}");
    ok(s.commit(&[Op::Delete { key: "a".into(), expect: Expect::At(2) }]));
    assert_eq!(value(&*s, "a"), None);
}

fn failed_precondition_writes_nothing(f: Factory<'_>) {
    let s = f(100);
    ok(s.commit(&[Op::put("a", b"1".to_vec())]));
    let r = s.commit(&[
        Op::put("b", b"2".to_vec()),
        Op::delete("a"),
        Op::Put { key: "a".into(), value: b"3".to_vec(), expect: Expect::Absent },
    ]);
    assert!(matches!(r, Err(StoreError::Conflict { .. })));
    assert_eq!(value(&*s, "b"), None, "an earlier op of a failed transaction is not applied");
    assert_eq!(value(&*s, "a"), Some(b"1".to_vec()));
    assert_eq!(ok(s.revision()), 1, "a failed transaction takes no revision");
    assert_eq!(ok(s.changes_since(1)), vec![]);
}

fn delete(f: Factory<'_>) {
    let s = f(100);
    ok(s.commit(&[Op::put("a", b"1".to_vec()), Op::put("b", b"1".to_vec())]));
    let rev = ok(s.commit(&[Op::delete("a"), Op::delete("missing")]));
    assert_eq!(rev, 2);
    assert_eq!(ok(s.get("a")), None);
    assert_eq!(ok(s.list("")).0.len(), 1);
    let events = ok(s.changes_since(1));
    assert_eq!(events.len(), 1, "deleting a missing key logs nothing: {events:?}");
    assert_eq!((events[0].key.as_str(), events[0].value.as_ref()), ("a", None));
}

fn change_log(f: Factory<'_>) {
    let s = f(100);
    ok(s.commit(&[Op::put("a", b"1".to_vec())]));
    ok(s.commit(&[Op::put("b", b"2".to_vec()), Op::put("a", b"3".to_vec())]));
    ok(s.commit(&[Op::delete("b")]));
    let all = ok(s.changes_since(0));
    let seen: Vec<(Revision, &str, Option<&[u8]>)> =
        all.iter().map(|e| (e.revision, e.key.as_str(), e.value.as_deref())).collect();
    assert_eq!(
        seen,
        vec![(1, "a", Some(&b"1"[..])), (2, "b", Some(&b"2"[..])), (2, "a", Some(&b"3"[..])), (3, "b", None)],
        "in revision order, and within a transaction in op order"
    );
    assert_eq!(ok(s.changes_since(2)).len(), 1);
    assert_eq!(ok(s.changes_since(3)), vec![]);
    assert_eq!(ok(s.changes_since(99)), vec![]);
}

fn compaction(f: Factory<'_>) {
    let s = f(3);
    for i in 0..10u8 {
        ok(s.commit(&[Op::put(format!("k{i}"), vec![i])]));
    }
    // Revisions 8, 9 and 10 are kept: a watcher at 7 or later can resume.
    assert_eq!(ok(s.changes_since(7)).len(), 3);
    assert_eq!(ok(s.changes_since(9)).len(), 1);
    match s.changes_since(6) {
        Err(StoreError::Compacted { requested: 6, oldest: 8 }) => {}
        other => panic!("expected Compacted from 8, got {other:?}"),
    }
    assert_eq!(ok(s.list("k")).0.len(), 10, "compaction drops log entries, never data");
}

fn subscribe(f: Factory<'_>) {
    let s = f(100);
    let mut rx = s.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    ok(s.commit(&[Op::put("a", b"1".to_vec())]));
    assert!(rx.has_changed().unwrap_or(false), "a commit notifies subscribers");
    assert_eq!(*rx.borrow_and_update(), 1);
    let _ = s.commit(&[Op::Put { key: "a".into(), value: vec![], expect: Expect::Absent }]);
    assert!(!rx.has_changed().unwrap_or(true), "a failed commit does not notify");
}

fn no_lost_update(f: Factory<'_>) {
    let s = f(100_000);
    ok(s.commit(&[Op::put("counter", 0u64.to_le_bytes().to_vec())]));
    const THREADS: u64 = 4;
    const EACH: u64 = 50;
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            let s = s.clone();
            scope.spawn(move || {
                for _ in 0..EACH {
                    loop {
                        let e = ok(s.get("counter")).expect("counter exists");
                        let n = u64::from_le_bytes(e.value.as_slice().try_into().expect("8 bytes"));
                        let next = (n + 1).to_le_bytes().to_vec();
                        match s.commit(&[Op::Put {
                            key: "counter".into(),
                            value: next,
                            expect: Expect::At(e.revision),
                        }]) {
                            Ok(_) => break,
                            Err(StoreError::Conflict { .. }) => continue,
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            });
        }
    });
    let e = ok(s.get("counter")).expect("counter exists");
    assert_eq!(u64::from_le_bytes(e.value.as_slice().try_into().expect("8 bytes")), THREADS * EACH);
    assert_eq!(ok(s.revision()), 1 + THREADS * EACH, "every successful CAS took exactly one revision");
}
