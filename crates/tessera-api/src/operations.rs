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

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use tessera_model::ArmError;

/// How many finished operations are remembered.
const KEEP: usize = 10_000;

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

    /// The seal of an id's first characters under a subscription (12 hex digits).
    fn seal_of(&self, sub: &str, prefix: &str) -> Option<String> {
        let signed = format!("{}/{prefix}", sub.to_ascii_lowercase());
        let tag = ring::hmac::sign(self.seal.as_ref()?, signed.as_bytes());
        Some(tag.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Records a finished operation of subscription `sub`; returns its id.
    pub(crate) fn finish(&self, sub: &str, op: Operation) -> String {
        let mut id = uuid::Uuid::new_v4().to_string();
        if op.error.is_none()
            && op.result.is_none()
            && let Some(seal) = self.seal_of(sub, &id[..SEALED_PREFIX])
        {
            id = format!("{}{seal}", &id[..SEALED_PREFIX]);
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

    /// An operation of subscription `sub` by id (case-insensitive, as ARM ids are).
    pub(crate) fn get(&self, sub: &str, id: &str) -> Option<Operation> {
        let id = id.to_ascii_lowercase();
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((of, op)) = inner.0.get(&id) {
            return of.eq_ignore_ascii_case(sub).then(|| op.clone());
        }
        // Another server's (or one forgotten here): found when its seal holds.
        let sealed = id.len() == 36
            && id.is_char_boundary(SEALED_PREFIX)
            && self.seal_of(sub, &id[..SEALED_PREFIX]).is_some_and(|seal| seal == id[SEALED_PREFIX..]);
        sealed.then_some(Operation { error: None, result: None })
    }
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
        let id = here.finish(a, result);
        assert!(here.get(&a.to_ascii_lowercase(), &id.to_ascii_uppercase()).is_some(), "case-insensitive");
        assert!(here.get(b, &id).is_none(), "another subscription's operation is not found");
        // A sealed id (succeeded, nothing to return) is known on another server of the store,
        // under its own subscription only; a server with another key knows none of them.
        let sealed = here.finish(a, Operation { error: None, result: None });
        let there = Operations::sealed(b"key");
        assert!(there.get(a, &sealed).is_some_and(|op| op.error.is_none()));
        assert!(there.get(b, &sealed).is_none(), "the seal covers the subscription");
        assert!(Operations::sealed(b"other").get(a, &sealed).is_none(), "and the key");
        let forged = format!("{}000000000000", &sealed[..SEALED_PREFIX]);
        assert!(there.get(a, &forged).is_none(), "an id no server sealed");
    }
}
