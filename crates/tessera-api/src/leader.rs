//! Who leads the servers of one store, and what the leader does (issue 18).
//!
//! Servers on a shared store (etcd) elect one leader with an etcd lease
//! (`tessera_store::EtcdStore::campaign`). Link reconciliation and usage aggregation need no
//! leader: each happens inside the write that causes it, on the latest state, under the head
//! guard of `commit.rs`. What runs on the leader only is the background work: compacting
//! etcd's history of key versions (etcd keeps every version until told otherwise), at once on
//! taking office and then at an interval. A server on the embedded store is its own leader.
//!
//! `GET /tessera/cluster` (`Tessera/cluster/read` at `/`) says which server this is, who leads,
//! in which term, and what the leader's work has done here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tessera_model::ArmError;

use axum::http::{Method, StatusCode};
use axum::response::Response;

use crate::http::{App, Req, json};
use crate::identity::method_not_allowed;

/// How the servers of a shared store elect their leader and what it does.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// This server's name among the others (default: its host name and address).
    pub name: Option<String>,
    /// The leader's lease: a dead leader is replaced within about this long.
    pub lease: Duration,
    /// How often the leader compacts etcd's history.
    pub compact_every: Duration,
    /// How many etcd revisions of history are kept.
    pub keep_revisions: i64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            name: None,
            lease: Duration::from_secs(5),
            compact_every: Duration::from_secs(60),
            keep_revisions: 10_000,
        }
    }
}

/// What the leader's work did on this server.
#[derive(Debug, Default, Clone, Copy)]
struct Work {
    /// Compactions of etcd's history run.
    compactions: u64,
    /// The last one: the etcd revision compacted to, and the term it ran in.
    last: Option<(i64, i64)>,
}

/// This server's view of the servers sharing its store.
#[derive(Debug)]
pub(crate) struct Cluster {
    name: String,
    /// The store's kind as shown (`etcd`, `redb`, `memory`).
    store: &'static str,
    #[cfg(feature = "etcd")]
    leadership: Option<tokio::sync::watch::Receiver<tessera_store::Leadership>>,
    work: Mutex<Work>,
}

impl Cluster {
    /// A server alone on its store: its own leader.
    pub(crate) fn alone(name: String, store: &'static str) -> Arc<Cluster> {
        Arc::new(Cluster {
            name,
            store,
            #[cfg(feature = "etcd")]
            leadership: None,
            work: Mutex::new(Work::default()),
        })
    }

    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The status document.
    fn status(&self) -> Value {
        #[cfg(feature = "etcd")]
        let (leader, mine, term) = match &self.leadership {
            Some(l) => {
                let l = l.borrow();
                (l.holder.clone(), l.mine, l.term)
            }
            None => (Some(self.name.clone()), true, 0),
        };
        #[cfg(not(feature = "etcd"))]
        let (leader, mine, term) = (Some(self.name.clone()), true, 0);
        let work = *self.work();
        json!({
            "server": self.name,
            "store": self.store,
            "leader": leader,
            "isLeader": mine,
            "term": term,
            "compactions": work.compactions,
            "lastCompaction": work.last.map(|(revision, term)| json!({"etcdRevision": revision, "term": term})),
        })
    }
}

/// A server's default name: its host name and the address it listens on.
pub(crate) fn default_name(addr: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{host}/{addr}")
}

/// The leader's work running on this server, until [`Leading::stop`].
#[cfg(feature = "etcd")]
pub(crate) struct Leading {
    store: Arc<tessera_store::EtcdStore>,
    task: tokio::task::JoinHandle<()>,
}

#[cfg(feature = "etcd")]
impl Leading {
    /// Stops the work, then resigns (another server takes over at once, not when the lease
    /// expires).
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let store = self.store;
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.resign()).await {
            tracing::warn!(error = %e, "cannot resign the leadership; another server takes over when its lease expires");
        }
    }
}

/// Runs for leader on an etcd store and does the leader's work while in office.
#[cfg(feature = "etcd")]
pub(crate) fn campaign(
    store: Arc<tessera_store::EtcdStore>,
    name: String,
    settings: &ClusterSettings,
) -> (Arc<Cluster>, Leading) {
    let mut leadership = store.campaign(&name, settings.lease);
    let cluster = Arc::new(Cluster {
        name,
        store: "etcd",
        leadership: Some(leadership.clone()),
        work: Mutex::new(Work::default()),
    });
    let (every, keep, me, etcd) = (settings.compact_every, settings.keep_revisions, cluster.clone(), store.clone());
    let task = tokio::spawn(async move {
        let mut led = false;
        loop {
            let now = leadership.borrow_and_update().clone();
            if now.mine != led {
                led = now.mine;
                if led {
                    tracing::info!(server = %me.name, term = now.term, "this server leads");
                } else {
                    tracing::info!(server = %me.name, leader = ?now.holder, "this server follows");
                }
            }
            if now.mine {
                let s = etcd.clone();
                // A failure (a member down, the client's connection to it not yet dropped) is
                // tried again within a second, not at the next interval.
                let next = match tokio::task::spawn_blocking(move || {
                    // Operations kept for other servers' clients go when they expire.
                    if let Err(e) = crate::operations::expire_stored(&*s, crate::auth::now()) {
                        tracing::warn!(error = %e, "cannot delete expired operations");
                    }
                    s.compact_history(keep)
                })
                .await
                {
                    Ok(Ok(compacted)) => {
                        let mut w = me.work();
                        w.compactions += 1;
                        if let Some(revision) = compacted {
                            w.last = Some((revision, now.term));
                        }
                        every
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "cannot compact etcd's history");
                        every.min(Duration::from_secs(1))
                    }
                    Err(_) => return,
                };
                tokio::select! {
                    () = tokio::time::sleep(next) => {}
                    changed = leadership.changed() => if changed.is_err() { return },
                }
            } else if leadership.changed().await.is_err() {
                return;
            }
        }
    });
    (cluster, Leading { store, task })
}

/// `GET /tessera/cluster`: the leadership, and the feed revision this server has reached
/// (agents that hold it have every change acknowledged before it was read).
pub(crate) async fn handle(app: &App, req: &Req) -> Result<Response, ArmError> {
    if req.method != Method::GET {
        return Err(method_not_allowed(req));
    }
    req.authorize("Tessera/cluster/read", "/")?;
    let mut status = app.cluster.status();
    status["feedRevision"] = app.core.read().await.feed.durable_revision().into();
    Ok(json(StatusCode::OK, status.to_string()))
}
