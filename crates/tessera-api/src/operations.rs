//! Long-running operations (arm-api.md §5). Every change is validated and committed before the
//! response leaves, so an operation is finished when it is created; what remains is the ARM
//! shape: an `Azure-AsyncOperation` status URL, a `Location` result URL, `Retry-After`, and
//! results of POST actions kept until fetched (bounded; the oldest are forgotten first).

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

/// The operation registry.
#[derive(Debug, Default)]
pub(crate) struct Operations {
    inner: Mutex<(HashMap<String, Operation>, VecDeque<String>)>,
}

impl Operations {
    /// Records a finished operation; returns its id.
    pub(crate) fn finish(&self, op: Operation) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.0.insert(id.clone(), op);
        inner.1.push_back(id.clone());
        while inner.1.len() > KEEP {
            if let Some(old) = inner.1.pop_front() {
                inner.0.remove(&old);
            }
        }
        id
    }

    /// An operation by id (case-insensitive, as ARM ids are).
    pub(crate) fn get(&self, id: &str) -> Option<Operation> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.0.get(&id.to_ascii_lowercase()).cloned()
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
