//! The store always reopens on what it acknowledged: random sequences of changes (VNets and
//! their address spaces, peering links, syncs, deletes, NICs, NSGs, VMs taking NICs), each
//! writing the documents it names to a store as the server does, then the stored documents are
//! restored (`load::restore`). The restore never refuses, every document and
//! every NIC's effective routes are the same after as before, and no NIC ever has two Active
//! routes for one prefix (S1, S4, S5, R2, P3). A second engine that takes each change's stored
//! documents (`load::replace_documents`, as a server takes another's writes) holds the same
//! documents and routes after every change. The sequences of the trust issue are fixed cases.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Value, json};
use tessera_engine::diag::effective;
use tessera_engine::load;
use tessera_engine::{Change, Engine, Limits};
use tessera_model::{Kind, Resource, ResourceId};

const RG: &str = "/subscriptions/00000000-0000-4000-8000-000000000001/resourceGroups/rg/providers/Microsoft.Network";
const VNETS: usize = 4;
/// The /16 prefixes a VNet's space is drawn from (10.0–10.5).
const POOL: u8 = 6;

#[derive(Debug, Clone)]
enum Op {
    /// Create or change a VNet's space: its prefixes (indexes into the pool), the first holds
    /// the subnet.
    Vnet(usize, Vec<u8>),
    DeleteVnet(usize),
    Link(usize, usize),
    DeleteLink(usize, usize),
    Sync(usize, usize),
    Nic(usize, usize, bool),
    DeleteNic(usize),
    /// A VM taking a NIC.
    Vm(usize, usize),
    DeleteVm(usize),
}

fn vnet_id(i: usize) -> String {
    format!("{RG}/virtualNetworks/v{i}")
}

fn vm_id(v: usize) -> String {
    format!("{}/Microsoft.Compute/virtualMachines/vm{v}", RG.trim_end_matches("/Microsoft.Network"))
}

fn resource(v: Value) -> Resource {
    tessera_model::resource::from_arm_json(v).expect("parses").remove(0)
}

fn change(e: &Engine, op: &Op) -> Option<Change> {
    Some(match op {
        Op::Vnet(i, prefixes) => {
            let space: Vec<String> = prefixes.iter().map(|p| format!("10.{p}.0.0/16")).collect();
            let subnet = format!("10.{}.0.0/24", prefixes[0]);
            // A VNet that exists keeps its subnet where it is (its NICs stay valid).
            let subnet = e
                .state()
                .vnets
                .get(&ResourceId::parse(&vnet_id(*i)).ok()?)
                .and_then(|v| v.properties.subnets.first())
                .and_then(|s| s.properties.address_prefix.map(|p| p.to_string()))
                .unwrap_or(subnet);
            Change::Put(resource(json!({"id": vnet_id(*i), "location": "westeurope", "properties": {
                "addressSpace": {"addressPrefixes": space},
                "subnets": [{"name": "default", "properties": {"addressPrefix": subnet}}]}})))
        }
        Op::DeleteVnet(i) => Change::Delete(ResourceId::parse(&vnet_id(*i)).ok()?),
        Op::Link(a, b) => Change::Put(resource(json!({
            "id": format!("{}/virtualNetworkPeerings/to-v{b}", vnet_id(*a)),
            "properties": {"remoteVirtualNetwork": {"id": vnet_id(*b)}, "allowVirtualNetworkAccess": true}}))),
        Op::DeleteLink(a, b) => {
            Change::Delete(ResourceId::parse(&format!("{}/virtualNetworkPeerings/to-v{b}", vnet_id(*a))).ok()?)
        }
        Op::Sync(a, b) => {
            Change::SyncPeering(ResourceId::parse(&format!("{}/virtualNetworkPeerings/to-v{b}", vnet_id(*a))).ok()?)
        }
        Op::Nic(k, i, nsg) => {
            let mut props = json!({"ipConfigurations": [{"name": "ip", "properties": {
                "subnet": {"id": format!("{}/subnets/default", vnet_id(*i))}}}]});
            if *nsg {
                props["networkSecurityGroup"] = json!({"id": format!("{RG}/networkSecurityGroups/nsg")});
            }
            Change::Put(resource(json!({"id": format!("{RG}/networkInterfaces/n{k}"), "location": "westeurope",
                "properties": props})))
        }
        Op::DeleteNic(k) => Change::Delete(ResourceId::parse(&format!("{RG}/networkInterfaces/n{k}")).ok()?),
        Op::Vm(v, k) => Change::Put(resource(json!({"id": vm_id(*v), "location": "westeurope", "properties": {
            "networkProfile": {"networkInterfaces": [{"id": format!("{RG}/networkInterfaces/n{k}")}]}}}))),
        Op::DeleteVm(v) => Change::Delete(ResourceId::parse(&vm_id(*v)).ok()?),
    })
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0..VNETS;
    prop_oneof![
        3 => (v.clone(), proptest::collection::vec(0..POOL, 1..3)).prop_map(|(i, p)| Op::Vnet(i, p)),
        1 => v.clone().prop_map(Op::DeleteVnet),
        3 => (v.clone(), v.clone()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (v.clone(), v.clone()).prop_map(|(a, b)| Op::DeleteLink(a, b)),
        2 => (v.clone(), v.clone()).prop_map(|(a, b)| Op::Sync(a, b)),
        2 => (0..4usize, v.clone(), any::<bool>()).prop_map(|(k, i, n)| Op::Nic(k, i, n)),
        1 => (0..4usize).prop_map(Op::DeleteNic),
        2 => (0..2usize, 0..4usize).prop_map(|(v, k)| Op::Vm(v, k)),
        1 => (0..2usize).prop_map(Op::DeleteVm),
    ]
}

/// An engine with the NSG the NICs may name, and its store.
fn start() -> (Engine, Stored) {
    let mut e = Engine::new(Limits::default());
    let sub = tessera_model::account::Subscription::new(
        "00000000-0000-4000-8000-000000000001",
        tessera_model::account::DEFAULT_TENANT,
        "sub",
    );
    e.apply(Change::Put(Resource::Subscription(sub))).expect("subscription");
    let nsg = json!({"id": format!("{RG}/networkSecurityGroups/nsg"), "location": "westeurope", "properties": {
        "securityRules": [{"name": "deny-rdp", "properties": {"priority": 100, "direction": "Inbound", "access": "Deny",
            "protocol": "Tcp", "sourceAddressPrefix": "*", "sourcePortRange": "*",
            "destinationAddressPrefix": "*", "destinationPortRange": "3389"}}]}});
    let mut stored = Stored::new();
    apply(&mut e, &mut stored, Change::Put(resource(nsg)));
    (e, stored)
}

fn routes(e: &Engine, nic: &ResourceId) -> Value {
    serde_json::to_value(effective::effective_route_table(e, nic).expect("routes")).expect("json")
}

/// No NIC has two Active routes for one prefix.
fn one_active_route_per_prefix(e: &Engine) -> Result<(), String> {
    for nic in e.state().nics.keys() {
        let table = effective::effective_route_table(e, nic).map_err(|err| err.message)?;
        let mut seen = BTreeSet::new();
        for r in table.value.iter().filter(|r| r.state == "Active") {
            if !seen.insert(r.address_prefix[0]) {
                return Err(format!("{nic} has two Active routes for {}: {:?}", r.address_prefix[0], table.value));
            }
        }
    }
    Ok(())
}

/// A store as the server keeps one: each document a change names, as it is after the change.
type Stored = BTreeMap<ResourceId, Value>;

/// The document `id` names in the engine's state, as the server renders it.
fn render(e: &Engine, id: &ResourceId) -> Option<Value> {
    let st = e.state();
    let v = match id.kind() {
        Kind::VirtualNetwork => serde_json::to_value(st.vnets.get(id)?),
        Kind::NetworkSecurityGroup => serde_json::to_value(st.nsgs.get(id)?),
        Kind::NetworkInterface => serde_json::to_value(st.nics.get(id)?),
        Kind::VirtualMachine => serde_json::to_value(st.vms.get(id)?),
        other => panic!("no document of kind {other:?} in these sequences"),
    };
    v.ok()
}

/// Applies a change and writes what it names to the store, as the server does; what it named.
fn apply(e: &mut Engine, stored: &mut Stored, change: Change) -> Vec<ResourceId> {
    let Ok(named) = e.apply(change) else { return Vec::new() };
    for id in &named {
        match render(e, id) {
            Some(doc) => stored.insert(id.clone(), doc),
            None => stored.remove(id),
        };
    }
    named.into_iter().collect()
}

/// The engine restored from the store as it is.
fn restored(e: &Engine, stored: &Stored) -> Result<Engine, String> {
    let mut resources = e.state().subscriptions.values().map(|s| Resource::Subscription(s.clone())).collect::<Vec<_>>();
    for doc in stored.values() {
        resources.extend(
            tessera_model::resource::from_arm_json(doc.clone())
                .map_err(|err| format!("stored documents do not parse: {err}"))?,
        );
    }
    load::restore(resources, e.sequence(), Limits::default())
        .map_err(|err| format!("the restore refused what was acknowledged: {} {}", err.code, err.message))
}

/// The same documents and the same compiled routes for every NIC.
fn same(e: &Engine, other: &Engine, what: &str) -> Result<(), String> {
    if load::export(other) != load::export(e) {
        return Err(format!("{what}: documents differ:\nbefore {}\nafter {}", load::export(e), load::export(other)));
    }
    for nic in e.state().nics.keys() {
        if routes(other, nic) != routes(e, nic) {
            return Err(format!("{what}: routes of {nic} differ"));
        }
    }
    Ok(())
}

/// Restores from the store and checks the restore is the same state.
fn restart(e: &Engine, stored: &Stored) -> Result<(), String> {
    let again = restored(e, stored)?;
    same(e, &again, "restored")?;
    one_active_route_per_prefix(&again)
}

/// Runs the changes; a second server follows them from the documents each one stored
/// (`load::replace_documents`, as it takes another server's writes) and holds the same state
/// after every one.
fn run(ops: &[Op]) -> Result<Engine, String> {
    let (mut e, mut stored) = start();
    let mut follower = restored(&e, &stored)?;
    for op in ops {
        if let Some(c) = change(&e, op) {
            let named = apply(&mut e, &mut stored, c);
            let docs: Result<Vec<(ResourceId, Vec<Resource>)>, String> = named
                .into_iter()
                .map(|id| {
                    let resources = match stored.get(&id) {
                        Some(doc) => tessera_model::resource::from_arm_json(doc.clone()).map_err(|err| err.message)?,
                        None => Vec::new(),
                    };
                    Ok((id, resources))
                })
                .collect();
            load::replace_documents(&mut follower, docs?, e.sequence());
            same(&e, &follower, &format!("the follower after {op:?}"))?;
        }
        one_active_route_per_prefix(&e).map_err(|err| format!("after {op:?}: {err}"))?;
    }
    restart(&e, &stored)?;
    Ok(e)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn any_acknowledged_state_restores_the_same(ops in proptest::collection::vec(op(), 1..30)) {
        if let Err(e) = run(&ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn a_link_left_disconnected_by_a_deleted_vnet_restores() {
    // Peer two VNets, delete one: the other's link is Disconnected and points at nothing.
    let e = run(&[
        Op::Vnet(0, vec![0]),
        Op::Vnet(1, vec![1]),
        Op::Link(0, 1),
        Op::Link(1, 0),
        Op::Nic(0, 0, false),
        Op::DeleteVnet(1),
    ])
    .expect("restores");
    let link = ResourceId::parse(&format!("{}/virtualNetworkPeerings/to-v1", vnet_id(0))).expect("id");
    assert_eq!(
        e.state().peering(&link).and_then(|l| l.properties.peering_state),
        Some(tessera_model::network::PeeringState::Disconnected)
    );
}

#[test]
fn two_spokes_grown_into_one_prefix_restore() {
    // Both spokes of a hub grow into 10.5.0.0/16 (each change is legal on its own: S1).
    run(&[
        Op::Vnet(0, vec![0]),
        Op::Vnet(1, vec![1]),
        Op::Vnet(2, vec![2]),
        Op::Link(0, 1),
        Op::Link(1, 0),
        Op::Link(0, 2),
        Op::Link(2, 0),
        Op::Vnet(1, vec![1, 5]),
        Op::Vnet(2, vec![2, 5]),
        Op::Sync(0, 1),
        Op::Sync(0, 2),
        Op::Nic(0, 0, false),
    ])
    .expect("restores");
}

#[test]
fn a_hub_never_grows_into_a_prefix_its_link_still_carries() {
    // The spoke grows, the hub syncs, the spoke shrinks, the hub grows into the old prefix:
    // the hub's link still carries it (S5), so the growth is refused (S1).
    let mut e = run(&[
        Op::Vnet(0, vec![0]),
        Op::Vnet(1, vec![1]),
        Op::Link(0, 1),
        Op::Link(1, 0),
        Op::Nic(0, 0, false),
        Op::Vnet(1, vec![1, 5]),
        Op::Sync(0, 1),
        Op::Vnet(1, vec![1]),
    ])
    .expect("restores");
    let grow = change(&e, &Op::Vnet(0, vec![0, 5])).expect("change");
    let err = e.apply(grow).expect_err("refused");
    assert_eq!(err.code, "VnetAddressSpacesOverlap", "{}", err.message);
    // Once the hub syncs, the prefix is free.
    e.apply(change(&e, &Op::Sync(0, 1)).expect("change")).expect("synced");
    e.apply(change(&e, &Op::Vnet(0, vec![0, 5])).expect("change")).expect("grows");
    one_active_route_per_prefix(&e).expect("one route per prefix");
}

#[test]
fn a_spoke_whose_old_prefix_a_hub_link_still_carries_does_not_give_it_to_another() {
    // spoke1 had 10.5/16 and the hub synced it; spoke1 shrinks; spoke2 grows into 10.5/16: the
    // hub's sync of spoke2 is refused while its link to spoke1 still carries the prefix (R2).
    let mut e = run(&[
        Op::Vnet(0, vec![0]),
        Op::Vnet(1, vec![1, 5]),
        Op::Vnet(2, vec![2]),
        Op::Link(0, 1),
        Op::Link(1, 0),
        Op::Link(0, 2),
        Op::Link(2, 0),
        Op::Vnet(1, vec![1]),
        Op::Vnet(2, vec![2, 5]),
        Op::Nic(0, 0, false),
    ])
    .expect("restores");
    let err = e.apply(change(&e, &Op::Sync(0, 2)).expect("change")).expect_err("refused");
    assert_eq!(err.code, "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", "{}", err.message);
}

#[test]
fn a_store_of_the_previous_version_restores_the_nics_of_its_vms() {
    // The previous version did not rewrite a NIC's document when a VM took it: the stored NIC
    // has no `virtualMachine`. The restore derives it from the VM, as the VM's write did.
    let (mut e, mut stored) = start();
    for op in [Op::Vnet(0, vec![0]), Op::Nic(0, 0, false), Op::Vm(0, 0)] {
        let c = change(&e, &op).expect("change");
        apply(&mut e, &mut stored, c);
    }
    let nic = ResourceId::parse(&format!("{RG}/networkInterfaces/n0")).expect("id");
    let doc = stored.get_mut(&nic).expect("stored NIC");
    assert!(doc["properties"]["virtualMachine"].is_object(), "a VM's write stores its NIC: {doc}");
    doc["properties"].as_object_mut().expect("properties").remove("virtualMachine");
    restart(&e, &stored).expect("restores as before");
}
