//! The in-memory backend: the same semantics as the durable one, for tests and throwaway servers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::{
    DEFAULT_LOG_RETENTION, Entry, Event, Op, Revision, Store, StoreError, StoreResult, check_preconditions,
    oldest_retained,
};

#[derive(Debug, Default)]
struct Inner {
    data: BTreeMap<String, (Revision, Vec<u8>)>,
    log: VecDeque<Event>,
    revision: Revision,
}

/// A store held in memory.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    retention: u64,
    notify: watch::Sender<Revision>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_retention(DEFAULT_LOG_RETENTION)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping `retention` change-log entries.
    pub fn with_retention(retention: u64) -> Self {
        MemoryStore { inner: Mutex::default(), retention: retention.max(1), notify: watch::channel(0).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied transaction: every
        // mutation below happens after all checks, without calls that can panic.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn get(&self, key: &str) -> StoreResult<Option<Entry>> {
        let inner = self.lock();
        Ok(inner.data.get(key).map(|(rev, v)| Entry { key: key.to_string(), value: v.clone(), revision: *rev }))
    }

    fn list(&self, prefix: &str) -> StoreResult<(Vec<Entry>, Revision)> {
        let inner = self.lock();
        let items = inner
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (rev, v))| Entry { key: k.clone(), value: v.clone(), revision: *rev })
            .collect();
        Ok((items, inner.revision))
    }

    fn commit(&self, ops: &[Op]) -> StoreResult<Revision> {
        let mut inner = self.lock();
        check_preconditions(ops, |k| Ok(inner.data.get(k).map(|(r, _)| *r)))?;
        if ops.is_empty() {
            return Ok(inner.revision);
        }
        let rev = inner.revision + 1;
        inner.revision = rev;
        for op in ops {
            let (key, value) = match op {
                Op::Put { key, value, .. } => {
                    inner.data.insert(key.clone(), (rev, value.clone()));
                    (key.clone(), Some(value.clone()))
                }
                Op::Delete { key, .. } => {
                    if inner.data.remove(key).is_none() {
                        continue;
                    }
                    (key.clone(), None)
                }
            };
            inner.log.push_back(Event { revision: rev, key, value });
        }
        let oldest = oldest_retained(rev, self.retention);
        while inner.log.front().is_some_and(|e| e.revision < oldest) {
            inner.log.pop_front();
        }
        drop(inner);
        self.notify.send_replace(rev);
        Ok(rev)
    }

    fn changes_since(&self, revision: Revision) -> StoreResult<Vec<Event>> {
        let inner = self.lock();
        let oldest = oldest_retained(inner.revision, self.retention);
        if revision + 1 < oldest {
            return Err(StoreError::Compacted { requested: revision, oldest });
        }
        Ok(inner.log.iter().filter(|e| e.revision > revision).cloned().collect())
    }

    fn revision(&self) -> StoreResult<Revision> {
        Ok(self.lock().revision)
    }

    fn subscribe(&self) -> watch::Receiver<Revision> {
        self.notify.subscribe()
    }
}
