//! Leader election among the servers of one etcd store, and the compaction of etcd's history
//! (issue 18): the work that must happen once runs on the leader only.
//!
//! A candidate takes `NS/m/leader` with a transaction that puts it only while the key has never
//! been created (`create_revision == 0`), attached to a lease of its own. It keeps the lease
//! alive and holds the leadership while etcd renews it; it gives the leadership up itself
//! (before etcd's lease can expire) when renewals stop succeeding for half the lease, and
//! revokes the lease so that another takes over at once. The others watch the key and run for
//! it again when it is deleted (revoked, or expired with a dead leader's lease).
//! A term is the etcd revision that created the key: a new leader always has a higher one.

use std::time::{Duration, Instant};

use etcd_client::{Client, CompactionOptions, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::watch;

use crate::StoreResult;
use crate::etcd_store::{EtcdStore, backend};

/// Who leads, as one candidate sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The leader's name, when one is known.
    pub holder: Option<String>,
    /// Whether this candidate leads (it may act on it only while this holds).
    pub mine: bool,
    /// The leader's term: the etcd revision that made it leader (0 when none is known).
    pub term: i64,
}

impl EtcdStore {
    /// Runs for leader as `candidate` with a lease of `ttl` (at least 2 s) until every receiver
    /// is dropped; the receiver follows who leads.
    pub fn campaign(&self, candidate: &str, ttl: Duration) -> watch::Receiver<Leadership> {
        let (tx, rx) = watch::channel(Leadership::default());
        if let Some(runtime) = self.runtime.as_ref() {
            let key = format!("{}/m/leader", self.ns);
            let lease = self.lease.clone();
            runtime.spawn(run_for_leader(self.client.clone(), key, candidate.to_string(), ttl, tx, lease));
        }
        rx
    }

    /// Gives up the leadership, if held, at once (its lease revoked: another candidate takes
    /// over without waiting for it to expire), and stops running for it.
    pub fn resign(&self) -> StoreResult<()> {
        let held = self.lease.lock().unwrap_or_else(std::sync::PoisonError::into_inner).replace(0);
        let (Some(lease), mut client) = (held.filter(|&l| l != 0), self.client.clone()) else { return Ok(()) };
        self.run(async move {
            client.lease_revoke(lease).await.map_err(backend)?;
            Ok(())
        })
    }

    /// Compacts etcd's history of key versions older than `keep` etcd revisions before the
    /// newest (the store's own change log is kept apart and is unaffected). The revision
    /// compacted to, or `None` when there was nothing to compact.
    pub fn compact_history(&self, keep: i64) -> StoreResult<Option<i64>> {
        let mut client = self.client.clone();
        let key = format!("{}/m/rev", self.ns);
        self.run(async move {
            let newest = client.get(key, None).await.map_err(backend)?.header().map_or(0, |h| h.revision());
            let to = newest - keep.max(1);
            if to <= 0 {
                return Ok(None);
            }
            match client.compact(to, Some(CompactionOptions::new())).await {
                Ok(_) => Ok(Some(to)),
                // Another compaction got there first: nothing left to do.
                Err(e) if e.to_string().contains("compacted") => Ok(None),
                Err(e) => Err(backend(e)),
            }
        })
    }
}

/// Seconds of a lease of `ttl`.
fn lease_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs().max(2)).unwrap_or(i64::MAX)
}

/// The lease a candidate holds office with, shared with [`EtcdStore::resign`]; `Some(0)` once
/// it resigned (it runs no more).
pub(crate) type HeldLease = std::sync::Arc<std::sync::Mutex<Option<i64>>>;

async fn run_for_leader(
    mut client: Client,
    key: String,
    me: String,
    ttl: Duration,
    tx: watch::Sender<Leadership>,
    held: HeldLease,
) {
    let pause = Duration::from_millis(500);
    let resigned = || held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some_and(|l| l == 0);
    while !tx.is_closed() && !resigned() {
        let lease = match client.lease_grant(lease_secs(ttl), None).await {
            Ok(l) => l.id(),
            Err(_) => {
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), me.clone(), Some(PutOptions::new().with_lease(lease)))])
            .or_else([TxnOp::get(key.clone(), None)]);
        match client.txn(txn).await {
            Ok(r) if r.succeeded() => {
                let term = r.header().map_or(0, |h| h.revision());
                let taken = {
                    let mut h = held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let resigned = *h == Some(0);
                    if !resigned {
                        *h = Some(lease);
                    }
                    !resigned
                };
                if !taken {
                    let _ = client.lease_revoke(lease).await;
                    break;
                }
                tx.send_replace(Leadership { holder: Some(me.clone()), mine: true, term });
                hold(&mut client, lease, ttl, &tx).await;
                tx.send_replace(Leadership { holder: None, mine: false, term });
                let _ = client.lease_revoke(lease).await;
                held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take_if(|l| *l == lease);
            }
            Ok(r) => {
                let _ = client.lease_revoke(lease).await;
                let at = r.header().map_or(0, |h| h.revision());
                let holder = crate::etcd_store::gets(&r)
                    .first()
                    .and_then(|g| g.kvs().first())
                    .map(|kv| (String::from_utf8_lossy(kv.value()).into_owned(), kv.create_revision()));
                if let Some((name, term)) = holder {
                    tx.send_replace(Leadership { holder: Some(name), mine: false, term });
                    wait_for_vacancy(&mut client, &key, at + 1, ttl, &tx).await;
                }
            }
            Err(_) => {
                let _ = client.lease_revoke(lease).await;
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Keeps the lease alive while etcd renews it and someone listens; returns when leadership
/// must be given up: renewals failed for half the lease (before etcd lets it expire), or the
/// lease is gone.
async fn hold(client: &mut Client, lease: i64, ttl: Duration, tx: &watch::Sender<Leadership>) {
    let ttl = Duration::from_secs(u64::try_from(lease_secs(ttl)).unwrap_or(2));
    let Ok((mut keeper, mut answers)) = client.lease_keep_alive(lease).await else { return };
    let mut renewed = Instant::now();
    while !tx.is_closed() && renewed.elapsed() < ttl / 2 {
        tokio::select! {
            () = tokio::time::sleep(ttl / 6) => {}
            () = tx.closed() => return,
        }
        let sent = Instant::now();
        if keeper.keep_alive().await.is_err() {
            continue;
        }
        match tokio::time::timeout(ttl / 6, answers.message()).await {
            Ok(Ok(Some(a))) if a.ttl() > 0 => renewed = sent,
            Ok(Ok(Some(_))) => return,
            // No answer in time: the renewal deadline decides.
            Ok(Ok(None) | Err(_)) | Err(_) => {}
        }
    }
}

/// Waits until the leader's key is deleted (watching from etcd revision `from`), or a while if
/// the watch fails, or until nobody listens.
async fn wait_for_vacancy(client: &mut Client, key: &str, from: i64, ttl: Duration, tx: &watch::Sender<Leadership>) {
    let Ok(mut events) = client.watch(key, Some(WatchOptions::new().with_start_revision(from))).await else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        return;
    };
    while !tx.is_closed() {
        match tokio::time::timeout(ttl, events.message()).await {
            Ok(Ok(Some(m))) => {
                if m.events().iter().any(|e| e.event_type() == EventType::Delete) || m.canceled() {
                    return;
                }
            }
            Ok(Ok(None) | Err(_)) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
            // Quiet: look again whether anyone still listens.
            Err(_) => {}
        }
    }
}
