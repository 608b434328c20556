//! Tessera's engine: validation of every change against the whole state, the peering
//! lifecycle, compilation into per-NIC programs, and the diagnostics that read those programs.
//! No I/O, no clock, no randomness: GUIDs come from a sequence number the caller can persist.

pub mod compile;
pub mod diag;
pub mod lifecycle;
pub mod limits;
pub mod load;
pub mod ops;
pub mod state;

use std::collections::BTreeSet;
use std::sync::Arc;

use tessera_model::{ArmResult, ResourceId};

pub use compile::{Compiled, NicProgram, SubnetProgram};
pub use limits::Limits;
pub use ops::Change;
pub use state::State;

/// The engine: desired state plus its compiled programs, kept in step.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    state: State,
    limits: Limits,
    compiled: Compiled,
    dirty: BTreeSet<ResourceId>,
    seq: u64,
}

impl Engine {
    /// An empty engine with the given limits.
    pub fn new(limits: Limits) -> Self {
        Engine { limits, ..Default::default() }
    }

    /// The desired state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies a change and recompiles what it touched. On error nothing changed.
    pub fn apply(&mut self, change: Change) -> ArmResult<()> {
        self.apply_deferred(change)?;
        self.flush();
        Ok(())
    }

    /// Applies a change, leaving recompilation to [`Engine::flush`] (for batches).
    pub fn apply_deferred(&mut self, change: Change) -> ArmResult<()> {
        self.seq += 1;
        let mut touched = ops::apply(&mut self.state, &self.limits, change, self.seq)?;
        // Links on the touched VNets and on their peers carry derived fields.
        let mut around = touched.clone();
        for v in &touched {
            if let Some(vnet) = self.state.vnets.get(v) {
                around.extend(ops::vnet::peers_of(vnet));
            }
        }
        lifecycle::refresh_links(&mut self.state, &around);
        touched.extend(around);
        self.dirty.extend(touched);
        Ok(())
    }

    /// Recompiles the VNets changed since the last flush.
    pub fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        self.compiled.recompile(&self.state, &dirty);
    }

    /// Recompiles everything from scratch.
    pub fn compile_all(&mut self) {
        self.dirty.clear();
        self.compiled = Compiled::full(&self.state);
    }

    /// The compiled programs (call [`Engine::flush`] after deferred changes).
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The program of a NIC.
    pub fn program(&self, nic: &ResourceId) -> Option<Arc<NicProgram>> {
        self.compiled.nics.get(nic).cloned()
    }
}
