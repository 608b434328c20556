"""`tessera serve --limits FILE`: the limits an operator raised (or lowered) are the ones enforced,
through the unmodified SDK's errors; a file naming something that is not a limit stops the server
with the reason, before it listens."""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from conftest import Server, ServerCredential, free_port, tessera_binary


def test_a_lowered_peering_limit_is_the_one_enforced():
    with tempfile.TemporaryDirectory(prefix="tessera-limits-") as d:
        limits = Path(d) / "limits.json"
        limits.write_text(json.dumps({"peeringsPerVnet": 1}))
        server = Server(Path(d), free_port(), "--limits", str(limits))
        try:
            common = dict(credential=ServerCredential(server), subscription_id=server.creds["subscriptionId"],
                          base_url=server.endpoint, connection_verify=server.ca, polling_interval=0.01)
            ResourceManagementClient(**common).resource_groups.create_or_update("rg", {"location": "westeurope"})
            net = NetworkManagementClient(**common)
            for i, name in enumerate(["hub", "a", "b"]):
                net.virtual_networks.begin_create_or_update("rg", name, {
                    "location": "westeurope",
                    "properties": {"addressSpace": {"addressPrefixes": [f"10.{i}.0.0/16"]}}}).result()
            vnet = lambda n: f"/subscriptions/{server.creds['subscriptionId']}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/{n}"
            net.virtual_network_peerings.begin_create_or_update(
                "rg", "hub", "hub-to-a", {"properties": {"remoteVirtualNetwork": {"id": vnet("a")}}}).result()
            with pytest.raises(HttpResponseError) as refused:
                net.virtual_network_peerings.begin_create_or_update(
                    "rg", "hub", "hub-to-b", {"properties": {"remoteVirtualNetwork": {"id": vnet("b")}}}).result()
            assert refused.value.error.code == "PeeringsPerVirtualNetworkLimitReached", refused.value
            assert [p.name for p in net.virtual_network_peerings.list("rg", "hub")] == ["hub-to-a"]
        finally:
            server.stop()


@pytest.mark.parametrize("content, says", [
    ('{"peeringsPerVnets": 10}', "'peeringsPerVnets' is not a limit that can be set"),
    ('{"peeringsPerVnet": 0}', "'peeringsPerVnet' must be a whole number above 0"),
    ('{"peeringsPerVnet": "many"}', "'peeringsPerVnet' must be a whole number above 0"),
    ('{"publicPool": []}', "'publicPool' is not a limit that can be set"),
    ('[1000]', "not a JSON object"),
])
def test_a_limits_file_that_is_not_limits_stops_the_server(content, says):
    with tempfile.TemporaryDirectory(prefix="tessera-limits-") as d:
        limits = Path(d) / "limits.json"
        limits.write_text(content)
        run = subprocess.run([tessera_binary(), "serve", "--data-dir", d, "--listen", f"127.0.0.1:{free_port()}",
                              "--limits", str(limits)], capture_output=True, text=True, timeout=30)
        assert run.returncode != 0
        assert "InvalidLimits" in run.stderr and says in run.stderr, run.stderr
        assert not (Path(d) / "credentials.json").exists(), "it started before refusing"
