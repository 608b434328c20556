//! Tessera's engine: validation of every change against the whole state, the peering
//! lifecycle, compilation into per-NIC programs, and the diagnostics that read those programs.
//! No I/O, no clock, no randomness: GUIDs come from a sequence number the caller can persist.

pub mod compile;
pub mod diag;
pub mod forward;
pub mod lifecycle;
pub mod limits;
pub mod load;
pub mod metering;
pub mod ops;
pub mod placement;
pub mod pricing;
pub mod state;
pub mod synth;

use std::collections::BTreeSet;
use std::sync::Arc;

use tessera_model::{ArmResult, ResourceId};

pub use compile::{Compiled, NicProgram, SubnetProgram};
pub use limits::Limits;
pub use ops::Change;
pub use state::State;

/// The VNets whose links' derived fields (sync levels, remote spaces, remote gateways) a change
/// can alter, read before the change is applied. With `pair_only`, only the links between
/// those VNets (a peering operation); otherwise every link on them or pointing at them.
fn link_scope(st: &State, change: &Change) -> (BTreeSet<ResourceId>, bool) {
    use tessera_model::{Kind, Resource};
    let link_pair = |id: &ResourceId| -> BTreeSet<ResourceId> {
        let mut set: BTreeSet<ResourceId> = id.parent().into_iter().collect();
        set.extend(st.peering(id).and_then(state::remote_of).cloned());
        set
    };
    match change {
        Change::Put(Resource::VirtualNetwork(v)) => ([v.id.clone()].into(), false),
        Change::Put(Resource::ClassicVirtualNetwork(v)) => ([v.id.clone()].into(), false),
        Change::Put(Resource::Subnet(s)) => (s.id.as_ref().and_then(ResourceId::parent).into_iter().collect(), false),
        Change::Put(Resource::VirtualNetworkGateway(g)) => {
            let mut set: BTreeSet<ResourceId> = state::gateway_vnet(g).into_iter().collect();
            set.extend(st.gateways.get(&g.id).and_then(state::gateway_vnet));
            (set, false)
        }
        Change::Put(Resource::Peering(p)) => {
            let mut set: BTreeSet<ResourceId> = p.id.as_ref().and_then(ResourceId::parent).into_iter().collect();
            set.extend(state::remote_of(p).cloned());
            (set, true)
        }
        Change::SyncPeering(id) | Change::DeletePeeringPair(id) => (link_pair(id), true),
        Change::MoveVnet { .. } | Change::ReportGateway { .. } => (BTreeSet::new(), true),
        Change::Put(_) => (BTreeSet::new(), true),
        Change::Delete(id) => match id.kind() {
            Kind::VirtualNetwork | Kind::ClassicVirtualNetwork => ([id.clone()].into(), false),
            Kind::Subnet => (id.parent().into_iter().collect(), false),
            Kind::VirtualNetworkGateway => {
                (st.gateways.get(id).and_then(state::gateway_vnet).into_iter().collect(), false)
            }
            Kind::Peering => (link_pair(id), true),
            _ => (BTreeSet::new(), true),
        },
    }
}

/// The top-level documents a change names directly (before it is applied). A VM's write also
/// names the NICs it takes or lets go: their `virtualMachine` changes with it.
fn target_documents(st: &State, change: &Change) -> impl Iterator<Item = ResourceId> {
    use tessera_model::Resource;
    let nics_of = |id: &ResourceId| -> Vec<ResourceId> {
        st.vms
            .get(id)
            .map(|vm| vm.properties.network_profile.network_interfaces.iter().map(|n| n.id.clone()).collect())
            .unwrap_or_default()
    };
    let named: Vec<ResourceId> = match change {
        Change::Put(Resource::VirtualMachine(vm)) => {
            let mut ids = vec![vm.id.clone()];
            ids.extend(nics_of(&vm.id));
            ids.extend(vm.properties.network_profile.network_interfaces.iter().map(|n| n.id.clone()));
            ids
        }
        Change::Delete(id) if id.kind() == tessera_model::Kind::VirtualMachine => {
            let mut ids = vec![id.clone()];
            ids.extend(nics_of(id));
            ids
        }
        Change::Put(r) => r.id().cloned().into_iter().collect(),
        Change::Delete(id) | Change::SyncPeering(id) | Change::DeletePeeringPair(id) => vec![id.clone()],
        Change::ReportGateway { id, .. } => {
            let mut ids = vec![id.clone()];
            ids.extend(
                st.connections
                    .values()
                    .filter(|c| c.properties.virtual_network_gateway1.id == *id)
                    .map(|c| c.id.clone()),
            );
            ids
        }
        Change::MoveVnet { id, subscription, resource_group } => {
            vec![id.clone(), ResourceId::top(subscription, resource_group, id.kind(), id.name())]
        }
    };
    named.into_iter().map(|id| document_of(&id))
}

/// The top-level resource whose document holds `id` (itself when it is top-level).
pub fn document_of(id: &ResourceId) -> ResourceId {
    let mut doc = id.clone();
    while let Some(parent) = doc.parent() {
        doc = parent;
    }
    doc
}

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
    ///
    /// Returns the top-level documents (a VNet with its subnets and links, an NSG with its
    /// rules, …) the change may have altered, the change's own target included: what a store
    /// must write back. A document in the set that no longer exists was deleted.
    pub fn apply(&mut self, change: Change) -> ArmResult<BTreeSet<ResourceId>> {
        let docs = self.apply_deferred(change)?;
        self.flush();
        Ok(docs)
    }

    /// Applies a change, leaving recompilation to [`Engine::flush`] (for batches). Returns
    /// what [`Engine::apply`] returns.
    pub fn apply_deferred(&mut self, change: Change) -> ArmResult<BTreeSet<ResourceId>> {
        let (changed, pair_only) = link_scope(&self.state, &change);
        let mut docs: BTreeSet<ResourceId> = target_documents(&self.state, &change).collect();
        // A refused change consumes no sequence number, so GUIDs do not depend on refusals.
        let touched = ops::apply(&mut self.state, &self.limits, change, self.seq + 1)?;
        self.seq += 1;
        let links = lifecycle::refresh_links(&mut self.state, &changed, pair_only);
        docs.extend(touched.iter().cloned());
        docs.extend(links.iter().cloned());
        // A hub's VNet-to-VNet partners route its space and its transit spokes' (GW1–GW2).
        let mut changed_vnets = touched;
        changed_vnets.extend(links);
        let partners = ops::gateway::v2v_partners_of(&self.state, &changed_vnets);
        self.dirty.extend(changed_vnets);
        self.dirty.extend(partners);
        Ok(docs)
    }

    /// The sequence number GUIDs are derived from; persist it and hand it to
    /// [`load::restore`] so that GUIDs stay unique across restarts.
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// An engine on a state restored from stored documents ([`load::restore`]): the links'
    /// read-only fields derived again, everything compiled.
    fn restored(mut state: State, limits: Limits, seq: u64) -> Engine {
        let all: BTreeSet<ResourceId> = state.vnets.keys().cloned().collect();
        lifecycle::refresh_links(&mut state, &all, false);
        let mut engine = Engine { state, limits, seq, ..Engine::default() };
        engine.compile_all();
        engine
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
