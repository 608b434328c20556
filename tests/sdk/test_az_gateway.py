"""A VPN gateway's BGP routes through the real Azure CLI (issue 16, GW1-GW2): `tessera up` runs
the gateway-transit lab (namespace VMs, the hub gateway's instance and a simulated site with
strongSwan and BIRD; root), then `az network vnet-gateway list-learned-routes`,
`list-advertised-routes --peer` and `list-bgp-peer-status` answer from what the running daemons
report: the site's LAN learned by BGP (not in the site's address space), the hub's and the
transit spoke's prefixes advertised to the site. `az network vpn-connection shared-key show` and
`update` read and replace the connection's key (GetSharedKey, SetSharedKey)."""

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, tessera_binary
from test_az import CLOUD, Az, find_az

LAB = ROOT / "tests" / "lab" / "gateway-transit.yaml"
GROUP = "gw-rg"
SITE_BGP = "10.255.50.1"
SITE_LAN = "192.168.50.0/24"


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.fail("the gateway lab runs namespace VMs and daemons in namespaces: run the tests as root")
    with tempfile.TemporaryDirectory(prefix="tessera-gw-") as d:
        data = Path(d) / "lab"
        port = free_port()
        up = subprocess.run([tessera_binary(), "up", "-f", str(LAB), "--data-dir", str(data),
                             "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=180)
        try:
            assert up.returncode == 0, f"tessera up failed:\n{up.stdout}\n{up.stderr}"
            yield data, f"https://127.0.0.1:{port}"
        finally:
            subprocess.run([tessera_binary(), "down", "--data-dir", str(data)], capture_output=True, timeout=120)


def rows(answer):
    """The list of an action's answer, as az prints it (a list, or an object with `value`)."""
    return answer["value"] if isinstance(answer, dict) else answer


def eventually(seconds, check):
    deadline = time.time() + seconds
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(1)


def test_az_lists_the_routes_the_gateway_daemon_learned_and_advertises(lab):
    data, endpoint = lab
    creds = json.loads((data / "credentials.json").read_text())
    with tempfile.TemporaryDirectory(prefix="tessera-az-gw-") as config_dir:
        az = Az(find_az(), Path(config_dir), str(data / "ca.pem"))
        az("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", endpoint + "/")
        az("cloud", "set", "-n", CLOUD)
        az("config", "set", "core.instance_discovery=false")
        az("login", "--service-principal", "-u", creds["clientId"], f"--password={creds['clientSecret']}",
           "--tenant", creds["tenantId"])

        def learned():
            routes = rows(az("network", "vnet-gateway", "list-learned-routes", "-g", GROUP, "-n", "hub-gw"))
            return [r for r in routes if r["network"] == SITE_LAN and r["origin"] == "EBgp"] and routes

        routes = eventually(60, learned)
        assert routes, "the site's LAN was never learned by BGP"
        lan = next(r for r in routes if r["network"] == SITE_LAN)
        assert lan["sourcePeer"] == SITE_BGP and lan["nextHop"] == SITE_BGP, lan
        assert lan["asPath"] == "65050", lan
        # The gateway's own VNet is listed as a Network route, as Azure does.
        assert any(r["network"] == "10.0.0.0/16" and r["origin"] == "Network" for r in routes), routes

        advertised = rows(az("network", "vnet-gateway", "list-advertised-routes", "-g", GROUP, "-n", "hub-gw",
                             "--peer", SITE_BGP))
        networks = sorted(r["network"] for r in advertised)
        assert networks == ["10.0.0.0/16", "10.1.0.0/16"], advertised  # the hub and the transit spoke (GW2)
        assert SITE_LAN not in networks, "a learned route is never advertised back"

        peers = rows(az("network", "vnet-gateway", "list-bgp-peer-status", "-g", GROUP, "-n", "hub-gw"))
        site = next(p for p in peers if p["neighbor"] == SITE_BGP)
        assert site["state"] == "Connected" and site["asn"] == 65050 and site["routesReceived"] >= 1, site

        # A peer the gateway has no session with has no routes advertised to it.
        assert rows(az("network", "vnet-gateway", "list-advertised-routes", "-g", GROUP, "-n", "hub-gw",
                       "--peer", "10.9.9.9")) == []

        # GetSharedKey / SetSharedKey: the key the lab's connection was made with, then a new one.
        key = ("network", "vpn-connection", "shared-key")
        shown = az(*key, "show", "-g", GROUP, "--connection-name", "hub-to-onprem")
        assert shown["value"] == "lab-secret-1", shown
        updated = az(*key, "update", "-g", GROUP, "--connection-name", "hub-to-onprem", "--value", "a-new-secret-2")
        assert updated["value"] == "a-new-secret-2", updated
        assert az(*key, "show", "-g", GROUP, "--connection-name", "hub-to-onprem")["value"] == "a-new-secret-2"
        # A key Azure would refuse is refused, and the key stays.
        assert "InvalidSharedKey" in az.fails(*key, "update", "-g", GROUP, "--connection-name", "hub-to-onprem",
                                              "--value", "x" * 129)
        assert az(*key, "show", "-g", GROUP, "--connection-name", "hub-to-onprem")["value"] == "a-new-secret-2"
