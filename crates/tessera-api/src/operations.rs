//! Long-running operations (arm-api.md §5). Every change is validated and committed before the
//! response leaves, so an operation is finished when it is created; what remains is the ARM
//! shape: an `Azure-AsyncOperation` status URL, a `Location` result URL, `Retry-After`, and
//! results of POST actions kept until fetched (bounded; the oldest are forgotten first).
//!
//! Servers on a shared store answer each other's status URLs too: the id of an operation that
//! succeeded with nothing to return is sealed (its last 12 hex digits an HMAC of the rest under a
//! key from the store), so any of them knows it succeeded without having kept it; an id no
//! server sealed is still not found. An operation belongs to the subscription in its URLs: asked
//! for under another subscription it is not found (the seal covers the subscription too).
//! Operations with something to tell (a POST action's result, an error) are also written to a
//! shared store (`op/{id}`, with an expiry the leader enforces: `op-expiry/{secs}/{id}`), so a
//! client polling another server of the store gets them too.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Value, json};
use tessera_model::ArmError;
use tessera_store::{Op, Store};

/// How many finished operations are remembered.
const KEEP: usize = 10_000;
/// The prefix of operations kept in a shared store.
const STORED: &str = "op/";
/// The prefix of their expiry index (`op-expiry/{seconds, 20 digits}/{id}`).
const EXPIRY: &str = "op-expiry/";
/// How long an operation is kept in a shared store (seconds).
pub(crate) const STORED_FOR_SECS: u64 = 3_600;
/// The largest operation written to a shared store (etcd takes requests up to 1.5 MiB, and the
/// store writes each value twice: the key and its change log entry); a larger result is
/// answered by the server that made it only.
const STORED_MAX: usize = 512 << 10;

/// A finished operation.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// `None` when it succeeded.
    pub(crate) error: Option<ArmError>,
    /// The result body of a POST action (served by the result URL).
    pub(crate) result: Option<Bytes>,
}

/// An operation and the subscription (lower case) it belongs to.
type Owned = (String, Operation);

/// The operation registry.
#[derive(Default)]
pub(crate) struct Operations {
    /// By id: the subscription (lower case) and the operation; ids oldest first.
    inner: Mutex<(HashMap<String, Owned>, VecDeque<String>)>,
    seal: Option<ring::hmac::Key>,
    /// The store other servers share, where operations with something to tell are kept.
    shared: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for Operations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operations").field("sealed", &self.seal.is_some()).finish_non_exhaustive()
    }
}

/// The characters of an id before its seal (`xxxxxxxx-xxxx-4xxx-yxxx-`).
const SEALED_PREFIX: usize = 24;

impl Operations {
    /// A registry whose ids of operations that succeeded with nothing to return are sealed with
    /// `secret` (the same on every server of a store).
    pub(crate) fn sealed(secret: &[u8]) -> Self {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[b"tessera-operation-id:", secret].concat());
        Operations { seal: Some(key), ..Operations::default() }
    }

    /// Keeps operations with a result or an error in `store` too (shared with other servers).
    pub(crate) fn shared(self, store: Option<Arc<dyn Store>>) -> Self {
        Operations { shared: store, ..self }
    }

    /// The seal of an id's first characters under a subscription (12 hex digits).
    fn seal_of(&self, sub: &str, prefix: &str) -> Option<String> {
        let signed = format!("{}/{prefix}", sub.to_ascii_lowercase());
        let tag = ring::hmac::sign(self.seal.as_ref()?, signed.as_bytes());
        Some(tag.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Records a finished operation of subscription `sub` at `now` (seconds since the epoch);
    /// returns its id.
    pub(crate) fn finish(&self, sub: &str, op: Operation, now: u64) -> String {
        let mut id = uuid::Uuid::new_v4().to_string();
        if op.error.is_none()
            && op.result.is_none()
            && let Some(seal) = self.seal_of(sub, &id[..SEALED_PREFIX])
        {
            id = format!("{}{seal}", &id[..SEALED_PREFIX]);
        }
        if let Some(store) = &self.shared
            && (op.error.is_some() || op.result.is_some())
        {
            store_operation(&**store, &id, sub, &op, now);
        }
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.0.insert(id.clone(), (sub.to_ascii_lowercase(), op));
        inner.1.push_back(id.clone());
        while inner.1.len() > KEEP {
            if let Some(old) = inner.1.pop_front() {
                inner.0.remove(&old);
            }
        }
        id
    }

    /// An operation of subscription `sub` by id (case-insensitive, as ARM ids are), at `now`.
    pub(crate) fn get(&self, sub: &str, id: &str, now: u64) -> Option<Operation> {
        let id = id.to_ascii_lowercase();
        {
            let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((of, op)) = inner.0.get(&id) {
                return of.eq_ignore_ascii_case(sub).then(|| op.clone());
            }
        }
        // Only an id shaped like those made here costs a store read (a flood of made-up ids
        // does not reach etcd).
        let ours = id.len() == 36 && uuid::Uuid::parse_str(&id).is_ok();
        if let Some(op) = self.shared.as_ref().filter(|_| ours).and_then(|s| stored_operation(&**s, &id, sub, now)) {
            return Some(op);
        }
        // Another server's (or one forgotten here): found when its seal holds.
        let sealed = id.len() == 36
            && id.is_char_boundary(SEALED_PREFIX)
            && self.seal_of(sub, &id[..SEALED_PREFIX]).is_some_and(|seal| seal == id[SEALED_PREFIX..]);
        sealed.then_some(Operation { error: None, result: None })
    }
}

/// Writes an operation with something to tell to the shared store (with its expiry). A failure
/// or an operation too large is logged: the server that made it still answers it.
fn store_operation(store: &dyn Store, id: &str, sub: &str, op: &Operation, now: u64) {
    let result = op.result.as_ref().and_then(|b| serde_json::from_slice::<Value>(b).ok());
    let expires = now.saturating_add(STORED_FOR_SECS);
    let record = json!({"subscription": sub.to_ascii_lowercase(), "expires": expires, "result": result,
                        "error": op.error, "status": op.error.as_ref().map(|e| e.status)})
    .to_string();
    if record.len() > STORED_MAX {
        tracing::warn!(operation = id, bytes = record.len(), "an operation's result is too large to share");
        return;
    }
    let ops = [Op::put(format!("{STORED}{id}"), record.into_bytes()), Op::put(expiry_key(expires, id), Vec::new())];
    if let Err(e) = tokio::task::block_in_place(|| store.commit(&ops)) {
        tracing::warn!(operation = id, error = %e, "cannot share an operation with the other servers");
    }
}

fn expiry_key(expires: u64, id: &str) -> String {
    format!("{EXPIRY}{expires:020}/{id}")
}

/// An operation another server wrote to the shared store, if it is `sub`'s and not expired.
fn stored_operation(store: &dyn Store, id: &str, sub: &str, now: u64) -> Option<Operation> {
    let entry = tokio::task::block_in_place(|| store.get(&format!("{STORED}{id}"))).ok()??;
    let record: Value = serde_json::from_slice(&entry.value).ok()?;
    let of = record.get("subscription").and_then(Value::as_str)?;
    let expires = record.get("expires").and_then(Value::as_u64)?;
    if !of.eq_ignore_ascii_case(sub) || expires <= now {
        return None;
    }
    let error = record.get("error").filter(|e| !e.is_null()).and_then(|e| {
        let mut e: ArmError = serde_json::from_value(e.clone()).ok()?;
        e.status = record.get("status").and_then(Value::as_u64).and_then(|s| u16::try_from(s).ok()).unwrap_or(500);
        Some(e)
    });
    let result = record.get("result").filter(|r| !r.is_null()).map(|r| Bytes::from(r.to_string()));
    Some(Operation { error, result })
}

/// Deletes the stored operations that expired by `now` (the leader's work); how many.
#[cfg(any(feature = "etcd", test))]
pub(crate) fn expire_stored(store: &dyn Store, now: u64) -> tessera_store::StoreResult<usize> {
    let (index, _) = store.list(EXPIRY)?;
    let cut = format!("{EXPIRY}{now:020}/");
    let expired: Vec<&str> = index.iter().map(|e| e.key.as_str()).filter(|k| *k < cut.as_str()).collect();
    // A shared store takes a bounded transaction: a few dozen operations at a time.
    for keys in expired.chunks(24) {
        let mut ops = Vec::with_capacity(keys.len() * 2);
        for key in keys {
            let id = key.rsplit('/').next().unwrap_or_default();
            ops.push(Op::delete(format!("{STORED}{id}")));
            ops.push(Op::delete((*key).to_string()));
        }
        store.commit(&ops)?;
    }
    Ok(expired.len())
}

/// The two URLs of an operation.
#[derive(Debug, Clone)]
pub(crate) struct OperationUrls {
    /// `Azure-AsyncOperation`: the status document.
    pub(crate) status: String,
    /// `Location`: the result.
    pub(crate) result: String,
}

impl OperationUrls {
    /// The URLs under `base` for an operation of namespace `ns` in `location`.
    pub(crate) fn new(base: &str, sub: &str, ns: &str, location: &str, id: &str, api_version: &str) -> Self {
        let loc = if location.is_empty() { "global" } else { location };
        let prefix = format!("{base}/subscriptions/{sub}/providers/{ns}/locations/{loc}");
        OperationUrls {
            status: format!("{prefix}/operations/{id}?api-version={api_version}"),
            result: format!("{prefix}/operationResults/{id}?api-version={api_version}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_is_found_only_under_its_subscription() {
        let (a, b) = ("00000000-0000-4000-8000-00000000000A", "00000000-0000-4000-8000-00000000000b");
        let here = Operations::sealed(b"key");
        let result = Operation { error: None, result: Some(Bytes::from_static(b"{}")) };
        let id = here.finish(a, result, 0);
        assert!(here.get(&a.to_ascii_lowercase(), &id.to_ascii_uppercase(), 0).is_some(), "case-insensitive");
        assert!(here.get(b, &id, 0).is_none(), "another subscription's operation is not found");
        // A sealed id (succeeded, nothing to return) is known on another server of the store,
        // under its own subscription only; a server with another key knows none of them.
        let sealed = here.finish(a, Operation { error: None, result: None }, 0);
        let there = Operations::sealed(b"key");
        assert!(there.get(a, &sealed, 0).is_some_and(|op| op.error.is_none()));
        assert!(there.get(b, &sealed, 0).is_none(), "the seal covers the subscription");
        assert!(Operations::sealed(b"other").get(a, &sealed, 0).is_none(), "and the key");
        let forged = format!("{}000000000000", &sealed[..SEALED_PREFIX]);
        assert!(there.get(a, &forged, 0).is_none(), "an id no server sealed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_and_errors_are_shared_through_the_store_until_they_expire() {
        let store: Arc<dyn Store> = Arc::new(tessera_store::MemoryStore::new());
        let sub = "00000000-0000-4000-8000-00000000000a";
        let (here, there) = (
            Operations::sealed(b"key").shared(Some(store.clone())),
            Operations::sealed(b"key").shared(Some(store.clone())),
        );
        let routes = here.finish(sub, Operation { error: None, result: Some(Bytes::from(r#"{"value":[1]}"#)) }, 100);
        let failed = here.finish(
            sub,
            Operation { error: Some(ArmError::with_status(409, "Conflict", "no")), result: None },
            100,
        );
        let got = there.get(sub, &routes, 200).expect("another server answers the result");
        assert_eq!(got.result.as_deref(), Some(&br#"{"value":[1]}"#[..]));
        let err = there.get(sub, &failed, 200).and_then(|op| op.error).expect("and the error");
        assert_eq!((err.status, err.code.as_str()), (409, "Conflict"));
        assert!(
            there.get("00000000-0000-4000-8000-00000000000b", &routes, 200).is_none(),
            "only under its subscription"
        );
        let end = 100 + STORED_FOR_SECS;
        assert!(there.get(sub, &routes, end).is_none(), "expired");
        assert_eq!(expire_stored(&*store, end - 1).expect("expires"), 0, "nothing expired before its time");
        assert_eq!(expire_stored(&*store, end + 1).expect("expires"), 2);
        assert!(store.list("op").expect("lists").0.is_empty(), "both keys of each deleted");
        // A result too large for one etcd request stays with the server that made it.
        let huge = Bytes::from(format!("{{\"value\":\"{}\"}}", "x".repeat(STORED_MAX)));
        let kept = here.finish(sub, Operation { error: None, result: Some(huge) }, 100);
        assert!(here.get(sub, &kept, 200).is_some() && there.get(sub, &kept, 200).is_none());
        assert!(store.list("op").expect("lists").0.is_empty(), "nothing half-written");
    }
}
