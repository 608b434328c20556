//! Peering (P1–P6, R1–R4, R6, S4, SP1–SP4, G1–G6, O7).

use crate::fixture::*;

// ---------------------------------------------------------------------------------------------
// Peering (P1–P6, R1–R4, S4, SP1–SP4, G1–G6, O7)
// ---------------------------------------------------------------------------------------------

#[test]
fn peering_needs_an_id_and_a_remote() {
    let mut e = base();
    let mut l = new_link("lonely", "spoke2");
    l.id = None;
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidRequestContent", 400);
    let mut l = new_link("lonely", "spoke2");
    l.properties.remote_virtual_network = None;
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidRequestContent", 400);
}

#[test]
fn peering_remote_must_be_a_virtual_network() {
    let mut e = base();
    let l = new_link_to("lonely", top(Kind::NetworkSecurityGroup, "nsg1"));
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidResourceReference", 400);
}

#[test]
fn peering_remote_must_exist() {
    let mut e = base();
    let l = new_link("lonely", "ghost");
    assert_refused(&mut e, put(Resource::Peering(l)), "InvalidGlobalResourceReference", 400);
}

#[test]
fn a_vnet_cannot_peer_with_itself() {
    let mut e = base();
    let l = new_link("lonely", "lonely");
    assert_refused(&mut e, put(Resource::Peering(l)), "CannotPeerVirtualNetworkWithItself", 400);
}

#[test]
fn o7_remote_of_a_link_cannot_change() {
    // O7 ChangingRemoteVirtualNetworkNotAllowed: remoteVirtualNetwork is immutable.
    let mut e = base();
    let mut l = link(&e, "hub", "hub-to-spoke2");
    l.properties.remote_virtual_network = Some(sub(vnet_id("lonely")));
    assert_refused(&mut e, put(Resource::Peering(l)), "ChangingRemoteVirtualNetworkNotAllowed", 400);
}

#[test]
fn sp3_link_type_cannot_change() {
    // SP3: VNet-wide and subnet peering cannot be switched in place.
    let mut e = base();
    let mut l = link(&e, "hub", "hub-to-spoke2");
    l.properties.peer_complete_vnets = false;
    l.properties.local_subnet_names = vec!["default".into()];
    l.properties.remote_subnet_names = vec!["default".into()];
    assert_refused(&mut e, put(Resource::Peering(l)), "ChangingPeerCompleteVnetsNotAllowed", 400);
}

#[test]
fn sp3_only_one_link_per_remote_vnet() {
    // SP3 / O7 AnotherPeeringAlreadyReferencesRemoteVnet.
    let mut e = base();
    let mut l = new_link("hub", "spoke1");
    l.id = Some(link_id("hub", "second-link-to-spoke1"));
    assert_refused(&mut e, put(Resource::Peering(l)), "AnotherPeeringAlreadyReferencesRemoteVnet", 400);
}

#[test]
fn limits_peerings_per_vnet() {
    // §2.5: hub already has two links.
    let mut e = with_limits(Limits { peerings_per_vnet: 2, ..Limits::default() });
    let l = new_link("hub", "lonely");
    assert_refused(&mut e, put(Resource::Peering(l)), "PeeringsPerVirtualNetworkLimitReached", 400);
}

#[test]
fn r4_no_peering_across_clouds() {
    // R4: westeurope (AzureCloud) and chinanorth2 (AzureChinaCloud).
    let mut e = base();
    let l = new_link("lonely", "china");
    assert_refused(&mut e, put(Resource::Peering(l)), "GlobalPeeringAcrossCloudsNotSupported", 400);
}

#[test]
fn p4_remote_peering_is_disconnected() {
    // P3: deleting hub→spoke1 leaves spoke1→hub Disconnected; P4: re-creating hub→spoke1 is
    // then refused until spoke1→hub is deleted and re-created.
    let mut e = base();
    let saved = link(&e, "hub", "hub-to-spoke1");
    ok(&mut e, Change::Delete(link_id("hub", "hub-to-spoke1")));
    let err = assert_refused(&mut e, put(Resource::Peering(saved)), "RemotePeeringIsDisconnected", 400);
    assert!(err.message.contains("Disconnected state"), "{}", err.message);
}

#[test]
fn p5_recreated_remote_vnet_leaves_the_local_link_disconnected() {
    // P5: spoke2 deleted and re-created: hub→spoke2 stays Disconnected, so the new spoke2→hub
    // is refused (P4).
    let mut e = base();
    let old = vnet(&e, "spoke2");
    ok(&mut e, Change::Delete(vnet_id("spoke2")));
    ok(&mut e, put(Resource::VirtualNetwork(old)));
    let l = new_link("spoke2", "hub");
    assert_refused(&mut e, put(Resource::Peering(l)), "RemotePeeringIsDisconnected", 400);
}

#[test]
fn s4_a_disconnected_link_cannot_be_synced() {
    // S4 on a link whose partner is gone (P3): delete and re-create it instead.
    let mut e = base();
    ok(&mut e, Change::Delete(link_id("spoke2", "spoke2-to-hub")));
    let change = Change::SyncPeering(link_id("hub", "hub-to-spoke2"));
    assert_refused(&mut e, change, "PeeringIsDisconnected", 400);
}

#[test]
fn r1_address_spaces_overlap() {
    // R1: spoke1 and clash are both 10.1.0.0/16.
    let mut e = base();
    let l = new_link("spoke1", "clash");
    let err = assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpacesOverlap", 400);
    assert!(err.message.contains("Overlapping address prefixes: 10.1.0.0/16"), "{}", err.message);
}

#[test]
fn r2_overlap_with_already_peered_vnet() {
    // R2: clash (10.1.0.0/16) does not overlap hub, but overlaps spoke1, already peered with hub.
    let mut e = base();
    let l = new_link("clash", "hub");
    let err = assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
    assert!(err.message.contains("10.1.0.0/16"), "{}", err.message);
    // The same from hub's side (the remote's space against the local VNet's peers).
    let l = new_link("hub", "clash");
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
}

#[test]
fn r2_s4_sync_refused_when_the_remote_grew_into_another_peer() {
    // spoke2 grows into 10.1.0.0/16 (S1 allows it: spoke2's only peer is hub). Syncing hub's
    // link would bring 10.1.0.0/16 next to spoke1's, already peered with hub (R2).
    let mut e = base();
    let mut v = vnet(&e, "spoke2");
    v.properties.address_space.address_prefixes.push(net("10.1.0.0/16"));
    ok(&mut e, put(Resource::VirtualNetwork(v)));
    let change = Change::SyncPeering(link_id("hub", "hub-to-spoke2"));
    assert_refused(&mut e, change, "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet", 400);
}

#[test]
fn sp2_subnet_peering_overlap_is_checked_on_whole_spaces() {
    // SP2 (field report): clash/upper and spoke1/default do not overlap, the VNet spaces do.
    let mut e = base();
    let l = subnet_link("clash", "spoke1", &["upper"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetAddressSpacesOverlap", 400);
}

#[test]
fn sp1_subnet_peering_needs_subnet_names() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default"], &[]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetNamesRequiredForSubnetPeering", 400);
}

#[test]
fn sp1_subnet_peering_names_existing_subnets() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default"], &["ghost"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetNotFoundForSubnetPeering", 400);
}

#[test]
fn sp2_subnet_peering_subnets_are_unique() {
    let mut e = base();
    let l = subnet_link("lonely", "spoke2", &["default", "DEFAULT"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "DuplicateSubnetInSubnetPeering", 400);
}

#[test]
fn sp4_limits_subnets_per_subnet_peering() {
    // SP4: at most N subnets on both sides together (200 in Azure).
    let mut e = with_limits(Limits { subnets_per_subnet_peering: 2, ..Limits::default() });
    let l = subnet_link("lonely", "spoke2", &["default", "other"], &["default"]);
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetPeeringSubnetLimitReached", 400);
}

#[test]
fn p6_subnet_peering_is_not_available_with_a_classic_vnet() {
    let mut e = base();
    let mut l = subnet_link("lonely", "spoke2", &["default"], &["default"]);
    l.properties.remote_virtual_network = Some(sub(top(Kind::ClassicVirtualNetwork, "legacy")));
    assert_refused(&mut e, put(Resource::Peering(l)), "SubnetPeeringNotSupportedForClassicVnet", 400);
}

#[test]
fn g1_only_one_use_remote_gateways() {
    // G1: spoke1→hub already uses remote gateways (checked before G3, so lonely needs none).
    let mut e = base();
    let mut l = new_link("spoke1", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "OnlyOnePeeringCanUseRemoteGateways", 400);
}

#[test]
fn g2_vnet_with_a_gateway_cannot_use_remote_gateways() {
    let mut e = base();
    let mut l = new_link("hub", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "VnetWithGatewayCannotUseRemoteGateways", 400);
}

#[test]
fn g2_vnet_using_remote_gateways_cannot_have_a_gateway() {
    // G2, other direction: spoke1 uses hub's gateway, so it cannot get one of its own.
    let mut e = base();
    let g = new_gateway(&e, "spoke1-gw", "spoke1");
    assert_refused(&mut e, put(Resource::VirtualNetworkGateway(g)), "VnetUsingRemoteGatewaysCannotHaveGateway", 400);
}

#[test]
fn g3_remote_vnet_has_no_gateways() {
    let mut e = base();
    let mut l = new_link("spoke2", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l.clone())), "RemoteVnetHasNoGateways", 400);
    // doNotVerifyRemoteGateways does not bypass it (azure-semantics §1.1).
    l.properties.do_not_verify_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteVnetHasNoGateways", 400);
}

#[test]
fn g4_a_classic_gateway_does_not_serve_transit() {
    // G4: the gateway must be in the Resource Manager VNet.
    let mut e = base();
    let mut c = classic(&e, "legacy");
    c.properties.has_gateway = true;
    ok(&mut e, put(Resource::ClassicVirtualNetwork(c)));
    let mut l = new_link_to("lonely", top(Kind::ClassicVirtualNetwork, "legacy"));
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteVnetHasNoGateways", 400);
}

#[test]
fn g6_basic_vpn_gateway_does_not_serve_transit() {
    let mut e = base();
    give_lonely_a_basic_gateway(&mut e);
    let mut l = new_link("spoke2", "lonely");
    l.properties.use_remote_gateways = true;
    assert_refused(&mut e, put(Resource::Peering(l)), "RemoteGatewaySkuDoesNotSupportGatewayTransit", 400);
}

#[test]
fn limits_private_ips_per_peering_group() {
    // §2.5: hub (gateway, ILB frontend, vm1) + spoke1 (vm2) + spoke2 = 4 addresses; peering
    // lonely (vm3) with hub would make 5.
    let mut e = with_limits(Limits { private_ips_per_peering_group: 4, ..Limits::default() });
    let l = new_link("lonely", "hub");
    assert_refused(&mut e, put(Resource::Peering(l)), "PrivateIpsPerPeeringGroupLimitReached", 400);
}

// R6: a VNet cannot move to another resource group or subscription while it has peerings.

fn move_to(id: ResourceId, resource_group: &str) -> Change {
    Change::MoveVnet { id, subscription: DEFAULT_SUBSCRIPTION.to_string(), resource_group: resource_group.to_string() }
}

#[test]
fn r6_move_refused_while_peered() {
    let mut e = base();
    for vnet in ["hub", "spoke2"] {
        let err =
            assert_refused(&mut e, move_to(vnet_id(vnet), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
        assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("CannotMoveVirtualNetworkWithPeerings"));
    }
}

#[test]
fn r6_move_refused_while_subnets_are_in_use() {
    let mut e = base();
    let err =
        assert_refused(&mut e, move_to(vnet_id("lonely"), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
    assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("CannotMoveVirtualNetworkInUse"));
}

#[test]
fn r6_move_succeeds_without_peerings_and_keeps_the_vnet() {
    let mut e = base();
    let before = vnet(&e, "clash");
    ok(&mut e, move_to(vnet_id("clash"), "other-rg"));
    let moved_id = ResourceId::top(DEFAULT_SUBSCRIPTION, "other-rg", Kind::VirtualNetwork, "clash");
    let moved = e.state().vnets.get(&moved_id).expect("moved VNet");
    assert!(!e.state().vnets.contains_key(&vnet_id("clash")));
    assert_eq!(moved.properties.resource_guid, before.properties.resource_guid);
    assert_eq!(moved.properties.address_space, before.properties.address_space);
    assert_eq!(moved.properties.subnets[0].id, Some(moved_id.child("subnets", "default")));
    assert!(e.compiled().subnets.contains_key(&moved_id.child("subnets", "default")));
    assert!(!e.compiled().subnets.contains_key(&subnet_id("clash", "default")));
    // Moving onto an existing VNet's id is refused.
    let mut again = base();
    ok(&mut again, move_to(vnet_id("clash"), "other-rg"));
    let err =
        assert_refused(&mut again, move_to(moved_id.clone(), "other-rg"), "ResourceMoveProviderValidationFailed", 409);
    assert_eq!(err.details.first().map(|d| d.code.as_str()), Some("ResourceAlreadyExists"));
}
