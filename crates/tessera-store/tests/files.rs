//! The store's file: made readable by its owner only, and never taken for a new install when it
//! is empty, truncated or another program's (issue 13, point 5).

use std::os::unix::fs::PermissionsExt;

use tessera_store::{Op, RedbStore, Store, StoreError};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn refused(path: &std::path::Path) -> String {
    match RedbStore::open(path) {
        Err(e @ StoreError::NotAStore { .. }) => e.to_string(),
        Err(other) => panic!("refused, but not as a foreign file: {other}"),
        Ok(_) => panic!("{} was opened", path.display()),
    }
}

#[test]
fn a_new_store_file_is_private() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    RedbStore::open(&path).expect("opens");
    assert_eq!(mode(&path), 0o600);
    // A store whose mode was widened is narrowed again on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    RedbStore::open(&path).expect("reopens");
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn an_empty_truncated_or_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("dir");
    // Empty.
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").expect("write");
    assert!(refused(&empty).contains("empty"));
    assert_eq!(std::fs::metadata(&empty).expect("metadata").len(), 0, "not written to");

    // Truncated: a real store with data, cut in half.
    let cut = dir.path().join("cut.redb");
    {
        let s = RedbStore::open(&cut).expect("opens");
        let ops: Vec<Op> = (0..200).map(|i| Op::put(format!("doc/{i}"), vec![7u8; 512])).collect();
        s.commit(&ops).expect("commit");
    }
    let len = std::fs::metadata(&cut).expect("metadata").len();
    let f = std::fs::OpenOptions::new().write(true).open(&cut).expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    refused(&cut);
    assert_eq!(std::fs::metadata(&cut).expect("metadata").len(), len / 2, "not rewritten");

    // Foreign: text, and another program's redb database.
    let text = dir.path().join("text.redb");
    std::fs::write(&text, b"{\"not\": \"a store\"}").expect("write");
    refused(&text);
    let other = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&other).expect("db");
        let t = db.begin_write().expect("txn");
        t.open_table(redb::TableDefinition::<&str, u64>::new("theirs")).expect("table").insert("k", 1).expect("insert");
        t.commit().expect("commit");
    }
    assert!(refused(&other).contains("schema"));
}

#[test]
fn a_first_start_cut_short_leaves_no_store_to_refuse() {
    // A crash while the new store was being made leaves only `store.redb.new` (here empty):
    // the next start makes the store afresh, and no half-made file ever sits at the store's path.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("store.redb");
    std::fs::write(dir.path().join("store.redb.new"), b"").expect("leftover");
    let s = RedbStore::open(&path).expect("a new store");
    s.commit(&[Op::put("k", b"v".to_vec())]).expect("commit");
    drop(s);
    assert!(!dir.path().join("store.redb.new").exists(), "moved into place");
    assert_eq!(mode(&path), 0o600);
    let again = RedbStore::open(&path).expect("reopens");
    assert_eq!(again.get("k").expect("get").map(|e| e.value), Some(b"v".to_vec()));
}
