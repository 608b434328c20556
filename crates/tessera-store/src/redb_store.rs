//! The embedded, durable backend on redb: one file, one write transaction per commit, fsync
//! before `commit` returns (redb's `Durability::Immediate`).

use std::fmt::Display;
use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use crate::{
    DEFAULT_LOG_RETENTION, Entry, Event, Op, Revision, SCHEMA_VERSION, Store, StoreError, StoreResult,
    check_preconditions, oldest_retained,
};

/// key -> (revision, value)
const KV: TableDefinition<'_, &str, (u64, &[u8])> = TableDefinition::new("kv");
/// (revision, index in the transaction) -> (key, deleted, value)
const LOG: TableDefinition<'_, (u64, u32), (&str, bool, &[u8])> = TableDefinition::new("log");
/// "revision", "schema" -> number
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");

fn backend(e: impl Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A store in one redb file.
pub struct RedbStore {
    db: Database,
    retention: u64,
    notify: watch::Sender<Revision>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").field("retention", &self.retention).finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the store in `path`, a file.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_retention(path, DEFAULT_LOG_RETENTION)
    }

    /// Opens the store keeping `retention` revisions of change log.
    ///
    /// A new store is made beside `path` readable by its owner only (0600) and renamed into
    /// place once its schema is written, so that a first start cut short leaves no file at
    /// `path`. An existing file must be a store of this program: an empty, truncated or foreign
    /// file is refused ([`StoreError::NotAStore`]) and never taken for a new install.
    pub fn open_with_retention(path: &Path, retention: u64) -> StoreResult<Self> {
        let (db, new) = match std::fs::metadata(path) {
            Ok(m) => (open_existing(path, m.len())?, None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let new = path.with_file_name(format!(
                    "{}.new",
                    path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
                ));
                (create_private(&new)?, Some(new))
            }
            Err(e) => return Err(backend(e)),
        };
        let txn = db.begin_write().map_err(backend)?;
        let revision = {
            let mut meta = txn.open_table(META).map_err(backend)?;
            let schema = meta.get("schema").map_err(backend)?.map(|g| g.value());
            match schema {
                Some(found) if found > SCHEMA_VERSION => return Err(StoreError::Schema { found }),
                Some(_) => {}
                None => {
                    meta.insert("schema", SCHEMA_VERSION).map_err(backend)?;
                }
            }
            txn.open_table(KV).map_err(backend)?;
            txn.open_table(LOG).map_err(backend)?;
            meta.get("revision").map_err(backend)?.map(|g| g.value()).unwrap_or(0)
        };
        txn.commit().map_err(backend)?;
        if let Some(new) = new {
            std::fs::rename(&new, path).map_err(backend)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(backend)?;
            }
        }
        Ok(RedbStore { db, retention: retention.max(1), notify: watch::channel(revision).0 })
    }
}

/// Opens a file that exists (narrowing its mode to 0600): refused unless it is a store of ours.
fn open_existing(path: &Path, len: u64) -> StoreResult<Database> {
    use std::os::unix::fs::PermissionsExt;
    let not_a_store = |why: String| StoreError::NotAStore { path: path.display().to_string(), why };
    if len == 0 {
        return Err(not_a_store("the file is empty".into()));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(backend)?;
    // redb asserts (panics) on some truncated files instead of returning an error.
    let db = match std::panic::catch_unwind(|| Database::open(path)) {
        Ok(opened) => opened.map_err(|e| not_a_store(e.to_string()))?,
        Err(_) => return Err(not_a_store("the file is truncated or damaged".into())),
    };
    // A redb file of another program has no schema: it is not ours to write into.
    let txn = db.begin_read().map_err(|e| not_a_store(e.to_string()))?;
    let schema = txn.open_table(META).ok().and_then(|m| m.get("schema").ok().flatten().map(|g| g.value()));
    if schema.is_none() {
        return Err(not_a_store("it holds no Tessera schema version".into()));
    }
    drop(txn);
    Ok(db)
}

/// Makes a new database at `path` (what an interrupted first start left there is replaced),
/// readable by its owner only.
fn create_private(path: &Path) -> StoreResult<Database> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(backend(e)),
        _ => {}
    }
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(backend)?;
    Database::create(path).map_err(backend)
}

impl Store for RedbStore {
    fn get(&self, key: &str) -> StoreResult<Option<Entry>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let kv = txn.open_table(KV).map_err(backend)?;
        let found = kv.get(key).map_err(backend)?;
        Ok(found.map(|g| {
            let (revision, value) = g.value();
            Entry { key: key.to_string(), value: value.to_vec(), revision }
        }))
    }

    fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)> {
        let txn = self.db.begin_read().map_err(backend)?;
        let kv = txn.open_table(KV).map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let revision = meta.get("revision").map_err(backend)?.map(|g| g.value()).unwrap_or(0);
        let mut out = Vec::new();
        for item in kv.range(prefix..).map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let key = k.value();
            if !key.starts_with(prefix) {
                break;
            }
            let (rev, value) = v.value();
            out.push(Entry { key: key.to_string(), value: value.to_vec(), revision: rev });
        }
        Ok((out, revision))
    }

    fn commit(&self, ops: &[Op]) -> StoreResult<Revision> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate).map_err(backend)?;
        let rev = {
            let mut kv = txn.open_table(KV).map_err(backend)?;
            let mut log = txn.open_table(LOG).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let current = meta.get("revision").map_err(backend)?.map(|g| g.value()).unwrap_or(0);
            check_preconditions(ops, |k| Ok(kv.get(k).map_err(backend)?.map(|g| g.value().0)))?;
            if ops.is_empty() {
                return Ok(current);
            }
            let rev = current + 1;
            let mut index = 0u32;
            for op in ops {
                match op {
                    Op::Put { key, value, .. } => {
                        kv.insert(key.as_str(), (rev, value.as_slice())).map_err(backend)?;
                        log.insert((rev, index), (key.as_str(), false, value.as_slice())).map_err(backend)?;
                    }
                    Op::Delete { key, .. } => {
                        if kv.remove(key.as_str()).map_err(backend)?.is_none() {
                            continue;
                        }
                        log.insert((rev, index), (key.as_str(), true, &[][..])).map_err(backend)?;
                    }
                }
                index += 1;
            }
            let oldest = oldest_retained(rev, self.retention);
            if oldest > 1 {
                // One revision leaves the log per commit; take everything older in one go.
                log.retain_in((0, 0)..(oldest, 0), |_, _| false).map_err(backend)?;
            }
            meta.insert("revision", rev).map_err(backend)?;
            rev
        };
        txn.commit().map_err(backend)?;
        self.notify.send_replace(rev);
        Ok(rev)
    }

    fn changes_since(&self, revision: Revision) -> StoreResult<Vec<Event>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let current = meta.get("revision").map_err(backend)?.map(|g| g.value()).unwrap_or(0);
        let oldest = oldest_retained(current, self.retention);
        if revision + 1 < oldest {
            return Err(StoreError::Compacted { requested: revision, oldest });
        }
        let log = txn.open_table(LOG).map_err(backend)?;
        let mut out = Vec::new();
        for item in log.range((revision + 1, 0)..).map_err(backend)? {
            let (k, v) = item.map_err(backend)?;
            let (rev, _) = k.value();
            let (key, deleted, value) = v.value();
            out.push(Event { revision: rev, key: key.to_string(), value: (!deleted).then(|| value.to_vec()) });
        }
        Ok(out)
    }

    fn revision(&self) -> StoreResult<Revision> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        Ok(meta.get("revision").map_err(backend)?.map(|g| g.value()).unwrap_or(0))
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}
