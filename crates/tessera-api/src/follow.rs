//! Taking another server's writes into the state (servers on a shared store, issue 18): the
//! store's change log since the revision this server last saw, applied to what it holds — the
//! documents put back as stored ([`load::replace_documents`], as a restart would), groups, API
//! resources, hosts and usage — instead of reading the whole state again for every write of
//! another server. What only a full read takes (principals, roles, subscriptions, usage
//! expired) makes the caller read everything, as does a log compacted past the revision seen.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;
use tessera_engine::Limits;
use tessera_engine::load;
use tessera_engine::metering::{UsageKey, UsageRecord};
use tessera_model::ArmError;
use tessera_model::{Resource, ResourceId};
use tessera_store::{Event, Store};

use crate::commit::HEAD_KEY;
use crate::core::{
    Core, Group, HOST_PREFIX, SEQUENCE_KEY, USAGE_MINUTE_PREFIX, USAGE_RECORD_PREFIX, USAGE_RUNS_PREFIX, doc_from,
    parse_record, render, store_error,
};

/// Keys written by servers starting, not part of what a server holds in memory.
const IGNORED: &[&str] = &["meta/ca", "meta/signing-key", crate::commit::HEAD_KEY];
/// Prefixes of keys read where they are used, not held in memory (operations, `operations.rs`).
const IGNORED_PREFIXES: &[&str] = &["op/", "op-expiry/"];

/// One key's last value in the log, read and checked before anything changes.
enum Taken {
    Doc(ResourceId, Option<(String, Vec<Resource>)>),
    Group(String, Option<Value>),
    Aux(ResourceId, Option<(String, Value)>),
    Host(String, Option<String>),
    Runs(String, Value),
    Record(UsageRecord),
    Minute(UsageKey, u64, u64),
    Sequence(u64),
    Revision(u64),
}

/// What a key's last value says, or `None` when only a full read can take it.
fn take(key: &str, value: Option<&[u8]>) -> Option<Taken> {
    let record = |v: &[u8]| parse_record(v).ok();
    let number = |v: Option<&[u8]>| v.and_then(|v| serde_json::from_slice::<u64>(v).ok());
    // A document's id as it was written (the key is its lower-case form).
    let id_of = |raw: &Value, rest: &str| {
        raw.get("id")
            .and_then(Value::as_str)
            .and_then(|s| ResourceId::parse(s).ok())
            .or_else(|| ResourceId::parse(rest).ok())
    };
    if let Some(rest) = key.strip_prefix("doc/") {
        return Some(match value {
            Some(v) => {
                let (etag, raw) = record(v)?;
                let id = id_of(&raw, rest)?;
                Taken::Doc(id, Some((etag, tessera_model::resource::from_arm_json(raw).ok()?)))
            }
            None => Taken::Doc(ResourceId::parse(rest).ok()?, None),
        });
    }
    if let Some(rest) = key.strip_prefix("rg/") {
        return Some(Taken::Group(
            rest.to_string(),
            match value {
                Some(v) => Some(record(v)?.1),
                None => None,
            },
        ));
    }
    if let Some(rest) = key.strip_prefix("aux/") {
        return Some(match value {
            Some(v) => {
                let (etag, raw) = record(v)?;
                Taken::Aux(id_of(&raw, rest)?, Some((etag, raw)))
            }
            None => Taken::Aux(ResourceId::parse(rest).ok()?, None),
        });
    }
    if let Some(rest) = key.strip_prefix(HOST_PREFIX) {
        let underlay = match value {
            Some(v) => Some(record(v)?.1.get("underlay")?.as_str()?.to_string()),
            None => None,
        };
        return Some(Taken::Host(rest.to_string(), underlay));
    }
    // Usage is only added to here; what expires is deleted, which a full read takes.
    let body = || value.and_then(&record).map(|r| r.1);
    if let Some(rest) = key.strip_prefix(USAGE_RUNS_PREFIX) {
        return Some(Taken::Runs(rest.to_string(), body()?));
    }
    if key.starts_with(USAGE_RECORD_PREFIX) {
        return Some(Taken::Record(serde_json::from_value(body()?).ok()?));
    }
    if key.starts_with(USAGE_MINUTE_PREFIX) {
        let (k, bytes, packets): (UsageKey, u64, u64) = serde_json::from_value(body()?).ok()?;
        return Some(Taken::Minute(k, bytes, packets));
    }
    match key {
        SEQUENCE_KEY => Some(Taken::Sequence(number(value)?)),
        crate::feed::REVISION_KEY => Some(Taken::Revision(number(value)?)),
        _ => None,
    }
}

impl Core {
    /// Takes the store's `events` (another server's writes, in order) into the state. `false`
    /// when something in them needs a full read (nothing was changed then).
    pub(crate) fn take_changes(&mut self, events: &[Event]) -> bool {
        // Only each key's last value counts.
        let mut last: BTreeMap<&str, Option<&[u8]>> = BTreeMap::new();
        for e in events {
            last.insert(e.key.as_str(), e.value.as_deref());
        }
        let mut taken = Vec::new();
        for (key, value) in last {
            if IGNORED.contains(&key) || IGNORED_PREFIXES.iter().any(|p| key.starts_with(p)) {
                continue;
            }
            match take(key, value) {
                Some(t) => taken.push(t),
                None => {
                    tracing::debug!(key, "another server's write needs the whole state read again");
                    return false;
                }
            }
        }
        let mut documents = Vec::new();
        let (mut sequence, mut revision) = (self.engine.sequence(), None);
        for t in taken {
            match t {
                Taken::Doc(id, doc) => documents.push((id, doc)),
                Taken::Group(name, Some(body)) => drop(self.groups.insert(name, Group { body })),
                Taken::Group(name, None) => drop(self.groups.remove(&name)),
                Taken::Aux(id, Some((etag, raw))) => drop(self.aux.insert(id, doc_from(etag, raw))),
                Taken::Aux(id, None) => drop(self.aux.remove(&id)),
                Taken::Host(name, Some(addr)) => drop(self.hosts.insert(name, addr)),
                Taken::Host(name, None) => drop(self.hosts.remove(&name)),
                Taken::Runs(host, body) => match serde_json::from_value(body) {
                    Ok(runs) => drop(self.meterbook.runs.insert(host, runs)),
                    Err(_) => drop(self.meterbook.runs.remove(&host)),
                },
                Taken::Record(r) => drop(self.meterbook.records.insert(r.key.clone(), r)),
                Taken::Minute(k, bytes, packets) => drop(self.meterbook.minutes.insert(k, (bytes, packets))),
                Taken::Sequence(s) => sequence = s,
                Taken::Revision(r) => revision = Some(r),
            }
        }
        if !documents.is_empty() {
            let replaced = documents
                .iter()
                .map(|(id, doc)| (id.clone(), doc.as_ref().map(|(_, r)| r.clone()).unwrap_or_default()))
                .collect();
            load::replace_documents(&mut self.engine, replaced, sequence);
        }
        // What GET shows is rendered from the engine, with the etag the writer gave it.
        let mut fed: Vec<(ResourceId, Option<Bytes>)> = Vec::new();
        for (id, doc) in documents {
            match doc.and_then(|(etag, _)| render(&self.engine, &id).map(|raw| doc_from(etag, raw))) {
                Some(d) => {
                    fed.push((id.clone(), Some(d.bytes.clone())));
                    self.docs.insert(id, d);
                }
                None => {
                    self.docs.remove(&id);
                    fed.push((id, None));
                }
            }
        }
        if let Some(r) = revision {
            self.feed.record_at(r, fed);
        }
        true
    }
}

/// Reads back what other servers wrote since the head revision `seen` — and, after a commit of
/// this server not yet committed (`lost`, the keys they write), what the store holds at those
/// keys, which memory had run ahead on: one by one when it can, else the whole state.
/// The head revision the state now reflects.
pub(crate) fn read_back(
    store: &dyn Store,
    core: &mut Core,
    limits: &Limits,
    seen: u64,
    lost: &[String],
) -> Result<u64, ArmError> {
    // What is not durable is forgotten by the feed: its commit will be refused.
    core.feed.retract();
    // The head's revision first: whatever is written after it is seen (again) next time.
    let now = store.get(HEAD_KEY).map_err(store_error)?.map_or(0, |e| e.revision);
    // The keys memory ran ahead on, read before the change log: a later write of one is in
    // the log and comes after (the last value of each key is the one taken), so what is taken
    // is the store at one moment — else a feed revision read here could name writes the log
    // read did not reach.
    let mut events = Vec::with_capacity(lost.len());
    for key in lost {
        let value = store.get(key).map_err(store_error)?.map(|e| e.value);
        events.push(Event { revision: 0, key: key.clone(), value });
    }
    if let Ok(log) = store.changes_since(seen) {
        let last_head = log.iter().rev().find(|e| e.key == HEAD_KEY).map(|e| e.revision);
        events.extend(log);
        if core.take_changes(&events) {
            return Ok(last_head.unwrap_or(now).max(now));
        }
    }
    let mut fresh = Core::load(store, limits.clone())?;
    fresh.carry_feed(core);
    *core = fresh;
    Ok(now)
}
