//! Loading a topology file (YAML or ARM JSON) into an engine, in dependency order, with every
//! resource validated as if it had been sent to the API.

use std::collections::BTreeSet;

use tessera_model::account::{DEFAULT_TENANT, Subscription};
use tessera_model::{ArmError, Resource, ResourceId};

use crate::{Change, Engine, Limits};

/// A topology file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The concise YAML format.
    Yaml,
    /// ARM JSON: an array of resources or `{"resources": [...]}`.
    Json,
}

impl Format {
    /// Guesses the format from a file name and its first character.
    pub fn detect(name: &str, text: &str) -> Format {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".json") || text.trim_start().starts_with(['[', '{']) { Format::Json } else { Format::Yaml }
    }
}

/// Parses a topology into resources.
pub fn parse(text: &str, format: Format) -> Result<Vec<Resource>, ArmError> {
    match format {
        Format::Yaml => tessera_model::yaml::from_yaml(text),
        Format::Json => tessera_model::resource::from_arm_document(text),
    }
}

/// Builds an engine from resources. Subscriptions that are referenced but not declared are
/// added in the default tenant. Fails on the first refusal, naming the resource.
pub fn build(mut resources: Vec<Resource>, limits: Limits) -> Result<Engine, ArmError> {
    add_implied_subscriptions(&mut resources);
    resources.sort_by_key(Resource::apply_rank);
    let mut engine = Engine::new(limits);
    for r in resources {
        let what = r.id().map(ToString::to_string).unwrap_or_default();
        engine.apply_deferred(Change::Put(r)).map_err(|mut e| {
            if !what.is_empty() && e.target.is_none() {
                e.target = Some(what);
            }
            e
        })?;
    }
    engine.compile_all();
    Ok(engine)
}

/// Adds the subscriptions resources name but no resource declares, in the default tenant.
fn add_implied_subscriptions(resources: &mut Vec<Resource>) {
    let declared: BTreeSet<String> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Subscription(s) => Some(s.subscription_id.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let used: BTreeSet<String> =
        resources.iter().filter_map(|r| r.id()).map(|id| id.subscription().to_ascii_lowercase()).collect();
    for s in used.difference(&declared) {
        resources.push(Resource::Subscription(Subscription::new(s, DEFAULT_TENANT, s)));
    }
}

/// Rebuilds an engine from documents a store kept (as [`export`] writes them): they are the
/// state as it was acknowledged, so they are put back as they are — never validated again as
/// new requests (a link left Disconnected by a deleted VNet, spaces that grew legally after
/// peering, limits lowered since). The read-only link fields are derived again from them and
/// everything is compiled. `sequence` is the stored [`Engine::sequence`].
pub fn restore(mut resources: Vec<Resource>, sequence: u64, limits: Limits) -> Result<Engine, ArmError> {
    add_implied_subscriptions(&mut resources);
    let mut st = crate::State::default();
    let mut children = Children::default();
    let vms: Vec<ResourceId> = resources
        .iter()
        .filter_map(|r| if let Resource::VirtualMachine(v) = r { Some(v.id.clone()) } else { None })
        .collect();
    for r in resources {
        insert(&mut st, r, &mut children);
    }
    children.merge(&mut st);
    // A NIC's `virtualMachine` is the VM that names it. A VM's write stores its NICs' documents
    // too, but stores of the previous version did not: derive it as the VM's write did.
    name_vms_of_nics(&mut st, &vms);
    Ok(Engine::restored(st, limits, sequence))
}

/// Replaces documents of a restored engine with the stored ones (another server's writes read
/// back): each named document is removed, and what the store now holds for it (nothing when it
/// was deleted) put back as [`restore`] does — as acknowledged, never validated again. The
/// links' read-only fields are derived again and everything is compiled; `sequence` is the
/// stored [`Engine::sequence`].
pub fn replace_documents(engine: &mut Engine, changed: Vec<(ResourceId, Vec<Resource>)>, sequence: u64) {
    let st = &mut engine.state;
    let ids: Vec<ResourceId> = changed.iter().map(|(id, _)| id.clone()).collect();
    // What must be compiled again: the VNets the documents touch, before and after.
    let mut dirty = affected(st, &ids);
    let vnets_before: Vec<Option<tessera_model::network::VirtualNetwork>> =
        ids.iter().map(|id| st.vnets.get(id).cloned()).collect();
    for (id, _) in &changed {
        remove_document(st, id);
    }
    let mut children = Children::default();
    let mut vms = Vec::new();
    for r in changed.into_iter().flat_map(|(_, resources)| resources) {
        if let Resource::VirtualMachine(v) = &r {
            vms.push(v.id.clone());
        }
        insert(st, r, &mut children);
    }
    children.merge(st);
    name_vms_of_nics(st, &vms);
    if let (Some(before), Some(after)) = (dirty.as_mut(), affected(st, &ids)) {
        before.extend(after);
    } else {
        dirty = None;
    }
    engine.seq = sequence;
    match dirty {
        Some(mut vnets) => {
            let vnet_docs: BTreeSet<ResourceId> =
                ids.iter().filter(|id| id.kind() == tessera_model::Kind::VirtualNetwork).cloned().collect();
            vnets.extend(crate::lifecycle::refresh_links(st, &vnet_docs, false));
            for (id, old) in ids.iter().zip(&vnets_before) {
                vnets.extend(vnet_neighbours(st, id, old.as_ref()));
            }
            let partners = crate::ops::gateway::v2v_partners_of(st, &vnets);
            vnets.extend(partners);
            engine.dirty.extend(vnets);
            engine.flush();
        }
        None => {
            let all: BTreeSet<ResourceId> = st.vnets.keys().cloned().collect();
            crate::lifecycle::refresh_links(st, &all, false);
            engine.compile_all();
        }
    }
}

/// The VNets whose programs a VNet's new document changes besides its own: the remote ends of
/// its links that changed (added, removed or altered), and when its address space changed
/// every VNet peered with it either way.
fn vnet_neighbours(
    st: &crate::State,
    id: &ResourceId,
    old: Option<&tessera_model::network::VirtualNetwork>,
) -> BTreeSet<ResourceId> {
    use tessera_model::network::{Peering, VirtualNetwork};
    let remote = |l: &Peering| l.properties.remote_virtual_network.as_ref().map(|r| r.id.clone());
    let new = st.vnets.get(id);
    let links =
        |v: Option<&VirtualNetwork>| v.map(|v| v.properties.virtual_network_peerings.clone()).unwrap_or_default();
    let (before, after) = (links(old), links(new));
    let mut out = BTreeSet::new();
    for l in before.iter().filter(|l| !after.contains(l)).chain(after.iter().filter(|l| !before.contains(l))) {
        out.extend(remote(l));
    }
    let space = |v: Option<&VirtualNetwork>| v.map(|v| v.properties.address_space.clone());
    if space(old) != space(new) {
        out.extend(before.iter().chain(&after).filter_map(remote));
        for v in st.vnets.values() {
            if v.properties.virtual_network_peerings.iter().filter_map(remote).any(|r| r == *id) {
                out.insert(v.id.clone());
            }
        }
    }
    out
}

/// The VNets whose programs documents `ids` feed, as the state holds them: a VNet itself (see
/// [`vnet_neighbours`] for the others), a NIC's VNets, a VM's NICs' VNets. `None` for any other kind
/// (security groups, route tables, gateways, …): everything is compiled again.
fn affected(st: &crate::State, ids: &[ResourceId]) -> Option<BTreeSet<ResourceId>> {
    use tessera_model::Kind;
    // A NIC in security groups, or with a public address, feeds other VNets' rules too.
    let nic_vnets = |nic: &ResourceId, out: &mut BTreeSet<ResourceId>| -> Option<()> {
        for c in st.nics.get(nic).map(|n| n.properties.ip_configurations.as_slice()).unwrap_or_default() {
            if !c.properties.application_security_groups.is_empty() || c.properties.public_ip_address.is_some() {
                return None;
            }
            out.extend(c.properties.subnet.as_ref().and_then(|s| s.id.parent()));
        }
        Some(())
    };
    let mut out = BTreeSet::new();
    for id in ids {
        match id.kind() {
            Kind::VirtualNetwork => drop(out.insert(id.clone())),
            Kind::NetworkInterface => nic_vnets(id, &mut out)?,
            Kind::VirtualMachine => {
                for r in st
                    .vms
                    .get(id)
                    .map(|v| v.properties.network_profile.network_interfaces.as_slice())
                    .unwrap_or_default()
                {
                    nic_vnets(&r.id, &mut out)?;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Subnets and links stored on their own, to go back into their VNets.
#[derive(Default)]
struct Children {
    subnets: Vec<tessera_model::network::Subnet>,
    links: Vec<tessera_model::network::Peering>,
}

impl Children {
    /// Puts them in their VNet (a VNet document embeds them; one without its VNet has nowhere
    /// to live and is left out).
    fn merge(self, st: &mut crate::State) {
        for s in self.subnets {
            let Some(vnet) = s.id.as_ref().and_then(|id| id.parent()).and_then(|v| st.vnets.get_mut(&v)) else {
                continue;
            };
            let list = &mut vnet.properties.subnets;
            list.retain(|o| !o.name.eq_ignore_ascii_case(&s.name));
            list.push(s);
        }
        for p in self.links {
            let Some(vnet) = p.id.as_ref().and_then(|id| id.parent()).and_then(|v| st.vnets.get_mut(&v)) else {
                continue;
            };
            let list = &mut vnet.properties.virtual_network_peerings;
            list.retain(|o| !o.name.eq_ignore_ascii_case(&p.name));
            list.push(p);
        }
    }
}

/// Puts a stored resource into the state as it is.
fn insert(st: &mut crate::State, r: Resource, children: &mut Children) {
    match r {
        Resource::Subscription(mut s) => {
            s.id = format!("/subscriptions/{}", s.subscription_id);
            st.subscriptions.insert(s.subscription_id.to_ascii_lowercase(), s);
        }
        Resource::VirtualNetwork(v) => {
            st.vnets.insert(v.id.clone(), v);
        }
        Resource::Peering(p) => children.links.push(p),
        Resource::Subnet(s) => children.subnets.push(s),
        Resource::ClassicVirtualNetwork(v) => {
            st.classic_vnets.insert(v.id.clone(), v);
        }
        Resource::NetworkSecurityGroup(n) => {
            st.nsgs.insert(n.id.clone(), n);
        }
        Resource::RouteTable(t) => {
            st.route_tables.insert(t.id.clone(), t);
        }
        Resource::NetworkInterface(n) => {
            st.index_nic(&n);
            st.nics.insert(n.id.clone(), n);
        }
        Resource::VirtualMachine(v) => {
            st.vms.insert(v.id.clone(), v);
        }
        Resource::VirtualNetworkGateway(g) => {
            st.index_gateway(&g, true);
            st.gateways.insert(g.id.clone(), g);
        }
        Resource::LocalNetworkGateway(l) => {
            st.local_gateways.insert(l.id.clone(), l);
        }
        Resource::Connection(c) => {
            st.connections.insert(c.id.clone(), c);
        }
        Resource::LoadBalancer(l) => {
            st.index_lb(&l, true);
            st.load_balancers.insert(l.resource.id.clone(), l);
        }
        Resource::PublicIpAddress(p) => {
            st.public_ips.insert(p.resource.id.clone(), p);
        }
        Resource::ApplicationSecurityGroup(a) => {
            st.asgs.insert(a.id.clone(), a);
        }
    }
}

/// Takes a top-level document (and what it embeds) out of the state, with its indexes.
fn remove_document(st: &mut crate::State, id: &ResourceId) {
    use tessera_model::Kind;
    match id.kind() {
        Kind::VirtualNetwork => drop(st.vnets.remove(id)),
        Kind::ClassicVirtualNetwork => drop(st.classic_vnets.remove(id)),
        Kind::NetworkSecurityGroup => drop(st.nsgs.remove(id)),
        Kind::RouteTable => drop(st.route_tables.remove(id)),
        Kind::NetworkInterface => {
            if let Some(n) = st.nics.remove(id) {
                st.unindex_nic(&n);
            }
        }
        Kind::VirtualMachine => drop(st.vms.remove(id)),
        Kind::VirtualNetworkGateway => {
            if let Some(g) = st.gateways.remove(id) {
                st.index_gateway(&g, false);
            }
        }
        Kind::LocalNetworkGateway => drop(st.local_gateways.remove(id)),
        Kind::Connection => drop(st.connections.remove(id)),
        Kind::LoadBalancer => {
            if let Some(l) = st.load_balancers.remove(id) {
                st.index_lb(&l, false);
            }
        }
        Kind::PublicIpAddress => drop(st.public_ips.remove(id)),
        Kind::ApplicationSecurityGroup => drop(st.asgs.remove(id)),
        _ => {}
    }
}

/// Each of `vms`' NICs names it as its `virtualMachine`.
fn name_vms_of_nics(st: &mut crate::State, vms: &[ResourceId]) {
    for id in vms {
        let Some(vm) = st.vms.get(id) else { continue };
        for r in &vm.properties.network_profile.network_interfaces {
            if let Some(nic) = st.nics.get_mut(&r.id) {
                nic.properties.virtual_machine = Some(tessera_model::envelope::SubResource::new(vm.id.clone()));
            }
        }
    }
}

/// Parses and builds in one step. A snapshot ([`export`]'s output, marked `"snapshot": true`)
/// is state a server acknowledged: it is restored as it is ([`restore`]), not validated again.
pub fn load(text: &str, format: Format, limits: Limits) -> Result<Engine, ArmError> {
    let resources = parse(text, format)?;
    if format == Format::Json && is_snapshot(text) {
        return restore(resources, 0, limits);
    }
    build(resources, limits)
}

/// Whether an ARM JSON document is a snapshot [`export`] wrote.
fn is_snapshot(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Marker {
        #[serde(default)]
        snapshot: bool,
    }
    serde_json::from_str::<Marker>(text).is_ok_and(|m| m.snapshot)
}

/// The whole state as an ARM JSON document `{"snapshot": true, "resources": [...]}`, each
/// resource as `GET` returns it (VNets embed their subnets and peering links). Loading it gives
/// the same model, history included.
pub fn export(engine: &Engine) -> serde_json::Value {
    use serde_json::to_value;
    let st = engine.state();
    let mut out: Vec<serde_json::Value> = Vec::new();
    out.extend(st.subscriptions.values().filter_map(|s| to_value(s).ok()));
    out.extend(st.nsgs.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.route_tables.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.local_gateways.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.public_ips.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.asgs.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.vnets.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.classic_vnets.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.gateways.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.load_balancers.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.nics.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.vms.values().filter_map(|r| to_value(r).ok()));
    out.extend(st.connections.values().filter_map(|r| to_value(r).ok()));
    serde_json::json!({ "snapshot": true, "resources": out })
}
