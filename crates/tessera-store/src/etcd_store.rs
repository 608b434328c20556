//! The store on an etcd cluster (etcd v3 API, `etcd-client`), for several servers on one
//! state (issue 18).
//!
//! Everything lives under a namespace prefix `NS`:
//! - `NS/m/rev`: the store's own revision (a u64), so that revisions count this store's
//!   transactions from 1 whatever else the cluster holds;
//! - `NS/d/<key>`: a key's value, prefixed by the store revision that last wrote it;
//! - `NS/l/<revision>/<i>`: the change log, one entry per op of a transaction; entries older
//!   than the retention are deleted by the transaction that makes them old.
//!
//! A commit reads the revision key and the keys it writes in one read transaction, checks the
//! preconditions on what it read, then writes in one etcd transaction guarded by the etcd
//! modification revisions it read (so a commit of another server in between makes it read
//! again). Subscribers wake on every new revision, this server's or another's (an etcd watch on
//! the revision key). Calls block the caller until etcd answers; the client runs on a runtime of
//! its own, so they may come from inside another runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse};
use tokio::sync::watch;

use crate::{Entry, Event, Op, Revision, Store, StoreError, StoreResult, check_preconditions, oldest_retained};

/// How many times a commit reads again after another writer won.
const RETRIES: usize = 1000;

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("etcd: {e}"))
}

/// A store on etcd.
pub struct EtcdStore {
    /// The client's own runtime (None only while it is dropped).
    pub(crate) runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: Client,
    pub(crate) ns: String,
    retention: u64,
    notify: watch::Sender<Revision>,
    /// The lease this store's candidate leads with (`etcd_election.rs`).
    pub(crate) lease: crate::etcd_election::HeldLease,
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Dropped from anywhere, a runtime inside another one included.
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").field("namespace", &self.ns).finish()
    }
}

/// What one key held when a commit read it: its store revision and etcd's modification
/// revision of it.
#[derive(Clone, Copy)]
struct Seen {
    revision: Revision,
    etcd: i64,
}

fn decode_value(raw: &[u8]) -> StoreResult<(Revision, Vec<u8>)> {
    let (rev, value) = raw.split_at_checked(8).ok_or_else(|| backend("a value without its revision"))?;
    Ok((u64::from_le_bytes(rev.try_into().map_err(backend)?), value.to_vec()))
}

fn encode_value(revision: Revision, value: &[u8]) -> Vec<u8> {
    let mut out = revision.to_le_bytes().to_vec();
    out.extend_from_slice(value);
    out
}

/// A log entry: a kind byte (1 put, 0 delete), the key's length, the key, the value.
fn encode_event(key: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = vec![u8::from(value.is_some())];
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value.unwrap_or_default());
    out
}

fn decode_event(revision: Revision, raw: &[u8]) -> StoreResult<Event> {
    let bad = || backend("a corrupt log entry");
    let (&kind, rest) = raw.split_first().ok_or_else(bad)?;
    let (len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
    let len = usize::try_from(u32::from_le_bytes(len.try_into().map_err(backend)?)).map_err(backend)?;
    let (key, value) = rest.split_at_checked(len).ok_or_else(bad)?;
    let key = String::from_utf8(key.to_vec()).map_err(backend)?;
    Ok(Event { revision, key, value: (kind == 1).then(|| value.to_vec()) })
}

/// The answers of a read transaction's gets, in order.
pub(crate) fn gets(resp: &etcd_client::TxnResponse) -> Vec<etcd_client::GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            TxnOpResponse::Get(g) => Some(g),
            _ => None,
        })
        .collect()
}

/// The store revision a get of the revision key found (0 before the first commit), and etcd's
/// modification revision of that key (0 when absent).
fn store_revision(get: Option<&etcd_client::GetResponse>) -> StoreResult<(Revision, i64)> {
    match get.and_then(|g| g.kvs().first()) {
        Some(kv) => Ok((u64::from_le_bytes(kv.value().try_into().map_err(backend)?), kv.mod_revision())),
        None => Ok((0, 0)),
    }
}

impl EtcdStore {
    /// Connects to the cluster at `endpoints` (`host:port`) and opens the store under
    /// `namespace`, keeping `retention` revisions of change log.
    pub fn connect(endpoints: &[String], namespace: &str, retention: u64) -> StoreResult<EtcdStore> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tessera-etcd")
            .enable_all()
            .build()
            .map_err(backend)?;
        let options =
            ConnectOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(10));
        let eps = endpoints.to_vec();
        // Connected on the client's runtime: the caller may be inside a runtime of its own.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(Client::connect(eps, Some(options)).await.map_err(backend));
        });
        let client = match rx.recv().map_err(|_| backend("the client's runtime stopped")).and_then(|r| r) {
            Ok(c) => c,
            Err(e) => {
                // Dropped here, the runtime could be inside the caller's: let it go quietly.
                runtime.shutdown_background();
                return Err(e);
            }
        };
        let (notify, _) = watch::channel(0);
        let store = EtcdStore {
            runtime: Some(runtime),
            client,
            ns: namespace.trim_end_matches('/').to_string(),
            retention: retention.max(1),
            notify,
            lease: crate::etcd_election::HeldLease::default(),
        };
        let now = store.revision()?;
        store.notify.send_replace(now);
        store.follow();
        Ok(store)
    }

    fn rev_key(&self) -> String {
        format!("{}/m/rev", self.ns)
    }

    fn data_key(&self, key: &str) -> String {
        format!("{}/d/{key}", self.ns)
    }

    fn log_key(&self, revision: Revision, i: usize) -> String {
        format!("{}/l/{revision:020}/{i:06}", self.ns)
    }

    /// Runs `f` on the client's runtime and waits for it (from any thread or runtime).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime = self.runtime.as_ref().ok_or_else(|| backend("the store is closing"))?;
        runtime.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().map_err(|_| backend("the client's runtime stopped"))?
    }

    /// Wakes subscribers on every revision written by anyone (an etcd watch on the revision key).
    fn follow(&self) {
        let (mut client, key, notify) = (self.client.clone(), self.rev_key(), self.notify.clone());
        let Some(runtime) = self.runtime.as_ref() else { return };
        runtime.spawn(async move {
            let wake = |rev: u64| {
                notify.send_if_modified(|r| {
                    let newer = rev > *r;
                    if newer {
                        *r = rev;
                    }
                    newer
                });
            };
            loop {
                if let Ok(mut stream) = client.watch(key.clone(), None).await {
                    // The watch starts from now: what was written while there was none is read.
                    if let Ok(g) = client.get(key.clone(), None).await
                        && let Ok((rev, _)) = store_revision(Some(&g))
                    {
                        wake(rev);
                    }
                    while let Ok(Some(msg)) = stream.message().await {
                        if msg.canceled() {
                            break;
                        }
                        for e in msg.events() {
                            if let Some(rev) = e.kv().and_then(|kv| kv.value().try_into().ok()).map(u64::from_le_bytes)
                            {
                                wake(rev);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    /// Reads the revision key and `keys` in one consistent read.
    fn read(&self, keys: Vec<String>) -> StoreResult<(Revision, i64, BTreeMap<String, Seen>)> {
        let mut kv = self.client.kv_client();
        let rev_key = self.rev_key();
        let prefix = format!("{}/d/", self.ns);
        self.run(async move {
            let mut ops = vec![TxnOp::get(rev_key, None)];
            ops.extend(keys.iter().map(|k| TxnOp::get(format!("{prefix}{k}"), None)));
            let gets = gets(&kv.txn(Txn::new().and_then(ops)).await.map_err(backend)?);
            let (rev, rev_etcd) = store_revision(gets.first())?;
            let mut seen = BTreeMap::new();
            for (k, g) in keys.iter().zip(gets.iter().skip(1)) {
                if let Some(kv) = g.kvs().first() {
                    seen.insert(k.clone(), Seen { revision: decode_value(kv.value())?.0, etcd: kv.mod_revision() });
                }
            }
            Ok((rev, rev_etcd, seen))
        })
    }

    /// One attempt at a commit: Ok(None) when another writer won in between.
    fn try_commit(&self, ops: &[Op]) -> StoreResult<Option<Revision>> {
        let keys: Vec<String> = {
            let mut k: Vec<String> = ops.iter().map(|o| o.key().to_string()).collect();
            k.sort();
            k.dedup();
            k
        };
        let (current, rev_etcd, seen) = self.read(keys.clone())?;
        check_preconditions(ops, |k| Ok(seen.get(k).map(|s| s.revision)))?;
        let next = current + 1;
        let guard = |key: String, etcd: Option<i64>| match etcd {
            Some(m) => Compare::mod_revision(key, CompareOp::Equal, m),
            None => Compare::version(key, CompareOp::Equal, 0),
        };
        let mut compares = vec![guard(self.rev_key(), (rev_etcd > 0).then_some(rev_etcd))];
        compares.extend(keys.iter().map(|k| guard(self.data_key(k), seen.get(k).map(|s| s.etcd))));
        // The final state of each key (a key may be written twice in one transaction), and the
        // log of every op in order.
        let mut exists: BTreeMap<&str, bool> = seen.keys().map(|k| (k.as_str(), true)).collect();
        let mut last: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        let mut writes = vec![TxnOp::put(self.rev_key(), next.to_le_bytes().to_vec(), None)];
        let mut logged = 0;
        for o in ops {
            let (key, value) = match o {
                Op::Put { key, value, .. } => (key.as_str(), Some(value.as_slice())),
                Op::Delete { key, .. } => (key.as_str(), None),
            };
            let was = exists.get(key).copied().unwrap_or(false);
            if value.is_none() && !was {
                continue;
            }
            exists.insert(key, value.is_some());
            last.insert(key, value);
            writes.push(TxnOp::put(self.log_key(next, logged), encode_event(key, value), None));
            logged += 1;
        }
        for (key, value) in last {
            writes.push(match value {
                Some(v) => TxnOp::put(self.data_key(key), encode_value(next, v), None),
                None => TxnOp::delete(self.data_key(key), None),
            });
        }
        let oldest = oldest_retained(next, self.retention);
        if oldest > 1 {
            let start = format!("{}/l/", self.ns);
            let end = format!("{}/l/{oldest:020}", self.ns);
            writes.push(TxnOp::delete(start, Some(DeleteOptions::new().with_range(end))));
        }
        let mut kv = self.client.kv_client();
        let txn = Txn::new().when(compares).and_then(writes);
        let won = self.run(async move { Ok(kv.txn(txn).await.map_err(backend)?.succeeded()) })?;
        Ok(won.then_some(next))
    }
}

impl EtcdStore {
    fn get_once(&self, key: &str) -> StoreResult<Option<Entry>> {
        let mut kv = self.client.kv_client();
        let (full, key) = (self.data_key(key), key.to_string());
        self.run(async move {
            let resp = kv.get(full, None).await.map_err(backend)?;
            match resp.kvs().first() {
                Some(e) => {
                    let (revision, value) = decode_value(e.value())?;
                    Ok(Some(Entry { key, value, revision }))
                }
                None => Ok(None),
            }
        })
    }

    fn list_once(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)> {
        let mut kv = self.client.kv_client();
        let base = format!("{}/d/", self.ns);
        let (rev_key, range) = (self.rev_key(), format!("{base}{prefix}"));
        self.run(async move {
            let end = prefix_end(range.as_bytes());
            let (revision, kvs) = read_range(&mut kv, &rev_key, range.as_bytes(), &end).await?;
            let mut out = Vec::new();
            for e in &kvs {
                let key = e.key_str().map_err(backend)?;
                let key = key.strip_prefix(base.as_str()).unwrap_or(key).to_string();
                let (rev, value) = decode_value(e.value())?;
                out.push(Entry { key, value, revision: rev });
            }
            Ok((out, revision))
        })
    }

    fn commit_once(&self, ops: &[Op]) -> StoreResult<Revision> {
        if ops.is_empty() {
            return self.revision_once();
        }
        for _ in 0..RETRIES {
            if let Some(rev) = self.try_commit(ops)? {
                self.notify.send_if_modified(|r| {
                    let newer = rev > *r;
                    if newer {
                        *r = rev;
                    }
                    newer
                });
                return Ok(rev);
            }
        }
        Err(backend("too many concurrent writers: the commit never won"))
    }

    fn changes_since_once(&self, revision: Revision) -> StoreResult<Vec<Event>> {
        // The revision and the log in one read: a commit of another server in between cannot
        // compact entries away unseen.
        let mut kv = self.client.kv_client();
        let (rev_key, start, end) = (self.rev_key(), self.log_key(revision + 1, 0), format!("{}/l0", self.ns));
        let log = format!("{}/l/", self.ns);
        let retention = self.retention;
        self.run(async move {
            let (current, kvs) = read_range(&mut kv, &rev_key, start.as_bytes(), end.as_bytes()).await?;
            let oldest = oldest_retained(current, retention);
            if revision + 1 < oldest {
                return Err(StoreError::Compacted { requested: revision, oldest });
            }
            let mut out = Vec::new();
            for e in &kvs {
                let key = e.key_str().map_err(backend)?;
                let rev = key.strip_prefix(log.as_str()).unwrap_or(key).split('/').next().unwrap_or_default();
                out.push(decode_event(rev.parse().map_err(backend)?, e.value())?);
            }
            Ok(out)
        })
    }

    fn revision_once(&self) -> StoreResult<Revision> {
        Ok(self.read(Vec::new())?.0)
    }
}

/// Keys read per page of a range (halved while an answer is over gRPC's 4 MiB).
const PAGE: i64 = 512;

/// The end of the range of keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The store revision and every key in `[start, end)`, as of one etcd revision: the first page
/// in one transaction with the revision key, the others at that transaction's etcd revision. A
/// page over gRPC's answer limit (4 MiB) is asked again at half the size; a read whose
/// revision was compacted meanwhile starts again.
async fn read_range(
    kv: &mut etcd_client::KvClient,
    rev_key: &str,
    start: &[u8],
    end: &[u8],
) -> StoreResult<(Revision, Vec<etcd_client::KeyValue>)> {
    let mut limit = PAGE;
    let mut attempts = 0;
    'read: loop {
        attempts += 1;
        let range = |from: Vec<u8>, limit: i64| (from, GetOptions::new().with_range(end.to_vec()).with_limit(limit));
        let (from, options) = range(start.to_vec(), limit);
        let first = kv.txn(Txn::new().and_then(vec![TxnOp::get(rev_key, None), TxnOp::get(from, Some(options))])).await;
        let (revision, at, mut kvs, mut more) = match first {
            Ok(resp) => {
                let mut gets = gets(&resp);
                let (revision, _) = store_revision(gets.first())?;
                let page = gets.get_mut(1).ok_or_else(|| backend("no range in the answer"))?;
                (revision, resp.header().map_or(0, etcd_client::ResponseHeader::revision), page.take_kvs(), page.more())
            }
            Err(e) if too_large(&e) && limit > 1 => {
                limit /= 2;
                continue;
            }
            Err(e) => return Err(backend(e)),
        };
        while more {
            let mut next = kvs.last().map(|k| k.key().to_vec()).ok_or_else(|| backend("an empty page"))?;
            next.push(0);
            let (from, options) = range(next, limit);
            match kv.get(from, Some(options.with_revision(at))).await {
                Ok(mut page) => {
                    more = page.more();
                    kvs.extend(page.take_kvs());
                }
                Err(e) if too_large(&e) && limit > 1 => limit /= 2,
                Err(e) if e.to_string().contains("compacted") && attempts < 5 => continue 'read,
                Err(e) => return Err(backend(e)),
            }
        }
        return Ok((revision, kvs));
    }
}

/// Whether an answer was refused for being over gRPC's message limit.
fn too_large(e: &etcd_client::Error) -> bool {
    e.to_string().contains("message length too large")
}

/// Whether a failure reached no member (nothing was sent: another member may answer).
fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend(m) if unreached(m))
}

/// Whether a failure's message says no member took the call (or the connection broke).
fn unreached(m: &str) -> bool {
    let m = m.to_ascii_lowercase();
    m.contains("unavailable") || m.contains("connect") || m.contains("transport")
}

/// How long a call keeps trying members that do not answer.
const FAILOVER: Duration = Duration::from_secs(15);

/// Whether a commit that failed so may be sent again: no member was reached, the connection
/// to it broke (a member killed under it), the member dropped it as etcd's leader changed, or
/// its proposal timed out (applied or not: the guards below decide). Sent twice, a commit that was applied after all is
/// refused by its own guards (the revision key moved: it reads again, and any compare-and-set
/// of the caller's is then a conflict); unconditional puts are written with the same values.
fn resendable(m: &str) -> bool {
    unreached(m) || m.contains("leader changed") || m.contains("request timed out")
}

/// Between attempts: the first few go at once (the client's next pick is most likely a live
/// member: a dead one fails in a millisecond), then 50 ms apart.
fn pause(attempt: &mut u32) {
    *attempt += 1;
    if *attempt > 8 {
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl EtcdStore {
    /// Runs a call again while no member answers (a member down: the client moves to another).
    fn retrying<T>(&self, f: impl Fn() -> StoreResult<T>) -> StoreResult<T> {
        let deadline = std::time::Instant::now() + FAILOVER;
        let mut attempt = 0u32;
        loop {
            match f() {
                Err(e) if transient(&e) && std::time::Instant::now() < deadline => pause(&mut attempt),
                other => return other,
            }
        }
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> StoreResult<Option<Entry>> {
        self.retrying(|| self.get_once(key))
    }

    fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)> {
        self.retrying(|| self.list_once(prefix))
    }

    fn commit(&self, ops: &[Op]) -> StoreResult<Revision> {
        // Tried again only when no member was reached: a commit that may have been applied with
        // its answer lost is not sent twice.
        let deadline = std::time::Instant::now() + FAILOVER;
        let mut attempt = 0u32;
        loop {
            match self.commit_once(ops) {
                Err(StoreError::Backend(m)) if resendable(&m) && std::time::Instant::now() < deadline => {
                    pause(&mut attempt);
                }
                other => return other,
            }
        }
    }

    fn changes_since(&self, revision: Revision) -> StoreResult<Vec<Event>> {
        self.retrying(|| self.changes_since_once(revision))
    }

    fn revision(&self) -> StoreResult<Revision> {
        self.retrying(|| self.revision_once())
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}
