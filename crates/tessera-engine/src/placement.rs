//! Where ports run: a VM's `tessera-host` tag names the host whose agent runs its NICs' ports
//! (else the NIC's own tag, else `local`); a gateway's tag places its instance. The server's feed and every agent read it the same way.

use std::collections::BTreeMap;

use tessera_model::{DEFAULT_HOST, HOST_TAG, ResourceId};

use crate::Engine;

/// The host a `tessera-host` tag names, else the default host.
pub fn tag_host(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(HOST_TAG))
        .map_or_else(|| DEFAULT_HOST.to_string(), |(_, v)| v.clone())
}

/// The host a NIC's port runs on.
pub fn host_of(engine: &Engine, nic: &ResourceId) -> String {
    let st = engine.state();
    let tag = |tags: &BTreeMap<String, String>| {
        tags.iter().find(|(k, _)| k.eq_ignore_ascii_case(HOST_TAG)).map(|(_, v)| v.clone())
    };
    if let Some(gw) = nic.parent().filter(|g| g.kind() == tessera_model::Kind::VirtualNetworkGateway)
        && let Some(gw) = st.gateways.get(&gw)
    {
        return tag_host(&gw.tags);
    }
    let holds = |vm: &&tessera_model::compute::VirtualMachine| {
        vm.properties.network_profile.network_interfaces.iter().any(|n| &n.id == nic)
    };
    // The NIC's back-reference names its VM (no scan of every VM per NIC); else the VM that
    // lists it.
    let vm = st
        .nics
        .get(nic)
        .and_then(|n| n.properties.virtual_machine.as_ref())
        .and_then(|v| st.vms.get(&v.id))
        .filter(holds)
        .or_else(|| st.vms.values().find(holds));
    vm.and_then(|vm| tag(&vm.tags))
        .or_else(|| st.nics.get(nic).and_then(|n| tag(&n.tags)))
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// The NICs whose ports run on `host` (compiled NICs, a gateway's instance included), ordered
/// by id.
pub fn ports_on<'a>(engine: &'a Engine, host: &str) -> Vec<&'a crate::compile::NicProgram> {
    let mut out: Vec<&crate::compile::NicProgram> = engine
        .compiled()
        .nics
        .values()
        .map(std::sync::Arc::as_ref)
        .filter(|p| host_of(engine, &p.nic).eq_ignore_ascii_case(host))
        .collect();
    out.sort_by(|a, b| a.nic.key().cmp(b.nic.key()));
    out
}
