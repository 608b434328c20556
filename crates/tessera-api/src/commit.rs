//! The committer: one thread that writes staged store operations durably, several requests per
//! transaction when they queue up (group commit: one fsync for all of them), and answers each
//! request once its operations are on disk.
//!
//! Requests stage their operations under the write lock, in order, so transactions commit in
//! the order the state changed in memory. If a commit fails, memory has run ahead of the store:
//! the committer reloads the state from the store and fails every request staged before the
//! reload (they carry the epoch they were staged in).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use tessera_engine::Limits;
use tessera_model::ArmError;
use tessera_store::{Expect, Op, Store};
use tokio::sync::{RwLock, oneshot};

use crate::core::{Core, store_error};
use crate::feed::Durable;

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;
/// Most store operations of grouped requests in one transaction on a shared store (a single
/// request larger than this still goes alone).
const MAX_SHARED_OPS: usize = 48;
/// Most bytes of values of grouped requests in one transaction on a shared store: etcd takes
/// requests up to 1.5 MiB, and each value is written twice (the key and its log entry).
const MAX_SHARED_BYTES: usize = 512 << 10;

/// The last feed revision a transaction stores, if it stores one.
fn fed_revision(ops: &[Op]) -> Option<u64> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Put { key, value, .. } if key == crate::feed::REVISION_KEY => {
                std::str::from_utf8(value).ok()?.parse().ok()
            }
            _ => None,
        })
        .max()
}

/// The bytes of values a batch writes.
fn value_bytes(ops: &[Op]) -> usize {
    ops.iter().map(|op| if let Op::Put { value, .. } = op { value.len() } else { 0 }).sum()
}

struct Batch {
    ops: Vec<Op>,
    epoch: u64,
    done: oneshot::Sender<Result<(), ArmError>>,
}

/// The key every commit of a server sharing its store writes, guarded by the revision at which
/// the server last saw it: a commit of another server in between makes this one fail (and the
/// state be read again) rather than write over what it has not seen.
pub(crate) const HEAD_KEY: &str = "meta/head";

/// The handle requests use.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Batch>,
    epoch: Arc<AtomicU64>,
    /// With a shared store: the revision of [`HEAD_KEY`] this server's state reflects, under a
    /// lock the committer holds from a commit until it has recorded the revision (so that a
    /// server never takes its own commit for another's).
    head: Option<Arc<std::sync::Mutex<u64>>>,
    /// With a shared store: the keys of batches handed over and not yet committed or refused.
    staged: Option<Arc<Staged>>,
}

/// The keys of batches staged in memory (under the write lock) and not yet resolved. Reading
/// another server's writes one by one also reads these back from the store: those batches
/// will be refused (their epoch is past), and memory must not keep what they changed.
#[derive(Debug, Default)]
struct Staged(std::sync::Mutex<HashMap<String, usize>>);

impl Staged {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn add(&self, ops: &[Op]) {
        let mut keys = self.lock();
        for op in ops {
            *keys.entry(op.key().to_string()).or_default() += 1;
        }
    }

    fn resolved(&self, ops: &[Op]) {
        let mut keys = self.lock();
        for op in ops {
            if let Some(n) = keys.get_mut(op.key()) {
                *n -= 1;
                if *n == 0 {
                    keys.remove(op.key());
                }
            }
        }
    }

    fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }
}

fn lock_head(h: &std::sync::Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    h.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Committer {
    /// Starts the committer thread; it ends (and releases the store) when the last handle is
    /// dropped. `shared_head`: the store is shared with other servers, and this server's state
    /// was read after the head's revision given.
    pub(crate) fn spawn(
        store: Arc<dyn Store>,
        core: Arc<RwLock<Core>>,
        limits: Limits,
        shared_head: Option<u64>,
        durable: Durable,
    ) -> std::io::Result<(Committer, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Batch>();
        let epoch = Arc::new(AtomicU64::new(0));
        let head = shared_head.map(|at| Arc::new(std::sync::Mutex::new(at)));
        let staged = head.as_ref().map(|_| Arc::new(Staged::default()));
        let committer = Committer { tx, epoch: epoch.clone(), head: head.clone(), staged: staged.clone() };
        let thread = std::thread::Builder::new().name("tessera-commit".into()).spawn(move || {
            let shared = head.as_deref().zip(staged.as_deref());
            run(&rx, &*store, &core, &limits, &epoch, shared, &durable);
        })?;
        Ok((committer, thread))
    }

    /// With a shared store: whether the state already reflects store revision `revision` (its
    /// own last commit, or what it last read).
    fn reflects(&self, revision: u64) -> bool {
        self.head.as_ref().is_some_and(|h| *lock_head(h) >= revision)
    }

    /// With a shared store: reads the state again when another server wrote since this one
    /// last saw it (call under the write lock, before a write). Whether it read.
    pub(crate) fn catch_up(&self, store: &dyn Store, core: &mut Core, limits: &Limits) -> Result<bool, ArmError> {
        self.catch_up_with(store, core, limits, false)
    }

    /// [`Committer::catch_up`], reading the store's head even when its watch has reported
    /// nothing newer yet: before a refusal is answered, for it must hold on the latest state (a
    /// write that succeeds is checked by its commit's compare-and-set; one refused never
    /// commits). True when the state was read back.
    pub(crate) fn catch_up_now(&self, store: &dyn Store, core: &mut Core, limits: &Limits) -> Result<bool, ArmError> {
        self.catch_up_with(store, core, limits, true)
    }

    fn catch_up_with(&self, store: &dyn Store, core: &mut Core, limits: &Limits, now: bool) -> Result<bool, ArmError> {
        let Some(head) = &self.head else { return Ok(false) };
        let mut seen = lock_head(head);
        // Nothing newer reported by the store's watch: no read under the write lock (a write
        // on a state another server has just changed loses its commit's race, and runs again).
        if !now && *store.subscribe().borrow() <= *seen {
            return Ok(false);
        }
        let now = store.get(HEAD_KEY).map_err(store_error)?.map_or(0, |e| e.revision);
        if now == *seen {
            return Ok(false);
        }
        let staged = self.staged.as_ref().map(|s| s.keys()).unwrap_or_default();
        *seen = crate::follow::read_back(store, core, limits, *seen, &staged)?;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Hands staged operations over (call under the write lock, so that transactions keep the
    /// order in which the state changed); await the receipt outside the lock.
    pub(crate) fn submit(&self, ops: Vec<Op>) -> Receipt {
        let (done, wait) = oneshot::channel();
        if let Some(s) = &self.staged {
            s.add(&ops);
        }
        // When the thread is gone the sender is dropped with the batch, and the receipt says so.
        let _ = self.tx.send(Batch { ops, epoch: self.epoch.load(Ordering::Acquire), done });
        Receipt(wait)
    }
}

/// Resolves when a request's operations are durable (or failed to be).
#[derive(Debug)]
pub(crate) struct Receipt(oneshot::Receiver<Result<(), ArmError>>);

impl Receipt {
    /// Waits for the commit.
    pub(crate) async fn wait(self) -> Result<(), ArmError> {
        self.0.await.map_err(|_| ArmError::with_status(503, "ServiceUnavailable", "The server is shutting down."))?
    }
}

fn run(
    rx: &mpsc::Receiver<Batch>,
    store: &dyn Store,
    core: &RwLock<Core>,
    limits: &Limits,
    epoch: &AtomicU64,
    shared: Option<(&std::sync::Mutex<u64>, &Staged)>,
    durable: &Durable,
) {
    let head = shared.map(|(h, _)| h);
    let resolved = |b: &Batch| {
        if let Some((_, s)) = shared {
            s.resolved(&b.ops);
        }
    };
    // A shared store (etcd) takes at most 128 operations in a transaction, and each op costs
    // it two (the key and its log entry): requests are grouped up to this many ops.
    let (op_cap, byte_cap) = if head.is_some() { (MAX_SHARED_OPS, MAX_SHARED_BYTES) } else { (usize::MAX, usize::MAX) };
    let mut carried: Option<Batch> = None;
    while let Some(first) = carried.take().or_else(|| rx.recv().ok()) {
        let (mut ops_in, mut bytes_in) = (first.ops.len(), value_bytes(&first.ops));
        let mut batches = vec![first];
        while batches.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(b) if ops_in + b.ops.len() > op_cap || bytes_in + value_bytes(&b.ops) > byte_cap => {
                    carried = Some(b);
                    break;
                }
                Ok(b) => {
                    ops_in += b.ops.len();
                    bytes_in += value_bytes(&b.ops);
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        // With a shared store, the head is held from before the batches are sorted by epoch
        // until the commit is recorded: a reload (`catch_up`) cannot slip in between and leave
        // a batch staged on the old state to be committed against the new head.
        let mut seen = head.map(lock_head);
        let now = epoch.load(Ordering::Acquire);
        let (live, stale): (Vec<Batch>, Vec<Batch>) = batches.into_iter().partition(|b| b.epoch == now);
        for b in stale {
            resolved(&b);
            let _ = b.done.send(Err(ArmError::with_status(
                409,
                "AnotherOperationInProgress",
                "The state was reloaded after a failed write; retry the request.",
            )));
        }
        if live.is_empty() {
            continue;
        }
        let mut ops: Vec<Op> = live.iter().flat_map(|b| b.ops.iter().cloned()).collect();
        if let Some(seen) = &seen {
            let expect = if **seen == 0 { Expect::Absent } else { Expect::At(**seen) };
            ops.push(Op::Put { key: HEAD_KEY.into(), value: Vec::new(), expect });
        }
        let committed = store.commit(&ops);
        if let (Some(seen), Ok(revision)) = (seen.as_mut(), &committed) {
            **seen = *revision;
        }
        // The feed gives agents what is now durable — before the head is released, so that a
        // read-back (which retracts what is not durable) never retracts what was stored.
        if committed.is_ok()
            && let Some(r) = fed_revision(&ops)
        {
            durable.reached(r);
        }
        // Released before any reload: `catch_up` holds the state's lock, then the head's.
        drop(seen);
        match committed {
            Ok(_) => {
                for b in live {
                    resolved(&b);
                    let _ = b.done.send(Ok(()));
                }
            }
            Err(e) => {
                let raced = matches!(e, tessera_store::StoreError::Conflict { .. });
                let error = store_error(e);
                if raced {
                    // Another server wrote first: normal on a shared store; the request runs again.
                    tracing::debug!(ops = ops.len(), "a commit lost the race to another server's");
                } else {
                    tracing::error!(error = %error.message, ops = ops.len(), "a commit failed; reloading the state from the store");
                }
                {
                    let mut core = core.blocking_write();
                    epoch.fetch_add(1, Ordering::AcqRel);
                    // With a shared store: another server's writes and what the store holds at
                    // the keys this commit wrote, read back (one by one when they can be).
                    let reloaded = match shared {
                        Some((h, staged)) => {
                            let seen = *lock_head(h);
                            crate::follow::read_back(store, &mut core, limits, seen, &staged.keys())
                                .map(|at| *lock_head(h) = at)
                        }
                        None => Core::load(store, limits.clone()).map(|mut fresh| {
                            fresh.carry_feed(&mut core);
                            *core = fresh;
                        }),
                    };
                    match reloaded {
                        Ok(()) => {}
                        Err(reload) => {
                            // Memory has run ahead of a store that cannot be read back: serving
                            // writes on it would acknowledge what may never be stored.
                            tracing::error!(
                                commit = %error.message,
                                reload = %reload.message,
                                "the state could not be reloaded after a failed commit; writes are stopped"
                            );
                            core.halted = Some(format!(
                                "a write to the store failed ({}) and the state could not be read back ({}); \
                                 writes are stopped until the server is restarted",
                                error.message, reload.message
                            ));
                        }
                    }
                }
                for b in live {
                    resolved(&b);
                    let _ = b.done.send(Err(error.clone()));
                }
            }
        }
    }
}

/// With a shared store: reads the state again whenever another server commits, so that reads
/// here see what was written there (within the time etcd's watch takes).
pub(crate) fn follow_other_servers(
    store: Arc<dyn Store>,
    core: Arc<RwLock<Core>>,
    committer: Committer,
    limits: Limits,
) -> tokio::task::JoinHandle<()> {
    let mut revisions = store.subscribe();
    tokio::spawn(async move {
        while revisions.changed().await.is_ok() {
            // This server's own commits (most notifications) need no lock and no read.
            let revision = *revisions.borrow_and_update();
            if committer.reflects(revision) {
                continue;
            }
            // Tried again until it reads (a store away for a while is not a change missed).
            let mut pause = std::time::Duration::from_millis(100);
            loop {
                let mut guard = core.write().await;
                let (store, committer, limits) = (store.clone(), committer.clone(), limits.clone());
                let caught = tokio::task::block_in_place(|| committer.catch_up(&*store, &mut guard, &limits));
                drop(guard);
                match caught {
                    Ok(_) => break,
                    Err(e) => tracing::warn!(error = %e.message, "cannot read the state another server wrote"),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(5));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use tessera_store::{Entry, Event, MemoryStore, Revision, StoreError, StoreResult};

    use super::*;

    /// A store that works until told to fail, then fails every call.
    struct Failing {
        inner: MemoryStore,
        broken: AtomicBool,
    }

    impl Failing {
        fn check(&self) -> StoreResult<()> {
            if self.broken.load(Ordering::Acquire) { Err(StoreError::Backend("disk gone".into())) } else { Ok(()) }
        }
    }

    impl Store for Failing {
        fn get(&self, key: &str) -> StoreResult<Option<Entry>> {
            self.check()?;
            self.inner.get(key)
        }
        fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)> {
            self.check()?;
            self.inner.list(prefix)
        }
        fn commit(&self, ops: &[Op]) -> StoreResult<Revision> {
            self.check()?;
            self.inner.commit(ops)
        }
        fn changes_since(&self, revision: Revision) -> StoreResult<Vec<Event>> {
            self.check()?;
            self.inner.changes_since(revision)
        }
        fn revision(&self) -> StoreResult<Revision> {
            self.check()?;
            self.inner.revision()
        }
        fn subscribe(&self) -> tokio::sync::watch::Receiver<Revision> {
            self.inner.subscribe()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_then_a_failed_reload_stops_writes() {
        let store = Arc::new(Failing { inner: MemoryStore::new(), broken: AtomicBool::new(false) });
        let core = Arc::new(RwLock::new(Core::load(&*store, Limits::default()).expect("loads")));
        let durable = core.read().await.feed.durable();
        let (committer, _thread) =
            Committer::spawn(store.clone(), core.clone(), Limits::default(), None, durable).expect("spawn");
        committer.submit(vec![Op::put("a", b"1".to_vec())]).wait().await.expect("a healthy commit");
        store.broken.store(true, Ordering::Release);
        let err = committer.submit(vec![Op::put("b", b"2".to_vec())]).wait().await.expect_err("fails");
        assert_eq!(err.status, 500, "{err:?}");
        let halted = core.read().await.halted.clone().expect("writes are stopped");
        assert!(halted.contains("disk gone"), "{halted}");
    }
}
