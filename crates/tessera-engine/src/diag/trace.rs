//! The logical walk of one flow through the compiled programs, step after step of
//! [`crate::forward`] (NSGs out, route, peering crossings, appliances, gateways, load balancer
//! frontends, NSGs in), with the hops recorded. Connectivity checks and the reachability matrix
//! read it.

use std::sync::Arc;

use crate::Engine;
use crate::compile::NicProgram;
use crate::forward::Walk;

pub use crate::forward::{Flow, Hop, HopType, Issue, IssueType, Origin};

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Hops in order; the last one carries the blocking issue when unreachable.
    pub hops: Vec<Hop>,
    /// Whether the flow arrives.
    pub reachable: bool,
}

impl Trace {
    /// A one-line explanation of why the flow stops (None when reachable).
    pub fn reason(&self) -> Option<String> {
        if self.reachable {
            return None;
        }
        let issue = self.hops.iter().rev().find_map(|h| h.issues.first())?;
        let short = |v: &str| {
            if v.starts_with("/subscriptions/") { v.rsplit('/').next().unwrap_or(v).to_string() } else { v.to_string() }
        };
        let parts: Vec<String> = issue.context.iter().map(|(k, v)| format!("{k}={}", short(v))).collect();
        Some(format!("{:?}: {}", issue.kind, parts.join(", ")))
    }
}

/// Traces a flow leaving `from` (a NIC program).
pub fn trace(engine: &Engine, from: &Arc<NicProgram>, flow: Flow) -> Trace {
    let mut w = Walk::new(engine, from, flow, true);
    let reachable = w.run(from.clone()).is_ok();
    Trace { hops: w.hops, reachable }
}
