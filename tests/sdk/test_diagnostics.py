"""Diagnostics through the unmodified Azure SDK: a spoke NIC's effective routes with
VNetPeering and VirtualNetworkGateway routes (gateway transit, GW1), its effective security
rules, and Network Watcher's nextHop, ipFlowVerify and connectivityCheck (NW1-NW3)."""

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

LOCATION = "westeurope"


def subnet_id(vnet, name):
    return f"{vnet.id}/subnets/{name}"


@pytest.fixture
def transit(clients, group, server):
    """Hub with a VPN gateway connected to an on-premises site; spoke uses the hub's gateway."""
    net, resources = clients
    sub = server.creds["subscriptionId"]

    def put_vnet(name, prefix, subnets):
        body = {"location": LOCATION, "properties": {
            "addressSpace": {"addressPrefixes": [prefix]},
            "subnets": [{"name": n, "properties": {"addressPrefix": p}} for n, p in subnets]}}
        return net.virtual_networks.begin_create_or_update(group, name, body).result()

    hub = put_vnet("hub", "10.0.0.0/16", [("default", "10.0.0.0/24"), ("GatewaySubnet", "10.0.255.0/27")])
    spoke = put_vnet("spoke", "10.1.0.0/16", [("default", "10.1.0.0/24")])
    gw = net.virtual_network_gateways.begin_create_or_update(group, "hub-gw", {
        "location": LOCATION, "properties": {
            "gatewayType": "Vpn", "vpnType": "RouteBased", "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
            "enableBgp": True, "bgpSettings": {"asn": 65515},
            "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": subnet_id(hub, "GatewaySubnet")}}}]}}).result()
    site = net.local_network_gateways.begin_create_or_update(group, "onprem", {
        "location": LOCATION, "properties": {
            "gatewayIpAddress": "203.0.113.10", "localNetworkAddressSpace": {"addressPrefixes": ["192.168.0.0/16"]}}}).result()
    net.virtual_network_gateway_connections.begin_create_or_update(group, "hub-to-onprem", {
        "location": LOCATION, "properties": {
            "connectionType": "IPsec", "virtualNetworkGateway1": {"id": gw.id},
            "localNetworkGateway2": {"id": site.id}, "sharedKey": "not-a-secret"}}).result()
    for local, remote, props in [("hub", spoke, {"allowGatewayTransit": True}), ("spoke", hub, {"useRemoteGateways": True})]:
        net.virtual_network_peerings.begin_create_or_update(group, local, f"{local}-link", {"properties": {
            "remoteVirtualNetwork": {"id": remote.id}, "allowVirtualNetworkAccess": True, **props}}).result()

    nsg = net.network_security_groups.begin_create_or_update(group, "hub-nsg", {"location": LOCATION}).result()

    def put_nic(name, vnet, ip, nsg=None):
        props = {"ipConfigurations": [{"name": "ipconfig1", "properties": {
            "subnet": {"id": subnet_id(vnet, "default")}, "privateIPAllocationMethod": "Static",
            "privateIPAddress": ip}}]}
        if nsg:
            props["networkSecurityGroup"] = {"id": nsg.id}
        return net.network_interfaces.begin_create_or_update(group, name, {"location": LOCATION, "properties": props}).result()

    nics = {"hub": put_nic("hub-nic", hub, "10.0.0.4", nsg), "spoke": put_nic("spoke-nic", spoke, "10.1.0.4")}
    vms = {}
    for name, nic in nics.items():
        vm_id = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}-vm"
        vms[name] = resources.resources.begin_create_or_update_by_id(vm_id, {
            "location": LOCATION, "properties": {"networkProfile": {"networkInterfaces": [{"id": nic.id}]}}},
            api_version="2024-07-01").result()
    watcher = net.network_watchers.create_or_update(group, "watcher", {"location": LOCATION})
    return {"group": group, "hub": hub, "spoke": spoke, "nics": nics, "vms": vms, "watcher": watcher}


def test_spoke_effective_routes_hold_peering_and_gateway_routes(clients, transit):
    net, _ = clients
    routes = net.network_interfaces.begin_get_effective_route_table(transit["group"], "spoke-nic").result()
    by_type = {}
    for r in routes.value:
        for p in r.address_prefix:
            by_type.setdefault(r.next_hop_type, set()).add(p)
    assert "10.0.0.0/16" in by_type["VNetPeering"]
    assert "192.168.0.0/16" in by_type["VirtualNetworkGateway"]
    assert "10.1.0.0/16" in by_type["VnetLocal"]


def test_effective_security_rules(clients, transit):
    net, _ = clients
    none = net.network_interfaces.begin_list_effective_network_security_groups(transit["group"], "spoke-nic").result()
    assert list(none.value) == []
    groups = net.network_interfaces.begin_list_effective_network_security_groups(transit["group"], "hub-nic").result()
    assert len(groups.value) == 1
    assert groups.value[0].network_security_group.id.endswith("/networkSecurityGroups/hub-nsg")
    names = [r.name for r in groups.value[0].effective_security_rules]
    assert "defaultSecurityRules/AllowVnetInBound" in names
    assert "defaultSecurityRules/DenyAllOutBound" in names
    # N6: VirtualNetwork expands to the VNet's space, the peered space, and 168.63.129.16.
    vnet_rule = next(r for r in groups.value[0].effective_security_rules if r.name.endswith("/AllowVnetInBound"))
    assert {"10.0.0.0/16", "10.1.0.0/16", "168.63.129.16/32"} <= set(vnet_rule.expanded_source_address_prefix)


def test_next_hop_ip_flow_verify_and_connectivity_check(clients, transit):
    net, _ = clients
    g, spoke_vm, hub_vm = transit["group"], transit["vms"]["spoke"].id, transit["vms"]["hub"].id
    hop = net.network_watchers.begin_get_next_hop(g, "watcher", {
        "targetResourceId": spoke_vm, "sourceIPAddress": "10.1.0.4", "destinationIPAddress": "192.168.1.1"}).result()
    assert hop.next_hop_type == "VirtualNetworkGateway"
    assert hop.route_table_id == "System Route"
    local = net.network_watchers.begin_get_next_hop(g, "watcher", {
        "targetResourceId": spoke_vm, "sourceIPAddress": "10.1.0.4", "destinationIPAddress": "10.0.0.4"}).result()
    assert local.next_hop_type == "VirtualNetworkPeering"  # NW1: the Network Watcher overview's name
    flow = net.network_watchers.begin_verify_ip_flow(g, "watcher", {
        "targetResourceId": hub_vm, "direction": "Inbound", "protocol": "TCP", "localPort": "22",
        "remotePort": "50000", "localIPAddress": "10.0.0.4", "remoteIPAddress": "10.1.0.4"}).result()
    assert flow.access == "Allow"
    assert flow.rule_name == "defaultSecurityRules/AllowVnetInBound"
    internet = net.network_watchers.begin_verify_ip_flow(g, "watcher", {
        "targetResourceId": hub_vm, "direction": "Inbound", "protocol": "TCP", "localPort": "22",
        "remotePort": "50000", "localIPAddress": "10.0.0.4", "remoteIPAddress": "198.51.100.7"}).result()
    assert internet.access == "Deny"
    assert internet.rule_name == "defaultSecurityRules/DenyAllInBound"
    check = net.network_watchers.begin_check_connectivity(g, "watcher", {
        "source": {"resourceId": spoke_vm}, "destination": {"resourceId": hub_vm, "port": 22},
        "protocol": "Tcp"}).result()
    assert check.connection_status == "Reachable"
    assert len(check.hops) >= 2


def test_diagnostics_refusals(clients, transit):
    net, _ = clients
    g = transit["group"]
    with pytest.raises(ResourceNotFoundError) as nic:
        net.network_interfaces.begin_get_effective_route_table(g, "no-such-nic").result()
    assert nic.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        net.network_watchers.begin_get_next_hop(g, "no-such-watcher", {
            "targetResourceId": transit["vms"]["spoke"].id, "sourceIPAddress": "10.1.0.4",
            "destinationIPAddress": "10.0.0.4"}).result()
    with pytest.raises(HttpResponseError) as bad:
        net.network_watchers.begin_get_next_hop(g, "watcher", {
            "targetResourceId": transit["vms"]["spoke"].id, "sourceIPAddress": "10.1.0.4",
            "destinationIPAddress": "not-an-address"}).result()
    assert bad.value.status_code == 400
