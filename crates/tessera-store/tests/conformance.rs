//! Both backends pass the same suite; the durable one also keeps what it acknowledged.

use std::sync::Arc;

use tessera_store::{MemoryStore, Op, RedbStore, SCHEMA_VERSION, Store, StoreError, conformance};

#[test]
fn memory_backend_conforms() {
    conformance::run(&|retention| Arc::new(MemoryStore::with_retention(retention)));
}

#[test]
fn redb_backend_conforms() {
    let dir = tempfile::tempdir().expect("temp dir");
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run(&|retention| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("store-{n}.redb"));
        Arc::new(RedbStore::open_with_retention(&path, retention).expect("open"))
    });
}

#[test]
fn redb_keeps_acknowledged_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    {
        let s = RedbStore::open(&path).expect("open");
        s.commit(&[Op::put("a", b"1".to_vec())]).expect("commit");
        s.commit(&[Op::put("b", b"2".to_vec()), Op::delete("a")]).expect("commit");
    }
    let s = RedbStore::open(&path).expect("reopen");
    assert_eq!(s.revision().expect("revision"), 2);
    assert_eq!(s.get("a").expect("get"), None);
    assert_eq!(s.get("b").expect("get").map(|e| e.value), Some(b"2".to_vec()));
    assert_eq!(s.changes_since(0).expect("log").len(), 3, "the change log survives too");
    assert_eq!(*s.subscribe().borrow(), 2, "subscribers start at the stored revision");
}

#[test]
fn redb_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    drop(RedbStore::open(&path).expect("open"));
    {
        let db = redb::Database::create(&path).expect("raw open");
        let txn = db.begin_write().expect("txn");
        {
            let mut meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).expect("meta");
            meta.insert("schema", SCHEMA_VERSION + 1).expect("insert");
        }
        txn.commit().expect("commit");
    }
    match RedbStore::open(&path) {
        Err(StoreError::Schema { found }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("expected a schema refusal, got {other:?}"),
    }
}
