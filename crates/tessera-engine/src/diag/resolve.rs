//! Resolving the names users type (`spoke1-vm`, `hub/default`) or full ids to resource ids.

use tessera_model::{ArmError, ArmResult, Kind, ResourceId};

use crate::Engine;

/// Finds a resource of `kind` by full id or by (case-insensitive, unique) name.
pub fn resolve(engine: &Engine, kind: Kind, text: &str) -> ArmResult<ResourceId> {
    if text.starts_with('/') {
        return ResourceId::parse(text).map_err(|e| ArmError::bad_request("InvalidResourceId", e.to_string()));
    }
    let st = engine.state();
    let ids: Vec<&ResourceId> = match kind {
        Kind::VirtualMachine => st.vms.keys().collect(),
        Kind::NetworkInterface => st.nics.keys().collect(),
        Kind::VirtualNetwork => st.vnets.keys().collect(),
        Kind::NetworkSecurityGroup => st.nsgs.keys().collect(),
        _ => Vec::new(),
    };
    let found: Vec<&ResourceId> = ids.into_iter().filter(|id| id.name().eq_ignore_ascii_case(text)).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ArmError::with_status(
            404,
            "ResourceNotFound",
            format!("No {} named '{text}' in this topology.", kind.arm_type()),
        )),
        _ => Err(ArmError::bad_request(
            "AmbiguousResourceName",
            format!("Several {} are named '{text}'; use the full resource id.", kind.arm_type()),
        )),
    }
}

/// A NIC by id or name; a VM name resolves to its primary NIC.
pub fn resolve_nic(engine: &Engine, text: &str) -> ArmResult<ResourceId> {
    match resolve(engine, Kind::NetworkInterface, text) {
        Ok(id) if id.kind() == Kind::NetworkInterface => Ok(id),
        Ok(id) if id.kind() == Kind::VirtualMachine => primary_nic(engine, &id),
        Ok(id) => Err(ArmError::bad_request("InvalidResourceId", format!("{id} is not a network interface."))),
        Err(e) => match resolve(engine, Kind::VirtualMachine, text) {
            Ok(vm) => primary_nic(engine, &vm),
            Err(_) => Err(e),
        },
    }
}

fn primary_nic(engine: &Engine, vm: &ResourceId) -> ArmResult<ResourceId> {
    let st = engine.state();
    let machine =
        st.vms.get(vm).ok_or_else(|| ArmError::resource_not_found(&vm.type_and_name(), vm.resource_group()))?;
    st.primary_nic_of(machine).map(|n| n.id.clone()).ok_or_else(|| {
        ArmError::bad_request("VirtualMachineHasNoNetworkInterface", format!("{vm} has no network interface."))
    })
}
