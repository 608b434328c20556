"""Peering through the unmodified Azure SDK: the lifecycle (P1-P4), sync levels (S2-S4),
refusals (R1, G1) and what the API adds around them (paging, etags, 404 codes)."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError


def vnet(net, group, name, prefixes, subnets=(("default", None),)):
    """Creates a VNet from an ARM JSON body (dict bodies go to the wire as they are)."""
    subnet_list = [{"name": n, "properties": {"addressPrefix": p or prefixes[0].replace("/16", "/24")}}
                   for n, p in subnets]
    body = {"location": "westeurope",
            "properties": {"addressSpace": {"addressPrefixes": list(prefixes)}, "subnets": subnet_list}}
    return net.virtual_networks.begin_create_or_update(group, name, body).result()


def peer(net, group, local, name, remote, **flags):
    props = {"remoteVirtualNetwork": {"id": remote.id}, "allowVirtualNetworkAccess": True, **flags}
    return net.virtual_network_peerings.begin_create_or_update(group, local, name, {"properties": props}).result()


def link(net, group, local, name):
    return net.virtual_network_peerings.get(group, local, name)


def test_peering_lifecycle_initiated_connected_disconnected(clients, group):
    net, _ = clients
    hub = vnet(net, group, "hub", ["10.0.0.0/16"])
    spoke = vnet(net, group, "spoke1", ["10.1.0.0/16"])
    first = peer(net, group, "hub", "hub-to-spoke1", spoke)
    # P1, O3: one link is Initiated and RemoteNotInSync.
    assert first.peering_state == "Initiated"
    assert first.peering_sync_level == "RemoteNotInSync"
    assert first.remote_address_space.address_prefixes == ["10.1.0.0/16"]
    # P2: the second link connects both.
    second = peer(net, group, "spoke1", "spoke1-to-hub", hub)
    assert second.peering_state == "Connected"
    assert link(net, group, "hub", "hub-to-spoke1").peering_state == "Connected"
    assert link(net, group, "hub", "hub-to-spoke1").peering_sync_level == "FullyInSync"
    # O5: both links share one GUID; the VNet document carries the links with its etag.
    assert first.resource_guid == second.resource_guid
    hub_doc = net.virtual_networks.get(group, "hub")
    assert [p.name for p in hub_doc.virtual_network_peerings] == ["hub-to-spoke1"]
    assert hub_doc.virtual_network_peerings[0].etag == hub_doc.etag
    # P3: deleting one link leaves the other Disconnected.
    net.virtual_network_peerings.begin_delete(group, "spoke1", "spoke1-to-hub").result()
    assert link(net, group, "hub", "hub-to-spoke1").peering_state == "Disconnected"
    with pytest.raises(ResourceNotFoundError) as gone:
        link(net, group, "spoke1", "spoke1-to-hub")
    assert gone.value.error.code == "NotFound"
    # P4: re-creating the deleted side is refused while the survivor is Disconnected.
    with pytest.raises(HttpResponseError) as refused:
        peer(net, group, "spoke1", "spoke1-to-hub", hub)
    assert refused.value.status_code == 400
    assert refused.value.error.code == "RemotePeeringIsDisconnected"
    # Deleting and re-creating the survivor starts over.
    net.virtual_network_peerings.begin_delete(group, "hub", "hub-to-spoke1").result()
    assert peer(net, group, "hub", "hub-to-spoke1", spoke).peering_state == "Initiated"
    assert peer(net, group, "spoke1", "spoke1-to-hub", hub).peering_state == "Connected"


def test_sync_after_address_space_change(clients, group):
    net, _ = clients
    hub = vnet(net, group, "hub", ["10.0.0.0/16"])
    spoke = vnet(net, group, "spoke2", ["10.2.0.0/16"])
    peer(net, group, "hub", "hub-to-spoke2", spoke)
    peer(net, group, "spoke2", "spoke2-to-hub", hub)
    # S1, S2: the spoke grows while peered.
    grown = net.virtual_networks.get(group, "spoke2")
    grown.address_space.address_prefixes.append("10.20.0.0/16")
    net.virtual_networks.begin_create_or_update(group, "spoke2", grown).result()
    hub_link = link(net, group, "hub", "hub-to-spoke2")
    spoke_link = link(net, group, "spoke2", "spoke2-to-hub")
    assert hub_link.peering_sync_level == "LocalNotInSync"
    assert spoke_link.peering_sync_level == "RemoteNotInSync"
    assert hub_link.remote_address_space.address_prefixes == ["10.2.0.0/16"]
    assert sorted(hub_link.remote_virtual_network_address_space.address_prefixes) == ["10.2.0.0/16", "10.20.0.0/16"]
    # S4: sync the stale side (what `az network vnet peering sync` sends).
    synced = net.virtual_network_peerings.begin_create_or_update(
        group, "hub", "hub-to-spoke2", hub_link, sync_remote_address_space="true").result()
    assert synced.peering_sync_level == "FullyInSync"
    assert sorted(synced.remote_address_space.address_prefixes) == ["10.2.0.0/16", "10.20.0.0/16"]
    assert link(net, group, "spoke2", "spoke2-to-hub").peering_sync_level == "FullyInSync"


def test_overlapping_address_spaces_are_refused(clients, group):
    net, _ = clients
    a = vnet(net, group, "a", ["10.0.0.0/16"])
    vnet(net, group, "b", ["10.0.128.0/17"])
    with pytest.raises(HttpResponseError) as refused:
        peer(net, group, "b", "b-to-a", a)
    assert refused.value.status_code == 400
    assert refused.value.error.code == "VnetAddressSpacesOverlap"
    # Nothing was written.
    assert list(net.virtual_network_peerings.list(group, "b")) == []


def test_use_remote_gateways_needs_a_remote_gateway(clients, group):
    net, _ = clients
    hub = vnet(net, group, "hub", ["10.0.0.0/16"])
    vnet(net, group, "spoke", ["10.1.0.0/16"])
    peer(net, group, "hub", "hub-to-spoke", net.virtual_networks.get(group, "spoke"), allowGatewayTransit=True)
    with pytest.raises(HttpResponseError) as refused:
        peer(net, group, "spoke", "spoke-to-hub", hub, useRemoteGateways=True)
    assert refused.value.error.code == "RemoteVnetHasNoGateways"
    assert refused.value.status_code == 400


def test_lists_page_with_next_link(clients, group):
    net, _ = clients
    names = [f"v{i}" for i in range(5)]
    for i, name in enumerate(names):
        vnet(net, group, name, [f"10.{i}.0.0/16"])
    # The server is started with --page-size 2: five VNets take three pages.
    assert sorted(v.name for v in net.virtual_networks.list(group)) == names
    assert {v.name for v in net.virtual_networks.list_all()} >= set(names)


def test_stale_etag_gets_412(clients, group):
    net, _ = clients
    first = vnet(net, group, "v", ["10.0.0.0/16"])
    stale = first.etag
    current = net.virtual_networks.get(group, "v")
    current.tags = {"changed": "yes"}
    net.virtual_networks.begin_create_or_update(group, "v", current).result()
    assert net.virtual_networks.get(group, "v").etag != stale
    current.tags = {"changed": "again"}
    with pytest.raises(HttpResponseError) as refused:
        net.virtual_networks.begin_create_or_update(group, "v", current, headers={"If-Match": stale}).result()
    assert refused.value.status_code == 412
    assert refused.value.error.code == "PreconditionFailed"
    assert net.virtual_networks.get(group, "v").tags == {"changed": "yes"}
    fresh = net.virtual_networks.get(group, "v").etag
    net.virtual_networks.begin_create_or_update(group, "v", current, headers={"If-Match": fresh}).result()
    assert net.virtual_networks.get(group, "v").tags == {"changed": "again"}


def test_not_found_codes(clients, group):
    net, _ = clients
    with pytest.raises(ResourceNotFoundError) as missing_vnet:
        net.virtual_networks.get(group, "nope")
    assert missing_vnet.value.error.code == "ResourceNotFound"
    vnet(net, group, "v", ["10.0.0.0/16"])
    with pytest.raises(ResourceNotFoundError) as missing_link:
        net.virtual_network_peerings.get(group, "v", "nope")
    assert missing_link.value.error.code == "NotFound"
    with pytest.raises(ResourceNotFoundError) as missing_group:
        net.virtual_networks.get("no-such-group", "v")
    assert missing_group.value.error.code == "ResourceGroupNotFound"
