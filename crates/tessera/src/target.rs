//! Where a diagnostic command gets its answer: a topology file evaluated locally, or the
//! running server (its ARM diagnostics, with names resolved against its state).

use std::path::Path;

use serde_json::{Value, json};
use tessera_engine::Engine;
use tessera_engine::diag::{effective, watcher};
use tessera_model::{ArmError, ResourceId};

use crate::remote::{self, Remote};

/// A file's engine, or the server and a copy of its state.
pub(crate) struct Target {
    /// The state (local, or rebuilt from the server's documents).
    pub(crate) engine: Engine,
    server: Option<(tokio::runtime::Runtime, Remote)>,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ArmError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ArmError::with_status(500, "RuntimeFailed", e.to_string()))
}

impl Target {
    /// A file when given, else the server.
    pub(crate) fn open(file: Option<&Path>, credentials: &Path) -> Result<Target, ArmError> {
        match file {
            Some(f) => Ok(Target { engine: crate::open_file(f)?, server: None }),
            None => {
                let rt = runtime()?;
                let remote = rt.block_on(Remote::connect(credentials))?;
                let engine = rt.block_on(remote.engine())?;
                Ok(Target { engine, server: Some((rt, remote)) })
            }
        }
    }

    fn post(&self, target: &str, action: &str, body: &Value) -> Option<Result<Value, ArmError>> {
        let (rt, remote) = self.server.as_ref()?;
        Some(rt.block_on(remote.action(target, action, body)))
    }

    fn watcher_post(&self, vm: &ResourceId, action: &str, body: &Value) -> Option<Result<Value, ArmError>> {
        let (rt, remote) = self.server.as_ref()?;
        Some(rt.block_on(async {
            let watcher = remote.watcher(&remote::region(&self.engine, vm)).await?;
            remote.action(&watcher, action, body).await
        }))
    }

    /// `effectiveRouteTable` of a NIC.
    pub(crate) fn routes(&self, nic: &ResourceId) -> Result<Value, ArmError> {
        match self.post(nic.as_str(), "effectiveRouteTable", &json!({})) {
            Some(r) => r,
            None => Ok(serde_json::to_value(effective::effective_route_table(&self.engine, nic)?).unwrap_or_default()),
        }
    }

    /// `effectiveNetworkSecurityGroups` of a NIC.
    pub(crate) fn rules(&self, nic: &ResourceId) -> Result<Value, ArmError> {
        match self.post(nic.as_str(), "effectiveNetworkSecurityGroups", &json!({})) {
            Some(r) => r,
            None => effective::effective_network_security_groups(&self.engine, nic),
        }
    }

    /// `nextHop`.
    pub(crate) fn next_hop(&self, p: &watcher::NextHopParameters) -> Result<Value, ArmError> {
        let body = serde_json::to_value(p).unwrap_or_default();
        match self.watcher_post(&p.target_resource_id, "nextHop", &body) {
            Some(r) => r,
            None => watcher::next_hop(&self.engine, p),
        }
    }

    /// `ipFlowVerify`.
    pub(crate) fn ip_flow_verify(&self, p: &watcher::IpFlowParameters) -> Result<Value, ArmError> {
        let body = serde_json::to_value(p).unwrap_or_default();
        match self.watcher_post(&p.target_resource_id, "ipFlowVerify", &body) {
            Some(r) => r,
            None => watcher::ip_flow_verify(&self.engine, p),
        }
    }

    /// `connectivityCheck`.
    pub(crate) fn connectivity_check(&self, p: &watcher::ConnectivityParameters) -> Result<Value, ArmError> {
        let body = serde_json::to_value(p).unwrap_or_default();
        match self.watcher_post(&p.source.resource_id, "connectivityCheck", &body) {
            Some(r) => r,
            None => watcher::connectivity_check(&self.engine, p),
        }
    }
}
