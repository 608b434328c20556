//! Tessera's store: a revisioned key-value store with compare-and-set and watch-from-revision.
//!
//! Every committed transaction gets the next revision of the whole store (as in etcd); every
//! key remembers the revision that last wrote it. Writers use that revision for
//! compare-and-set, and watchers read the change log from any revision still retained.
//!
//! Backends: [`RedbStore`] (embedded, durable when `commit` returns), [`MemoryStore`] and
//! [`EtcdStore`] (an etcd cluster, for several servers). All pass the same conformance suite
//! ([`conformance`]).

pub mod conformance;
#[cfg(feature = "etcd")]
pub mod etcd_cluster;
#[cfg(feature = "etcd")]
mod etcd_election;
#[cfg(feature = "etcd")]
mod etcd_store;
mod memory;
mod redb_store;

#[cfg(feature = "etcd")]
pub use etcd_election::Leadership;
#[cfg(feature = "etcd")]
pub use etcd_store::EtcdStore;
pub use memory::MemoryStore;
pub use redb_store::RedbStore;

/// A store revision. 0 means "nothing written yet"; the first commit is revision 1.
pub type Revision = u64;

/// The version of the store's own layout (tables and encodings), recorded in the database.
/// Opening a database written by a newer layout is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// The oldest revision whose changes are still in the log, when the store is at `current` and
/// keeps the last `retention` revisions.
fn oldest_retained(current: Revision, retention: u64) -> Revision {
    current.saturating_sub(retention) + 1
}

/// How many revisions of changes a backend keeps for watchers, by default.
pub const DEFAULT_LOG_RETENTION: u64 = 100_000;

/// A key, its value and the revision that last wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision of the transaction that last wrote it.
    pub revision: Revision,
}

/// What a transaction requires of a key before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing.
    Any,
    /// The key must not exist.
    Absent,
    /// The key must exist and have been last written at this revision.
    At(Revision),
}

/// One write in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create or replace a key.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: Vec<u8>,
        /// The precondition.
        expect: Expect,
    },
    /// Delete a key (deleting a missing key with [`Expect::Any`] is not an error).
    Delete {
        /// The key.
        key: String,
        /// The precondition.
        expect: Expect,
    },
}

impl Op {
    /// An unconditional put.
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put { key: key.into(), value: value.into(), expect: Expect::Any }
    }

    /// An unconditional delete.
    pub fn delete(key: impl Into<String>) -> Op {
        Op::Delete { key: key.into(), expect: Expect::Any }
    }

    /// The key this op writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }

    fn expect(&self) -> Expect {
        match self {
            Op::Put { expect, .. } | Op::Delete { expect, .. } => *expect,
        }
    }
}

/// One change in the log: a key written (with its value) or deleted (`value` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The revision of the transaction.
    pub revision: Revision,
    /// The key.
    pub key: String,
    /// The new value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition of a transaction did not hold; nothing was written.
    #[error("the precondition on key {key:?} failed: expected {expected:?}, found revision {found:?}")]
    Conflict {
        /// The key.
        key: String,
        /// What the transaction expected.
        expected: Expect,
        /// The key's current revision, if it exists.
        found: Option<Revision>,
    },
    /// A watcher asked for changes older than the log keeps.
    #[error("revision {requested} has been compacted; the log starts at {oldest}")]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still in the log.
        oldest: Revision,
    },
    /// The file is not a store of this program (empty, truncated, or another program's).
    #[error("{path} is not a Tessera store ({why}); refusing to start on it or to overwrite it")]
    NotAStore {
        /// The file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// The database was written by a newer layout.
    #[error("the store has schema version {found}; this build reads up to {SCHEMA_VERSION}")]
    Schema {
        /// The version found on disk.
        found: u64,
    },
    /// An I/O or database failure.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A revisioned key-value store.
pub trait Store: Send + Sync {
    /// The value of a key.
    fn get(&self, key: &str) -> StoreResult<Option<Entry>>;

    /// Every key starting with `prefix`, in key order, and the revision they were read at.
    fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)>;

    /// Applies `ops` atomically: either every precondition holds and every op is applied under
    /// one new revision, or nothing changes. Durable when it returns (for durable backends).
    /// An empty transaction writes nothing and returns the current revision.
    fn commit(&self, ops: &[Op]) -> StoreResult<Revision>;

    /// The changes after `revision` (exclusive), oldest first.
    fn changes_since(&self, revision: Revision) -> StoreResult<Vec<Event>>;

    /// The current revision.
    fn revision(&self) -> StoreResult<Revision>;

    /// A receiver that sees every new revision (for watchers to wake on).
    fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision>;
}

/// Checks a transaction's preconditions against a lookup of current key revisions.
fn check_preconditions(ops: &[Op], mut current: impl FnMut(&str) -> StoreResult<Option<Revision>>) -> StoreResult<()> {
    for op in ops {
        let expected = op.expect();
        if expected == Expect::Any {
            continue;
        }
        let found = current(op.key())?;
        let ok = match expected {
            Expect::Any => true,
            Expect::Absent => found.is_none(),
            Expect::At(r) => found == Some(r),
        };
        if !ok {
            return Err(StoreError::Conflict { key: op.key().to_string(), expected, found });
        }
    }
    Ok(())
}
