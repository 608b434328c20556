//! A store keeps the documents `apply` names; rebuilding an engine from them (`load::restore`)
//! gives back the same state, history included: a Disconnected link (P3) and a link whose
//! remote space changed since its last sync (S2, S3).

use std::path::Path;

use tessera_engine::diag::effective;
use tessera_engine::load::{self, Format};
use tessera_engine::{Change, Engine, Limits, document_of};
use tessera_model::network::{AddressSpace, PeeringState, PeeringSyncLevel};
use tessera_model::{Resource, ResourceId};

fn example(name: &str) -> Engine {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
    let text = std::fs::read_to_string(&path).expect("example");
    load::load(&text, Format::detect(name, &text), Limits::default()).expect("loads")
}

fn vnet(engine: &Engine, name: &str) -> ResourceId {
    engine.state().vnets.keys().find(|id| id.name() == name).cloned().expect("vnet")
}

fn restored(engine: &Engine) -> Engine {
    let text = load::export(engine).to_string();
    let resources = load::parse(&text, Format::Json).expect("parses");
    load::restore(resources, engine.sequence(), Limits::default()).expect("restores")
}

#[test]
fn restore_keeps_disconnected_links_and_stale_sync_levels() {
    let mut engine = example("hub-spoke-nva.yaml");
    let hub = vnet(&engine, "hub");
    let spoke1 = vnet(&engine, "spoke1");
    let spoke2 = vnet(&engine, "spoke2");
    // P3: delete spoke1's link to the hub; the hub's link to spoke1 is Disconnected.
    let spoke1_link = engine.state().link_to(&spoke1, &hub).and_then(|l| l.id.clone()).expect("link");
    let docs = engine.apply(Change::Delete(spoke1_link)).expect("deleted");
    assert!(docs.contains(&spoke1) && docs.contains(&hub), "both VNet documents changed: {docs:?}");
    // S2: spoke2 grows; the hub's link to spoke2 is LocalNotInSync until synced.
    let mut v = engine.state().vnet(&spoke2).cloned().expect("spoke2");
    let mut space = v.properties.address_space.address_prefixes.clone();
    space.push("10.20.0.0/16".parse().expect("prefix"));
    v.properties.address_space = AddressSpace::of(space);
    engine.apply(Change::Put(Resource::VirtualNetwork(v))).expect("grows");
    let hub_to_spoke2 = engine.state().link_to(&hub, &spoke2).expect("link").clone();
    assert_eq!(hub_to_spoke2.properties.peering_sync_level, Some(PeeringSyncLevel::LocalNotInSync));

    let again = restored(&engine);
    assert_eq!(load::export(&again), load::export(&engine), "the same documents after a restore");
    assert_eq!(
        again.state().link_to(&hub, &spoke1).and_then(|l| l.properties.peering_state),
        Some(PeeringState::Disconnected)
    );
    assert_eq!(
        again.state().link_to(&hub, &spoke2).and_then(|l| l.properties.peering_sync_level),
        Some(PeeringSyncLevel::LocalNotInSync)
    );
    assert_eq!(again.sequence(), engine.sequence());
    for nic in engine.state().nics.keys() {
        let routes = |e: &Engine| serde_json::to_value(effective::effective_route_table(e, nic).expect("routes"));
        assert_eq!(routes(&again).expect("json"), routes(&engine).expect("json"), "the same routes for {nic}");
    }
}

#[test]
fn apply_names_the_documents_it_changed() {
    let mut engine = example("hub-spoke-nva.yaml");
    let nsg = engine.state().nsgs.keys().next().cloned().expect("an NSG");
    let mut n = engine.state().nsgs[&nsg].clone();
    n.tags.insert("team".into(), "net".into());
    let docs = engine.apply(Change::Put(Resource::NetworkSecurityGroup(n))).expect("updated");
    assert!(docs.contains(&nsg));
    // A subnet change names its VNet, the document that holds it.
    let spoke1 = vnet(&engine, "spoke1");
    let subnet = engine.state().vnet(&spoke1).expect("spoke1").properties.subnets[0].clone();
    let docs = engine.apply(Change::Put(Resource::Subnet(subnet.clone()))).expect("same subnet");
    assert!(docs.contains(&spoke1));
    assert_eq!(document_of(subnet.id.as_ref().expect("id")), spoke1);
    // A refusal names nothing and changes nothing.
    let before = load::export(&engine);
    let bad = ResourceId::parse(&format!("{}/virtualNetworkPeerings/nope", spoke1)).expect("id");
    assert!(engine.apply(Change::Delete(bad)).is_err());
    assert_eq!(load::export(&engine), before);
}
