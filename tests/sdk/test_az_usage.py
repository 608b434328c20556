"""Peering usage through the real Azure CLI (issue 17, $1-$7): an agent's usage report (posted as
an agent posts it) becomes hourly usage records, which `az consumption usage list` reads from
Tessera's Microsoft.Consumption/usageDetails with a date range, meter details and additional
properties, priced per GB at Azure's published rates; `az monitor metrics list` reads the VNets'
peering bytes from Microsoft.Insights/metrics; `tessera usage -o csv` sums them per link and
meter."""

import json
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from conftest import tessera_binary
from test_az import CLOUD, Az, find_az

GROUP = "rg-az-usage"
NET = "2024-05-01"
GIB = 1 << 30


def call(server, method, path, body=None, api=NET):
    url = f"{server.endpoint}{path}?api-version={api}"
    r = requests.request(method, url, json=body, verify=server.ca,
                         headers={"Authorization": f"Bearer {server.token()}"}, timeout=30)
    assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
    return r.json() if r.text else None


def estate(server):
    """Two VNets in West Europe and one in Japan West, each West Europe one peered both ways with
    the other and with the Japan West one: (hub, spoke, far) ids."""
    sub = f"/subscriptions/{server.creds['subscriptionId']}"
    call(server, "PUT", f"{sub}/resourcegroups/{GROUP}", {"location": "westeurope"}, api="2022-12-01")
    ids = {}
    for name, location, space in (("hub", "westeurope", "10.70.0.0/16"), ("spoke", "westeurope", "10.71.0.0/16"),
                                  ("far", "japanwest", "10.72.0.0/16")):
        path = f"{sub}/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks/{name}"
        ids[name] = call(server, "PUT", path, {"location": location,
                                               "properties": {"addressSpace": {"addressPrefixes": [space]}}})["id"]
    for a, b in (("hub", "spoke"), ("spoke", "hub"), ("hub", "far"), ("far", "hub")):
        call(server, "PUT", f"{ids[a]}/virtualNetworkPeerings/to-{b}",
             {"properties": {"remoteVirtualNetwork": {"id": ids[b]}}})
    return ids["hub"], ids["spoke"], ids["far"]


def report(server, host, run, sequence, pairs):
    r = requests.post(f"{server.endpoint}/tessera/hosts/{host}/usage", verify=server.ca, timeout=30,
                      headers={"Authorization": f"Bearer {server.token()}"},
                      json={"run": run, "sequence": sequence, "pairs": pairs})
    assert r.status_code == 200, r.text
    return r.json()


def pair(source, destination, direction, size):
    return {"source": source, "destination": destination, "direction": direction, "bytes": size,
            "packets": size // 1500}


def test_az_consumption_usage_list_reads_peering_usage(server):
    hub, spoke, far = estate(server)
    # Host sdk-1 carried 3 GiB spoke -> hub (both VMs on it) and 2 GiB hub -> far (sent from it).
    counted = report(server, "sdk-1", "run-a", 1, [
        pair(spoke, hub, "Egress", 3 * GIB), pair(spoke, hub, "Ingress", 3 * GIB), pair(hub, far, "Egress", 2 * GIB)])
    assert counted["counted"] is True
    # The same report again (a retry) is not counted twice.
    assert report(server, "sdk-1", "run-a", 1, [pair(spoke, hub, "Egress", 3 * GIB)])["counted"] is False

    creds = server.creds
    today = datetime.now(timezone.utc).date()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    with tempfile.TemporaryDirectory(prefix="tessera-az-usage-") as config_dir:
        az = Az(find_az(), Path(config_dir), server.ca)
        az("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", server.endpoint + "/")
        az("cloud", "set", "-n", CLOUD)
        az("config", "set", "core.instance_discovery=false")
        az("login", "--service-principal", "-u", creds["clientId"], f"--password={creds['clientSecret']}",
           "--tenant", creds["tenantId"])

        usage = az("consumption", "usage", "list", "--start-date", start, "--end-date", end, "-m", "-a")
        mine = [u for u in usage if u["instanceId"].lower() in (hub.lower(), spoke.lower())]
        got = sorted((u["instanceName"], u["meterDetails"]["meterName"], float(u["usageQuantity"]),
                      round(float(u["pretaxCost"]), 9)) for u in mine)
        # $2, $3: spoke pays egress and hub ingress at the intra-region rate (0.01/GB); the hub's
        # egress to Japan West is Zone 1 global egress (0.035/GB); far's ingress is billed to far
        # (another VNet, not listed here).
        assert got == [
            ("hub", "Egress data processed (Zone 1)", 2.0, 0.07),
            ("hub", "Ingress data processed (Global)", 3.0, 0.03),
            ("spoke", "Egress data processed (Global)", 3.0, 0.03),
        ], got
        for u in mine:
            assert u["currency"] == "USD" and u["meterDetails"]["unit"] == "1 GB", u
            assert u["usageStart"] <= u["usageEnd"], u
            info = json.loads(u["additionalProperties"])
            assert info["virtualNetworkPeering"].startswith(u["instanceId"] + "/virtualNetworkPeerings/"), info
        # Azure Monitor's metrics of the VNet (az monitor metrics list): by minute over the last
        # hour (az's default), then hourly split by the remote VNet.
        metrics = az("monitor", "metrics", "list", "--resource", spoke, "--metric", "PeeringBytesOut")
        out = next(m for m in metrics["value"] if m["name"]["value"] == "PeeringBytesOut")
        assert out["unit"] == "Bytes" and metrics["interval"] == "PT1M", metrics
        assert sum(p.get("total") or 0 for t in out["timeseries"] for p in t["data"]) == 3 * GIB, out
        split = az("monitor", "metrics", "list", "--resource", hub, "--metric", "PeeringBytesIn", "PeeringBytesOut",
                   "--interval", "PT1H", "--dimension", "RemoteVirtualNetwork", "--aggregation", "Total")
        by_remote = {(m["name"]["value"], t["metadatavalues"][0]["value"]): sum(p.get("total") or 0 for p in t["data"])
                     for m in split["value"] for t in m["timeseries"]}
        assert by_remote == {("PeeringBytesIn", "spoke"): 3 * GIB, ("PeeringBytesOut", "far"): 2 * GIB}, by_remote
        names = [d["name"]["value"] for d in az("monitor", "metrics", "list-definitions", "--resource", spoke)]
        assert "PeeringBytesIn" in names and "PeeringBytesOut" in names, names
        # A range that ended last year has none of it.
        old = az("consumption", "usage", "list", "--start-date", "2025-01-01", "--end-date", "2025-01-31")
        assert [u for u in old if u["instanceId"].lower() == spoke.lower()] == []

    # tessera usage: the same records per link and meter, as CSV.
    out = subprocess.run([tessera_binary(), "usage", "-o", "csv", "--credentials",
                          str(server.data_dir / "credentials.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("subscriptionId,virtualNetwork,virtualNetworkPeering,"), lines
    spoke_rows = [line.split(",") for line in lines[1:] if line.split(",")[1].lower() == spoke.lower()]
    assert [(r[4], r[5], r[7], r[8]) for r in spoke_rows] == [
        ("Egress data processed (Global)", str(3 * GIB), "0.030000", "USD")], spoke_rows
    assert spoke_rows[0][2].lower() == f"{spoke}/virtualNetworkPeerings/to-hub".lower()
